"""Every change to a release, as one named operation.

Each operation: asks releases.policy whether the actor may act, locks the release row
inside a transaction (so two people acting at once queue rather than overwrite), applies
the change, appends its audit event, bumps the release's revision, and publishes a live
update once the transaction commits. Views, admin actions, management commands and
tasks call these; they never save release models or audit events themselves.

Where things go: a new permission rule is a function in releases.policy; a new audit
action is a member of models.AuditAction (with its label); a new operation uses
`_changing` and `change.audit(...)`, and nothing else writes to the audit trail.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import TYPE_CHECKING, Any, TypeAlias

from django.core.exceptions import PermissionDenied, ValidationError
from django.core.validators import URLValidator
from django.db import IntegrityError, transaction
from django.utils import timezone, translation
from django.utils.translation import gettext as _
from django.utils.translation import gettext_noop

from . import checklists, notify, policy
from . import markdown as md
from .actors import Actor, CheckActor, Person, PipelineActor, who_anywhere, who_on
from .models import (
    CLOSED_STATUSES,
    STATUS_TRANSITIONS,
    AuditAction,
    AuditEvent,
    ChecklistTemplate,
    CheckOutcome,
    CheckReason,
    EmergencyContact,
    GoLiveApproval,
    ItemState,
    Release,
    ReleaseItem,
    ReleaseStatus,
    Role,
    ShareLink,
    SignOff,
    Stakeholder,
    blocking_reasons,
    gate_overrides,
    in_signoff_scope,
    reason_text,
)

if TYPE_CHECKING:
    from django.contrib.auth.models import User


class WorkflowError(Exception):
    """A rule said no; the message is meant for the person who tried."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class Conflict(WorkflowError):
    """The edit was based on a stale view of the item."""


# A person may be passed as their account; `ip` then says where they acted from.
By: TypeAlias = "Actor | User"


def as_actor(by: By, ip: str | None = None) -> Actor:
    if isinstance(by, Actor):
        return by
    return Person(by, ip)


@dataclass
class _Change:
    release: Release | None
    actor: Actor
    override: bool = False
    events: list[dict[str, Any]] = field(default_factory=list)
    # A change pages show that is not worth an audit event (a check result that leaves
    # the verdict as it was): it still gets a new revision.
    shown: bool = False
    # What one transaction already looked up about the locked release and may ask again
    # for each of many items (its open approval, its open sign-offs): nobody else can
    # change them while the lock is held.
    looked_up: dict[Any, Any] = field(default_factory=dict)

    @property
    def on(self) -> Release:
        """The locked release (every operation but a template import has one)."""
        assert self.release is not None
        return self.release

    def audit(
        self,
        action: AuditAction,
        target: str = "",
        before: Any = None,
        after: Any = None,
        override: bool | None = None,
    ) -> None:
        self.events.append(
            {
                "by": self.actor,
                "action": action,
                "target": target[:500],
                "before": before or {},
                "after": after or {},
                "override": self.override if override is None else override,
            }
        )

    def require(self, access: policy.Access, refusal: str) -> None:
        """Stop unless the policy allowed it; an override is remembered for the audit."""
        if not access and self.release is not None and self.release.status in CLOSED_STATUSES:
            raise WorkflowError(
                _("The release is %(status)s: it accepts no change until staff reopen it.")
                % {"status": str(ReleaseStatus(self.release.status).label).lower()}
            )
        if not access:
            raise PermissionDenied(refusal)
        if access is policy.Access.OVERRIDE:
            self.override = True


@contextmanager
def _changing(release_id: int | None, actor: Actor, *, shown: bool = True) -> Iterator[_Change]:
    """The one transaction shape every operation shares, and the one writer of audit
    events. Without a release (a template import) nothing is locked or published; a
    change no page shows (a share link) is audited without a new revision."""
    with transaction.atomic():
        release = (
            Release.objects.select_for_update().get(pk=release_id)
            if release_id is not None
            else None
        )
        change = _Change(release=release, actor=actor)
        yield change
        if change.events:
            _write_audit(release, change.events)
        if release is None or not (shown and (change.events or change.shown)):
            return
        release.revision += 1
        Release.objects.filter(pk=release.pk).update(
            revision=release.revision, status=release.status
        )
        release_pk, revision = release.pk, release.revision
        transaction.on_commit(lambda: notify.publish(release_pk, revision))


@contextmanager
def holding(release_id: int) -> Iterator[bool]:
    """A transaction holding the release lock if no one else holds it (True), for a
    caller that gathers its changes under it: it sees what was committed before, and
    the operations it runs inside take the lock again at no cost and commit together.
    False, at once, when another transaction holds it: waiting would keep a database
    connection busy doing nothing."""
    with transaction.atomic():
        held = (
            Release.objects.select_for_update(skip_locked=True)
            .filter(pk=release_id)
            .values_list("pk", flat=True)
            .first()
        )
        yield held is not None


def _write_audit(release: Release | None, events: list[dict[str, Any]]) -> None:
    now = timezone.now()
    AuditEvent.objects.bulk_create([_audit_event(release, now, **event) for event in events])


def _audit_event(release: Release | None, now: datetime, by: Actor, **fields: Any) -> AuditEvent:
    return AuditEvent(
        release=release,
        actor=by.user if isinstance(by, Person) else None,
        actor_label=by.label[:200],
        actor_kind=by.kind,
        source_ip=by.ip,
        created_at=now,
        **fields,
    )


