"""The read side of a release: what the board and the status page show.

Pages and live updates render from the same context, so a pushed fragment is exactly
what a reload would show. A render depends only on the data and a `Viewer` (never on a
request), which lets the live stream render once per distinct kind of viewer and call
this from a worker thread.

CSRF: fragments are rendered without a request, so their forms carry no
csrfmiddlewaretoken. Full-page renders add the hidden field for the no-JavaScript
fallback; htmx requests send the token as the X-CSRFToken header from the body's
hx-headers, so forms inside live-swapped fragments keep working through htmx.
"""

from __future__ import annotations

import re
import threading
from collections import OrderedDict
from collections.abc import Collection, Hashable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import TYPE_CHECKING, Any, Literal

from django.conf import settings
from django.db.models import Prefetch
from django.db.models.query import prefetch_related_objects
from django.template.loader import get_template, render_to_string
from django.urls import reverse
from django.utils import timezone, translation
from django.utils.safestring import SafeString
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy, ngettext

from . import performs, policy
from .actors import standing
from .evidence import result_text
from .models import (
    CLOSED_STATUSES,
    ActorKind,
    AuditAction,
    AuditEvent,
    CheckOutcome,
    CheckReason,
    DeployResult,
    GoLiveApproval,
    ItemState,
    MaintenanceWindow,
    Release,
    ReleaseItem,
    ReleaseStatus,
    Role,
    Rollback,
    SignOff,
    Stakeholder,
    blocking_reasons,
    gate_overrides,
    in_signoff_scope,
    reason_text,
    status_moves,
)
from .nudges import RoleWork, work_by_role
from .pages import CSRF_PLACEHOLDER, PageCache, compacted
from .rollout import Latest, RollbackView, Rollout, latest_of, rollout_context
from .templatetags.moments import moment
from .timeline import by_role, duration_text

if TYPE_CHECKING:
    from django.contrib.auth.models import AnonymousUser, User
    from django_stubs_ext import StrOrPromise

    # request.user under the default AUTH_USER_MODEL.
    AnyUser = User | AnonymousUser

Page = Literal["board", "status"]
# Who nudged a role last, and when.
Nudged = tuple[str, datetime]

# The panels every update carries, in page order; each template's top-level element has
# the DOM id the fragment replaces.
_PANELS = (
    "releases/_banner.html",
    "releases/_status.html",
    "releases/_gonogo.html",
    "releases/_progress.html",
    "releases/_signoffs.html",
    "releases/_window.html",
    "releases/_rollout.html",
)
PANELS: dict[str, tuple[str, ...]] = {
    # A lead's own open items and sign-offs: the board's, since the status page changes
    # nothing.
    "board": (*_PANELS, "releases/_mine.html"),
    "status": (
        *_PANELS,
        "releases/_contacts.html",
        "releases/_incident_now.html",
        "releases/_incident_updates.html",
    ),
}
ITEM_PARTIAL = "releases/board.html#item"
CLOSED_SECTION_PARTIAL = "releases/board.html#closed_section"
# A board of more items than this renders only its first sections with work left, as
# many as fit in this many rows; the others open on demand. At 2,000 items the whole
# board took 2.8 s to render and weighed 4.5 MB.
ON_DEMAND_ABOVE = 120
_REASONS_FIRST = 6
_REASONS_LISTED = 100
# "My open items" lists this many; the "Mine" filter shows the rest. A lead's sign-off
# comes before the list, so a long one never pushes it off a phone's first screen.
_MINE_LISTED = 40

_SETTLED = frozenset(ItemState.settled())
_STOPPED = frozenset({ItemState.BLOCKED, ItemState.FAILED})
_ROLE_ORDER = {role: index for index, role in enumerate(Role.values)}
_URGENT = frozenset({"status", "item-blocked", "check-failed", "not-verified"})
_PENDING = "item-open"


@dataclass(frozen=True)
class Viewer:
    """Everything a render depends on besides the data. Hashable: the live stream keeps
    one render per distinct Viewer. What the viewer may do is asked of releases.policy,
    the same functions the workflow enforces."""

    who: policy.Who
    # Signed any sign-off on this release: the two-person rule then bars approving.
    signed_off: bool
    language: str
    # A share link for people outside the company: contacts and actors by role only.
    hides_personal: bool = False
    # Any share link: the team's notes and evidence links stay with the team.
    shared: bool = False

    @property
    def roles(self) -> frozenset[str]:
        return self.who.roles

    @property
    def is_staff(self) -> bool:
        return self.who.is_staff

    @property
    def read_only(self) -> bool:
        return self.who.read_only

    @property
    def is_product_owner(self) -> bool:
        return Role.PRODUCT_OWNER in self.who.roles

    @property
    def on_team(self) -> bool:
        """Works on the release (a lead, the product owner, staff): reads what is said to
        the team, such as what the product owner must do next. Support and share links
        only follow."""
        return self.who.is_staff or bool(self.who.roles - {Role.SUPPORT})

    @property
    def may_post_update(self) -> bool:
        """Whether this person may post an incident update, even where the page they
        look at changes nothing (the status page)."""
        working = policy.is_read_only(self.who.roles, is_staff=self.who.is_staff)
        return bool(policy.may_post_update(replace(self.who, read_only=working)))

    def can_change(self, item: ReleaseItem) -> bool:
        return bool(
            policy.may_change_item(self.who, owner_role=item.owner_role, checks=item.checks)
        )

    def can_override(self, item: ReleaseItem) -> bool:
        """Tick `item` over its failing check now: it fails, no override covers that
        failure yet, and the rules let this viewer give one."""
        return (
            bool(item.failing_check)
            and not item.overridden
            and bool(policy.may_override_check(self.who, owner_role=item.owner_role))
        )

    def can_perform(self, item: ReleaseItem) -> bool:
        """Offer "Perform…" on an item the app performs for it."""
        return bool(item.perform) and bool(policy.may_perform(self.who, owner_role=item.owner_role))

    def can_sign_off(self, role: str) -> bool:
        return bool(policy.may_sign_off(self.who, role=role))

    def can_set_status(self, status: str) -> bool:
        return bool(policy.may_set_status(self.who, status=status))

    @property
    def may_approve(self) -> bool:
        return bool(policy.may_approve(self.who))

    @property
    def may_run_checks(self) -> bool:
        return bool(policy.may_run_checks(self.who))

    @property
    def may_nudge(self) -> bool:
        return bool(policy.may_nudge(self.who))

    @property
    def sets_reminders(self) -> bool:
        """Staff turn the release's approval reminders off and on, where they may act."""
        return self.who.is_staff and not self.who.read_only


