"""The release sign-off domain: templates, releases, their items, people and decisions.

Models hold data and the questions asked of it (progress, blocking reasons). Every change
to a release goes through releases.workflow, which checks permission, locks, audits,
bumps the release's revision and publishes the live update.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import TYPE_CHECKING, Any, Self, TypeVar
from zoneinfo import ZoneInfo

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import RegexValidator
from django.db import models
from django.db.models import Q
from django.utils import timezone, translation
from django.utils.translation import gettext, gettext_noop
from django.utils.translation import gettext_lazy as _

from . import performs
from .evidence import result_text

if TYPE_CHECKING:
    from django.contrib.auth.models import AnonymousUser, User

    # request.user under the default AUTH_USER_MODEL.
    AnyUser = User | AnonymousUser

# ASCII digits only: \d also takes other scripts' digits, and "v1０.0.0" (a full-width
# zero) would stand beside "v10.0.0" looking the same.
VERSION_PATTERN = r"^v(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)(-[0-9A-Za-z.-]+)?$"
validate_version = RegexValidator(
    VERSION_PATTERN,
    _("Use a version like v1.2.3 (optionally with a pre-release such as v1.2.3-rc.1)."),
)
# The years a date or time people type may name: wide enough for any release, and far
# enough from datetime's own limits (years 1-9999) that no zone's offset, nor a day added
# to a range's end, carries one past them.
YEARS = (2000, 2999)


def validate_year(moment: date) -> None:
    """Refuses a date or time outside YEARS: year 0001 would pass for a real time."""
    if not YEARS[0] <= moment.year <= YEARS[1]:
        raise ValidationError(
            _("Enter a year between %(first)d and %(last)d."),
            code="year",
            params={"first": YEARS[0], "last": YEARS[1]},
        )


# Placeholders such as the seed's "[Nombre]" mean nobody has filled the contact in yet.
PLACEHOLDER = re.compile(r"^\s*\[[^\]]*\]\s*$")


class Role(models.TextChoices):
    DEVOPS = "devops", _("DevOps Lead")
    BACKEND = "backend", _("Backend Lead")
    FRONTEND = "frontend", _("Frontend Lead")
    QA = "qa", _("QA Lead")
    PRODUCT_OWNER = "po", _("Product Owner")
    SUPPORT = "support", _("Support")

    @classmethod
    def leads(cls) -> tuple[Role, ...]:
        return (cls.DEVOPS, cls.BACKEND, cls.FRONTEND, cls.QA)

    @classmethod
    def from_label(cls, label: str) -> Role | None:
        """The seed's contacts table names roles by label ("DevOps Lead"), in English or
        in the reader's language."""
        wanted = label.strip().lower()
        shown = {str(role.label).lower(): role for role in cls}
        with translation.override("en"):
            english = {str(role.label).lower(): role for role in cls}
        names = {role.name.lower(): role for role in cls}
        values = {role.value: role for role in cls}
        return values.get(wanted) or shown.get(wanted) or english.get(wanted) or names.get(wanted)


def one_line(instance: models.Model, *names: str) -> None:
    """Markdown export writes each of these fields on one line; a break would split it."""
    for name in names:
        value = getattr(instance, name)
        if "\n" in value or "\r" in value:
            raise ValidationError({name: _("Must fit on one line.")})


def shared_values(instance: models.Model, base: type[models.Model]) -> dict[str, Any]:
    """The values of the fields `instance` has from the abstract model `base`: what a
    release copies from its template, so a field added to a base is copied with no
    further edit."""
    return {f.name: getattr(instance, f.name) for f in base._meta.get_fields()}


# The headings a checklist without a rollback plan or contacts gets once one is written.
DEFAULT_ROLLBACK_HEADING = "Plan de Rollback"
DEFAULT_CONTACTS_HEADING = "Contactos de Emergencia"


class ChecklistOutline(models.Model):
    """What a checklist holds besides its items, copied from a template to its releases."""

    # Index of the first item after the go-live gate; None puts the gate after every item.
    gate_position = models.PositiveIntegerField(_("gate position"), null=True, blank=True)
    rollback_heading = models.CharField(
        _("rollback heading"), max_length=200, blank=True, default=DEFAULT_ROLLBACK_HEADING
    )
    rollback_intro = models.TextField(_("rollback introduction"), blank=True)
    contacts_heading = models.CharField(
        _("contacts heading"), max_length=200, blank=True, default=DEFAULT_CONTACTS_HEADING
    )
    contacts_header = models.JSONField(_("contacts table header"), default=list, blank=True)

    class Meta:
        abstract = True


class ChecklistEntry(models.Model):
    """One task line of a checklist, on a template or a release."""

    position = models.PositiveIntegerField(_("position"))
    phase = models.CharField(_("phase"), max_length=300, blank=True)
    section = models.CharField(_("section"), max_length=300, blank=True)
    text = models.TextField(_("text"))
    owner_role = models.CharField(_("owner"), max_length=20, choices=Role.choices)
    required = models.BooleanField(_("required"), default=True)
    # Names of the automated checks that verify this item.
    checks = models.JSONField(_("checks"), default=list, blank=True)
    # What the app does for this item when a person presses "perform", as the checklist
    # or the checks file wrote it (releases.performs): announce:people, announce:CHANNEL,
    # acknowledge:support, retrospective; "" for none.
    perform = models.CharField(_("perform"), max_length=80, blank=True)

    class Meta:
        abstract = True

    def __str__(self) -> str:
        return self.text

    def clean(self) -> None:
        one_line(self, "text", "phase", "section")
        if self.perform and performs.parse(self.perform) is None:
            raise ValidationError(
                {
                    "perform": _("Unknown action; expected %(expected)s.")
                    % {"expected": performs.EXPECTED}
                }
            )


class RollbackStepFields(models.Model):
    position = models.PositiveIntegerField(_("position"))
    text = models.TextField(_("text"))
    commands = models.TextField(_("commands"), blank=True)
    lang = models.CharField(_("commands language"), max_length=40, blank=True)
    # Who ticks the step when a rollback is declared: DevOps unless the plan says
    # otherwise (an owner= annotation on the step).
    owner_role = models.CharField(
        _("owner"), max_length=20, choices=Role.choices, default=Role.DEVOPS
    )

    class Meta:
        abstract = True

    def __str__(self) -> str:
        return self.text.splitlines()[0] if self.text else ""


class ContactFields(models.Model):
    position = models.PositiveIntegerField(_("position"), default=0)
    role = models.CharField(_("role"), max_length=100)
    name = models.CharField(_("name"), max_length=200)

    class Meta:
        abstract = True

    def __str__(self) -> str:
        return f"{self.role}: {self.name}"


class ActorKind(models.TextChoices):
    """Who acted: a person, an automated check, a pipeline token or the system itself."""

    PERSON = "person", _("person")
    CHECK = "check", _("automated check")
    PIPELINE = "pipeline", _("pipeline")
    SYSTEM = "system", _("system")


def actor_shown(kind: str, label: str) -> str:
    """An actor's stored label as the reader reads it: the server names itself in English
    (actors.SystemActor), read in the reader's language; anyone else as they are named."""
    return gettext(label) if kind == ActorKind.SYSTEM else label


class CheckOutcome(models.TextChoices):
    """What one run of an automated check found (codes written by checks.kinds)."""

    PASS = "pass", _("passed")
    FAIL = "fail", _("failed")
    ERROR = "error", _("could not be judged")