def _require_manager(actor: Actor, release: Release | None = None) -> None:
    who = who_on(actor, release) if release is not None else who_anywhere(actor)
    if not policy.may_manage(who):
        raise PermissionDenied(_("Only staff can do this."))


# --- items -------------------------------------------------------------------------------


def _snapshot(item: ReleaseItem) -> dict[str, Any]:
    return {
        "state": item.state,
        "reason": item.reason,
        "note": item.note,
        "evidence_url": item.evidence_url,
    }


def _visible_text(text: str, what: str) -> str:
    """Text people type, refused when it holds invisible bidirectional controls, which
    can make it read on the page differently from what it is."""
    hidden = md.bidi_controls(text)
    if hidden:
        raise WorkflowError(
            _(
                "%(what)s contains invisible bidirectional control characters (%(chars)s), "
                "which can make it read differently from what it is; remove them."
            )
            % {"what": what, "chars": ", ".join(hidden)}
        )
    return text


def _validate_evidence(url: str) -> str:
    url = url.strip()
    limit = ReleaseItem._meta.get_field("evidence_url").max_length
    assert limit is not None  # a URLField always has one
    if len(url) > limit:
        raise WorkflowError(
            _("The evidence link is longer than %(limit)d characters.") % {"limit": limit}
        )
    if url:
        try:
            URLValidator(schemes=["http", "https"])(url)
        except ValidationError:
            raise WorkflowError(_("The evidence link must be an http(s) URL.")) from None
    return url


def _apply_item_change(
    change: _Change,
    item: ReleaseItem,
    *,
    expected_version: int | None,
    action: AuditAction,
    **fields: Any,
) -> ReleaseItem:
    _require_fresh(item, expected_version)
    before = _snapshot(item)
    for name, value in fields.items():
        setattr(item, name, value)
    after = _snapshot(item)
    if after == before:
        return item
    actor = change.actor
    item.changed_by = actor.user if isinstance(actor, Person) else None
    item.changed_by_label = actor.label[:200]
    item.changed_by_kind = actor.kind
    item.changed_at = timezone.now()
    item.version += 1
    item.revision = change.on.revision + 1
    item.save(
        update_fields=[
            *fields,
            "changed_by",
            "changed_by_label",
            "changed_by_kind",
            "changed_at",
            "version",
            "revision",
        ]
    )
    change.audit(action, item.text, before, after)
    if change.on.status == ReleaseStatus.PLANNED:
        change.on.status = ReleaseStatus.IN_PROGRESS
    settled_changed = (before["state"], before["reason"], before["evidence_url"]) != (
        after["state"],
        after["reason"],
        after["evidence_url"],
    )
    if settled_changed:
        _reopen_signoff(change, item)
        _revoke_if_gate_changed(change, item)
    return item


def _require_fresh(item: ReleaseItem, expected_version: int | None) -> None:
    if expected_version is not None and item.version != expected_version:
        who = item.changed_by_label or _("someone else")
        raise Conflict(
            _(
                "“%(text)s” was changed by %(who)s since you loaded the page; "
                "it is now %(state)s. Review it and try again."
            )
            % {"text": item.text, "who": who, "state": item.get_state_display()}
        )


def _in_english(template: str, args: dict[str, Any]) -> str:
    # The audit trail reads the same whoever acted and whatever their language.
    with translation.override("en"):
        return reason_text(template, args)


def _reopen_signoff(change: _Change, item: ReleaseItem) -> None:
    if not item.before_gate and _gate_cuts(change, item.owner_role, item.phase):
        return  # past the gate in a phase it cuts: the sign-off covers only what precedes it
    signoff = _open_signoff(change, item.owner_role, item.phase)
    if signoff is None:
        return
    # Reopened once: the next item of the same lane finds nothing left to reopen.
    change.looked_up[("signoff", item.owner_role, item.phase)] = None
    signoff.reopened_at = timezone.now()
    signoff.reopened_reason = gettext_noop("“%(text)s” changed after sign-off")
    signoff.reopened_reason_args = {"text": item.text}
    signoff.save(update_fields=["reopened_at", "reopened_reason", "reopened_reason_args"])
    change.audit(
        AuditAction.SIGNOFF_REOPENED,
        f"{item.owner_role} / {item.phase}",
        {"signed_by": signoff.signed_by.get_username()},
        {"reason": _in_english(signoff.reopened_reason, signoff.reopened_reason_args)},
        override=False,
    )


def _gate_cuts(change: _Change, role: str, phase: str) -> bool:
    key = ("gate", role, phase)
    if key not in change.looked_up:
        change.looked_up[key] = ReleaseItem.objects.filter(
            release=change.on, owner_role=role, phase=phase, before_gate=True
        ).exists()
    return bool(change.looked_up[key])


def _open_signoff(change: _Change, role: str, phase: str) -> SignOff | None:
    key = ("signoff", role, phase)
    if key not in change.looked_up:
        change.looked_up[key] = SignOff.objects.filter(
            release=change.on, role=role, phase=phase, reopened_at__isnull=True
        ).first()
    return change.looked_up[key]  # type: ignore[no-any-return]


def _revoke_if_gate_changed(change: _Change, item: ReleaseItem) -> None:
    if not (item.before_gate and item.required):
        return
    if "approval" not in change.looked_up:
        change.looked_up["approval"] = GoLiveApproval.objects.filter(
            release=change.on, revoked_at__isnull=True
        ).first()
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


