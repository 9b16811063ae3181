"""What the clock sends, where no change to a release causes it: approval reminders to the
product owner and "maintenance starting soon" to everyone on the release.

Beat runs `remind` every minute (settings.CELERY_BEAT_SCHEDULE). Each release is handled
in its own transaction holding its row lock, the one every change takes, and what was
sent is read from the outbox itself under that lock: two beats (or a beat run twice)
never send one reminder twice, and one skips a release the other holds. The events go
through outbox.write_events, so channels and e-mail get them as they get every other.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext_noop

from releases.actors import SystemActor
from releases.models import (
    CLOSED_STATUSES,
    MaintenanceWindow,
    Release,
    ReleaseStatus,
    WindowState,
)
from releases.workflow.window import CLOCK_ACTOR, window_values

from . import outbox
from .models import Event, Readiness

REMINDER_ACTOR = SystemActor(gettext_noop("approval reminders"))
# How long before a window's start people are told it is near, farthest first, each
# with the name its event gives it (`in`).
STARTING_SOON: tuple[tuple[str, timedelta], ...] = (
    ("24h", timedelta(hours=24)),
    ("60m", timedelta(minutes=60)),
)
_WAITING = (ReleaseStatus.PLANNED, ReleaseStatus.IN_PROGRESS)


def _locked(release_id: int, **conditions: Any) -> Release | None:
    """The release, locked for the transaction under way, if it still meets
    `conditions`; None too when another transaction holds it (it is looked at again
    at the next run)."""
    return (
        Release.objects.select_for_update(skip_locked=True)
        .filter(pk=release_id, **conditions)
        .first()
    )


def send_approval_reminders(now: datetime | None = None) -> int:
    """Remind the product owner of every release that is approvable, waiting, not
    turned off, and not asked about for APPROVAL_REMINDER_MINUTES; how many were sent."""
    minutes = settings.APPROVAL_REMINDER_MINUTES
    if minutes <= 0:
        return 0
    now = now or timezone.now()
    interval = timedelta(minutes=minutes)
    waiting = {"status__in": _WAITING, "approval_reminders": True}
    candidates = Release.objects.filter(
        pk__in=Readiness.objects.filter(approvable=True).values("release_id"), **waiting
    )
    sent = 0
    for release_id in candidates.values_list("pk", flat=True):
        with transaction.atomic():
            release = _locked(release_id, **waiting)
            if release is None:
                continue
            asked = (
                Event.objects.filter(
                    release=release, type__in=(outbox.APPROVAL_REQUESTED, outbox.APPROVAL_REMINDER)
                )
                .order_by("-created_at")
                .values_list("created_at", flat=True)
                .first()
            )
            if asked is not None and now - asked < interval:
                continue
            # Readiness is as of the latest change; time alone can end it (a check's
            # result grows stale), so the rule is asked again.
            if not outbox.approvable(release):
                continue
            requested = (
                Event.objects.filter(release=release, type=outbox.APPROVAL_REQUESTED)
                .order_by("-created_at")
                .values_list("created_at", flat=True)
                .first()
            )
            data = {
                **outbox.common_fields(release, REMINDER_ACTOR, now),
                "requested_at": requested.isoformat() if requested else None,
            }
            outbox.write_events(
                release, [outbox.NewEvent(outbox.APPROVAL_REMINDER, REMINDER_ACTOR, data)], now
            )
            sent += 1
    return sent


def _due(window: MaintenanceWindow, now: datetime) -> str | None:
    """The threshold of STARTING_SOON that `now` falls in, if the window was planned
    before it came: a window scheduled 30 minutes ahead gets no "60m", and one the
    beat finds within the hour is told "60m" rather than a late "24h"."""
    if window.state_at(now) != WindowState.SCHEDULED:
        return None
    for index, (name, ahead) in enumerate(STARTING_SOON):
        opens = window.starts_at - ahead
        closer = STARTING_SOON[index + 1][1] if index + 1 < len(STARTING_SOON) else timedelta(0)
        if opens <= now < window.starts_at - closer and window.changed_at < opens:
            return name
    return None


def _window_data(window: MaintenanceWindow) -> dict[str, Any]:
    """As the other maintenance events carry the window (the audit trail's values)."""
    return {**window_values(window), "reason": ""}


def send_starting_soon(now: datetime | None = None) -> int:
    """Tell everyone on a release that its scheduled window starts within a threshold
    of STARTING_SOON, once per window, SEQUENCE and threshold: a window moved is a new
    SEQUENCE, and is told again. How many were sent."""
    now = now or timezone.now()
    near = MaintenanceWindow.objects.filter(
        state=WindowState.SCHEDULED,
        starts_at__gt=now,
        starts_at__lte=now + STARTING_SOON[0][1],
    ).exclude(release__status__in=CLOSED_STATUSES)
    sent = 0
    for release_id in near.values_list("release_id", flat=True):
        with transaction.atomic():
            release = _locked(release_id)
            if release is None or release.status in CLOSED_STATUSES:
                continue
            window = MaintenanceWindow.objects.filter(release=release).first()
            threshold = _due(window, now) if window is not None else None
            if window is None or threshold is None:
                continue
            told = Event.objects.filter(release=release, type=outbox.MAINTENANCE_STARTING_SOON)
            if any(
                data.get("sequence") == window.sequence and data.get("in") == threshold
                for data in told.values_list("data", flat=True)
            ):
                continue
            data = {
                **outbox.common_fields(release, CLOCK_ACTOR, now),
                **_window_data(window),
                "in": threshold,
            }
            event = outbox.NewEvent(outbox.MAINTENANCE_STARTING_SOON, CLOCK_ACTOR, data)
            outbox.write_events(release, [event], now)
            sent += 1
    return sent


def remind(now: datetime | None = None) -> int:
    """Everything the clock sends, as of `now`; how many events."""
    now = now or timezone.now()
    return send_approval_reminders(now) + send_starting_soon(now)
