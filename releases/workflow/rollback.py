"""The deploy and its rollback: the deploy's start and finish, and a declared rollback
worked through its plan until it is closed with its cause.

Statuses: the deploy starts on an approved release (which stays Go-live approved
while it runs); finishing it with success makes the release Deployed, with failure
leaves it approved, for a rollback or another attempt. Declaring a rollback (on a
deployed release, or on one whose deploy has started) makes it Rolled back and ends
its approval. The rollback is then worked on: steps ticked, marked mitigated, resolved
(every step done, until one is reopened, or declared resolved with a reason), and
closed with its cause, which is its final state. Only then may the release move on
(set_status refuses to leave Rolled back while a rollback is open): back to In progress
for a new attempt, which needs a new approval.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

from django.core.exceptions import PermissionDenied, ValidationError
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_noop

from .. import markdown as md
from .. import policy, rendering
from ..actors import Actor, who_on
from ..checklists import plan_step, step_columns, translated
from ..models import (
    DEFAULT_ROLLBACK_HEADING,
    AuditAction,
    Deployment,
    DeployResult,
    Release,
    ReleaseStatus,
    Role,
    Rollback,
    RollbackSeverity,
    RollbackStep,
    RollbackStepRecord,
)
from .approval import _revoke
from .change import (
    By,
    Conflict,
    WorkflowError,
    _Change,
    _changing,
    _in_english,
    _validate_evidence,
    as_actor,
    refuse_unseen_note,
    trimmed,
    visible_text,
)

REASON_MAX = 2000
NOTE_MAX = 5000
# Stored in English, shown in the reader's language (models.reason_text).
ALL_STEPS_DONE = gettext_noop("every step of the plan is done")
MITIGATED_BY_STEP = gettext_noop("step %(n)s mitigated it: %(text)s")
# Who may not record these, told in the reader's language; their confirmation pages
# refuse with the same words before anything is typed.
DEPLOY_REFUSAL = gettext_noop("Only DevOps or the Product Owner record the deploy.")
DECLARE_REFUSAL = gettext_noop("Only DevOps or the Product Owner declare a rollback.")
MITIGATE_REFUSAL = gettext_noop("Only DevOps or the Product Owner mark the rollback mitigated.")
RESOLVE_REFUSAL = gettext_noop("Only DevOps or the Product Owner resolve the rollback.")
CLOSE_REFUSAL = gettext_noop("Only DevOps or the Product Owner close the rollback.")


def latest_deployment(release: Release) -> Deployment | None:
    return release.deployments.order_by("-started_at", "-pk").first()


def latest_rollback(release: Release) -> Rollback | None:
    return release.rollbacks.order_by("-declared_at", "-pk").first()


def _reason(text: str, what: str, missing: str) -> str:
    text = visible_text(trimmed(text), what)
    if not text:
        raise WorkflowError(missing)
    if len(text) > REASON_MAX:
        raise WorkflowError(
            _("%(what)s is longer than %(limit)d characters.") % {"what": what, "limit": REASON_MAX}
        )
    return text


def _require(change: _Change, access: policy.Access, refusal: str) -> None:
    # Not change.require: a rolled-back release is closed to its checklist, but its
    # rollback is not, and these rules say so themselves.
    if not access:
        raise PermissionDenied(refusal)
    if access is policy.Access.OVERRIDE:
        change.override = True


@contextmanager
def _changing_allowed(
    release: Release,
    may: Callable[[policy.Who], policy.Access],
    refusal: str,
    *,
    by: By,
    ip: str | None,
) -> Iterator[_Change]:
    """A change to the release by someone the rule `may` lets make it."""
    actor = as_actor(by, ip)
    with _changing(release.pk, actor) as change:
        _require(change, may(who_on(actor, change.on)), refusal)
        yield change


def _recording_deploy(
    release: Release, *, by: By, ip: str | None
) -> AbstractContextManager[_Change]:
    return _changing_allowed(
        release,
        policy.may_record_deploy,
        _(DEPLOY_REFUSAL),
        by=by,
        ip=ip,
    )


def _finish(
    change: _Change, deployment: Deployment, *, result: str, reason: str, at: datetime
) -> None:
    deployment.finished_at = at
    deployment.finished_by_label = change.actor.label[:200]
    deployment.finish_reason = reason
    deployment.result = result
    deployment.save(update_fields=["finished_at", "finished_by_label", "finish_reason", "result"])


def start_deploy(release: Release, *, by: By, reason: str, ip: str | None = None) -> Deployment:
    with _recording_deploy(release, by=by, ip=ip) as change:
        reason = _reason(reason, _("The reason"), _("Say why the deploy starts now."))
        if change.on.status != ReleaseStatus.APPROVED:
            raise WorkflowError(_("The deploy starts only once go-live is approved."))
        running = latest_deployment(change.on)
        if running is not None and running.finished_at is None:
            raise WorkflowError(_("The deploy has already started."))
        deployment = Deployment.objects.create(
            release=change.on, started_by_label=change.actor.label[:200], start_reason=reason
        )
        change.audit(
            AuditAction.DEPLOY_STARTED,
            change.on.version,
            {},
            {"started_at": deployment.started_at.isoformat(), "reason": reason},
        )
        return deployment


def finish_deploy(
    release: Release, *, by: By, result: str, reason: str, ip: str | None = None
) -> Deployment:
    with _recording_deploy(release, by=by, ip=ip) as change:
        if result not in DeployResult.values:
            raise WorkflowError(_("Say whether the deploy succeeded or failed."))
        reason = _reason(reason, _("The reason"), _("Say how the deploy went."))
        deployment = latest_deployment(change.on)
        if deployment is None or deployment.finished_at is not None:
            raise WorkflowError(_("No deploy is under way: record its start first."))
        if change.on.status != ReleaseStatus.APPROVED:
            raise WorkflowError(_("The deploy can only finish on an approved release."))
        finished_at = timezone.now()
        _finish(change, deployment, result=result, reason=reason, at=finished_at)
        before = change.on.status
        if result == DeployResult.SUCCESS:
            # The approval covered this go-live: the deployed release keeps it.
            change.on.status = ReleaseStatus.DEPLOYED
        change.audit(
            AuditAction.DEPLOY_FINISHED,
            change.on.version,
            {"status": before},
            {
                "status": change.on.status,
                "result": result,
                "finished_at": finished_at.isoformat(),
                "reason": reason,
            },
        )
        return deployment


def declare_rollback(
    release: Release,
    *,
    by: By,
    reason: str,
    severity: str,
    detected_at: datetime | None = None,
    ip: str | None = None,
) -> Rollback:
    with _changing_allowed(
        release,
        policy.may_declare_rollback,
        _(DECLARE_REFUSAL),
        by=by,
        ip=ip,
    ) as change:
        current = latest_rollback(change.on)
        if current is not None and current.is_open:
            raise WorkflowError(_("A rollback is already declared on this release."))
        reason = _reason(reason, _("The reason"), _("Say why the release is rolled back."))
        if severity not in RollbackSeverity.values:
            raise WorkflowError(_("Choose the severity of the problem."))
        now = timezone.now()
        if detected_at is not None and detected_at > now:
            raise WorkflowError(_("The problem cannot have been detected in the future."))
        deployment = latest_deployment(change.on)
        deploy_started = change.on.status == ReleaseStatus.APPROVED and deployment is not None
        if change.on.status != ReleaseStatus.DEPLOYED and not deploy_started:
            raise WorkflowError(
                _("Only a deployed release, or one whose deploy has started, is rolled back.")
            )
        if deployment is not None and deployment.finished_at is None:
            _finish(change, deployment, result=DeployResult.FAILURE, reason=reason, at=now)
        before = change.on.status
        approval = change.on.active_approval()
        if approval is not None:
            _revoke(change, approval, gettext_noop("a rollback was declared"))
        rollback = Rollback.objects.create(
            release=change.on,
            deployment=deployment,
            severity=severity,
            reason=reason,
            detected_at=detected_at,
            declared_at=now,
            declared_by_label=change.actor.label[:200],
        )
        RollbackStepRecord.objects.bulk_create(
            [
                RollbackStepRecord(rollback=rollback, step=step)
                for step in change.on.rollback_steps.order_by("position")
            ]
        )
        change.on.status = ReleaseStatus.ROLLED_BACK
        change.audit(
            AuditAction.ROLLBACK_DECLARED,
            change.on.version,
            {"status": before},
            {
                "status": ReleaseStatus.ROLLED_BACK,
                "severity": severity,
                "reason": reason,
                **({"detected_at": detected_at.isoformat()} if detected_at else {}),
            },
        )
        return rollback


def _open_rollback(change: _Change) -> Rollback:
    rollback = latest_rollback(change.on)
    if rollback is None:
        raise WorkflowError(_("No rollback is declared on this release."))
    if not rollback.is_open:
        raise WorkflowError(_("The rollback is closed: it takes no more changes."))
    return rollback


@contextmanager
def _working_rollback(
    release: Release, refusal: str, *, by: By, ip: str | None
) -> Iterator[tuple[_Change, Rollback]]:
    """A change to the release's open rollback, which DevOps or the Product Owner, who
    declare it, work through."""
    with _changing_allowed(release, policy.may_declare_rollback, refusal, by=by, ip=ip) as change:
        yield change, _open_rollback(change)


def _step_record(change: _Change, step: RollbackStep) -> RollbackStepRecord:
    rollback = _open_rollback(change)
    _require(
        change,
        policy.may_tick_rollback_step(who_on(change.actor, change.on), owner_role=step.owner_role),
        _("Only the step's owner ticks it."),
    )
    record, _created = RollbackStepRecord.objects.get_or_create(rollback=rollback, step=step)
    return record


def _resolve(change: _Change, rollback: Rollback, reason: str, *, system: bool) -> None:
    rollback.resolved_at = timezone.now()
    rollback.resolved_by_label = change.actor.label[:200]
    rollback.resolved_reason = reason
    rollback.save(update_fields=["resolved_at", "resolved_by_label", "resolved_reason"])
    shown = _in_english(reason, {}) if system else reason
    change.audit(AuditAction.ROLLBACK_RESOLVED, change.on.version, {}, {"reason": shown})


def _unresolve(change: _Change, rollback: Rollback, reopened: RollbackStep) -> None:
    """A rollback resolved because every step was done is no longer resolved once a step
    is reopened, or it could be closed as if its plan were done. A resolution a person
    declared with their own reason was given with steps left, and stands."""
    rollback.resolved_at = None
    rollback.resolved_by_label = ""
    rollback.resolved_reason = ""
    rollback.save(update_fields=["resolved_at", "resolved_by_label", "resolved_reason"])
    change.audit(
        AuditAction.ROLLBACK_UNRESOLVED,
        change.on.version,
        {"reason": ALL_STEPS_DONE},
        {"reason": "", "step": reopened.position + 1},
    )


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def step_version(record: RollbackStepRecord | None) -> int:
    """The version of a step's record that its forms carry, as items carry theirs: a
    change based on another one is stale. Every change to a record stamps its
    `changed_at` under the release's lock, later than the stamp before (_stamp), so that
    stamp (in microseconds) is the version; 0 for a record nobody has changed yet."""
    if record is None or record.changed_at is None:
        return 0
    return (record.changed_at - _EPOCH) // timedelta(microseconds=1)


class StaleStep(Conflict):
    """A change based on a version the step had, but has no longer. Its message is the
    board's; `said` holds what it tells, for a caller that words it its own way."""

    def __init__(self, record: RollbackStepRecord, sent: int) -> None:
        self.said = {
            "n": record.step.position + 1,
            "who": record.changed_by_label or _("someone else"),
            "state": _("done") if record.done else _("pending"),
            "version": sent,
            "current": step_version(record),
        }
        super().__init__(
            _(
                "Step %(n)d was changed by %(who)s since you loaded the page; it is now "
                "%(state)s. Review it and try again."
            )
            % self.said
        )