def _locked_item(change: _Change, item_id: int) -> ReleaseItem:
    item = ReleaseItem.objects.select_related("release").get(pk=item_id, release=change.on)
    _require_may_change(change, change.actor, item)
    return item


def _require_may_change(change: _Change, actor: Actor, item: ReleaseItem) -> None:
    change.require(
        policy.may_change_item(
            who_on(actor, change.on), owner_role=item.owner_role, checks=item.checks
        ),
        _("Only the %(role)s may change “%(text)s”.")
        % {"role": item.get_owner_role_display(), "text": item.text},
    )


def _release_id_of(item: ReleaseItem | int) -> tuple[int, int]:
    if isinstance(item, ReleaseItem):
        return item.release_id, item.pk
    release_id = ReleaseItem.objects.values_list("release_id", flat=True).get(pk=item)
    return release_id, item


_STATE_ACTIONS = {
    ItemState.DONE: AuditAction.ITEM_DONE,
    ItemState.PENDING: AuditAction.ITEM_REOPENED,
    ItemState.NOT_APPLICABLE: AuditAction.ITEM_NOT_APPLICABLE,
    ItemState.BLOCKED: AuditAction.ITEM_BLOCKED,
}


def set_item_state(
    item: ReleaseItem | int,
    *,
    by: By,
    state: str,
    reason: str = "",
    override_reason: str = "",
    expected_version: int | None = None,
    ip: str | None = None,
) -> ReleaseItem:
    """Tick, untick, mark not applicable or blocked. N/A and blocked need a reason, and
    so does a tick over a failing automated check (`override_reason`)."""
    if state == ItemState.FAILED:
        raise WorkflowError(_("Only an automated check can mark an item as failed."))
    if state not in ItemState.values:
        raise WorkflowError(_("Unknown state %(state)s.") % {"state": state})
    reason = _visible_text(reason.strip(), _("The reason"))
    if state in ItemState.needing_reason() and not reason:
        raise WorkflowError(
            _("Say why the item is %(state)s.") % {"state": ItemState(state).label.lower()}
        )
    if state not in ItemState.needing_reason():
        reason = ""
    override_reason = _override_reason(override_reason)
    if override_reason and state != ItemState.DONE:
        raise WorkflowError(_("Only a tick can be given over a failing automated check."))
    release_id, item_id = _release_id_of(item)
    with _changing(release_id, as_actor(by, ip)) as change:
        locked = _locked_item(change, item_id)
        if state == ItemState.DONE and (locked.failing_check or override_reason):
            return _tick_over_failure(change, locked, override_reason, expected_version)
        fields: dict[str, Any] = {"state": state, "reason": reason}
        standing = _override_of(locked)
        if state != ItemState.DONE:
            fields.update(check_failure="", **_NO_OVERRIDE)
        changed = _apply_item_change(
            change,
            locked,
            expected_version=expected_version,
            action=_STATE_ACTIONS[ItemState(state)],
            **fields,
        )
        if standing and not changed.override_reason:
            change.audit(AuditAction.CHECK_OVERRIDE_CLEARED, changed.text, standing, {})
        return changed


# What an item holds of an override, and what it holds without one.
_NO_OVERRIDE: dict[str, Any] = {
    "override_reason": "",
    "override_failure": "",
    "overridden_by_label": "",
    "overridden_at": None,
}
OVERRIDE_REASON_MAX = 2000


def _override_reason(text: str) -> str:
    text = _visible_text(text.strip(), _("The override reason"))
    if len(text) > OVERRIDE_REASON_MAX:
        raise WorkflowError(
            _("The override reason is longer than %(limit)d characters.")
            % {"limit": OVERRIDE_REASON_MAX}
        )
    return text


def _override_of(item: ReleaseItem) -> dict[str, str]:
    """The override an item holds, as the audit trail shows it ({} when none)."""
    if not item.override_reason:
        return {}
    return {
        "reason": item.override_reason,
        "check_failure": item.override_failure,
        "by": item.overridden_by_label,
    }


def _tick_over_failure(
    change: _Change, item: ReleaseItem, reason: str, expected_version: int | None
) -> ReleaseItem:
    """A person ticks an item whose automated check fails, or gives the reason for a tick
    a check has failed since: allowed only with that reason, which stands beside the
    failure until the check passes or fails differently, and which the approval names."""
    _require_fresh(item, expected_version)
    failure = item.failing_check
    if not failure:
        raise WorkflowError(
            _("“%(text)s” has no failing automated check to override.") % {"text": item.text}
        )
    if not reason:
        if item.overridden:
            return item  # ticked over this very failure already
        raise WorkflowError(
            _(
                "The automated check of “%(text)s” is failing (%(failure)s): say why you "
                "tick it anyway, or fix what fails. Go-live approval will name your reason."
            )
            % {"text": item.text, "failure": failure}
        )
    change.require(
        policy.may_override_check(who_on(change.actor, change.on), owner_role=item.owner_role),
        _("Only the %(role)s may tick “%(text)s” over its failing check.")
        % {"role": item.get_owner_role_display(), "text": item.text},
    )
    if item.overridden and item.override_reason == reason:
        return item
    standing = _override_of(item)
    was_done = item.state == ItemState.DONE
    item = _apply_item_change(
        change,
        item,
        expected_version=None,
        action=AuditAction.ITEM_DONE,
        state=ItemState.DONE,
        reason="",
        check_failure=failure,
    )
    item.override_reason = reason
    item.override_failure = failure
    item.overridden_by_label = change.actor.label[:200]
    item.overridden_at = timezone.now()
    saved = [*_NO_OVERRIDE, "check_failure"]
    if was_done:
        # Nothing else changed, so the tick did not move the item on: the override does.
        item.version += 1
        item.revision = change.on.revision + 1
        saved += ["version", "revision"]
    item.save(update_fields=saved)
    change.audit(
        AuditAction.CHECK_OVERRIDDEN,
        item.text,
        standing,
        {"reason": reason, "check_failure": failure},
    )
    _revoke_if_gate_changed(change, item)
    return item


