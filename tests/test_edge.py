"""What reaches Django at all: bodies read and limited before any view, WebSocket upgrades
and odd methods refused. First the edge on its own, then the real server on a socket, as
a hostile client would meet it."""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis
from django.conf import settings
from django.test import Client

from deploycheck import edge
from releases.models import Release
from tests.servers import (
    WebServer,
    cookie_header,
    serving_the_test_database,
    worker,
)

# --- the edge on its own ---------------------------------------------------------------


class Recorder:
    """An application that records what it was given, answering 200."""

    def __init__(self) -> None:
        self.called = False
        self.received: list[dict[str, Any]] = []

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        self.called = True
        self.received.append(await receive())
        self.received.append(await receive())
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})


def serve(
    messages: list[dict[str, Any]],
    *,
    headers: list[tuple[bytes, bytes]] | None = None,
    path: str = "/templates/import/",
    method: str = "POST",
) -> tuple[Recorder, list[dict[str, Any]], int]:
    """One request through the edge: the application, what went out, and how many
    messages the edge asked of the client. After `messages` the client sends nothing."""
    application = Recorder()
    sent: list[dict[str, Any]] = []
    asked = 0

    async def receive() -> dict[str, Any]:
        nonlocal asked
        asked += 1
        if asked <= len(messages):
            return messages[asked - 1]
        await asyncio.Event().wait()
        raise AssertionError("unreachable")

    async def send(message: Any) -> None:
        sent.append(message)

    scope = {"type": "http", "method": method, "path": path, "headers": headers or []}

    async def scenario() -> None:
        async with asyncio.timeout(5):
            await edge.Edge(application)(scope, receive, send)

    asyncio.run(scenario())
    return application, sent, asked


def chunk(body: bytes, more: bool = True) -> dict[str, Any]:
    return {"type": "http.request", "body": body, "more_body": more}


def status_of(sent: list[dict[str, Any]]) -> int:
    return int(sent[0]["status"])


def headers_of(sent: list[dict[str, Any]]) -> dict[bytes, bytes]:
    return dict(sent[0]["headers"])


def text_of(sent: list[dict[str, Any]]) -> str:
    body: bytes = sent[1]["body"]
    assert int(headers_of(sent)[b"content-length"]) == len(body)
    return body.decode()


TEN_MB = [(b"content-length", str(10 * 1024 * 1024).encode())]


def test_the_application_gets_the_body_whole_then_the_clients_own_messages() -> None:
    disconnect = {"type": "http.disconnect"}

    application, sent, _asked = serve([chunk(b"ab"), chunk(b"cd", more=False), disconnect])

    assert application.received == [
        {"type": "http.request", "body": b"abcd", "more_body": False},
        disconnect,
    ]
    assert status_of(sent) == 200


def test_a_chunked_body_is_cut_as_it_passes_the_limit(settings: Any) -> None:
    settings.MAX_REQUEST_BYTES = 10
    pieces = [chunk(b"123456"), chunk(b"789012"), chunk(b"never read")]

    application, sent, asked = serve(pieces)

    assert not application.called
    assert status_of(sent) == 413
    assert asked == 2
    assert (b"connection", b"close") in sent[0]["headers"]