class CheckReason(models.TextChoices):
    """Why a check ended as it did; stored as a code, shown in each reader's language."""

    OK = "ok", _("all good")
    AUTH_FAILED = "auth_failed", _("credential refused")
    MISCONFIGURED = "misconfigured", _("misconfigured")
    QUOTA_EXHAUSTED = "quota_exhausted", _("quota exhausted")
    RATE_LIMITED = "rate_limited", _("rate limited")
    # The vendor's own 5xx or documented outage answer.
    VENDOR_DOWN = "vendor_down", _("service down")
    # The worker could not get to the vendor (no such name, refused, no route): says
    # nothing of the vendor, so it is never shown as the vendor failing.
    UNREACHABLE = "unreachable", _("unreachable from the worker")
    TIMED_OUT = "timed_out", _("timed out")
    BAD_RESPONSE = "bad_response", _("unreadable answer")


class ChecklistTemplate(ChecklistOutline):
    name = models.CharField(_("name"), max_length=200, unique=True)
    title = models.CharField(_("title"), max_length=300, blank=True)
    description = models.TextField(_("description"), blank=True)
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)
    updated_at = models.DateTimeField(_("updated at"), auto_now=True)

    class Meta:
        ordering = ["name"]
        verbose_name = _("checklist template")
        verbose_name_plural = _("checklist templates")

    def __str__(self) -> str:
        return self.name


class TemplateItem(ChecklistEntry):
    template = models.ForeignKey(
        ChecklistTemplate,
        on_delete=models.CASCADE,
        related_name="items",
        verbose_name=_("template"),
    )

    class Meta:
        ordering = ["template", "position"]
        constraints = [
            models.UniqueConstraint(fields=["template", "position"], name="template_item_position")
        ]
        verbose_name = _("template item")
        verbose_name_plural = _("template items")


class TemplateRollbackStep(RollbackStepFields):
    template = models.ForeignKey(
        ChecklistTemplate,
        on_delete=models.CASCADE,
        related_name="rollback_steps",
        verbose_name=_("template"),
    )

    class Meta:
        ordering = ["template", "position"]
        verbose_name = _("template rollback step")
        verbose_name_plural = _("template rollback steps")


class TemplateContact(ContactFields):
    template = models.ForeignKey(
        ChecklistTemplate,
        on_delete=models.CASCADE,
        related_name="contacts",
        verbose_name=_("template"),
    )
    # The cell as written in the file, e.g. "+34 600 000 000 / ana@example.com".
    contact = models.CharField(_("contact"), max_length=300)

    class Meta:
        ordering = ["template", "position"]
        verbose_name = _("template contact")
        verbose_name_plural = _("template contacts")

    def clean(self) -> None:
        one_line(self, "role", "name", "contact")


class ReleaseStatus(models.TextChoices):
    PLANNED = "planned", _("Planned")
    IN_PROGRESS = "in_progress", _("In progress")
    APPROVED = "approved", _("Go-live approved")
    DEPLOYED = "deployed", _("Deployed")
    ROLLED_BACK = "rolled_back", _("Rolled back")
    CANCELLED = "cancelled", _("Cancelled")


# Which status a release may move to from each status; workflow.set_status enforces it.
STATUS_TRANSITIONS: dict[str, frozenset[str]] = {
    ReleaseStatus.PLANNED: frozenset({ReleaseStatus.IN_PROGRESS, ReleaseStatus.CANCELLED}),
    ReleaseStatus.IN_PROGRESS: frozenset(
        {ReleaseStatus.PLANNED, ReleaseStatus.APPROVED, ReleaseStatus.CANCELLED}
    ),
    ReleaseStatus.APPROVED: frozenset(
        {ReleaseStatus.IN_PROGRESS, ReleaseStatus.DEPLOYED, ReleaseStatus.CANCELLED}
    ),
    # Only by declaring a rollback (workflow.rollback), which may also roll back an
    # approved release whose deploy has started; set_status refuses it.
    ReleaseStatus.DEPLOYED: frozenset({ReleaseStatus.ROLLED_BACK}),
    # Once the rollback is closed with its cause (its final state): a new attempt.
    ReleaseStatus.ROLLED_BACK: frozenset({ReleaseStatus.IN_PROGRESS}),
    # Cancelled is terminal: it accepts no change until staff reopen it.
    ReleaseStatus.CANCELLED: frozenset({ReleaseStatus.IN_PROGRESS}),
}
# Statuses in which a release accepts no change but staff reopening it.
CLOSED_STATUSES = frozenset({ReleaseStatus.CANCELLED})


# Moves made by their own operations, with what they ask for: go-live approval, the
# deploy finishing, a rollback declared (workflow.approval, workflow.rollback).
OWN_OPERATION_STATUSES = frozenset(
    {ReleaseStatus.APPROVED, ReleaseStatus.DEPLOYED, ReleaseStatus.ROLLED_BACK}
)


def status_moves(current: str) -> list[str]:
    """Where a release may go from `current` by a plain status move, in the statuses'
    own order; approval, the deploy and a rollback have their own operations."""
    allowed = STATUS_TRANSITIONS.get(current, frozenset())
    return [s for s in ReleaseStatus.values if s in allowed and s not in OWN_OPERATION_STATUSES]


class ReleaseQuerySet(models.QuerySet["Release"]):
    def visible_to(self, user: AnyUser) -> ReleaseQuerySet:
        if not user.is_authenticated:
            return self.none()
        if user.is_staff:
            return self.all()
        return self.filter(stakeholders__user=user).distinct()

    def with_progress(self) -> ReleaseQuerySet:
        settled = Q(items__state__in=[ItemState.DONE, ItemState.NOT_APPLICABLE])
        return self.annotate(
            item_count=models.Count("items", distinct=True),
            settled_count=models.Count("items", filter=settled, distinct=True),
            blocker_count=models.Count(
                "items",
                filter=Q(items__state__in=[ItemState.BLOCKED, ItemState.FAILED]),
                distinct=True,
            ),
        )