def _require_fresh_step(record: RollbackStepRecord, expected_version: int | None) -> None:
    if expected_version is None:
        return
    current = step_version(record)
    # Versions only grow (_stamp): a higher one was never the step's.
    if expected_version > current:
        raise WorkflowError(
            _("Step %(n)d has never had version %(version)d; its version is %(current)d.")
            % {"n": record.step.position + 1, "version": expected_version, "current": current}
        )
    if expected_version != current:
        raise StaleStep(record, expected_version)


def _stamp(record: RollbackStepRecord, actor: Actor, now: datetime) -> None:
    """Marks the record changed by `actor` now, its version growing even when this
    host's clock is behind the one that stamped it last."""
    last = record.changed_at
    record.changed_at = now if last is None else max(now, last + timedelta(microseconds=1))
    record.changed_by_label = actor.label[:200]


def tick_rollback_step(
    step: RollbackStep,
    *,
    by: By,
    done: bool = True,
    mitigates: bool = False,
    expected_version: int | None = None,
    ip: str | None = None,
) -> RollbackStepRecord:
    """Tick (or untick) a step of the declared rollback. `mitigates`: the person says
    this step mitigated the impact, which stamps the rollback mitigated. The rollback is
    resolved once every step is done, and no longer once one of them is reopened.
    `expected_version`: step_version as the page
    showed it; Conflict when the step changed since (None: as it is now)."""
    actor = as_actor(by, ip)
    with _changing(step.release_id, actor) as change:
        record = _step_record(change, step)
        _require_fresh_step(record, expected_version)
        rollback = record.rollback
        if record.done == done:
            return record
        now = timezone.now()
        record.done_at = now if done else None
        record.done_by_label = actor.label[:200] if done else ""
        _stamp(record, actor, now)
        record.save(update_fields=["done_at", "done_by_label", "changed_at", "changed_by_label"])
        change.audit(
            AuditAction.ROLLBACK_STEP_DONE if done else AuditAction.ROLLBACK_STEP_REOPENED,
            str(step)[:500],
            {"done": not done},
            {"done": done, "step": step.position + 1},
        )
        if done and mitigates and rollback.mitigated_at is None:
            said = {"n": str(step.position + 1), "text": rendering.plain_text(str(step))}
            _mitigate(change, rollback, _in_english(MITIGATED_BY_STEP, said))
        if (
            done
            and rollback.resolved_at is None
            and not rollback.records.filter(done_at__isnull=True).exists()
        ):
            _resolve(change, rollback, ALL_STEPS_DONE, system=True)
        if not done and rollback.resolved_reason == ALL_STEPS_DONE:
            _unresolve(change, rollback, step)
        return record


