"""The deploy and its rollback: the operations of releases.workflow.rollback, their
confirmation pages (no JavaScript needed), the rollout panel, and the export."""

from __future__ import annotations

import io
import re
from datetime import UTC, timedelta
from typing import Any

import pytest
from django.contrib.messages import get_messages
from django.core.exceptions import PermissionDenied
from django.core.management import call_command
from django.test import Client
from django.urls import reverse
from django.utils import timezone, translation

from releases import checklists, rollout_views, workflow
from releases import markdown as md
from releases.board import load_snapshot, render_update, viewer_for
from releases.models import (
    AuditAction,
    AuditEvent,
    Release,
    ReleaseStatus,
    Role,
    RollbackStep,
    RollbackStepRecord,
)
from releases.templatetags.moments import moment
from releases.workflow import WorkflowError


@pytest.fixture
def two_steps(deployed: Release) -> Release:
    """A second step, owned by QA, beside the DevOps one."""
    RollbackStep.objects.create(
        release=deployed, position=1, text="Check the site", owner_role=Role.QA
    )
    return deployed


def declare(release: Release, users: dict[str, Any], by: str = "devops") -> Any:
    return workflow.declare_rollback(
        release, by=users[by], reason="errors climbing", severity="critical"
    )


def actions_of(release: Release) -> list[str]:
    return list(release.audit_events.order_by("pk").values_list("action", flat=True))


# --- the deploy --------------------------------------------------------------------------


def test_it_records_the_deploy_start_and_a_successful_finish(
    approved: Release, users: dict[str, Any]
) -> None:
    started = workflow.start_deploy(approved, by=users["devops"], reason="window open")
    approved.refresh_from_db()
    assert approved.status == ReleaseStatus.APPROVED

    finished = workflow.finish_deploy(
        approved, by=users["po"], result="success", reason="smoke tests pass"
    )

    approved.refresh_from_db()
    assert approved.status == ReleaseStatus.DEPLOYED
    assert approved.active_approval() is not None
    assert finished.pk == started.pk
    assert finished.finished_at is not None and finished.finished_at >= finished.started_at
    assert finished.started_by_label.startswith("devops")
    assert finished.finished_by_label.startswith("po")
    events = approved.audit_events.filter(action__startswith="deploy.").order_by("pk")
    assert [(e.action, e.after["reason"]) for e in events] == [
        ("deploy.started", "window open"),
        ("deploy.finished", "smoke tests pass"),
    ]
    assert events[1].after["result"] == "success"


def test_it_keeps_a_failed_deploy_approved_for_a_rollback_or_another_try(
    approved: Release, users: dict[str, Any]
) -> None:
    workflow.start_deploy(approved, by=users["devops"], reason="go")
    workflow.finish_deploy(approved, by=users["devops"], result="failure", reason="502s")

    approved.refresh_from_db()
    assert approved.status == ReleaseStatus.APPROVED
    workflow.start_deploy(approved, by=users["devops"], reason="second try")
    assert approved.deployments.count() == 2


@pytest.mark.parametrize("persona", ["qa", "backend", "support", "outsider"])
def test_it_refuses_the_deploy_from_anyone_but_devops_po_or_staff(
    approved: Release, users: dict[str, Any], persona: str
) -> None:
    with pytest.raises(PermissionDenied):
        workflow.start_deploy(approved, by=users[persona], reason="go")

    assert not approved.deployments.exists()


def test_it_marks_staff_recording_the_deploy_as_an_override(
    approved: Release, users: dict[str, Any]
) -> None:
    workflow.start_deploy(approved, by=users["admin"], reason="on behalf of devops")

    assert approved.audit_events.get(action="deploy.started").override is True


def test_it_refuses_a_deploy_before_approval(release: Release, users: dict[str, Any]) -> None:
    with pytest.raises(WorkflowError, match="once go-live is approved"):
        workflow.start_deploy(release, by=users["devops"], reason="go")


def test_it_refuses_a_second_start_and_a_finish_without_a_start(
    approved: Release, users: dict[str, Any]
) -> None:
    with pytest.raises(WorkflowError, match="record its start first"):
        workflow.finish_deploy(approved, by=users["devops"], result="success", reason="ok")
    workflow.start_deploy(approved, by=users["devops"], reason="go")

    with pytest.raises(WorkflowError, match="already started"):
        workflow.start_deploy(approved, by=users["devops"], reason="again")


@pytest.mark.parametrize(
    ("result", "reason", "message"),
    [("success", "  ", "how the deploy went"), ("maybe", "ok", "succeeded or failed")],
)
def test_it_refuses_a_finish_without_its_reason_or_result(
    approved: Release, users: dict[str, Any], result: str, reason: str, message: str
) -> None:
    workflow.start_deploy(approved, by=users["devops"], reason="go")

    with pytest.raises(WorkflowError, match=message):
        workflow.finish_deploy(approved, by=users["devops"], result=result, reason=reason)

    assert approved.deployments.get().finished_at is None


def test_it_refuses_a_start_without_a_reason(approved: Release, users: dict[str, Any]) -> None:
    with pytest.raises(WorkflowError, match="Say why the deploy starts"):
        workflow.start_deploy(approved, by=users["devops"], reason="")


# --- declaring ----------------------------------------------------------------------------


def test_it_turns_the_plan_into_a_checklist_when_a_rollback_is_declared(
    two_steps: Release, users: dict[str, Any]
) -> None:
    detected = timezone.now() - timedelta(minutes=5)

    rollback = workflow.declare_rollback(
        two_steps, by=users["po"], reason="errors climbing", severity="major", detected_at=detected
    )

    two_steps.refresh_from_db()
    assert two_steps.status == ReleaseStatus.ROLLED_BACK
    assert two_steps.active_approval() is None
    assert rollback.detected_at == detected
    assert rollback.declared_by_label.startswith("po")
    assert [r.step.owner_role for r in rollback.records.all()] == [Role.DEVOPS, Role.QA]
    assert not any(r.done for r in rollback.records.all())
    event = two_steps.audit_events.get(action="rollback.declared")
    assert event.before == {"status": "deployed"}
    assert event.after == {
        "status": "rolled_back",
        "severity": "major",
        "reason": "errors climbing",
        "detected_at": detected.isoformat(),
    }


def test_it_rolls_back_a_deploy_that_started_and_ends_that_deploy_as_failed(
    approved: Release, users: dict[str, Any]
) -> None:
    workflow.start_deploy(approved, by=users["devops"], reason="go")

    declare(approved, users)

    deployment = approved.deployments.get()
    assert deployment.result == "failure"
    assert deployment.finished_at is not None
    approved.refresh_from_db()
    assert approved.status == ReleaseStatus.ROLLED_BACK


UNDER_A_DEPLOY = "A deploy is under way, and this would take go-live approval away"