class Release(ChecklistOutline):
    version = models.CharField(
        _("version"), max_length=64, unique=True, validators=[validate_version]
    )
    title = models.CharField(_("title"), max_length=300)
    status = models.CharField(
        _("status"), max_length=20, choices=ReleaseStatus.choices, default=ReleaseStatus.PLANNED
    )
    window_start = models.DateTimeField(
        _("target window start"), null=True, blank=True, validators=[validate_year]
    )
    window_end = models.DateTimeField(
        _("target window end"), null=True, blank=True, validators=[validate_year]
    )
    changelog_url = models.URLField(_("changelog link"), blank=True)
    template = models.ForeignKey(
        ChecklistTemplate,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="releases",
        verbose_name=_("template"),
    )
    # The template as it was when the release was made from it.
    template_name = models.CharField(_("template name"), max_length=200, blank=True)
    template_title = models.CharField(_("template title"), max_length=300, blank=True)
    template_description = models.TextField(_("template description"), blank=True)
    two_person_rule = models.BooleanField(
        _("two-person rule"),
        default=True,
        help_text=_("Whoever signed off as a lead cannot also approve go-live."),
    )
    # Staff turn them off for a release whose product owner knows already (the
    # notifications app sends them; beat reads this).
    approval_reminders = models.BooleanField(
        _("approval reminders"),
        default=True,
        help_text=_("Remind the Product Owner while the release waits for go-live approval."),
    )
    # Bumped in the same transaction as every change; live pages follow it.
    revision = models.PositiveBigIntegerField(_("revision"), default=0)
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)

    objects = ReleaseQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at"]
        verbose_name = _("release")
        verbose_name_plural = _("releases")

    def __str__(self) -> str:
        return f"{self.version} — {self.title}"

    def clean(self) -> None:
        one_line(self, "version", "title")
        if self.window_start and self.window_end and self.window_end < self.window_start:
            raise ValidationError({"window_end": _("The window cannot end before it starts.")})

    def active_approval(self) -> GoLiveApproval | None:
        return self.approvals.filter(revoked_at__isnull=True).first()

    def gate_items(self) -> models.QuerySet[ReleaseItem]:
        return self.items.filter(before_gate=True, required=True)

    def gate_digest(self) -> str:
        """A fingerprint of every required item before the gate, as approval saw it.

        A check failure counts only beside a tick, as blocking_reasons lists it: on an
        item a person marked N/A it is shown, but must not revoke approval unlisted. An
        override's reason counts too, being part of what approval was given over; it is
        added only where there is one, so digests taken before overrides existed stand.
        """
        rows = [
            (position, state, reason, failure if state == ItemState.DONE else "")
            + ((override,) if override and state == ItemState.DONE else ())
            for position, state, reason, failure, override in self.gate_items()
            .order_by("position")
            .values_list("position", "state", "reason", "check_failure", "override_reason")
        ]
        return hashlib.sha256(json.dumps(rows, ensure_ascii=False).encode()).hexdigest()


@dataclass(frozen=True)
class BlockingReason:
    code: str
    message: str


def blocking_reasons(
    release: Release,
    items: Iterable[ReleaseItem] | None = None,
    signoffs: Iterable[SignOff] | None = None,
) -> list[BlockingReason]:
    """`items` and `signoffs`: the release's, when the caller has them already (the
    board)."""
    reasons: list[BlockingReason] = []
    if items is None:
        items = list(release.items.filter(before_gate=True))
    else:
        items = [item for item in items if item.before_gate]
    settled = ItemState.settled()
    open_required = [i for i in items if i.required and i.state not in settled]
    # Translated once, not once per item: a big release has a thousand pending items.
    blocked = gettext("%(state)s: “%(text)s” (%(role)s) — %(reason)s")
    pending = gettext("Pending: “%(text)s” (%(role)s)")
    # Checks that could not judge (the worker could not reach the vendor) stop the
    # release as much as a failure, but they say nothing of the vendor.
    unverified = gettext("Not verified: “%(text)s” (%(role)s) — %(reason)s")
    role_labels = {role.value: str(role.label) for role in Role}

    def not_verified(item: ReleaseItem) -> BlockingReason | None:
        """Why the item stops the release if its checks could not judge; else None."""
        verdict = item.checks_verdict()
        if not verdict.not_verified:
            return None
        shown = {
            "text": item.text,
            "role": role_labels[item.owner_role],
            "reason": verdict.unverified(),
        }
        return BlockingReason("not-verified", unverified % shown)

    for item in open_required:
        if item.state in (ItemState.BLOCKED, ItemState.FAILED):
            reasons.append(
                BlockingReason(
                    "item-blocked",
                    blocked
                    % {
                        "state": ItemState(item.state).label,
                        "text": item.text,
                        "role": role_labels[item.owner_role],
                        "reason": item.shown_reason(),
                    },
                )
            )
            continue
        reasons.append(
            not_verified(item)
            or BlockingReason(
                "item-open",
                pending % {"text": item.text, "role": role_labels[item.owner_role]},
            )
        )
    # A failing automated check on an item a person ticked is still a reason to stop,
    # until they override it with a reason (which the approval then names).
    for item in items:
        if not (item.state == ItemState.DONE and item.check_failure) or item.overridden:
            continue
        reasons.append(
            not_verified(item)
            or BlockingReason(
                "check-failed",
                gettext(
                    "Automated check failing on “%(text)s”: %(reason)s; "
                    "override it with a reason or fix it"
                )
                % {"text": item.text, "reason": item.shown_check_failure()},
            )
        )
    # Nobody approves on yesterday's green: a ticked item's checks must have answered
    # within CHECKS_MAX_AGE.
    oldest = timezone.now() - timedelta(seconds=settings.CHECKS_MAX_AGE)
    for item in items:
        if not (item.required and item.state == ItemState.DONE and item.checks):
            continue
        stale = [name for name in item.checks if not _answered_since(item, name, oldest)]
        if stale:
            reasons.append(
                BlockingReason(
                    "checks-stale",
                    gettext("No recent result of %(checks)s on “%(text)s”: re-run the checks")
                    % {"checks": ", ".join(stale), "text": item.text},
                )
            )
    if signoffs is None:
        signoffs = release.signoffs.all()
    signed = {(s.role, s.phase) for s in signoffs if s.reopened_at is None}
    needed = sorted({(i.owner_role, i.phase) for i in items if i.owner_role in Role.leads()})
    holders = {s.role for s in release.stakeholders.all()}
    for role, phase in needed:
        if (role, phase) not in signed:
            reasons.append(
                BlockingReason(
                    "signoff-missing",
                    gettext("%(role)s has not signed off “%(phase)s”")
                    % {"role": Role(role).label, "phase": phase or gettext("(no phase)")},
                )
            )
        if role not in holders:
            reasons.append(
                BlockingReason(
                    "role-unassigned",
                    gettext("Nobody holds the role %(role)s on this release")
                    % {"role": Role(role).label},
                )
            )
    for contact in release.contacts.all():
        if contact.has_placeholder():
            reasons.append(
                BlockingReason(
                    "contact-placeholder",
                    gettext("Emergency contact for %(role)s still holds a placeholder")
                    % {"role": contact.role},
                )
            )
    if not release.rollback_steps.exists():
        reasons.append(BlockingReason("no-rollback", gettext("The release has no rollback plan")))
    if release.status in (
        ReleaseStatus.CANCELLED,
        ReleaseStatus.DEPLOYED,
        ReleaseStatus.ROLLED_BACK,
    ):
        reasons.append(
            BlockingReason(
                "status",
                gettext("The release is %(status)s") % {"status": release.get_status_display()},
            )
        )
    # One message per (role) for unassigned roles, however many phases they own.
    unique: dict[str, BlockingReason] = {}
    for reason in reasons:
        unique.setdefault(reason.message, reason)
    return list(unique.values())


def gate_overrides(
    release: Release, items: Iterable[ReleaseItem] | None = None
) -> list[dict[str, str]]:
    """The failing checks go-live would be approved over: every override standing on an
    item before the gate, as `ReleaseItem.override_record` writes it. `items`: the
    release's items when the caller has them already (the board)."""
    if items is None:
        items = release.items.filter(before_gate=True).exclude(override_reason="")
    return [item.override_record() for item in items if item.before_gate and item.overridden]


def in_signoff_scope(items: Iterable[ReleaseItem]) -> list[ReleaseItem]:
    """The items a lead's sign-off of a phase covers: where the go-live gate cuts the
    phase, only the lead's items before it, so that the phase can be signed (and go-live
    approved) before the deploy; elsewhere all of them."""
    listed = list(items)
    before = {(i.owner_role, i.phase) for i in listed if i.before_gate}
    return [i for i in listed if i.before_gate or (i.owner_role, i.phase) not in before]