def annotate_rollback_step(
    step: RollbackStep,
    *,
    by: By,
    note: str | None = None,
    evidence_url: str | None = None,
    expected_version: int | None = None,
    ip: str | None = None,
) -> RollbackStepRecord:
    """Change a step's note and/or evidence link. `expected_version`: as for
    tick_rollback_step."""
    actor = as_actor(by, ip)
    with _changing(step.release_id, actor) as change:
        record = _step_record(change, step)
        _require_fresh_step(record, expected_version)
        fields: dict[str, str] = {}
        if note is not None:
            refuse_unseen_note(note)
            note = visible_text(trimmed(note), _("The note"))
            if len(note) > NOTE_MAX:
                raise WorkflowError(
                    _("%(what)s is longer than %(limit)d characters.")
                    % {"what": _("The note"), "limit": NOTE_MAX}
                )
            fields["note"] = note
        if evidence_url is not None:
            fields["evidence_url"] = _validate_evidence(evidence_url)
        before = {name: getattr(record, name) for name in fields}
        if before == fields:
            return record
        for name, value in fields.items():
            setattr(record, name, value)
        _stamp(record, actor, timezone.now())
        record.save(update_fields=[*fields, "changed_at", "changed_by_label"])
        change.audit(AuditAction.ROLLBACK_STEP_ANNOTATED, str(step)[:500], before, fields)
        return record