def viewer_for(
    user: AnyUser,
    release: Release,
    *,
    read_only: bool = False,
    language: str,
    hides_personal: bool = False,
) -> Viewer:
    """The viewer a person is on this release; read_only for pages that change nothing
    (the status page), and for anyone not logged in (a share link, which may hide
    personal details)."""
    if not user.is_authenticated:
        who = policy.Who(ActorKind.PERSON, read_only=True)
        return Viewer(who, False, language, hides_personal=hides_personal, shared=True)
    roles, signed_off = standing(user.pk, release.pk, release.revision)
    is_staff = user.is_staff
    who = policy.Who(
        ActorKind.PERSON,
        roles,
        is_staff,
        read_only=read_only or policy.is_read_only(roles, is_staff=is_staff),
        closed=release.status in CLOSED_STATUSES,
    )
    return Viewer(who=who, signed_off=signed_off, language=language)


# --- what the templates get ---------------------------------------------------------------


@dataclass(frozen=True)
class CheckShown:
    """The latest result of one automated check of an item, as the board shows it.
    Formatted once here: a 600-item board prints hundreds of these."""

    name: str
    outcome: str
    outcome_label: str
    reason_label: str
    # ISO time for <time datetime>, and as the reader's locale writes it.
    at_iso: str
    at_shown: str
    latency: str
    evidence: str


def _check_shown(name: str, result: Any) -> CheckShown:
    if not isinstance(result, dict):
        return CheckShown(name, "", _("not run yet"), "", "", "", "", "")
    outcome = str(result.get("outcome", ""))
    reason = str(result.get("reason", ""))
    try:
        at: datetime | None = datetime.fromisoformat(str(result.get("at")))
    except ValueError:
        at = None
    latency = result.get("latency_ms")
    return CheckShown(
        name=name,
        outcome=outcome,
        outcome_label=str(CheckOutcome(outcome).label) if outcome in CheckOutcome.values else "",
        reason_label=str(CheckReason(reason).label)
        if reason in CheckReason.values and outcome != CheckOutcome.PASS
        else "",
        at_iso=at.isoformat() if at else "",
        at_shown=moment(at),
        latency=_("%(ms)d ms") % {"ms": latency} if isinstance(latency, int) else "",
        evidence=result_text(result),
    )


def _at(value: Any) -> str:
    try:
        return moment(datetime.fromisoformat(str(value)))
    except ValueError:
        return ""


def performed_lines(performed: Mapping[str, Any]) -> list[str]:
    """What ReleaseItem.performed says, as sentences in the active language."""
    state = performed.get("state")
    if not state:
        return []
    recipients = ", ".join(str(r) for r in performed.get("recipients", []))
    values = {
        "who": performed.get("requested_by", ""),
        "recipients": recipients,
        "channel": performed.get("channel", ""),
        "time": _at(performed.get("at")),
        "ids": ", ".join(str(i) for i in performed.get("message_ids", [])),
    }
    lines: list[str] = []
    if state == performs.SENDING:
        lines.append(_("Sending to %(recipients)s, as %(who)s asked…") % values)
    elif state == performs.AWAITING:
        lines.append(
            _("Delivered to %(recipients)s at %(time)s; waiting for support to say they are ready.")
            % values
        )
    elif state == performs.UNCONFIRMED:
        lines.append(
            _(
                "Accepted by the channel %(channel)s at %(time)s but not confirmed (a Teams "
                "Workflow answers 202 before it posts): the item stays open."
            )
            % values
        )
    elif state == performs.FAILED:
        lines.append(_("Delivery to %(recipients)s failed.") % values)
    elif performed.get("message_ids"):
        lines.append(
            _("Delivered to %(recipients)s via %(channel)s at %(time)s; message id %(ids)s.")
            % values
        )
    for entry in performed.get("acknowledged", []):
        lines.append(
            _("%(who)s said “I'm ready” at %(time)s.")
            % {"who": entry.get("by", ""), "time": _at(entry.get("at"))}
        )
    return lines


@dataclass(frozen=True)
class Typed:
    """What one person typed in one of an item's forms (`action` names it: "note", "na",
    …) and had refused, with why: shown back in its field, in the answer to that person
    only. A row carrying it is never shared (row_cache_key)."""

    action: str
    value: str
    error: str


