"""What one open stream sends: its revision first, each update, a keep-alive when it has
been quiet for LIVE_KEEPALIVE_SECONDS, `revoked` when access ends, and nothing after
STREAM_MAX_SECONDS (the browser reconnects)."""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import AsyncIterator, Hashable
from typing import Any

import pytest

from releases import live, streams

KEEP_ALIVE = b": keep-alive\n\n"
ACCESS = streams.LiveAccess(release_id=7, revision=3, viewer="lead", page="board")


class OneStreamHub:
    """The two calls a stream makes of the process's hub."""

    def __init__(self) -> None:
        self.subscriber: live.Subscriber | None = None
        self.unsubscribed = False

    def subscribe(
        self,
        release_id: int,
        viewer: Hashable,
        page: str,
        *,
        seen: int,
        current: int,
        holder: Hashable = None,
    ) -> live.Subscriber:
        self.subscriber = live.Subscriber(release_id, viewer, page, seen, holder)
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


async def timed(events: AsyncIterator[bytes]) -> list[tuple[float, bytes]]:
    """Every event with the seconds since the stream began, until it ends."""
    started = time.monotonic()
    return [(time.monotonic() - started, event) async for event in events]


def test_a_quiet_stream_keeps_alive_until_its_time_is_up(timing: Any) -> None:
    timing(keepalive=0.1, lasting=0.45)
    hub = OneStreamHub()

    started = time.monotonic()
    sent = asyncio.run(timed(streams._events(hub, ACCESS, since=3)))  # type: ignore[arg-type]
    lasted = time.monotonic() - started

    assert sent[0][1] == b"retry: 2000\nevent: revision\ndata: 3\n\n"
    keep_alives = [at for at, event in sent[1:] if event == KEEP_ALIVE]
    assert keep_alives == [at for at, _event in sent[1:]], "only keep-alives on a quiet stream"
    # One each 0.1 s, on time or late (a loaded machine), never before.
    assert 2 <= len(keep_alives) <= 4
    assert keep_alives[0] >= 0.09
    assert all(later - earlier >= 0.09 for earlier, later in itertools.pairwise(keep_alives))
    assert 0.44 <= lasted < 2
    assert hub.unsubscribed


def test_the_stream_ends_at_its_deadline(timing: Any) -> None:
    timing(keepalive=10, lasting=0.2)
    hub = OneStreamHub()

    started = time.monotonic()
    sent = asyncio.run(timed(streams._events(hub, ACCESS, since=3)))  # type: ignore[arg-type]
    lasted = time.monotonic() - started

    assert [event for _at, event in sent] == [b"retry: 2000\nevent: revision\ndata: 3\n\n"]
    assert 0.19 <= lasted < 2
    assert hub.unsubscribed


def test_an_update_is_sent_at_once_and_puts_the_keep_alive_off(timing: Any) -> None:
    timing(keepalive=0.3, lasting=0.8)
    hub = OneStreamHub()
    update = live.make_update(4, "<tr id='row-1'></tr>")

    async def scenario() -> list[tuple[float, bytes]]:
        events = streams._events(hub, ACCESS, since=3)  # type: ignore[arg-type]
        loop = asyncio.get_running_loop()
        # Offered once the stream waits: after its first event.
        loop.call_later(0.2, hub.offer, update)
        return await timed(events)

    sent = asyncio.run(scenario())

    events = [event for _at, event in sent]
    assert events[1] == update.event
    update_at = sent[1][0]
    assert 0.19 <= update_at < 0.6
    keep_alives = [at for at, event in sent if event == KEEP_ALIVE]
    # Quiet for 0.3 s from the update, not from the stream's start.
    assert keep_alives and keep_alives[0] - update_at >= 0.29


def test_a_stream_whose_access_ended_says_so_and_ends(timing: Any) -> None:
    timing(keepalive=10, lasting=60)
    hub = OneStreamHub()

    async def scenario() -> list[tuple[float, bytes]]:
        events = streams._events(hub, ACCESS, since=3)  # type: ignore[arg-type]
        asyncio.get_running_loop().call_later(0.05, hub.end_access)
        return await timed(events)

    sent = asyncio.run(scenario())

    assert sent[-1][1] == b"retry: 86400000\nevent: revoked\ndata: \n\n"
    assert sent[-1][0] < 5
    assert hub.unsubscribed