def test_a_body_that_stops_coming_is_let_go(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(edge, "BODY_RECEIVE_SECONDS", 0.2)

    started = time.monotonic()
    application, sent, _asked = serve([chunk(b"the start and then nothing")])

    assert not application.called
    assert status_of(sent) == 408
    assert time.monotonic() - started < 2
    assert "no se guardó nada de ella. Envíala de nuevo." in text_of(sent)


def test_a_body_announced_too_large_is_never_asked_for(settings: Any) -> None:
    settings.MAX_REQUEST_BYTES = 10

    application, sent, asked = serve([chunk(b"x" * 11)], headers=[(b"content-length", b"11")])

    assert (application.called, status_of(sent), asked) == (False, 413, 0)


def test_an_upload_too_large_is_told_so_in_spanish_by_default() -> None:
    _application, sent, _asked = serve([], headers=TEN_MB)

    assert status_of(sent) == 413
    assert headers_of(sent)[b"content-type"] == b"text/html; charset=utf-8"
    assert headers_of(sent)[b"content-language"] == b"es"
    page = text_of(sent)
    assert '<html lang="es">' in page
    assert "Lo enviado ocupa más de 2,0\xa0MB, lo máximo que acepta este servidor" in page


@pytest.mark.parametrize(
    ("asked", "language"),
    [
        ([(b"accept-language", b"en-GB,en;q=0.9")], "en"),
        ([(b"accept-language", b"fr, es;q=0.5")], "es"),
        # The switcher's cookie beats the browser's languages, as on every page.
        ([(b"accept-language", b"es"), (b"cookie", b"csrftoken=x; django_language=en")], "en"),
        ([(b"accept-language", b"en"), (b"cookie", b"django_language=es")], "es"),
    ],
)
def test_a_refusal_speaks_the_language_the_pages_would(
    asked: list[tuple[bytes, bytes]], language: str
) -> None:
    _application, sent, _asked = serve([], headers=TEN_MB + asked)

    assert headers_of(sent)[b"content-language"] == language.encode()
    said = {
        "en": "What was sent is larger than 2.0\xa0MB",
        "es": "Lo enviado ocupa más de 2,0\xa0MB",
    }
    assert said[language] in text_of(sent)


def test_the_pipeline_api_is_refused_in_its_own_json() -> None:
    _application, sent, _asked = serve([], headers=TEN_MB, path="/api/releases/v1.2.3/evidence")

    assert status_of(sent) == 413
    assert headers_of(sent)[b"content-type"] == b"application/json"
    assert json.loads(text_of(sent)) == {
        "error": "Lo enviado ocupa más de 2,0\xa0MB, lo máximo que acepta este servidor, así "
        "que no se leyó ni se guardó nada."
    }


def test_a_method_no_view_serves_is_told_which_ones_are() -> None:
    application, sent, asked = serve([], method="PROPFIND", headers=[(b"accept-language", b"en")])

    assert (application.called, status_of(sent), asked) == (False, 405, 0)
    assert headers_of(sent)[b"allow"] == b"DELETE, GET, HEAD, OPTIONS, PATCH, POST, PUT"
    assert "This server answers only these methods: DELETE, GET, HEAD" in text_of(sent)


def test_a_websocket_upgrade_gets_a_page_where_the_server_can_send_one() -> None:
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "websocket.connect"}

    async def send(message: Any) -> None:
        sent.append(message)

    async def upgrade(extensions: dict[str, Any]) -> None:
        scope = {"type": "websocket", "path": "/releases/v1.2.3/live/",
                 "headers": [(b"accept-language", b"en")], "extensions": extensions}  # fmt: skip
        await edge.Edge(Recorder())(scope, receive, send)

    asyncio.run(upgrade({"websocket.http.response": {}}))
    page = [message["type"] for message in sent]
    asyncio.run(upgrade({}))

    assert page == ["websocket.http.response.start", "websocket.http.response.body"]
    assert status_of(sent) == 403
    assert "This server takes no WebSocket connections." in text_of(sent)
    assert sent[2] == {"type": "websocket.close", "code": 1008}


# --- the real server, on a socket --------------------------------------------------------

SERVER_APP_NAME = "deploycheck-edge-test"


