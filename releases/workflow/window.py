"""The maintenance window of a release day: scheduled, changed, extended, completed early
or cancelled by people, started and ended by the clock.

Each change people make is one more SEQUENCE of the window's calendar event, audited,
and moves the seed's item "Se ha establecido una ventana de mantenimiento" with it: the
system ticks it, with the window as its note, when a window is scheduled, and reopens it
when the window is cancelled, never overturning what a person decided on that item.
"""

from __future__ import annotations

import functools
import unicodedata
import zoneinfo
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

from django.conf import settings
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_noop

from .. import policy
from ..actors import SystemActor, who_on
from ..models import (
    ActorKind,
    AuditAction,
    ItemState,
    MaintenanceWindow,
    Release,
    ReleaseItem,
    WindowState,
)
from .change import (
    By,
    Conflict,
    WorkflowError,
    _Change,
    _changing,
    as_actor,
    trimmed,
    visible_text,
)
from .items import _apply_item_change

# Who ticks and reopens the seed's window item, and who records that a window started or
# ended by the clock.
WINDOW_ITEM_ACTOR = SystemActor(gettext_noop("maintenance window"))
CLOCK_ACTOR = SystemActor(gettext_noop("maintenance window clock"))
# The checklist item a window settles is the first whose text holds one of these,
# compared without case or accents: the seed's "Se ha establecido una ventana de
# mantenimiento (si es necesario)" keeps matching when reworded around the phrase, and
# so does an English checklist's.
WINDOW_ITEM_PHRASES = ("ventana de mantenimiento", "maintenance window")
# States in which the window is still open to the clock and to people.
OPEN_STATES = (WindowState.SCHEDULED, WindowState.IN_PROGRESS, WindowState.EXTENDED)
REASON_MAX = 2000


@functools.cache
def known_zones() -> frozenset[str]:
    return frozenset(zoneinfo.available_timezones())


def zone_named(name: str) -> zoneinfo.ZoneInfo:
    """An IANA zone by name, or a WorkflowError saying it is unknown."""
    name = name.strip()
    if name not in known_zones():
        raise WorkflowError(
            _("“%(zone)s” is not a time zone we know; use an IANA name such as Europe/Madrid.")
            % {"zone": name[:64]}
        )
    return zoneinfo.ZoneInfo(name)


def _folded(text: str) -> str:
    decomposed = unicodedata.normalize("NFKD", text.casefold())
    return "".join(ch for ch in decomposed if not unicodedata.combining(ch))


def is_window_item(text: str) -> bool:
    folded = " ".join(_folded(text).split())
    return any(phrase in folded for phrase in WINDOW_ITEM_PHRASES)


def _window_item(release: Release) -> ReleaseItem | None:
    candidates = release.items.filter(
        Q(text__icontains="mantenimiento") | Q(text__icontains="maintenance")
    ).order_by("position")
    return next((item for item in candidates if is_window_item(item.text)), None)


@contextmanager
def _as(change: _Change, actor: SystemActor) -> Iterator[None]:
    """Within one change, what the system does as a consequence of a person's act (the
    item it ticks) is recorded as the system's, in the same transaction."""
    acting, override = change.actor, change.override
    change.actor, change.override = actor, False
    try:
        yield
    finally:
        change.actor, change.override = acting, override


def _settle_window_item(change: _Change, window: MaintenanceWindow) -> None:
    """Tick the window's item with the window as its note, or bring the note up to date;
    an item a person settled, blocked or ticked is theirs and stays as it is."""
    item = _window_item(change.on)
    if item is None:
        return
    ours = item.changed_by_kind == ActorKind.SYSTEM and item.state == ItemState.DONE
    if not (ours or item.state == ItemState.PENDING):
        return
    note = window.summary()
    if item.note and not ours:
        note = f"{item.note}\n{note}"
    action = AuditAction.ITEM_ANNOTATED if ours else AuditAction.ITEM_DONE
    with _as(change, WINDOW_ITEM_ACTOR):
        _apply_item_change(
            change, item, expected_version=None, action=action, state=ItemState.DONE, note=note
        )


def _reopen_window_item(change: _Change) -> None:
    item = _window_item(change.on)
    if item is None or item.state != ItemState.DONE or item.changed_by_kind != ActorKind.SYSTEM:
        return
    with _as(change, WINDOW_ITEM_ACTOR):
        _apply_item_change(
            change,
            item,
            expected_version=None,
            action=AuditAction.ITEM_REOPENED,
            state=ItemState.PENDING,
            note="",
        )