@pytest.mark.parametrize(
    "take_away",
    [
        lambda release, users: workflow.revoke_approval(
            release, by=users["po"], reason="second thoughts"
        ),
        lambda release, users: workflow.withdraw_sign_off(
            release, role=Role.QA, phase="Pre", by=users["qa"]
        ),
        lambda release, users: workflow.set_status(
            release, status="in_progress", by=users["admin"], reason="not yet"
        ),
    ],
    ids=["revoked", "sign-off withdrawn", "status moved"],
)
def test_it_keeps_the_approval_under_a_deploy_until_it_ends_or_is_rolled_back(
    approved: Release, users: dict[str, Any], take_away: Any
) -> None:
    workflow.start_deploy(approved, by=users["devops"], reason="go")
    count = AuditEvent.objects.count()

    with pytest.raises(WorkflowError, match=UNDER_A_DEPLOY):
        take_away(approved, users)

    approved.refresh_from_db()
    assert approved.status == ReleaseStatus.APPROVED
    assert approved.active_approval() is not None
    assert AuditEvent.objects.count() == count
    # Either way out still works.
    workflow.finish_deploy(approved, by=users["devops"], result="failure", reason="errors")
    declare(approved, users)
    approved.refresh_from_db()
    assert approved.status == ReleaseStatus.ROLLED_BACK


def test_the_board_offers_no_revoking_nor_status_move_under_a_deploy(
    approved: Release, users: dict[str, Any]
) -> None:
    client = Client(headers={"Accept-Language": "en"})
    client.force_login(users["po"])
    board = reverse("releases:board", args=[approved.version])
    revoke = reverse("releases:revoke-approval", args=[approved.version])
    assert revoke in client.get(board).content.decode()

    workflow.start_deploy(approved, by=users["devops"], reason="go")
    page = client.get(board).content.decode()
    refused = client.post(revoke, {"reason": "second thoughts"}, follow=True)

    assert revoke not in page
    assert UNDER_A_DEPLOY in refused.content.decode()
    approved.refresh_from_db()
    assert approved.active_approval() is not None


def test_it_refuses_to_declare_twice(deployed: Release, users: dict[str, Any]) -> None:
    declare(deployed, users)
    count = AuditEvent.objects.count()

    with pytest.raises(WorkflowError, match="already declared"):
        declare(deployed, users, by="po")

    assert deployed.rollbacks.count() == 1
    assert AuditEvent.objects.count() == count


def test_it_refuses_a_rollback_of_a_release_not_deployed(
    approved: Release, users: dict[str, Any]
) -> None:
    with pytest.raises(WorkflowError, match="Only a deployed release"):
        declare(approved, users)

    approved.refresh_from_db()
    assert approved.status == ReleaseStatus.APPROVED


@pytest.mark.parametrize("persona", ["qa", "backend", "frontend", "support", "outsider"])
def test_it_lets_only_devops_and_the_po_declare(
    deployed: Release, users: dict[str, Any], persona: str
) -> None:
    with pytest.raises(PermissionDenied):
        declare(deployed, users, by=persona)

    assert not deployed.rollbacks.exists()


@pytest.mark.parametrize(
    ("reason", "severity", "detected", "message"),
    [
        ("", "major", None, "Say why the release is rolled back"),
        ("errors", "apocalyptic", None, "Choose the severity"),
        ("errors", "major", timedelta(hours=1), "in the future"),
    ],
)
def test_it_refuses_a_declaration_missing_what_it_needs(
    deployed: Release,
    users: dict[str, Any],
    reason: str,
    severity: str,
    detected: timedelta | None,
    message: str,
) -> None:
    with pytest.raises(WorkflowError, match=message):
        workflow.declare_rollback(
            deployed,
            by=users["devops"],
            reason=reason,
            severity=severity,
            detected_at=timezone.now() + detected if detected else None,
        )

    deployed.refresh_from_db()
    assert deployed.status == ReleaseStatus.DEPLOYED


def test_it_refuses_a_rollback_set_as_a_plain_status(
    deployed: Release, users: dict[str, Any]
) -> None:
    with pytest.raises(WorkflowError, match="declared"):
        workflow.set_status(deployed, status=ReleaseStatus.ROLLED_BACK, by=users["po"])


# --- working through it -------------------------------------------------------------------


def test_it_lets_each_owner_tick_their_step_and_resolves_when_all_are_done(
    two_steps: Release, users: dict[str, Any]
) -> None:
    declare(two_steps, users)
    first, second = two_steps.rollback_steps.order_by("position")

    workflow.tick_rollback_step(first, by=users["devops"])
    with pytest.raises(PermissionDenied):
        workflow.tick_rollback_step(second, by=users["devops"])
    record = workflow.tick_rollback_step(second, by=users["qa"])

    rollback = record.rollback
    rollback.refresh_from_db()
    assert record.done_by_label.startswith("qa") and record.done_at is not None
    assert rollback.resolved_at is not None
    assert rollback.resolved_reason == "every step of the plan is done"
    assert actions_of(two_steps)[-3:] == [
        "rollback.step_done",
        "rollback.step_done",
        "rollback.resolved",
    ]


def test_it_lets_staff_tick_any_step_as_an_override(
    deployed: Release, users: dict[str, Any]
) -> None:
    declare(deployed, users)

    workflow.tick_rollback_step(deployed.rollback_steps.get(), by=users["admin"])

    assert deployed.audit_events.get(action="rollback.step_done").override is True


def test_it_refuses_a_tick_when_no_rollback_is_declared(
    deployed: Release, users: dict[str, Any]
) -> None:
    with pytest.raises(WorkflowError, match="No rollback is declared"):
        workflow.tick_rollback_step(deployed.rollback_steps.get(), by=users["devops"])


def test_it_stamps_mitigation_from_a_step_or_a_person_once(
    two_steps: Release, users: dict[str, Any]
) -> None:
    declare(two_steps, users)
    first = two_steps.rollback_steps.get(position=0)

    workflow.tick_rollback_step(first, by=users["devops"], mitigates=True)

    rollback = two_steps.rollbacks.get()
    assert rollback.mitigated_at is not None
    assert rollback.mitigated_reason == "step 1 mitigated it: Roll back"
    with pytest.raises(WorkflowError, match="already marked mitigated"):
        workflow.mitigate_rollback(two_steps, by=users["po"], reason="traffic drained")


def test_it_refuses_a_mitigation_without_a_reason(deployed: Release, users: dict[str, Any]) -> None:
    declare(deployed, users)

    with pytest.raises(WorkflowError, match="what mitigated it"):
        workflow.mitigate_rollback(deployed, by=users["po"], reason=" ")


def test_it_keeps_a_note_and_an_evidence_link_on_a_step(
    deployed: Release, users: dict[str, Any]
) -> None:
    declare(deployed, users)
    step = deployed.rollback_steps.get()

    workflow.annotate_rollback_step(step, by=users["devops"], note="took 3 min")
    record = workflow.annotate_rollback_step(
        step, by=users["devops"], evidence_url="https://ci.example/run/9"
    )

    assert (record.note, record.evidence_url) == ("took 3 min", "https://ci.example/run/9")
    assert record.changed_by_label.startswith("devops")
    with pytest.raises(WorkflowError, match="http"):
        workflow.annotate_rollback_step(step, by=users["devops"], evidence_url="ftp://x")
    with pytest.raises(PermissionDenied):
        workflow.annotate_rollback_step(step, by=users["qa"], note="not mine")


