"""The outbox: which workflow operations write which events, with what, in the same
transaction as the change; and a delivery per channel that wants each."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from unittest import mock
from zoneinfo import ZoneInfo

import pytest
from django.db import transaction

from notifications import outbox
from notifications.models import Delivery, Event
from releases import workflow
from releases.actors import PipelineActor
from releases.models import Release, ReleaseItem, ReleaseStatus
from releases.workflow import WorkflowError

from .conftest import events_of, make_channel, types_of

UTC = ZoneInfo("UTC")


def only(release: Release, event_type: str) -> dict[str, Any]:
    found = events_of(release, event_type)
    assert len(found) == 1, [e.type for e in Event.objects.all()]
    return found[0].data


def test_it_writes_an_event_with_the_release_actor_time_and_link(
    release: Release, users: dict[str, Any]
) -> None:
    entry = release.items.get(text="Unit tests pass")

    workflow.mark_blocked(entry, by=users["qa"], reason="staging is down")

    event = events_of(release, "item.blocked")[0]
    assert event.actor_label == "qa (QA)"
    assert event.actor_kind == "person"
    assert event.data == {
        "release": {
            "version": "v1.2.3",
            "title": "Spring",
            "url": "http://127.0.0.1:8000/releases/v1.2.3/",
        },
        "actor": {"label": "qa (QA)", "kind": "person"},
        "at": event.created_at.isoformat(),
        "item": "Unit tests pass",
        "reason": "staging is down",
    }


def test_it_links_to_the_site_url(release: Release, users: dict[str, Any], settings: Any) -> None:
    settings.SITE_URL = "https://deploycheck.example.com/"

    workflow.mark_blocked(release.items.get(text="Unit tests pass"), by=users["qa"], reason="x")

    assert only(release, "item.blocked")["release"]["url"] == (
        "https://deploycheck.example.com/releases/v1.2.3/"
    )


def test_a_change_rolled_back_writes_no_event_and_no_delivery(
    release: Release, users: dict[str, Any]
) -> None:
    make_channel()
    entry = release.items.get(text="Unit tests pass")

    with pytest.raises(RuntimeError), transaction.atomic():
        workflow.mark_blocked(entry, by=users["qa"], reason="staging is down")
        assert Event.objects.filter(type="item.blocked").count() == 1
        raise RuntimeError("the request failed after the change")

    assert not Event.objects.exists()
    assert not Delivery.objects.exists()


def test_a_refused_change_writes_no_event(release: Release, users: dict[str, Any]) -> None:
    with pytest.raises(WorkflowError):
        workflow.revoke_approval(release, by=users["po"], reason="nothing to revoke")

    assert not Event.objects.exists()


def test_it_asks_for_approval_once_when_everything_required_is_in(
    release: Release, users: dict[str, Any]
) -> None:
    for entry in release.items.filter(before_gate=True):
        workflow.tick(entry, by=users[entry.owner_role])
    for role in ("devops", "backend", "frontend"):
        workflow.sign_off(release, role=role, phase="Pre", by=users[role])
    assert not events_of(release, "approval.requested")

    workflow.sign_off(release, role="qa", phase="Pre", by=users["qa"])
    workflow.annotate_item(release.items.get(text="Unit tests pass"), by=users["qa"], note="ok")

    requested = events_of(release, "approval.requested")
    assert len(requested) == 1
    assert requested[0].data["actor"] == {"label": "qa (QA)", "kind": "person"}


def test_it_asks_again_after_the_release_stopped_being_approvable(
    ready_release: Release, users: dict[str, Any]
) -> None:
    entry = ready_release.items.get(text="Unit tests pass")

    workflow.untick(entry, by=users["qa"])
    workflow.tick(entry, by=users["qa"])
    assert len(events_of(ready_release, "approval.requested")) == 1
    workflow.sign_off(ready_release, role="qa", phase="Pre", by=users["qa"])

    assert len(events_of(ready_release, "approval.requested")) == 2


def test_approval_granted_and_revoked_carry_their_reasons(
    ready_release: Release, users: dict[str, Any]
) -> None:
    workflow.approve(ready_release, by=users["po"], reason="all green")
    workflow.revoke_approval(ready_release, by=users["po"], reason="a customer called")

    assert only(ready_release, "approval.granted")["reason"] == "all green"
    revoked = only(ready_release, "approval.revoked")
    assert revoked["reason"] == "a customer called"
    assert revoked["approved_by"] == "po"


def test_a_change_after_sign_off_reopens_it_and_revokes_the_approval(
    approved: Release, users: dict[str, Any]
) -> None:
    workflow.untick(approved.items.get(text="Unit tests pass"), by=users["qa"])

    reopened = only(approved, "signoff.reopened")
    assert (reopened["role"], reopened["phase"]) == ("qa", "Pre")
    assert reopened["reason"] == "“Unit tests pass” changed after sign-off"
    assert reopened["signed_by"] == "qa"
    assert only(approved, "approval.revoked")["reason"] == (
        "“Unit tests pass” changed after go-live was approved"
    )


def test_a_failing_check_and_a_failing_pipeline_are_check_failing(
    release: Release, users: dict[str, Any]
) -> None:
    ReleaseItem.objects.filter(release=release, text="TLS certificates installed").update(
        checks=["tls"]
    )
    entry = release.items.get(text="TLS certificates installed")

    workflow.record_check_result(entry, check="tls", passed=False, detail="certificate expired")

    failing = only(release, "check.failing")
    assert failing["item"] == "TLS certificates installed"
    assert failing["failure"] == "certificate expired"
    assert failing["actor"] == {"label": "check:tls", "kind": "check"}


def test_a_pipeline_reporting_a_failure_is_check_failing(release: Release) -> None:
    ci = PipelineActor(token_label="unit-tests", role="qa", token_id=1)

    workflow.record_pipeline_evidence(
        release.items.get(text="Unit tests pass"), by=ci, passed=False, detail="3 tests failed"
    )

    failing = only(release, "check.failing")
    assert (failing["item"], failing["failure"]) == ("Unit tests pass", "3 tests failed")
    assert failing["actor"] == {"label": "ci:unit-tests", "kind": "pipeline"}


def test_the_deploy_and_its_rollback_are_events(deployed: Release, users: dict[str, Any]) -> None:
    workflow.declare_rollback(
        deployed, by=users["devops"], reason="errors climbing", severity="critical"
    )
    step = deployed.rollback_steps.get()
    workflow.tick_rollback_step(step, by=users["devops"])

    assert only(deployed, "deploy.started")["reason"] == "window open"
    finished = only(deployed, "deploy.finished")
    assert (finished["result"], finished["status"], finished["reason"]) == (
        "success",
        ReleaseStatus.DEPLOYED,
        "smoke ok",
    )
    declared = only(deployed, "rollback.declared")
    assert (declared["severity"], declared["reason"]) == ("critical", "errors climbing")
    assert only(deployed, "rollback.step_done")["step"] == 1
    assert only(deployed, "rollback.step_done")["text"] == "Roll back"
    assert only(deployed, "rollback.resolved")["reason"] == "every step of the plan is done"
    assert Counter(types_of(deployed)) >= Counter(
        ["deploy.started", "deploy.finished", "rollback.declared", "rollback.step_done"]
    )


def test_a_rollback_resolved_by_a_person_carries_their_reason(
    deployed: Release, users: dict[str, Any]
) -> None:
    workflow.declare_rollback(deployed, by=users["devops"], reason="errors", severity="minor")

    workflow.resolve_rollback(deployed, by=users["po"], reason="fixed forward")

    assert only(deployed, "rollback.resolved")["reason"] == "fixed forward"


def test_an_incident_update_is_an_event(approved: Release, users: dict[str, Any]) -> None:
    workflow.post_update(
        approved, state="investigating", message="Errors <b>up</b>", by=users["po"]
    )
    workflow.post_update(approved, state="monitoring", message="Fixed", by=users["devops"])

    posted = [event.data for event in events_of(approved, "incident.update_posted")]
    assert [(p["previous_state"], p["state"], p["message"]) for p in posted] == [
        (None, "investigating", "Errors <b>up</b>"),
        ("investigating", "monitoring", "Fixed"),
    ]


def at(moment: datetime) -> Any:
    return mock.patch("django.utils.timezone.now", return_value=moment)


def test_the_maintenance_window_is_events_from_scheduled_to_ended(
    release: Release, users: dict[str, Any]
) -> None:
    start = datetime(2026, 10, 21, 8, 0, tzinfo=UTC)
    with at(start - timedelta(days=1)):
        workflow.schedule_window(
            release, start=start, end=start + timedelta(hours=2), time_zone="UTC", by=users["po"]
        )
        workflow.edit_window(
            release, start=start, end=start + timedelta(hours=1), time_zone="UTC", by=users["po"]
        )
    workflow.advance_windows(start + timedelta(minutes=1))
    with at(start + timedelta(minutes=30)):
        workflow.extend_window(
            release, end=start + timedelta(hours=3), reason="slow migration", by=users["devops"]
        )
    workflow.advance_windows(start + timedelta(hours=3))

    assert Counter(types_of(release)) == {
        "maintenance.scheduled": 1,
        "maintenance.changed": 2,
        "maintenance.started": 1,
        "maintenance.ended": 1,
    }
    scheduled = events_of(release, "maintenance.scheduled")[0].data
    assert (scheduled["start"], scheduled["end"], scheduled["time_zone"]) == (
        "2026-10-21T08:00:00+00:00",
        "2026-10-21T10:00:00+00:00",
        "UTC",
    )
    reasons = {event.data["reason"] for event in events_of(release, "maintenance.changed")}
    assert reasons == {"", "slow migration"}
    assert events_of(release, "maintenance.started")[0].data["actor"] == {
        "label": "maintenance window clock",
        "kind": "system",
    }


def test_a_cancelled_window_says_why(release: Release, users: dict[str, Any]) -> None:
    start = datetime(2030, 1, 10, 8, 0, tzinfo=UTC)
    workflow.schedule_window(
        release, start=start, end=start + timedelta(hours=2), time_zone="UTC", by=users["po"]
    )

    workflow.cancel_window(release, reason="vendor outage", by=users["po"])

    assert only(release, "maintenance.cancelled")["reason"] == "vendor outage"


def test_every_event_type_is_documented_in_the_readme() -> None:
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()

    assert [t for t in outbox.EVENT_TYPES if f"`{t}`" not in readme] == []


def test_it_writes_a_delivery_for_each_channel_that_wants_the_event(
    release: Release, users: dict[str, Any]
) -> None:
    everything = make_channel("everything")
    blocked_only = make_channel("blocked", events=["item.blocked"])
    make_channel("deploys", events=["deploy.started"])
    make_channel("v2", releases="v2.*")
    make_channel("gone", disabled_at=release.created_at, disabled_reason="HTTP 410")
    make_channel("retired", retired_at=release.created_at)

    workflow.mark_blocked(release.items.get(text="Unit tests pass"), by=users["qa"], reason="x")

    event = events_of(release, "item.blocked")[0]
    assert {d.channel for d in Delivery.objects.filter(event=event)} == {everything, blocked_only}


def test_it_sends_the_deliveries_once_the_change_commits(
    release: Release,
    users: dict[str, Any],
    django_capture_on_commit_callbacks: Callable[..., Any],
) -> None:
    make_channel()
    sent: list[tuple[int, int, float]] = []

    with (
        mock.patch.object(outbox, "enqueue", lambda *args: sent.append(args)),
        django_capture_on_commit_callbacks(execute=True),
    ):
        workflow.mark_blocked(release.items.get(text="Unit tests pass"), by=users["qa"], reason="x")
        assert sent == []

    delivery = Delivery.objects.get()
    assert sent == [(delivery.pk, 1, 0.0)]
