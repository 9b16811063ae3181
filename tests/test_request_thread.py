"""The ASGI application's lanes: pages take turns, long work has its own, and the health
check, static files and sign-in never wait for either."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Iterator, Mapping

import pytest
from asgiref.testing import ApplicationCommunicator
from django.core.signals import request_finished, request_started
from django.http import HttpRequest, HttpResponse, StreamingHttpResponse
from django.test import override_settings
from django.urls import path

from deploycheck.request_thread import LONG, PAGES, UNQUEUED, RequestThreadHandler, lane, lane_of

# Long enough for a request that should wait to have overtaken one that should not.
SETTLE_SECONDS = 0.3


class Gate:
    """A view that holds its thread until the test opens it, saying when it started."""

    def __init__(self) -> None:
        self.started = threading.Event()
        self.opened = threading.Event()

    def __call__(self, request: HttpRequest) -> HttpResponse:
        self.started.set()
        assert self.opened.wait(10), "the test never let the view finish"
        return HttpResponse("done")


first_page, second_page, long_work = Gate(), Gate(), Gate()


@lane(UNQUEUED)
def quick(request: HttpRequest) -> HttpResponse:
    return HttpResponse("ok")


async def stream(request: HttpRequest) -> StreamingHttpResponse:
    async def forever() -> AsyncIterator[bytes]:
        yield b"open\n"
        await asyncio.Event().wait()

    return StreamingHttpResponse(forever(), content_type="text/event-stream")


class Witness:
    """Which thread the view and each of the request's signals ran on, in order."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, int]] = []

    def view(self, request: HttpRequest) -> HttpResponse:
        self.seen.append(("view", threading.get_ident()))
        return HttpResponse("seen")

    async def stream(self, request: HttpRequest) -> StreamingHttpResponse:
        async def two_parts() -> AsyncIterator[bytes]:
            yield b"one\n"
            self.seen.append(("streamed", threading.get_ident()))
            yield b"two\n"

        return StreamingHttpResponse(two_parts(), content_type="text/plain")

    def started(self, **kwargs: object) -> None:
        self.seen.append(("started", threading.get_ident()))

    def finished(self, **kwargs: object) -> None:
        self.seen.append(("finished", threading.get_ident()))


witness = Witness()


urlpatterns = [
    path("first/", first_page),
    path("second/", second_page),
    path("long/", lane(LONG)(long_work)),
    path("quick/", quick),
    path("stream/", stream),
    path("witnessed/", witness.view),
    path("witnessed-stream/", witness.stream),
]


def scope(path_info: str) -> dict[str, object]:
    return {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "GET",
            "scheme": "http", "path": path_info, "raw_path": path_info.encode(),
            "query_string": b"", "root_path": "", "headers": [(b"host", b"testserver")],
            "client": ("127.0.0.1", 5000), "server": ("testserver", 80)}  # fmt: skip


async def start(application: RequestThreadHandler, path_info: str) -> ApplicationCommunicator:
    request = ApplicationCommunicator(application, scope(path_info))
    await request.send_input({"type": "http.request", "body": b""})
    return request


async def body_of(request: ApplicationCommunicator) -> bytes:
    start = await request.receive_output(10)
    assert start["type"] == "http.response.start" and start["status"] == 200, start
    body = b""
    while True:
        part = await request.receive_output(10)
        body += part.get("body", b"")
        if not part.get("more_body"):
            return body


async def wait_for(event: threading.Event) -> None:
    assert await asyncio.to_thread(event.wait, 10), "the view never started"


@pytest.fixture
def gates() -> None:
    for gate in (first_page, second_page, long_work):
        gate.started.clear()
        gate.opened.clear()


@pytest.mark.parametrize(
    ("path_info", "expected"),
    [
        ("/healthz", UNQUEUED),
        ("/static/css/app.css", UNQUEUED),
        ("/accounts/login/", UNQUEUED),
        ("/releases/v1.0.0/", PAGES),
        ("/releases/v1.0.0/status/", PAGES),
        ("/templates/import/", LONG),
        ("/releases/new/", LONG),
        ("/releases/v1.0.0/audit.csv", LONG),
        ("/no/such/page/", PAGES),
    ],
)
def test_each_view_has_its_lane(path_info: str, expected: str) -> None:
    assert lane_of(path_info) == expected


@pytest.mark.usefixtures("gates")
@override_settings(ROOT_URLCONF=__name__, PAGE_THREADS=1, LONG_PROCESSES=1)
def test_a_page_waits_its_turn_but_neither_long_work_nor_the_health_check_does() -> None:
    asyncio.run(_a_page_waits_its_turn())