def tick(
    item: ReleaseItem | int,
    *,
    by: By,
    override_reason: str = "",
    expected_version: int | None = None,
    ip: str | None = None,
) -> ReleaseItem:
    """Mark an item done; over a failing automated check only with `override_reason`."""
    return set_item_state(
        item,
        by=by,
        state=ItemState.DONE,
        override_reason=override_reason,
        expected_version=expected_version,
        ip=ip,
    )


def untick(
    item: ReleaseItem | int, *, by: By, expected_version: int | None = None, ip: str | None = None
) -> ReleaseItem:
    return set_item_state(
        item, by=by, state=ItemState.PENDING, expected_version=expected_version, ip=ip
    )


def mark_not_applicable(
    item: ReleaseItem | int,
    *,
    by: By,
    reason: str,
    expected_version: int | None = None,
    ip: str | None = None,
) -> ReleaseItem:
    return set_item_state(
        item,
        by=by,
        state=ItemState.NOT_APPLICABLE,
        reason=reason,
        expected_version=expected_version,
        ip=ip,
    )


def mark_blocked(
    item: ReleaseItem | int,
    *,
    by: By,
    reason: str,
    expected_version: int | None = None,
    ip: str | None = None,
) -> ReleaseItem:
    return set_item_state(
        item,
        by=by,
        state=ItemState.BLOCKED,
        reason=reason,
        expected_version=expected_version,
        ip=ip,
    )


def annotate_item(
    item: ReleaseItem | int,
    *,
    by: By,
    note: str | None = None,
    evidence_url: str | None = None,
    expected_version: int | None = None,
    ip: str | None = None,
) -> ReleaseItem:
    """Change an item's note and/or evidence link."""
    release_id, item_id = _release_id_of(item)
    with _changing(release_id, as_actor(by, ip)) as change:
        locked = _locked_item(change, item_id)
        fields: dict[str, Any] = {}
        if note is not None:
            fields["note"] = _visible_text(note.strip()[:5000], _("The note"))
        if evidence_url is not None:
            fields["evidence_url"] = _validate_evidence(evidence_url)
        return _apply_item_change(
            change,
            locked,
            expected_version=expected_version,
            action=AuditAction.ITEM_ANNOTATED,
            **fields,
        )


@dataclass(frozen=True)
class CheckFinding:
    """What one check found, for the items that name it. `detail` is its evidence in
    English; `said` the same as a message and its values (releases.evidence.Said's JSON),
    which pages show in each reader's language."""

    check: CheckActor
    outcome: str
    reason: str = ""
    detail: str = ""
    latency_ms: int | None = None
    said: Mapping[str, Any] | None = None


def record_check_result(
    item: ReleaseItem | int,
    *,
    check: str | CheckActor,
    passed: bool,
    detail: str = "",
    evidence_url: str = "",
    outcome: str = "",
    reason: str = "",
    latency_ms: int | None = None,
) -> ReleaseItem:
    """One result of an automated check on an item that names it.

    The result is kept beside the item, and the item's verdict is taken from the latest
    result of each of its checks, here under the release lock (models.ChecksVerdict): it
    passes when all of them pass, fails when any fails, is not verified when none
    fails but one could not be judged, and waits while one has not answered yet. A pass
    ticks a pending item and a failure fails it; a result that could not be judged
    settles nothing, and takes back what a machine settled. A person's decision is never
    undone: beside it a failure, or a check that could not judge, is kept as a blocking
    reason instead. `outcome` tells a failure (the default) from an error; `reason` is
    its code.
    """
    release_id, item_id = _release_id_of(item)
    actor = check if isinstance(check, CheckActor) else CheckActor(check)
    finding = CheckFinding(
        actor,
        outcome or (CheckOutcome.PASS if passed else CheckOutcome.FAIL),
        reason or (CheckReason.OK if passed else ""),
        detail,
        latency_ms,
    )
    with _changing(release_id, actor) as change:
        locked = _locked_item(change, item_id)
        evidence = _validate_evidence(evidence_url) if evidence_url else locked.evidence_url
        return _record_findings(change, locked, [finding], evidence)


def record_check_results(release_id: int, findings: Sequence[CheckFinding]) -> int:
    """Many results at once, as a worker gathers them: each reaches every item that
    names its check, as `record_check_result` would carry it, all in one transaction
    and one revision. How many items they reached."""
    if not findings:
        return 0
    with _changing(release_id, findings[0].check) as change:
        names = {finding.check.name for finding in findings}
        linked = [
            item_id
            for item_id, checks in ReleaseItem.objects.filter(release=change.on).values_list(
                "pk", "checks"
            )
            if names.intersection(checks)
        ]
        items = ReleaseItem.objects.filter(pk__in=linked).select_related("release")
        for entry in items.order_by("position"):
            own = [finding for finding in findings if finding.check.name in entry.checks]
            for finding in own:
                _require_may_change(change, finding.check, entry)
            # Audited as the check whose result completed the verdict.
            as_last = replace(
                change, actor=own[-1].check, events=change.events, looked_up=change.looked_up
            )
            _record_findings(as_last, entry, own, entry.evidence_url)
            change.shown = True
        return len(linked)


