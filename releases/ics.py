"""A release's maintenance window as an iCalendar file (RFC 5545) that people add to
their calendars, and that updates there when the window changes.

The event keeps one UID for the release's window whatever happens to it, and its
SEQUENCE grows with every change people make, so a calendar replaces what it imported
instead of adding a second event; a cancelled window is sent as METHOD:CANCEL, which
calendars take as "remove it". Times carry their zone (TZID) and the file its VTIMEZONE,
so a window across a daylight-saving change lands at the right hour everywhere.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.utils import timezone
from django.utils.translation import gettext as _
from icalendar import Calendar, Event, vCalAddress, vText

from .models import MaintenanceWindow, Release, WindowState

PRODUCT_ID = "-//deploycheck//maintenance window//EN"
MEETING_PRODUCT_ID = "-//deploycheck//meeting//EN"


def window_calendar(release: Release, window: MaintenanceWindow, status_url: str) -> bytes:
    """The window's calendar, in the active language."""
    cancelled = window.state == WindowState.CANCELLED
    calendar = Calendar()
    calendar.add("prodid", PRODUCT_ID)
    calendar.add("version", "2.0")
    calendar.add("calscale", "GREGORIAN")
    calendar.add("method", "CANCEL" if cancelled else "PUBLISH")

    event = Event()
    event.add("uid", window.uid)
    event.add("sequence", window.sequence)
    # With a METHOD, DTSTAMP is when this file was made; the change is LAST-MODIFIED.
    event.add("dtstamp", timezone.now())
    event.add("last-modified", window.changed_at)
    event.add("dtstart", window.local_start)
    event.add("dtend", window.local_end)
    event.add("status", "CANCELLED" if cancelled else "CONFIRMED")
    event.add(
        "summary",
        _("Maintenance window: %(version)s %(title)s")
        % {"version": release.version, "title": release.title},
    )
    lines = [
        _("Maintenance window of release %(version)s (%(zone)s).")
        % {"version": release.version, "zone": window.time_zone},
        _("State: %(state)s.") % {"state": WindowState(window.state).label},
    ]
    if window.reason:
        lines.append(_("Reason: %(reason)s") % {"reason": window.reason})
    lines.append(_("Status page: %(url)s") % {"url": status_url})
    event.add("description", "\n".join(lines))
    event.add("url", status_url)
    calendar.add_component(event)
    return _with_zones(calendar, window.local_start, window.local_end)


def _with_zones(calendar: Calendar, start: datetime, end: datetime) -> bytes:
    # Only the years the event touches: a zone's whole history would make a file of
    # hundreds of transitions that calendars read and never need.
    calendar.add_missing_timezones(
        first_date=start.date() - timedelta(days=366),
        last_date=end.date() + timedelta(days=366),
    )
    ical: bytes = calendar.to_ical()
    return ical


def retrospective_uid(release: Release) -> str:
    """One per release, so that a second invitation moves the meeting (with a higher
    SEQUENCE) instead of adding another."""
    return f"retrospective-{release.pk}@{settings.CALENDAR_UID_DOMAIN}"


@dataclass(frozen=True)
class Meeting:
    start: datetime
    end: datetime
    sequence: int
    summary: str
    description: str
    url: str


def meeting_request(
    release: Release,
    meeting: Meeting,
    *,
    organizer: str,
    attendees: Sequence[tuple[str, str]],
) -> bytes:
    """An invitation (METHOD:REQUEST, RFC 5546) to a meeting about `release` from
    `organizer` (an address) to `attendees` ((name, address) each), with its start and
    end in their zone (TZID and its VTIMEZONE)."""
    calendar = Calendar()
    calendar.add("prodid", MEETING_PRODUCT_ID)
    calendar.add("version", "2.0")
    calendar.add("calscale", "GREGORIAN")
    calendar.add("method", "REQUEST")
    event = Event()
    event.add("uid", retrospective_uid(release))
    event.add("sequence", meeting.sequence)
    event.add("dtstamp", timezone.now())
    event.add("dtstart", meeting.start)
    event.add("dtend", meeting.end)
    event.add("status", "CONFIRMED")
    event.add("summary", meeting.summary)
    event.add("description", meeting.description)
    event.add("url", meeting.url)
    event.add("organizer", vCalAddress(f"mailto:{organizer}"))
    for name, address in attendees:
        attendee = vCalAddress(f"mailto:{address}")
        if name:
            attendee.params["CN"] = vText(name)
        attendee.params["ROLE"] = vText("REQ-PARTICIPANT")
        attendee.params["PARTSTAT"] = vText("NEEDS-ACTION")
        attendee.params["RSVP"] = vText("TRUE")
        event.add("attendee", attendee, encode=False)
    calendar.add_component(event)
    return _with_zones(calendar, meeting.start, meeting.end)