def _mitigate(change: _Change, rollback: Rollback, reason: str) -> None:
    rollback.mitigated_at = timezone.now()
    rollback.mitigated_by_label = change.actor.label[:200]
    rollback.mitigated_reason = reason
    rollback.save(update_fields=["mitigated_at", "mitigated_by_label", "mitigated_reason"])
    change.audit(AuditAction.ROLLBACK_MITIGATED, change.on.version, {}, {"reason": reason})


def mitigate_rollback(release: Release, *, by: By, reason: str, ip: str | None = None) -> Rollback:
    with _working_rollback(release, _(MITIGATE_REFUSAL), by=by, ip=ip) as (change, rollback):
        if rollback.mitigated_at is not None:
            raise WorkflowError(_("The rollback is already marked mitigated."))
        _mitigate(change, rollback, _reason(reason, _("The reason"), _("Say what mitigated it.")))
        return rollback


def resolve_rollback(release: Release, *, by: By, reason: str, ip: str | None = None) -> Rollback:
    with _working_rollback(release, _(RESOLVE_REFUSAL), by=by, ip=ip) as (change, rollback):
        if rollback.resolved_at is not None:
            raise WorkflowError(_("The rollback is already resolved."))
        reason = _reason(
            reason, _("The reason"), _("Say why the rollback is resolved with steps left.")
        )
        _resolve(change, rollback, reason, system=False)
        return rollback