def _record_findings(
    change: _Change, locked: ReleaseItem, findings: Sequence[CheckFinding], evidence: str
) -> ReleaseItem:
    now = timezone.now().isoformat()
    results = dict(locked.check_results)
    for finding in findings:
        result: dict[str, Any] = {
            "outcome": finding.outcome,
            "reason": finding.reason,
            "at": now,
            "latency_ms": finding.latency_ms,
            "evidence": finding.detail[:300],
        }
        if finding.said:
            result["said"] = dict(finding.said)
        results[finding.check.name] = result
    locked.check_results = results
    locked.revision = change.on.revision + 1
    locked.save(update_fields=["check_results", "revision"])
    # The board shows every result, even one that leaves the verdict as it was.
    change.shown = True
    verdict = locked.checks_verdict()
    # What is stored is English (the audit trail, approval's digest); pages rebuild it
    # from the results in each reader's language.
    if verdict.failed:
        state, failure, action = (
            ItemState.FAILED,
            verdict.failure(english=True),
            AuditAction.CHECK_FAILED,
        )
    elif verdict.not_verified:
        state, failure, action = (
            ItemState.PENDING,
            verdict.unverified(english=True),
            AuditAction.CHECK_NOT_VERIFIED,
        )
    elif verdict.passed:
        state, failure, action = ItemState.DONE, "", AuditAction.CHECK_PASSED
    else:
        return locked
    return _machine_verdict(
        change, locked, state=state, failure=failure, evidence=evidence, action=action
    )


def _machine_verdict(
    change: _Change,
    item: ReleaseItem,
    *,
    state: ItemState,
    failure: str,
    evidence: str,
    action: AuditAction,
) -> ReleaseItem:
    """Settle an item as a machine decided: done, failed, or back to pending when it
    could not judge (nothing a machine settled stands on a result it could not judge).
    Unless a person settled it: then the failure goes beside their decision (and who
    settled it stays theirs)."""
    decided_by_person = (
        item.state not in (ItemState.PENDING, ItemState.FAILED)
        and item.changed_by_kind == Person.kind
    )
    if decided_by_person:
        if failure == item.check_failure:
            return item
        before = {"check_failure": item.check_failure}
        item.check_failure = failure
        lapsed = _lapse_override(item)
        item.version += 1
        item.revision = change.on.revision + 1
        item.save(update_fields=["check_failure", *_NO_OVERRIDE, "version", "revision"])
        change.audit(action, item.text, before, {"check_failure": failure})
        if lapsed:
            change.audit(
                AuditAction.CHECK_OVERRIDE_CLEARED, item.text, lapsed, {"check_failure": failure}
            )
        _revoke_if_gate_changed(change, item)
        return item
    return _apply_item_change(
        change,
        item,
        expected_version=None,
        action=action,
        state=state,
        reason=failure if state == ItemState.FAILED else "",
        evidence_url=evidence,
        check_failure="",
    )


def _lapse_override(item: ReleaseItem) -> dict[str, str]:
    """End an override whose failure is gone or has changed: it was given over what the
    person saw, not over whatever fails next. What ended ({} when none did)."""
    if not item.override_reason or item.override_failure == item.check_failure:
        return {}
    lapsed = _override_of(item)
    for name, value in _NO_OVERRIDE.items():
        setattr(item, name, value)
    return lapsed


def record_pipeline_evidence(
    item: ReleaseItem | int, *, by: PipelineActor, passed: bool, url: str = "", detail: str = ""
) -> ReleaseItem:
    """A CI job's verdict on an item its token's role owns, with a link to the run."""
    release_id, item_id = _release_id_of(item)
    with _changing(release_id, by) as change:
        locked = _locked_item(change, item_id)
        evidence = _validate_evidence(url) if url else locked.evidence_url
        return _machine_verdict(
            change,
            locked,
            state=ItemState.DONE if passed else ItemState.FAILED,
            failure="" if passed else detail.strip()[:2000] or _("the pipeline reported a failure"),
            evidence=evidence,
            action=AuditAction.PIPELINE_PASSED if passed else AuditAction.PIPELINE_FAILED,
        )


# --- sign-off and approval -------------------------------------------------------------


def sign_off(release: Release, *, role: str, phase: str, by: By, ip: str | None = None) -> SignOff:
    actor = as_actor(by, ip)
    if role not in Role.leads():
        raise WorkflowError(_("Only leads sign off their items."))
    with _changing(release.pk, actor) as change:
        change.require(
            policy.may_sign_off(who_on(actor, change.on), role=role),
            _("Only the %(role)s signs off these items.") % {"role": Role(role).label},
        )
        assert isinstance(actor, Person)  # the policy lets only people sign
        items = in_signoff_scope(
            ReleaseItem.objects.filter(release=change.on, owner_role=role, phase=phase)
        )
        if not items:
            raise WorkflowError(
                _("The %(role)s owns no items in “%(phase)s”.")
                % {"role": Role(role).label, "phase": phase}
            )
        open_items = [i for i in items if i.state not in ItemState.settled()]
        if open_items:
            raise WorkflowError(
                _(
                    "%(count)d item(s) of yours in “%(phase)s” are not done or N/A yet, "
                    "e.g. “%(text)s”."
                )
                % {"count": len(open_items), "phase": phase, "text": open_items[0].text}
            )
        if SignOff.objects.filter(
            release=change.on, role=role, phase=phase, reopened_at__isnull=True
        ).exists():
            raise WorkflowError(_("Already signed off."))
        signoff = SignOff.objects.create(
            release=change.on, role=role, phase=phase, signed_by=actor.user
        )
        change.audit(
            AuditAction.SIGNOFF_SIGNED,
            f"{role} / {phase}",
            {},
            {"items": len(items), "signed_by": actor.user.get_username()},
        )
        return signoff