@dataclass(frozen=True)
class ItemRow:
    item: ReleaseItem
    can_change: bool
    mine: bool
    # The first item past the go-live gate carries the gate's marker.
    first_after_gate: bool = False
    checks: tuple[CheckShown, ...] = ()
    # Why its checks could not judge it, when none failed but one could not: the item
    # reads "not verified" beside its state, which stays as it was.
    not_verified: str = ""
    # Shows the form that ticks the item over its failing check, with a reason.
    can_override: bool = False
    # Why this viewer's checkbox is disabled, said to whoever reaches it; "" when it is not.
    tick_locked: str = ""
    # Shows "Perform…", which leads to what the app would send for the item.
    can_perform: bool = False
    # Only in an answer to the person who typed it: a refused form, filled as they sent it.
    typed: Typed | None = None

    @property
    def done(self) -> bool:
        return self.item.state == ItemState.DONE

    # Check failures are stored in English; these read them in the viewer's language.
    @property
    def reason_shown(self) -> str:
        return self.item.shown_reason()

    @property
    def check_failure_shown(self) -> str:
        return self.item.shown_check_failure()

    @property
    def tick_needs_reason(self) -> bool:
        """Its check fails and it is not ticked: a plain tick would be refused, so the
        checkbox gives way to the override form."""
        return bool(self.item.failing_check) and not self.done

    # Strings, not ints: the template engine localizes every number it prints, which
    # cost more than the rest of a row's markup.
    @property
    def key(self) -> str:
        return str(self.item.pk)

    @property
    def version(self) -> str:
        return str(self.item.version)

    # The enums' labels, not get_FOO_display(): that rebuilds a choices dict per call,
    # which was a fifth of a board render.
    @property
    def owner_label(self) -> str:
        return str(Role(self.item.owner_role).label)

    @property
    def sending(self) -> bool:
        return bool(self.item.performed.get("state") == performs.SENDING)

    @property
    def performed_lines(self) -> list[str]:
        """How the app's latest performance of the item went, in the reader's language."""
        return performed_lines(self.item.performed)

    @property
    def state_label(self) -> str:
        if self.item.overridden:
            return _("Overridden")
        return str(ItemState(self.item.state).label)

    @property
    def state_badge(self) -> str:
        # The audit trail's purple "override" badge: a person went past a rule, on record.
        return "override" if self.item.overridden else self.item.state

    # What each of the item's forms starts with: what the person typed there and had
    # refused, else what the item holds (for N/A and blocked, the reason of the state the
    # item is in).
    def _typed_or(self, action: str, held: str) -> str:
        typed = self.typed
        return typed.value if typed is not None and typed.action == action else held

    @property
    def na_reason(self) -> str:
        held = self.item.reason if self.item.state == ItemState.NOT_APPLICABLE else ""
        return self._typed_or("na", held)

    @property
    def blocked_reason(self) -> str:
        held = self.item.reason if self.item.state == ItemState.BLOCKED else ""
        return self._typed_or("blocked", held)

    @property
    def override_reason(self) -> str:
        return self._typed_or("override", "")

    @property
    def note_value(self) -> str:
        return self._typed_or("note", self.item.note)

    @property
    def evidence_value(self) -> str:
        return self._typed_or("evidence", self.item.evidence_url)

    @property
    def refused_form(self) -> str:
        """The action of the form that comes back refused with what was typed; "" for
        none. Compared on every form of every row, where looking up row.typed.action
        through None would raise and be caught each time."""
        return self.typed.action if self.typed is not None else ""

    @property
    def menu_open(self) -> bool:
        """The item's menu shows the refused form it holds, open. The override form is
        never folded away."""
        return self.refused_form not in ("", "override")


@dataclass
class Section:
    name: str
    # Its place among all the board's sections, in checklist order: how it is asked for.
    index: int
    rows: list[ItemRow] = field(default_factory=list)
    # Shown closed, its rows loaded when opened (a big board; see ON_DEMAND_ABOVE).
    on_demand: bool = False

    @property
    def has_checks(self) -> bool:
        return any(row.item.checks for row in self.rows)

    @property
    def settled(self) -> int:
        return sum(1 for row in self.rows if row.item.state in _SETTLED)

    # What the board's filters ask of a section whose rows are not on the page.
    @property
    def has_mine(self) -> bool:
        return any(row.mine for row in self.rows)

    @property
    def has_pending(self) -> bool:
        return self.settled < len(self.rows)

    @property
    def has_stopped(self) -> bool:
        return any(row.item.state in _STOPPED for row in self.rows)


@dataclass
class Phase:
    name: str
    sections: list[Section] = field(default_factory=list)

    @property
    def label(self) -> str:
        return _phase_label(self.name)


@dataclass
class Tally:
    """Progress of a group of items (a phase, a role)."""

    key: str
    # A role's label stays lazy, translated when the template shows it.
    label: StrOrPromise
    total: int = 0
    done: int = 0
    na: int = 0
    stopped: int = 0
    # Required items not done or N/A: what holds a lead's sign-off back.
    required_open: int = 0

    @property
    def settled(self) -> int:
        return self.done + self.na

    @property
    def percent(self) -> int:
        return round(100 * self.settled / self.total) if self.total else 100

    def add(self, item: ReleaseItem) -> None:
        self.total += 1
        if item.state == ItemState.DONE:
            self.done += 1
        elif item.state == ItemState.NOT_APPLICABLE:
            self.na += 1
        elif item.state in _STOPPED:
            self.stopped += 1
        if item.required and item.state not in _SETTLED:
            self.required_open += 1


@dataclass
class SignOffRow:
    # Its phase's place in the sign-off panel: its DOM ids are named after it, in the panel
    # and under "My open items" alike.
    number: int
    phase: str
    role: str
    role_label: StrOrPromise
    people: list[str]
    tally: Tally
    signed: SignOff | None
    # The latest reopened sign-off, shown while nobody has signed again.
    reopened: SignOff | None
    can_act: bool
    # Its sign-off form's button and hint in the panel (releases/_signoff_form.html).
    button_id: str
    hint_id: str
    # Why it was reopened, as this viewer reads it.
    reopened_reason: str = ""

    @property
    def ready(self) -> bool:
        return self.tally.required_open == 0

    @property
    def optional_open(self) -> int:
        return self.tally.total - self.tally.settled - self.tally.required_open


@dataclass
class PhaseSignOffs:
    phase: str
    rows: list[SignOffRow]

    @property
    def label(self) -> str:
        return _phase_label(self.phase)


@dataclass(frozen=True)
class MySignOff:
    """One of the viewer's sign-offs as "My open items" offers it, numbered as the sign-off
    panel numbers it."""

    label: str
    row: SignOffRow
    # Its sign-off form's button and hint here, apart from the panel's.
    button_id: str
    hint_id: str


@dataclass(frozen=True)
class MyOpenItem:
    row: ItemRow
    # The row's own id, or its section's where a big board has not loaded it.
    anchor: str


@dataclass(frozen=True)
class MyOpenPhase:
    label: str
    items: list[MyOpenItem]


