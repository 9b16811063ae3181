"""The maintenance window in the browser: its page, its calendar file for the people on
the release and for share links, and the panel on the board and the status page."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Any
from unittest import mock
from zoneinfo import ZoneInfo

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import translation
from icalendar import Calendar

from releases import workflow
from releases.board import load_snapshot, render_update, viewer_for
from releases.models import MaintenanceWindow, Release, WindowState
from releases.templatetags.moments import moment

UTC = ZoneInfo("UTC")
MADRID = ZoneInfo("Europe/Madrid")
BEFORE = datetime(2026, 10, 20, 9, 0, tzinfo=UTC)
START = datetime(2026, 10, 25, 1, 0, tzinfo=MADRID)
END = datetime(2026, 10, 25, 5, 0, tzinfo=MADRID)


@contextmanager
def clock(at: datetime) -> Iterator[None]:
    with mock.patch("django.utils.timezone.now", return_value=at):
        yield


@pytest.fixture
def as_user(client: Client, users: dict[str, Any]) -> Any:
    def login(name: str) -> Client:
        client.force_login(users[name])
        return client

    return login


@pytest.fixture
def window(release: Release, users: dict[str, Any]) -> MaintenanceWindow:
    with clock(BEFORE):
        return workflow.schedule_window(
            release, start=START, end=END, time_zone="Europe/Madrid", by=users["devops"]
        )


def window_url(release: Release) -> str:
    return reverse("releases:window", args=[release.version])


def calendar_url(release: Release) -> str:
    return reverse("releases:calendar", args=[release.version])


def form(**values: str) -> dict[str, str]:
    return {
        "action": "schedule",
        "time_zone": "Europe/Madrid",
        "start": "2026-10-25T01:00",
        "end": "2026-10-25T05:00",
        **values,
    }


@pytest.mark.parametrize("persona", ["qa", "devops", "po", "support", "admin"])
def test_everyone_on_the_release_gets_its_calendar_file(
    as_user: Any, release: Release, window: MaintenanceWindow, persona: str
) -> None:
    response = as_user(persona).get(calendar_url(release))

    assert response.status_code == 200
    assert response["Content-Type"] == "text/calendar; charset=utf-8"
    assert response["Content-Disposition"] == (
        'attachment; filename="v1.2.3-maintenance-window.ics"'
    )
    event = Calendar.from_ical(response.content).walk("VEVENT")[0]
    assert event["UID"] == window.uid
    assert event["URL"] == "http://testserver" + reverse("releases:status", args=["v1.2.3"])


def test_an_outsider_gets_no_calendar_file_and_a_stranger_is_asked_to_log_in(
    client: Client, as_user: Any, release: Release, window: MaintenanceWindow
) -> None:
    assert client.get(calendar_url(release)).status_code == 302
    assert as_user("outsider").get(calendar_url(release)).status_code == 404


def test_a_release_without_a_window_says_so_with_a_404(as_user: Any, release: Release) -> None:
    response = as_user("qa").get(calendar_url(release), HTTP_ACCEPT_LANGUAGE="en")

    assert response.status_code == 404
    assert b"has no maintenance window yet" in response.content


def test_a_share_link_serves_the_calendar_until_it_is_revoked(
    client: Client, release: Release, users: dict[str, Any], window: MaintenanceWindow
) -> None:
    token = workflow.create_share_link(release, label="vendor", by=users["admin"])
    url = reverse("releases:shared-calendar", args=[token])

    response = client.get(url)
    assert response.status_code == 200
    assert response["Referrer-Policy"] == "no-referrer"
    event = Calendar.from_ical(response.content).walk("VEVENT")[0]
    assert event["URL"] == "http://testserver" + reverse("releases:shared-status", args=[token])

    link = release.share_links.get()
    workflow.revoke_share_link(release, link, by=users["admin"])
    assert client.get(url).status_code == 404
    assert client.get(reverse("releases:shared-calendar", args=["not-a-token"])).status_code == 404


def test_a_cancelled_window_is_served_as_a_cancellation(
    as_user: Any, release: Release, users: dict[str, Any], window: MaintenanceWindow
) -> None:
    with clock(BEFORE):
        workflow.cancel_window(release, reason="Freeze", by=users["po"])

    calendar = Calendar.from_ical(as_user("qa").get(calendar_url(release)).content)
    assert calendar["METHOD"] == "CANCEL"
    assert calendar.walk("VEVENT")[0]["STATUS"] == "CANCELLED"
    assert calendar.walk("VEVENT")[0]["UID"] == window.uid


@pytest.mark.parametrize(("persona", "status"), [("qa", 403), ("support", 403), ("outsider", 404)])
def test_only_those_who_manage_it_open_the_window_page(
    as_user: Any, release: Release, persona: str, status: int
) -> None:
    client = as_user(persona)
    assert client.get(window_url(release)).status_code == status
    assert client.post(window_url(release), form()).status_code == status
    assert not MaintenanceWindow.objects.exists()


def test_devops_schedules_the_window_in_the_browser(
    as_user: Any, release: Release, users: dict[str, Any]
) -> None:
    client = as_user("devops")
    assert client.get(window_url(release)).status_code == 200

    with clock(BEFORE):
        response = client.post(window_url(release), form())

    assert response.status_code == 302
    made = MaintenanceWindow.objects.get(release=release)
    assert made.starts_at == START and made.ends_at == END
    assert made.time_zone == "Europe/Madrid"


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"end": "2026-10-24T05:00"}, "The window must end after it starts."),
        ({"time_zone": "Mars/Olympus"}, "is not a time zone we know"),
        ({"start": "tomorrow at noon"}, "Enter a date and time such as"),
        ({"start": "2026-10-25T02:30"}, "happens twice in Europe/Madrid"),
        (
            {
                "time_zone": "America/New_York",
                "start": "2026-03-08T02:30",
                "end": "2026-03-08T05:00",
            },
            "does not exist in America/New_York",
        ),
        ({"start": "2026-01-01T01:00", "end": "2026-01-01T02:00"}, "must end in the future"),
        (
            {"start": "2027-01-01T22:00", "end": "2037-01-01T22:00"},
            "A maintenance window may last at most 168 hours (MAINTENANCE_WINDOW_MAX_HOURS)",
        ),
    ],
)
def test_a_window_that_does_not_hold_is_refused_with_what_was_typed_kept(
    as_user: Any, release: Release, values: dict[str, str], message: str
) -> None:
    sent = form(**values)
    with clock(BEFORE):
        response = as_user("po").post(window_url(release), sent, HTTP_ACCEPT_LANGUAGE="en")

    assert response.status_code == 422
    page = response.content.decode()
    assert message in page
    for name in ("start", "end", "time_zone"):
        assert f'value="{sent[name]}"' in page
    assert not MaintenanceWindow.objects.exists()


def test_an_edit_from_a_stale_page_is_refused_showing_the_window_and_keeping_what_was_typed(
    as_user: Any, release: Release, window: MaintenanceWindow, users: dict[str, Any]
) -> None:
    with clock(BEFORE):
        page = as_user("po").get(window_url(release), HTTP_ACCEPT_LANGUAGE="en")
        loaded = f'name="based_on" value="{window.sequence}"'
        assert loaded in page.content.decode()
        as_user("devops").post(
            window_url(release),
            form(action="edit", start="2026-10-25T00:00", based_on=str(window.sequence)),
        )
        mine = form(action="edit", start="2026-10-24T23:00", based_on=str(window.sequence))
        response = as_user("po").post(window_url(release), mine, HTTP_ACCEPT_LANGUAGE="en")

    saved = MaintenanceWindow.objects.get(release=release)
    assert saved.local_start.hour == 0
    assert response.status_code == 422
    html = response.content.decode()
    assert "Someone else changed the maintenance window while you were editing it" in html
    assert saved.summary() in html
    assert 'value="2026-10-24T23:00"' in html
    renewed = f'name="based_on" value="{saved.sequence}"'
    assert renewed in html and loaded not in html

    with clock(BEFORE):
        again = as_user("po").post(window_url(release), {**mine, "based_on": str(saved.sequence)})
    assert again.status_code == 302
    assert MaintenanceWindow.objects.get(release=release).local_start.hour == 23


def test_an_edit_without_the_window_it_was_based_on_is_refused(
    as_user: Any, release: Release, window: MaintenanceWindow
) -> None:
    with clock(BEFORE):
        response = as_user("po").post(
            window_url(release), form(action="edit", start="2026-10-24T23:00")
        )

    assert response.status_code == 422
    assert MaintenanceWindow.objects.get(release=release).sequence == window.sequence


def test_cancelling_asks_for_confirmation_first(
    as_user: Any, release: Release, window: MaintenanceWindow
) -> None:
    client = as_user("po")
    with clock(BEFORE):
        asked = client.post(window_url(release), {"action": "cancel", "reason": "Vendor freeze"})
        window.refresh_from_db()
        assert asked.status_code == 200
        assert b'name="confirmed" value="on"' in asked.content
        assert b"Vendor freeze" in asked.content
        assert window.state == WindowState.SCHEDULED

        missing = client.post(window_url(release), {"action": "cancel", "reason": ""})
        assert missing.status_code == 422

        done = client.post(
            window_url(release), {"action": "cancel", "reason": "Vendor freeze", "confirmed": "on"}
        )
    assert done.status_code == 302
    window.refresh_from_db()
    assert window.state == WindowState.CANCELLED


def test_a_running_window_is_extended_after_confirmation(
    as_user: Any, release: Release, window: MaintenanceWindow
) -> None:
    client = as_user("devops")
    running = datetime(2026, 10, 25, 2, 0, tzinfo=UTC)
    extend = {"action": "extend", "end": "2026-10-25T07:00", "reason": "Slow migration"}
    with clock(running):
        asked = client.post(window_url(release), extend)
        assert asked.status_code == 200
        assert b'value="2026-10-25T07:00"' in asked.content
        done = client.post(window_url(release), {**extend, "confirmed": "on"})

    assert done.status_code == 302
    window.refresh_from_db()
    assert window.state == WindowState.EXTENDED
    assert window.ends_at == datetime(2026, 10, 25, 7, 0, tzinfo=MADRID)


@pytest.mark.parametrize(
    "end", ["2026-10-25T03:00", "2026-11-10T07:00"], ids=["earlier", "too-long"]
)
def test_an_extension_that_would_be_refused_is_told_before_the_question(
    as_user: Any, release: Release, window: MaintenanceWindow, end: str
) -> None:
    client = as_user("devops")
    extend = {"action": "extend", "end": end, "reason": "Slow migration"}
    events_before = release.audit_events.count()
    with clock(datetime(2026, 10, 25, 2, 0, tzinfo=UTC)):
        refused = client.post(window_url(release), extend, HTTP_ACCEPT_LANGUAGE="en")

    assert refused.status_code == 422
    html = refused.content.decode()
    assert "later than the window does now" in html or "at most 168 hours" in html
    assert 'name="confirmed"' not in html
    window.refresh_from_db()
    assert window.state == WindowState.SCHEDULED
    assert release.audit_events.count() == events_before


def test_an_unknown_action_is_a_bad_request(as_user: Any, release: Release) -> None:
    assert as_user("po").post(window_url(release), {"action": "explode"}).status_code == 400


def test_the_board_and_the_status_page_show_the_window_in_both_zones(
    as_user: Any, release: Release, window: MaintenanceWindow
) -> None:
    client = as_user("devops")
    board_url = reverse("releases:board", args=[release.version])
    status_url = reverse("releases:status", args=[release.version])
    with clock(BEFORE):
        board = client.get(board_url, HTTP_ACCEPT_LANGUAGE="en").content.decode()
        status = client.get(status_url, HTTP_ACCEPT_LANGUAGE="en").content.decode()

    for page in (board, status):
        assert 'id="maintenance-window"' in page
        assert "In Europe/Madrid (the release's zone)" in page
        assert "Sun 25 Oct 2026 01:00 CEST</time> – " in page
        assert "Sun 25 Oct 2026 05:00 CET</time>" in page
        # The site's zone (UTC in tests) is the viewer's.
        assert "Sat 24 Oct 2026 23:00 UTC – Sun 25 Oct 2026 04:00 UTC" in page
        # The countdown names the start it counts down to, not when it was counted.
        assert (
            '4\xa0days, 14\xa0hours</span>, <time datetime="2026-10-24T23:00:00+00:00">'
            "at 23:00 UTC</time>"
        ) in page
        assert "09:00 UTC" not in page
        assert calendar_url(release) in page
    assert window_url(release) in board
    assert window_url(release) not in status


@pytest.mark.parametrize(
    ("language", "said"),
    [
        ("en", "1\xa0hour, 49\xa0minutes</span>, {end}until 04:00 UTC</time>"),
        ("es", "1\xa0hora, 49\xa0minutos</span>, {end}hasta las 04:00 UTC</time>"),
    ],
)
def test_the_time_left_names_the_end_of_the_window(
    client: Client,
    users: dict[str, Any],
    release: Release,
    window: MaintenanceWindow,
    language: str,
    said: str,
) -> None:
    client.force_login(users["support"])
    with clock(datetime(2026, 10, 25, 2, 11, tzinfo=UTC)):
        page = client.get(
            reverse("releases:status", args=[release.version]), HTTP_ACCEPT_LANGUAGE=language
        ).content.decode()

    assert said.format(end='<time datetime="2026-10-25T04:00:00+00:00">') in page
    assert "02:11" not in page


def test_the_shared_status_page_links_to_the_shared_calendar(
    client: Client, release: Release, users: dict[str, Any], window: MaintenanceWindow
) -> None:
    token = workflow.create_share_link(release, label="vendor", by=users["admin"])

    page = client.get(reverse("releases:shared-status", args=[token])).content.decode()

    assert reverse("releases:shared-calendar", args=[token]) in page
    assert window_url(release) not in page


def test_a_live_update_brings_the_window_to_open_pages(
    release: Release, users: dict[str, Any]
) -> None:
    viewer = viewer_for(users["support"], release, read_only=True, language="en")
    since = release.revision
    with clock(BEFORE):
        workflow.schedule_window(
            release, start=START, end=END, time_zone="Europe/Madrid", by=users["po"]
        )

        _revision, html = render_update(load_snapshot(release.pk), viewer, "status", since)

    assert 'id="maintenance-window" class="maintenance-window"' in html
    assert "Scheduled" in html


def test_the_audit_trail_shows_each_change_of_the_window(
    as_user: Any, release: Release, users: dict[str, Any], window: MaintenanceWindow
) -> None:
    with clock(BEFORE):
        workflow.cancel_window(release, reason="Vendor freeze", by=users["po"])
    workflow.advance_windows(datetime(2026, 10, 25, 6, 0, tzinfo=UTC))

    page = as_user("support").get(
        reverse("releases:audit", args=[release.version]), HTTP_ACCEPT_LANGUAGE="en"
    )

    text = page.content.decode()
    assert "Maintenance window scheduled" in text
    assert "Maintenance window cancelled" in text
    assert "Vendor freeze" in text
    # Its start as every page writes a moment, in the reader's zone, not as kept.
    with translation.override("en"):
        assert f"<dd>{moment(START)}</dd>" in text
    assert "2026-10-25T01:00:00+02:00" not in text


def test_the_panel_hands_the_reader_zone_and_countdown_to_its_script(
    as_user: Any, release: Release, window: MaintenanceWindow
) -> None:
    with clock(BEFORE):
        page = as_user("qa").get(reverse("releases:status", args=[release.version]))

    text = page.content.decode()
    assert 'data-window-until="2026-10-24T23:00:00+00:00"' in text
    assert 'data-window-zone="Europe/Madrid"' in text
    assert "/static/js/window.js" in text


@pytest.mark.parametrize(
    ("at", "shown", "hidden"),
    [
        (BEFORE, ['value="edit"', 'value="cancel"'], ['value="extend"', 'value="complete"']),
        (
            datetime(2026, 10, 25, 1, 0, tzinfo=UTC),
            ['value="extend"', 'value="complete"', 'value="cancel"', 'id="cancel_reason"'],
            ['value="edit"', 'value="schedule"'],
        ),
        (
            datetime(2026, 10, 26, 0, 0, tzinfo=UTC),
            ['value="schedule"'],
            ['value="extend"', 'value="cancel"'],
        ),
    ],
)
def test_the_window_page_offers_what_the_state_allows(
    as_user: Any,
    release: Release,
    window: MaintenanceWindow,
    at: datetime,
    shown: list[str],
    hidden: list[str],
) -> None:
    with clock(at):
        page = as_user("po").get(window_url(release)).content.decode()

    assert all(each in page for each in shown)
    assert not any(each in page for each in hidden)


def test_a_confirmed_extension_the_clock_overtook_is_refused_with_a_message(
    as_user: Any, release: Release, window: MaintenanceWindow
) -> None:
    extend = {
        "action": "extend",
        "end": "2026-10-25T07:00",
        "reason": "Slow migration",
        "confirmed": "on",
    }
    with clock(BEFORE):
        response = as_user("devops").post(window_url(release), extend, HTTP_ACCEPT_LANGUAGE="en")

    assert response.status_code == 422
    assert "The maintenance window is scheduled: it cannot be changed that way." in (
        response.content.decode()
    )


def test_a_cancelled_release_says_why_its_window_cannot_change(
    as_user: Any, release: Release, users: dict[str, Any]
) -> None:
    workflow.set_status(release, status="cancelled", by=users["po"])

    response = as_user("po").get(window_url(release), HTTP_ACCEPT_LANGUAGE="en")

    assert response.status_code == 403


def test_the_panel_speaks_spanish_by_default(
    as_user: Any, release: Release, window: MaintenanceWindow
) -> None:
    with clock(BEFORE):
        page = as_user("support").get(reverse("releases:status", args=[release.version]))

    text = page.content.decode()
    assert "Ventana de mantenimiento" in text
    assert "Programada" in text
    assert "Añadir a tu calendario (.ics)" in text


def test_a_window_longer_than_the_setting_is_refused_in_spanish_beside_its_end(
    as_user: Any, release: Release, settings: Any
) -> None:
    settings.MAINTENANCE_WINDOW_MAX_HOURS = 3
    sent = form()
    with clock(BEFORE):
        response = as_user("devops").post(window_url(release), sent, HTTP_ACCEPT_LANGUAGE="es")

    assert response.status_code == 422
    assert response.context["window_form"].errors["end"] == [
        "Una ventana de mantenimiento puede durar como mucho 3 horas "
        "(MAINTENANCE_WINDOW_MAX_HOURS); revisa el inicio y el final."
    ]
    page = response.content.decode()
    for name in ("start", "end", "time_zone"):
        assert f'value="{sent[name]}"' in page
    assert not MaintenanceWindow.objects.exists()