def test_it_refuses_a_note_saved_on_a_stale_step_and_keeps_the_other_one(
    deployed: Release, users: dict[str, Any]
) -> None:
    declare(deployed, users)
    step = deployed.rollback_steps.get()
    seen = workflow.step_version(step.records.get())
    workflow.annotate_rollback_step(
        step, by=users["devops"], note="DB restored", expected_version=seen
    )

    with pytest.raises(workflow.Conflict) as caught:
        workflow.annotate_rollback_step(
            step, by=users["admin"], note="waiting on DB", expected_version=seen
        )

    assert "Step 1 was changed by devops" in caught.value.message
    assert step.records.get().note == "DB restored"
    # Based on what is saved now, it replaces it knowingly.
    current = workflow.step_version(step.records.get())
    record = workflow.annotate_rollback_step(
        step, by=users["admin"], note="waiting on DB", expected_version=current
    )
    assert record.note == "waiting on DB"
    assert workflow.step_version(record) != current


def test_it_refuses_a_stale_tick_or_untick_of_a_step(
    deployed: Release, users: dict[str, Any]
) -> None:
    declare(deployed, users)
    step = deployed.rollback_steps.get()
    seen = workflow.step_version(step.records.get())
    workflow.tick_rollback_step(step, by=users["devops"], expected_version=seen)
    events = actions_of(deployed)

    # A tick from the older page: the step is done already, and the page did not show it.
    with pytest.raises(workflow.Conflict, match="it is now done"):
        workflow.tick_rollback_step(step, by=users["admin"], expected_version=seen)
    ticked = workflow.step_version(step.records.get())
    workflow.annotate_rollback_step(step, by=users["devops"], note="restored")
    # An untick from a page that showed the tick but not the note since.
    with pytest.raises(workflow.Conflict, match="it is now done"):
        workflow.tick_rollback_step(step, by=users["admin"], done=False, expected_version=ticked)

    assert step.records.get().done
    assert actions_of(deployed) == [*events, AuditAction.ROLLBACK_STEP_ANNOTATED]


def test_it_tells_a_stale_step_in_spanish_from_a_capital_letter(
    deployed: Release, users: dict[str, Any]
) -> None:
    declare(deployed, users)
    step = deployed.rollback_steps.get()
    workflow.annotate_rollback_step(step, by=users["devops"], note="DB restored")

    with translation.override("es"), pytest.raises(workflow.Conflict) as caught:
        workflow.tick_rollback_step(step, by=users["admin"], expected_version=0)

    assert caught.value.message == (
        f"El paso 1 lo cambió {step.records.get().changed_by_label} después de que "
        "cargaras la página; ahora está pendiente. Revísalo y vuelve a intentarlo."
    )


@pytest.mark.parametrize("change", ["tick", "note"])
def test_it_refuses_a_version_the_step_never_had_as_such_not_as_stale(
    deployed: Release, users: dict[str, Any], change: str
) -> None:
    declare(deployed, users)
    step = deployed.rollback_steps.get()
    current = workflow.step_version(
        workflow.annotate_rollback_step(step, by=users["devops"], note="DB restored")
    )
    events = actions_of(deployed)

    with pytest.raises(WorkflowError) as caught:
        if change == "tick":
            workflow.tick_rollback_step(step, by=users["devops"], expected_version=current + 1)
        else:
            workflow.annotate_rollback_step(
                step, by=users["devops"], note="x", expected_version=current + 1
            )

    assert not isinstance(caught.value, workflow.Conflict)
    assert caught.value.message == (
        f"Step 1 has never had version {current + 1}; its version is {current}."
    )
    assert actions_of(deployed) == events