@dataclass(frozen=True)
class MyOpenItems:
    """What a lead sees first on the board: the items of their roles that are not done or
    N/A, and their sign-offs. Read from the viewer's roles only, never from who they are,
    so that it is shared like the rest of the board (see releases.pages)."""

    signoffs: list[MySignOff]
    phases: list[MyOpenPhase]
    count: int

    @property
    def unlisted(self) -> int:
        return self.count - sum(len(phase.items) for phase in self.phases)


@dataclass(frozen=True)
class OverrideShown:
    """A failing check go-live was, or would be, approved over, as the go/no-go panel
    lists it: from the approval's record once approved, from the items before."""

    text: str
    role_label: str
    failure: str
    reason: str
    by: str
    at_iso: str
    at_shown: str


def _override_shown(record: Mapping[str, Any]) -> OverrideShown:
    role = str(record.get("role", ""))
    try:
        at: datetime | None = datetime.fromisoformat(str(record.get("at")))
    except ValueError:
        at = None
    return OverrideShown(
        text=str(record.get("text", "")),
        role_label=str(Role(role).label) if role in Role.values else role,
        failure=str(record.get("failure", "")),
        reason=str(record.get("reason", "")),
        by=str(record.get("by", "")),
        at_iso=at.isoformat() if at else "",
        at_shown=moment(at),
    )


@dataclass(frozen=True)
class RoleWorkShown:
    """A role go-live still waits on, as the go/no-go panel lists it, with the latest
    nudge it got (whoever nudged, and when: data of the release, the same for every
    viewer, so the panel stays one render per kind of viewer)."""

    work: RoleWork
    nudged_by: str = ""
    nudged_at: datetime | None = None

    @property
    def role(self) -> str:
        return self.work.role

    @property
    def label(self) -> str:
        return self.work.label

    @property
    def open_count(self) -> int:
        return len(self.work.open_items)

    @property
    def missing_signoff(self) -> bool:
        return self.work.missing_signoff


def _role_work(
    items: list[ReleaseItem], signoffs: list[SignOff], nudges: Mapping[str, Nudged]
) -> list[RoleWorkShown]:
    shown = []
    for found in work_by_role(items, signoffs):
        by, at = nudges.get(found.role, ("", None))
        shown.append(RoleWorkShown(found, by, at))
    return shown


def _latest_nudges(release: Release) -> dict[str, Nudged]:
    nudges = AuditEvent.objects.filter(release=release, action=AuditAction.ROLE_NUDGED)
    # Oldest first, so that each role keeps its latest.
    return {
        role: (by, at)
        for role, by, at in nudges.order_by("created_at", "id").values_list(
            "target", "actor_label", "created_at"
        )
    }


@dataclass
class GoNoGo:
    approval: GoLiveApproval | None
    # The general list, the same for everyone: models.blocking_reasons, urgent ones first.
    reasons: list[str]
    # What stops this viewer approving now (workflow.approval_obstacles for them).
    obstacles: list[str]
    may_approve: bool
    may_revoke: bool
    # Not reasons to stop: what the approval names, or will name, as given over.
    overrides: list[OverrideShown] = field(default_factory=list)
    # How many of the listed reasons are items merely not done yet; they come last.
    pending: int = 0
    # The roles go-live still waits on, each with a nudge for whoever may nudge.
    waiting_on: list[RoleWorkShown] = field(default_factory=list)
    may_nudge: bool = False
    # settings.APPROVAL_REMINDER_MINUTES: 0 turns reminders off for every release.
    reminder_minutes: int = 0
    # A revoke reason refused, back in its field in that person's answer only.
    revoke_typed: str = ""

    @property
    def listed(self) -> list[str]:
        """Whoever may approve sees their own obstacles; everyone else the general list."""
        return self.obstacles if self.may_approve else self.reasons

    # The panel shows the first reasons, folds away the next ones and counts the rest:
    # a 2,000-item board just created has a thousand pending items before the gate.
    # Only those are ever left out: every other reason is listed, however many.
    @property
    def first(self) -> list[str]:
        return self.listed[:_REASONS_FIRST]

    @property
    def folded(self) -> list[str]:
        return self.listed[_REASONS_FIRST : self._shown]

    @property
    def _shown(self) -> int:
        return max(_REASONS_LISTED, len(self.listed) - self.pending)

    @property
    def more(self) -> int:
        """How many the "show more" line stands for: the folded ones and the rest."""
        return len(self.listed) - len(self.first)

    @property
    def unlisted(self) -> int:
        return max(0, len(self.listed) - self._shown)


def _phase_label(name: str) -> str:
    return name or _("(no phase)")


def _person(user: Any) -> str:
    return str(user.get_full_name() or user.get_username())


@dataclass(frozen=True)
class Loaded:
    """Everything a render of a release reads besides the release, in a fixed number of
    queries whatever the item count: once per page render, and once per revision for
    every kind of viewer its live update goes to."""

    items: list[ReleaseItem]
    signoffs: list[SignOff]
    approvals: list[GoLiveApproval]
    nudges: dict[str, Nudged]
    rollout: Latest
    window: MaintenanceWindow | None


def _load(release: Release) -> Loaded:
    """Stakeholders, contacts and rollback steps are prefetched onto the release, which
    is also where models.blocking_reasons reads them from."""
    prefetch_related_objects(
        [release],
        Prefetch("stakeholders", queryset=Stakeholder.objects.select_related("user")),
        "contacts",
        "rollback_steps",
    )
    return Loaded(
        items=list(release.items.order_by("position")),
        signoffs=list(release.signoffs.select_related("signed_by").order_by("signed_at", "pk")),
        approvals=list(release.approvals.select_related("approved_by").order_by("-approved_at")),
        nudges=_latest_nudges(release),
        rollout=latest_of(release),
        window=MaintenanceWindow.objects.filter(release=release).first(),
    )