@pytest.fixture(scope="module")
def server(django_db_setup: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[WebServer]:
    # Fewer threads than the slow uploads below: a body being read must hold none.
    with serving_the_test_database(
        tmp_path_factory.mktemp("edge"), application_name=SERVER_APP_NAME, WEB_THREADS="2"
    ) as running:
        yield running


def connect(server: WebServer) -> socket.socket:
    host, port = server.url.removeprefix("http://").split(":")
    client = socket.create_connection((host, int(port)), timeout=10)
    return client


def head(client: socket.socket) -> bytes:
    """The response's status line and headers."""
    received = b""
    while b"\r\n\r\n" not in received:
        piece = client.recv(4096)
        if not piece:
            break
        received += piece
    return received.partition(b"\r\n\r\n")[0]


def status(response_head: bytes) -> int:
    return int(response_head.split(b" ", 2)[1])


# The tests on the server ask for the database, so that pytest-django sets it up for the
# server to use even when they run alone.
@pytest.mark.django_db
def test_a_body_announced_too_large_is_refused_before_it_is_read(server: WebServer) -> None:
    with connect(server) as client:
        started = time.monotonic()
        client.sendall(
            b"POST /templates/import/ HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            b"Content-Type: multipart/form-data; boundary=x\r\n"
            b"Content-Length: 300000000\r\n\r\n"
        )
        # Not a byte of the body sent: the answer cannot have waited for it.
        answer = head(client)
        took = time.monotonic() - started
        # And the server is done with this connection after its page, rather than
        # reading on (then recv would time out).
        client.settimeout(5)
        while client.recv(65536):
            pass

    assert status(answer) == 413
    assert b"content-type: text/html; charset=utf-8" in answer.lower()
    assert took < 3


@pytest.mark.django_db
@pytest.mark.parametrize(
    "path",
    [
        # Served by Django's ASGI handler when not an upgrade (deploycheck.asgi)…
        "/releases/v1.2.3/live/",
        "/releases/v1.2.3/live/poll/",
        "/s/token/live/",
        # …and by its WSGI handler.
        "/releases/v1.2.3/",
        "/healthz",
    ],
)
def test_a_websocket_upgrade_is_refused_not_an_error(server: WebServer, path: str) -> None:
    with connect(server) as client:
        client.sendall(
            f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
            "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
            "Sec-WebSocket-Version: 13\r\n\r\n".encode()
        )
        answer = head(client)

    assert status(answer) == 403, answer
    assert b"content-language: es" in answer.lower()


@pytest.mark.django_db
@pytest.mark.parametrize(
    "request_line",
    ["TRACE / HTTP/1.1", "PROPFIND /healthz HTTP/1.1", "CONNECT 127.0.0.1:80 HTTP/1.1"],
)
def test_a_method_no_view_serves_gets_a_4xx(server: WebServer, request_line: str) -> None:
    with connect(server) as client:
        client.sendall(f"{request_line}\r\nHost: 127.0.0.1\r\n\r\n".encode())
        answer = head(client)

    assert 400 <= status(answer) < 500, answer


def test_logged_in_pages_share_the_process_redis_connections(
    server: WebServer, transactional_db: None, users: dict[str, Any]
) -> None:
    if not server.env.get("REDIS_URL"):
        pytest.fail("sessions are read through Redis only when there is one: run `make test`")
    client = Client()
    client.force_login(users["admin"])
    cookie = cookie_header(
        {settings.SESSION_COOKIE_NAME: client.cookies[settings.SESSION_COOKIE_NAME].value}
    )
    stats = redis.Redis.from_url(server.env["REDIS_URL"])

    def connections_received() -> int:
        return int(stats.info("stats")["total_connections_received"])

    with httpx.Client(headers={"Cookie": cookie}) as browser:
        # The first requests may open what the process keeps.
        for _ in range(4):
            browser.get(f"{server.url}/")
        before = connections_received()
        answers = {browser.get(f"{server.url}/").status_code for _ in range(40)}
        opened = connections_received() - before

    assert answers == {200}
    assert opened < 5


def test_slow_anonymous_uploads_do_not_hold_up_the_audit_csv(
    server: WebServer,
    transactional_db: None,
    release: Release,
    users: dict[str, Any],
    tmp_path: Path,
) -> None:
    stop = threading.Event()
    uploads = []
    for _ in range(8):
        upload = connect(server)
        upload.sendall(
            b"POST /templates/import/ HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            b"Content-Type: multipart/form-data; boundary=x\r\n"
            b"Content-Length: 1000000\r\n\r\n--x\r\n"
        )
        uploads.append(upload)

    def trickle() -> None:
        # A byte each now and then: slow, never silent for long.
        while not stop.wait(0.5):
            for upload in uploads:
                upload.sendall(b"a")

    trickling = threading.Thread(target=trickle)
    trickling.start()
    client = Client()
    client.force_login(users["admin"])
    cookie = cookie_header(
        {settings.SESSION_COOKIE_NAME: client.cookies[settings.SESSION_COOKIE_NAME].value}
    )
    try:
        # The worker that writes the CSV; its start-up is not the server's to answer for.
        with worker(server.env, tmp_path):
            time.sleep(1)
            started = time.monotonic()
            csv = httpx.get(
                f"{server.url}/releases/{release.version}/audit.csv",
                headers={"Cookie": cookie},
                timeout=10,
            )
            took = time.monotonic() - started
    finally:
        stop.set()
        trickling.join()
        for upload in uploads:
            upload.close()

    assert csv.status_code == 200
    assert "release.created" in csv.text
    assert took < 5
