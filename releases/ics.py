"""A release's maintenance window as an iCalendar file (RFC 5545) that people add to
their calendars, and that updates there when the window changes.

The event keeps one UID for the release's window whatever happens to it, and its
SEQUENCE grows with every change people make, so a calendar replaces what it imported
instead of adding a second event; a cancelled window is sent as METHOD:CANCEL, which
calendars take as "remove it". Times carry their zone (TZID) and the file its VTIMEZONE,
so a window across a daylight-saving change lands at the right hour everywhere.
"""

from __future__ import annotations

from datetime import timedelta

from django.utils import timezone
from django.utils.translation import gettext as _
from icalendar import Calendar, Event

from .models import MaintenanceWindow, Release, WindowState

PRODUCT_ID = "-//deploycheck//maintenance window//EN"


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
    # Only the years the window touches: a zone's whole history would make a file of
    # hundreds of transitions that calendars read and never need.
    calendar.add_missing_timezones(
        first_date=window.local_start.date() - timedelta(days=366),
        last_date=window.local_end.date() + timedelta(days=366),
    )
    ical: bytes = calendar.to_ical()
    return ical
