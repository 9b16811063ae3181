"""The release workflow, one operation at a time: who may do what, what each operation
records (audit trail, revision, live update) and the domain rules it enforces.

The personas are the conftest's: one person per role on `release`, `support` who only
watches, `outsider` who holds no role and `admin` (staff) who may override.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.db.models import Max
from django.utils import timezone, translation

from releases import checklists, notify, policy, workflow
from releases.actors import Person, who_on
from releases.models import (
    AuditAction,
    AuditEvent,
    ChecklistTemplate,
    EmergencyContact,
    GoLiveApproval,
    ItemState,
    Release,
    ReleaseStatus,
    Role,
    TemplateItem,
    blocking_reasons,
)
from releases.workflow import Conflict, WorkflowError
from tests.conftest import build_small_template, item

IP = "203.0.113.7"
LEADS = ("devops", "backend", "frontend", "qa")
EVERYONE = ("devops", "backend", "frontend", "qa", "po", "support", "outsider", "admin")
# One required item before the gate per lead, as build_small_template lays them out.
ITEM_OF = {
    "devops": "TLS certificates installed",
    "backend": "Merge everything",
    "frontend": "Screens reviewed",
    "qa": "Unit tests pass",
}
OPTIONAL_PRE = "Nice-to-have dashboard"
POST_GATE = "Deploy the backend"
BLANK = {"state": "pending", "reason": "", "note": "", "evidence_url": ""}


@pytest.fixture(autouse=True)
def english() -> Iterator[None]:
    # Messages are asserted in their English source form whatever the default language.
    with translation.override("en"):
        yield


@pytest.fixture
def ci_linked(release: Release) -> None:
    """The release's QA item is verified by an automated check named "ci"."""
    release.items.filter(text=QA_ITEM).update(checks=["ci"])


@pytest.fixture
def published(monkeypatch: pytest.MonkeyPatch) -> list[tuple[int, int]]:
    calls: list[tuple[int, int]] = []
    monkeypatch.setattr(
        notify, "publish", lambda release_id, revision: calls.append((release_id, revision))
    )
    return calls


@pytest.fixture
def approved_release(ready_release: Release, users: dict[str, Any]) -> Release:
    workflow.approve(ready_release, by=users["po"])
    ready_release.refresh_from_db()
    return ready_release


def label(user: Any) -> str:
    full = user.get_full_name()
    return f"{user.username} ({full})" if full else user.username


def last_event_id() -> int:
    return AuditEvent.objects.aggregate(top=Max("id"))["top"] or 0


def events_since(event_id: int) -> list[AuditEvent]:
    return list(AuditEvent.objects.filter(id__gt=event_id).order_by("id"))


def summary(events: list[AuditEvent]) -> list[tuple[str, str, dict[str, Any], dict[str, Any]]]:
    return [(e.action, e.target, e.before, e.after) for e in events]


def fingerprint(release: Release) -> dict[str, Any]:
    """Everything an operation could change, to prove a refused one changed nothing."""
    release.refresh_from_db()
    return {
        "release": (release.status, release.revision),
        "items": list(
            release.items.order_by("position").values_list(
                "state", "reason", "note", "evidence_url", "check_failure", "version", "revision"
            )
        ),
        "signoffs": list(
            release.signoffs.order_by("id").values_list("id", "role", "phase", "reopened_at")
        ),
        "approvals": list(release.approvals.order_by("id").values_list("id", "revoked_at")),
        "stakeholders": sorted(release.stakeholders.values_list("role", "user_id")),
        "contacts": list(release.contacts.values_list("name", "phone", "email", "other")),
        "events": AuditEvent.objects.count(),
        "releases": Release.objects.count(),
    }


def tick_pre(release: Release, users: dict[str, Any]) -> None:
    for entry in release.items.filter(before_gate=True):
        workflow.tick(entry, by=users[entry.owner_role])


def ready_copy(template: ChecklistTemplate, users: dict[str, Any], *, version: str) -> Release:
    """A release of `template` with everyone assigned, every item before the gate ticked and
    every lead signed off."""
    made = workflow.create_release(template, version=version, title="Copy", by=users["admin"])
    for role in Role.values:
        workflow.assign(made, role=role, user=users[role], by=users["admin"])
    tick_pre(made, users)
    for role in LEADS:
        workflow.sign_off(made, role=role, phase="Pre", by=users[role])
    made.refresh_from_db()
    return made


# --- the permission matrix ----------------------------------------------------------------


@dataclass(frozen=True)
class ItemAction:
    run: Callable[[Any, Any], Any]
    action: str
    after: dict[str, str]
    ticked_first: bool = False


ITEM_ACTIONS = {
    "tick": ItemAction(
        lambda entry, by: workflow.tick(entry, by=by, ip=IP), "item.done", {"state": "done"}
    ),
    "untick": ItemAction(
        lambda entry, by: workflow.untick(entry, by=by, ip=IP),
        "item.reopened",
        {"state": "pending"},
        ticked_first=True,
    ),
    "mark_na": ItemAction(
        lambda entry, by: workflow.mark_not_applicable(entry, by=by, reason="No UI", ip=IP),
        "item.not_applicable",
        {"state": "na", "reason": "No UI"},
    ),
    "mark_blocked": ItemAction(
        lambda entry, by: workflow.mark_blocked(entry, by=by, reason="Vendor down", ip=IP),
        "item.blocked",
        {"state": "blocked", "reason": "Vendor down"},
    ),
    "note": ItemAction(
        lambda entry, by: workflow.annotate_item(entry, by=by, note="See runbook", ip=IP),
        "item.annotated",
        {"note": "See runbook"},
    ),
    "evidence": ItemAction(
        lambda entry, by: workflow.annotate_item(
            entry, by=by, evidence_url="https://ci.example.com/run/1", ip=IP
        ),
        "item.annotated",
        {"evidence_url": "https://ci.example.com/run/1"},
    ),
}
ITEM_CASES = [(a, r, p) for a in ITEM_ACTIONS for r in LEADS for p in EVERYONE]


@pytest.mark.parametrize(
    ("action", "role", "persona"), [c for c in ITEM_CASES if c[2] in (c[1], "admin")]
)
def test_it_lets_the_owning_lead_or_an_admin_change_an_item(
    release: Release,
    users: dict[str, Any],
    published: list[tuple[int, int]],
    django_capture_on_commit_callbacks: Any,
    action: str,
    role: str,
    persona: str,
) -> None:
    spec = ITEM_ACTIONS[action]
    entry = item(release, ITEM_OF[role])
    if spec.ticked_first:
        workflow.tick(entry, by=users[role])
    entry.refresh_from_db()
    release.refresh_from_db()
    before_state = {**BLANK, "state": entry.state}
    start, last = release.revision, last_event_id()

    with django_capture_on_commit_callbacks(execute=True):
        spec.run(entry, users[persona])

    release.refresh_from_db()
    entry.refresh_from_db()
    [event] = events_since(last)
    assert event.action == spec.action
    assert event.target == entry.text
    assert event.before == before_state
    assert event.after == {**before_state, **spec.after}
    assert event.override is (persona == "admin")
    assert event.actor == users[persona]
    assert event.actor_label == label(users[persona])
    assert event.source_ip == IP
    assert release.revision == start + 1
    assert entry.revision == release.revision
    assert entry.changed_by == users[persona]
    assert published == [(release.pk, release.revision)]


@pytest.mark.parametrize(
    ("action", "role", "persona"), [c for c in ITEM_CASES if c[2] not in (c[1], "admin")]
)
def test_it_refuses_an_item_change_by_anyone_else(
    release: Release,
    users: dict[str, Any],
    published: list[tuple[int, int]],
    django_capture_on_commit_callbacks: Any,
    action: str,
    role: str,
    persona: str,
) -> None:
    spec = ITEM_ACTIONS[action]
    entry = item(release, ITEM_OF[role])
    if spec.ticked_first:
        workflow.tick(entry, by=users[role])
    before = fingerprint(release)

    with django_capture_on_commit_callbacks(execute=True), pytest.raises(PermissionDenied):
        spec.run(entry, users[persona])

    assert fingerprint(release) == before
    assert published == []


@pytest.mark.parametrize("persona", EVERYONE)
@pytest.mark.parametrize("role", LEADS)
def test_it_reports_item_permission_as_the_operations_enforce_it(
    release: Release, users: dict[str, Any], role: str, persona: str
) -> None:
    entry = item(release, ITEM_OF[role])
    who = who_on(Person(users[persona]), release)
    allowed = policy.may_change_item(who, owner_role=entry.owner_role, checks=entry.checks)
    assert bool(allowed) is (persona in (role, "admin"))


def test_it_does_not_flag_an_override_when_an_admin_holds_the_role(
    release: Release, users: dict[str, Any]
) -> None:
    workflow.assign(release, role="qa", user=users["admin"], by=users["admin"])
    last = last_event_id()

    workflow.tick(item(release, ITEM_OF["qa"]), by=users["admin"])

    [event] = events_since(last)
    assert event.action == "item.done"
    assert event.override is False


@dataclass(frozen=True)
class ReleaseAction:
    """A release-level operation: `prepare` sets the scene, `run` acts as `by`."""

    run: Callable[[Release, dict[str, Any], Any], Any]
    action: str
    allowed: frozenset[str]
    admin_overrides: bool
    prepare: Callable[[Release, dict[str, Any]], None] = lambda release, users: None
    target_release: Callable[[Release], Release] = field(default=lambda release: release)


def _signed_by_qa(release: Release, users: dict[str, Any]) -> None:
    tick_pre(release, users)
    workflow.sign_off(release, role="qa", phase="Pre", by=users["qa"])


def _ready(release: Release, users: dict[str, Any]) -> None:
    tick_pre(release, users)
    for role in LEADS:
        workflow.sign_off(release, role=role, phase="Pre", by=users[role])


def _approved(release: Release, users: dict[str, Any]) -> None:
    _ready(release, users)
    workflow.approve(release, by=users["po"])


def _sign_off_as(role: str) -> ReleaseAction:
    return ReleaseAction(
        run=lambda release, users, by: workflow.sign_off(
            release, role=role, phase="Pre", by=by, ip=IP
        ),
        action="signoff.signed",
        allowed=frozenset({role, "admin"}),
        admin_overrides=True,
        prepare=tick_pre,
    )


RELEASE_ACTIONS = {
    **{f"sign_off_{role}": _sign_off_as(role) for role in LEADS},
    "withdraw": ReleaseAction(
        run=lambda release, users, by: workflow.withdraw_sign_off(
            release, role="qa", phase="Pre", by=by, ip=IP
        ),
        action="signoff.withdrawn",
        allowed=frozenset({"qa", "admin"}),
        admin_overrides=True,
        prepare=_signed_by_qa,
    ),
    "approve": ReleaseAction(
        run=lambda release, users, by: workflow.approve(release, by=by, ip=IP),
        action="release.approved",
        allowed=frozenset({"po", "admin"}),
        admin_overrides=True,
        prepare=_ready,
    ),
    "revoke": ReleaseAction(
        run=lambda release, users, by: workflow.revoke_approval(
            release, by=by, reason="Found a bug", ip=IP
        ),
        action="release.approval_revoked",
        allowed=frozenset({"po", "admin"}),
        admin_overrides=True,
        prepare=_approved,
    ),
    # Creating releases and staffing them is staff's own job, so staff overrides nobody.
    "create_release": ReleaseAction(
        run=lambda release, users, by: workflow.create_release(
            release.template, version="v2.0.0", title="Next", by=by, ip=IP
        ),
        action="release.created",
        allowed=frozenset({"admin"}),
        admin_overrides=False,
        target_release=lambda release: Release.objects.get(version="v2.0.0"),
    ),
    "assign": ReleaseAction(
        run=lambda release, users, by: workflow.assign(
            release, role="qa", user=users["outsider"], by=by, ip=IP
        ),
        action="stakeholder.assigned",
        allowed=frozenset({"admin"}),
        admin_overrides=False,
    ),
    "unassign": ReleaseAction(
        run=lambda release, users, by: workflow.unassign(
            release, role="qa", user=users["qa"], by=by, ip=IP
        ),
        action="stakeholder.unassigned",
        allowed=frozenset({"admin"}),
        admin_overrides=False,
    ),
    # The product owner keeps the contacts; an admin editing them overrides the owner.
    "update_contact": ReleaseAction(
        run=lambda release, users, by: workflow.update_contact(
            release.contacts.get(),
            by=by,
            name="Dana Ops",
            phone="+34 600 000 009",
            email="dana@example.com",
            ip=IP,
        ),
        action="contact.updated",
        allowed=frozenset({"po", "admin"}),
        admin_overrides=True,
    ),
    "set_status": ReleaseAction(
        run=lambda release, users, by: workflow.set_status(
            release, status=ReleaseStatus.IN_PROGRESS, by=by, ip=IP
        ),
        action="release.status",
        allowed=frozenset({"po", "admin"}),
        admin_overrides=True,
    ),
}
RELEASE_CASES = [(a, p) for a in RELEASE_ACTIONS for p in EVERYONE]


