"""Who is e-mailed about which events: each person's subscription, or the default for
people who never set one.

An event goes to the people on its release, never to the person who caused it. Some
events concern one role only (a reopened sign-off, a blocked or failing item goes to
the leads of the role that owns it; the approval question to the product owner); the
rest go to everyone on the release.
"""

from __future__ import annotations

import fnmatch
from datetime import timedelta

from django.conf import settings
from django.core import signing
from django.db import models
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from releases.models import Role

from .models import DeliveryState, Event

APPROVAL_REQUESTED = "approval.requested"
# Events about one role's items: only that role's people are told.
ROLE_EVENTS = frozenset({"signoff.reopened", "item.blocked", "check.failing"})
# Events only the people holding one of these roles are told.
FOR_ROLES: dict[str, frozenset[str]] = {APPROVAL_REQUESTED: frozenset({Role.PRODUCT_OWNER})}

DEFAULT_EVENTS: tuple[str, ...] = (
    APPROVAL_REQUESTED,
    "signoff.reopened",
    "item.blocked",
    "check.failing",
    "rollback.declared",
    "rollback.resolved",
    "maintenance.scheduled",
    "maintenance.changed",
    "maintenance.cancelled",
)

UNSUBSCRIBE_SALT = "notifications.unsubscribe"
# An unsubscribe link in an old mail still works for this long.
UNSUBSCRIBE_MAX_AGE = timedelta(days=365)


def default_events() -> list[str]:
    return list(DEFAULT_EVENTS)


class EmailSubscription(models.Model):
    """What one person wants to be e-mailed about. Without one, DEFAULT_EVENTS on every
    release; unsubscribing keeps the row with `unsubscribed_at` set."""

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="email_subscription"
    )
    releases = models.CharField(_("releases"), max_length=100, default="*")
    events = models.JSONField(_("events"), default=default_events)
    unsubscribed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name = _("e-mail subscription")
        verbose_name_plural = _("e-mail subscriptions")

    def __str__(self) -> str:
        return f"{self.user}: {self.releases} {self.events}"

    def wants(self, event_type: str, version: str) -> bool:
        return (
            self.unsubscribed_at is None
            and event_type in self.events
            and fnmatch.fnmatchcase(version, self.releases)
        )


def unsubscribe_token(user_id: int) -> str:
    """Signed (with SECRET_KEY), so nothing secret is stored: the link names the person
    and proves the server made it; every mail's link works for UNSUBSCRIBE_MAX_AGE."""
    return signing.dumps({"u": user_id}, salt=UNSUBSCRIBE_SALT)


class BadToken(Exception):
    pass


def user_of_token(token: str) -> int:
    """The person an unsubscribe link names; BadToken with a reason people can read."""
    try:
        payload = signing.loads(token, salt=UNSUBSCRIBE_SALT, max_age=UNSUBSCRIBE_MAX_AGE)
    except signing.SignatureExpired:
        raise BadToken(_("This unsubscribe link has expired.")) from None
    except signing.BadSignature:
        raise BadToken(_("This unsubscribe link is not valid.")) from None
    if not isinstance(payload, dict) or not isinstance(payload.get("u"), int):
        raise BadToken(_("This unsubscribe link is not valid."))
    return int(payload["u"])


def unsubscribe(user_id: int) -> None:
    """Idempotent: the first time counts, a repeat changes nothing."""
    subscription, _created = EmailSubscription.objects.get_or_create(user_id=user_id)
    EmailSubscription.objects.filter(pk=subscription.pk, unsubscribed_at__isnull=True).update(
        unsubscribed_at=timezone.now()
    )


class EmailDelivery(models.Model):
    """One event e-mailed to one person, sent at least once: claimed for an attempt by a
    conditional UPDATE, as notifications.delivery does for channels."""

    event = models.ForeignKey(Event, on_delete=models.CASCADE, related_name="emails")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    address = models.EmailField(max_length=254)
    state = models.CharField(
        max_length=10, choices=DeliveryState.choices, default=DeliveryState.PENDING
    )
    attempts = models.PositiveIntegerField(default=0)
    due_at = models.DateTimeField(default=timezone.now)
    last_error = models.CharField(max_length=500, blank=True)
    delivered_at = models.DateTimeField(null=True, blank=True)
    message_id = models.CharField(max_length=300, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["event", "user"], name="one_email_per_person")
        ]
        indexes = [
            models.Index(
                fields=["due_at"],
                condition=Q(state__in=["pending", "sending"]),
                name="email_unfinished_due",
            )
        ]

    def __str__(self) -> str:
        return f"{self.event.type} → {self.address}: {self.state}"
