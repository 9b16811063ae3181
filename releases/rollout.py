"""The read side of the deploy and its rollback: what the board and the status page
show in their rollout panel (templates/releases/_rollout.html).

Elapsed times are rendered with the page, which is shared until the release's next
revision: each says when it was counted, and rollout.js counts on from the
`datetime` beside it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.utils import timezone
from django.utils.safestring import SafeString
from django.utils.translation import gettext as _

from . import policy, rendering
from .models import (
    Deployment,
    DeployResult,
    Release,
    ReleaseStatus,
    Role,
    Rollback,
    RollbackSeverity,
    RollbackStep,
    RollbackStepRecord,
    reason_text,
)
from .timeline import by_role, reason_shown
from .workflow.rollback import latest_deployment, latest_rollback, step_version


@dataclass(frozen=True)
class RollbackView:
    """A step of the rollback plan as the plan's panel shows it."""

    step: RollbackStep

    @property
    def text_html(self) -> SafeString:
        return rendering.block_html(self.step.text)

    @property
    def key(self) -> str:
        return str(self.step.pk)

    @property
    def number(self) -> str:
        return str(self.step.position + 1)


def elapsed(since: datetime, until: datetime) -> str:
    """Hours and minutes, as a clock reads them: "1:05"."""
    minutes = max(0, int((until - since) / timedelta(minutes=1)))
    return f"{minutes // 60}:{minutes % 60:02d}"


@dataclass(frozen=True)
class StepShown(RollbackView):
    """A step of the rollback under way: how it went, and whether the reader ticks it."""

    record: RollbackStepRecord | None
    can_tick: bool
    # Who ticked it, as this reader reads them.
    done_by: str = ""
    # Its note and evidence link, which a link hiding personal details leaves out: they
    # are the team's words, which may name anyone.
    shows_notes: bool = True
    # What the reader typed in the step's note or evidence form and had refused as
    # stale, shown again in it (by field name) rather than lost.
    typed: Mapping[str, str] = field(default_factory=dict)

    @property
    def owner_label(self) -> str:
        return str(Role(self.step.owner_role).label)

    @property
    def done(self) -> bool:
        return self.record is not None and self.record.done

    @property
    def version(self) -> int:
        """What the step's forms carry: a change sent from an older one is stale."""
        return step_version(self.record)


@dataclass(frozen=True)
class Action:
    """A link to an action's confirmation page."""

    name: str
    label: str
    warn: bool = False


@dataclass
class Rollout:
    deployment: Deployment | None
    rollback: Rollback | None
    steps: list[StepShown]
    actions: list[Action]
    # When the elapsed times below were counted.
    now: datetime
    # Who stamped each of the deploy's and the rollback's moments, as this reader reads
    # them: "started", "finished", "declared", "mitigated", "resolved", "closed".
    by: Mapping[str, str] = field(default_factory=dict)

    @property
    def deploy_running(self) -> bool:
        return self.deployment is not None and self.deployment.finished_at is None

    @property
    def deploy_elapsed(self) -> str:
        if self.deployment is None:
            return ""
        return elapsed(self.deployment.started_at, self.deployment.finished_at or self.now)

    @property
    def deploy_failed(self) -> bool:
        return self.deployment is not None and self.deployment.result == DeployResult.FAILURE

    @property
    def result_label(self) -> str:
        if self.deployment is None or not self.deployment.result:
            return ""
        return str(DeployResult(self.deployment.result).label)

    @property
    def severity_label(self) -> str:
        if self.rollback is None:
            return ""
        return str(RollbackSeverity(self.rollback.severity).label)

    @property
    def rollback_elapsed(self) -> str:
        if self.rollback is None:
            return ""
        return elapsed(self.rollback.declared_at, self.rollback.resolved_at or self.now)

    @property
    def resolved_reason(self) -> str:
        # "every step of the plan is done" is stored in English, shown in the reader's.
        return reason_text(self.rollback.resolved_reason, {}) if self.rollback else ""

    @property
    def mitigated_reason(self) -> str:
        # So is "step 1 mitigated it: …", with its step in.
        return reason_shown(self.rollback.mitigated_reason) if self.rollback else ""

    @property
    def steps_done(self) -> int:
        return sum(1 for shown in self.steps if shown.done)

    @property
    def shown(self) -> bool:
        return bool(self.deployment or self.rollback or self.actions)