@pytest.mark.parametrize(
    ("action", "persona"), [c for c in RELEASE_CASES if c[1] in RELEASE_ACTIONS[c[0]].allowed]
)
def test_it_lets_the_responsible_persona_act_on_a_release(
    release: Release,
    users: dict[str, Any],
    published: list[tuple[int, int]],
    django_capture_on_commit_callbacks: Any,
    action: str,
    persona: str,
) -> None:
    spec = RELEASE_ACTIONS[action]
    spec.prepare(release, users)
    last = last_event_id()
    start = Release.objects.get(pk=release.pk).revision

    with django_capture_on_commit_callbacks(execute=True):
        spec.run(release, users, users[persona])

    target = spec.target_release(release)
    target.refresh_from_db()
    [event] = events_since(last)
    assert event.action == spec.action
    assert event.release == target
    assert event.override is (persona == "admin" and spec.admin_overrides)
    assert event.actor == users[persona]
    assert event.actor_label == label(users[persona])
    assert event.source_ip == IP
    assert target.revision == (1 if action == "create_release" else start + 1)
    assert published == [(target.pk, target.revision)]


@pytest.mark.parametrize(
    ("action", "persona"),
    [c for c in RELEASE_CASES if c[1] not in RELEASE_ACTIONS[c[0]].allowed],
)
def test_it_refuses_a_release_operation_by_anyone_else(
    release: Release,
    users: dict[str, Any],
    published: list[tuple[int, int]],
    django_capture_on_commit_callbacks: Any,
    action: str,
    persona: str,
) -> None:
    spec = RELEASE_ACTIONS[action]
    spec.prepare(release, users)
    before = fingerprint(release)

    with django_capture_on_commit_callbacks(execute=True), pytest.raises(PermissionDenied):
        spec.run(release, users, users[persona])

    assert fingerprint(release) == before
    assert published == []


# --- what each operation records ------------------------------------------------------------


@dataclass(frozen=True)
class Recorded:
    prepare: Callable[[Release, dict[str, Any]], None]
    run: Callable[[Release, dict[str, Any]], Any]
    expected: Callable[[Release], list[tuple[str, str, dict[str, Any], dict[str, Any]]]]
    actor: str


def _nothing(release: Release, users: dict[str, Any]) -> None:
    return None


def _qa_ticked(release: Release, users: dict[str, Any]) -> None:
    workflow.tick(item(release, ITEM_OF["qa"]), by=users["qa"])


QA_ITEM = ITEM_OF["qa"]
DONE = {**BLANK, "state": "done"}
SIGNOFF_REOPENED = (
    "signoff.reopened",
    "qa / Pre",
    {"signed_by": "qa"},
    {"reason": f"“{QA_ITEM}” changed after sign-off"},
)

RECORDED = {
    "tick": Recorded(
        _nothing,
        lambda r, u: workflow.tick(item(r, QA_ITEM), by=u["qa"], ip=IP),
        lambda r: [("item.done", QA_ITEM, BLANK, DONE)],
        "qa",
    ),
    "untick": Recorded(
        _qa_ticked,
        lambda r, u: workflow.untick(item(r, QA_ITEM), by=u["qa"], ip=IP),
        lambda r: [("item.reopened", QA_ITEM, DONE, BLANK)],
        "qa",
    ),
    "mark_na": Recorded(
        _nothing,
        lambda r, u: workflow.mark_not_applicable(
            item(r, QA_ITEM), by=u["qa"], reason="  Covered by e2e  ", ip=IP
        ),
        lambda r: [
            (
                "item.not_applicable",
                QA_ITEM,
                BLANK,
                {**BLANK, "state": "na", "reason": "Covered by e2e"},
            )
        ],
        "qa",
    ),
    "mark_blocked": Recorded(
        _nothing,
        lambda r, u: workflow.mark_blocked(item(r, QA_ITEM), by=u["qa"], reason="CI down", ip=IP),
        lambda r: [
            ("item.blocked", QA_ITEM, BLANK, {**BLANK, "state": "blocked", "reason": "CI down"})
        ],
        "qa",
    ),
    "annotate": Recorded(
        _nothing,
        lambda r, u: workflow.annotate_item(
            item(r, QA_ITEM),
            by=u["qa"],
            note=" Flaky ",
            evidence_url="https://ci.example.com/1",
            ip=IP,
        ),
        lambda r: [
            (
                "item.annotated",
                QA_ITEM,
                BLANK,
                {**BLANK, "note": "Flaky", "evidence_url": "https://ci.example.com/1"},
            )
        ],
        "qa",
    ),
    "sign_off": Recorded(
        tick_pre,
        lambda r, u: workflow.sign_off(r, role="qa", phase="Pre", by=u["qa"], ip=IP),
        lambda r: [("signoff.signed", "qa / Pre", {}, {"items": 1, "signed_by": "qa"})],
        "qa",
    ),
    "withdraw": Recorded(
        _signed_by_qa,
        lambda r, u: workflow.withdraw_sign_off(r, role="qa", phase="Pre", by=u["qa"], ip=IP),
        lambda r: [("signoff.withdrawn", "qa / Pre", {}, {})],
        "qa",
    ),
    "reopen_signoff": Recorded(
        _signed_by_qa,
        lambda r, u: workflow.untick(item(r, QA_ITEM), by=u["qa"], ip=IP),
        lambda r: [("item.reopened", QA_ITEM, DONE, BLANK), SIGNOFF_REOPENED],
        "qa",
    ),
    "approve": Recorded(
        _ready,
        lambda r, u: workflow.approve(r, by=u["po"], ip=IP),
        lambda r: [("release.approved", "v1.2.3", {}, {"digest": r.approvals.get().digest})],
        "po",
    ),
    "revoke": Recorded(
        _approved,
        lambda r, u: workflow.revoke_approval(r, by=u["po"], reason=" Found a bug ", ip=IP),
        lambda r: [
            ("release.approval_revoked", "v1.2.3", {"approved_by": "po"}, {"reason": "Found a bug"})
        ],
        "po",
    ),
    "revoke_by_item_change": Recorded(
        _approved,
        lambda r, u: workflow.untick(item(r, QA_ITEM), by=u["qa"], ip=IP),
        lambda r: [
            ("item.reopened", QA_ITEM, DONE, BLANK),
            SIGNOFF_REOPENED,
            (
                "release.approval_revoked",
                "v1.2.3",
                {"approved_by": "po"},
                {"reason": f"“{QA_ITEM}” changed after go-live was approved"},
            ),
        ],
        "qa",
    ),
    "revoke_by_withdrawal": Recorded(
        _approved,
        lambda r, u: workflow.withdraw_sign_off(r, role="qa", phase="Pre", by=u["qa"], ip=IP),
        lambda r: [
            ("signoff.withdrawn", "qa / Pre", {}, {}),
            (
                "release.approval_revoked",
                "v1.2.3",
                {"approved_by": "po"},
                {"reason": "a lead withdrew a sign-off"},
            ),
        ],
        "qa",
    ),
    "assign": Recorded(
        _nothing,
        lambda r, u: workflow.assign(r, role="qa", user=u["outsider"], by=u["admin"], ip=IP),
        lambda r: [
            ("stakeholder.assigned", "qa: outsider", {}, {"person": "outsider", "role": "qa"})
        ],
        "admin",
    ),
    "unassign": Recorded(
        _nothing,
        lambda r, u: workflow.unassign(r, role="qa", user=u["qa"], by=u["admin"], ip=IP),
        lambda r: [("stakeholder.unassigned", "qa: qa", {"person": "qa", "role": "qa"}, {})],
        "admin",
    ),
    "update_contact": Recorded(
        _nothing,
        lambda r, u: workflow.update_contact(
            r.contacts.get(),
            by=u["po"],
            name=" Dan Ops ",
            phone="+34 600 000 009",
            email="dan@example.com",
            ip=IP,
        ),
        lambda r: [
            (
                "contact.updated",
                "DevOps Lead",
                {"name": "Dana Ops", "phone": "+34 600 000 001", "email": "dana@example.com"},
                {"name": "Dan Ops", "phone": "+34 600 000 009", "email": "dan@example.com"},
            )
        ],
        "po",
    ),
    "set_status": Recorded(
        _nothing,
        lambda r, u: workflow.set_status(r, status=ReleaseStatus.CANCELLED, by=u["po"], ip=IP),
        lambda r: [("release.status", "v1.2.3", {"status": "planned"}, {"status": "cancelled"})],
        "po",
    ),
    "set_status_revoking": Recorded(
        _approved,
        lambda r, u: workflow.set_status(r, status=ReleaseStatus.IN_PROGRESS, by=u["po"], ip=IP),
        lambda r: [
            (
                "release.approval_revoked",
                "v1.2.3",
                {"approved_by": "po"},
                {"reason": "status changed to In progress"},
            ),
            ("release.status", "v1.2.3", {"status": "approved"}, {"status": "in_progress"}),
        ],
        "po",
    ),
}


@pytest.mark.parametrize("operation", RECORDED)
def test_it_records_exactly_the_expected_audit_events(
    release: Release,
    users: dict[str, Any],
    published: list[tuple[int, int]],
    django_capture_on_commit_callbacks: Any,
    operation: str,
) -> None:
    spec = RECORDED[operation]
    spec.prepare(release, users)
    release.refresh_from_db()
    start, last = release.revision, last_event_id()

    with django_capture_on_commit_callbacks(execute=True):
        spec.run(release, users)

    release.refresh_from_db()
    events = events_since(last)
    assert summary(events) == spec.expected(release)
    assert {(e.actor, e.actor_label, e.source_ip, e.release_id) for e in events} == {
        (users[spec.actor], label(users[spec.actor]), IP, release.pk)
    }
    assert len({e.created_at for e in events}) == 1
    assert release.revision == start + 1
    assert published == [(release.pk, release.revision)]


def test_it_records_the_creation_of_a_release(
    small_template: ChecklistTemplate,
    users: dict[str, Any],
    published: list[tuple[int, int]],
    django_capture_on_commit_callbacks: Any,
) -> None:
    with django_capture_on_commit_callbacks(execute=True):
        made = workflow.create_release(
            small_template, version="v3.0.0", title="Summer", by=users["admin"], ip=IP
        )

    made.refresh_from_db()
    [event] = made.audit_events.all()
    assert (event.action, event.target, event.before, event.after) == (
        "release.created",
        "v3.0.0",
        {},
        {"template": "small", "items": 7},
    )
    assert (event.actor, event.actor_label, event.source_ip, event.override) == (
        users["admin"],
        "admin",
        IP,
        False,
    )
    assert made.revision == 1
    assert published == [(made.pk, 1)]