def _phases(items: Iterable[ReleaseItem], viewer: Viewer) -> list[Phase]:
    phases: list[Phase] = []
    before_gate = True
    count = 0
    for item in items:
        verdict = item.checks_verdict()
        if not phases or phases[-1].name != item.phase:
            phases.append(Phase(item.phase))
        sections = phases[-1].sections
        if not sections or sections[-1].name != item.section:
            sections.append(Section(item.section, count))
            count += 1
        can_change = viewer.can_change(item)
        sections[-1].rows.append(
            ItemRow(
                item,
                can_change=can_change,
                mine=item.owner_role in viewer.roles,
                first_after_gate=before_gate and not item.before_gate,
                checks=tuple(
                    _check_shown(name, item.check_results.get(name)) for name in item.checks
                ),
                not_verified=verdict.unverified() if verdict.not_verified else "",
                can_override=viewer.can_override(item),
                tick_locked=_tick_locked(item, viewer, can_change=can_change),
                can_perform=viewer.can_perform(item),
            )
        )
        before_gate = item.before_gate
    return phases


def _tick_locked(item: ReleaseItem, viewer: Viewer, *, can_change: bool) -> str:
    if viewer.who.closed:
        return _("The release is closed: nothing on it changes until staff reopen it.")
    if viewer.read_only:
        return _("You follow this release without changing it.")
    if not can_change:
        return _("Only the %(role)s changes this item.") % {"role": Role(item.owner_role).label}
    if item.failing_check and item.state != ItemState.DONE:
        return _("Its automated check fails: tick it over the check with a reason, or fix it.")
    return ""


def _tallies(items: list[ReleaseItem]) -> tuple[list[Tally], list[Tally]]:
    by_phase: dict[str, Tally] = {}
    by_role: dict[str, Tally] = {}
    for item in items:
        by_phase.setdefault(item.phase, Tally(item.phase, _phase_label(item.phase))).add(item)
        by_role.setdefault(
            item.owner_role, Tally(item.owner_role, Role(item.owner_role).label)
        ).add(item)
    return list(by_phase.values()), sorted(by_role.values(), key=lambda t: _ROLE_ORDER[t.key])


def _current_phase(items: list[ReleaseItem]) -> str | None:
    """The first phase that still has a required item not done or N/A."""
    for item in items:
        if item.required and item.state not in _SETTLED:
            return _phase_label(item.phase)
    return None


def _signoffs(
    release: Release, items: list[ReleaseItem], signoffs: list[SignOff], viewer: Viewer
) -> list[PhaseSignOffs]:
    people: dict[str, list[str]] = {}
    roles_by_username: dict[str, set[str]] = {}
    for stake in release.stakeholders.all():
        people.setdefault(stake.role, []).append(_person(stake.user))
        roles_by_username.setdefault(stake.user.get_username(), set()).add(stake.role)
    tallies: dict[tuple[str, str], Tally] = {}
    for item in in_signoff_scope(items):
        if item.owner_role in Role.leads():
            key = (item.phase, item.owner_role)
            tallies.setdefault(key, Tally(item.owner_role, Role(item.owner_role).label))
            tallies[key].add(item)
    signed: dict[tuple[str, str], SignOff] = {}
    reopened: dict[tuple[str, str], SignOff] = {}
    for signoff in signoffs:  # oldest first, so the latest reopened one wins
        key = (signoff.phase, signoff.role)
        (signed if signoff.reopened_at is None else reopened)[key] = signoff
    # Phases in checklist order; within each, leads in Role order.
    leads: dict[str, list[str]] = {item.phase: [] for item in items}
    for phase, role in sorted(tallies, key=lambda key: _ROLE_ORDER[key[1]]):
        leads[phase].append(role)
    panel: list[PhaseSignOffs] = []
    for phase, roles in leads.items():
        if not roles:
            continue
        rows = []
        number = len(panel) + 1
        for place, role in enumerate(roles, start=1):
            key = (phase, role)
            reopened_now = None if key in signed else reopened.get(key)
            rows.append(
                SignOffRow(
                    number=number,
                    phase=phase,
                    role=role,
                    role_label=tallies[key].label,
                    people=people.get(role, []),
                    tally=tallies[key],
                    signed=signed.get(key),
                    reopened=reopened_now,
                    can_act=viewer.can_sign_off(role),
                    button_id=f"signoff-button-{number}-{role}",
                    hint_id=f"signoff-hint-{number}-{place}",
                    reopened_reason=_reopened_reason(reopened_now, viewer, roles_by_username)
                    if reopened_now is not None
                    else "",
                )
            )
        panel.append(PhaseSignOffs(phase, rows))
    return panel


def _reopened_reason(
    signoff: SignOff, viewer: Viewer, roles_by_username: Mapping[str, Collection[str]]
) -> str:
    """ "withdrawn by …" names whoever withdrew it: by their roles on a link that hides
    personal details."""
    said = signoff.reopened_reason_args
    if viewer.hides_personal and isinstance(said, dict) and "who" in said:
        named = by_role(str(said["who"]), roles_by_username)
        return reason_text(signoff.reopened_reason, {**said, "who": named})
    return signoff.reopened_reason_text


def _my_open_items(
    phases: list[Phase], signoffs: list[PhaseSignOffs], viewer: Viewer
) -> MyOpenItems | None:
    """None for anyone who signs nothing off (support, the product owner, staff)."""
    if viewer.read_only or not viewer.roles & set(Role.leads()):
        return None
    mine = [
        MySignOff(
            group.label,
            row,
            button_id=f"mine-signoff-button-{row.number}-{row.role}",
            hint_id=f"mine-signoff-why-{row.number}-{row.role}",
        )
        for group in signoffs
        for row in group.rows
        if row.role in viewer.roles
    ]
    shown: list[MyOpenPhase] = []
    count = 0
    for phase in phases:
        listed: list[MyOpenItem] = []
        for section in phase.sections:
            for row in section.rows:
                if not row.mine or row.item.state in _SETTLED:
                    continue
                count += 1
                if count <= _MINE_LISTED:
                    place = f"section-{section.index}" if section.on_demand else f"item-{row.key}"
                    listed.append(MyOpenItem(row, place))
        if listed:
            shown.append(MyOpenPhase(phase.label, listed))
    return MyOpenItems(mine, shown, count)