def withdraw_sign_off(
    release: Release, *, role: str, phase: str, by: By, ip: str | None = None
) -> None:
    actor = as_actor(by, ip)
    with _changing(release.pk, actor) as change:
        signoff = SignOff.objects.filter(
            release=change.on, role=role, phase=phase, reopened_at__isnull=True
        ).first()
        if signoff is None:
            raise WorkflowError(_("There is no sign-off to withdraw."))
        signed_it = isinstance(actor, Person) and signoff.signed_by_id == actor.user.pk
        change.require(
            policy.may_withdraw(who_on(actor, change.on), signed_it=signed_it),
            _("Only whoever signed can withdraw the sign-off."),
        )
        signoff.reopened_at = timezone.now()
        signoff.reopened_reason = gettext_noop("withdrawn by %(who)s")
        signoff.reopened_reason_args = {"who": actor.label}
        signoff.save(update_fields=["reopened_at", "reopened_reason", "reopened_reason_args"])
        change.audit(AuditAction.SIGNOFF_WITHDRAWN, f"{role} / {phase}")
        _revoke_if_unsigned(change)


def _revoke_if_unsigned(change: _Change) -> None:
    approval = GoLiveApproval.objects.filter(release=change.on, revoked_at__isnull=True).first()
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


def approve(release: Release, *, by: By, ip: str | None = None) -> GoLiveApproval:
    actor = as_actor(by, ip)
    with _changing(release.pk, actor) as change:
        change.require(
            policy.may_approve(who_on(actor, change.on)),
            _("Only the Product Owner approves go-live."),
        )
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
        named = {"overrides": overrides} if overrides else {}
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
    reason = reason.strip()
    with _changing(release.pk, actor) as change:
        change.require(
            policy.may_approve(who_on(actor, change.on)),
            _("Only the Product Owner revokes go-live approval."),
        )
        if not reason:
            raise WorkflowError(_("Say why go-live approval is revoked."))
        approval = GoLiveApproval.objects.filter(release=change.on, revoked_at__isnull=True).first()
        if approval is None:
            raise WorkflowError(_("Go-live is not approved."))
        _revoke(change, approval, reason, override=change.override)


# --- templates, releases, people, contacts, share links ---------------------------------


def import_template(
    doc: md.Checklist, name: str, *, by: By, ip: str | None = None
) -> ChecklistTemplate:
    """Create the template, or replace one of the same name. Releases made from it keep
    their own copies."""
    actor = as_actor(by, ip)
    _require_manager(actor)
    with _changing(None, actor) as change:
        template, created = checklists.save_template(doc, name)
        change.audit(
            AuditAction.TEMPLATE_IMPORTED if created else AuditAction.TEMPLATE_REPLACED,
            name,
            {},
            {"summary": doc.summary()},
        )
        return template


def import_default_template(*, by: By) -> ChecklistTemplate:
    doc = checklists.read(checklists.DEFAULT_CHECKLIST)
    return import_template(doc, doc.title, by=by)


def create_release(
    template: ChecklistTemplate,
    *,
    version: str,
    title: str,
    by: By,
    window_start: datetime | None = None,
    window_end: datetime | None = None,
    changelog_url: str = "",
    two_person_rule: bool = True,
    ip: str | None = None,
) -> Release:
    """A release's checklist is a copy of its template, so later template edits never
    rewrite a release in progress."""
    actor = as_actor(by, ip)
    _require_manager(actor)
    release = Release(
        version=version.strip(),
        title=title.strip(),
        template=template,
        window_start=window_start,
        window_end=window_end,
        changelog_url=changelog_url.strip(),
        two_person_rule=two_person_rule,
    )
    try:
        # Uniqueness is left to the insert, which answers races and the plain case alike.
        release.full_clean(validate_unique=False)
    except ValidationError as error:
        raise WorkflowError(" ".join(error.messages)) from None
    try:
        with transaction.atomic():
            item_count = checklists.copy_into_release(template, release)
            with _changing(release.pk, actor) as change:
                change.audit(
                    AuditAction.RELEASE_CREATED,
                    release.version,
                    {},
                    {"template": template.name, "items": item_count},
                )
    except IntegrityError:
        raise WorkflowError(
            _("A release %(version)s already exists.") % {"version": release.version}
        ) from None
    return release


def assign(
    release: Release, *, role: str, user: User, by: By, ip: str | None = None
) -> Stakeholder:
    actor = as_actor(by, ip)
    _require_manager(actor, release)
    if role not in Role.values:
        raise WorkflowError(_("Unknown role %(role)s.") % {"role": role})
    with _changing(release.pk, actor) as change:
        stake, created = Stakeholder.objects.get_or_create(release=change.on, role=role, user=user)
        if created:
            change.audit(
                AuditAction.STAKEHOLDER_ASSIGNED,
                f"{role}: {user.get_username()}",
                {},
                _holding(user, role),
            )
        return stake


def _holding(user: User, role: str) -> dict[str, str]:
    return {"person": user.get_username(), "role": role}