def test_it_bumps_the_revision_once_per_operation(release: Release, users: dict[str, Any]) -> None:
    start = release.revision
    entry = item(release, QA_ITEM)

    workflow.tick(entry, by=users["qa"])
    workflow.annotate_item(entry, by=users["qa"], note="ok")
    workflow.sign_off(release, role="qa", phase="Pre", by=users["qa"])
    workflow.untick(entry, by=users["qa"])

    release.refresh_from_db()
    assert release.revision == start + 4
    assert list(release.audit_events.order_by("id").values_list("action", flat=True))[-5:] == [
        "item.done",
        "item.annotated",
        "signoff.signed",
        "item.reopened",
        "signoff.reopened",
    ]


FAILING = {
    "permission": (
        lambda r, u: workflow.tick(item(r, QA_ITEM), by=u["support"], ip=IP),
        PermissionDenied,
    ),
    "missing_reason": (
        lambda r, u: workflow.mark_blocked(item(r, QA_ITEM), by=u["qa"], reason=" "),
        WorkflowError,
    ),
    "conflict": (
        lambda r, u: workflow.untick(item(r, QA_ITEM), by=u["qa"], expected_version=0),
        Conflict,
    ),
    "version_never_had": (
        lambda r, u: workflow.tick(
            item(r, QA_ITEM), by=u["qa"], expected_version=item(r, QA_ITEM).version + 1
        ),
        WorkflowError,
    ),
    "sign_off_open_items": (
        lambda r, u: workflow.sign_off(r, role="qa", phase="Pre", by=u["qa"]),
        WorkflowError,
    ),
    "approve_not_ready": (lambda r, u: workflow.approve(r, by=u["po"]), WorkflowError),
    "revoke_nothing": (
        lambda r, u: workflow.revoke_approval(r, by=u["po"], reason="x"),
        WorkflowError,
    ),
    "bad_status": (
        lambda r, u: workflow.set_status(r, status=ReleaseStatus.DEPLOYED, by=u["po"]),
        WorkflowError,
    ),
}


# What happened before the failing operation, since its page was loaded.
BEFOREHAND: dict[str, Callable[[Release, dict[str, Any]], Any]] = {
    "conflict": lambda r, u: workflow.tick(item(r, QA_ITEM), by=u["qa"]),
}


@pytest.mark.parametrize("failure", FAILING)
def test_it_publishes_and_records_nothing_when_an_operation_fails(
    release: Release,
    users: dict[str, Any],
    published: list[tuple[int, int]],
    django_capture_on_commit_callbacks: Any,
    failure: str,
) -> None:
    run, error = FAILING[failure]
    if failure in BEFOREHAND:
        BEFOREHAND[failure](release, users)
    before = fingerprint(release)

    with django_capture_on_commit_callbacks(execute=True) as callbacks, pytest.raises(error):
        run(release, users)

    assert callbacks == []
    assert published == []
    assert fingerprint(release) == before


def test_it_accepts_an_actor_carrying_its_own_address(
    release: Release, users: dict[str, Any]
) -> None:
    last = last_event_id()

    workflow.tick(item(release, QA_ITEM), by=Person(users["qa"], "2001:db8::1"))

    [event] = events_since(last)
    assert event.source_ip == "2001:db8::1"
    assert event.actor == users["qa"]


# --- item rules ------------------------------------------------------------------------------


@pytest.mark.parametrize("state", [ItemState.NOT_APPLICABLE, ItemState.BLOCKED])
@pytest.mark.parametrize("reason", ["", "   "])
def test_it_requires_a_reason_for_not_applicable_and_blocked(
    release: Release, users: dict[str, Any], state: str, reason: str
) -> None:
    entry = item(release, QA_ITEM)
    before = fingerprint(release)

    with pytest.raises(WorkflowError) as caught:
        workflow.set_item_state(entry, by=users["qa"], state=state, reason=reason)

    assert caught.value.message.startswith("Say why the item is")
    assert fingerprint(release) == before


@pytest.mark.parametrize("persona", ["qa", "admin"])
def test_it_never_lets_a_person_mark_an_item_failed(
    release: Release, users: dict[str, Any], persona: str
) -> None:
    before = fingerprint(release)

    with pytest.raises(WorkflowError, match="Only an automated check"):
        workflow.set_item_state(
            item(release, QA_ITEM), by=users[persona], state=ItemState.FAILED, reason="broken"
        )

    assert fingerprint(release) == before


def test_it_refuses_an_unknown_state(release: Release, users: dict[str, Any]) -> None:
    with pytest.raises(WorkflowError, match="Unknown state"):
        workflow.set_item_state(item(release, QA_ITEM), by=users["qa"], state="maybe")


@pytest.mark.parametrize("mark", [workflow.mark_blocked, workflow.mark_not_applicable])
def test_it_clears_the_reason_when_an_item_is_ticked(
    release: Release, users: dict[str, Any], mark: Callable[..., Any]
) -> None:
    entry = mark(item(release, QA_ITEM), by=users["qa"], reason="Waiting on CI")
    assert entry.reason == "Waiting on CI"

    workflow.tick(entry, by=users["qa"])

    entry.refresh_from_db()
    assert (entry.state, entry.reason) == (ItemState.DONE, "")


def test_it_clears_the_reason_when_an_item_is_unticked(
    release: Release, users: dict[str, Any]
) -> None:
    entry = workflow.mark_blocked(item(release, QA_ITEM), by=users["qa"], reason="CI down")

    workflow.untick(entry, by=users["qa"])

    entry.refresh_from_db()
    assert (entry.state, entry.reason) == (ItemState.PENDING, "")


def test_it_records_who_changed_an_item_and_when(release: Release, users: dict[str, Any]) -> None:
    before = timezone.now()

    entry = workflow.tick(item(release, QA_ITEM), by=users["qa"])

    entry.refresh_from_db()
    assert entry.changed_by == users["qa"]
    assert entry.changed_by_label == "qa (QA)"
    assert entry.changed_at is not None and entry.changed_at >= before
    assert entry.version == 1


def test_it_moves_a_planned_release_in_progress_on_its_first_change(
    release: Release, users: dict[str, Any]
) -> None:
    assert release.status == ReleaseStatus.PLANNED

    workflow.annotate_item(item(release, QA_ITEM), by=users["qa"], note="started")

    release.refresh_from_db()
    assert release.status == ReleaseStatus.IN_PROGRESS


NOT_A_WEB_LINK = "The evidence link must be an http(s) URL."
HOLDS_CREDENTIALS = (
    "The evidence link must not hold credentials (user:password@): everyone who reads the "
    "release sees it."
)


@pytest.mark.parametrize(
    ("url", "error"),
    [
        *(
            (url, NOT_A_WEB_LINK)
            for url in (
                "ftp://ci.example.com/run/1",
                "javascript:alert(1)",
                "not a url",
                "//ci.example.com/x",
                "file:///etc/passwd",
                "https://",
                "https:///run/1",
                "https://ci.example.com/run 1",
                "https://ci.example.com/run/\x07",
                "https://ci\tbox/run",
                "https://ci_box/run",
                "https://-ci/run",
                "https://ci.example.com:99999/run",
                "https://ci.example.com:port/run",
                "http://1.2.3.999/run",
                "http://[fd00::zz]/run",
            )
        ),
        *(
            (url, HOLDS_CREDENTIALS)
            for url in (
                "https://bot:secret@ci.example.com/run/1",
                "https://bot@ci/run/1",
                "https://:x@ci/",
            )
        ),
    ],
)
def test_it_refuses_evidence_that_is_no_http_link_or_holds_credentials(
    release: Release, users: dict[str, Any], url: str, error: str
) -> None:
    before = fingerprint(release)

    with pytest.raises(WorkflowError) as refused:
        workflow.annotate_item(item(release, QA_ITEM), by=users["qa"], evidence_url=url)

    assert refused.value.message == error
    assert fingerprint(release) == before


@pytest.mark.parametrize(
    "url",
    [
        "http://ci.example.com/run/1",
        "https://ci.example.com/run/1",
        "HTTPS://CI.example.com/run/1?attempt=2#log",
        # A CI server on the team's network, named without a domain.
        "https://ci/x",
        "http://jenkins/job/1",
        "http://jenkins:8080/job/1/console",
        "http://10.0.0.5/run/1",
        "http://[fd00::1]:8080/run/1",
        "https://ci.example.com./run/1",
        "https://bücher.example/run/1",
    ],
)
def test_it_keeps_http_and_https_evidence(
    release: Release, users: dict[str, Any], url: str
) -> None:
    entry = workflow.annotate_item(
        item(release, QA_ITEM), by=users["qa"], evidence_url=f"  {url}  "
    )

    entry.refresh_from_db()
    assert entry.evidence_url == url


def test_it_clears_evidence_with_an_empty_link(release: Release, users: dict[str, Any]) -> None:
    entry = workflow.annotate_item(
        item(release, QA_ITEM), by=users["qa"], evidence_url="https://ci.example.com/1"
    )

    workflow.annotate_item(entry, by=users["qa"], evidence_url="")

    entry.refresh_from_db()
    assert entry.evidence_url == ""


def test_it_refuses_evidence_longer_than_the_field_holds(
    release: Release, users: dict[str, Any]
) -> None:
    # evidence_url holds 1000 characters; URLValidator alone lets 2048 through, which
    # PostgreSQL then rejects with a DataError instead of a message for the person.
    url = "https://ci.example.com/" + "a" * 1100
    before = fingerprint(release)

    with pytest.raises(WorkflowError):
        workflow.annotate_item(item(release, QA_ITEM), by=users["qa"], evidence_url=url)

    assert fingerprint(release) == before


def test_it_trims_and_caps_notes(release: Release, users: dict[str, Any]) -> None:
    entry = workflow.annotate_item(
        item(release, QA_ITEM), by=users["qa"], note="  " + "n" * 6000 + "  "
    )

    entry.refresh_from_db()
    assert entry.note == "n" * 5000


def test_it_refuses_a_stale_edit_with_a_conflict(release: Release, users: dict[str, Any]) -> None:
    seen = item(release, QA_ITEM)
    workflow.mark_blocked(seen, by=users["admin"], reason="CI down", expected_version=0)
    before = fingerprint(release)

    with pytest.raises(Conflict) as caught:
        workflow.tick(seen, by=users["qa"], expected_version=seen.version)

    assert "admin" in caught.value.message
    assert "Blocked" in caught.value.message
    assert fingerprint(release) == before
    current = item(release, QA_ITEM)
    assert (current.state, current.reason, current.version) == (ItemState.BLOCKED, "CI down", 1)


def test_it_applies_an_edit_made_on_the_current_version(
    release: Release, users: dict[str, Any]
) -> None:
    entry = workflow.tick(item(release, QA_ITEM), by=users["qa"], expected_version=0)

    entry = workflow.annotate_item(entry, by=users["qa"], note="green", expected_version=1)

    entry.refresh_from_db()
    assert (entry.state, entry.note, entry.version) == (ItemState.DONE, "green", 2)


UNCHANGED = {
    "tick_done": (ItemAction(lambda e, u: workflow.tick(e, by=u), "", {}, ticked_first=True)),
    "untick_pending": ItemAction(lambda e, u: workflow.untick(e, by=u), "", {}),
    "empty_annotation": ItemAction(lambda e, u: workflow.annotate_item(e, by=u), "", {}),
    "same_note": ItemAction(lambda e, u: workflow.annotate_item(e, by=u, note=""), "", {}),
}