def _gonogo(release: Release, loaded: Loaded, viewer: Viewer) -> GoNoGo:
    items = loaded.items
    active = next((a for a in loaded.approvals if a.revoked_at is None), None)
    # Stable sort: what is actively stopping the release first, then the rest, and the
    # items that are simply not done yet last, where the panel may count them instead.
    general = sorted(
        blocking_reasons(release, items, loaded.signoffs),
        key=lambda reason: 0 if reason.code in _URGENT else 2 if reason.code == _PENDING else 1,
    )
    reasons = [reason.message for reason in general]
    obstacles = policy.personal_obstacles(
        reasons,
        already_approved=active is not None,
        may_approve=bool(policy.may_approve(replace(viewer.who, read_only=False))),
        signed_off=viewer.signed_off,
        two_person_rule=release.two_person_rule,
    )
    overrides = active.overrides if active is not None else gate_overrides(release, items)
    return GoNoGo(
        approval=active,
        reasons=reasons,
        obstacles=obstacles,
        may_approve=viewer.may_approve and active is None,
        # A deploy under way keeps its approval until it ends or is rolled back.
        may_revoke=viewer.may_approve and active is not None and not _deploying(loaded),
        overrides=[_override_shown(record) for record in overrides],
        pending=sum(1 for reason in general if reason.code == _PENDING),
        waiting_on=_role_work(items, loaded.signoffs, loaded.nudges) if active is None else [],
        may_nudge=viewer.may_nudge,
        reminder_minutes=settings.APPROVAL_REMINDER_MINUTES,
    )


def _deploying(loaded: Loaded) -> bool:
    deployment = loaded.rollout.deployment
    return deployment is not None and deployment.finished_at is None


def _revoked_banner(approvals: list[GoLiveApproval]) -> GoLiveApproval | None:
    """The latest approval, when it was revoked and nobody has approved since."""
    latest = approvals[0] if approvals else None
    return latest if latest is not None and latest.revoked_at is not None else None


def board_context(release: Release, viewer: Viewer, loaded: Loaded | None = None) -> dict[str, Any]:
    """Everything board.html needs, in a fixed number of queries (none more when the
    release was `loaded` already)."""
    loaded = loaded if loaded is not None else _load(release)
    items, signoffs, approvals = loaded.items, loaded.signoffs, loaded.approvals
    by_phase, by_role = _tallies(items)
    phases = _phases(items, viewer)
    if len(items) > ON_DEMAND_ABOVE:
        _open_first_unsettled(phases)
    signoff_panel = _signoffs(release, items, signoffs, viewer)
    return {
        "release": release,
        "viewer": viewer,
        "phases": phases,
        "rows": [row for phase in phases for section in phase.sections for row in section.rows],
        "phase_progress": by_phase,
        "role_progress": by_role,
        "current_phase": _current_phase(items),
        "signoff_panel": signoff_panel,
        "my_open_items": _my_open_items(phases, signoff_panel, viewer),
        "gonogo": _gonogo(release, loaded, viewer),
        "revoked": _revoked_banner(approvals),
        "status_moves": [] if _deploying(loaded) else _status_moves(release, viewer),
        "status_moves_held": _status_moves_held(release, loaded),
        "rollout": rollout_context(
            release,
            viewer.who,
            loaded.rollout,
            hides_personal=viewer.hides_personal,
            shared=viewer.shared,
        ),
        # The maintenance window panel's (templatetags/window.py).
        "window": loaded.window,
        "has_checks": any(item.checks for item in items),
        # Reversed once: every automated item's form posts to it.
        "run_checks_url": reverse("checks:run", args=[release.version]),
    }


def _open_first_unsettled(phases: list[Phase]) -> None:
    """On a big board only the first sections with work left are rendered, up to
    ON_DEMAND_ABOVE rows; the others, settled ones included, open on demand."""
    room = ON_DEMAND_ABOVE
    for phase in phases:
        for section in phase.sections:
            if section.has_pending and len(section.rows) <= room:
                room -= len(section.rows)
            else:
                section.on_demand = True


def section_context(release: Release, viewer: Viewer, index: int) -> dict[str, Any] | None:
    """What one section's rows need when opened on demand; None if there is no such
    section."""
    context = board_context(release, viewer)
    for phase in context["phases"]:
        for section in phase.sections:
            if section.index == index:
                return {**context, "phase": phase, "section": section}
    return None


def show_typed(
    context: dict[str, Any], item_id: int, typed: Typed, *, open_section: bool = False
) -> None:
    """Put what a person typed and had refused in the item's form, in a context built
    for the answer to that request alone (board_context builds its rows anew each call).
    `open_section` renders the item's section where a big board would load it on demand,
    for a page that must show the form."""
    for phase in context["phases"]:
        for section in phase.sections:
            for place, row in enumerate(section.rows):
                if row.item.pk == item_id:
                    section.rows[place] = replace(row, typed=typed)
                    if open_section:
                        section.on_demand = False
    context["rows"] = [
        row for phase in context["phases"] for section in phase.sections for row in section.rows
    ]


def _status_moves(release: Release, viewer: Viewer) -> list[tuple[str, str]]:
    if viewer.read_only:
        return []
    return [
        (status, str(ReleaseStatus(status).label))
        for status in status_moves(release.status)
        if viewer.can_set_status(status)
    ]


def _status_moves_held(release: Release, loaded: Loaded) -> str:
    """Why workflow.set_status would refuse every move offered: the board shows them
    disabled with it rather than as buttons that end in a refusal."""
    rollback = loaded.rollout.rollback
    if release.status == ReleaseStatus.ROLLED_BACK and rollback is not None and rollback.is_open:
        return _("The rollback is still open: close it with its cause before moving on.")
    return ""


@dataclass(frozen=True)
class StoppedItem:
    """A blocked or failed item as the status page's "now" block names it, with how
    long it has been so (as of the render)."""

    text: str
    role_label: str
    state: str
    state_label: str
    reason: str
    since: datetime | None
    lasted: str


