"""Check results and pipeline evidence: what machines say about items.

A machine's verdict settles an item unless a person settled it; then the failure goes
beside their decision, and an override given over an older failure lapses.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from django.utils import timezone

from ..actors import CheckActor, Person, PipelineActor
from ..models import (
    PIPELINE_FAILURE,
    AuditAction,
    CheckOutcome,
    CheckReason,
    ItemState,
    Release,
    ReleaseItem,
)
from .approval import _revoke_if_gate_changed
from .change import (
    By,
    _Change,
    _changing,
    _require_manager,
    _validate_evidence,
    as_actor,
    trimmed,
)
from .items import (
    _NO_OVERRIDE,
    _apply_item_change,
    _locked_item,
    _override_of,
    _release_id_of,
    _require_may_change,
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
    failure = "" if passed else trimmed(detail)[:2000] or PIPELINE_FAILURE
    release_id, item_id = _release_id_of(item)
    with _changing(release_id, by) as change:
        locked = _locked_item(change, item_id)
        evidence = _validate_evidence(url) if url else locked.evidence_url
        return _machine_verdict(
            change,
            locked,
            state=ItemState.DONE if passed else ItemState.FAILED,
            failure=failure,
            evidence=evidence,
            action=AuditAction.PIPELINE_PASSED if passed else AuditAction.PIPELINE_FAILED,
        )


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
            found_before = _found_failure(entry)
            entry.checks = wanted
            # Results of checks the item no longer names stop counting for it.
            entry.check_results = {
                name: result for name, result in entry.check_results.items() if name in wanted
            }
            entry.revision = change.on.revision + 1
            entry.save(update_fields=["checks", "check_results", "revision"])
            _withdraw_unlinked_failure(change, entry, found_before)
        if changed or any(summary.get(key) for key in ("created", "updated", "retired")):
            change.audit(
                AuditAction.CHECKS_LINKED,
                str(summary.get("source", ""))[:500],
                {},
                {**summary, "items": changed},
            )


def _found_failure(item: ReleaseItem) -> str:
    """What the item's linked checks find failing, in English as it is stored."""
    verdict = item.checks_verdict()
    return verdict.failure(english=True) if verdict.failed else ""


def _withdraw_unlinked_failure(change: _Change, item: ReleaseItem, found_before: str) -> None:
    """A failure that came from checks the item no longer names stops counting, as their
    results do: a failed item goes back to pending (unlinking a check never ticks an
    item, even when the checks it keeps pass), and a failure kept beside a person's
    decision goes, its override with it. What another of its checks still finds stays.
    A pipeline's failure, which no check found, is left as it is."""
    found_now = _found_failure(item)
    if not found_before or found_now == found_before:
        return
    held = item.reason if item.state == ItemState.FAILED else item.check_failure
    if held != found_before:
        return
    _machine_verdict(
        change,
        item,
        state=ItemState.FAILED if found_now else ItemState.PENDING,
        failure=found_now,
        evidence=item.evidence_url,
        action=AuditAction.CHECK_FAILED if found_now else AuditAction.CHECK_UNLINKED,
    )