def close_rollback(release: Release, *, by: By, cause: str, ip: str | None = None) -> Rollback:
    with _working_rollback(release, _(CLOSE_REFUSAL), by=by, ip=ip) as (change, rollback):
        cause = _reason(
            cause, _("The cause"), _("Write the cause of the rollback before closing it.")
        )
        if rollback.resolved_at is None:
            raise WorkflowError(
                _(
                    "The rollback is not resolved: tick every step, or declare it resolved "
                    "with a reason, before closing it."
                )
            )
        rollback.cause = cause
        rollback.closed_at = timezone.now()
        rollback.closed_by_label = change.actor.label[:200]
        rollback.save(update_fields=["cause", "closed_at", "closed_by_label"])
        change.audit(
            AuditAction.ROLLBACK_CLOSED,
            change.on.version,
            {},
            {"cause": cause, "closed_at": rollback.closed_at.isoformat()},
        )
        return rollback


def rollback_plan(release: Release) -> md.RollbackPlan:
    """The release's rollback plan as its editor shows it."""
    return md.RollbackPlan(
        intro=release.rollback_intro,
        steps=tuple(plan_step(step) for step in release.rollback_steps.order_by("position")),
    )


def plan_version(release: Release) -> str:
    """A fingerprint of the rollback plan as an editor loaded it: a save based on
    another one is stale. Only the plan counts, so a tick elsewhere on the release does
    not make the editor's work stale."""
    text = md.render_rollback_plan(rollback_plan(release))
    return hashlib.sha256(text.encode()).hexdigest()


def plan_error_text(error: md.ChecklistError) -> str:
    """A plan the reader refused, as the person who typed it reads it."""
    problem = translated(error.text)
    if error.line is None:
        return _("The rollback plan cannot be read: %(problem)s") % {"problem": problem}
    return _("Line %(line)d of the rollback plan: %(problem)s") % {
        "line": error.line,
        "problem": problem,
    }


def refuse_plan_edit_during_rollback(release: Release) -> None:
    """Steps of an open rollback are being ticked: rewriting them would change what
    people are ticking under their hands."""
    rollback = latest_rollback(release)
    if rollback is not None and rollback.is_open:
        raise WorkflowError(
            _(
                "A rollback is in progress and its steps are being ticked: the plan can be "
                "edited again once the rollback is closed."
            )
        )