@pytest.mark.parametrize("edit", UNCHANGED)
def test_it_records_nothing_for_an_edit_that_changes_nothing(
    release: Release,
    users: dict[str, Any],
    published: list[tuple[int, int]],
    django_capture_on_commit_callbacks: Any,
    edit: str,
) -> None:
    spec = UNCHANGED[edit]
    entry = item(release, QA_ITEM)
    if spec.ticked_first:
        workflow.tick(entry, by=users["qa"])
    before = fingerprint(release)

    with django_capture_on_commit_callbacks(execute=True):
        spec.run(item(release, QA_ITEM), users["qa"])

    assert fingerprint(release) == before
    assert published == []


def test_it_records_nothing_when_the_same_blocked_reason_is_given_again(
    release: Release, users: dict[str, Any]
) -> None:
    workflow.mark_blocked(item(release, QA_ITEM), by=users["qa"], reason="CI down")
    before = fingerprint(release)

    workflow.mark_blocked(item(release, QA_ITEM), by=users["qa"], reason=" CI down ")

    assert fingerprint(release) == before


# --- sign-off --------------------------------------------------------------------------------


@pytest.mark.parametrize("state", [ItemState.PENDING, ItemState.BLOCKED])
def test_it_refuses_a_sign_off_while_an_item_is_open(
    release: Release, users: dict[str, Any], state: str
) -> None:
    tick_pre(release, users)
    workflow.set_item_state(item(release, QA_ITEM), by=users["qa"], state=state, reason="CI down")
    before = fingerprint(release)

    with pytest.raises(WorkflowError, match=QA_ITEM):
        workflow.sign_off(release, role="qa", phase="Pre", by=users["qa"])

    assert fingerprint(release) == before


def test_it_signs_off_over_optional_items_left_open_and_records_them(
    release: Release, users: dict[str, Any]
) -> None:
    workflow.tick(item(release, ITEM_OF["devops"]), by=users["devops"])

    signoff = workflow.sign_off(release, role="devops", phase="Pre", by=users["devops"])

    assert signoff.optional_open == [OPTIONAL_PRE]
    event = release.audit_events.get(action=AuditAction.SIGNOFF_SIGNED)
    assert event.after["optional_open"] == [OPTIONAL_PRE]


def test_it_records_no_optional_item_when_all_were_settled(
    release: Release, users: dict[str, Any]
) -> None:
    workflow.tick(item(release, ITEM_OF["devops"]), by=users["devops"])
    workflow.mark_not_applicable(item(release, OPTIONAL_PRE), by=users["devops"], reason="later")

    signoff = workflow.sign_off(release, role="devops", phase="Pre", by=users["devops"])

    assert signoff.optional_open == []
    event = release.audit_events.get(action=AuditAction.SIGNOFF_SIGNED)
    assert "optional_open" not in event.after


def test_it_signs_off_items_done_or_not_applicable(release: Release, users: dict[str, Any]) -> None:
    workflow.tick(item(release, ITEM_OF["devops"]), by=users["devops"])
    workflow.mark_not_applicable(
        item(release, OPTIONAL_PRE), by=users["devops"], reason="No dashboard this time"
    )

    signoff = workflow.sign_off(release, role="devops", phase="Pre", by=users["devops"])

    assert signoff.signed_by == users["devops"]
    assert (signoff.role, signoff.phase, signoff.reopened_at) == ("devops", "Pre", None)
    assert list(release.signoffs.all()) == [signoff]


def test_it_refuses_to_sign_off_twice(release: Release, users: dict[str, Any]) -> None:
    _signed_by_qa(release, users)
    before = fingerprint(release)

    with pytest.raises(WorkflowError, match="Already signed off"):
        workflow.sign_off(release, role="qa", phase="Pre", by=users["qa"])

    assert fingerprint(release) == before


@pytest.mark.parametrize("role", ["po", "support"])
def test_it_only_lets_leads_sign_off(release: Release, users: dict[str, Any], role: str) -> None:
    with pytest.raises(WorkflowError, match="Only leads"):
        workflow.sign_off(release, role=role, phase="Pre", by=users[role])


def test_it_refuses_a_sign_off_for_a_phase_without_items_of_the_role(
    release: Release, users: dict[str, Any]
) -> None:
    with pytest.raises(WorkflowError, match="owns no items"):
        workflow.sign_off(release, role="frontend", phase="Deploy", by=users["frontend"])

    assert not release.signoffs.exists()


CHANGES_OF_A_SIGNED_ITEM = {
    "untick": lambda e, u: workflow.untick(e, by=u),
    "mark_na": lambda e, u: workflow.mark_not_applicable(e, by=u, reason="Covered by e2e"),
    "mark_blocked": lambda e, u: workflow.mark_blocked(e, by=u, reason="Regression"),
    "evidence": lambda e, u: workflow.annotate_item(
        e, by=u, evidence_url="https://ci.example.com/2"
    ),
}


@pytest.mark.parametrize("change", CHANGES_OF_A_SIGNED_ITEM)
def test_it_reopens_the_sign_off_when_a_signed_item_changes(
    release: Release, users: dict[str, Any], change: str
) -> None:
    _signed_by_qa(release, users)
    last = last_event_id()

    CHANGES_OF_A_SIGNED_ITEM[change](item(release, QA_ITEM), users["qa"])

    signoff = release.signoffs.get()
    assert signoff.reopened_at is not None
    assert signoff.reopened_reason_text == f"“{QA_ITEM}” changed after sign-off"
    assert [e.action for e in events_since(last)][1:] == ["signoff.reopened"]


def test_it_keeps_the_sign_off_when_only_a_note_changes(
    release: Release, users: dict[str, Any]
) -> None:
    _signed_by_qa(release, users)

    workflow.annotate_item(item(release, QA_ITEM), by=users["qa"], note="All green")

    assert release.signoffs.get().reopened_at is None


def test_it_keeps_other_roles_sign_offs_when_an_item_changes(
    ready_release: Release, users: dict[str, Any]
) -> None:
    workflow.untick(item(ready_release, QA_ITEM), by=users["qa"])

    open_roles = set(
        ready_release.signoffs.filter(reopened_at__isnull=True).values_list("role", flat=True)
    )
    assert open_roles == {"devops", "backend", "frontend"}


def test_it_signs_off_again_after_a_reopen_and_keeps_the_history(
    release: Release, users: dict[str, Any]
) -> None:
    _signed_by_qa(release, users)
    workflow.untick(item(release, QA_ITEM), by=users["qa"])
    workflow.tick(item(release, QA_ITEM), by=users["qa"])

    workflow.sign_off(release, role="qa", phase="Pre", by=users["qa"])

    rows = list(release.signoffs.order_by("id").values_list("reopened_at", flat=True))
    assert len(rows) == 2
    assert rows[0] is not None and rows[1] is None


def test_it_withdraws_a_sign_off(release: Release, users: dict[str, Any]) -> None:
    _signed_by_qa(release, users)

    workflow.withdraw_sign_off(release, role="qa", phase="Pre", by=users["qa"])

    signoff = release.signoffs.get()
    assert signoff.reopened_at is not None
    assert signoff.reopened_reason_text == "withdrawn by qa (QA)"
    assert "signoff-missing" in {r.code for r in blocking_reasons(release)}


def test_it_refuses_to_withdraw_a_sign_off_that_does_not_exist(
    release: Release, users: dict[str, Any]
) -> None:
    before = fingerprint(release)

    with pytest.raises(WorkflowError, match="no sign-off to withdraw"):
        workflow.withdraw_sign_off(release, role="qa", phase="Pre", by=users["qa"])

    assert fingerprint(release) == before


# --- go-live approval --------------------------------------------------------------------------


def _leave_pending(release: Release, users: dict[str, Any]) -> Release:
    workflow.untick(item(release, QA_ITEM), by=users["qa"])
    return release


def _block(release: Release, users: dict[str, Any]) -> Release:
    workflow.mark_blocked(item(release, QA_ITEM), by=users["qa"], reason="CI down")
    return release


def _withdraw(release: Release, users: dict[str, Any]) -> Release:
    workflow.withdraw_sign_off(release, role="frontend", phase="Pre", by=users["frontend"])
    return release


def _unassign(release: Release, users: dict[str, Any]) -> Release:
    workflow.unassign(release, role="frontend", user=users["frontend"], by=users["admin"])
    return release


def _placeholder_contact(release: Release, users: dict[str, Any]) -> Release:
    template = build_small_template("placeholders")
    template.contacts.update(name="[Nombre]")
    return ready_copy(template, users, version="v9.0.0")


def _no_rollback(release: Release, users: dict[str, Any]) -> Release:
    template = build_small_template("no-rollback")
    template.rollback_steps.all().delete()
    return ready_copy(template, users, version="v9.0.1")


OBSTACLES = {
    "item-open": (_leave_pending, f"Pending: “{QA_ITEM}” (QA Lead)"),
    "item-blocked": (_block, f"Blocked: “{QA_ITEM}” (QA Lead) — CI down"),
    "signoff-missing": (_withdraw, "Frontend Lead has not signed off “Pre”"),
    "role-unassigned": (_unassign, "Nobody holds the role Frontend Lead on this release"),
    "contact-placeholder": (
        _placeholder_contact,
        "Emergency contact for DevOps Lead still holds a placeholder",
    ),
    "no-rollback": (_no_rollback, "The release has no rollback plan"),
}


@pytest.mark.parametrize("code", OBSTACLES)
def test_it_refuses_approval_for_each_blocking_reason(
    ready_release: Release, users: dict[str, Any], code: str
) -> None:
    spoil, message = OBSTACLES[code]
    target = spoil(ready_release, users)
    before = fingerprint(target)

    with pytest.raises(WorkflowError) as caught:
        workflow.approve(target, by=users["po"])

    assert message in caught.value.message
    assert code in {r.code for r in blocking_reasons(target)}
    assert message in workflow.approval_obstacles(target, users["po"])
    assert fingerprint(target) == before
    assert not target.approvals.exists()


def test_it_has_no_obstacle_once_everything_is_ready(
    ready_release: Release, users: dict[str, Any]
) -> None:
    assert blocking_reasons(ready_release) == []
    assert workflow.approval_obstacles(ready_release, users["po"]) == []


@pytest.mark.parametrize(
    "status", [ReleaseStatus.CANCELLED, ReleaseStatus.DEPLOYED, ReleaseStatus.ROLLED_BACK]
)
def test_it_refuses_approval_of_a_finished_release(
    ready_release: Release, users: dict[str, Any], status: str
) -> None:
    Release.objects.filter(pk=ready_release.pk).update(status=status)
    ready_release.refresh_from_db()

    with pytest.raises(WorkflowError, match="The release is"):
        workflow.approve(ready_release, by=users["po"])


def test_it_approves_and_records_the_digest(ready_release: Release, users: dict[str, Any]) -> None:
    digest = ready_release.gate_digest()

    approval = workflow.approve(ready_release, by=users["po"])

    ready_release.refresh_from_db()
    assert approval.digest == digest
    assert approval.approved_by == users["po"]
    assert ready_release.active_approval() == approval
    assert ready_release.status == ReleaseStatus.APPROVED


def test_it_refuses_to_approve_twice(approved_release: Release, users: dict[str, Any]) -> None:
    before = fingerprint(approved_release)

    with pytest.raises(WorkflowError, match="already approved"):
        workflow.approve(approved_release, by=users["po"])

    assert fingerprint(approved_release) == before


def _po_signs_as_qa(release: Release, users: dict[str, Any]) -> None:
    workflow.assign(release, role="qa", user=users["po"], by=users["admin"])
    tick_pre(release, users)
    workflow.sign_off(release, role="qa", phase="Pre", by=users["po"])
    for role in ("devops", "backend", "frontend"):
        workflow.sign_off(release, role=role, phase="Pre", by=users[role])


