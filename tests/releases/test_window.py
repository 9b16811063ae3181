"""The maintenance window as operations: its states over a fixed clock, daylight-saving
changes, its calendar file read back, the seed's item it settles, and who may act."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from typing import Any
from unittest import mock
from zoneinfo import ZoneInfo

import pytest
from django.conf import settings
from django.core.exceptions import PermissionDenied
from django.utils import translation
from icalendar import Calendar

from deploycheck.celery import app
from releases import workflow
from releases.actors import SystemActor
from releases.forms_window import exact
from releases.ics import window_calendar
from releases.models import (
    ActorKind,
    AuditAction,
    AuditEvent,
    ItemState,
    MaintenanceWindow,
    Release,
    ReleaseItem,
    ReleaseStatus,
    Role,
    WindowState,
)
from releases.timeline import human_line
from releases.workflow.window import is_window_item

UTC = ZoneInfo("UTC")
MADRID = ZoneInfo("Europe/Madrid")
NEW_YORK = ZoneInfo("America/New_York")
SEED_ITEM = "Se ha establecido una ventana de mantenimiento (si es necesario)"
# A quiet day well before any of the windows below.
BEFORE = datetime(2026, 10, 20, 9, 0, tzinfo=UTC)
# Madrid's clocks go back from 03:00 CEST to 02:00 CET on Sunday 25 October 2026.
DST_START = datetime(2026, 10, 25, 1, 0, tzinfo=MADRID)
DST_END = datetime(2026, 10, 25, 5, 0, tzinfo=MADRID)


@contextmanager
def clock(at: datetime) -> Iterator[None]:
    with mock.patch("django.utils.timezone.now", return_value=at):
        yield


def schedule(
    release: Release,
    by: Any,
    start: datetime = DST_START,
    end: datetime = DST_END,
    zone: str = "Europe/Madrid",
) -> MaintenanceWindow:
    with clock(BEFORE):
        return workflow.schedule_window(release, start=start, end=end, time_zone=zone, by=by)


@pytest.fixture
def window_item(release: Release) -> ReleaseItem:
    return ReleaseItem.objects.create(
        release=release,
        position=50,
        phase="Pre",
        section="Prep",
        text=SEED_ITEM,
        owner_role=Role.PRODUCT_OWNER,
    )


def events(release: Release, action: AuditAction) -> list[AuditEvent]:
    return list(AuditEvent.objects.filter(release=release, action=action).order_by("id"))


def parsed(release: Release) -> Calendar:
    release.refresh_from_db()
    window = MaintenanceWindow.objects.get(release=release)
    with clock(BEFORE):
        made = window_calendar(release, window, "https://example.com/status/")
    return Calendar.from_ical(made)


def test_it_stores_a_window_across_the_october_change_as_the_instants_it_names(
    release: Release, users: dict[str, Any]
) -> None:
    window = schedule(release, users["devops"])

    window.refresh_from_db()
    assert window.starts_at == datetime(2026, 10, 24, 23, 0, tzinfo=UTC)
    assert window.ends_at == datetime(2026, 10, 25, 4, 0, tzinfo=UTC)
    # Four hours on the wall, five of them lived: the clocks go back at 03:00.
    assert window.ends_at - window.starts_at == timedelta(hours=5)
    assert window.local_start.utcoffset() == timedelta(hours=2)
    assert window.local_end.utcoffset() == timedelta(hours=1)
    assert (window.local_start.hour, window.local_end.hour) == (1, 5)
    assert window.summary() == (
        "2026-10-25 01:00 CEST – 2026-10-25 05:00 CET "
        "(Europe/Madrid; 2026-10-24 23:00 – 2026-10-25 04:00 UTC)"
    )


def test_it_keeps_a_march_window_in_new_york_two_hours_long(
    release: Release, users: dict[str, Any]
) -> None:
    # 8 March 2026: New York's clocks jump from 02:00 EST to 03:00 EDT.
    start = datetime(2026, 3, 8, 1, 0, tzinfo=NEW_YORK)
    end = datetime(2026, 3, 8, 4, 0, tzinfo=NEW_YORK)
    with clock(datetime(2026, 3, 1, tzinfo=UTC)):
        window = workflow.schedule_window(
            release, start=start, end=end, time_zone="America/New_York", by=users["po"]
        )

    window.refresh_from_db()
    assert window.ends_at - window.starts_at == timedelta(hours=2)
    assert window.starts_at == datetime(2026, 3, 8, 6, 0, tzinfo=UTC)
    assert window.ends_at == datetime(2026, 3, 8, 8, 0, tzinfo=UTC)


def test_it_takes_a_window_inside_the_repeated_hour_by_the_instants_it_names(
    release: Release, users: dict[str, Any]
) -> None:
    # 02:30 CEST, then 02:10 CET: on the wall it ends before it starts; it lasts 40 min.
    start = datetime(2026, 10, 25, 2, 30, tzinfo=MADRID)
    end = datetime(2026, 10, 25, 2, 10, fold=1, tzinfo=MADRID)

    window = schedule(release, users["po"], start=start, end=end)

    window.refresh_from_db()
    assert window.ends_at - window.starts_at == timedelta(minutes=40)


def test_it_refuses_wall_times_a_zone_skips_or_repeats() -> None:
    with pytest.raises(ValueError, match="does not exist in America/New_York"):
        exact(datetime(2026, 3, 8, 2, 30), NEW_YORK)
    with pytest.raises(ValueError, match="happens twice in Europe/Madrid"):
        exact(datetime(2026, 10, 25, 2, 30), MADRID)
    assert exact(datetime(2026, 10, 25, 3, 30), MADRID).utcoffset() == timedelta(hours=1)


def test_it_follows_the_clock_from_scheduled_to_in_progress_to_completed(
    release: Release, users: dict[str, Any]
) -> None:
    window = schedule(release, users["devops"])
    start, end = window.starts_at, window.ends_at

    assert window.state_at(start - timedelta(seconds=1)) == WindowState.SCHEDULED
    assert window.state_at(start) == WindowState.IN_PROGRESS
    assert window.state_at(end - timedelta(seconds=1)) == WindowState.IN_PROGRESS
    assert window.state_at(end) == WindowState.COMPLETED


def test_beat_records_the_start_and_the_end_once_each_as_the_system(
    release: Release, users: dict[str, Any]
) -> None:
    window = schedule(release, users["devops"])
    release.refresh_from_db()
    revision = release.revision

    assert workflow.advance_windows(window.starts_at - timedelta(minutes=1)) == 0
    assert workflow.advance_windows(window.starts_at + timedelta(seconds=30)) == 1
    assert workflow.advance_windows(window.starts_at + timedelta(minutes=1)) == 0
    window.refresh_from_db()
    assert window.state == WindowState.IN_PROGRESS
    assert workflow.advance_windows(window.ends_at) == 1
    window.refresh_from_db()
    assert window.state == WindowState.COMPLETED

    started = events(release, AuditAction.WINDOW_STARTED)
    completed = events(release, AuditAction.WINDOW_COMPLETED)
    assert [(e.actor_kind, e.actor_label) for e in started + completed] == [
        (ActorKind.SYSTEM, "maintenance window clock")
    ] * 2
    assert completed[0].after["state"] == WindowState.COMPLETED
    release.refresh_from_db()
    assert release.revision == revision + 2
    # The event is the same one: the clock moving on is no new SEQUENCE.
    assert window.sequence == 0


def test_scheduling_ticks_the_seed_item_as_the_system_with_the_window_as_evidence(
    release: Release, users: dict[str, Any], window_item: ReleaseItem
) -> None:
    window = schedule(release, users["po"])

    window_item.refresh_from_db()
    assert window_item.state == ItemState.DONE
    assert window_item.changed_by_kind == ActorKind.SYSTEM
    assert window_item.changed_by_label == "maintenance window"
    assert window_item.note == window.summary()
    scheduled = events(release, AuditAction.WINDOW_SCHEDULED)
    ticked = events(release, AuditAction.ITEM_DONE)
    assert [e.actor_label for e in scheduled] == ["po (PO)"]
    assert scheduled[0].after["start"] == "2026-10-25T01:00:00+02:00"
    assert scheduled[0].after["end"] == "2026-10-25T05:00:00+01:00"
    assert [(e.actor_kind, e.target) for e in ticked] == [(ActorKind.SYSTEM, SEED_ITEM)]


def test_the_system_that_ticked_the_seed_item_is_named_in_the_readers_language(
    release: Release, users: dict[str, Any], window_item: ReleaseItem
) -> None:
    schedule(release, users["po"])
    ticked = events(release, AuditAction.ITEM_DONE)[0]
    window_item.refresh_from_db()

    for language, name in (("es", "ventana de mantenimiento"), ("en", "maintenance window")):
        with translation.override(language):
            assert window_item.changed_by_shown == name
            assert ticked.actor_shown == name
            assert human_line(ticked).who == name


def test_it_reopens_the_item_it_ticked_when_the_window_is_cancelled(
    release: Release, users: dict[str, Any], window_item: ReleaseItem
) -> None:
    schedule(release, users["po"])
    with clock(BEFORE):
        workflow.cancel_window(release, reason="Vendor freeze", by=users["devops"])

    window_item.refresh_from_db()
    assert window_item.state == ItemState.PENDING
    assert window_item.note == ""
    reopened = events(release, AuditAction.ITEM_REOPENED)
    assert [(e.actor_kind, e.target) for e in reopened] == [(ActorKind.SYSTEM, SEED_ITEM)]
    cancelled = events(release, AuditAction.WINDOW_CANCELLED)
    assert cancelled[0].after["reason"] == "Vendor freeze"


def test_it_never_overturns_a_persons_decision_on_the_item(
    release: Release, users: dict[str, Any], window_item: ReleaseItem
) -> None:
    workflow.mark_not_applicable(window_item, by=users["po"], reason="no downtime needed")
    schedule(release, users["po"])
    window_item.refresh_from_db()
    assert window_item.state == ItemState.NOT_APPLICABLE

    workflow.untick(window_item, by=users["po"])
    workflow.tick(window_item, by=users["po"])
    with clock(BEFORE):
        workflow.cancel_window(release, reason="not needed", by=users["po"])
    window_item.refresh_from_db()
    assert window_item.state == ItemState.DONE
    assert window_item.changed_by_kind == ActorKind.PERSON


@pytest.mark.parametrize(
    "text",
    [
        SEED_ITEM,
        "Se ha establecido una VENTANA de  mantenimiento",
        "Maintenance window agreed with the customer",
    ],
)
def test_it_recognises_the_window_item_by_its_phrase(text: str) -> None:
    assert is_window_item(text)


def test_it_does_not_take_other_items_for_the_window_item() -> None:
    assert not is_window_item("Se ha notificado a todos los stakeholders sobre el despliegue")
    assert not is_window_item("Plan de mantenimiento del servidor")


def test_it_extends_a_running_window_with_a_reason_and_a_new_sequence(
    release: Release, users: dict[str, Any]
) -> None:
    window = schedule(release, users["devops"])
    running = window.starts_at + timedelta(hours=1)
    later = window.ends_at + timedelta(hours=1)

    with (
        clock(window.starts_at - timedelta(minutes=5)),
        pytest.raises(workflow.WorkflowError, match="scheduled"),
    ):
        workflow.extend_window(release, end=later, reason="slow", by=users["devops"])
    with clock(running):
        for blank in ("  ", "\u200b\u3000"):
            with pytest.raises(workflow.WorkflowError, match="Say why"):
                workflow.extend_window(release, end=later, reason=blank, by=users["devops"])
        with pytest.raises(workflow.WorkflowError, match="later than"):
            workflow.extend_window(release, end=window.ends_at, reason="slow", by=users["devops"])
        extended = workflow.extend_window(
            release, end=later, reason="Migration is slow", by=users["devops"]
        )

    assert extended.state_at(running) == WindowState.EXTENDED
    assert extended.state_at(later) == WindowState.COMPLETED
    assert extended.sequence == 1
    assert extended.reason == "Migration is slow"
    assert events(release, AuditAction.WINDOW_EXTENDED)[0].after["reason"] == "Migration is slow"


def test_it_completes_a_window_early_by_hand(release: Release, users: dict[str, Any]) -> None:
    window = schedule(release, users["devops"])
    done_at = window.starts_at + timedelta(minutes=90)

    with clock(done_at):
        completed = workflow.complete_window(release, by=users["po"])

    assert completed.ends_at == done_at
    assert completed.state == WindowState.COMPLETED
    assert completed.sequence == 1
    assert workflow.advance_windows(window.ends_at) == 0


def test_it_refuses_an_edit_based_on_a_window_someone_changed_since(
    release: Release, users: dict[str, Any]
) -> None:
    loaded = schedule(release, users["devops"]).sequence
    theirs, mine = DST_START - timedelta(hours=1), DST_START - timedelta(hours=2)

    with clock(BEFORE):
        workflow.edit_window(
            release,
            start=theirs,
            end=DST_END,
            time_zone="Europe/Madrid",
            by=users["devops"],
            based_on=loaded,
        )
        with pytest.raises(workflow.Conflict) as caught:
            workflow.edit_window(
                release,
                start=mine,
                end=DST_END,
                time_zone="Europe/Madrid",
                by=users["po"],
                based_on=loaded,
            )
        current = MaintenanceWindow.objects.get(release=release)
        assert current.starts_at == theirs
        assert current.summary() in caught.value.message
        # Based on the window as it is now, the edit replaces it knowingly; without a
        # base (a pipeline acting now) it acts on the window as it is.
        workflow.edit_window(
            release,
            start=mine,
            end=DST_END,
            time_zone="Europe/Madrid",
            by=users["po"],
            based_on=current.sequence,
        )
        workflow.edit_window(
            release, start=theirs, end=DST_END, time_zone="Europe/Madrid", by=users["devops"]
        )

    assert MaintenanceWindow.objects.get(release=release).sequence == loaded + 3


def test_it_moves_a_window_only_before_it_starts(release: Release, users: dict[str, Any]) -> None:
    window = schedule(release, users["devops"])
    later_start = DST_START + timedelta(hours=1)

    with clock(BEFORE):
        moved = workflow.edit_window(
            release, start=later_start, end=DST_END, time_zone="Europe/Madrid", by=users["po"]
        )
    assert moved.sequence == 1
    assert events(release, AuditAction.WINDOW_EDITED)[0].before["start"] == (
        "2026-10-25T01:00:00+02:00"
    )
    with (
        clock(window.ends_at - timedelta(minutes=1)),
        pytest.raises(workflow.WorkflowError, match="in progress"),
    ):
        workflow.edit_window(
            release,
            start=DST_START,
            end=DST_END,
            time_zone="Europe/Madrid",
            by=users["po"],
        )


@pytest.mark.parametrize(
    ("start", "end", "zone", "message"),
    [
        (DST_START, DST_END, "Europe/Madird", "not a time zone we know"),
        (DST_START, DST_END, "../../etc/passwd", "not a time zone we know"),
        (DST_START.replace(tzinfo=None), DST_END, "Europe/Madrid", "with their time zone"),
        (DST_END, DST_START, "Europe/Madrid", "must end after it starts"),
        (DST_START, DST_START, "Europe/Madrid", "must end after it starts"),
        (
            datetime(2026, 10, 1, 1, 0, tzinfo=MADRID),
            datetime(2026, 10, 1, 5, 0, tzinfo=MADRID),
            "Europe/Madrid",
            "must end in the future",
        ),
    ],
)
def test_it_refuses_a_window_that_does_not_hold(
    release: Release,
    users: dict[str, Any],
    start: datetime,
    end: datetime,
    zone: str,
    message: str,
) -> None:
    with clock(BEFORE), pytest.raises(workflow.WorkflowError, match=message):
        workflow.schedule_window(release, start=start, end=end, time_zone=zone, by=users["po"])
    assert not MaintenanceWindow.objects.exists()


def test_it_refuses_a_second_window_while_one_is_open(
    release: Release, users: dict[str, Any]
) -> None:
    schedule(release, users["po"])
    with pytest.raises(workflow.WorkflowError, match="already has a maintenance window"):
        schedule(release, users["po"])


@pytest.mark.parametrize("persona", ["qa", "backend", "support", "outsider"])
def test_only_devops_the_product_owner_and_staff_manage_the_window(
    release: Release, users: dict[str, Any], persona: str
) -> None:
    with pytest.raises(PermissionDenied):
        schedule(release, users[persona])
    for allowed in ("devops", "po", "admin"):
        schedule(release, users[allowed])
        with clock(BEFORE):
            workflow.cancel_window(release, reason="again", by=users[allowed])


def test_a_cancelled_release_accepts_no_window(release: Release, users: dict[str, Any]) -> None:
    workflow.set_status(release, status=ReleaseStatus.CANCELLED, by=users["po"])
    with pytest.raises(workflow.WorkflowError, match="accepts no change"):
        schedule(release, users["admin"])


def test_its_calendar_reads_back_with_its_zone_uid_and_sequence(
    release: Release, users: dict[str, Any]
) -> None:
    window = schedule(release, users["devops"])

    calendar = parsed(release)
    event = calendar.walk("VEVENT")[0]
    assert calendar["METHOD"] == "PUBLISH"
    assert event["UID"] == f"maintenance-window-{release.pk}@{window.uid.split('@')[1]}"
    assert event["SEQUENCE"] == 0
    assert event["STATUS"] == "CONFIRMED"
    assert event["URL"] == "https://example.com/status/"
    start, end = event.decoded("DTSTART"), event.decoded("DTEND")
    assert str(start.tzinfo) == "Europe/Madrid"
    assert event["DTSTART"].params["TZID"] == "Europe/Madrid"
    assert end.astimezone(UTC) - start.astimezone(UTC) == timedelta(hours=5)
    assert [tz["TZID"] for tz in calendar.walk("VTIMEZONE")] == ["Europe/Madrid"]
    assert "v1.2.3" in str(event["SUMMARY"])
    assert event.decoded("DTSTAMP") == BEFORE
    assert event.decoded("LAST-MODIFIED") == BEFORE


def test_its_calendar_keeps_the_uid_grows_the_sequence_and_cancels(
    release: Release, users: dict[str, Any]
) -> None:
    schedule(release, users["devops"])
    first = parsed(release).walk("VEVENT")[0]
    with clock(BEFORE):
        workflow.edit_window(
            release,
            start=DST_START - timedelta(hours=1),
            end=DST_END,
            time_zone="Europe/Madrid",
            by=users["devops"],
        )
    edited = parsed(release).walk("VEVENT")[0]
    with clock(BEFORE):
        workflow.cancel_window(release, reason="Freeze", by=users["po"])
    cancelled_calendar = parsed(release)
    cancelled = cancelled_calendar.walk("VEVENT")[0]

    assert first["UID"] == edited["UID"] == cancelled["UID"]
    assert first["SEQUENCE"] < edited["SEQUENCE"] < cancelled["SEQUENCE"]
    assert cancelled_calendar["METHOD"] == "CANCEL"
    assert cancelled["STATUS"] == "CANCELLED"
    assert "Freeze" in str(cancelled["DESCRIPTION"])

    # A new window after a cancelled one is the same event again, one SEQUENCE on.
    schedule(release, users["devops"])
    again = parsed(release)
    assert again["METHOD"] == "PUBLISH"
    assert again.walk("VEVENT")[0]["UID"] == first["UID"]
    assert again.walk("VEVENT")[0]["SEQUENCE"] == cancelled["SEQUENCE"] + 1


def test_its_calendar_speaks_the_active_language(release: Release, users: dict[str, Any]) -> None:
    schedule(release, users["devops"])
    with translation.override("es"):
        event = parsed(release).walk("VEVENT")[0]
    assert str(event["SUMMARY"]).startswith("Ventana de mantenimiento")


def test_beat_runs_a_task_that_is_registered() -> None:
    app.loader.import_default_modules()
    task = settings.CELERY_BEAT_SCHEDULE["advance-maintenance-windows"]["task"]
    assert task in app.tasks


def test_it_ticks_the_seed_checklists_own_item_and_no_other(users: dict[str, Any]) -> None:
    template = workflow.import_default_template(by=SystemActor("tests"))
    seed = workflow.create_release(template, version="v2.0.0", title="Seed", by=users["admin"])
    workflow.assign(seed, role=Role.PRODUCT_OWNER, user=users["po"], by=users["admin"])

    schedule(seed, users["po"])

    ticked = list(seed.items.filter(state=ItemState.DONE).values_list("text", flat=True))
    assert ticked == [SEED_ITEM]


def test_no_operation_makes_a_window_longer_than_the_setting(
    release: Release, users: dict[str, Any], settings: Any
) -> None:
    too_long = "may last at most 168 hours"
    week_later = (DST_START.astimezone(UTC) + timedelta(days=7)).astimezone(MADRID)
    with pytest.raises(workflow.WorkflowError, match=too_long):
        schedule(release, users["devops"], end=DST_START + timedelta(days=3653))
    # Seven days on the wall from before the clocks go back are 169 hours.
    with pytest.raises(workflow.WorkflowError, match=too_long):
        schedule(release, users["devops"], end=DST_START + timedelta(days=7))
    window = schedule(release, users["devops"], end=week_later)

    with clock(BEFORE), pytest.raises(workflow.WorkflowError, match=too_long):
        workflow.edit_window(
            release,
            start=DST_START,
            end=week_later + timedelta(minutes=1),
            time_zone="Europe/Madrid",
            by=users["devops"],
        )
    with (
        clock(window.starts_at + timedelta(hours=1)),
        pytest.raises(workflow.WorkflowError, match=too_long),
    ):
        workflow.extend_window(
            release, end=window.ends_at + timedelta(hours=1), reason="slow", by=users["devops"]
        )
    settings.MAINTENANCE_WINDOW_MAX_HOURS = 8 * 24
    with clock(window.starts_at + timedelta(hours=1)):
        extended = workflow.extend_window(
            release, end=window.ends_at + timedelta(hours=1), reason="slow", by=users["devops"]
        )

    assert extended.ends_at.astimezone(UTC) - extended.starts_at == timedelta(days=7, hours=1)
    assert [
        event.action
        for event in release.audit_events.filter(action__startswith="window").order_by("pk")
    ] == [
        AuditAction.WINDOW_SCHEDULED,
        AuditAction.WINDOW_EXTENDED,
    ]
