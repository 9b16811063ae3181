"""Approval reminders: sent by beat while a release waits for go-live approval, every
APPROVAL_REMINDER_MINUTES after it was asked, never twice for one interval, and not
once it is approved, cancelled, or turned off by staff."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any
from unittest import mock

import pytest
from django.test import Client
from django.urls import reverse

from notifications import outbox, reminders
from notifications.models import EmailDelivery
from releases import workflow
from releases.models import AuditAction, AuditEvent, Release, ReleaseStatus
from tests.conftest import build_small_template
from tests.releases.test_workflow import fingerprint

from .conftest import events_of, race_two_beats


def asked_at(release: Release) -> datetime:
    return events_of(release, "approval.requested")[0].created_at


def reminded(release: Release) -> int:
    return len(events_of(release, "approval.reminder"))


def client_for(user: Any) -> Client:
    client = Client(headers={"Accept-Language": "en"})
    client.force_login(user)
    return client


def switch(release: Release, user: Any, on: str) -> Any:
    return client_for(user).post(
        reverse("releases:approval-reminders", args=[release.version]), {"on": on}
    )


@pytest.mark.django_db
def test_it_reminds_the_product_owner_every_interval_after_being_asked(
    ready_release: Release, settings: Any
) -> None:
    settings.APPROVAL_REMINDER_MINUTES = 30
    asked = asked_at(ready_release)

    assert reminders.send_approval_reminders(asked + timedelta(minutes=29)) == 0
    assert reminders.send_approval_reminders(asked + timedelta(minutes=30)) == 1
    # The next counts from the reminder.
    assert reminders.send_approval_reminders(asked + timedelta(minutes=59)) == 0
    assert reminders.send_approval_reminders(asked + timedelta(minutes=60)) == 1

    assert reminded(ready_release) == 2
    event = events_of(ready_release, "approval.reminder")[0]
    assert event.data["requested_at"] == asked.isoformat()
    assert event.data["actor"] == {"label": "approval reminders", "kind": "system"}
    assert sorted(
        EmailDelivery.objects.filter(event__type="approval.reminder").values_list(
            "address", flat=True
        )
    ) == ["po@example.com", "po@example.com"]


@pytest.mark.django_db
def test_a_run_repeated_at_the_same_moment_sends_nothing_more(ready_release: Release) -> None:
    due = asked_at(ready_release) + timedelta(minutes=30)

    assert reminders.send_approval_reminders(due) == 1
    assert reminders.send_approval_reminders(due) == 0
    assert reminders.send_approval_reminders(due + timedelta(seconds=59)) == 0

    assert reminded(ready_release) == 1


@pytest.mark.django_db
def test_a_release_not_yet_approvable_is_not_reminded(release: Release) -> None:
    assert reminders.send_approval_reminders(release.created_at + timedelta(days=1)) == 0


@pytest.mark.django_db
def test_it_stops_once_approved(approved: Release) -> None:
    later = asked_at(approved) + timedelta(hours=5)

    assert reminders.send_approval_reminders(later) == 0


@pytest.mark.django_db
def test_it_stops_once_cancelled(ready_release: Release, users: dict[str, Any]) -> None:
    workflow.set_status(
        ready_release, status=ReleaseStatus.CANCELLED, by=users["po"], reason="dropped"
    )

    assert reminders.send_approval_reminders(asked_at(ready_release) + timedelta(hours=5)) == 0


@pytest.mark.django_db
def test_it_stops_when_the_release_stops_being_approvable(
    ready_release: Release, users: dict[str, Any]
) -> None:
    workflow.untick(ready_release.items.get(text="Unit tests pass"), by=users["qa"])

    assert reminders.send_approval_reminders(asked_at(ready_release) + timedelta(hours=5)) == 0


@pytest.mark.django_db
def test_zero_minutes_sends_none(ready_release: Release, settings: Any) -> None:
    settings.APPROVAL_REMINDER_MINUTES = 0

    assert reminders.send_approval_reminders(asked_at(ready_release) + timedelta(days=1)) == 0


@pytest.mark.django_db
def test_the_beat_task_sends_reminders(ready_release: Release) -> None:
    assert reminders.remind(asked_at(ready_release) + timedelta(minutes=30)) == 1


# --- the off switch -------------------------------------------------------------------------


@pytest.mark.django_db
def test_staff_turn_reminders_off_and_on_in_the_browser_audited(
    ready_release: Release, users: dict[str, Any]
) -> None:
    due = asked_at(ready_release) + timedelta(minutes=30)

    response = switch(ready_release, users["admin"], "0")

    assert response.status_code == 302
    assert response["Location"].endswith("#gonogo-panel")
    ready_release.refresh_from_db()
    assert ready_release.approval_reminders is False
    assert reminders.send_approval_reminders(due) == 0
    edited = AuditEvent.objects.filter(action=AuditAction.RELEASE_EDITED).latest("id")
    assert (edited.before, edited.after) == (
        {"approval_reminders": True},
        {"approval_reminders": False},
    )

    switch(ready_release, users["admin"], "1")

    assert reminders.send_approval_reminders(due) == 1


@pytest.mark.django_db
@pytest.mark.parametrize("persona", ["po", "qa", "support"])
def test_only_staff_turn_reminders_off(
    persona: str, ready_release: Release, users: dict[str, Any]
) -> None:
    before = fingerprint(ready_release)

    response = switch(ready_release, users[persona], "0")

    assert response.status_code == 403
    assert fingerprint(ready_release) == before
    ready_release.refresh_from_db()
    assert ready_release.approval_reminders is True


@pytest.mark.django_db
def test_a_forged_switch_value_is_refused_with_a_message(
    ready_release: Release, users: dict[str, Any]
) -> None:
    response = switch(ready_release, users["admin"], "maybe")

    assert response.status_code == 302
    ready_release.refresh_from_db()
    assert ready_release.approval_reminders is True


@pytest.mark.django_db
def test_the_panel_shows_staff_whether_reminders_are_on(
    ready_release: Release, users: dict[str, Any]
) -> None:
    url = reverse("releases:board", args=[ready_release.version])

    staff_page = client_for(users["admin"]).get(url).content.decode()
    assert "Approval reminders: on" in staff_page
    assert "Turn reminders off" in staff_page
    po_page = client_for(users["po"]).get(url).content.decode()
    assert "Approval reminders" not in po_page

    switch(ready_release, users["admin"], "0")

    staff_page = client_for(users["admin"]).get(url).content.decode()
    assert "Approval reminders: off for this release." in staff_page
    assert "Turn reminders on" in staff_page


# --- two beats at once ------------------------------------------------------------------------


@pytest.fixture
def committed_ready(transactional_db: None, users: dict[str, Any]) -> Iterator[Release]:
    """A ready release committed for real, so another connection sees it and locks it;
    deliveries are not handed to a broker."""
    with (
        mock.patch.object(outbox, "enqueue", lambda *args: None),
        mock.patch.object(outbox, "enqueue_email", lambda *args: None),
    ):
        made = workflow.create_release(
            build_small_template(), version="v9.0.0", title="Locked", by=users["admin"]
        )
        for persona in ("devops", "backend", "frontend", "qa", "po"):
            workflow.assign(made, role=persona, user=users[persona], by=users["admin"])
        for entry in made.items.filter(before_gate=True):
            workflow.tick(entry, by=users[entry.owner_role])
        for role in ("devops", "backend", "frontend", "qa"):
            workflow.sign_off(made, role=role, phase="Pre", by=users[role])
        yield made


def test_a_beat_finding_the_release_locked_leaves_it_to_the_other(
    committed_ready: Release,
) -> None:
    due = asked_at(committed_ready) + timedelta(minutes=30)
    counted = race_two_beats(committed_ready, reminders.send_approval_reminders, due)

    assert counted == [1]
    assert reminded(committed_ready) == 1
