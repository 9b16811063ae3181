"""Live updates: the hub that renders once per viewer, the stream and poll endpoints, and
the real thing: uvicorn in a subprocess, an SSE client, a tick through the workflow.

The subprocess tests need PostgreSQL (the server must see the test database, which on
SQLite lives in this process's memory); the Redis watcher also needs REDIS_URL. Both are
set in CI (`make test`).
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import AsyncIterator, Callable, Hashable, Iterator
from contextlib import AsyncExitStack
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx
import pytest
from asgiref.sync import sync_to_async
from django.conf import settings
from django.contrib.auth import HASH_SESSION_KEY, get_user_model
from django.db import connection
from django.test import Client, override_settings
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from releases import board, live, streams, workflow
from releases.models import AuditExport, AuditExportPart, Release, ShareLink
from tests.conftest import item
from tests.servers import (
    WebServer,
    cookie_header,
    serving_the_test_database,
    worker,
)

SERVER_APP_NAME = "deploycheck-live-test"


@pytest.fixture(autouse=True)
def fresh_hub(monkeypatch: pytest.MonkeyPatch) -> live.Hub:
    # The process-wide hub caches renders by release id; every test starts empty.
    hub = live.Hub(board.load_snapshot, board.render_update, streams.still_admitted)
    monkeypatch.setattr(streams, "hub", hub)
    return hub


class FakeRender:
    """Stands in for board.render_update, and with `load` for board.load_snapshot; counts
    calls and says what it rendered. The first `fail_times` loads or renders fail."""

    def __init__(
        self, revision: Callable[[int], int], fail_times: int = 0, failing: str = "render"
    ) -> None:
        self.revision = revision
        self.fail_times = fail_times
        self.failing = failing
        self.loads: list[int] = []
        self.calls: list[tuple[Hashable, str, int]] = []

    def fail(self, step: str) -> None:
        if self.fail_times and self.failing == step:
            self.fail_times -= 1
            raise RuntimeError(f"{step} exploded")

    def load(self, release_id: int) -> tuple[int, int]:
        self.loads.append(release_id)
        self.fail("load")
        return release_id, self.revision(release_id)

    def __call__(
        self, snapshot: object, viewer: Hashable, page: str, since: int
    ) -> tuple[int, str]:
        assert isinstance(snapshot, tuple)
        release_id, revision = snapshot
        self.calls.append((viewer, page, since))
        self.fail("render")
        return revision, f'<p id="r{release_id}" hx-swap-oob="true">{viewer} {since}→{revision}</p>'


def database_revision(release_id: int) -> int:
    try:
        return Release.objects.values_list("revision", flat=True).get(pk=release_id)
    finally:
        connection.close()


async def next_update(subscriber: live.Subscriber, timeout: float = 5) -> live.Update:
    async with asyncio.timeout(timeout):
        while True:
            await subscriber.wake.wait()
            update = subscriber.take()
            if update is not None:
                return update


# The watcher looks at the database once when it starts and then sleeps, so these tests
# drive it with notices and never write while it reads (SQLite test databases are shared
# in-memory ones, where a concurrent write fails instead of waiting).
quiet_watcher = override_settings(REDIS_URL="", LIVE_POLL_SECONDS=60)


# --- the hub, in this process ---------------------------------------------------------------


@quiet_watcher
def test_it_renders_once_per_viewer_and_sends_every_page_the_same_bytes(
    transactional_db: None, release: Release, users: dict[str, Any]
) -> None:
    before = release.revision
    workflow.tick(item(release, "Unit tests pass"), by=users["qa"])
    render = FakeRender(database_revision)
    hub = live.Hub(render.load, render)

    async def scenario() -> list[live.Update]:
        pages = [
            hub.subscribe(release.pk, viewer, "board", seen=before, current=before)
            for viewer in ("qa-lead", "qa-lead", "qa-lead", "support")
        ]
        hub.notice(release.pk, before + 1)
        return await asyncio.gather(*(next_update(page) for page in pages))

    updates = asyncio.run(scenario())

    assert sorted(render.calls) == [("qa-lead", "board", before), ("support", "board", before)]
    # Both renders read the one load of the revision.
    assert render.loads == [release.pk]
    assert updates[0] is updates[1] is updates[2]
    assert updates[0].revision == updates[3].revision == before + 1
    assert updates[0].event.startswith(f"event: update\nid: {before + 1}\ndata: ".encode())
    assert b"qa-lead" in updates[0].event and b"support" in updates[3].event


@quiet_watcher
def test_it_sends_a_page_that_connects_behind_its_catch_up_at_once(
    transactional_db: None, release: Release, users: dict[str, Any]
) -> None:
    before = release.revision
    workflow.tick(item(release, "Unit tests pass"), by=users["qa"])
    workflow.tick(item(release, "Merge everything"), by=users["backend"])
    render = FakeRender(database_revision)
    hub = live.Hub(render.load, render)

    async def scenario() -> live.Update:
        page = hub.subscribe(release.pk, "qa-lead", "board", seen=before, current=before + 2)
        return await next_update(page)

    update = asyncio.run(scenario())

    assert render.calls == [("qa-lead", "board", before)]
    assert update.revision == before + 2


def test_it_renders_once_for_many_simultaneous_polls() -> None:
    render = FakeRender(lambda release_id: 9)
    hub = live.Hub(render.load, render)

    async def scenario() -> list[live.Update]:
        return await asyncio.gather(
            *(hub.render(1, "viewer", "status", 4, at_least=9) for _ in range(20))
        )

    updates = asyncio.run(scenario())

    assert render.calls == [("viewer", "status", 4)]
    assert {update.revision for update in updates} == {9}


@quiet_watcher
@pytest.mark.parametrize("failing", ["load", "render"])
def test_it_keeps_pages_following_after_a_load_or_render_fails(
    transactional_db: None, release: Release, failing: str
) -> None:
    now = release.revision
    render = FakeRender(lambda release_id: now + 2, fail_times=1, failing=failing)
    hub = live.Hub(render.load, render)

    async def scenario() -> tuple[int, live.Update]:
        page = hub.subscribe(release.pk, "viewer", "board", seen=now, current=now)
        hub.notice(release.pk, now + 1)
        await asyncio.sleep(0.2)
        pending_after_failure = page.has()
        hub.notice(release.pk, now + 2)
        return pending_after_failure, await next_update(page)

    pending_after_failure, update = asyncio.run(scenario())

    assert pending_after_failure == now
    assert update.revision == now + 2
    # Tried again with the next revision, not in a loop.
    assert len(render.loads) == 2
    assert len(render.calls) == {"load": 1, "render": 2}[failing]


@quiet_watcher
def test_it_trusts_the_database_over_a_revision_it_never_had(
    transactional_db: None, release: Release
) -> None:
    now = release.revision
    truth = {"revision": now}
    render = FakeRender(lambda release_id: truth["revision"])
    hub = live.Hub(render.load, render)

    async def scenario() -> live.Update:
        page = hub.subscribe(release.pk, "viewer", "board", seen=now, current=now)
        # Say a message from another deployment on the same Redis names revision now+50.
        hub.notice(release.pk, now + 50)
        await asyncio.sleep(0.2)
        truth["revision"] = now + 1
        hub.notice(release.pk, now + 1)
        return await next_update(page)

    update = asyncio.run(scenario())

    assert update.revision == now + 1
    # One render finds the bogus revision is not there, one brings the real one; no loop.
    assert len(render.calls) == 2


@quiet_watcher
def test_it_stops_following_when_the_stream_closes(
    transactional_db: None, release: Release, fresh_hub: live.Hub
) -> None:
    access = streams.LiveAccess(release.pk, release.revision, "viewer", "board")

    async def scenario() -> tuple[bytes, int, int]:
        events = streams._events(fresh_hub, access, release.revision)
        first = await anext(events)
        following = fresh_hub.subscriber_count()
        await events.aclose()
        return first, following, fresh_hub.subscriber_count()

    first, following, after_close = asyncio.run(scenario())

    assert first == f"retry: 2000\nevent: revision\ndata: {release.revision}\n\n".encode()
    assert (following, after_close) == (1, 0)


def test_it_gives_every_line_of_html_its_own_data_field() -> None:
    event = live.sse_event("update", '<li id="item-1">\r\n  a\rb\n</li>', 7)

    assert (
        event
        == b'event: update\nid: 7\ndata: <li id="item-1">\ndata:   a\ndata: b\ndata: </li>\n\n'
    )


# --- the endpoints, through Django's test client ------------------------------------------


def poll_url(release: Release, since: int, page: str = "board") -> str:
    query = urlencode({"page": page, "since": since})
    return f"{reverse('releases:live-poll', args=[release.version])}?{query}"


def test_it_answers_a_poll_with_nothing_until_the_release_changes(
    transactional_db: None, release: Release, users: dict[str, Any], client: Client
) -> None:
    client.force_login(users["devops"])
    before = release.revision

    unchanged = client.get(poll_url(release, before))
    entry = workflow.tick(item(release, "Unit tests pass"), by=users["qa"])
    changed = client.get(poll_url(release, before))

    assert unchanged.status_code == 204
    assert unchanged["X-Revision"] == str(before)
    assert changed.status_code == 200
    assert changed["X-Revision"] == str(before + 1)
    assert "no-cache" in changed["Cache-Control"]
    body = changed.content.decode()
    assert f'id="item-{entry.pk}"' in body
    assert 'hx-swap-oob="true"' in body
    untouched = item(release, "Merge everything")
    assert f'id="item-{untouched.pk}"' not in body


def test_it_renders_the_status_page_read_only_as_the_page_itself_is(
    transactional_db: None, ready_release: Release, users: dict[str, Any], client: Client
) -> None:
    client.force_login(users["po"])
    approval_url = reverse("releases:confirm", args=[ready_release.version, "approve"])

    board = client.get(poll_url(ready_release, 0, page="board")).content.decode()
    status = client.get(poll_url(ready_release, 0, page="status")).content.decode()

    assert f'href="{approval_url}"' in board
    assert f'href="{approval_url}"' not in status
    assert 'id="contacts-panel"' in status


def test_it_sends_anonymous_visitors_to_log_in(
    transactional_db: None, release: Release, client: Client
) -> None:
    for name in ("releases:live", "releases:live-poll"):
        response = client.get(reverse(name, args=[release.version]))

        assert response.status_code == 302
        assert response["Location"].startswith(reverse("login"))


def test_it_hides_a_release_from_an_outsider(
    transactional_db: None, release: Release, users: dict[str, Any], client: Client
) -> None:
    client.force_login(users["outsider"])
    for name in ("releases:live", "releases:live-poll"):
        assert client.get(reverse(name, args=[release.version])).status_code == 404


def test_it_rejects_a_page_it_cannot_render(
    transactional_db: None, release: Release, users: dict[str, Any], client: Client
) -> None:
    client.force_login(users["qa"])

    response = client.get(poll_url(release, 0, page="admin"))

    assert response.status_code == 404


def share(release: Release, users: dict[str, Any], token: str, *, revoked: bool = False) -> None:
    ShareLink.objects.create(
        release=release,
        token_hash=ShareLink.hash_token(token),
        label="support desk",
        created_by=users["po"],
        revoked_at=release.created_at if revoked else None,
    )


def test_it_serves_a_shared_status_page_until_the_link_is_revoked(
    transactional_db: None, release: Release, users: dict[str, Any], client: Client
) -> None:
    share(release, users, "open-sesame")
    share(release, users, "closed-now", revoked=True)
    before = release.revision
    workflow.tick(item(release, "Unit tests pass"), by=users["qa"])

    live_link = client.get(
        reverse("releases:shared-live-poll", args=["open-sesame"]) + f"?since={before}"
    )
    revoked = [
        client.get(reverse(name, args=["closed-now"]))
        for name in ("releases:shared-live", "releases:shared-live-poll")
    ]
    unknown = client.get(reverse("releases:shared-live", args=["no-such-token"]))

    assert live_link.status_code == 200
    assert live_link["X-Revision"] == str(before + 1)
    assert 'id="progress-panel"' in live_link.content.decode()
    assert [response.status_code for response in revoked] == [404, 404]
    assert unknown.status_code == 404


# --- the real thing: uvicorn in a subprocess ------------------------------------------------


# "-2": two web processes (WEB_CONCURRENCY), each with its own hub: an update or a
# revocation must reach the pages of both.
@pytest.fixture(scope="module", params=["redis", "polling", "redis-2", "polling-2"])
def server(
    request: pytest.FixtureRequest,
    django_db_setup: None,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[WebServer]:
    mode, _dash, processes = request.param.partition("-")
    if mode == "redis" and not settings.REDIS_URL:
        pytest.fail("the Redis watcher needs REDIS_URL: run `make test`")
    with serving_the_test_database(
        tmp_path_factory.mktemp(f"live-{request.param}"),
        application_name=SERVER_APP_NAME,
        REDIS_URL=settings.REDIS_URL if mode == "redis" else "",
        LIVE_KEEPALIVE_SECONDS="1",
        WEB_CONCURRENCY=processes or "1",
    ) as running:
        yield running


@dataclass
class Event:
    event: str
    id: str | None
    data: str


async def read_events(response: httpx.Response) -> AsyncIterator[Event]:
    """A small SSE parser: comments (keep-alives) skipped, data lines joined."""
    fields: dict[str, str] = {}
    data: list[str] = []
    async for line in response.aiter_lines():
        if line == "":
            if data or fields:
                yield Event(fields.get("event", "message"), fields.get("id"), "\n".join(data))
            fields, data = {}, []
        elif not line.startswith(":"):
            name, _, value = line.partition(":")
            value = value.removeprefix(" ")
            if name == "data":
                data.append(value)
            else:
                fields[name] = value


def session_cookie(client: Client, user: Any) -> dict[str, str]:
    client.force_login(user)
    name = settings.SESSION_COOKIE_NAME
    return {name: client.cookies[name].value}


def closing(operation: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    # Runs in a worker thread; its connection would otherwise outlive the test.
    try:
        return operation(*args, **kwargs)
    finally:
        connection.close()


async def first_update(events: AsyncIterator[Event]) -> Event:
    async for event in events:
        if event.event == "update":
            return event
    raise AssertionError("the stream ended without an update")


@pytest.mark.live
def test_it_pushes_a_tick_to_an_open_board(
    server: WebServer,
    transactional_db: None,
    release: Release,
    users: dict[str, Any],
    client: Client,
) -> None:
    cookies = session_cookie(client, users["devops"])
    entry = item(release, "Unit tests pass")
    path = reverse("releases:live", args=[release.version])

    async def scenario() -> tuple[httpx.Response, Event, Event, float]:
        params = {"page": "board", "since": release.revision}
        async with (
            httpx.AsyncClient(base_url=server.url, cookies=cookies, timeout=10) as http,
            http.stream("GET", path, params=params) as response,
        ):
            events = read_events(response)
            hello = await anext(events)
            started = time.monotonic()
            await sync_to_async(closing)(workflow.tick, entry.pk, by=users["qa"])
            update = await asyncio.wait_for(first_update(events), 5)
            return response, hello, update, time.monotonic() - started

    response, hello, update, seconds = asyncio.run(scenario())

    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/event-stream")
    assert response.headers["cache-control"] == "no-cache"
    assert response.headers["x-accel-buffering"] == "no"
    assert (hello.event, hello.data) == ("revision", str(release.revision))
    assert update.id == str(release.revision + 1)
    assert f'id="item-{entry.pk}"' in update.data
    assert 'hx-swap-oob="true"' in update.data
    # Well inside the safety poll (5 s): Redis, or the 0.1 s revision query, woke it.
    assert seconds < 2, server.log.read_text()


@pytest.mark.live
def test_it_pushes_a_revoked_approval_to_a_shared_status_page(
    server: WebServer, transactional_db: None, ready_release: Release, users: dict[str, Any]
) -> None:
    share(ready_release, users, "for-support")
    workflow.approve(ready_release, by=users["po"])
    ready_release.refresh_from_db()
    path = reverse("releases:shared-live", args=["for-support"])

    async def scenario() -> Event:
        async with (
            httpx.AsyncClient(base_url=server.url, timeout=10) as http,
            http.stream("GET", path, params={"since": ready_release.revision}) as response,
        ):
            events = read_events(response)
            await anext(events)
            await sync_to_async(closing)(
                workflow.revoke_approval, ready_release, by=users["po"], reason="DNS is wrong"
            )
            return await asyncio.wait_for(first_update(events), 5)

    update = asyncio.run(scenario())

    assert update.id == str(ready_release.revision + 1)
    assert 'id="approval-banner"' in update.data
    assert "DNS is wrong" in update.data


def count_connections(application_name: str | None = None) -> int:
    query = "SELECT count(*) FROM pg_stat_activity WHERE datname = %s"
    params = [settings.DATABASES["default"]["NAME"]]
    if application_name:
        query += " AND application_name = %s"
        params.append(application_name)
    with connection.cursor() as cursor:
        cursor.execute(query, params)
        return int(cursor.fetchone()[0])


@pytest.mark.live
def test_it_holds_no_database_connection_while_streams_wait(
    server: WebServer,
    transactional_db: None,
    release: Release,
    users: dict[str, Any],
    client: Client,
) -> None:
    cookies = session_cookie(client, users["support"])
    path = reverse("releases:live", args=[release.version])

    async def scenario() -> tuple[list[str], int, int]:
        limits = httpx.Limits(max_connections=50)
        async with httpx.AsyncClient(
            base_url=server.url, cookies=cookies, timeout=10, limits=limits
        ) as http:
            # All at once, so that the server resolves access in several worker threads,
            # any of which could keep its connection.
            responses = await asyncio.gather(
                *(
                    http.send(
                        http.build_request("GET", path, params={"page": "status"}), stream=True
                    )
                    for _ in range(20)
                )
            )
            try:
                hellos = [(await anext(read_events(r))).event for r in responses]
                await asyncio.sleep(1)
                counts = await sync_to_async(closing)(
                    lambda: (count_connections(), count_connections(SERVER_APP_NAME))
                )
                return hellos, *counts
            finally:
                for response in responses:
                    await response.aclose()

    # Only the counting thread's connection is this process's.
    connection.close()
    hellos, total, held = asyncio.run(scenario())

    assert hellos == ["revision"] * 20
    # At most the watcher's short query of the moment.
    assert held <= 1
    assert total <= 3


async def revoked_within(events: AsyncIterator[Event], seconds: float) -> float:
    """How long until the stream says access ended (and then ends), sending nothing
    before that: not even the update of the change that ended it."""
    started = time.monotonic()
    async with asyncio.timeout(seconds):
        async for event in events:
            assert event.event == "revoked", f"sent {event.event!r} after access ended"
            took = time.monotonic() - started
            assert [e async for e in events] == []
            return took
    raise AssertionError("the stream ended without saying access was revoked")


def follow_until_revoked(
    server: WebServer, path: str, cookies: dict[str, str], since: int, revoke: Callable[[], Any]
) -> float:
    async def scenario() -> float:
        async with (
            httpx.AsyncClient(base_url=server.url, cookies=cookies, timeout=10) as http,
            http.stream("GET", path, params={"page": "board", "since": since}) as response,
        ):
            assert response.status_code == 200
            events = read_events(response)
            await anext(events)
            started = time.monotonic()
            await sync_to_async(closing)(revoke)
            await revoked_within(events, 5)
            return time.monotonic() - started

    return asyncio.run(scenario())


@pytest.mark.live
def test_it_ends_the_open_stream_of_a_person_removed_from_the_release(
    server: WebServer,
    transactional_db: None,
    release: Release,
    users: dict[str, Any],
    client: Client,
) -> None:
    path = reverse("releases:live", args=[release.version])
    cookies = session_cookie(client, users["qa"])

    seconds = follow_until_revoked(
        server,
        path,
        cookies,
        release.revision,
        lambda: workflow.unassign(release, role="qa", user=users["qa"], by=users["admin"]),
    )

    # Within the second the issue asks for, with room for a loaded machine.
    assert seconds < 3, server.log.read_text()


@pytest.mark.live
def test_it_ends_the_open_stream_of_a_revoked_share_link(
    server: WebServer, transactional_db: None, release: Release, users: dict[str, Any]
) -> None:
    share(release, users, "for-support")
    link = ShareLink.objects.get()
    path = reverse("releases:shared-live", args=["for-support"])

    follow_until_revoked(
        server,
        path,
        {},
        release.revision,
        lambda: workflow.revoke_share_link(release, link, by=users["admin"]),
    )

    assert client_refused(server, path)


def client_refused(server: WebServer, path: str) -> bool:
    return httpx.get(f"{server.url}{path}", timeout=5).status_code == 404


@pytest.mark.live
def test_it_ends_the_open_stream_of_a_deactivated_account(
    server: WebServer,
    transactional_db: None,
    release: Release,
    users: dict[str, Any],
    client: Client,
) -> None:
    path = reverse("releases:live", args=[release.version])
    cookies = session_cookie(client, users["devops"])

    def deactivate() -> None:
        users["devops"].is_active = False
        users["devops"].save()

    follow_until_revoked(server, path, cookies, release.revision, deactivate)

    event = release.audit_events.get(action="account.changed")
    assert (event.target, event.before["is_active"], event.after["is_active"]) == (
        "devops",
        True,
        False,
    )


# A session that ends gives no release a new revision: the hub's periodic access check
# finds it, so the bound is one check interval and the time to answer it.
SESSION_END_BOUND = live.ACCESS_CHECK_SECONDS + 2


@pytest.mark.live
def test_it_ends_the_open_stream_of_a_person_who_logs_out_in_another_tab(
    server: WebServer,
    transactional_db: None,
    release: Release,
    users: dict[str, Any],
    client: Client,
) -> None:
    path = reverse("releases:live", args=[release.version])
    cookies = session_cookie(client, users["qa"])

    def log_out_elsewhere() -> None:
        tab = Client()
        tab.cookies[settings.SESSION_COOKIE_NAME] = cookies[settings.SESSION_COOKIE_NAME]
        assert tab.post(reverse("logout")).status_code == 302

    seconds = follow_until_revoked(server, path, cookies, release.revision, log_out_elsewhere)

    assert seconds < SESSION_END_BOUND, server.log.read_text()
    # And the page's reconnect, were it to try, is sent to log in.
    again = httpx.get(f"{server.url}{path}", cookies=cookies, timeout=5)
    assert again.status_code == 302
    assert again.headers["location"].startswith(reverse("login"))


@pytest.mark.live
def test_it_ends_the_open_stream_of_a_person_whose_password_changes(
    server: WebServer,
    transactional_db: None,
    release: Release,
    users: dict[str, Any],
    client: Client,
) -> None:
    path = reverse("releases:live", args=[release.version])
    cookies = session_cookie(client, users["qa"])

    def change_password() -> None:
        # As an administrator or a password reset does: every session of theirs ends.
        users["qa"].set_password("a brand new one")
        users["qa"].save()

    seconds = follow_until_revoked(server, path, cookies, release.revision, change_password)

    assert seconds < SESSION_END_BOUND, server.log.read_text()


@pytest.mark.live
def test_it_ends_the_open_stream_of_a_session_that_expires(
    server: WebServer,
    transactional_db: None,
    release: Release,
    users: dict[str, Any],
    client: Client,
) -> None:
    path = reverse("releases:live", args=[release.version])
    cookies = session_cookie(client, users["qa"])
    expires = timezone.now() + timedelta(seconds=3)
    session = client.session
    session.set_expiry(expires)
    session.save()

    def until_it_expires() -> None:
        time.sleep(max(0.0, (expires - timezone.now()).total_seconds()))

    follow_until_revoked(server, path, cookies, release.revision, until_it_expires)

    late = timezone.now() - expires
    assert late < timedelta(seconds=SESSION_END_BOUND), server.log.read_text()


@pytest.mark.live
def test_it_ends_the_open_stream_of_an_account_deactivated_behind_the_releases_back(
    server: WebServer,
    transactional_db: None,
    release: Release,
    users: dict[str, Any],
    client: Client,
) -> None:
    path = reverse("releases:live", args=[release.version])
    cookies = session_cookie(client, users["devops"])

    def deactivate_in_bulk() -> None:
        # A queryset update sends no signal: no audit event, no new revision.
        get_user_model().objects.filter(pk=users["devops"].pk).update(is_active=False)

    seconds = follow_until_revoked(server, path, cookies, release.revision, deactivate_in_bulk)

    assert seconds < SESSION_END_BOUND, server.log.read_text()
    assert Release.objects.get(pk=release.pk).revision == release.revision


@pytest.mark.live
def test_it_keeps_the_streams_of_people_who_still_may_follow(
    server: WebServer,
    transactional_db: None,
    release: Release,
    users: dict[str, Any],
    client: Client,
) -> None:
    path = reverse("releases:live", args=[release.version])
    cookies = session_cookie(client, users["qa"])

    async def scenario() -> Event:
        async with (
            httpx.AsyncClient(base_url=server.url, cookies=cookies, timeout=10) as http,
            http.stream(
                "GET", path, params={"page": "board", "since": release.revision}
            ) as response,
        ):
            events = read_events(response)
            await anext(events)
            # Past a periodic access check too: a session that stands keeps its stream.
            await asyncio.sleep(live.ACCESS_CHECK_SECONDS * 1.5)
            await sync_to_async(closing)(
                workflow.unassign, release, role="devops", user=users["devops"], by=users["admin"]
            )
            return await asyncio.wait_for(first_update(events), 5)

    update = asyncio.run(scenario())

    assert update.event == "update"


def let_in(
    release: Release, user: Any, roles: set[str], *, is_staff: bool = False
) -> tuple[streams.PersonHolder, Client]:
    """A person as a page of theirs was let in, with a session of their own (and the
    client holding it)."""
    client = Client()
    client.force_login(user)
    session = client.session
    holder = streams.PersonHolder(
        release.pk,
        user.pk,
        frozenset(roles),
        is_staff,
        session.session_key or "",
        session[HASH_SESSION_KEY],
    )
    return holder, client


def test_it_admits_only_those_who_still_hold_what_let_them_in(
    release: Release, users: dict[str, Any]
) -> None:
    share(release, users, "kept")
    share(release, users, "gone", revoked=True)
    kept, gone = ShareLink.objects.order_by("pk")
    qa, _ = let_in(release, users["qa"], {"qa"})
    admin, _ = let_in(release, users["admin"], set(), is_staff=True)
    roles_changed, _ = let_in(release, users["support"], {"qa"})
    outsider, _ = let_in(release, users["outsider"], set())
    logged_out, client = let_in(release, users["po"], {"po"})
    client.logout()
    expired, client = let_in(release, users["frontend"], {"frontend"})
    session = client.session
    session.set_expiry(timezone.now() - timedelta(seconds=1))
    session.save()
    password_changed, _ = let_in(release, users["devops"], {"devops"})
    users["devops"].set_password("another one")
    users["devops"].save()
    deactivated, _ = let_in(release, users["backend"], {"backend"})
    get_user_model().objects.filter(pk=users["backend"].pk).update(is_active=False)
    holders = frozenset(
        {
            qa,
            admin,
            roles_changed,
            outsider,
            logged_out,
            expired,
            password_changed,
            deactivated,
            streams.LinkHolder(release.pk, kept.pk),
            streams.LinkHolder(release.pk, gone.pk),
        }
    )

    admitted = streams.still_admitted(holders)

    assert admitted == {qa, admin, streams.LinkHolder(release.pk, kept.pk)}


def test_it_asks_who_may_still_follow_in_four_queries_however_many_follow(
    release: Release, small_template: Any, users: dict[str, Any]
) -> None:
    other = workflow.create_release(
        small_template, version="v2.0.0", title="Two", by=users["admin"]
    )
    workflow.assign(other, role="qa", user=users["qa"], by=users["admin"])
    for token in ("one", "two"):
        share(release, users, token)
    share(other, users, "three")
    holders = frozenset(
        {let_in(release, users[name], {name})[0] for name in ("qa", "po", "devops", "support")}
        | {
            let_in(other, users["qa"], {"qa"})[0],
            let_in(other, users["admin"], set(), is_staff=True)[0],
        }
        | {streams.LinkHolder(link.release_id, link.pk) for link in ShareLink.objects.all()}
    )

    with CaptureQueriesContext(connection) as captured:
        admitted = streams.still_admitted(holders)

    assert admitted == holders
    assert len(captured.captured_queries) == 4


@quiet_watcher
def test_it_checks_every_open_page_every_few_seconds_in_one_batch(
    transactional_db: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(live, "ACCESS_CHECK_SECONDS", 0.05)
    asked: list[frozenset[Hashable]] = []

    def admit(holders: frozenset[Hashable]) -> frozenset[Hashable]:
        asked.append(holders)
        return holders - {"gone"}

    render = FakeRender(lambda release_id: 1)
    hub = live.Hub(render.load, render, admit)

    async def scenario() -> list[bool]:
        pages = [
            hub.subscribe(release_id, "viewer", "board", seen=1, current=1, holder=holder)
            for release_id, holder in [(1, "kept"), (1, "gone"), (2, "kept"), (2, "other")]
        ]
        async with asyncio.timeout(5):
            await pages[1].wake.wait()
        return [page.closed for page in pages]

    closed = asyncio.run(scenario())

    # Without a revision of either release: the check asked once for every page of both.
    assert closed == [False, True, False, False]
    assert asked[0] == {"kept", "gone", "other"}


@pytest.mark.live
def test_it_pushes_a_tick_to_every_open_page_whichever_process_serves_it(
    server: WebServer,
    transactional_db: None,
    release: Release,
    users: dict[str, Any],
    client: Client,
) -> None:
    cookies = session_cookie(client, users["devops"])
    entry = item(release, "Unit tests pass")
    path = reverse("releases:live", args=[release.version])
    pages = 12

    async def scenario() -> list[Event]:
        limits = httpx.Limits(max_connections=pages, max_keepalive_connections=0)
        async with (
            httpx.AsyncClient(
                base_url=server.url, cookies=cookies, timeout=10, limits=limits
            ) as http,
            AsyncExitStack() as stack,
        ):
            streams_open = [
                read_events(
                    await stack.enter_async_context(
                        http.stream(
                            "GET", path, params={"page": "board", "since": release.revision}
                        )
                    )
                )
                for _ in range(pages)
            ]
            for events in streams_open:
                await anext(events)
            await sync_to_async(closing)(workflow.tick, entry.pk, by=users["qa"])
            return await asyncio.wait_for(
                asyncio.gather(*(first_update(events) for events in streams_open)), 5
            )

    updates = asyncio.run(scenario())

    assert [u.id for u in updates] == [str(release.revision + 1)] * pages


_PAGE_REVISION = re.compile(r'id="live"[^>]*data-revision="(\d+)"', re.S)


def test_no_viewer_gets_a_page_older_than_the_revision_it_was_told_about(
    server: WebServer, transactional_db: None, release: Release, users: dict[str, Any]
) -> None:
    # Every kind of viewer, each page a process may have cached: a new connection per
    # request, so that with two processes both serve every viewer.
    token = workflow.create_share_link(release, label="support desk", by=users["admin"])
    version = release.version
    viewers = [
        # A client each: logging one client in again would end the previous session.
        (session_cookie(Client(), users[who]), path)
        for who, path in [
            ("qa", f"/releases/{version}/"),
            ("qa", f"/releases/{version}/?show=mine"),
            ("devops", f"/releases/{version}/"),
            ("po", f"/releases/{version}/"),
            ("admin", f"/releases/{version}/"),
            ("support", f"/releases/{version}/status/"),
        ]
    ]
    viewers.append(({}, f"/s/{token}/"))
    entry = item(release, "Unit tests pass")
    limits = httpx.Limits(max_keepalive_connections=0)

    def revisions_seen(http: httpx.Client) -> list[int]:
        seen = []
        for cookies, path in viewers:
            for _ in range(3):
                headers = {"Cookie": cookie_header(cookies)} if cookies else {}
                response = http.get(path, headers=headers)
                assert response.status_code == 200, (path, response.status_code)
                match = _PAGE_REVISION.search(response.text)
                assert match is not None, path
                seen.append(int(match.group(1)))
        return seen

    with httpx.Client(base_url=server.url, timeout=10, limits=limits) as http:
        revisions_seen(http)  # every process now holds pages of the current revision
        for _round in range(4):
            operation = (
                workflow.untick if item(release, entry.text).state == "done" else workflow.tick
            )
            told = operation(entry.pk, by=users["qa"]).revision
            assert min(revisions_seen(http)) >= told


def test_it_serves_the_audit_csv_a_worker_writes_as_it_streams_files(
    server: WebServer,
    transactional_db: None,
    release: Release,
    users: dict[str, Any],
    tmp_path: Path,
) -> None:
    workflow.tick(item(release, "Unit tests pass"), by=users["qa"])
    cookie = cookie_header(session_cookie(Client(), users["admin"]))

    with worker(server.env, tmp_path):
        response = httpx.get(
            f"{server.url}/releases/{release.version}/audit.csv",
            headers={"Cookie": cookie, "Accept-Language": "es"},
            timeout=30,
        )

    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/csv")
    lines = response.text.splitlines()
    assert len(lines) > 2
    # Written by the worker in the language of the person who asked.
    assert lines[0].startswith("\ufeffCuándo,")
    assert any("Unit tests pass" in line for line in lines)
    # Each part is deleted once sent, and the export once the download ends.
    assert not AuditExport.objects.exists()
    assert not AuditExportPart.objects.exists()


def test_an_import_is_previewed_and_confirmed_through_the_server(
    server: WebServer, transactional_db: None, users: dict[str, Any]
) -> None:
    from releases.checklists import DEFAULT_CHECKLIST
    from releases.models import ChecklistTemplate

    session = session_cookie(Client(), users["admin"])
    page = httpx.get(f"{server.url}/templates/import/", headers={"Cookie": cookie_header(session)})
    page.raise_for_status()
    # The server marks its cookies Secure, which a client on plain http keeps to itself.
    csrf = page.cookies["csrftoken"]
    headers = {"Cookie": cookie_header({**session, "csrftoken": csrf}), "X-CSRFToken": csrf,
               "Accept-Language": "en", "Referer": server.url}  # fmt: skip
    with httpx.Client(base_url=server.url, headers=headers, timeout=30) as http:
        preview = http.post(
            "/templates/import/",
            data={"name": "Go-live", "default_owner": "qa"},
            files={"file": ("seed.md", DEFAULT_CHECKLIST.read_bytes(), "text/markdown")},
        )
        assert preview.status_code == 200, preview.text[:3000]
        assert "66 items" in preview.text
        signed = re.search(r'name="preview" value="([^"]+)"', preview.text)
        assert signed is not None, preview.text
        confirmed = http.post(
            "/templates/import/", data={"preview": signed.group(1), "name": "Go-live"}
        )
    assert confirmed.status_code == 302
    assert ChecklistTemplate.objects.get(name="Go-live").items.count() == 66