def _step_row(step: md.RollbackStep, row: RollbackStep, position: int) -> RollbackStep:
    row.position = position
    for name, value in step_columns(step).items():
        setattr(row, name, value)
    return row


def check_storable(plan: md.RollbackPlan) -> None:
    """WorkflowError naming the step if a part of it is too long for its column (a code
    block's language): the database would refuse it with an error nobody can read."""
    for position, step in enumerate(plan.steps):
        try:
            _step_row(step, RollbackStep(), position).full_clean(exclude=["release"])
        except ValidationError as error:
            problems = "; ".join(" ".join(messages) for messages in error.message_dict.values())
            raise WorkflowError(
                _("Step %(number)d of the rollback plan: %(problems)s")
                % {"number": position + 1, "problems": problems}
            ) from None


def _plan_values(plan: md.RollbackPlan) -> dict[str, Any]:
    return {
        "intro": plan.intro,
        "steps": [
            {
                "text": step.text,
                "commands": step.commands,
                "lang": step.lang,
                "owner": step.owner or Role.DEVOPS,
            }
            for step in plan.steps
        ],
    }


def edit_rollback_plan(
    release: Release, *, markdown: str, based_on: str, by: By, ip: str | None = None
) -> md.RollbackPlan:
    """Replace the release's rollback plan with the one written in `markdown` (its intro
    and numbered steps, each with its owner=), read by markdown.parse_rollback_plan.
    `based_on`: plan_version as the editor loaded it; Conflict when someone saved the
    plan since. Refused while a rollback is open.

    Steps are rewritten in place, by position, so a past rollback's record of a step the
    edit leaves alone still names it; a step holding such a record is not deleted."""
    actor = as_actor(by, ip)
    with _changing(release.pk, actor) as change:
        change.require(
            policy.may_edit_release_plan(who_on(actor, change.on)), _("Only staff can do this.")
        )
        refuse_plan_edit_during_rollback(change.on)
        if plan_version(change.on) != based_on:
            raise Conflict(_("Someone else saved the rollback plan while you were editing it."))
        try:
            plan = md.parse_rollback_plan(markdown)
        except md.ChecklistError as error:
            raise WorkflowError(plan_error_text(error)) from None
        before = rollback_plan(change.on)
        if plan == before:
            return plan
        check_storable(plan)
        rows = list(change.on.rollback_steps.order_by("position"))
        dropped = rows[len(plan.steps) :]
        recorded = RollbackStepRecord.objects.filter(step__in=dropped).order_by("-step__position")
        if (kept_record := recorded.select_related("step").first()) is not None:
            # Deleting the step would delete how it went in an earlier rollback.
            raise WorkflowError(
                _(
                    "Step %(number)d holds the record of an earlier rollback: keep at least "
                    "%(count)d steps, and reword the ones you no longer need."
                )
                % {"number": kept_record.step.position + 1, "count": kept_record.step.position + 1}
            )
        for position, step in enumerate(plan.steps):
            row = rows[position] if position < len(rows) else RollbackStep(release=change.on)
            _step_row(step, row, position).save()
        RollbackStep.objects.filter(pk__in=[row.pk for row in rows[len(plan.steps) :]]).delete()
        fields: dict[str, str] = {"rollback_intro": plan.intro}
        if not change.on.rollback_heading:
            # Export writes the plan under its heading; a release made from a template
            # without a plan had none.
            fields["rollback_heading"] = DEFAULT_ROLLBACK_HEADING
        Release.objects.filter(pk=change.on.pk).update(**fields)
        for name, value in fields.items():
            setattr(change.on, name, value)
        change.audit(
            AuditAction.ROLLBACK_PLAN_EDITED,
            change.on.version,
            _plan_values(before),
            _plan_values(plan),
        )
        return plan
