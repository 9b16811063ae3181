"""Automated checks of a release, their runs and their results, and pipeline tokens.

A Check is declared in a checks file (TOML, see checks.config) and names the environment
variables holding its credentials, never their values. A CheckRun is one request to
verify some checks; it has one CheckResult row per check that was not already queued or
running, which the worker claims by a conditional UPDATE, so a redelivered task never
records twice.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from fnmatch import fnmatchcase

from django.conf import settings
from django.core.validators import RegexValidator
from django.db import models
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from releases.evidence import result_text
from releases.models import (
    ActorKind,
    CheckOutcome,
    CheckReason,
    HashedToken,
    HashedTokenQuerySet,
    Release,
    Role,
)

CHECK_NAME_PATTERN = r"^[a-z0-9][a-z0-9_.-]{0,63}$"
validate_check_name = RegexValidator(
    CHECK_NAME_PATTERN,
    _("Use lower-case letters, digits, dots, dashes and underscores (at most 64)."),
)


class CheckQuerySet(models.QuerySet["Check"]):
    def active(self) -> CheckQuerySet:
        return self.filter(retired_at__isnull=True)

    def retire(self, at: datetime) -> int:
        """Retire these checks and cancel their unfinished results: a task sent for one
        then finds nothing to claim, and a finding from a check already under way is
        dropped instead of reaching items that no longer name it."""
        CheckResult.objects.filter(subject__in=self, state__in=UNFINISHED).update(
            state=ResultState.CANCELLED, finished_at=at
        )
        return self.update(retired_at=at, updated_at=at)


class Check(models.Model):
    release = models.ForeignKey(
        Release,
        on_delete=models.CASCADE,
        related_name="automated_checks",
        verbose_name=_("release"),
    )
    name = models.CharField(_("name"), max_length=64, validators=[validate_check_name])
    kind = models.CharField(_("kind"), max_length=30)
    # The checks file's options for this check: plain settings and the names of the
    # environment variables holding credentials. Never a credential itself.
    options = models.JSONField(_("options"), default=dict, blank=True)
    # Items the checks file linked by text (those without a check= marker), so that a
    # reloaded file can tell its own links from the checklist's markers.
    linked_item_ids = models.JSONField(_("linked items"), default=list, blank=True)
    source = models.CharField(_("declared at"), max_length=300, blank=True)
    created_at = models.DateTimeField(_("created at"), default=timezone.now)
    updated_at = models.DateTimeField(_("updated at"), default=timezone.now)
    # A check missing from a reloaded file is retired, never deleted: its history stays.
    retired_at = models.DateTimeField(_("retired at"), null=True, blank=True)

    objects = CheckQuerySet.as_manager()

    class Meta:
        ordering = ["release", "name"]
        constraints = [
            models.UniqueConstraint(fields=["release", "name"], name="one_check_name_per_release")
        ]
        verbose_name = _("automated check")
        verbose_name_plural = _("automated checks")

    def __str__(self) -> str:
        return f"{self.release.version}: {self.name} ({self.kind})"


class CheckRun(models.Model):
    """One request to verify some of a release's checks (all, a section's, an item's),
    for those of them that had no unfinished result: the others join the run under way."""

    release = models.ForeignKey(
        Release, on_delete=models.CASCADE, related_name="check_runs", verbose_name=_("release")
    )
    requested_by_label = models.CharField(_("requested by (name)"), max_length=200)
    requested_by_kind = models.CharField(
        _("requested by (kind)"), max_length=10, choices=ActorKind.choices
    )
    scope = models.CharField(_("scope"), max_length=300, blank=True)
    created_at = models.DateTimeField(_("created at"), default=timezone.now, db_index=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name = _("check run")
        verbose_name_plural = _("check runs")

    def __str__(self) -> str:
        return f"{self.release.version} run {self.pk}"


class ResultState(models.TextChoices):
    QUEUED = "queued", _("queued")
    RUNNING = "running", _("running")
    DONE = "done", _("done")
    # Its check was retired before it finished: it never reaches an item.
    CANCELLED = "cancelled", _("cancelled")


# A run asked for a check that has one of these joins it instead of starting another.
UNFINISHED = (ResultState.QUEUED, ResultState.RUNNING)


class CheckResult(models.Model):
    run = models.ForeignKey(
        CheckRun, on_delete=models.CASCADE, related_name="results", verbose_name=_("run")
    )
    # Not "check": Model.check() is Django's system-check hook.
    subject = models.ForeignKey(
        Check, on_delete=models.CASCADE, related_name="results", verbose_name=_("check")
    )
    state = models.CharField(
        _("state"), max_length=10, choices=ResultState.choices, default=ResultState.QUEUED
    )
    # Bumped on every hand-over to a worker; a task carries the attempt it was sent for,
    # so a stale redelivery finds nothing to claim.
    attempt = models.PositiveIntegerField(_("attempt"), default=1)
    claimed_at = models.DateTimeField(_("claimed at"), null=True, blank=True)
    # Past it, beat hands the result to a worker again (a killed worker, a lost message).
    deadline = models.DateTimeField(_("deadline"), null=True, blank=True, db_index=True)
    outcome = models.CharField(
        _("outcome"), max_length=10, choices=CheckOutcome.choices, blank=True
    )
    reason = models.CharField(_("reason"), max_length=20, choices=CheckReason.choices, blank=True)
    latency_ms = models.PositiveIntegerField(_("latency (ms)"), null=True, blank=True)
    # In English, for the command line and logs; `said` is the same evidence as a
    # message and its values (releases.evidence.Said), which pages show translated.
    # Rows older than it have {}.
    evidence = models.CharField(_("evidence"), max_length=300, blank=True)
    said = models.JSONField(_("evidence (message)"), default=dict, blank=True)
    finished_at = models.DateTimeField(_("finished at"), null=True, blank=True)
    # When the result reached its items. A finished result is recorded by whichever
    # worker next holds the release lock, so results that finish together settle in
    # one transaction instead of queueing one by one.
    recorded_at = models.DateTimeField(_("recorded at"), null=True, blank=True)

    class Meta:
        ordering = ["run", "subject__name"]
        indexes = [models.Index(fields=["subject", "-finished_at"], name="latest_result_of_check")]
        verbose_name = _("check result")
        verbose_name_plural = _("check results")

    def __str__(self) -> str:
        return f"{self.subject.name}: {self.outcome or self.state}"

    @property
    def evidence_shown(self) -> str:
        """The evidence in the reader's language; an older row's English as it was kept."""
        return result_text({"said": self.said, "evidence": self.evidence})

    @staticmethod
    def handover_deadline(delay: float = 0.0) -> datetime:
        """When a worker must have finished one attempt, begun after `delay` seconds."""
        return timezone.now() + timedelta(seconds=delay + settings.CHECKS_ATTEMPT_SECONDS)


# Shell-style, as fnmatch.fnmatchcase reads it: "*" any run of characters, "?" one,
# "[...]" one of a set. Printable ASCII without spaces, as versions are.
validate_version_pattern = RegexValidator(
    r"^[!-~]+$",
    _("Use printable ASCII characters without spaces, e.g. * or v2.*."),
)


class PipelineTokenQuerySet(HashedTokenQuerySet["PipelineToken"]):
    def of_project(self) -> PipelineTokenQuerySet:
        return self.filter(release__isnull=True)

    def applying_to(self, version: str) -> list[PipelineToken]:
        """The project tokens among these whose pattern takes this version. Matched here:
        SQL has no pattern that reads a glob as fnmatch does."""
        return [token for token in self.of_project() if token.applies_to(version)]


class PipelineToken(HashedToken):
    """Lets a CI job report evidence for the items of one role: on one release, or, as a
    project token, on every release whose version its pattern matches."""

    release = models.ForeignKey(
        Release,
        on_delete=models.CASCADE,
        null=True,
        blank=True,
        related_name="pipeline_tokens",
        verbose_name=_("release"),
    )
    version_pattern = models.CharField(
        _("releases"),
        max_length=64,
        blank=True,
        validators=[validate_version_pattern],
    )
    role = models.CharField(_("role"), max_length=20, choices=Role.choices)
    label = models.CharField(_("label"), max_length=100)
    last_used_at = models.DateTimeField(_("last used at"), null=True, blank=True)

    objects = PipelineTokenQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.CheckConstraint(
                condition=(
                    Q(release__isnull=False, version_pattern="")
                    | (Q(release__isnull=True) & ~Q(version_pattern=""))
                ),
                name="token_for_a_release_or_a_pattern",
            ),
            models.UniqueConstraint(
                fields=["release", "label"],
                condition=Q(revoked_at__isnull=True),
                name="one_active_token_label",
            ),
            # The one above leaves project tokens out: NULL releases are all distinct.
            models.UniqueConstraint(
                fields=["label"],
                condition=Q(revoked_at__isnull=True, release__isnull=True),
                name="one_active_project_token_label",
            ),
        ]
        verbose_name = _("pipeline token")
        verbose_name_plural = _("pipeline tokens")

    def __str__(self) -> str:
        scope = self.release.version if self.release is not None else self.version_pattern
        return f"{scope}: ci:{self.label} ({self.role})"

    def applies_to(self, version: str) -> bool:
        if self.release is not None:
            return self.release.version == version
        return fnmatchcase(version, self.version_pattern)