def test_it_applies_the_two_person_rule(release: Release, users: dict[str, Any]) -> None:
    _po_signs_as_qa(release, users)
    before = fingerprint(release)

    with pytest.raises(WorkflowError, match="Two-person rule"):
        workflow.approve(release, by=users["po"])

    assert fingerprint(release) == before
    assert workflow.approval_obstacles(release, users["po"])[0].startswith("Two-person rule")


def test_it_lets_a_signer_approve_when_the_two_person_rule_is_off(
    small_template: ChecklistTemplate, users: dict[str, Any]
) -> None:
    made = workflow.create_release(
        small_template, version="v4.0.0", title="Solo", by=users["admin"], two_person_rule=False
    )
    for role in Role.values:
        workflow.assign(made, role=role, user=users[role], by=users["admin"])
    _po_signs_as_qa(made, users)

    approval = workflow.approve(made, by=users["po"])

    assert approval.approved_by == users["po"]
    assert workflow.approval_obstacles(made, users["po"]) == ["Go-live is already approved."]


GATE_CHANGES = {
    "untick": lambda r, u: workflow.untick(item(r, QA_ITEM), by=u["qa"]),
    "mark_na": lambda r, u: workflow.mark_not_applicable(
        item(r, QA_ITEM), by=u["qa"], reason="Covered elsewhere"
    ),
    "admin_block": lambda r, u: workflow.mark_blocked(
        item(r, QA_ITEM), by=u["admin"], reason="Regression found"
    ),
}


@pytest.mark.parametrize("change", GATE_CHANGES)
def test_it_revokes_approval_when_a_required_item_before_the_gate_changes(
    approved_release: Release, users: dict[str, Any], change: str
) -> None:
    GATE_CHANGES[change](approved_release, users)

    approved_release.refresh_from_db()
    approval = approved_release.approvals.get()
    assert approval.revoked_at is not None
    assert approval.revoked_reason_text == f"“{QA_ITEM}” changed after go-live was approved"
    assert approved_release.active_approval() is None
    assert approved_release.status == ReleaseStatus.IN_PROGRESS
    revoked = approved_release.audit_events.get(action="release.approval_revoked")
    assert revoked.override is False


KEEPING_CHANGES = {
    "optional_before_gate": lambda r, u: workflow.untick(item(r, OPTIONAL_PRE), by=u["devops"]),
    "after_gate": lambda r, u: workflow.tick(item(r, POST_GATE), by=u["backend"]),
    "after_gate_blocked": lambda r, u: workflow.mark_blocked(
        item(r, POST_GATE), by=u["backend"], reason="Slow"
    ),
    "note": lambda r, u: workflow.annotate_item(item(r, QA_ITEM), by=u["qa"], note="Green"),
    "evidence": lambda r, u: workflow.annotate_item(
        item(r, QA_ITEM), by=u["qa"], evidence_url="https://ci.example.com/9"
    ),
}


@pytest.mark.parametrize("change", KEEPING_CHANGES)
def test_it_keeps_approval_through_changes_outside_the_digest(
    approved_release: Release, users: dict[str, Any], change: str
) -> None:
    approval = approved_release.active_approval()

    KEEPING_CHANGES[change](approved_release, users)

    approved_release.refresh_from_db()
    assert approved_release.active_approval() == approval
    assert approved_release.status == ReleaseStatus.APPROVED
    assert not approved_release.audit_events.filter(action="release.approval_revoked").exists()


def test_it_revokes_approval_when_a_sign_off_is_withdrawn(
    approved_release: Release, users: dict[str, Any]
) -> None:
    workflow.withdraw_sign_off(approved_release, role="devops", phase="Pre", by=users["devops"])

    approved_release.refresh_from_db()
    assert approved_release.active_approval() is None
    assert approved_release.approvals.get().revoked_reason_text == "a lead withdrew a sign-off"
    assert approved_release.status == ReleaseStatus.IN_PROGRESS


def test_it_lets_the_product_owner_revoke_with_a_reason(
    approved_release: Release, users: dict[str, Any]
) -> None:
    workflow.revoke_approval(approved_release, by=users["po"], reason="Customer asked to wait")

    approved_release.refresh_from_db()
    assert approved_release.approvals.get().revoked_reason_text == "Customer asked to wait"
    assert approved_release.status == ReleaseStatus.IN_PROGRESS


def test_it_requires_a_reason_to_revoke(approved_release: Release, users: dict[str, Any]) -> None:
    before = fingerprint(approved_release)

    with pytest.raises(WorkflowError, match="Say why"):
        workflow.revoke_approval(approved_release, by=users["po"], reason="  ")

    assert fingerprint(approved_release) == before


def test_it_refuses_to_revoke_an_approval_that_does_not_exist(
    ready_release: Release, users: dict[str, Any]
) -> None:
    with pytest.raises(WorkflowError, match="not approved"):
        workflow.revoke_approval(ready_release, by=users["po"], reason="Just in case")


def test_it_approves_again_after_a_revocation(
    approved_release: Release, users: dict[str, Any]
) -> None:
    workflow.untick(item(approved_release, QA_ITEM), by=users["qa"])
    workflow.tick(item(approved_release, QA_ITEM), by=users["qa"])
    workflow.sign_off(approved_release, role="qa", phase="Pre", by=users["qa"])

    workflow.approve(approved_release, by=users["po"])

    assert approved_release.approvals.count() == 2
    assert approved_release.approvals.filter(revoked_at__isnull=True).count() == 1


# --- automated check results ----------------------------------------------------------------


def test_it_refuses_a_check_result_on_an_item_that_does_not_name_the_check(
    release: Release, ci_linked: None
) -> None:
    before = fingerprint(release)

    with pytest.raises(PermissionDenied):
        workflow.record_check_result(item(release, QA_ITEM), check="other", passed=True)

    assert fingerprint(release) == before


def test_it_ticks_a_pending_item_when_a_check_passes(
    release: Release,
    published: list[tuple[int, int]],
    django_capture_on_commit_callbacks: Any,
    ci_linked: None,
) -> None:
    last = last_event_id()

    with django_capture_on_commit_callbacks(execute=True):
        entry = workflow.record_check_result(
            item(release, QA_ITEM), check="ci", passed=True, evidence_url="https://ci.example.com/7"
        )

    entry.refresh_from_db()
    release.refresh_from_db()
    assert (entry.state, entry.evidence_url, entry.reason) == (
        ItemState.DONE,
        "https://ci.example.com/7",
        "",
    )
    assert (entry.changed_by, entry.changed_by_label) == (None, "check:ci")
    [event] = events_since(last)
    assert (event.action, event.actor, event.actor_label, event.source_ip, event.override) == (
        "check.passed",
        None,
        "check:ci",
        None,
        False,
    )
    assert event.after == {**BLANK, "state": "done", "evidence_url": "https://ci.example.com/7"}
    assert published == [(release.pk, release.revision)]


def test_it_fails_a_pending_item_when_a_check_fails(release: Release, ci_linked: None) -> None:
    entry = workflow.record_check_result(
        item(release, QA_ITEM), check="ci", passed=False, detail="3 tests failed"
    )

    entry.refresh_from_db()
    assert (entry.state, entry.reason) == (ItemState.FAILED, "3 tests failed")
    assert {r.code for r in blocking_reasons(release)} >= {"item-blocked"}
    assert release.audit_events.filter(action="check.failed", actor_label="check:ci").exists()


def test_it_gives_a_failing_check_a_default_reason(release: Release, ci_linked: None) -> None:
    entry = workflow.record_check_result(item(release, QA_ITEM), check="ci", passed=False)

    entry.refresh_from_db()
    assert (entry.state, entry.reason) == (ItemState.FAILED, "check failed")


def test_it_ticks_a_failed_item_once_its_check_passes(release: Release, ci_linked: None) -> None:
    workflow.record_check_result(item(release, QA_ITEM), check="ci", passed=False, detail="red")

    entry = workflow.record_check_result(item(release, QA_ITEM), check="ci", passed=True)

    entry.refresh_from_db()
    assert (entry.state, entry.reason) == (ItemState.DONE, "")


def test_it_records_no_event_when_a_check_repeats_its_verdict(
    release: Release, ci_linked: None
) -> None:
    workflow.record_check_result(item(release, QA_ITEM), check="ci", passed=False, detail="red")
    before = fingerprint(release)

    workflow.record_check_result(item(release, QA_ITEM), check="ci", passed=False, detail="red")

    # Only the result's time is new: pages show when a check last answered, so the
    # revision moves on, and nothing else does.
    after = fingerprint(release)
    assert after["release"] == (before["release"][0], before["release"][1] + 1)
    assert {**after, "release": None, "items": None} == {
        **before,
        "release": None,
        "items": None,
    }
    assert [row[:-1] for row in after["items"]] == [row[:-1] for row in before["items"]]


def test_it_waits_for_every_check_of_an_item_before_ticking_it(release: Release) -> None:
    release.items.filter(text=QA_ITEM).update(checks=["unit", "e2e"])

    workflow.record_check_result(item(release, QA_ITEM), check="unit", passed=True)
    assert item(release, QA_ITEM).state == ItemState.PENDING

    workflow.record_check_result(item(release, QA_ITEM), check="e2e", passed=True)
    assert item(release, QA_ITEM).state == ItemState.DONE


def test_it_fails_an_item_when_any_of_its_checks_fails_whatever_arrives_last(
    release: Release,
) -> None:
    release.items.filter(text=QA_ITEM).update(checks=["unit", "e2e"])

    workflow.record_check_result(item(release, QA_ITEM), check="unit", passed=False, detail="red")
    workflow.record_check_result(item(release, QA_ITEM), check="e2e", passed=True)

    entry = item(release, QA_ITEM)
    assert (entry.state, entry.reason) == (ItemState.FAILED, "unit: red")
    assert entry.check_results["e2e"]["outcome"] == "pass"


def test_it_keeps_a_failure_beside_a_tick_even_after_its_account_is_deleted(
    release: Release, users: dict[str, Any], ci_linked: None
) -> None:
    workflow.tick(item(release, QA_ITEM), by=users["qa"])
    release.stakeholders.filter(user=users["qa"]).delete()
    users["qa"].delete()

    workflow.record_check_result(item(release, QA_ITEM), check="ci", passed=False, detail="red")

    entry = item(release, QA_ITEM)
    assert (entry.state, entry.check_failure) == (ItemState.DONE, "red")


def test_it_never_undoes_a_persons_tick_but_blocks_on_the_failure(
    release: Release, users: dict[str, Any], ci_linked: None
) -> None:
    workflow.tick(item(release, QA_ITEM), by=users["qa"])
    release.refresh_from_db()
    start, last = release.revision, last_event_id()

    workflow.record_check_result(
        item(release, QA_ITEM), check="ci", passed=False, detail="2 tests failed"
    )

    entry = item(release, QA_ITEM)
    release.refresh_from_db()
    assert entry.state == ItemState.DONE
    assert entry.check_failure == "2 tests failed"
    assert [e.action for e in events_since(last)] == ["check.failed"]
    assert release.revision == start + 1
    reasons = {r.code: r.message for r in blocking_reasons(release)}
    assert reasons.get("check-failed") == (
        f"Automated check failing on “{QA_ITEM}”: 2 tests failed; "
        "override it with a reason or fix it"
    )