def test_a_steps_version_grows_with_each_change_even_if_the_clock_goes_back(
    deployed: Release, users: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    declare(deployed, users)
    step = deployed.rollback_steps.get()
    first = workflow.step_version(
        workflow.annotate_rollback_step(step, by=users["devops"], note="DB restored")
    )
    # Another web host, whose clock is an hour behind, makes the next change.
    earlier = timezone.now() - timedelta(hours=1)
    monkeypatch.setattr(timezone, "now", lambda: earlier)

    second = workflow.step_version(workflow.tick_rollback_step(step, by=users["devops"]))

    assert second > first
    # The version seen before that change is stale, not one the step never had.
    with pytest.raises(workflow.Conflict):
        workflow.annotate_rollback_step(
            step, by=users["admin"], note="waiting", expected_version=first
        )


def test_it_keeps_a_steps_evidence_link_to_a_host_named_without_a_domain(
    deployed: Release, users: dict[str, Any]
) -> None:
    declare(deployed, users)
    seen = str(workflow.step_version(deployed.rollback_steps.get().records.get()))

    response = client_for(users, "devops").post(
        step_url_of(deployed),
        {"action": "evidence", "version": seen, "evidence_url": "http://jenkins/job/1"},
    )

    assert response.status_code == 302
    assert messages_of(response) == ["Saved the evidence link on step 1."]
    record = deployed.rollback_steps.get().records.get()
    assert record.evidence_url == "http://jenkins/job/1"


def test_it_lets_a_step_change_without_a_version_act_on_it_as_it_is(
    deployed: Release, users: dict[str, Any]
) -> None:
    declare(deployed, users)
    step = deployed.rollback_steps.get()
    workflow.annotate_rollback_step(step, by=users["devops"], note="first")

    record = workflow.annotate_rollback_step(step, by=users["admin"], note="second")
    workflow.tick_rollback_step(step, by=users["devops"])
    again = workflow.tick_rollback_step(step, by=users["devops"])

    assert record.note == "second"
    assert again.done


def test_it_needs_resolution_and_a_cause_to_close(
    two_steps: Release, users: dict[str, Any]
) -> None:
    declare(two_steps, users)

    with pytest.raises(WorkflowError, match="not resolved"):
        workflow.close_rollback(two_steps, by=users["po"], cause="bad migration")
    with pytest.raises(WorkflowError, match="Say why the rollback is resolved"):
        workflow.resolve_rollback(two_steps, by=users["po"], reason="")
    workflow.resolve_rollback(two_steps, by=users["po"], reason="the QA check is not needed")
    with pytest.raises(WorkflowError, match="cause of the rollback"):
        workflow.close_rollback(two_steps, by=users["po"], cause="  ")

    closed = workflow.close_rollback(two_steps, by=users["devops"], cause="bad migration")

    assert closed.cause == "bad migration" and closed.closed_at is not None
    two_steps.refresh_from_db()
    assert two_steps.status == ReleaseStatus.ROLLED_BACK
    with pytest.raises(WorkflowError, match="closed"):
        workflow.tick_rollback_step(two_steps.rollback_steps.get(position=0), by=users["devops"])


def test_reopening_a_step_takes_back_a_resolution_the_steps_gave(
    two_steps: Release, users: dict[str, Any]
) -> None:
    declare(two_steps, users)
    first, second = two_steps.rollback_steps.order_by("position")
    workflow.tick_rollback_step(first, by=users["devops"])
    workflow.tick_rollback_step(second, by=users["qa"])

    workflow.tick_rollback_step(first, by=users["devops"], done=False)

    rollback = two_steps.rollbacks.get()
    assert (rollback.resolved_at, rollback.resolved_by_label, rollback.resolved_reason) == (
        None,
        "",
        "",
    )
    taken_back = two_steps.audit_events.latest("pk")
    assert (taken_back.action, taken_back.before, taken_back.after) == (
        "rollback.unresolved",
        {"reason": "every step of the plan is done"},
        {"reason": "", "step": 1},
    )
    with pytest.raises(WorkflowError, match="not resolved"):
        workflow.close_rollback(two_steps, by=users["po"], cause="bad migration")
    po = client_for(users, "po")
    board, status = (
        po.get(reverse(f"releases:{page}", args=[two_steps.version])).content.decode()
        for page in ("board", "status")
    )
    for html in (board, status):
        assert "1 of 2 steps done" in html
        assert "every step of the plan is done" not in html
    assert f'href="{confirm_url(two_steps, "close")}"' not in board
    assert f'href="{confirm_url(two_steps, "resolve")}"' in board

    workflow.tick_rollback_step(first, by=users["devops"])
    rollback.refresh_from_db()
    assert rollback.resolved_reason == "every step of the plan is done"


def test_reopening_a_step_keeps_a_resolution_a_person_declared(
    two_steps: Release, users: dict[str, Any]
) -> None:
    declare(two_steps, users)
    first = two_steps.rollback_steps.get(position=0)
    workflow.tick_rollback_step(first, by=users["devops"])
    workflow.resolve_rollback(two_steps, by=users["po"], reason="the QA check is not needed")

    workflow.tick_rollback_step(first, by=users["devops"], done=False)

    rollback = two_steps.rollbacks.get()
    assert rollback.resolved_reason == "the QA check is not needed"
    assert rollback.resolved_at is not None
    assert workflow.close_rollback(two_steps, by=users["po"], cause="bad migration").closed_at


def test_it_keeps_a_rolled_back_release_until_its_rollback_is_closed(
    deployed: Release, users: dict[str, Any]
) -> None:
    declare(deployed, users)

    with pytest.raises(WorkflowError, match="close it with its cause"):
        workflow.set_status(deployed, status=ReleaseStatus.IN_PROGRESS, by=users["po"])

    workflow.tick_rollback_step(deployed.rollback_steps.get(), by=users["devops"])
    workflow.close_rollback(deployed, by=users["po"], cause="bad config")
    workflow.set_status(
        deployed, status=ReleaseStatus.IN_PROGRESS, by=users["po"], reason="try again"
    )
    deployed.refresh_from_db()
    assert deployed.status == ReleaseStatus.IN_PROGRESS
    event = deployed.audit_events.filter(action="release.status").latest("pk")
    assert event.after == {"status": "in_progress", "reason": "try again"}


def test_the_board_shows_the_status_move_held_while_the_rollback_is_open(
    deployed: Release, users: dict[str, Any]
) -> None:
    declare(deployed, users)
    move = confirm_url(deployed, "status-in_progress")
    board = reverse("releases:board", args=[deployed.version])

    for persona in ("po", "admin"):
        page = client_for(users, persona).get(board).content.decode()

        assert move not in page
        assert re.search(r'<button type="button"[^>]*disabled[^>]*>In progress</button>', page)
        assert "The rollback is still open: close it with its cause before moving on." in page

    workflow.tick_rollback_step(deployed.rollback_steps.get(), by=users["devops"])
    workflow.close_rollback(deployed, by=users["po"], cause="bad config")
    page = client_for(users, "po").get(board).content.decode()
    assert move in page
    assert "The rollback is still open" not in page


@pytest.mark.parametrize("persona", ["qa", "support"])
def test_it_lets_only_devops_and_the_po_resolve_and_close(
    deployed: Release, users: dict[str, Any], persona: str
) -> None:
    declare(deployed, users)

    with pytest.raises(PermissionDenied):
        workflow.resolve_rollback(deployed, by=users[persona], reason="done")
    with pytest.raises(PermissionDenied):
        workflow.close_rollback(deployed, by=users[persona], cause="x")


def test_it_records_the_reason_given_when_approving(approved: Release) -> None:
    event = approved.audit_events.get(action="release.approved")

    assert event.after["reason"] == "everything green"


# --- export -------------------------------------------------------------------------------


def test_it_exports_each_steps_record_and_reads_it_back(
    two_steps: Release, users: dict[str, Any]
) -> None:
    declare(two_steps, users)
    first = two_steps.rollback_steps.get(position=0)
    workflow.tick_rollback_step(first, by=users["devops"])
    workflow.annotate_rollback_step(
        first, by=users["devops"], evidence_url="https://ci.example/run/9"
    )
    workflow.annotate_rollback_step(
        two_steps.rollback_steps.get(position=1), by=users["qa"], note="waiting on CDN"
    )

    text = checklists.export_release(two_steps)

    done = first.records.get()
    assert done.done_at is not None
    stamp = done.done_at.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")
    assert (
        f"   <!-- deploycheck: record --> done by {done.done_by_label} at {stamp}"
        " — evidence: https://ci.example/run/9"
    ) in text
    assert "2. Check the site <!-- deploycheck: owner=qa -->" in text
    assert "   <!-- deploycheck: record --> pending — note: waiting on CDN" in text
    steps = md.parse_checklist(text).rollback_steps
    assert [(s.owner, s.record.state if s.record else None) for s in steps] == [
        (None, "done"),
        ("qa", "pending"),
    ]


def test_it_exports_no_step_record_without_a_rollback(deployed: Release) -> None:
    text = checklists.export_release(deployed)

    assert "record -->" not in text.split("Roll back", 1)[1]


def test_it_keeps_a_steps_owner_from_the_plan_into_the_release(
    users: dict[str, Any],
) -> None:
    doc = md.parse_checklist(
        "# T\n\n## P\n\n- [ ] Item <!-- deploycheck: owner=qa -->\n\n## Rollback\n\n"
        "1. Restore the database <!-- deploycheck: owner=backend -->\n"
        "2. Announce it\n"
    )
    template = workflow.import_template(doc, name="owners", by=users["admin"])
    release = workflow.create_release(template, version="v9.0.0", title="X", by=users["admin"])

    owners = list(release.rollback_steps.order_by("position").values_list("owner_role", "text"))

    assert owners == [(Role.BACKEND, "Restore the database"), (Role.DEVOPS, "Announce it")]


# --- pages, without JavaScript --------------------------------------------------------------


def client_for(users: dict[str, Any], persona: str) -> Client:
    client = Client(headers={"Accept-Language": "en"})
    client.force_login(users[persona])
    return client


def confirm_url(release: Release, action: str) -> str:
    return reverse("releases:confirm", args=[release.version, action])


def test_it_asks_before_declaring_and_declares_on_the_post(
    deployed: Release, users: dict[str, Any]
) -> None:
    devops = client_for(users, "devops")
    board = devops.get(reverse("releases:board", args=[deployed.version])).content.decode()
    assert f'href="{confirm_url(deployed, "rollback")}"' in board

    page = devops.get(confirm_url(deployed, "rollback"))

    assert page.status_code == 200
    html = page.content.decode()
    assert 'name="reason"' in html and 'name="severity"' in html and 'name="detected_at"' in html
    deployed.refresh_from_db()
    assert deployed.status == ReleaseStatus.DEPLOYED

    response = devops.post(
        confirm_url(deployed, "rollback"),
        {"reason": "errors", "severity": "major", "detected_at": "2020-01-01T10:00"},
    )

    assert response.status_code == 302
    deployed.refresh_from_db()
    assert deployed.status == ReleaseStatus.ROLLED_BACK
    assert deployed.rollbacks.get().detected_at is not None


@pytest.mark.parametrize("detected", ["0001-01-01 00:00", "1999-12-31T23:59"])
def test_it_refuses_a_detection_time_outside_the_years_every_date_keeps_to(
    deployed: Release, users: dict[str, Any], detected: str
) -> None:
    response = client_for(users, "devops").post(
        confirm_url(deployed, "rollback"),
        {"reason": "broken", "severity": "minor", "detected_at": detected},
    )

    assert response.status_code == 422
    html = response.content.decode()
    assert "When it was detected must be in a year between 2000 and 2999." in html
    assert "broken</textarea>" in html
    deployed.refresh_from_db()
    assert deployed.status == ReleaseStatus.DEPLOYED
    assert not deployed.rollbacks.exists()


def test_it_keeps_what_was_typed_when_a_confirmation_is_refused(
    deployed: Release, users: dict[str, Any]
) -> None:
    response = client_for(users, "devops").post(
        confirm_url(deployed, "rollback"), {"reason": "errors climbing", "severity": ""}
    )

    assert response.status_code == 422
    html = response.content.decode()
    assert "errors climbing</textarea>" in html
    assert "Choose the severity of the problem." in html
    assert not deployed.rollbacks.exists()


def test_it_refuses_an_approval_confirmed_without_a_reason(
    ready_release: Release, users: dict[str, Any]
) -> None:
    response = client_for(users, "po").post(confirm_url(ready_release, "approve"), {"reason": ""})

    assert response.status_code == 422
    assert "Say why go-live is approved now." in response.content.decode()
    assert ready_release.active_approval() is None


def test_it_answers_403_to_a_confirmation_by_the_wrong_role(
    deployed: Release, users: dict[str, Any]
) -> None:
    response = client_for(users, "qa").post(
        confirm_url(deployed, "rollback"), {"reason": "x", "severity": "minor"}
    )

    assert response.status_code == 403
    assert not deployed.rollbacks.exists()


# Every confirmation page, and the refusal its operation gives to a role it is not for.
CONFIRM_REFUSALS = {
    "approve": "Only the Product Owner approves go-live.",
    "deploy-start": "Only DevOps or the Product Owner record the deploy.",
    "deploy-finish": "Only DevOps or the Product Owner record the deploy.",
    "rollback": "Only DevOps or the Product Owner declare a rollback.",
    "mitigate": "Only DevOps or the Product Owner mark the rollback mitigated.",
    "resolve": "Only DevOps or the Product Owner resolve the rollback.",
    "close": "Only DevOps or the Product Owner close the rollback.",
    "status-cancelled": "Only staff can do this.",
    "status-in_progress": "Only staff can do this.",
    "status-planned": "Only staff can do this.",
}


@pytest.mark.parametrize("persona", ["support", "backend"])
@pytest.mark.parametrize(("action", "refusal"), CONFIRM_REFUSALS.items())
def test_it_refuses_a_confirmation_page_to_a_role_its_post_refuses_with_the_same_words(
    deployed: Release, users: dict[str, Any], persona: str, action: str, refusal: str
) -> None:
    client = client_for(users, persona)
    typed = {"reason": "x", "cause": "x", "severity": "minor", "result": "success"}

    page = client.get(confirm_url(deployed, action))
    posted = client.post(confirm_url(deployed, action), typed)

    assert page.status_code == posted.status_code == 403
    assert refusal in page.content.decode() and refusal in posted.content.decode()
    assert 'name="reason"' not in page.content.decode()
    assert 'name="cause"' not in page.content.decode()


def test_every_confirmation_page_is_covered_by_the_refusals(release: Release) -> None:
    assert set(rollout_views._confirmations(release)) == set(CONFIRM_REFUSALS)


def test_it_cancels_through_a_confirmation_with_its_reason(
    release: Release, users: dict[str, Any]
) -> None:
    po = client_for(users, "po")
    assert po.get(confirm_url(release, "status-cancelled")).status_code == 200

    po.post(confirm_url(release, "status-cancelled"), {"reason": "scope moved to v2"})

    release.refresh_from_db()
    assert release.status == ReleaseStatus.CANCELLED
    event = release.audit_events.get(action="release.status")
    assert event.after == {"status": "cancelled", "reason": "scope moved to v2"}


def test_it_answers_404_to_an_unknown_action(release: Release, users: dict[str, Any]) -> None:
    assert client_for(users, "po").get(confirm_url(release, "launch")).status_code == 404


def test_it_ticks_a_step_from_the_board_without_javascript(
    deployed: Release, users: dict[str, Any]
) -> None:
    declare(deployed, users)
    step = deployed.rollback_steps.get()
    devops = client_for(users, "devops")
    board = devops.get(reverse("releases:board", args=[deployed.version])).content.decode()
    step_url = reverse("releases:rollback-step", args=[deployed.version, step.pk])
    assert f'action="{step_url}"' in board
    assert f'<pre id="rollout-code-{step.pk}" tabindex="0" role="region"' in board
    assert 'data-copy="rollout-code-' in board

    response = devops.post(step_url, {"action": "tick", "version": "0", "mitigates": "1"})

    assert response.status_code == 302
    record = step.records.get()
    assert record.done
    assert record.rollback.mitigated_at is not None
    status = devops.get(reverse("releases:status", args=[deployed.version])).content.decode()
    assert "1 of 1 step done" in status
    assert f'action="{step_url}"' not in status


def messages_of(response: Any) -> list[str]:
    return [str(message) for message in get_messages(response.wsgi_request)]


def step_url_of(release: Release) -> str:
    return reverse(
        "releases:rollback-step", args=[release.version, release.rollback_steps.get().pk]
    )


def versions_on(html: str) -> set[str]:
    """The versions the rollout panel's step forms carry."""
    panel = html[html.index('id="rollout-panel"') :]
    panel = panel[: panel.index("</section>")]
    return set(re.findall(r'name="version" value="(\d+)"', panel))


def test_it_refuses_a_note_from_a_stale_board_without_javascript_keeping_what_was_typed(
    deployed: Release, users: dict[str, Any]
) -> None:
    declare(deployed, users)
    devops, staff = client_for(users, "devops"), client_for(users, "admin")
    board_url = reverse("releases:board", args=[deployed.version])
    (seen,) = versions_on(staff.get(board_url).content.decode())
    assert devops.get(board_url).status_code == 200

    saved = devops.post(step_url_of(deployed), {"action": "note", "version": seen, "note": "DB ok"})
    stale = staff.post(
        step_url_of(deployed), {"action": "note", "version": seen, "note": "DB waiting"}
    )

    assert saved.status_code == 302
    assert stale.status_code == 409
    html = stale.content.decode()
    assert "Step 1 was changed by devops" in html
    # What is saved now is shown, and what was typed stays in the form, now based on it.
    assert "<strong>Note:</strong> DB ok" in html
    assert 'name="note" maxlength="5000" value="DB waiting"' in html
    (renewed,) = versions_on(html)
    assert renewed != seen
    assert deployed.rollback_steps.get().records.get().note == "DB ok"

    again = staff.post(
        step_url_of(deployed), {"action": "note", "version": renewed, "note": "DB waiting"}
    )
    assert again.status_code == 302
    assert deployed.rollback_steps.get().records.get().note == "DB waiting"


def test_it_refuses_a_stale_evidence_link_with_htmx_keeping_what_was_typed(
    deployed: Release, users: dict[str, Any]
) -> None:
    declare(deployed, users)
    seen = str(workflow.step_version(deployed.rollback_steps.get().records.get()))
    devops, staff = client_for(users, "devops"), client_for(users, "admin")
    devops.post(
        step_url_of(deployed),
        {"action": "evidence", "version": seen, "evidence_url": "https://ci.example/1"},
    )

    response = staff.post(
        step_url_of(deployed),
        {"action": "evidence", "version": seen, "evidence_url": "https://ci.example/2"},
        headers={"HX-Request": "true"},
    )

    html = response.content.decode()
    assert response.status_code == 409
    assert "Step 1 was changed by devops" in html
    assert 'value="https://ci.example/2"' in html
    assert 'href="https://ci.example/1"' in html
    assert seen not in versions_on(html)
    record = deployed.rollback_steps.get().records.get()
    assert record.evidence_url == "https://ci.example/1"


@pytest.mark.parametrize("htmx", [False, True], ids=["page", "htmx"])
def test_a_refused_step_note_comes_back_in_its_field(
    deployed: Release, users: dict[str, Any], htmx: bool
) -> None:
    declare(deployed, users)
    seen = str(workflow.step_version(deployed.rollback_steps.get().records.get()))
    typed = "DB \u202ewaiting"

    response = client_for(users, "devops").post(
        step_url_of(deployed),
        {"action": "note", "version": seen, "note": typed},
        headers={"HX-Request": "true"} if htmx else {},
    )

    assert response.status_code == 422
    assert f'name="note" maxlength="5000" value="{typed}"' in response.content.decode()
    assert deployed.rollback_steps.get().records.get().note == ""


def test_emptying_a_steps_note_says_it_was_removed_and_an_invisible_one_is_refused(
    deployed: Release, users: dict[str, Any]
) -> None:
    declare(deployed, users)
    devops = client_for(users, "devops")

    def send(note: str) -> Any:
        record = deployed.rollback_steps.get().records.get()
        seen = str(workflow.step_version(record))
        return devops.post(step_url_of(deployed), {"action": "note", "version": seen, "note": note})

    saved = send("DB ok")
    removed = send("  ")
    absent = send("")
    unseen = send("\u200b\u2060")

    # Each answer's own message is its last: a redirect's is shown on the next page.
    assert messages_of(saved)[-1] == "Saved the note on step 1."
    assert messages_of(removed)[-1] == "Removed the note on step 1."
    assert messages_of(absent)[-1] == "Step 1 has no note to remove: nothing changed."
    assert unseen.status_code == 422
    assert "only invisible characters" in unseen.content.decode()
    assert deployed.rollback_steps.get().records.get().note == ""


def test_it_refuses_a_stale_tick_or_untick_from_the_board(
    deployed: Release, users: dict[str, Any]
) -> None:
    declare(deployed, users)
    devops, staff = client_for(users, "devops"), client_for(users, "admin")
    devops.post(step_url_of(deployed), {"action": "tick", "version": "0"})
    ticked = str(workflow.step_version(deployed.rollback_steps.get().records.get()))
    devops.post(step_url_of(deployed), {"action": "untick", "version": ticked})

    # Ticked and reopened since the page loaded: a tick from it would undo the reopening
    # as if it had never been seen, and an untick from the page that saw the tick, too.
    response = staff.post(step_url_of(deployed), {"action": "tick", "version": "0"})
    stale = staff.post(
        step_url_of(deployed),
        {"action": "untick", "version": ticked},
        headers={"HX-Request": "true"},
    )

    assert response.status_code == 302
    assert "Step 1 was changed by devops" in messages_of(response)[0]
    assert stale.status_code == 409
    assert "since you loaded the page; it is now pending" in stale.content.decode()
    assert not deployed.rollback_steps.get().records.get().done


def test_it_refuses_a_step_change_without_its_version(
    deployed: Release, users: dict[str, Any]
) -> None:
    declare(deployed, users)

    response = client_for(users, "devops").post(
        step_url_of(deployed), {"action": "note", "note": "x"}, headers={"HX-Request": "true"}
    )

    assert response.status_code == 422
    assert "Reload the page and try again." in response.content.decode()
    assert deployed.rollback_steps.get().records.get().note == ""


def test_it_shows_the_deploy_clock_on_the_board_and_the_status_page(
    approved: Release, users: dict[str, Any]
) -> None:
    deployment = workflow.start_deploy(approved, by=users["devops"], reason="go")
    client = client_for(users, "support")

    page = client.get(reverse("releases:status", args=[approved.version])).content.decode()

    assert f'data-clock-from="{deployment.started_at.isoformat()}"' in page
    assert "Deploying for (h:min)" in page
    assert ">0:00</span>" in page


def test_the_deploy_clock_says_in_spanish_when_it_was_counted(
    approved: Release, users: dict[str, Any]
) -> None:
    workflow.start_deploy(approved, by=users["devops"], reason="go")
    client = client_for(users, "support")

    page = client.get(
        reverse("releases:status", args=[approved.version]), HTTP_ACCEPT_LANGUAGE="es"
    ).content.decode()

    assert re.search(r'class="clock__asof">contado a las \d\d:\d\d UTC</span>', page)


def now_in_words(release: Release, users: dict[str, Any], language: str = "en") -> str:
    """The status page's sentence of what is happening now."""
    page = client_for(users, "support").get(
        reverse("releases:status", args=[release.version]), HTTP_ACCEPT_LANGUAGE=language
    )
    found = re.search(r'<p class="now__phase">.*?</span> (.*?)</p>', page.content.decode())
    assert found is not None
    return found.group(1)


def test_the_status_page_tells_the_deploy_and_the_rollback_as_they_go(
    approved: Release, users: dict[str, Any]
) -> None:
    RollbackStep.objects.create(
        release=approved, position=1, text="Check the site", owner_role=Role.QA
    )
    first, second = approved.rollback_steps.order_by("position")

    workflow.start_deploy(approved, by=users["devops"], reason="go")
    assert now_in_words(approved, users) == "Approved for go-live; the deploy is under way."
    assert now_in_words(approved, users, "es") == (
        "Aprobada para producción; el despliegue está en curso."
    )

    workflow.finish_deploy(approved, by=users["devops"], result="failure", reason="500s")
    assert now_in_words(approved, users) == (
        "The deploy failed; go-live stays approved for a rollback or another try."
    )

    declare(approved, users)
    assert now_in_words(approved, users) == "A rollback is under way: 0 of 2 steps done."
    assert now_in_words(approved, users, "es") == ("Hay un rollback en curso: 0 de 2 pasos hechos.")

    workflow.tick_rollback_step(first, by=users["devops"])
    workflow.mitigate_rollback(approved, by=users["po"], reason="traffic drained")
    assert now_in_words(approved, users) == (
        "A rollback is under way, its impact mitigated: 1 of 2 steps done."
    )

    workflow.tick_rollback_step(second, by=users["qa"])
    assert now_in_words(approved, users) == (
        "The rollback is resolved: production runs the previous version again. "
        "It is yet to be closed with its cause."
    )

    workflow.close_rollback(approved, by=users["po"], cause="bad config")
    assert now_in_words(approved, users) == (
        "The rollback is closed: production runs the previous version again."
    )

    workflow.set_status(approved, status=ReleaseStatus.IN_PROGRESS, by=users["po"], reason="again")
    assert now_in_words(approved, users) == "The team is working through the checklist."


def test_the_status_page_tells_a_deploy_that_succeeded(
    deployed: Release, users: dict[str, Any]
) -> None:
    assert now_in_words(deployed, users) == "The deploy succeeded; the release is in production."


def test_the_status_page_tells_a_rollback_without_a_plan_without_counting_steps(
    deployed: Release, users: dict[str, Any]
) -> None:
    deployed.rollback_steps.all().delete()
    declare(deployed, users)

    assert now_in_words(deployed, users) == "A rollback is under way."


def test_the_status_page_tells_no_deploy_of_an_earlier_go_live(
    approved: Release, users: dict[str, Any]
) -> None:
    workflow.start_deploy(approved, by=users["devops"], reason="go")
    workflow.finish_deploy(approved, by=users["devops"], result="failure", reason="500s")
    workflow.revoke_approval(approved, by=users["po"], reason="fix it first")
    workflow.approve(approved, by=users["po"], reason="fixed")

    assert now_in_words(approved, users) == (
        "Approved for go-live; the deploy has not been recorded yet."
    )


def test_it_prints_the_rollback_record_with_the_export_command(
    deployed: Release, users: dict[str, Any]
) -> None:
    declare(deployed, users)
    workflow.annotate_rollback_step(
        deployed.rollback_steps.get(), by=users["devops"], note="rolled back in 2 min"
    )
    out = io.StringIO()

    call_command("export_checklist", "--release", deployed.version, stdout=out)

    assert "   <!-- deploycheck: record --> pending — note: rolled back in 2 min" in out.getvalue()


def test_it_brings_the_rollout_panel_to_open_pages_with_each_change(
    deployed: Release, users: dict[str, Any]
) -> None:
    viewer = viewer_for(users["support"], deployed, read_only=True, language="en")
    seen = deployed.revision

    declare(deployed, users)

    _revision, html = render_update(load_snapshot(deployed.pk), viewer, "status", seen)
    assert 'id="rollout-panel"' in html
    assert "Rollback under way" in html


def test_it_tells_the_rollback_on_the_timeline_and_the_panel_in_the_readers_language(
    deployed: Release, users: dict[str, Any]
) -> None:
    detected = timezone.now() - timedelta(minutes=5)
    workflow.declare_rollback(
        deployed, by=users["devops"], reason="errors", severity="critical", detected_at=detected
    )
    workflow.tick_rollback_step(deployed.rollback_steps.get(), by=users["devops"], mitigates=True)
    client = Client(headers={"Accept-Language": "es"})
    client.force_login(users["qa"])

    timeline = client.get(reverse("releases:timeline", args=[deployed.version])).content.decode()
    status = client.get(reverse("releases:status", args=[deployed.version])).content.decode()

    for said in (
        "Motivo: se declaró un rollback",
        "Motivo: el paso 1 lo mitigó: Roll back",
        "Motivo: todos los pasos del plan están hechos",
    ):
        assert said in timeline
    with translation.override("es"):
        assert f"Detectado: {moment(detected)}" in timeline
    for raw in ("detected_at", "a rollback was declared", "mitigated it", "every step"):
        assert raw not in timeline
    assert "el paso 1 lo mitigó: Roll back" in status and "mitigated it" not in status


def test_it_names_the_step_that_mitigated_it_without_its_markup(
    deployed: Release, users: dict[str, Any]
) -> None:
    step = deployed.rollback_steps.get()
    step.text = "**Revert flag**: disable `beta_checkout`"
    step.save()
    declare(deployed, users)
    workflow.tick_rollback_step(step, by=users["devops"], mitigates=True)
    token = workflow.create_share_link(deployed, label="customer", by=users["admin"])

    qa = client_for(users, "qa")
    pages = [
        qa.get(reverse("releases:board", args=[deployed.version])),
        qa.get(reverse("releases:status", args=[deployed.version])),
        Client(headers={"Accept-Language": "en"}).get(
            reverse("releases:shared-status", args=[token])
        ),
    ]

    said = "step 1 mitigated it: Revert flag: disable beta_checkout"
    assert deployed.rollbacks.get().mitigated_reason == said
    for page in pages:
        assert said in page.content.decode()
        assert "mitigated it: **" not in page.content.decode()


def test_it_keeps_a_steps_note_and_evidence_link_from_a_share_links_timeline(
    deployed: Release, users: dict[str, Any]
) -> None:
    declare(deployed, users)
    workflow.annotate_rollback_step(
        deployed.rollback_steps.get(),
        by=users["devops"],
        note="called the DBA",
        evidence_url="https://ci.example/run/9",
    )
    token = workflow.create_share_link(deployed, label="customer", by=users["admin"])

    shared = Client(headers={"Accept-Language": "en"}).get(
        reverse("releases:shared-timeline", args=[token])
    )
    team = client_for(users, "qa").get(reverse("releases:timeline", args=[deployed.version]))

    html = shared.content.decode()
    assert "Rollback step note or evidence changed" in html and "Roll back" in html
    for kept in ("Note:", "called the DBA", "Evidence link:", "ci.example"):
        assert kept not in html
    assert "Note: ∅ → called the DBA" in team.content.decode()
    assert "Evidence link: ∅ → https://ci.example/run/9" in team.content.decode()


# --- the plan's editor -------------------------------------------------------------------

NEW_PLAN = (
    "Tell support first.\n\n"
    "1. Roll back <!-- deploycheck: owner=backend -->\n"
    "   ```bash\n   deploy --previous\n   ```\n"
    "2. Check the site <!-- deploycheck: owner=qa -->\n"
)


def edit_plan(release: Release, by: Any, markdown: str = NEW_PLAN, **kwargs: Any) -> Any:
    based_on = kwargs.pop("based_on", None) or workflow.plan_version(release)
    return workflow.edit_rollback_plan(
        release, markdown=markdown, based_on=based_on, by=by, **kwargs
    )


def plan_rows(release: Release) -> list[tuple[int, str, str, str]]:
    return list(
        release.rollback_steps.order_by("position").values_list(
            "position", "text", "commands", "owner_role"
        )
    )


def test_it_rewrites_the_plan_in_one_audited_change_with_a_new_revision(
    release: Release, users: dict[str, Any], django_capture_on_commit_callbacks: Any
) -> None:
    first = release.rollback_steps.get()
    start = release.revision

    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        edit_plan(release, users["admin"])

    release.refresh_from_db()
    assert release.rollback_intro == "Tell support first."
    assert plan_rows(release) == [
        (0, "Roll back", "deploy --previous", Role.BACKEND),
        (1, "Check the site", "", Role.QA),
    ]
    # Rewritten in place: a past rollback's record of the first step still names it.
    assert release.rollback_steps.get(position=0).pk == first.pk
    assert release.revision == start + 1
    assert len(callbacks) == 1
    event = release.audit_events.get(action="rollback.plan_edited")
    assert event.before == {
        "intro": "",
        "steps": [
            {
                "text": "Roll back",
                "commands": "deploy --previous",
                "lang": "bash",
                "owner": "devops",
            }
        ],
    }
    assert [(s["text"], s["owner"]) for s in event.after["steps"]] == [
        ("Roll back", "backend"),
        ("Check the site", "qa"),
    ]
    assert md.parse_checklist(checklists.export_release(release)).rollback_steps == (
        md.parse_rollback_plan(NEW_PLAN).steps
    )


def test_it_drops_the_steps_a_shorter_plan_leaves_out(
    two_steps: Release, users: dict[str, Any]
) -> None:
    edit_plan(two_steps, users["admin"], "1. Only this\n")

    assert plan_rows(two_steps) == [(0, "Only this", "", Role.DEVOPS)]


def test_it_changes_nothing_when_the_plan_is_saved_as_it_was(
    release: Release, users: dict[str, Any]
) -> None:
    text = md.render_rollback_plan(workflow.rollback_plan(release))
    revision = release.revision

    edit_plan(release, users["admin"], text)

    release.refresh_from_db()
    assert release.revision == revision
    assert not release.audit_events.filter(action="rollback.plan_edited").exists()


def test_it_refuses_a_plan_it_cannot_read_with_the_line_to_blame(
    release: Release, users: dict[str, Any]
) -> None:
    before = plan_rows(release)

    with pytest.raises(WorkflowError, match="Line 2 of the rollback plan: unknown owner 'ops'"):
        edit_plan(
            release, users["admin"], "1. Roll back\n2. Check <!-- deploycheck: owner=ops -->\n"
        )

    assert plan_rows(release) == before


def test_it_refuses_a_plan_save_based_on_a_plan_someone_else_changed(
    release: Release, users: dict[str, Any]
) -> None:
    loaded = workflow.plan_version(release)
    edit_plan(release, users["admin"], "1. Someone else's plan\n")

    with pytest.raises(workflow.Conflict, match="Someone else saved the rollback plan"):
        edit_plan(release, users["admin"], based_on=loaded)

    assert plan_rows(release) == [(0, "Someone else's plan", "", Role.DEVOPS)]


def test_it_refuses_to_edit_the_plan_while_a_rollback_is_in_progress(
    two_steps: Release, users: dict[str, Any]
) -> None:
    declare(two_steps, users)
    before = plan_rows(two_steps)

    with pytest.raises(WorkflowError, match="A rollback is in progress"):
        edit_plan(two_steps, users["admin"])

    assert plan_rows(two_steps) == before


def test_it_lets_the_plan_be_edited_once_the_rollback_is_closed(
    deployed: Release, users: dict[str, Any]
) -> None:
    declare(deployed, users)
    workflow.tick_rollback_step(deployed.rollback_steps.get(), by=users["devops"])
    workflow.close_rollback(deployed, by=users["po"], cause="bad config")

    edit_plan(deployed, users["admin"])

    assert [row[1] for row in plan_rows(deployed)] == ["Roll back", "Check the site"]


def test_it_keeps_a_step_that_holds_an_earlier_rollbacks_record(
    two_steps: Release, users: dict[str, Any]
) -> None:
    declare(two_steps, users)
    for step in two_steps.rollback_steps.order_by("position"):
        workflow.tick_rollback_step(step, by=users[step.owner_role])
    workflow.close_rollback(two_steps, by=users["po"], cause="bad config")
    before, records = plan_rows(two_steps), RollbackStepRecord.objects.count()

    with pytest.raises(WorkflowError, match="Step 2 holds the record of an earlier rollback"):
        edit_plan(two_steps, users["admin"], "1. Only this\n")

    assert plan_rows(two_steps) == before
    assert RollbackStepRecord.objects.count() == records


@pytest.mark.parametrize("persona", ["devops", "po", "qa", "support", "outsider"])
def test_only_staff_edit_the_plan(release: Release, users: dict[str, Any], persona: str) -> None:
    before = plan_rows(release)

    with pytest.raises(PermissionDenied):
        edit_plan(release, users[persona])

    assert plan_rows(release) == before


def test_a_plan_written_into_a_release_without_one_gets_its_heading(
    release: Release, users: dict[str, Any]
) -> None:
    Release.objects.filter(pk=release.pk).update(rollback_heading="")
    release.rollback_steps.all().delete()
    release.refresh_from_db()

    edit_plan(release, users["admin"])

    release.refresh_from_db()
    assert release.rollback_heading == "Plan de Rollback"
    assert "## Plan de Rollback" in checklists.export_release(release)


def test_it_refuses_a_step_too_long_for_its_column_naming_the_step(
    release: Release, users: dict[str, Any]
) -> None:
    too_long = "1. Fine\n2. Restore\n   ```" + "x" * 41 + "\n   run\n   ```\n"

    with pytest.raises(WorkflowError, match=r"Step 2 of the rollback plan: .*at most 40"):
        edit_plan(release, users["admin"], too_long)

    assert plan_rows(release) == [(0, "Roll back", "deploy --previous", Role.DEVOPS)]