def _answered_since(item: ReleaseItem, check: str, oldest: datetime) -> bool:
    result = item.check_results.get(check)
    if not isinstance(result, dict) or not result.get("at"):
        return False
    try:
        return datetime.fromisoformat(str(result["at"])) >= oldest
    except ValueError:
        return False


def reason_text(template: str, args: dict[str, Any]) -> str:
    """Reasons the system writes are stored untranslated, with their arguments apart, so
    every reader sees them in their own language. A reason a person typed has no
    arguments and reads as typed."""
    text = gettext(template) if template else ""
    if not args:
        return text
    shown = dict(args)
    if shown.get("status") in ReleaseStatus.values:
        shown["status"] = ReleaseStatus(shown["status"]).label
    return text % shown


class Stakeholder(models.Model):
    """A person holding a role on one release."""

    release = models.ForeignKey(
        Release, on_delete=models.CASCADE, related_name="stakeholders", verbose_name=_("release")
    )
    role = models.CharField(_("role"), max_length=20, choices=Role.choices)
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.CASCADE,
        related_name="stakes",
        verbose_name=_("user"),
    )

    class Meta:
        ordering = ["release", "role"]
        constraints = [
            models.UniqueConstraint(fields=["release", "role", "user"], name="one_stake_per_role")
        ]
        verbose_name = _("person on a release")
        verbose_name_plural = _("people on releases")

    def __str__(self) -> str:
        return f"{self.release.version}: {self.get_role_display()} — {self.user}"


class ItemState(models.TextChoices):
    PENDING = "pending", _("Pending")
    DONE = "done", _("Done")
    NOT_APPLICABLE = "na", _("Not applicable")
    BLOCKED = "blocked", _("Blocked")
    FAILED = "failed", _("Failed")

    @classmethod
    def settled(cls) -> tuple[ItemState, ...]:
        return (cls.DONE, cls.NOT_APPLICABLE)

    @classmethod
    def needing_reason(cls) -> tuple[ItemState, ...]:
        return (cls.NOT_APPLICABLE, cls.BLOCKED, cls.FAILED)


# A pipeline's failure reported without a detail reads so: stored in English, as every
# text a machine leaves on an item is, and read in each reader's language.
PIPELINE_FAILURE = gettext_noop("the pipeline reported a failure")


def machine_words(text: str) -> str:
    """A reason or failure as stored, in the reader's language where it is our own."""
    return gettext(text) if text == PIPELINE_FAILURE else text


class ReleaseItem(ChecklistEntry):
    release = models.ForeignKey(
        Release, on_delete=models.CASCADE, related_name="items", verbose_name=_("release")
    )
    before_gate = models.BooleanField(_("before the gate"), default=True)
    state = models.CharField(
        _("state"), max_length=10, choices=ItemState.choices, default=ItemState.PENDING
    )
    reason = models.TextField(_("reason"), blank=True)
    note = models.TextField(_("note"), blank=True)
    evidence_url = models.URLField(_("evidence link"), max_length=1000, blank=True)
    # The latest automated check failure (or result that could not be judged) on an
    # item a person already settled, in English: what approval's digest and the audit
    # trail hold. Pages show it rebuilt from check_results, in the reader's language.
    check_failure = models.TextField(_("check failure"), blank=True)
    # A person's tick over a failing check: why, who, when, and the failure it was given
    # over. It stands while that same failure does (see `overridden`).
    override_reason = models.TextField(_("override reason"), blank=True)
    override_failure = models.TextField(_("failure overridden"), blank=True)
    overridden_by_label = models.CharField(_("overridden by"), max_length=200, blank=True)
    overridden_at = models.DateTimeField(_("overridden at"), null=True, blank=True)
    # The latest result of each linked check, by name: {"outcome", "reason", "at",
    # "latency_ms", "evidence" (English), "said" (the same as releases.evidence.Said's
    # JSON; absent from older results)}. Written with the verdict, under the release
    # lock, so the board shows results without reading the checks app.
    check_results = models.JSONField(_("check results"), default=dict, blank=True)
    # The latest time the app performed the item (releases.workflow.perform): {"state":
    # sending | awaiting | unconfirmed | done | failed, "action", "requested_by",
    # "requested_at", "recipients", "channel", "message_ids", "at", "reason",
    # "acknowledged": [{"by", "at"}]}. Written under the release lock, so the board shows
    # it without reading the notifications app.
    performed = models.JSONField(_("performed"), default=dict, blank=True)
    changed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("changed by"),
    )
    changed_by_label = models.CharField(_("changed by (name)"), max_length=200, blank=True)
    # Who settled the item, kept apart from the account: deleting a person's account
    # must not turn their tick into one a machine may overturn.
    changed_by_kind = models.CharField(
        _("changed by (kind)"), max_length=10, choices=ActorKind.choices, blank=True
    )
    changed_at = models.DateTimeField(_("changed at"), null=True, blank=True)
    # Optimistic concurrency: an edit names the version it saw; a stale one conflicts.
    version = models.PositiveIntegerField(_("edit version"), default=0)
    # The release revision at which this item last changed, for partial live updates.
    revision = models.PositiveBigIntegerField(_("revision"), default=0)

    class Meta:
        ordering = ["release", "position"]
        constraints = [
            models.UniqueConstraint(fields=["release", "position"], name="release_item_position"),
            models.CheckConstraint(
                condition=~Q(state__in=["na", "blocked", "failed"]) | ~Q(reason=""),
                name="reason_required_for_state",
            ),
        ]
        verbose_name = _("release item")
        verbose_name_plural = _("release items")

    def checks_verdict(self) -> ChecksVerdict:
        failing: list[NamedResult] = []
        unjudged: list[NamedResult] = []
        waiting = False
        for name in self.checks:
            result = self.check_results.get(name)
            if not isinstance(result, dict):
                waiting = True
            elif result.get("outcome") == CheckOutcome.ERROR:
                unjudged.append((name, result))
            elif result.get("outcome") != CheckOutcome.PASS:
                failing.append((name, result))
        return ChecksVerdict(tuple(failing), tuple(unjudged), waiting, len(self.checks) > 1)

    def shown_reason(self) -> str:
        """The item's reason as this reader reads it: a failure its checks found is
        rebuilt in their language; a person's or a pipeline's reads as written."""
        if self.state == ItemState.FAILED:
            verdict = self.checks_verdict()
            # Set by a check, or kept from its checks by whoever unlinked one of them.
            found = verdict.failed and (
                self.changed_by_kind == ActorKind.CHECK
                or self.reason == verdict.failure(english=True)
            )
            if found:
                return verdict.failure()
        return machine_words(self.reason)

    @property
    def changed_by_shown(self) -> str:
        return actor_shown(self.changed_by_kind, self.changed_by_label)

    def shown_check_failure(self) -> str:
        """The failing check beside a person's decision, in the reader's language; ""
        when there is none, or when its checks could not judge (shown as not verified)."""
        if not self.check_failure:
            return ""
        verdict = self.checks_verdict()
        if verdict.failed:
            return verdict.failure()
        return "" if verdict.not_verified else machine_words(self.check_failure)

    @property
    def failing_check(self) -> str:
        """What the item's automated check (or pipeline) reports failing now: the reason
        of a failed item, or the failure kept beside a person's decision; "" if none."""
        return self.reason if self.state == ItemState.FAILED else self.check_failure

    @property
    def overridden(self) -> bool:
        """Ticked over its failing check with a reason, and failing still as it was then:
        a different failure is not the one the person saw."""
        return (
            self.state == ItemState.DONE
            and bool(self.override_reason and self.check_failure)
            and self.override_failure == self.check_failure
        )

    def override_record(self) -> dict[str, str]:
        """The override as an approval records it and the go/no-go panel lists it."""
        return {
            "text": self.text,
            "role": self.owner_role,
            "failure": self.override_failure,
            "reason": self.override_reason,
            "by": self.overridden_by_label,
            "at": self.overridden_at.isoformat() if self.overridden_at else "",
        }


