"""`{% maintenance_window as window %}`: the release's maintenance window as a page shows
it, in the window's zone and the viewer's, or None when it has none."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from django import template
from django.template.context import Context
from django.urls import reverse
from django.utils import timezone

from releases import policy
from releases.board import Viewer
from releases.models import MaintenanceWindow, Release, WindowState

register = template.Library()


@dataclass(frozen=True)
class WindowShown:
    window: MaintenanceWindow
    state: WindowState
    # When the page was rendered: "time left" is counted from it, and goes stale as the
    # page ages, so the panel names beside it the moment it counts down to.
    now: datetime
    # The viewer's zone is the active one (settings.TIME_ZONE unless a request chose).
    viewer_zone: str
    calendar_url: str
    manage_url: str

    @property
    def is_open(self) -> bool:
        return self.state in (WindowState.SCHEDULED, WindowState.IN_PROGRESS, WindowState.EXTENDED)

    @property
    def is_running(self) -> bool:
        return self.state in (WindowState.IN_PROGRESS, WindowState.EXTENDED)

    @property
    def viewer_start(self) -> datetime:
        return timezone.localtime(self.window.starts_at)

    @property
    def viewer_end(self) -> datetime:
        return timezone.localtime(self.window.ends_at)

    @property
    def same_zone(self) -> bool:
        return self.viewer_zone == self.window.time_zone


def _calendar_url(context: Context, release: Release, viewer: Viewer) -> str:
    token = context.get("share_token")
    if token:
        return reverse("releases:shared-calendar", args=[token])
    if not viewer.roles and not viewer.is_staff:
        # Nobody without an account sees a release but through a share link, and a live
        # update of that page is rendered without its token: relative to /s/<token>/.
        return "calendar.ics"
    return reverse("releases:calendar", args=[release.version])


@register.simple_tag(takes_context=True)
def maintenance_window(context: Context) -> WindowShown | None:
    release: Release = context["release"]
    viewer: Viewer = context["viewer"]
    window: MaintenanceWindow | None = context["window"]
    if window is None:
        return None
    now = timezone.now()
    may_manage = not viewer.read_only and bool(policy.may_manage_window(viewer.who))
    return WindowShown(
        window=window,
        state=window.state_at(now),
        now=now,
        viewer_zone=timezone.get_current_timezone_name(),
        calendar_url=_calendar_url(context, release, viewer),
        manage_url=reverse("releases:window", args=[release.version]) if may_manage else "",
    )


@register.simple_tag(takes_context=True)
def may_manage_window(context: Context) -> bool:
    viewer: Viewer = context["viewer"]
    return not viewer.read_only and bool(policy.may_manage_window(viewer.who))