def test_it_clears_a_check_failure_on_a_persons_tick_when_the_check_passes(
    release: Release, users: dict[str, Any], ci_linked: None
) -> None:
    workflow.tick(item(release, QA_ITEM), by=users["qa"])
    workflow.record_check_result(item(release, QA_ITEM), check="ci", passed=False, detail="red")
    assert item(release, QA_ITEM).check_failure == "red"

    workflow.record_check_result(item(release, QA_ITEM), check="ci", passed=True)

    entry = item(release, QA_ITEM)
    assert (entry.state, entry.check_failure) == (ItemState.DONE, "")
    assert "check-failed" not in {r.code for r in blocking_reasons(release)}
    assert release.audit_events.filter(action="check.passed").exists()


def test_it_keeps_a_persons_tick_through_repeated_check_failures(
    release: Release, users: dict[str, Any], ci_linked: None
) -> None:
    workflow.tick(item(release, QA_ITEM), by=users["qa"])

    for detail in ("1 test failed", "2 tests failed"):
        workflow.record_check_result(
            item(release, QA_ITEM), check="ci", passed=False, detail=detail
        )

    entry = item(release, QA_ITEM)
    assert (entry.state, entry.check_failure) == (ItemState.DONE, "2 tests failed")
    assert entry.changed_by == users["qa"]


def test_it_never_undoes_a_persons_not_applicable(
    release: Release, users: dict[str, Any], ci_linked: None
) -> None:
    workflow.mark_not_applicable(item(release, QA_ITEM), by=users["qa"], reason="No tests yet")

    workflow.record_check_result(item(release, QA_ITEM), check="ci", passed=False)

    entry = item(release, QA_ITEM)
    assert (entry.state, entry.reason) == (ItemState.NOT_APPLICABLE, "No tests yet")


def test_it_clears_a_check_failure_when_a_person_reopens_the_item(
    release: Release, users: dict[str, Any], ci_linked: None
) -> None:
    workflow.tick(item(release, QA_ITEM), by=users["qa"])
    workflow.record_check_result(item(release, QA_ITEM), check="ci", passed=False, detail="red")

    workflow.untick(item(release, QA_ITEM), by=users["qa"])

    assert item(release, QA_ITEM).check_failure == ""


def test_it_refuses_check_evidence_that_is_not_an_http_link(
    release: Release, ci_linked: None
) -> None:
    before = fingerprint(release)

    with pytest.raises(WorkflowError):
        workflow.record_check_result(
            item(release, QA_ITEM), check="ci", passed=True, evidence_url="ftp://ci.example.com/1"
        )

    assert fingerprint(release) == before


# --- creating releases -------------------------------------------------------------------------


def test_it_copies_the_template_into_the_release(
    small_template: ChecklistTemplate, users: dict[str, Any]
) -> None:
    made = workflow.create_release(
        small_template,
        version=" v2.1.0 ",
        title=" Autumn ",
        by=users["admin"],
        changelog_url="https://x.example/cl",
    )

    assert (made.version, made.title, made.template, made.template_name) == (
        "v2.1.0",
        "Autumn",
        small_template,
        "small",
    )
    assert made.status == ReleaseStatus.PLANNED
    assert made.gate_position == 5
    assert made.two_person_rule is True
    copied = list(
        made.items.values_list(
            "position", "phase", "section", "text", "owner_role", "required", "state"
        )
    )
    expected = list(
        small_template.items.values_list(
            "position", "phase", "section", "text", "owner_role", "required"
        )
    )
    assert copied == [(*row, ItemState.PENDING) for row in expected]
    assert list(made.rollback_steps.values_list("text", "commands", "lang")) == [
        ("Roll back", "deploy --previous", "bash")
    ]
    assert list(made.contacts.values_list("role", "name", "phone", "email", "other")) == [
        ("DevOps Lead", "Dana Ops", "+34 600 000 001", "dana@example.com", "")
    ]


def test_it_keeps_the_release_when_the_template_changes_later(
    release: Release, small_template: ChecklistTemplate
) -> None:
    before = list(
        release.items.values_list("position", "text", "owner_role", "required", "before_gate")
    )
    small_template.items.filter(position=0).update(
        text="Rewritten", owner_role=Role.QA, required=False
    )
    small_template.items.filter(position=6).delete()
    TemplateItem.objects.create(
        template=small_template, position=7, phase="Deploy", text="New item", owner_role=Role.DEVOPS
    )
    small_template.rollback_steps.update(text="Changed")
    small_template.contacts.update(name="Someone else")
    small_template.gate_position = 1
    small_template.save()

    release.refresh_from_db()
    assert (
        list(release.items.values_list("position", "text", "owner_role", "required", "before_gate"))
        == before
    )
    assert release.gate_position == 5
    assert release.rollback_steps.get().text == "Roll back"
    assert release.contacts.get().name == "Dana Ops"


def test_it_computes_the_gate_from_the_templates_gate_position(release: Release) -> None:
    flags = dict(release.items.values_list("position", "before_gate"))

    assert flags == {0: True, 1: True, 2: True, 3: True, 4: True, 5: False, 6: False}


def test_it_puts_every_item_before_the_gate_when_the_template_has_none(
    users: dict[str, Any],
) -> None:
    template = build_small_template("gateless")
    template.gate_position = None
    template.save()

    made = workflow.create_release(template, version="v5.0.0", title="All", by=users["admin"])

    assert set(made.items.values_list("before_gate", flat=True)) == {True}


@pytest.mark.parametrize("version", ["1.2.3", "v1.2", "v01.2.3", "v1.2.3 beta", ""])
def test_it_refuses_a_malformed_version(
    small_template: ChecklistTemplate, users: dict[str, Any], version: str
) -> None:
    with pytest.raises(WorkflowError) as caught:
        workflow.create_release(small_template, version=version, title="Bad", by=users["admin"])

    assert (
        "Use a version like v1.2.3" in caught.value.message
        or "cannot be blank" in caught.value.message
    )
    assert not Release.objects.exists()
    assert not AuditEvent.objects.exists()


def test_it_accepts_a_pre_release_version(
    small_template: ChecklistTemplate, users: dict[str, Any]
) -> None:
    made = workflow.create_release(
        small_template, version="v1.2.3-rc.1", title="RC", by=users["admin"]
    )

    assert made.version == "v1.2.3-rc.1"


def test_it_refuses_a_duplicate_version(release: Release, users: dict[str, Any]) -> None:
    before = fingerprint(release)

    with pytest.raises(WorkflowError) as caught:
        workflow.create_release(
            release.template, version="v1.2.3", title="Again", by=users["admin"]
        )

    assert caught.value.message == "A release v1.2.3 already exists."

    assert fingerprint(release) == before


def test_it_refuses_a_window_that_ends_before_it_starts(
    small_template: ChecklistTemplate, users: dict[str, Any]
) -> None:
    start = timezone.now()

    with pytest.raises(WorkflowError, match="cannot end before it starts"):
        workflow.create_release(
            small_template,
            version="v6.0.0",
            title="Window",
            by=users["admin"],
            window_start=start,
            window_end=start - timezone.timedelta(hours=1),
        )

    assert not Release.objects.exists()


CELLS = {
    "phone and email": (
        "+34 600 000 001 / dana@example.com",
        ("+34 600 000 001", "dana@example.com", ""),
    ),
    "comma separated": (
        "ana@example.com, +34 (600) 000-002",
        ("+34 (600) 000-002", "ana@example.com", ""),
    ),
    "email only": ("ops@example.com", ("", "ops@example.com", "")),
    "phone only": ("+34 600 000 003", ("+34 600 000 003", "", "")),
    "phone and pager": ("+34 600 000 004 / pager #42", ("+34 600 000 004", "", "pager #42")),
    "seed placeholder": ("[Teléfono/Email]", ("", "", "[Teléfono/Email]")),
    "bracket placeholder": ("[Contacto]", ("", "", "[Contacto]")),
    "empty": ("", ("", "", "")),
}


@pytest.mark.parametrize("cell", CELLS)
def test_it_splits_a_contact_cell(release: Release, cell: str) -> None:
    text, expected = CELLS[cell]

    contact = EmergencyContact.from_cell(text, release=release, role="DevOps Lead", name="Dana")

    assert (contact.phone, contact.email, contact.other) == expected


@pytest.mark.parametrize(
    ("name", "cell", "placeholder"),
    [
        ("[Nombre]", "+34 600 000 001", True),
        ("Dana", "[Teléfono/Email]", True),
        ("Dana", "", True),
        ("Dana", "dana@example.com", False),
        ("Dana", "+34 600 000 001", False),
    ],
)
def test_it_knows_a_contact_still_holding_a_placeholder(
    release: Release, name: str, cell: str, placeholder: bool
) -> None:
    contact = EmergencyContact.from_cell(cell, release=release, role="DevOps Lead", name=name)

    assert contact.has_placeholder() is placeholder


def test_it_links_a_phone_for_dialling(release: Release) -> None:
    contact = EmergencyContact.from_cell(
        "+34 (600) 000-001", release=release, role="DevOps Lead", name="Dana"
    )

    assert contact.tel_href == "tel:+34600000001"


def test_it_clears_a_placeholder_when_the_contact_is_filled_in(
    release: Release, users: dict[str, Any]
) -> None:
    contact = release.contacts.get()
    EmergencyContact.objects.filter(pk=contact.pk).update(
        name="[Nombre]", phone="", email="", other="[Teléfono/Email]"
    )

    updated = workflow.update_contact(
        EmergencyContact.objects.get(pk=contact.pk),
        by=users["po"],
        name="Dana Ops",
        phone="+34 600 000 009",
        email="",
    )

    updated.refresh_from_db()
    assert (updated.name, updated.phone, updated.other) == ("Dana Ops", "+34 600 000 009", "")
    assert updated.has_placeholder() is False


def test_it_records_nothing_when_a_contact_is_saved_unchanged(
    release: Release, users: dict[str, Any]
) -> None:
    contact = release.contacts.get()
    before = fingerprint(release)

    workflow.update_contact(
        contact, by=users["po"], name=contact.name, phone=contact.phone, email=contact.email
    )

    assert fingerprint(release) == before


def test_it_refuses_an_invalid_contact_email(release: Release, users: dict[str, Any]) -> None:
    before = fingerprint(release)

    with pytest.raises(WorkflowError):
        workflow.update_contact(
            release.contacts.get(), by=users["po"], name="Dana", phone="", email="not-an-email"
        )

    assert fingerprint(release) == before


def test_it_refuses_an_unknown_role_assignment(release: Release, users: dict[str, Any]) -> None:
    with pytest.raises(WorkflowError, match="Unknown role"):
        workflow.assign(release, role="cto", user=users["outsider"], by=users["admin"])


def test_it_records_nothing_for_an_existing_assignment(
    release: Release, users: dict[str, Any]
) -> None:
    before = fingerprint(release)

    workflow.assign(release, role="qa", user=users["qa"], by=users["admin"])
    removed = workflow.unassign(release, role="qa", user=users["outsider"], by=users["admin"])

    assert removed is False
    assert fingerprint(release) == before
    assert workflow.unassign(release, role="qa", user=users["qa"], by=users["admin"]) is True


# --- status transitions ------------------------------------------------------------------------

S = ReleaseStatus
ALLOWED_MOVES = {
    (S.PLANNED, S.IN_PROGRESS),
    (S.PLANNED, S.CANCELLED),
    (S.IN_PROGRESS, S.PLANNED),
    (S.IN_PROGRESS, S.CANCELLED),
    (S.APPROVED, S.IN_PROGRESS),
    (S.APPROVED, S.DEPLOYED),
    (S.APPROVED, S.CANCELLED),
    # Declared through workflow.declare_rollback, with its reason and severity.
    (S.ROLLED_BACK, S.IN_PROGRESS),
    # Reopening a cancelled release: staff only (see the cancelled-release tests).
    (S.CANCELLED, S.IN_PROGRESS),
}
MOVES = [(a, b) for a in S for b in S if a != b]