def _record(
    change: _Change,
    window: MaintenanceWindow,
    now: datetime,
    action: AuditAction,
    before: dict[str, Any],
    *,
    reason: str = "",
) -> None:
    """Save a change people made to the window: calendars that imported it see a new
    SEQUENCE, and the audit trail what it was and is (with why, when there is a why)."""
    window.sequence += 1
    window.changed_at = now
    window.save()
    after = window_values(window)
    change.audit(
        action, change.on.version, before, {**after, "reason": reason} if reason else after
    )


def window_values(window: MaintenanceWindow) -> dict[str, Any]:
    """The window as the audit trail keeps it: times in its own zone, with their offset."""
    return {
        "start": window.local_start.isoformat(),
        "end": window.local_end.isoformat(),
        "time_zone": window.time_zone,
        "state": window.state,
        "sequence": window.sequence,
    }


def refuse_too_long(start: datetime, end: datetime) -> None:
    """A window longer than MAINTENANCE_WINDOW_MAX_HOURS is refused, however it is set."""
    most = settings.MAINTENANCE_WINDOW_MAX_HOURS
    # In UTC: two times of one zone subtract as wall clocks, an hour off across a change.
    if end.astimezone(UTC) - start.astimezone(UTC) > timedelta(hours=most):
        raise WorkflowError(
            _(
                "A maintenance window may last at most %(hours)d hours "
                "(MAINTENANCE_WINDOW_MAX_HOURS); check the start and the end."
            )
            % {"hours": most}
        )


def _checked_times(
    start: datetime, end: datetime, time_zone: str, now: datetime
) -> tuple[datetime, datetime, str]:
    zone = zone_named(time_zone)
    if timezone.is_naive(start) or timezone.is_naive(end):
        raise WorkflowError(_("Give the start and the end with their time zone."))
    # In UTC: two times of one zone compare as wall clocks, whichever of a repeated
    # hour each names.
    if end.astimezone(UTC) <= start.astimezone(UTC):
        raise WorkflowError(_("The window must end after it starts."))
    if end <= now:
        raise WorkflowError(_("The window must end in the future."))
    refuse_too_long(start, end)
    return start.astimezone(zone), end.astimezone(zone), zone.key


def _reason(reason: str) -> str:
    reason = visible_text(trimmed(reason), _("The reason"))
    if not reason:
        raise WorkflowError(_("Say why."))
    if len(reason) > REASON_MAX:
        raise WorkflowError(
            _("The reason is longer than %(limit)d characters.") % {"limit": REASON_MAX}
        )
    return reason


def _require_manager(change: _Change) -> None:
    change.require(
        policy.may_manage_window(who_on(change.actor, change.on)),
        _("Only DevOps, the Product Owner or staff manage the maintenance window."),
    )


def _window_of(change: _Change) -> MaintenanceWindow:
    window = MaintenanceWindow.objects.filter(release=change.on).first()
    if window is None:
        raise WorkflowError(_("This release has no maintenance window."))
    return window


def _refuse_unless(window: MaintenanceWindow, now: datetime, *allowed: WindowState) -> None:
    state = window.state_at(now)
    if state not in allowed:
        raise WorkflowError(
            _("The maintenance window is %(state)s: it cannot be changed that way.")
            % {"state": str(state.label).lower()}
        )


def _uid(release: Release) -> str:
    return f"maintenance-window-{release.pk}@{settings.CALENDAR_UID_DOMAIN}"


def schedule_window(
    release: Release,
    *,
    start: datetime,
    end: datetime,
    time_zone: str,
    by: By,
    ip: str | None = None,
) -> MaintenanceWindow:
    """Give the release a window, or a new one after the last was cancelled or ended
    (the same calendar event, one SEQUENCE on)."""
    actor = as_actor(by, ip)
    now = timezone.now()
    start, end, time_zone = _checked_times(start, end, time_zone, now)
    with _changing(release.pk, actor) as change:
        _require_manager(change)
        window = MaintenanceWindow.objects.filter(release=change.on).first()
        before: dict[str, Any] = {}
        if window is None:
            window = MaintenanceWindow(release=change.on, uid=_uid(change.on), sequence=0)
        elif window.state_at(now) in OPEN_STATES:
            raise WorkflowError(
                _("This release already has a maintenance window; change that one instead.")
            )
        else:
            before = window_values(window)
            window.sequence += 1
        window.starts_at, window.ends_at, window.time_zone = start, end, time_zone
        window.state, window.reason, window.changed_at = WindowState.SCHEDULED, "", now
        window.save()
        change.audit(AuditAction.WINDOW_SCHEDULED, change.on.version, before, window_values(window))
        _settle_window_item(change, window)
        return window


