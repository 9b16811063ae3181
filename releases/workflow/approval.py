"""Approval and status: the product owner's go-live, its revocation, and the release's
own status moves.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_noop

from .. import policy
from ..actors import Person, who_on
from ..models import (
    STATUS_TRANSITIONS,
    AuditAction,
    GoLiveApproval,
    Release,
    ReleaseItem,
    ReleaseStatus,
    SignOff,
    blocking_reasons,
    gate_overrides,
)
from .change import (
    By,
    WorkflowError,
    _Change,
    _changing,
    _in_english,
    as_actor,
    trimmed,
    visible_text,
)

if TYPE_CHECKING:
    from django.contrib.auth.models import User

# Told to whoever may not do these, in their language; their confirmation pages refuse
# with the same words before anything is typed.
APPROVE_REFUSAL = gettext_noop("Only the Product Owner approves go-live.")
STATUS_REFUSAL = gettext_noop("Only staff can do this.")


def _revoke_if_gate_changed(change: _Change, item: ReleaseItem) -> None:
    if not (item.before_gate and item.required):
        return
    if "approval" not in change.looked_up:
        change.looked_up["approval"] = change.on.active_approval()
    approval = change.looked_up["approval"]
    if approval is None or change.on.gate_digest() == approval.digest:
        return
    change.looked_up["approval"] = None
    _revoke(
        change,
        approval,
        gettext_noop("“%(text)s” changed after go-live was approved"),
        {"text": item.text},
    )


def _revoke_if_unsigned(change: _Change) -> None:
    approval = change.on.active_approval()
    if approval is not None:
        _revoke(change, approval, gettext_noop("a lead withdrew a sign-off"))


def approval_obstacles(release: Release, user: User | None) -> list[str]:
    """Everything that stops this person approving go-live right now."""
    reasons = [r.message for r in blocking_reasons(release)]
    who = who_on(Person(user), release) if user is not None else None
    return policy.personal_obstacles(
        reasons,
        already_approved=release.active_approval() is not None,
        may_approve=who is not None and bool(policy.may_approve(who)),
        signed_off=user is not None
        and SignOff.objects.filter(release=release, signed_by=user).exists(),
        two_person_rule=release.two_person_rule,
    )


def _require_product_owner(change: _Change, refusal: str) -> None:
    """Go-live is the Product Owner's to approve, and to take back."""
    change.require(policy.may_approve(who_on(change.actor, change.on)), refusal)


def approve(release: Release, *, by: By, ip: str | None = None, reason: str = "") -> GoLiveApproval:
    """`reason`: what the product owner said when confirming, kept in the audit trail."""
    actor = as_actor(by, ip)
    with _changing(release.pk, actor) as change:
        _require_product_owner(change, _(APPROVE_REFUSAL))
        reason = visible_text(trimmed(reason), _("The reason"))
        assert isinstance(actor, Person)  # the policy lets only people approve
        obstacles = approval_obstacles(change.on, actor.user)
        if obstacles:
            raise WorkflowError(
                _("Go-live cannot be approved yet: %(reasons)s") % {"reasons": "; ".join(obstacles)}
            )
        overrides = gate_overrides(change.on)
        approval = GoLiveApproval.objects.create(
            release=change.on,
            approved_by=actor.user,
            digest=change.on.gate_digest(),
            overrides=overrides,
        )
        change.on.status = ReleaseStatus.APPROVED
        # Given over failing checks, it says which, and why each was ticked anyway.
        named: dict[str, object] = {"overrides": overrides} if overrides else {}
        if reason:
            named["reason"] = reason
        change.audit(
            AuditAction.RELEASE_APPROVED,
            change.on.version,
            {},
            {"digest": approval.digest, **named},
        )
        return approval