def _stopped_items(rows: Iterable[ItemRow], now: datetime) -> list[StoppedItem]:
    return [
        StoppedItem(
            text=row.item.text,
            role_label=row.owner_label,
            state=row.item.state,
            state_label=str(ItemState(row.item.state).label),
            reason=row.reason_shown,
            since=row.item.changed_at,
            lasted=duration_text(now - row.item.changed_at) if row.item.changed_at else "",
        )
        for row in rows
        if row.item.state in _STOPPED
    ]


# The status of a release as the people following it say it.
STATUS_IN_WORDS = {
    ReleaseStatus.PLANNED: gettext_lazy("Work on the checklist has not started."),
    ReleaseStatus.IN_PROGRESS: gettext_lazy("The team is working through the checklist."),
    ReleaseStatus.APPROVED: gettext_lazy(
        "Approved for go-live; the deploy has not been recorded yet."
    ),
    ReleaseStatus.DEPLOYED: gettext_lazy("The release is in production."),
    ReleaseStatus.ROLLED_BACK: gettext_lazy("Production runs the previous version again."),
    ReleaseStatus.CANCELLED: gettext_lazy("This release will not go live."),
}


def _rollback_in_words(rollback: Rollback, rollout: Rollout) -> str:
    if rollback.closed_at is not None:
        return _("The rollback is closed: production runs the previous version again.")
    if rollback.resolved_at is not None:
        return _(
            "The rollback is resolved: production runs the previous version again. "
            "It is yet to be closed with its cause."
        )
    if not rollout.steps:
        return _("A rollback is under way.")
    total = len(rollout.steps)
    if rollback.mitigated_at is not None:
        said = ngettext(
            "A rollback is under way, its impact mitigated: %(done)s of %(total)s step done.",
            "A rollback is under way, its impact mitigated: %(done)s of %(total)s steps done.",
            total,
        )
    else:
        said = ngettext(
            "A rollback is under way: %(done)s of %(total)s step done.",
            "A rollback is under way: %(done)s of %(total)s steps done.",
            total,
        )
    return said % {"done": rollout.steps_done, "total": total}


def _status_in_words(release: Release, rollout: Rollout, approval: GoLiveApproval | None) -> str:
    """The status, told by how the deploy and the rollback stand where they say more. A
    deploy counts only under the approval in force: one started before it belongs to an
    earlier go-live."""
    status = ReleaseStatus(release.status)
    if status == ReleaseStatus.ROLLED_BACK and rollout.rollback is not None:
        return _rollback_in_words(rollout.rollback, rollout)
    deployment = rollout.deployment
    if (
        deployment is not None
        and approval is not None
        and deployment.started_at >= approval.approved_at
    ):
        if status == ReleaseStatus.APPROVED and rollout.deploy_running:
            return _("Approved for go-live; the deploy is under way.")
        if status == ReleaseStatus.APPROVED and rollout.deploy_failed:
            return _("The deploy failed; go-live stays approved for a rollback or another try.")
        if status == ReleaseStatus.DEPLOYED and deployment.result == DeployResult.SUCCESS:
            return _("The deploy succeeded; the release is in production.")
    return str(STATUS_IN_WORDS.get(status, ""))


def _deployed_at(release: Release) -> datetime | None:
    """When the deploy was recorded: the latest move to deployed, on a release that is
    or was deployed."""
    if release.status not in (ReleaseStatus.DEPLOYED, ReleaseStatus.ROLLED_BACK):
        return None
    return (
        release.audit_events.filter(
            action=AuditAction.RELEASE_STATUS, after__status=ReleaseStatus.DEPLOYED
        )
        .order_by("-created_at", "-id")
        .values_list("created_at", flat=True)
        .first()
    )


def status_context(
    release: Release, viewer: Viewer, loaded: Loaded | None = None
) -> dict[str, Any]:
    context = board_context(release, viewer, loaded)
    context["contacts"] = list(release.contacts.all())
    context["rollback_steps"] = [RollbackView(step) for step in release.rollback_steps.all()]
    updates = list(release.incident_updates.order_by("-posted_at", "-id"))
    context.update(
        status_in_words=_status_in_words(release, context["rollout"], context["gonogo"].approval),
        deployed_at=_deployed_at(release),
        incident_updates=updates,
        latest_update=updates[0] if updates else None,
        stopped_items=_stopped_items(context["rows"], timezone.now()),
    )
    return context


def render_fragments(
    context: dict[str, Any],
    page: Page,
    *,
    since_revision: int,
    item_ids: Collection[int] = (),
    headings: bool = False,
) -> str:
    """The panels of `page` plus the item rows changed after `since_revision` (and any in
    `item_ids`), each marked hx-swap-oob so htmx puts it in place by its DOM id; with
    `headings`, for live.js only, the headings of their sections (see _changed_rows)."""
    rows = _changed_rows(context, page, since_revision, item_ids, headings=headings)
    return _compacted([*rows, *render_panels(context, page).values()])


def _compacted(fragments: list[str]) -> str:
    """Fragments for a page that is compacted (releases.pages), compacted alike: a live
    update goes to every open page, and an answer must read as the update would."""
    return compacted("\n".join(fragments).encode()).decode()


def _changed_rows(
    context: dict[str, Any],
    page: Page,
    since_revision: int,
    item_ids: Collection[int] = (),
    *,
    headings: bool = False,
) -> list[str]:
    """The changed rows and, with `headings` on a big board, the heading of each section
    holding one: where the page shows that section closed, live.js puts in its new count
    and what the filters know of it (elsewhere the heading has no target, and is
    dropped). Not for htmx's own swaps, which would replace a section the person opened
    with a closed one."""
    if page != "board":
        return []
    fragments: list[str] = []
    headings = headings and len(context["rows"]) > ON_DEMAND_ABOVE
    for phase in context["phases"]:
        for section in phase.sections:
            changed = [
                row
                for row in section.rows
                if row.item.revision > since_revision or row.item.pk in item_ids
            ]
            if headings and changed:
                fragments.append(
                    render_to_string(
                        CLOSED_SECTION_PARTIAL, {**context, "oob": True, "section": section}
                    )
                )
            fragments += [
                render_to_string(ITEM_PARTIAL, {**context, "oob": True, "row": row})
                for row in changed
            ]
    return fragments


