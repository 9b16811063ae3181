"""What one open stream sends: its revision first, each update, a keep-alive when it has
been quiet for LIVE_KEEPALIVE_SECONDS, `revoked` when access ends, and nothing after
STREAM_MAX_SECONDS (the browser reconnects)."""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from typing import Any

import pytest

from releases import live, streams

KEEP_ALIVE = b": keep-alive\n\n"
FIRST = b"retry: 2000\nevent: revision\ndata: 3\n\n"
ACCESS = streams.LiveAccess(release_id=7, revision=3, viewer="lead", page="board")


class OneStreamHub:
    """The two calls a stream makes of the process's hub."""

    def __init__(self) -> None:
        self.subscriber: live.Subscriber | None = None
        self.unsubscribed = False

    def subscribe(
        self, release_id: int, viewer: Hashable, page: str, **since: Any
    ) -> live.Subscriber:
        self.subscriber = live.Subscriber(release_id, viewer, page, since["seen"])
        return self.subscriber

    def unsubscribe(self, subscriber: live.Subscriber) -> None:
        assert subscriber is self.subscriber
        self.unsubscribed = True

    # What the hub does to a waiting stream: offer it an update, end its access.
    def offer(self, update: live.Update) -> None:
        assert self.subscriber is not None, "the stream has not started"
        self.subscriber.offer(update)

    def end_access(self) -> None:
        assert self.subscriber is not None, "the stream has not started"
        self.subscriber.close()


@pytest.fixture
def timing(settings: Any, monkeypatch: pytest.MonkeyPatch) -> Any:
    def set_to(keepalive: float, lasting: float) -> None:
        settings.LIVE_KEEPALIVE_SECONDS = keepalive
        monkeypatch.setattr(streams, "STREAM_MAX_SECONDS", lasting)

    return set_to


@dataclass
class Sent:
    """What a stream sent, each event with the seconds since it began, and how long it
    lasted."""

    events: list[tuple[float, bytes]]
    lasted: float


def stream(hub: OneStreamHub, *meanwhile: tuple[float, Callable[[], None]]) -> Sent:
    """Follow one stream until it ends; each (seconds, call) of `meanwhile` is made that
    long after it began."""

    async def follow() -> Sent:
        events = streams._events(hub, ACCESS, since=3)  # type: ignore[arg-type]
        loop = asyncio.get_running_loop()
        for delay, call in meanwhile:
            loop.call_later(delay, call)
        started = time.monotonic()
        sent = [(time.monotonic() - started, event) async for event in events]
        return Sent(sent, time.monotonic() - started)

    return asyncio.run(follow())


def test_a_quiet_stream_keeps_alive_until_its_time_is_up(timing: Any) -> None:
    timing(keepalive=0.1, lasting=0.45)
    hub = OneStreamHub()

    sent = stream(hub)

    assert sent.events[0][1] == FIRST
    keep_alives = [at for at, event in sent.events[1:] if event == KEEP_ALIVE]
    assert len(keep_alives) == len(sent.events) - 1, "only keep-alives on a quiet stream"
    # One each 0.1 s, on time or late (a loaded machine), never before.
    assert 2 <= len(keep_alives) <= 4
    assert keep_alives[0] >= 0.09
    assert all(later - earlier >= 0.09 for earlier, later in itertools.pairwise(keep_alives))
    assert 0.44 <= sent.lasted < 2
    assert hub.unsubscribed


def test_the_stream_ends_at_its_deadline(timing: Any) -> None:
    timing(keepalive=10, lasting=0.2)
    hub = OneStreamHub()

    sent = stream(hub)

    assert [event for _at, event in sent.events] == [FIRST]
    assert 0.19 <= sent.lasted < 2
    assert hub.unsubscribed


def test_an_update_is_sent_at_once_and_puts_the_keep_alive_off(timing: Any) -> None:
    timing(keepalive=0.3, lasting=0.8)
    hub = OneStreamHub()
    update = live.make_update(4, "<tr id='row-1'></tr>")

    sent = stream(hub, (0.2, lambda: hub.offer(update)))

    update_at, sent_update = sent.events[1]
    assert sent_update == update.event
    assert 0.19 <= update_at < 0.6
    keep_alives = [at for at, event in sent.events if event == KEEP_ALIVE]
    # Quiet for 0.3 s from the update, not from the stream's start.
    assert keep_alives and keep_alives[0] - update_at >= 0.29


def test_a_stream_whose_access_ended_says_so_and_ends(timing: Any) -> None:
    timing(keepalive=10, lasting=60)
    hub = OneStreamHub()

    sent = stream(hub, (0.05, hub.end_access))

    assert sent.events[-1][1] == b"retry: 86400000\nevent: revoked\ndata: \n\n"
    assert sent.lasted < 5
    assert hub.unsubscribed
