"""Incident updates: what the product owner or DevOps (in person, or a deploy job through
a pipeline token of their role) tell the people outside the team (support, customers
through a share link) about where an incident stands.
"""

from __future__ import annotations

from datetime import timedelta

from django.utils import timezone
from django.utils.formats import number_format
from django.utils.translation import gettext as _

from .. import policy
from ..actors import Person, who_on
from ..models import AuditAction, IncidentState, IncidentUpdate, Release, Role
from .change import By, WorkflowError, _changing, as_actor, trimmed, visible_text

# An update the same as the latest, posted this soon after it, is that one sent again (a
# double click, a form sent twice, a pipeline retrying), not news: later, it may be
# someone saying again that nothing has changed.
REPEAT_WINDOW = timedelta(seconds=60)


def post_update(
    release: Release, *, state: str, message: str, by: By, ip: str | None = None
) -> IncidentUpdate:
    """A new update, which leads the status page from now on. The audit event keeps the
    state it follows, so the timeline reads "Monitoring → Resolved"."""
    actor = as_actor(by, ip)
    if state not in IncidentState.values:
        raise WorkflowError(_("Unknown incident state %(state)s.") % {"state": state[:40]})
    message = checked_message(message)
    with _changing(release.pk, actor) as change:
        who = who_on(actor, change.on)
        change.require(
            policy.may_post_update(who),
            _("Only the Product Owner or DevOps post incident updates."),
        )
        previous = change.on.incident_updates.order_by("-posted_at", "-id").first()
        # Under the release's lock: the second of two sent at once sees the first.
        if (
            previous is not None
            and (previous.state, previous.message) == (state, message)
            and timezone.now() - previous.posted_at < REPEAT_WINDOW
        ):
            raise WorkflowError(
                _(
                    "This same update (the same state and message) was posted less than a "
                    "minute ago and already leads the status page, so it was not posted "
                    "again."
                )
            )
        update = IncidentUpdate.objects.create(
            release=change.on,
            state=state,
            message=message,
            # A pipeline token posts as its role, with its label; it has no account.
            posted_by=actor.user if isinstance(actor, Person) else None,
            posted_as=_speaking_as(who.roles),
            posted_by_label=actor.label[:200],
        )
        change.audit(
            AuditAction.INCIDENT_UPDATE_POSTED,
            state,
            {"state": previous.state} if previous is not None else {},
            {"state": state, "message": message},
        )
        return update


def checked_message(message: str) -> str:
    """The message as it is posted, or WorkflowError saying what is wrong with it (the
    form asks before it shows the preview)."""
    message = trimmed(message)
    if not message:
        raise WorkflowError(_("Write what is happening for the people outside the team."))
    limit = IncidentUpdate.MESSAGE_MAX
    if len(message) > limit:
        raise WorkflowError(
            _("The message is longer than %(limit)s characters (it has %(length)s).")
            % {
                "limit": number_format(limit, force_grouping=True),
                "length": number_format(len(message), force_grouping=True),
            }
        )
    return visible_text(message, _("The message"))


def _speaking_as(roles: frozenset[str]) -> str:
    """The role an update is shown as: the product owner's first, DevOps next; "" for
    staff posting without either."""
    for role in (Role.PRODUCT_OWNER, Role.DEVOPS):
        if role in roles:
            return role
    return ""
