"""Releases on the release day, and channels, for the notification tests."""

from __future__ import annotations

from typing import Any

import pytest

from notifications.models import Channel, Event
from releases import workflow
from releases.models import Release


@pytest.fixture
def approved(ready_release: Release, users: dict[str, Any]) -> Release:
    workflow.approve(ready_release, by=users["po"], reason="everything green")
    ready_release.refresh_from_db()
    return ready_release


@pytest.fixture
def deployed(approved: Release, users: dict[str, Any]) -> Release:
    workflow.start_deploy(approved, by=users["devops"], reason="window open")
    workflow.finish_deploy(approved, by=users["devops"], result="success", reason="smoke ok")
    approved.refresh_from_db()
    return approved


def make_channel(name: str = "ops", **fields: Any) -> Channel:
    values: dict[str, Any] = {
        "kind": "webhook",
        "url": "https://hooks.example.com/deploycheck",
        "secret_env": "OPS_WEBHOOK_SECRET",
        "events": ["*"],
        "releases": "*",
        **fields,
    }
    return Channel.objects.create(name=name, **values)


def events_of(release: Release, event_type: str) -> list[Event]:
    return list(Event.objects.filter(release=release, type=event_type).order_by("created_at"))


def types_of(release: Release) -> list[str]:
    return list(
        Event.objects.filter(release=release).order_by("created_at").values_list("type", flat=True)
    )