def edit_window(
    release: Release,
    *,
    start: datetime,
    end: datetime,
    time_zone: str,
    by: By,
    based_on: int | None = None,
    ip: str | None = None,
) -> MaintenanceWindow:
    """Move a window that has not started yet; once it runs, only its end moves, by
    extending it with a reason. `based_on`: the window's SEQUENCE as the editor loaded
    it; Conflict when someone changed the window since (None: as it is now)."""
    actor = as_actor(by, ip)
    now = timezone.now()
    start, end, time_zone = _checked_times(start, end, time_zone, now)
    with _changing(release.pk, actor) as change:
        _require_manager(change)
        window = _window_of(change)
        _refuse_unless(window, now, WindowState.SCHEDULED)
        if based_on is not None and window.sequence != based_on:
            raise Conflict(
                _(
                    "Someone else changed the maintenance window while you were editing it; "
                    "it is now %(window)s."
                )
                % {"window": window.summary()}
            )
        if (window.starts_at, window.ends_at, window.time_zone) == (start, end, time_zone):
            return window
        before = window_values(window)
        window.starts_at, window.ends_at, window.time_zone = start, end, time_zone
        _record(change, window, now, AuditAction.WINDOW_EDITED, before)
        _settle_window_item(change, window)
        return window


def extend_window(
    release: Release, *, end: datetime, reason: str, by: By, ip: str | None = None
) -> MaintenanceWindow:
    """A running window needs longer: a later end, and why."""
    actor = as_actor(by, ip)
    now = timezone.now()
    reason = _reason(reason)
    if timezone.is_naive(end):
        raise WorkflowError(_("Give the start and the end with their time zone."))
    with _changing(release.pk, actor) as change:
        _require_manager(change)
        window = _window_of(change)
        _refuse_unless(window, now, WindowState.IN_PROGRESS, WindowState.EXTENDED)
        if end <= window.ends_at:
            raise WorkflowError(_("An extension must end later than the window does now."))
        refuse_too_long(window.starts_at, end)
        before = window_values(window)
        window.ends_at = end
        window.state, window.reason = WindowState.EXTENDED, reason
        _record(change, window, now, AuditAction.WINDOW_EXTENDED, before, reason=reason)
        _settle_window_item(change, window)
        return window


def complete_window(release: Release, *, by: By, ip: str | None = None) -> MaintenanceWindow:
    """The work is done before the planned end: the window ends now."""
    actor = as_actor(by, ip)
    now = timezone.now()
    with _changing(release.pk, actor) as change:
        _require_manager(change)
        window = _window_of(change)
        _refuse_unless(window, now, WindowState.IN_PROGRESS, WindowState.EXTENDED)
        before = window_values(window)
        window.ends_at = now
        window.state = WindowState.COMPLETED
        _record(change, window, now, AuditAction.WINDOW_COMPLETED, before)
        _settle_window_item(change, window)
        return window


def cancel_window(
    release: Release, *, reason: str, by: By, ip: str | None = None
) -> MaintenanceWindow:
    """Call the window off, before or during it, with a reason; calendars that imported
    it drop it (METHOD:CANCEL) and the seed's item is open again."""
    actor = as_actor(by, ip)
    now = timezone.now()
    reason = _reason(reason)
    with _changing(release.pk, actor) as change:
        _require_manager(change)
        window = _window_of(change)
        _refuse_unless(window, now, *OPEN_STATES)
        before = window_values(window)
        window.state, window.reason = WindowState.CANCELLED, reason
        _record(change, window, now, AuditAction.WINDOW_CANCELLED, before, reason=reason)
        _reopen_window_item(change)
        return window


def advance_windows(now: datetime | None = None) -> int:
    """Record, as the system, every window the clock has started or ended since it was
    last recorded; how many moved. Beat runs it (settings.CELERY_BEAT_SCHEDULE): the
    start and the end then land on the audit trail and give the release a revision, so
    pages rendered before show the new state. SEQUENCE stays: the event is the same."""
    now = now or timezone.now()
    due = MaintenanceWindow.objects.filter(
        Q(state=WindowState.SCHEDULED, starts_at__lte=now) | Q(ends_at__lte=now),
        state__in=OPEN_STATES,
    )
    moved = 0
    for release_id in due.values_list("release_id", flat=True):
        with _changing(release_id, CLOCK_ACTOR) as change:
            window = MaintenanceWindow.objects.get(release=change.on)
            state = window.state_at(now)
            if state == window.state or window.state not in OPEN_STATES:
                continue
            before = window_values(window)
            window.state = state
            window.save(update_fields=["state"])
            action = (
                AuditAction.WINDOW_COMPLETED
                if state == WindowState.COMPLETED
                else AuditAction.WINDOW_STARTED
            )
            change.audit(action, change.on.version, before, window_values(window))
            moved += 1
    return moved
