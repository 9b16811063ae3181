from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _

if TYPE_CHECKING:
    from releases.models import Release


def write_events(
    release: Release | None, audit_events: Sequence[Mapping[str, Any]], now: datetime
) -> None:
    # The outbox, and the mail and calendar libraries behind it, load at the first change
    # a process makes, not at its start: a command that changes nothing (a deploy job's
    # `verify`) does not wait for them.
    from .outbox import write

    write(release, audit_events, now)


class NotificationsConfig(AppConfig):
    name = "notifications"
    verbose_name = _("Notifications")

    def ready(self) -> None:
        # Here, as Django wants: the workflow's models load once the registry is ready.
        from releases.workflow import write_with_every_change

        write_with_every_change(write_events)