NamedResult = tuple[str, Mapping[str, Any]]
# What a check result says when it came with no evidence.
_NO_EVIDENCE = {
    CheckOutcome.FAIL: gettext_noop("check failed"),
    CheckOutcome.ERROR: gettext_noop("could not be judged"),
}


@dataclass(frozen=True)
class ChecksVerdict:
    """The latest result of each check an item names, read together: failed when any
    found a fault; not verified when none did but one could not judge (`error`: the
    worker could not reach the vendor, a timeout), which is never shown as a failure;
    waiting while one has not answered; passed when all of them passed."""

    failing: tuple[NamedResult, ...] = ()
    unjudged: tuple[NamedResult, ...] = ()
    waiting: bool = False
    several: bool = False

    @property
    def failed(self) -> bool:
        return bool(self.failing)

    @property
    def not_verified(self) -> bool:
        return not self.failing and bool(self.unjudged)

    @property
    def passed(self) -> bool:
        return not (self.failing or self.unjudged or self.waiting)

    def failure(self, *, english: bool = False) -> str:
        """What the failing checks found: in the reader's language, or in English to be
        stored."""
        return self._summary(self.failing, CheckOutcome.FAIL, english)

    def unverified(self, *, english: bool = False) -> str:
        """Why the checks that could not judge could not."""
        return self._summary(self.unjudged, CheckOutcome.ERROR, english)

    def _summary(self, results: Iterable[NamedResult], outcome: str, english: bool) -> str:
        default = _NO_EVIDENCE[CheckOutcome(outcome)]
        if not english:
            default = gettext(default)
        texts = [
            (name, result_text(result, english=english) or default) for name, result in results
        ]
        if not self.several:
            return "; ".join(text for _name, text in texts)
        return "; ".join(f"{name}: {text}" for name, text in texts)


class SignOff(models.Model):
    """A lead's signature on their items of one phase. Reopened rows stay as history."""

    release = models.ForeignKey(
        Release, on_delete=models.CASCADE, related_name="signoffs", verbose_name=_("release")
    )
    role = models.CharField(_("role"), max_length=20, choices=Role.choices)
    phase = models.CharField(_("phase"), max_length=300, blank=True)
    signed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.PROTECT,
        related_name="+",
        verbose_name=_("signed by"),
    )
    signed_at = models.DateTimeField(_("signed at"), default=timezone.now)
    reopened_at = models.DateTimeField(_("reopened at"), null=True, blank=True)
    reopened_reason = models.TextField(_("reopen reason"), blank=True)
    reopened_reason_args = models.JSONField(_("reopen reason values"), default=dict, blank=True)
    # Optional items do not hold a sign-off back; the ones still open when it was given
    # are kept with it, by their text, so that what was signed over stays on record.
    optional_open = models.JSONField(_("optional items open"), default=list, blank=True)

    class Meta:
        ordering = ["release", "signed_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["release", "role", "phase"],
                condition=Q(reopened_at__isnull=True),
                name="one_open_signoff",
            )
        ]
        verbose_name = _("sign-off")
        verbose_name_plural = _("sign-offs")

    def __str__(self) -> str:
        return f"{self.release.version}: {self.get_role_display()} / {self.phase}"

    @property
    def reopened_reason_text(self) -> str:
        return reason_text(self.reopened_reason, self.reopened_reason_args)


class GoLiveApproval(models.Model):
    release = models.ForeignKey(
        Release, on_delete=models.CASCADE, related_name="approvals", verbose_name=_("release")
    )
    approved_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.PROTECT,
        related_name="+",
        verbose_name=_("approved by"),
    )
    approved_at = models.DateTimeField(_("approved at"), default=timezone.now)
    digest = models.CharField(_("digest"), max_length=64)
    # Every failing check it was given over (models.gate_overrides at approval time).
    overrides = models.JSONField(_("overrides"), default=list, blank=True)
    revoked_at = models.DateTimeField(_("revoked at"), null=True, blank=True)
    revoked_reason = models.TextField(_("revoke reason"), blank=True)
    revoked_reason_args = models.JSONField(_("revoke reason values"), default=dict, blank=True)

    class Meta:
        ordering = ["-approved_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["release"], condition=Q(revoked_at__isnull=True), name="one_live_approval"
            )
        ]
        verbose_name = _("go-live approval")
        verbose_name_plural = _("go-live approvals")

    def __str__(self) -> str:
        return f"{self.release.version} approved by {self.approved_by}"

    @property
    def revoked_reason_text(self) -> str:
        return reason_text(self.revoked_reason, self.revoked_reason_args)


class EmergencyContact(ContactFields):
    release = models.ForeignKey(
        Release, on_delete=models.CASCADE, related_name="contacts", verbose_name=_("release")
    )
    phone = models.CharField(_("phone"), max_length=50, blank=True)
    email = models.EmailField(_("email"), blank=True)
    # The contact cell as written when it is neither a phone nor an email (a placeholder).
    other = models.CharField(_("other contact"), max_length=300, blank=True)

    class Meta:
        ordering = ["release", "position"]
        verbose_name = _("emergency contact")
        verbose_name_plural = _("emergency contacts")

    @classmethod
    def from_cell(cls, cell: str, **fields: Any) -> EmergencyContact:
        """A contact from a contacts-table cell such as "+34 600 000 000 / ana@example.com"."""
        if PLACEHOLDER.match(cell):
            return cls(other=cell.strip(), **fields)
        phone = email = ""
        other: list[str] = []
        for part in (p.strip() for p in cell.replace(",", "/").split("/")):
            if not part:
                continue
            # A part too long for its column stays as written, in `other`.
            if "@" in part and not email and " " not in part and len(part) <= EMAIL_MAX:
                email = part
            elif (
                not phone
                and len(part) <= PHONE_MAX
                and sum(ch.isdigit() for ch in part) >= 6
                and all(ch.isdigit() or ch in "+ -().#x" for ch in part)
            ):
                phone = part
            else:
                other.append(part)
        return cls(phone=phone, email=email, other=" / ".join(other), **fields)

    @property
    def cell(self) -> str:
        """The contacts-table cell this contact is written back as."""
        return " / ".join(v for v in (self.phone, self.email, self.other) if v)

    def has_placeholder(self) -> bool:
        return bool(
            PLACEHOLDER.match(self.name)
            or PLACEHOLDER.match(self.other)
            or not (self.phone or self.email)
        )

    @property
    def tel_href(self) -> str:
        return "tel:" + re.sub(r"[^\d+]", "", self.phone) if self.phone else ""


PHONE_MAX = EmergencyContact._meta.get_field("phone").max_length or 50
EMAIL_MAX = EmergencyContact._meta.get_field("email").max_length or 254