def _actions(release: Release, who: policy.Who, rollout: Rollout) -> list[Action]:
    if who.read_only:
        return []
    deployer = bool(policy.may_record_deploy(who))
    declarer = bool(policy.may_declare_rollback(who))
    actions: list[Action] = []
    rollback = rollout.rollback
    if deployer and release.status == ReleaseStatus.APPROVED:
        if rollout.deploy_running:
            actions.append(Action("deploy-finish", _("Record the deploy finished")))
        else:
            actions.append(Action("deploy-start", _("Record the deploy started")))
    open_rollback = rollback is not None and rollback.is_open
    can_roll_back = release.status == ReleaseStatus.DEPLOYED or (
        release.status == ReleaseStatus.APPROVED and rollout.deployment is not None
    )
    if declarer and not open_rollback and can_roll_back:
        actions.append(Action("rollback", _("Declare a rollback"), warn=True))
    if declarer and open_rollback and rollback is not None:
        if rollback.mitigated_at is None:
            actions.append(Action("mitigate", _("Mark the impact mitigated")))
        if rollback.resolved_at is None:
            actions.append(Action("resolve", _("Declare the rollback resolved")))
        else:
            actions.append(Action("close", _("Close the rollback with its cause")))
    return actions


@dataclass(frozen=True)
class Latest:
    """The latest deploy and rollback of a release, and what each step of that rollback
    recorded: read once for every viewer a revision is rendered for."""

    deployment: Deployment | None
    rollback: Rollback | None
    records: dict[int, RollbackStepRecord]


def latest_of(release: Release) -> Latest:
    """In three queries."""
    deployment = latest_deployment(release)
    rollback = latest_rollback(release)
    records: dict[int, RollbackStepRecord] = {}
    if rollback is not None:
        records = {record.step_id: record for record in rollback.records.all()}
    return Latest(deployment, rollback, records)


def _stamped_by(latest: Latest) -> dict[str, str]:
    deployment, rollback = latest.deployment, latest.rollback
    return {
        "started": deployment.started_by_label if deployment else "",
        "finished": deployment.finished_by_label if deployment else "",
        "declared": rollback.declared_by_label if rollback else "",
        "mitigated": rollback.mitigated_by_label if rollback else "",
        "resolved": rollback.resolved_by_label if rollback else "",
        "closed": rollback.closed_by_label if rollback else "",
    }


def rollout_context(
    release: Release,
    who: policy.Who,
    latest: Latest,
    *,
    hides_personal: bool = False,
    shared: bool = False,
) -> Rollout:
    """The rollback steps and the people on the release come from the release's
    prefetched ones. `hides_personal`: for a link that hides personal details, which
    names whoever acted by their roles only. `shared`: for any share link, which leaves
    the steps' notes and evidence links out, as its timeline does."""
    roles_by_username: dict[str, set[str]] = {}
    if hides_personal:
        for stake in release.stakeholders.all():
            roles_by_username.setdefault(stake.user.get_username(), set()).add(stake.role)

    def named(label: str) -> str:
        return by_role(label, roles_by_username) if hides_personal and label else label

    rollback = latest.rollback
    steps = []
    for step in release.rollback_steps.all():
        record = latest.records.get(step.pk)
        steps.append(
            StepShown(
                step=step,
                record=record,
                can_tick=rollback is not None
                and rollback.is_open
                and bool(policy.may_tick_rollback_step(who, owner_role=step.owner_role)),
                done_by=named(record.done_by_label) if record is not None else "",
                shows_notes=not shared,
            )
        )
    rollout = Rollout(
        latest.deployment,
        rollback,
        steps if rollback else [],
        [],
        timezone.now(),
        by={stamp: named(label) for stamp, label in _stamped_by(latest).items()},
    )
    rollout.actions = _actions(release, who, rollout)
    return rollout