def reassign(
    stake: Stakeholder, *, role: str, user: User, by: By, ip: str | None = None
) -> Stakeholder:
    """Change who holds a role, or which role someone holds (the admin edits a row)."""
    actor = as_actor(by, ip)
    if role not in Role.values:
        raise WorkflowError(_("Unknown role %(role)s.") % {"role": role})
    with _changing(stake.release_id, actor) as change:
        _require_manager(actor, change.on)
        locked = Stakeholder.objects.select_related("user").get(pk=stake.pk, release=change.on)
        before = _holding(locked.user, locked.role)
        if (locked.role, locked.user_id) == (role, user.pk):
            return locked
        if Stakeholder.objects.filter(release=change.on, role=role, user=user).exists():
            raise WorkflowError(
                _("%(user)s already holds the role %(role)s.")
                % {"user": user.get_username(), "role": Role(role).label}
            )
        locked.role, locked.user = role, user
        locked.save(update_fields=["role", "user"])
        change.audit(
            AuditAction.STAKEHOLDER_CHANGED,
            f"{role}: {user.get_username()}",
            before,
            _holding(user, role),
        )
        return locked


def unassign(release: Release, *, role: str, user: User, by: By, ip: str | None = None) -> None:
    actor = as_actor(by, ip)
    _require_manager(actor, release)
    with _changing(release.pk, actor) as change:
        deleted, _rows = Stakeholder.objects.filter(
            release=change.on, role=role, user=user
        ).delete()
        if deleted:
            change.audit(
                AuditAction.STAKEHOLDER_UNASSIGNED,
                f"{role}: {user.get_username()}",
                _holding(user, role),
                {},
            )


def update_contact(
    contact: EmergencyContact, *, by: By, name: str, phone: str, email: str, ip: str | None = None
) -> EmergencyContact:
    """What the people page edits: a contact's name, phone and email."""
    fields = {"name": name.strip(), "phone": phone.strip(), "email": email.strip()}
    return edit_contact(contact, fields=fields, by=by, ip=ip)


# Every field of a contact the audit trail shows before and after.
CONTACT_FIELDS = ("position", "role", "name", "phone", "email", "other")


def _contact_values(contact: EmergencyContact) -> dict[str, Any]:
    return {name: getattr(contact, name) for name in CONTACT_FIELDS}


def edit_contact(
    contact: EmergencyContact, *, fields: Mapping[str, Any], by: By, ip: str | None = None
) -> EmergencyContact:
    """Change any of a contact's fields (the people page, the admin); only what differs
    is saved and audited."""
    actor = as_actor(by, ip)
    with _changing(contact.release_id, actor) as change:
        change.require(
            policy.may_edit_contacts(who_on(actor, change.on)), _("Only staff can do this.")
        )
        locked = EmergencyContact.objects.get(pk=contact.pk, release=change.on)
        before = _contact_values(locked)
        for name, value in fields.items():
            if name in CONTACT_FIELDS:
                setattr(locked, name, value)
        if locked.phone or locked.email:
            # A placeholder cell stops counting once a real way to reach them is there.
            locked.other = "" if "other" not in fields else locked.other
        after = _contact_values(locked)
        if after == before:
            return locked
        try:
            locked.full_clean()
        except ValidationError as error:
            raise WorkflowError(" ".join(error.messages)) from None
        locked.save()
        changed = [name for name in CONTACT_FIELDS if before[name] != after[name]]
        change.audit(
            AuditAction.CONTACT_UPDATED,
            locked.role,
            {name: before[name] for name in changed},
            {name: after[name] for name in changed},
        )
        return locked


def add_contact(
    release: Release, *, fields: Mapping[str, Any], by: By, ip: str | None = None
) -> EmergencyContact:
    actor = as_actor(by, ip)
    with _changing(release.pk, actor) as change:
        change.require(
            policy.may_edit_contacts(who_on(actor, change.on)), _("Only staff can do this.")
        )
        contact = EmergencyContact(
            release=change.on, **{k: v for k, v in fields.items() if k in CONTACT_FIELDS}
        )
        try:
            contact.full_clean()
        except ValidationError as error:
            raise WorkflowError(" ".join(error.messages)) from None
        contact.save()
        change.audit(AuditAction.CONTACT_ADDED, contact.role, {}, _contact_values(contact))
        return contact


def remove_contact(contact: EmergencyContact, *, by: By, ip: str | None = None) -> None:
    actor = as_actor(by, ip)
    with _changing(contact.release_id, actor) as change:
        change.require(
            policy.may_edit_contacts(who_on(actor, change.on)), _("Only staff can do this.")
        )
        locked = EmergencyContact.objects.filter(pk=contact.pk, release=change.on).first()
        if locked is None:
            return
        before = _contact_values(locked)
        locked.delete()
        change.audit(AuditAction.CONTACT_REMOVED, before["role"], before, {})


# What the admin may change on a release itself; status, gate and revision change only
# through their own operations.
RELEASE_FIELDS = (
    "version",
    "title",
    "window_start",
    "window_end",
    "changelog_url",
    "two_person_rule",
)