@pytest.mark.parametrize(("current", "wanted"), [m for m in MOVES if m in ALLOWED_MOVES])
def test_it_allows_the_status_moves_of_the_table(
    release: Release, users: dict[str, Any], current: str, wanted: str
) -> None:
    Release.objects.filter(pk=release.pk).update(status=current)
    mover = "admin" if current == S.CANCELLED else "po"

    workflow.set_status(release, status=wanted, by=users[mover])

    release.refresh_from_db()
    assert release.status == wanted
    event = release.audit_events.get(action="release.status")
    assert (event.before, event.after) == ({"status": current}, {"status": wanted})


@pytest.mark.parametrize(("current", "wanted"), [m for m in MOVES if m not in ALLOWED_MOVES])
def test_it_refuses_status_moves_outside_the_table(
    release: Release, users: dict[str, Any], current: str, wanted: str
) -> None:
    Release.objects.filter(pk=release.pk).update(status=current)
    before = fingerprint(release)

    with pytest.raises(WorkflowError):
        workflow.set_status(release, status=wanted, by=users["admin"])

    assert fingerprint(release) == before


def test_it_ignores_a_move_to_the_current_status(release: Release, users: dict[str, Any]) -> None:
    before = fingerprint(release)

    workflow.set_status(release, status=ReleaseStatus.PLANNED, by=users["po"])

    assert fingerprint(release) == before


def test_it_refuses_an_unknown_status(release: Release, users: dict[str, Any]) -> None:
    with pytest.raises(WorkflowError):
        workflow.set_status(release, status="launched", by=users["po"])


def test_it_keeps_the_approval_when_the_release_is_deployed(
    approved_release: Release, users: dict[str, Any]
) -> None:
    approval = approved_release.active_approval()

    workflow.set_status(approved_release, status=ReleaseStatus.DEPLOYED, by=users["devops"])

    approved_release.refresh_from_db()
    assert approved_release.status == ReleaseStatus.DEPLOYED
    assert approved_release.active_approval() == approval
    assert approved_release.audit_events.get(action="release.status").override is False


@pytest.mark.parametrize("wanted", [ReleaseStatus.IN_PROGRESS, ReleaseStatus.CANCELLED])
def test_it_revokes_the_approval_when_an_approved_release_goes_elsewhere(
    approved_release: Release, users: dict[str, Any], wanted: str
) -> None:
    workflow.set_status(approved_release, status=wanted, by=users["po"])

    approved_release.refresh_from_db()
    assert approved_release.status == wanted
    assert approved_release.active_approval() is None


def test_it_lets_devops_roll_back_but_not_cancel(
    approved_release: Release, users: dict[str, Any]
) -> None:
    workflow.set_status(approved_release, status=ReleaseStatus.DEPLOYED, by=users["devops"])
    workflow.declare_rollback(
        approved_release, by=users["devops"], reason="errors", severity="major"
    )

    with pytest.raises(PermissionDenied):
        workflow.set_status(approved_release, status=ReleaseStatus.CANCELLED, by=users["devops"])

    approved_release.refresh_from_db()
    assert approved_release.status == ReleaseStatus.ROLLED_BACK


def test_it_ends_the_approval_with_the_rollback_of_the_deploy_it_approved(
    approved_release: Release, users: dict[str, Any]
) -> None:
    workflow.set_status(approved_release, status=ReleaseStatus.DEPLOYED, by=users["po"])

    workflow.declare_rollback(approved_release, by=users["po"], reason="errors", severity="major")

    approved_release.refresh_from_db()
    assert approved_release.active_approval() is None
    revoked = approved_release.approvals.get()
    assert revoked.revoked_reason == "a rollback was declared"
    event = approved_release.audit_events.get(action="release.approval_revoked")
    assert event.after == {"reason": "a rollback was declared"}


def test_it_needs_a_new_approval_for_a_new_go_live_after_a_rollback(
    approved_release: Release, users: dict[str, Any]
) -> None:
    po = users["po"]
    workflow.set_status(approved_release, status=ReleaseStatus.DEPLOYED, by=po)
    workflow.declare_rollback(approved_release, by=po, reason="errors", severity="minor")
    workflow.resolve_rollback(approved_release, by=po, reason="plan not needed in full")
    workflow.close_rollback(approved_release, by=po, cause="a bad migration")
    workflow.set_status(approved_release, status=ReleaseStatus.IN_PROGRESS, by=po)
    approved_release.refresh_from_db()
    assert approved_release.active_approval() is None
    assert not any(r.code == "status" for r in blocking_reasons(approved_release))

    workflow.approve(approved_release, by=users["po"])

    approved_release.refresh_from_db()
    assert approved_release.status == ReleaseStatus.APPROVED
    assert approved_release.approvals.filter(revoked_at__isnull=True).count() == 1
    workflow.set_status(approved_release, status=ReleaseStatus.DEPLOYED, by=users["po"])


@pytest.fixture
def cancelled_release(release: Release, users: dict[str, Any]) -> Release:
    workflow.set_status(release, status=ReleaseStatus.CANCELLED, by=users["po"])
    release.refresh_from_db()
    return release


@pytest.mark.parametrize(
    "change",
    [
        lambda r, u: workflow.tick(item(r, QA_ITEM), by=u["qa"]),
        lambda r, u: workflow.tick(item(r, QA_ITEM), by=u["admin"]),
        lambda r, u: workflow.annotate_item(item(r, QA_ITEM), by=u["qa"], note="late"),
        lambda r, u: workflow.mark_blocked(item(r, QA_ITEM), by=u["qa"], reason="x"),
        lambda r, u: workflow.sign_off(r, role="qa", phase="Pre", by=u["qa"]),
        lambda r, u: workflow.approve(r, by=u["po"]),
        lambda r, u: workflow.update_contact(
            r.contacts.get(), by=u["po"], name="New", phone="+34 600 000 009", email=""
        ),
        lambda r, u: workflow.record_check_result(item(r, QA_ITEM), check="ci", passed=True),
    ],
    ids=["tick", "staff-tick", "note", "block", "sign-off", "approve", "contact", "check"],
)
def test_it_refuses_every_change_to_a_cancelled_release_with_a_clear_message(
    cancelled_release: Release, users: dict[str, Any], ci_linked: None, change: Any
) -> None:
    before = fingerprint(cancelled_release)

    with pytest.raises(WorkflowError, match="cancelled: it accepts no change until staff reopen"):
        change(cancelled_release, users)

    assert fingerprint(cancelled_release) == before


def test_it_lets_only_staff_reopen_a_cancelled_release(
    cancelled_release: Release, users: dict[str, Any]
) -> None:
    with pytest.raises(WorkflowError, match="cancelled"):
        workflow.set_status(cancelled_release, status=ReleaseStatus.IN_PROGRESS, by=users["po"])

    workflow.set_status(cancelled_release, status=ReleaseStatus.IN_PROGRESS, by=users["admin"])

    cancelled_release.refresh_from_db()
    assert cancelled_release.status == ReleaseStatus.IN_PROGRESS
    assert cancelled_release.audit_events.filter(action="release.status").first().override
    workflow.tick(item(cancelled_release, QA_ITEM), by=users["qa"])


def test_it_lets_a_lead_sign_off_a_phase_the_gate_cuts_before_the_deploy(
    users: dict[str, Any],
) -> None:
    # One phase on both sides of the gate, with QA items on each side.
    template = build_small_template("cut")
    TemplateItem.objects.filter(template=template, phase="Deploy").update(phase="Pre")
    release = workflow.create_release(template, version="v3.0.0", title="Cut", by=users["admin"])
    for persona in ("devops", "backend", "frontend", "qa", "po"):
        workflow.assign(release, role=persona, user=users[persona], by=users["admin"])
    for entry in release.items.filter(before_gate=True):
        workflow.tick(entry, by=users[entry.owner_role])

    for role in LEADS:
        workflow.sign_off(release, role=role, phase="Pre", by=users[role])
    workflow.approve(release, by=users["po"])
    # The deploy and the checks after it leave the sign-off and the approval standing.
    workflow.tick(item(release, "Smoke tests in production"), by=users["qa"])

    release.refresh_from_db()
    assert release.active_approval() is not None
    assert release.signoffs.filter(role="qa", reopened_at__isnull=True).exists()
    assert blocking_reasons(release) == []


def test_it_refuses_to_approve_through_a_status(release: Release, users: dict[str, Any]) -> None:
    Release.objects.filter(pk=release.pk).update(status=ReleaseStatus.IN_PROGRESS)

    with pytest.raises(WorkflowError, match="through the approval"):
        workflow.set_status(release, status=ReleaseStatus.APPROVED, by=users["po"])

    assert not GoLiveApproval.objects.exists()


# --- the audit trail is append-only -------------------------------------------------------------


@pytest.fixture
def event(release: Release) -> AuditEvent:
    return release.audit_events.order_by("id").first()


def test_it_refuses_to_save_an_existing_audit_event(event: AuditEvent) -> None:
    event.action = "forged"

    with pytest.raises(TypeError, match="append-only"):
        event.save()

    event.refresh_from_db()
    assert event.action == "release.created"


def test_it_refuses_to_delete_an_audit_event(event: AuditEvent) -> None:
    with pytest.raises(TypeError, match="append-only"):
        event.delete()

    assert AuditEvent.objects.filter(pk=event.pk).exists()


@pytest.mark.parametrize(
    "tamper",
    [
        lambda qs: qs.update(action="forged"),
        lambda qs: qs.delete(),
        lambda qs: AuditEvent.objects.bulk_update(
            [AuditEvent(pk=e.pk, action="forged") for e in qs], ["action"]
        ),
    ],
    ids=["update", "delete", "bulk_update"],
)
def test_it_refuses_to_rewrite_the_audit_trail_in_bulk(
    release: Release, tamper: Callable[[Any], Any]
) -> None:
    actions = list(AuditEvent.objects.order_by("id").values_list("action", flat=True))

    # bulk_update opens its own atomic block; the savepoint keeps the test's transaction usable.
    with pytest.raises(TypeError, match="append-only"), transaction.atomic():
        tamper(AuditEvent.objects.filter(release=release))

    assert list(AuditEvent.objects.order_by("id").values_list("action", flat=True)) == actions


def test_it_still_appends_new_audit_events(release: Release) -> None:
    count = AuditEvent.objects.count()

    AuditEvent.objects.create(release=release, actor_label="system", action="note")

    assert AuditEvent.objects.count() == count + 1


def test_it_shows_system_reasons_in_each_readers_language(
    ready_release: Release, users: dict[str, Any]
) -> None:
    workflow.approve(ready_release, by=users["po"])
    workflow.untick(item(ready_release, QA_ITEM), by=users["qa"])
    approval = ready_release.approvals.get()
    with translation.override("es"):
        spanish = approval.revoked_reason_text
    assert QA_ITEM in spanish
    assert spanish != approval.revoked_reason_text
    assert approval.revoked_reason_text == f"“{QA_ITEM}” changed after go-live was approved"


@pytest.mark.parametrize(
    "change",
    [
        lambda e, u: workflow.annotate_item(e, by=u["qa"], note="ok \u202egnp.exe"),
        lambda e, u: workflow.mark_blocked(e, by=u["qa"], reason="wait \u2066for\u2069 it"),
    ],
    ids=["note", "reason"],
)
def test_it_refuses_invisible_bidirectional_controls_in_what_people_type(
    release: Release, users: dict[str, Any], change: Any
) -> None:
    before = fingerprint(release)

    with pytest.raises(WorkflowError, match=r"U\+202E|U\+2066"):
        change(item(release, QA_ITEM), users)

    assert fingerprint(release) == before


def _dana(release: Release) -> EmergencyContact:
    return release.contacts.get()