# A row's HTML, reused by every render until the item changes: a tick changes one row,
# and re-rendering the others was most of a board's first render after it (a row the
# viewer may change, with its four forms, costs about 1 ms).
ROW_CACHE_BYTES = 16 * 1024 * 1024
row_renders: PageCache[bytes] = PageCache(ROW_CACHE_BYTES)


def row_html(row: ItemRow, context: Mapping[Any, Any]) -> SafeString:
    """The item partial for `row` in a render whose values are `context`. Only renders
    that hold no person's own CSRF token nor what they typed are shared."""

    def render() -> str:
        return get_template(ITEM_PARTIAL).render({**context, "row": row})

    key = row_cache_key(row, context)
    if key is None:
        return SafeString(render())
    return SafeString(row_renders.get_or_render(key, lambda: render().encode()).decode())


def row_cache_key(row: ItemRow, context: Mapping[Any, Any]) -> Hashable | None:
    """Everything the item partial reads, as one key; None when the render holds a
    person's own CSRF token or what they typed, and may not be shared. The item changes
    its revision with every change (live updates rely on it too), the rest is the
    viewer's and the render's."""
    token = context.get("csrf_token", "")
    if token not in ("", CSRF_PLACEHOLDER) or row.typed is not None:
        return None
    item, viewer, release = row.item, context["viewer"], context["release"]
    return (
        item.pk, item.revision, item.version, row.can_change, row.mine,
        row.first_after_gate, row.checks, row.not_verified, row.can_override, row.tick_locked,
        row.can_perform,
        viewer.may_run_checks, release.version, translation.get_language(), token,
        bool(context.get("oob")),
    )  # fmt: skip


def render_panels(context: dict[str, Any], page: Page) -> dict[str, str]:
    fragment_context = {**context, "oob": True}
    return {name: render_to_string(name, fragment_context) for name in PANELS[page]}


# A row of a panel that a live update may send alone (`<li id=… data-live-part>`, no
# list inside): a tick changes one lead's sign-off row and two progress bars, not the
# whole panel.
_PART = re.compile(r'<li id="([^"]+)" data-live-part.*?</li>', re.S)


def _changed_parts(before: str | None, now: str) -> list[str]:
    """What to send so that a page showing `before` shows `now`: only the rows that
    changed when nothing else did (same rows, same text around them), else the panel;
    nothing when the page shows it as it is."""
    if before == now:
        return []
    if before is None:
        return [now]
    old_parts = {match.group(1): match.group(0) for match in _PART.finditer(before)}
    new_parts = {match.group(1): match.group(0) for match in _PART.finditer(now)}
    if not new_parts or _PART.sub(r"\1", before) != _PART.sub(r"\1", now):
        return [now]
    return [
        part.replace(" data-live-part", ' data-live-part hx-swap-oob="true"', 1)
        for part_id, part in new_parts.items()
        if old_parts.get(part_id) != part
    ]


class _PanelsSent:
    """The panels each kind of viewer was last sent, and at which revision, so the next
    update from that revision sends only those that changed. Bounded; shared by the
    threads that render updates."""

    def __init__(self, size: int = 1024) -> None:
        self._size = size
        self._sent: OrderedDict[Hashable, tuple[int, dict[str, str]]] = OrderedDict()
        self._lock = threading.Lock()

    def clear(self) -> None:
        with self._lock:
            self._sent.clear()

    def at(self, key: Hashable, revision: int) -> dict[str, str] | None:
        with self._lock:
            known = self._sent.get(key)
            return known[1] if known is not None and known[0] == revision else None

    def remember(self, key: Hashable, revision: int, panels: dict[str, str]) -> None:
        with self._lock:
            known = self._sent.get(key)
            if known is None or known[0] <= revision:
                self._sent[key] = (revision, panels)
                self._sent.move_to_end(key)
            while len(self._sent) > self._size:
                self._sent.popitem(last=False)


panels_sent = _PanelsSent()


@dataclass(frozen=True)
class Snapshot:
    """One revision of a release as every render of its live update reads it: loaded
    once for all the viewers a fan-out sends to (a tick renders the four leads' boards
    and the status page), then dropped with the fan-out, so that nothing shown outlives
    it (evidence goes stale after CHECKS_MAX_AGE)."""

    release: Release
    loaded: Loaded


def load_snapshot(release_id: int) -> Snapshot:
    """The release and its rows, read in that order: no render is older than the
    revision it names."""
    release = Release.objects.get(pk=release_id)
    return Snapshot(release, _load(release))


def render_update(
    snapshot: object, viewer: Hashable, page: str, since_revision: int
) -> tuple[int, str]:
    """(the snapshot's revision, the fragments that changed since `since_revision`).

    Pure read and request-free, so the live stream may call it from a thread. Typed as
    live.Hub's renderer: the hub keys by the viewer, passes on what load_snapshot gave
    it without looking inside, and hands back what it got. Panels that read as they did
    at `since_revision` are left out when this process rendered that revision for the
    same viewer (a tick changes one row and a count or two, not the six panels).
    """
    if not isinstance(snapshot, Snapshot) or not isinstance(viewer, Viewer) or page not in PANELS:
        raise TypeError(f"cannot render {page!r} for {viewer!r} from a {type(snapshot)}")
    shown: Page = "board" if page == "board" else "status"
    release = snapshot.release
    with translation.override(viewer.language):
        build = board_context if shown == "board" else status_context
        context = build(release, viewer, snapshot.loaded)
        key = (release.pk, viewer, shown)
        panels = render_panels(context, shown)
        before = panels_sent.at(key, since_revision) or {}
        changed = [
            part for name, html in panels.items() for part in _changed_parts(before.get(name), html)
        ]
        panels_sent.remember(key, release.revision, panels)
        rows = _changed_rows(context, shown, since_revision, headings=True)
        return release.revision, _compacted([*rows, *changed])