def edit_release(
    release: Release, *, fields: Mapping[str, Any], by: By, ip: str | None = None
) -> Release:
    """Change a release's own fields (the admin): only those that differ, on the locked
    row, so a concurrent approval or status change is never overwritten."""
    actor = as_actor(by, ip)
    unknown = set(fields) - set(RELEASE_FIELDS)
    if unknown:
        raise WorkflowError(
            _("These fields cannot be changed here: %(fields)s.")
            % {"fields": ", ".join(sorted(unknown))}
        )
    try:
        with _changing(release.pk, actor) as change:
            _require_manager(actor, change.on)
            locked = change.on
            before = {name: getattr(locked, name) for name in fields}
            for name, value in fields.items():
                setattr(locked, name, value.strip() if isinstance(value, str) else value)
            after = {name: getattr(locked, name) for name in fields}
            changed = [name for name in fields if before[name] != after[name]]
            if not changed:
                return locked
            try:
                locked.full_clean(validate_unique=False)
            except ValidationError as error:
                raise WorkflowError(" ".join(error.messages)) from None
            Release.objects.filter(pk=locked.pk).update(**{name: after[name] for name in changed})
            change.audit(
                AuditAction.RELEASE_EDITED,
                locked.version,
                {name: _plain(before[name]) for name in changed},
                {name: _plain(after[name]) for name in changed},
            )
            return locked
    except IntegrityError:
        raise WorkflowError(
            _("A release %(version)s already exists.") % {"version": fields.get("version", "")}
        ) from None


def _plain(value: Any) -> Any:
    """A value as the audit trail's JSON keeps it."""
    return value.isoformat() if isinstance(value, datetime) else value


def record_account_change(
    release: Release,
    *,
    user: User,
    before: Mapping[str, Any],
    after: Mapping[str, Any],
    by: By,
) -> None:
    """An account lost what let it follow this release (deactivated, no longer staff):
    audited here, and a new revision, at which open pages re-check who may follow."""
    actor = as_actor(by)
    _require_manager(actor, release)
    with _changing(release.pk, actor) as change:
        change.audit(AuditAction.ACCOUNT_CHANGED, user.get_username(), dict(before), dict(after))


def create_share_link(release: Release, *, label: str, by: By, ip: str | None = None) -> str:
    """A new read-only link to the status page; the token is returned once and only its
    hash is kept."""
    actor = as_actor(by, ip)
    _require_manager(actor, release)
    token = secrets.token_urlsafe(32)
    with _changing(release.pk, actor, shown=False) as change:
        ShareLink.objects.create(
            release=change.on,
            token_hash=ShareLink.hash_token(token),
            label=label,
            created_by=actor.user if isinstance(actor, Person) else None,
        )
        change.audit(AuditAction.SHARE_LINK_CREATED, label)
    return token


def revoke_share_link(release: Release, link: ShareLink, *, by: By, ip: str | None = None) -> bool:
    """Whether this call revoked the link (False when it was already revoked)."""
    actor = as_actor(by, ip)
    _require_manager(actor, release)
    # A new revision, although no page shows links: it is what makes every web process
    # re-check who may follow, and end the streams this link opened.
    with _changing(release.pk, actor) as change:
        # Only the request that flips revoked_at writes the audit event.
        revoked = ShareLink.objects.filter(
            pk=link.pk, release=change.on, revoked_at__isnull=True
        ).update(revoked_at=timezone.now())
        if revoked:
            change.audit(AuditAction.SHARE_LINK_REVOKED, link.label)
    return bool(revoked)


def set_status(release: Release, *, status: str, by: By, ip: str | None = None) -> Release:
    actor = as_actor(by, ip)
    if status not in ReleaseStatus.values:
        raise WorkflowError(_("Unknown status %(status)s.") % {"status": status})
    with _changing(release.pk, actor) as change:
        change.require(
            policy.may_set_status(who_on(actor, change.on), status=status),
            _("Only staff can do this."),
        )
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
            AuditAction.RELEASE_STATUS, change.on.version, {"status": current}, {"status": status}
        )
        return change.on


def link_checks(
    release: Release,
    *,
    checks_of: Mapping[int, Sequence[str]],
    summary: dict[str, Any],
    by: By,
    ip: str | None = None,
) -> None:
    """Set which automated checks verify each item (by item id), as a checks file says;
    items not named keep theirs. One audit event carries what changed."""
    actor = as_actor(by, ip)
    _require_manager(actor, release)
    with _changing(release.pk, actor) as change:
        items = {i.pk: i for i in change.on.items.filter(pk__in=list(checks_of))}
        changed: dict[str, dict[str, list[str]]] = {}
        for item_id, names in checks_of.items():
            entry = items[item_id]
            wanted = list(dict.fromkeys(names))
            if wanted == entry.checks:
                continue
            changed[entry.text[:80]] = {"before": entry.checks, "after": wanted}
            entry.checks = wanted
            # Results of checks the item no longer names stop counting for it.
            entry.check_results = {
                name: result for name, result in entry.check_results.items() if name in wanted
            }
            entry.revision = change.on.revision + 1
            entry.save(update_fields=["checks", "check_results", "revision"])
        if changed or any(summary.get(key) for key in ("created", "updated", "retired")):
            change.audit(
                AuditAction.CHECKS_LINKED,
                str(summary.get("source", ""))[:500],
                {},
                {**summary, "items": changed},
            )


@contextmanager
def managing(release: Release | None, *, by: By, ip: str | None = None) -> Iterator[_Change]:
    """A staff change to rows that apps built on releases keep about one, or with None
    about all of them (the checks app's pipeline tokens): under the release lock if there
    is one, audited through `change.audit`, and not shown on the board, so no new
    revision."""
    actor = as_actor(by, ip)
    _require_manager(actor, release)
    with _changing(release.pk if release is not None else None, actor, shown=False) as change:
        yield change
