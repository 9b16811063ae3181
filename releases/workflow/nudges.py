"""Nudging a role: the product owner (or staff) tells the people of a role that go-live
waits on them. Audited like any change, so it shows on the timeline and every open
go/no-go panel says who nudged whom and when; the notifications outbox turns the audit
event into `role.nudged`, e-mailed to that role's people."""

from __future__ import annotations

from datetime import datetime

from django.utils import timezone
from django.utils.translation import gettext as _

from .. import policy
from ..actors import who_on
from ..models import AuditAction, AuditEvent, Release, Role, SignOff
from ..nudges import next_nudge_at, work_by_role
from ..templatetags.moments import moment
from .change import By, WorkflowError, _changing, as_actor


def last_nudged_at(release_id: int, role: str) -> datetime | None:
    return (
        AuditEvent.objects.filter(
            release_id=release_id, action=AuditAction.ROLE_NUDGED, target=role
        )
        .order_by("-created_at")
        .values_list("created_at", flat=True)
        .first()
    )


def nudge_role(release: Release, *, role: str, by: By, ip: str | None = None) -> None:
    """Record a nudge of `role`, refused when the role has nothing left before the gate
    or was nudged less than nudges.NUDGE_INTERVAL ago."""
    actor = as_actor(by, ip)
    if role not in Role.values:
        raise WorkflowError(_("There is no such role."))
    label = Role(role).label
    with _changing(release.pk, actor) as change:
        change.require(
            policy.may_nudge(who_on(actor, change.on)),
            _("Only the Product Owner or staff nudge a role."),
        )
        items = change.on.items.order_by("position")
        signoffs = SignOff.objects.filter(release=change.on, reopened_at__isnull=True)
        work = next((w for w in work_by_role(items, signoffs) if w.role == role), None)
        if work is None:
            raise WorkflowError(
                _("The %(role)s has nothing left to do before go-live.") % {"role": label}
            )
        # Under the release lock: two presses at once queue here, and the second sees
        # the first.
        last = last_nudged_at(change.on.pk, role)
        allowed_from = next_nudge_at(last)
        if allowed_from is not None and timezone.now() < allowed_from:
            raise WorkflowError(
                _("The %(role)s was nudged at %(last)s; the next nudge is allowed from %(next)s.")
                % {"role": label, "last": moment(last), "next": moment(allowed_from)}
            )
        change.audit(AuditAction.ROLE_NUDGED, role, after=work.payload())