class RollbackStep(RollbackStepFields):
    release = models.ForeignKey(
        Release, on_delete=models.CASCADE, related_name="rollback_steps", verbose_name=_("release")
    )

    class Meta:
        ordering = ["release", "position"]
        verbose_name = _("rollback step")
        verbose_name_plural = _("rollback steps")


class AuditEventQuerySet(models.QuerySet["AuditEvent"]):
    def update(self, **kwargs: Any) -> int:
        raise TypeError("the audit trail is append-only")

    def delete(self) -> tuple[int, dict[str, int]]:
        raise TypeError("the audit trail is append-only")


class AuditAction(models.TextChoices):
    """Every kind of event the audit trail records; workflow operations write them."""

    RELEASE_CREATED = "release.created", _("Release created")
    RELEASE_STATUS = "release.status", _("Status changed")
    RELEASE_APPROVED = "release.approved", _("Go-live approved")
    APPROVAL_REVOKED = "release.approval_revoked", _("Go-live approval revoked")
    ITEM_DONE = "item.done", _("Item done")
    ITEM_REOPENED = "item.reopened", _("Item reopened")
    ITEM_NOT_APPLICABLE = "item.not_applicable", _("Item marked not applicable")
    ITEM_BLOCKED = "item.blocked", _("Item blocked")
    ITEM_ANNOTATED = "item.annotated", _("Item note or evidence changed")
    CHECK_PASSED = "check.passed", _("Automated check passed")
    CHECK_FAILED = "check.failed", _("Automated check failed")
    CHECK_NOT_VERIFIED = "check.not_verified", _("Automated check could not verify")
    CHECK_OVERRIDDEN = "check.overridden", _("Ticked over a failing check")
    CHECK_OVERRIDE_CLEARED = "check.override_cleared", _("Override of a failing check ended")
    CHECK_UNLINKED = "check.unlinked", _("Failing check unlinked")
    CHECKS_LINKED = "checks.linked", _("Automated checks linked")
    CHECK_ADDED = "check.added", _("Automated check added")
    CHECK_CHANGED = "check.changed", _("Automated check changed")
    CHECK_RETIRED = "check.retired", _("Automated check retired")
    PIPELINE_PASSED = "pipeline.passed", _("Pipeline reported a pass")
    PIPELINE_FAILED = "pipeline.failed", _("Pipeline reported a failure")
    PIPELINE_TOKEN_CREATED = "pipeline_token.created", _("Pipeline token created")
    PIPELINE_TOKEN_REVOKED = "pipeline_token.revoked", _("Pipeline token revoked")
    SIGNOFF_SIGNED = "signoff.signed", _("Signed off")
    SIGNOFF_WITHDRAWN = "signoff.withdrawn", _("Sign-off withdrawn")
    SIGNOFF_REOPENED = "signoff.reopened", _("Sign-off reopened")
    STAKEHOLDER_ASSIGNED = "stakeholder.assigned", _("Person assigned")
    STAKEHOLDER_UNASSIGNED = "stakeholder.unassigned", _("Person removed")
    CONTACT_UPDATED = "contact.updated", _("Emergency contact changed")
    CONTACT_ADDED = "contact.added", _("Emergency contact added")
    CONTACT_REMOVED = "contact.removed", _("Emergency contact removed")
    CONTACTS_EDITED = "contacts.edited", _("Emergency contacts edited")
    STAKEHOLDER_CHANGED = "stakeholder.changed", _("Person or role changed")
    RELEASE_EDITED = "release.edited", _("Release details changed")
    ACCOUNT_CHANGED = "account.changed", _("Account deactivated or no longer staff")
    SHARE_LINK_CREATED = "share_link.created", _("Share link created")
    SHARE_LINK_REVOKED = "share_link.revoked", _("Share link revoked")
    TEMPLATE_IMPORTED = "template.imported", _("Template imported")
    TEMPLATE_REPLACED = "template.replaced", _("Template replaced")
    # Written by earlier versions, which recorded admin edits without their content.
    ADMIN_EDITED = "admin.edited", _("Edited in the admin")
    INCIDENT_UPDATE_POSTED = "incident.update_posted", _("Incident update posted")
    WINDOW_SCHEDULED = "window.scheduled", _("Maintenance window scheduled")
    WINDOW_EDITED = "window.edited", _("Maintenance window changed")
    WINDOW_STARTED = "window.started", _("Maintenance window started")
    WINDOW_EXTENDED = "window.extended", _("Maintenance window extended")
    WINDOW_COMPLETED = "window.completed", _("Maintenance window completed")
    WINDOW_CANCELLED = "window.cancelled", _("Maintenance window cancelled")
    DEPLOY_STARTED = "deploy.started", _("Deploy started")
    DEPLOY_FINISHED = "deploy.finished", _("Deploy finished")
    ROLLBACK_DECLARED = "rollback.declared", _("Rollback declared")
    ROLLBACK_STEP_DONE = "rollback.step_done", _("Rollback step done")
    ROLLBACK_STEP_REOPENED = "rollback.step_reopened", _("Rollback step reopened")
    ROLLBACK_STEP_ANNOTATED = "rollback.step_annotated", _("Rollback step note or evidence changed")
    ROLLBACK_MITIGATED = "rollback.mitigated", _("Rollback impact mitigated")
    ROLLBACK_RESOLVED = "rollback.resolved", _("Rollback resolved")
    ROLLBACK_UNRESOLVED = "rollback.unresolved", _("Rollback resolution taken back")
    ROLLBACK_CLOSED = "rollback.closed", _("Rollback closed with its cause")
    ROLLBACK_PLAN_EDITED = "rollback.plan_edited", _("Rollback plan edited")
    ROLE_NUDGED = "role.nudged", _("Role nudged")
    PERFORM_REQUESTED = "item.perform_requested", _("Item performance requested")
    PERFORM_CONFIRMED = "item.performed", _("Delivery of an item confirmed")
    PERFORM_AWAITING = "item.perform_delivered", _("Delivered; waiting for acknowledgement")
    PERFORM_UNCONFIRMED = "item.perform_unconfirmed", _("Delivery accepted, not confirmed")
    PERFORM_FAILED = "item.perform_failed", _("Delivery of an item failed")
    ACKNOWLEDGED = "item.acknowledged", _("Support confirmed ready")
    PERFORMS_LINKED = "performs.linked", _("Items linked to actions the app performs")

    @classmethod
    def label_of(cls, code: str) -> str:
        """The label of a code; a code this version no longer knows shows as written."""
        return str(cls(code).label) if code in cls.values else code