async def _a_page_waits_its_turn() -> None:
    application = RequestThreadHandler(hands_on_long_work=False)
    first = await start(application, "/first/")
    await wait_for(first_page.started)
    second = await start(application, "/second/")
    long = await start(application, "/long/")
    # Long work has a lane of its own; the quick view answers while both lanes are full.
    await wait_for(long_work.started)
    assert await body_of(await start(application, "/quick/")) == b"ok"
    await asyncio.sleep(SETTLE_SECONDS)
    assert not second_page.started.is_set(), "a second page ran beside the first"

    first_page.opened.set()
    assert await body_of(first) == b"done"
    await wait_for(second_page.started)
    second_page.opened.set()
    long_work.opened.set()
    assert await body_of(second) == b"done"
    assert await body_of(long) == b"done"


@pytest.mark.usefixtures("gates")
@override_settings(ROOT_URLCONF=__name__, PAGE_THREADS=1)
def test_an_open_stream_does_not_keep_the_turn() -> None:
    asyncio.run(_an_open_stream_does_not_keep_the_turn())


async def _an_open_stream_does_not_keep_the_turn() -> None:
    application = RequestThreadHandler(hands_on_long_work=False)
    live = await start(application, "/stream/")
    opened = await live.receive_output(10)
    assert opened["type"] == "http.response.start"
    assert (await live.receive_output(10))["body"] == b"open\n"
    # The stream stays open; the next page still gets its turn.
    first_page.opened.set()
    assert await body_of(await start(application, "/first/")) == b"done"
    await live.send_input({"type": "http.disconnect"})
    live.future.cancel()


@pytest.fixture
def witnessed() -> Iterator[Witness]:
    witness.seen.clear()
    request_started.connect(witness.started)
    request_finished.connect(witness.finished)
    yield witness
    request_started.disconnect(witness.started)
    request_finished.disconnect(witness.finished)


@override_settings(ROOT_URLCONF=__name__)
def test_a_page_s_request_starts_and_ends_on_its_own_thread_once(witnessed: Witness) -> None:
    async def serve() -> bytes:
        request = await start(RequestThreadHandler(), "/witnessed/")
        first = await request.receive_output(10)
        # Over before its bytes go out: its database connection is already back.
        assert first["type"] == "http.response.start"
        assert [name for name, _thread in witnessed.seen][-1] == "finished"
        body = (await request.receive_output(10))["body"]
        await request.wait(10)
        return body

    assert asyncio.run(serve()) == b"seen"
    assert [name for name, _thread in witnessed.seen] == ["started", "view", "finished"]
    assert len({thread for _name, thread in witnessed.seen}) == 1
    assert witnessed.seen[0][1] != threading.get_ident()


@override_settings(ROOT_URLCONF=__name__)
def test_a_streamed_body_ends_its_request_after_the_last_part(witnessed: Witness) -> None:
    async def serve() -> bytes:
        request = await start(RequestThreadHandler(), "/witnessed-stream/")
        body = await body_of(request)
        await request.wait(10)
        return body

    assert asyncio.run(serve()) == b"one\ntwo\n"
    assert [name for name, _thread in witnessed.seen] == ["started", "streamed", "finished"]


def test_a_request_django_cannot_read_is_answered_400(witnessed: Witness) -> None:
    async def serve() -> dict[str, object]:
        request = ApplicationCommunicator(
            RequestThreadHandler(), {**scope("/witnessed/"), "query_string": b"\xff\xfe"}
        )
        await request.send_input({"type": "http.request", "body": b""})
        answer = await request.receive_output(10)
        await request.receive_output(10)
        await request.wait(10)
        return answer

    assert asyncio.run(serve())["status"] == 400
    assert [name for name, _thread in witnessed.seen] == ["started", "finished"]


def test_a_helper_that_stops_mid_request_is_answered_with_a_page_that_says_so() -> None:
    from deploycheck.long_work import _unavailable

    sent: list[dict[str, object]] = []

    async def send(message: object) -> None:
        sent.append(dict(message))  # type: ignore[call-overload]

    asyncio.run(_unavailable(send))

    assert sent[0]["status"] == 503
    assert (b"retry-after", b"5") in sent[0]["headers"]  # type: ignore[operator]
    body = sent[1]["body"].decode()  # type: ignore[attr-defined]
    assert "se detuvo antes de responder" in body


def test_a_helper_that_cannot_start_is_answered_and_frees_its_place(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from deploycheck import long_work

    def cannot_start(*args: object, **kwargs: object) -> None:
        raise OSError("no more processes")

    monkeypatch.setattr(long_work.subprocess, "Popen", cannot_start)
    helpers = long_work.Helpers(1)

    async def twice() -> list[object]:
        sent: list[Mapping[str, object]] = []

        async def send(message: Mapping[str, object]) -> None:
            sent.append(message)

        async def receive() -> dict[str, object]:
            return {"type": "http.disconnect"}

        for _attempt in range(2):
            await asyncio.wait_for(helpers.serve(scope("/long/"), receive, send), 10)
        return [message["status"] for message in sent if message["type"] == "http.response.start"]

    # The second request would wait forever if the first had kept the only place.
    assert asyncio.run(twice()) == [503, 503]
