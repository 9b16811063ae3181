"""`maintenance.starting_soon`: a day and an hour before a scheduled window, once per
window, SEQUENCE and threshold, told again when the window moves, never for a cancelled
window nor for a threshold that had passed when the window was planned."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any
from unittest import mock
from zoneinfo import ZoneInfo

import pytest

from notifications import email as notify_email
from notifications import outbox, reminders
from notifications.models import EmailDelivery
from releases import workflow
from releases.models import Release, ReleaseStatus
from tests.conftest import build_small_template

from .conftest import events_of, race_two_beats

UTC = ZoneInfo("UTC")
START = datetime(2026, 10, 21, 8, 0, tzinfo=UTC)


def at(moment: datetime) -> Any:
    return mock.patch("django.utils.timezone.now", return_value=moment)


def schedule(release: Release, users: dict[str, Any], *, when: datetime, start: datetime) -> None:
    with at(when):
        workflow.schedule_window(
            release,
            start=start,
            end=start + timedelta(hours=2),
            time_zone="Europe/Madrid",
            by=users["devops"],
        )


def told(release: Release) -> list[tuple[int, str]]:
    return [
        (e.data["sequence"], e.data["in"]) for e in events_of(release, "maintenance.starting_soon")
    ]


def test_it_tells_a_day_and_an_hour_ahead_once_each(
    release: Release, users: dict[str, Any]
) -> None:
    schedule(release, users, when=START - timedelta(days=3), start=START)

    sent = [
        reminders.send_starting_soon(START - before)
        for before in (
            timedelta(hours=25),
            timedelta(hours=24),
            timedelta(hours=24),
            timedelta(hours=23),
            timedelta(minutes=61),
            timedelta(minutes=60),
            timedelta(minutes=59),
            timedelta(minutes=1),
            timedelta(0),
        )
    ]

    assert sent == [0, 1, 0, 0, 0, 1, 0, 0, 0]
    assert told(release) == [(0, "24h"), (0, "60m")]


def test_it_carries_the_window_as_the_other_maintenance_events_do(
    release: Release, users: dict[str, Any]
) -> None:
    schedule(release, users, when=START - timedelta(days=3), start=START)

    reminders.send_starting_soon(START - timedelta(minutes=45))

    data = events_of(release, "maintenance.starting_soon")[0].data
    scheduled = events_of(release, "maintenance.scheduled")[0].data
    for key in ("start", "end", "time_zone", "state", "sequence"):
        assert data[key] == scheduled[key], key
    assert data["start"] == "2026-10-21T10:00:00+02:00"
    assert data["in"] == "60m"
    assert data["reason"] == ""
    assert data["actor"] == {"label": "maintenance window clock", "kind": "system"}


def test_everyone_on_the_release_is_told(release: Release, users: dict[str, Any]) -> None:
    schedule(release, users, when=START - timedelta(days=3), start=START)

    reminders.send_starting_soon(START - timedelta(hours=24))

    assert sorted(
        EmailDelivery.objects.filter(event__type="maintenance.starting_soon").values_list(
            "address", flat=True
        )
    ) == [
        f"{name}@example.com" for name in ("backend", "devops", "frontend", "po", "qa", "support")
    ]


def test_a_threshold_passed_when_the_window_was_scheduled_is_not_told(
    release: Release, users: dict[str, Any]
) -> None:
    schedule(release, users, when=START - timedelta(minutes=30), start=START)

    for before in (timedelta(minutes=29), timedelta(minutes=10), timedelta(seconds=1)):
        assert reminders.send_starting_soon(START - before) == 0
    assert told(release) == []


def test_a_window_scheduled_within_a_day_gets_only_the_hour(
    release: Release, users: dict[str, Any]
) -> None:
    schedule(release, users, when=START - timedelta(hours=5), start=START)

    assert reminders.send_starting_soon(START - timedelta(hours=4)) == 0
    assert reminders.send_starting_soon(START - timedelta(minutes=60)) == 1
    assert told(release) == [(0, "60m")]


def test_a_beat_that_was_down_tells_the_nearer_threshold_only(
    release: Release, users: dict[str, Any]
) -> None:
    schedule(release, users, when=START - timedelta(days=3), start=START)

    assert reminders.send_starting_soon(START - timedelta(minutes=20)) == 1
    assert reminders.send_starting_soon(START - timedelta(minutes=10)) == 0
    assert told(release) == [(0, "60m")]


def test_moving_the_window_tells_again(release: Release, users: dict[str, Any]) -> None:
    schedule(release, users, when=START - timedelta(days=3), start=START)
    reminders.send_starting_soon(START - timedelta(hours=24))
    reminders.send_starting_soon(START - timedelta(minutes=60))
    later = START + timedelta(hours=1)

    with at(START - timedelta(minutes=50)):
        workflow.edit_window(
            release,
            start=later,
            end=later + timedelta(hours=2),
            time_zone="Europe/Madrid",
            by=users["po"],
        )

    # The new start is 110 minutes off: its day had passed when it was moved, its hour
    # had not.
    assert reminders.send_starting_soon(START - timedelta(minutes=45)) == 0
    assert reminders.send_starting_soon(later - timedelta(minutes=60)) == 1
    assert reminders.send_starting_soon(later - timedelta(minutes=30)) == 0
    assert told(release) == [(0, "24h"), (0, "60m"), (1, "60m")]


def test_a_cancelled_window_is_not_told(release: Release, users: dict[str, Any]) -> None:
    schedule(release, users, when=START - timedelta(days=3), start=START)
    with at(START - timedelta(hours=30)):
        workflow.cancel_window(release, reason="vendor freeze", by=users["po"])

    assert reminders.send_starting_soon(START - timedelta(hours=24)) == 0
    assert reminders.send_starting_soon(START - timedelta(minutes=60)) == 0
    assert told(release) == []


def test_a_cancelled_release_is_not_told(release: Release, users: dict[str, Any]) -> None:
    schedule(release, users, when=START - timedelta(days=3), start=START)
    workflow.set_status(release, status=ReleaseStatus.CANCELLED, by=users["po"], reason="dropped")

    assert reminders.send_starting_soon(START - timedelta(hours=24)) == 0


def test_the_beat_task_sends_it(release: Release, users: dict[str, Any]) -> None:
    schedule(release, users, when=START - timedelta(days=3), start=START)

    assert reminders.remind(START - timedelta(hours=24)) == 1
    assert reminders.remind(START - timedelta(hours=24)) == 0


def test_the_mail_says_how_soon(release: Release, users: dict[str, Any]) -> None:
    schedule(release, users, when=START - timedelta(days=3), start=START)
    reminders.send_starting_soon(START - timedelta(minutes=60))
    delivery = EmailDelivery.objects.filter(event__type="maintenance.starting_soon").first()
    assert delivery is not None

    text = notify_email.message(delivery).body

    assert "La ventana de mantenimiento empieza pronto" in text
    assert "Empieza en: 60 minutos" in text


@pytest.fixture
def committed_window(transactional_db: None, users: dict[str, Any]) -> Iterator[Release]:
    """A release with a window, committed for real so that another connection locks it;
    deliveries are not handed to a broker."""
    with (
        mock.patch.object(outbox, "enqueue", lambda *args: None),
        mock.patch.object(outbox, "enqueue_email", lambda *args: None),
    ):
        made = workflow.create_release(
            build_small_template(), version="v9.0.1", title="Locked", by=users["admin"]
        )
        workflow.assign(made, role="devops", user=users["devops"], by=users["admin"])
        schedule(made, users, when=START - timedelta(days=3), start=START)
        yield made


def test_a_beat_finding_the_release_locked_leaves_it_to_the_other(
    committed_window: Release,
) -> None:
    due = START - timedelta(minutes=60)
    counted = race_two_beats(committed_window, reminders.send_starting_soon, due)

    assert counted == [1]
    assert told(committed_window) == [(0, "60m")]