class AuditEvent(models.Model):
    """Append-only: who did what, when, from where, before → after. Only the workflow's
    operations write events (releases.workflow)."""

    release = models.ForeignKey(
        Release,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="audit_events",
        verbose_name=_("release"),
    )
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("actor"),
    )
    actor_label = models.CharField(_("actor name"), max_length=200)
    actor_kind = models.CharField(
        _("kind of actor"), max_length=10, choices=ActorKind.choices, default=ActorKind.PERSON
    )
    action = models.CharField(
        _("action"), max_length=60, choices=AuditAction.choices, db_index=True
    )
    target = models.CharField(_("target"), max_length=500, blank=True)
    before = models.JSONField(_("before"), default=dict, blank=True)
    after = models.JSONField(_("after"), default=dict, blank=True)
    override = models.BooleanField(_("override"), default=False)
    source_ip = models.GenericIPAddressField(_("source IP address"), null=True, blank=True)
    created_at = models.DateTimeField(_("created at"), default=timezone.now, db_index=True)

    objects = AuditEventQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name = _("audit event")
        verbose_name_plural = _("audit trail")

    def __str__(self) -> str:
        return f"{self.created_at:%Y-%m-%d %H:%M:%S} {self.actor_label} {self.action}"

    def save(self, *args: Any, **kwargs: Any) -> None:
        if self.pk is not None:
            raise TypeError("the audit trail is append-only")
        super().save(*args, **kwargs)

    @property
    def actor_shown(self) -> str:
        return actor_shown(self.actor_kind, self.actor_label)

    def delete(self, *args: Any, **kwargs: Any) -> tuple[int, dict[str, int]]:
        raise TypeError("the audit trail is append-only")


class HashedToken(models.Model):
    """Something reached with a token that is shown once, when it is made: only the
    token's hash is stored, so a database dump reveals no working token. Revoking it
    keeps the row, as history."""

    token_hash = models.CharField(_("token hash"), max_length=64, unique=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        related_name="+",
        verbose_name=_("created by"),
    )
    created_at = models.DateTimeField(_("created at"), default=timezone.now)
    revoked_at = models.DateTimeField(_("revoked at"), null=True, blank=True)

    class Meta:
        abstract = True

    @staticmethod
    def hash_token(token: str) -> str:
        return hashlib.sha256(token.encode()).hexdigest()


_Token = TypeVar("_Token", bound=HashedToken)


class HashedTokenQuerySet(models.QuerySet[_Token]):
    def active(self) -> Self:
        return self.filter(revoked_at__isnull=True)


class ShareLink(HashedToken):
    """Read-only access to one release's status page for people without an account."""

    release = models.ForeignKey(
        Release, on_delete=models.CASCADE, related_name="share_links", verbose_name=_("release")
    )
    label = models.CharField(_("label"), max_length=200, blank=True)
    # For links sent outside the company: contacts read by role only, and the timeline
    # names roles instead of people.
    hides_personal = models.BooleanField(
        _("hide personal contact details"),
        default=False,
        help_text=_("Show the emergency contacts by role only, without names, phones or e-mails."),
    )

    objects = HashedTokenQuerySet["ShareLink"].as_manager()

    class Meta:
        ordering = ["-created_at"]
        verbose_name = _("share link")
        verbose_name_plural = _("share links")

    def __str__(self) -> str:
        return f"{self.release.version}: {self.label or self.pk}"


class LanguagePreference(models.Model):
    """The language a person chose, so it follows them to any browser they log in from."""

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL,
        on_delete=models.CASCADE,
        primary_key=True,
        related_name="language_preference",
        verbose_name=_("user"),
    )
    language = models.CharField(_("language"), max_length=10, choices=settings.LANGUAGES)

    class Meta:
        verbose_name = _("language preference")
        verbose_name_plural = _("language preferences")

    def __str__(self) -> str:
        return f"{self.user}: {self.language}"


class IncidentState(models.TextChoices):
    """Where an incident stands, as the people outside the team read it."""

    INVESTIGATING = "investigating", _("Investigating")
    IDENTIFIED = "identified", _("Identified")
    MONITORING = "monitoring", _("Monitoring")
    RESOLVED = "resolved", _("Resolved")


class IncidentUpdate(models.Model):
    """A timestamped word from the product owner or DevOps to people outside the team;
    the latest leads the status page and every share link's page. Never edited: a
    correction is a new update."""

    MESSAGE_MAX = 500

    release = models.ForeignKey(
        Release,
        on_delete=models.CASCADE,
        related_name="incident_updates",
        verbose_name=_("release"),
    )
    state = models.CharField(_("state"), max_length=20, choices=IncidentState.choices)
    message = models.TextField(_("message"), max_length=MESSAGE_MAX)
    posted_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        related_name="+",
        verbose_name=_("posted by"),
    )
    # The role they posted as, which a link hiding personal details shows instead.
    posted_as = models.CharField(_("posted as"), max_length=20, choices=Role.choices, blank=True)
    posted_by_label = models.CharField(_("posted by (name)"), max_length=200)
    posted_at = models.DateTimeField(_("posted at"), default=timezone.now)

    class Meta:
        ordering = ["-posted_at", "-id"]
        verbose_name = _("incident update")
        verbose_name_plural = _("incident updates")

    def __str__(self) -> str:
        return f"{self.release.version}: {self.state} {self.posted_at:%Y-%m-%d %H:%M}"


class WindowState(models.TextChoices):
    """Where a maintenance window stands. In progress and completed follow the clock
    (MaintenanceWindow.state_at); completed early, extended and cancelled are people's
    decisions."""

    SCHEDULED = "scheduled", _("Scheduled")
    IN_PROGRESS = "in_progress", _("In progress")
    EXTENDED = "extended", _("Extended")
    COMPLETED = "completed", _("Completed")
    CANCELLED = "cancelled", _("Cancelled")


class MaintenanceWindow(models.Model):
    """The maintenance window of a release day, in the time zone it was planned in.

    Start and end are stored as instants (aware, UTC in the database) and shown in
    `time_zone`, so a window that crosses a daylight-saving change lasts what it says.
    The row is kept when the window is cancelled: calendars that imported it need the
    same UID with a higher SEQUENCE to drop it.
    """

    release = models.OneToOneField(
        Release,
        on_delete=models.CASCADE,
        related_name="maintenance_window",
        verbose_name=_("release"),
    )
    # An IANA zone name ("Europe/Madrid"), checked against zoneinfo when set.
    time_zone = models.CharField(_("time zone"), max_length=64)
    starts_at = models.DateTimeField(_("start"))
    ends_at = models.DateTimeField(_("end"))
    # As last recorded by an operation or by beat; read through state_at, which also
    # follows the clock between beat's runs.
    state = models.CharField(
        _("state"), max_length=20, choices=WindowState.choices, default=WindowState.SCHEDULED
    )
    # Why it was last extended or cancelled.
    reason = models.TextField(_("reason"), blank=True)
    # The calendar event's UID, fixed when the window is first scheduled so that a later
    # change of CALENDAR_UID_DOMAIN never turns it into another event.
    uid = models.CharField(_("UID"), max_length=255, unique=True)
    # The calendar event's SEQUENCE: one more at every change people make to the window.
    sequence = models.PositiveIntegerField(_("sequence"), default=0)
    changed_at = models.DateTimeField(_("changed at"), default=timezone.now)

    class Meta:
        verbose_name = _("maintenance window")
        verbose_name_plural = _("maintenance windows")

    def __str__(self) -> str:
        return f"{self.release.version}: {self.starts_at:%Y-%m-%d %H:%M} – {self.ends_at:%H:%M}"

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.time_zone)

    @property
    def local_start(self) -> datetime:
        return self.starts_at.astimezone(self.zone)

    @property
    def local_end(self) -> datetime:
        return self.ends_at.astimezone(self.zone)

    def summary(self) -> str:
        """The window in its own zone and in UTC, the same for every reader: what the
        seed's checklist item keeps as its evidence."""
        utc = ZoneInfo("UTC")
        return (
            f"{self.local_start:%Y-%m-%d %H:%M %Z} – {self.local_end:%Y-%m-%d %H:%M %Z} "
            f"({self.time_zone}; {self.starts_at.astimezone(utc):%Y-%m-%d %H:%M} – "
            f"{self.ends_at.astimezone(utc):%Y-%m-%d %H:%M} UTC)"
        )

    def state_at(self, now: datetime) -> WindowState:
        """The state at `now`: a window nobody closed is in progress from its start and
        completed at its end, whether or not beat has recorded it yet."""
        if self.state in (WindowState.CANCELLED, WindowState.COMPLETED):
            return WindowState(self.state)
        if now >= self.ends_at:
            return WindowState.COMPLETED
        if self.state == WindowState.EXTENDED:
            return WindowState.EXTENDED
        if now >= self.starts_at:
            return WindowState.IN_PROGRESS
        return WindowState.SCHEDULED