def _revoke(
    change: _Change,
    approval: GoLiveApproval,
    reason: str,
    reason_args: dict[str, str] | None = None,
    *,
    override: bool = False,
) -> None:
    _refuse_while_deploying(change)
    approval.revoked_at = timezone.now()
    approval.revoked_reason = reason
    approval.revoked_reason_args = reason_args or {}
    approval.save(update_fields=["revoked_at", "revoked_reason", "revoked_reason_args"])
    reason = _in_english(reason, reason_args or {})
    if change.on.status == ReleaseStatus.APPROVED:
        change.on.status = ReleaseStatus.IN_PROGRESS
    change.audit(
        AuditAction.APPROVAL_REVOKED,
        change.on.version,
        {"approved_by": approval.approved_by.get_username()},
        {"reason": reason},
        override=override,
    )


def revoke_approval(release: Release, *, by: By, reason: str, ip: str | None = None) -> None:
    actor = as_actor(by, ip)
    with _changing(release.pk, actor) as change:
        _require_product_owner(change, _("Only the Product Owner revokes go-live approval."))
        reason = visible_text(trimmed(reason), _("The reason"))
        if not reason:
            raise WorkflowError(_("Say why go-live approval is revoked."))
        approval = change.on.active_approval()
        if approval is None:
            raise WorkflowError(_("Go-live is not approved."))
        _revoke(change, approval, reason, override=change.override)


def _refuse_while_deploying(change: _Change) -> None:
    """A deploy under way ends by recording how it went, or by declaring a rollback
    (which ends it, then revokes the approval): taking the approval or the status away
    under it would leave a deploy that neither could end."""
    if change.on.deployments.filter(finished_at__isnull=True).exists():
        raise WorkflowError(
            _(
                "A deploy is under way, and this would take go-live approval away from "
                "under it: record how the deploy ended, or declare a rollback."
            )
        )


def set_status(
    release: Release, *, status: str, by: By, ip: str | None = None, reason: str = ""
) -> Release:
    """`reason`: why, as the person confirming the move said, kept in the audit trail.
    A rollback is not a status move: workflow.rollback declares it, with its reason and
    severity, and a release leaves Rolled back only once that rollback is closed."""
    actor = as_actor(by, ip)
    if status not in ReleaseStatus.values:
        raise WorkflowError(_("Unknown status %(status)s.") % {"status": status})
    with _changing(release.pk, actor) as change:
        change.require(
            policy.may_set_status(who_on(actor, change.on), status=status),
            _(STATUS_REFUSAL),
        )
        reason = visible_text(trimmed(reason), _("The reason"))
        current = change.on.status
        if status == current:
            return change.on
        if status not in STATUS_TRANSITIONS.get(current, frozenset()):
            raise WorkflowError(
                _("A release cannot go from %(a)s to %(b)s.")
                % {"a": ReleaseStatus(current).label, "b": ReleaseStatus(status).label}
            )
        if status == ReleaseStatus.APPROVED:
            raise WorkflowError(_("Go-live is approved through the approval, not a status."))
        _refuse_while_deploying(change)
        if status == ReleaseStatus.ROLLED_BACK:
            raise WorkflowError(
                _("A rollback is declared, with its reason and severity, not set as a status.")
            )
        if (
            current == ReleaseStatus.ROLLED_BACK
            and change.on.rollbacks.filter(closed_at__isnull=True).exists()
        ):
            raise WorkflowError(
                _("The rollback is still open: close it with its cause before moving on.")
            )
        # An approval covers one go-live: the deploy keeps it, anything else (going back,
        # a rollback, reopening, cancelling) ends it, and a new go-live needs a new one.
        approval = change.on.active_approval()
        if approval is not None and status != ReleaseStatus.DEPLOYED:
            _revoke(
                change,
                approval,
                gettext_noop("status changed to %(status)s"),
                {"status": status},
            )
        change.on.status = status
        change.audit(
            AuditAction.RELEASE_STATUS,
            change.on.version,
            {"status": current},
            {"status": status, "reason": reason} if reason else {"status": status},
        )
        return change.on