# What the admin, the pages and the commands call with text people typed: each is refused
# in the workflow itself, whatever page or command calls it.
TYPED_ELSEWHERE: dict[str, Callable[[Release, dict[str, Any]], Any]] = {
    "approval reason": lambda r, u: workflow.approve(r, by=u["po"], reason="ok\u202e"),
    "status move reason": lambda r, u: workflow.set_status(
        r, status="cancelled", by=u["admin"], reason="stop\u2067"
    ),
    "release title": lambda r, u: workflow.edit_release(
        r, fields={"title": "Sum\u202emer"}, by=u["admin"]
    ),
    "changelog link": lambda r, u: workflow.edit_release(
        r, fields={"changelog_url": "https://example.com/\u202edm.GOL"}, by=u["admin"]
    ),
    "new release's title": lambda r, u: workflow.create_release(
        r.template, version="v9.0.0", title="Sum\u202emer", by=u["admin"]
    ),
    "contact name": lambda r, u: workflow.update_contact(
        _dana(r), by=u["po"], name="Dolores\u202e Ortega", phone="+34 600 000 001", email=""
    ),
    "contact role in the admin": lambda r, u: workflow.edit_contact(
        _dana(r), fields={"role": "Dev\u2066Ops"}, by=u["admin"]
    ),
    "contact added in the admin": lambda r, u: workflow.add_contact(
        r, fields={"role": "QA", "name": "Quinn", "email": "q@exa\u202emple.com"}, by=u["admin"]
    ),
    "share-link label": lambda r, u: workflow.create_share_link(
        r, label="lab\u202eel", by=u["admin"]
    ),
    "evidence link": lambda r, u: workflow.annotate_item(
        item(r, QA_ITEM), by=u["qa"], evidence_url="https://ci.example/run/\u202e1gpj.exe"
    ),
    "template name": lambda r, u: workflow.import_template(
        checklists.read(checklists.DEFAULT_CHECKLIST), "small\u202e", by=u["admin"]
    ),
}


@pytest.mark.parametrize("change", TYPED_ELSEWHERE.values(), ids=TYPED_ELSEWHERE.keys())
def test_every_operation_refuses_invisible_bidirectional_controls_in_what_it_is_given(
    ready_release: Release, users: dict[str, Any], change: Any
) -> None:
    before = fingerprint(ready_release)

    with pytest.raises(WorkflowError, match=r"invisible bidirectional control characters"):
        change(ready_release, users)

    assert fingerprint(ready_release) == before


@pytest.mark.parametrize("year", [1, 1999, 3000, 9999])
def test_it_refuses_a_target_window_outside_the_years_every_date_keeps_to(
    release: Release, users: dict[str, Any], year: int
) -> None:
    # What the admin's release form sends; the release form refuses it itself.
    moment = timezone.now().replace(year=year, month=6, day=1)
    before = fingerprint(release)

    with pytest.raises(WorkflowError, match="Enter a year between 2000 and 2999"):
        workflow.edit_release(release, fields={"window_start": moment}, by=users["admin"])

    assert fingerprint(release) == before


def test_it_refuses_invisible_bidirectional_controls_in_why_approval_is_revoked(
    approved_release: Release, users: dict[str, Any]
) -> None:
    before = fingerprint(approved_release)

    with pytest.raises(WorkflowError, match=r"U\+202E"):
        workflow.revoke_approval(approved_release, by=users["po"], reason="late\u202e")

    assert fingerprint(approved_release) == before


# --- the contacts editor -----------------------------------------------------------------


def contact_rows(release: Release) -> list[tuple[str, str, str, str, str]]:
    return list(
        release.contacts.order_by("position").values_list("role", "name", "phone", "email", "other")
    )


def test_it_rewrites_the_contacts_in_one_audited_change_with_a_new_revision(
    release: Release,
    users: dict[str, Any],
    published: list[tuple[int, int]],
    django_capture_on_commit_callbacks: Any,
) -> None:
    dana = release.contacts.get()
    start, last = release.revision, last_event_id()
    rows = [
        workflow.ContactRow("Product Owner", "Pia", "+34 600 000 009", "", None),
        workflow.ContactRow("DevOps Lead", " Dana Ops ", "+34 600 000 002", "", dana.pk),
    ]

    with django_capture_on_commit_callbacks(execute=True):
        workflow.edit_contacts(
            release,
            rows=rows,
            based_on=workflow.contacts_version(release),
            by=Person(users["admin"], IP),
        )

    release.refresh_from_db()
    assert contact_rows(release) == [
        ("Product Owner", "Pia", "+34 600 000 009", "", ""),
        ("DevOps Lead", "Dana Ops", "+34 600 000 002", "", ""),
    ]
    assert release.contacts.get(role="DevOps Lead").pk == dana.pk
    [event] = events_since(last)
    assert event.action == AuditAction.CONTACTS_EDITED
    assert event.source_ip == IP
    assert event.before == {
        "contacts": [
            {
                "role": "DevOps Lead",
                "name": "Dana Ops",
                "phone": "+34 600 000 001",
                "email": "dana@example.com",
                "other": "",
            }
        ]
    }
    assert [c["name"] for c in event.after["contacts"]] == ["Pia", "Dana Ops"]
    assert release.revision == start + 1
    assert published == [(release.pk, release.revision)]


def test_it_removes_the_contacts_the_editor_left_out(
    release: Release, users: dict[str, Any]
) -> None:
    workflow.edit_contacts(
        release, rows=[], based_on=workflow.contacts_version(release), by=users["admin"]
    )

    assert contact_rows(release) == []
    event = release.audit_events.get(action=AuditAction.CONTACTS_EDITED)
    assert event.after == {"contacts": []}


def test_it_saves_a_placeholder_contact_and_it_blocks_go_live(
    ready_release: Release, users: dict[str, Any]
) -> None:
    assert not [r for r in blocking_reasons(ready_release) if r.code == "contact-placeholder"]
    rows = [workflow.ContactRow("QA Lead", "[Nombre]", "", "", None)]

    workflow.edit_contacts(
        ready_release,
        rows=rows,
        based_on=workflow.contacts_version(ready_release),
        by=users["admin"],
    )

    [contact] = ready_release.contacts.all()
    assert contact.has_placeholder()
    assert [r.code for r in blocking_reasons(ready_release)] == ["contact-placeholder"]


def test_it_keeps_a_placeholder_cell_until_a_phone_or_email_replaces_it(
    release: Release, users: dict[str, Any]
) -> None:
    release.contacts.update(phone="", email="", other="[Teléfono]")
    contact = release.contacts.get()

    def save(phone: str) -> None:
        row = workflow.ContactRow("DevOps Lead", "Dana Ops", phone, "", contact.pk)
        workflow.edit_contacts(
            release, rows=[row], based_on=workflow.contacts_version(release), by=users["admin"]
        )

    save("")
    kept = release.contacts.get().other
    save("+34 600 000 003")

    assert kept == "[Teléfono]"
    assert release.contacts.get().other == ""


def test_it_changes_nothing_when_the_editor_saves_the_contacts_as_they_were(
    release: Release, users: dict[str, Any]
) -> None:
    dana = release.contacts.get()
    row = workflow.ContactRow(dana.role, dana.name, dana.phone, dana.email, dana.pk)
    before = fingerprint(release)

    workflow.edit_contacts(
        release, rows=[row], based_on=workflow.contacts_version(release), by=users["admin"]
    )

    assert fingerprint(release) == before


def test_it_refuses_a_contacts_save_based_on_contacts_someone_else_changed(
    release: Release, users: dict[str, Any]
) -> None:
    loaded = workflow.contacts_version(release)
    workflow.update_contact(
        release.contacts.get(), by=users["po"], name="Dana", phone="+34 600 000 004", email=""
    )
    before = fingerprint(release)

    with pytest.raises(Conflict, match="Someone else saved the emergency contacts"):
        workflow.edit_contacts(
            release,
            rows=[workflow.ContactRow("QA Lead", "Quinn", "+34 600 000 005")],
            based_on=loaded,
            by=users["admin"],
        )

    assert fingerprint(release) == before


def test_a_tick_elsewhere_does_not_make_the_contacts_editor_stale(
    release: Release, users: dict[str, Any]
) -> None:
    loaded = workflow.contacts_version(release)
    workflow.tick(item(release, ITEM_OF["qa"]), by=users["qa"])

    workflow.edit_contacts(
        release,
        rows=[workflow.ContactRow("QA Lead", "Quinn", "+34 600 000 005")],
        based_on=loaded,
        by=users["admin"],
    )

    assert contact_rows(release) == [("QA Lead", "Quinn", "+34 600 000 005", "", "")]


@pytest.mark.parametrize(
    ("row", "says"),
    [
        (workflow.ContactRow("", "Quinn", "+34 600 000 005"), "Row 1: role:"),
        (workflow.ContactRow("QA Lead", "", "+34 600 000 005"), "Row 1: name:"),
        (workflow.ContactRow("QA Lead", "Quinn", "", "not-an-email"), "Row 1: email:"),
        (workflow.ContactRow("QA\nLead", "Quinn", "+34 600 000 005"), "one line"),
        (workflow.ContactRow("QA Lead", "Qu\u202einn", "+34 600 000 005"), "U+202E"),
    ],
)
def test_it_refuses_a_contact_row_that_cannot_be_saved_and_says_which(
    release: Release, users: dict[str, Any], row: workflow.ContactRow, says: str
) -> None:
    before = fingerprint(release)

    with pytest.raises(WorkflowError) as error:
        workflow.edit_contacts(
            release, rows=[row], based_on=workflow.contacts_version(release), by=users["admin"]
        )

    assert says in error.value.message
    assert fingerprint(release) == before


def test_it_refuses_a_row_naming_another_releases_contact(
    release: Release, small_template: ChecklistTemplate, users: dict[str, Any]
) -> None:
    other = workflow.create_release(small_template, version="v9.0.0", title="O", by=users["admin"])
    foreign = other.contacts.get()

    with pytest.raises(WorkflowError, match="Row 1 names a contact this release does not have"):
        workflow.edit_contacts(
            release,
            rows=[workflow.ContactRow("X", "Y", "+34 600 000 006", "", foreign.pk)],
            based_on=workflow.contacts_version(release),
            by=users["admin"],
        )

    assert other.contacts.get().name == foreign.name


@pytest.mark.parametrize("persona", [p for p in EVERYONE if p != "admin"])
def test_only_staff_rewrite_the_contacts(
    release: Release, users: dict[str, Any], persona: str
) -> None:
    before = fingerprint(release)

    with pytest.raises(PermissionDenied):
        workflow.edit_contacts(
            release, rows=[], based_on=workflow.contacts_version(release), by=users[persona]
        )

    assert fingerprint(release) == before


def test_a_cancelled_release_takes_no_contacts_edit(
    release: Release, users: dict[str, Any]
) -> None:
    workflow.set_status(release, status=ReleaseStatus.CANCELLED, by=users["po"])
    release.refresh_from_db()

    with pytest.raises(WorkflowError, match="accepts no change until staff reopen it"):
        workflow.edit_contacts(
            release, rows=[], based_on=workflow.contacts_version(release), by=users["admin"]
        )


def test_contacts_written_into_a_release_without_any_get_their_heading(
    release: Release, users: dict[str, Any]
) -> None:
    release.contacts.all().delete()
    Release.objects.filter(pk=release.pk).update(contacts_heading="")
    release.refresh_from_db()

    workflow.edit_contacts(
        release,
        rows=[workflow.ContactRow("QA Lead", "Quinn", "+34 600 000 005")],
        based_on=workflow.contacts_version(release),
        by=users["admin"],
    )

    release.refresh_from_db()
    assert release.contacts_heading == "Contactos de Emergencia"
    assert "| QA Lead | Quinn | +34 600 000 005 |" in checklists.export_release(release)
