"""Who is e-mailed about which events: each person's subscription, or the default for
people who never set one.

An event goes to the people on its release, never to the person who caused it. Some
events concern one role only (a reopened sign-off, a blocked or failing item goes to
the leads of the role that owns it, a nudge to the people of the role nudged; the
approval question and its reminders to the product owner); the rest go to everyone on
the release.
"""

from __future__ import annotations

from datetime import timedelta

from django.core import signing
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from releases.models import Role

from .links import read_link
from .models import EmailSubscription

APPROVAL_REQUESTED = "approval.requested"
APPROVAL_REMINDER = "approval.reminder"
# Events about one role's items: only that role's people are told.
ROLE_EVENTS = frozenset({"signoff.reopened", "item.blocked", "check.failing", "role.nudged"})
# Events only the people holding one of these roles are told.
FOR_ROLES: dict[str, frozenset[str]] = {
    APPROVAL_REQUESTED: frozenset({Role.PRODUCT_OWNER}),
    APPROVAL_REMINDER: frozenset({Role.PRODUCT_OWNER}),
}

UNSUBSCRIBE_SALT = "notifications.unsubscribe"
# An unsubscribe link in an old mail still works for this long.
UNSUBSCRIBE_MAX_AGE = timedelta(days=365)


def unsubscribe_token(user_id: int) -> str:
    """Signed (with SECRET_KEY), so nothing secret is stored: the link names the person
    and proves the server made it; every mail's link works for UNSUBSCRIBE_MAX_AGE."""
    return signing.dumps({"u": user_id}, salt=UNSUBSCRIBE_SALT)


def user_of_token(token: str) -> int:
    """The person an unsubscribe link names; BadToken with a reason people can read."""
    payload = read_link(
        token,
        salt=UNSUBSCRIBE_SALT,
        max_age=UNSUBSCRIBE_MAX_AGE,
        fields={"u": int},
        expired=_("This unsubscribe link has expired."),
        invalid=_("This unsubscribe link is not valid."),
    )
    return int(payload["u"])


def unsubscribe(user_id: int) -> None:
    """Idempotent: the first time counts, a repeat changes nothing."""
    subscription, _created = EmailSubscription.objects.get_or_create(user_id=user_id)
    EmailSubscription.objects.filter(pk=subscription.pk, unsubscribed_at__isnull=True).update(
        unsubscribed_at=timezone.now()
    )
