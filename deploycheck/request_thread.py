"""The ASGI application: each request's middleware and view run on its own thread, in one
go.

Django's ASGI handler gives every request a thread of its own for synchronous code, but
runs the middleware chain in async mode: it then moves to that thread and back twice per
old-style middleware (sessions, CSRF, locale, messages… all of Django's), and twice more
for a synchronous view, about twenty moves per page. Measured, those moves cost more than
serving a cached board. This handler builds the chain synchronously and enters it once:
one move to the request's thread, everything runs there, one move back.

Requests take turns by lane. A process has one core's worth of Python (the GIL): twenty
pages rendering at once each get a twentieth of it, and a health check or a support
agent's status page between them waits for all twenty. Pages (the default lane) instead
run at most PAGE_THREADS at a time and the rest wait in line on the event loop, where
waiting costs nothing; measured, a page is then served no slower, and the health check
under twenty board clients waits 15-25 ms instead of 150-200. Long work (an import
preview, an export) is handed to a helper process (long_work.py), so that it neither
takes a page's turn nor shares the GIL with pages. The health check, static files and
sign-in (whose password hashing runs without the GIL) do not queue at all.

Live streams still stream from the event loop: their async view only checks access and
hands back a response whose body is an async iterator, which the handler sends. The
request's database connection goes back before the stream starts, so a page waiting for
updates holds none.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from asgiref.sync import ThreadSensitiveContext, sync_to_async
from django.conf import settings
from django.core import signals
from django.core.exceptions import RequestAborted
from django.core.handlers.asgi import ASGIHandler, ASGIRequest, get_script_prefix
from django.db import connections
from django.http import HttpRequest
from django.http.response import HttpResponseBase
from django.urls import Resolver404, URLResolver, get_resolver, set_script_prefix

from deploycheck.long_work import Helpers, Receive, Send

# Threads kept for the next requests; more than this at once are made and let go.
IDLE_THREADS = 64

UNQUEUED = "unqueued"
PAGES = "pages"
LONG = "long"

View = TypeVar("View", bound=Callable[..., Any])


def lane(name: str) -> Callable[[View], View]:
    """Put a view in a lane (UNQUEUED or LONG); an unmarked view is in PAGES."""

    def mark(view: View) -> View:
        view.request_lane = name  # type: ignore[attr-defined]
        return view

    return mark


def lane_of(path_info: str) -> str:
    if path_info.startswith(settings.STATIC_URL):
        return UNQUEUED
    return _lane_in(get_resolver(), path_info)


# Resolving the same few paths again and again was a tenth of the event loop's time
# under load. Keyed by the resolver too, which Django makes anew when the URLs change.
@functools.lru_cache(maxsize=1024)
def _lane_in(resolver: URLResolver, path_info: str) -> str:
    try:
        view = resolver.resolve(path_info).func
    except Resolver404:
        return PAGES
    return str(getattr(view, "request_lane", PAGES))


class Turns:
    """At most `width` at a time, the others in order. Made on first use, so that it
    belongs to the event loop that serves (a test may run several loops one after the
    other)."""

    def __init__(self, width: int) -> None:
        self.width = width
        self._semaphore: asyncio.Semaphore | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def semaphore(self) -> asyncio.Semaphore:
        loop = asyncio.get_running_loop()
        if self._semaphore is None or self._loop is not loop:
            self._semaphore, self._loop = asyncio.Semaphore(self.width), loop
        return self._semaphore


# Where the lane chosen for a request is kept in its scope: the URL is resolved for it
# once, on the event loop, before the request is handed on or takes its turn.
_LANE_KEY = "deploycheck.lane"
# Marks a response that its request's thread already closed.
_CLOSED_KEY = "_deploycheck_closed"


def _path_info(scope: Mapping[str, Any]) -> str:
    path: str = scope["path"]
    root: str = scope.get("root_path", "")
    return path.removeprefix(root) if root and path.startswith(root) else path


class RequestThreadHandler(ASGIHandler):
    # A page's body goes to the server in one message, not sliced (copied) into 64 KiB
    # ones; the server writes it out in whatever pieces the socket takes.
    chunk_size = 2**20

    def __init__(self, *, hands_on_long_work: bool = True) -> None:
        """`hands_on_long_work`: the long lane runs in helper processes (long_work.py);
        a helper itself serves it here."""
        super().__init__()
        # Single-thread executors, one per request at a time. Django would make a new
        # thread for every request and end it after; starting and joining them cost a
        # seventh of a cached page.
        self._idle: list[ThreadPoolExecutor] = []
        self._turns = {PAGES: Turns(settings.PAGE_THREADS)}
        self._helpers = Helpers(settings.LONG_PROCESSES) if hands_on_long_work else None
        if self._helpers is None:
            self._turns[LONG] = Turns(settings.LONG_PROCESSES)

    async def __call__(
        self,
        scope: dict[str, Any],
        receive: Receive,
        send: Send,
    ) -> None:
        if scope["type"] != "http":
            raise ValueError(f"Django can only handle ASGI/HTTP connections, not {scope['type']}.")
        scope[_LANE_KEY] = lane_of(_path_info(scope))
        if self._helpers is not None and scope[_LANE_KEY] == LONG:
            await self._helpers.serve(scope, receive, send)
            return
        executor = self._idle.pop() if self._idle else ThreadPoolExecutor(1, "request")
        try:
            async with ThreadSensitiveContext(executor=executor):
                await self.handle(scope, receive, send)
        except BaseException:
            # A request cut short (the client left) may leave its thread still busy:
            # the next request must not queue behind it.
            executor.shutdown(wait=False)
            raise
        if len(self._idle) < IDLE_THREADS:
            self._idle.append(executor)
        else:
            executor.shutdown(wait=False)

    async def handle(
        self,
        scope: dict[str, Any],
        receive: Receive,
        send: Send,
    ) -> None:
        """Django's, except that request_started is sent, and a body already in memory
        closed, on the request's thread as part of the chain (`run`), instead of each
        taking a move of its own there and back."""
        try:
            body_file = await self.read_body(receive)
        except RequestAborted:
            return
        set_script_prefix(get_script_prefix(scope))
        request, error_response = self.create_request(scope, body_file)
        if request is None:
            assert error_response is not None
            await signals.request_started.asend(sender=self.__class__, scope=scope)
            body_file.close()
            await self.send_response(error_response, send)
            await sync_to_async(error_response.close)()
            return

        async def process_request() -> HttpResponseBase:
            response = await self.run_get_response(request)
            with contextlib.suppress(asyncio.CancelledError):
                # The client left while the body went out.
                await self.send_response(response, send)
            return response

        # The disconnect listener is checked first: it raises nothing unexpected that
        # would keep the request's task from being cancelled.
        tasks = (
            asyncio.create_task(self.listen_for_disconnect(receive)),
            asyncio.create_task(process_request()),
        )
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        for task in tasks:
            if task.done():
                try:
                    task.result()
                except RequestAborted:
                    pass
                except AssertionError:
                    body_file.close()
                    raise
            else:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        try:
            response = tasks[1].result()
        except asyncio.CancelledError:
            await signals.request_finished.asend(sender=self.__class__)
        else:
            if not getattr(response, _CLOSED_KEY, False):
                await sync_to_async(response.close)()
        body_file.close()

    def load_middleware(self, is_async: bool = False) -> None:
        super().load_middleware(is_async=False)
        chain: Callable[[HttpRequest], HttpResponseBase] = self._middleware_chain  # type: ignore[has-type]

        def run(request: HttpRequest) -> HttpResponseBase:
            assert isinstance(request, ASGIRequest)
            signals.request_started.send(sender=self.__class__, scope=request.scope)
            response: HttpResponseBase = chain(request)
            if not response.streaming:
                # The body is all there: the request ends here (its connection goes
                # back to the pool) before the bytes go out.
                response._handler_class = self.__class__  # type: ignore[attr-defined]
                response.close()
                setattr(response, _CLOSED_KEY, True)
            # Only a body that is an async iterator (a live stream, the audit CSV in
            # batches) goes back to the event loop; it takes a connection again when it
            # reads. A sync one is read afterwards on this same thread, with this one.
            elif getattr(response, "is_async", False):
                _give_back_connections()
            return response

        on_thread = sync_to_async(run, thread_sensitive=True)

        async def in_turn(request: HttpRequest) -> HttpResponseBase:
            # Only the chain takes a turn: a body streamed afterwards (a live page's
            # events) must not hold one for as long as the page stays open.
            assert isinstance(request, ASGIRequest)
            turns = self._turns.get(request.scope[_LANE_KEY])
            if turns is None:
                return await on_thread(request)
            async with turns.semaphore():
                return await on_thread(request)

        self._middleware_chain = in_turn


def _give_back_connections() -> None:
    for connection in connections.all(initialized_only=True):
        if not connection.in_atomic_block:
            connection.close()