class DeployResult(models.TextChoices):
    SUCCESS = "success", _("success")
    FAILURE = "failure", _("failure")


class Deployment(models.Model):
    """One go-live attempt's deploy: when it started and finished, who said so, and
    how it went. Written by workflow.rollback."""

    release = models.ForeignKey(
        Release, on_delete=models.CASCADE, related_name="deployments", verbose_name=_("release")
    )
    started_at = models.DateTimeField(_("started at"), default=timezone.now)
    started_by_label = models.CharField(_("started by"), max_length=200)
    start_reason = models.TextField(_("start reason"), blank=True)
    finished_at = models.DateTimeField(_("finished at"), null=True, blank=True)
    finished_by_label = models.CharField(_("finished by"), max_length=200, blank=True)
    finish_reason = models.TextField(_("finish reason"), blank=True)
    result = models.CharField(_("result"), max_length=10, choices=DeployResult.choices, blank=True)

    class Meta:
        ordering = ["release", "-started_at", "-pk"]
        verbose_name = _("deploy")
        verbose_name_plural = _("deploys")

    def __str__(self) -> str:
        return f"{self.release.version}: deploy started {self.started_at:%Y-%m-%d %H:%M}"


class RollbackSeverity(models.TextChoices):
    CRITICAL = "critical", _("critical: the service is down or data is at risk")
    MAJOR = "major", _("major: a main feature is broken")
    MINOR = "minor", _("minor: degraded, with a workaround")


class Rollback(models.Model):
    """A declared rollback of a release's deploy: its reason and severity, and the
    stamps of its course. Steps are ticked on its RollbackStepRecords."""

    release = models.ForeignKey(
        Release, on_delete=models.CASCADE, related_name="rollbacks", verbose_name=_("release")
    )
    deployment = models.ForeignKey(
        Deployment,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("deploy"),
    )
    severity = models.CharField(_("severity"), max_length=10, choices=RollbackSeverity.choices)
    reason = models.TextField(_("reason"))
    # When the problem was noticed, as the person declaring says; may precede declaring.
    detected_at = models.DateTimeField(_("detected at"), null=True, blank=True)
    declared_at = models.DateTimeField(_("declared at"), default=timezone.now)
    declared_by_label = models.CharField(_("declared by"), max_length=200)
    mitigated_at = models.DateTimeField(_("mitigated at"), null=True, blank=True)
    mitigated_by_label = models.CharField(_("mitigated by"), max_length=200, blank=True)
    mitigated_reason = models.TextField(_("mitigation reason"), blank=True)
    resolved_at = models.DateTimeField(_("resolved at"), null=True, blank=True)
    resolved_by_label = models.CharField(_("resolved by"), max_length=200, blank=True)
    resolved_reason = models.TextField(_("resolution reason"), blank=True)
    # The cause of the rollback: required to close it.
    cause = models.TextField(_("cause of the rollback"), blank=True)
    closed_at = models.DateTimeField(_("closed at"), null=True, blank=True)
    closed_by_label = models.CharField(_("closed by"), max_length=200, blank=True)

    class Meta:
        ordering = ["release", "-declared_at", "-pk"]
        verbose_name = _("rollback")
        verbose_name_plural = _("rollbacks")

    def __str__(self) -> str:
        return f"{self.release.version}: rollback declared {self.declared_at:%Y-%m-%d %H:%M}"

    @property
    def is_open(self) -> bool:
        return self.closed_at is None


class RollbackStepRecord(models.Model):
    """How one step of the plan went in one rollback: ticked by its owner, with a note
    and an evidence link."""

    rollback = models.ForeignKey(
        Rollback, on_delete=models.CASCADE, related_name="records", verbose_name=_("rollback")
    )
    step = models.ForeignKey(
        RollbackStep, on_delete=models.CASCADE, related_name="records", verbose_name=_("step")
    )
    done_at = models.DateTimeField(_("done at"), null=True, blank=True)
    done_by_label = models.CharField(_("done by"), max_length=200, blank=True)
    note = models.TextField(_("note"), blank=True)
    evidence_url = models.URLField(_("evidence link"), max_length=1000, blank=True)
    changed_at = models.DateTimeField(_("changed at"), null=True, blank=True)
    changed_by_label = models.CharField(_("changed by (name)"), max_length=200, blank=True)

    class Meta:
        ordering = ["rollback", "step__position"]
        constraints = [
            models.UniqueConstraint(fields=["rollback", "step"], name="one_record_per_step")
        ]
        verbose_name = _("rollback step record")
        verbose_name_plural = _("rollback step records")

    def __str__(self) -> str:
        return f"{self.rollback}: {self.step}"

    @property
    def done(self) -> bool:
        return self.done_at is not None


class AuditExport(models.Model):
    """One download of the audit trail as CSV, written by a Celery worker in parts that
    the web process streams as they come and deletes once sent. Formatting 100,000
    events is seconds of Python: in the web process it would share the interpreter lock
    with every page that process serves."""

    release = models.ForeignKey(
        Release, on_delete=models.CASCADE, related_name="exports", verbose_name=_("release")
    )
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.CASCADE,
        related_name="+",
        null=True,
        verbose_name=_("requested by"),
    )
    # The audit page's filter as the person submitted it (a query string), read the way
    # the page reads it.
    query = models.TextField(_("filter"), blank=True)
    language = models.CharField(_("language"), max_length=16)
    zone = models.CharField(_("time zone"), max_length=64)
    # Where someone acted from is personal data: staff only.
    show_addresses = models.BooleanField(_("show addresses"), default=False)
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)
    started_at = models.DateTimeField(_("started at"), null=True, blank=True)
    parts_written = models.PositiveIntegerField(_("parts written"), default=0)
    finished_at = models.DateTimeField(_("finished at"), null=True, blank=True)
    error = models.TextField(_("error"), blank=True)

    class Meta:
        verbose_name = _("audit export")
        verbose_name_plural = _("audit exports")

    def __str__(self) -> str:
        return f"{self.release_id}: audit export {self.pk}"


class AuditExportPart(models.Model):
    """A few thousand lines of an export, numbered from 0 in the order they are sent."""

    export = models.ForeignKey(
        AuditExport, on_delete=models.CASCADE, related_name="parts", verbose_name=_("export")
    )
    number = models.PositiveIntegerField(_("number"))
    data = models.BinaryField(_("data"))

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["export", "number"], name="one_export_part_per_number")
        ]
        verbose_name = _("audit export part")
        verbose_name_plural = _("audit export parts")

    def __str__(self) -> str:
        return f"{self.export_id}: part {self.number}"
