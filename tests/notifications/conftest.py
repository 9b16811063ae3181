"""Channels, the events they are sent, and a mail server on 127.0.0.1 for the
notification tests. The release on its day (approved, deployed) is tests/conftest.py's."""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable, Iterator
from datetime import datetime
from typing import Any
from unittest import mock

import pytest
from aiosmtpd.controller import Controller
from django.db import connection, transaction

from deploycheck.settings import _email_settings
from notifications import outbox
from notifications.models import Channel, Event
from releases.models import Release


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


def free_port() -> int:
    with socket.socket() as placeholder:
        placeholder.bind(("127.0.0.1", 0))
        return int(placeholder.getsockname()[1])


class Sink:
    """An SMTP server's side of the exchange: it keeps what it takes, and refuses the
    recipients in `refused` and, with `data_reply`, the mail itself."""

    def __init__(self) -> None:
        self.received: list[Any] = []
        self.refused: set[str] = set()
        self.data_reply = "250 OK"

    async def handle_RCPT(
        self, server: Any, session: Any, envelope: Any, address: str, options: list[str]
    ) -> str:
        if address in self.refused:
            return "550 5.1.1 no such mailbox"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        if self.data_reply.startswith("250"):
            self.received.append(envelope)
        return self.data_reply


@pytest.fixture
def smtp(settings: Any) -> Iterator[Sink]:
    sink = Sink()
    port = free_port()
    controller = Controller(sink, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        for name, value in _email_settings(f"smtp://127.0.0.1:{port}").items():
            setattr(settings, name, value)
        settings.EMAIL_ENABLED = True
        yield sink
    finally:
        controller.stop()


def race_two_beats(release: Release, send: Callable[[datetime], int], due: datetime) -> list[int]:
    """Two beats at once: another connection holds the release's lock and sends when it
    lets go, while this one sends before and after. What each of this one's sends sent
    is asserted here (nothing: the release was locked, then told already); what the
    other sent is returned."""
    locked, release_lock = threading.Event(), threading.Event()
    counted: list[int] = []

    def other_beat() -> None:
        try:
            with transaction.atomic():
                Release.objects.select_for_update().get(pk=release.pk)
                locked.set()
                release_lock.wait()
                counted.append(send(due))
        finally:
            connection.close()

    with (
        mock.patch.object(outbox, "enqueue", lambda *args: None),
        mock.patch.object(outbox, "enqueue_email", lambda *args: None),
    ):
        thread = threading.Thread(target=other_beat)
        thread.start()
        locked.wait()
        assert send(due) == 0
        release_lock.set()
        thread.join()
        assert send(due) == 0
    return counted
