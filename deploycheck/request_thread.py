"""The ASGI application: each request's middleware and view run on its own thread, in one
go.

Django's ASGI handler gives every request a thread of its own for synchronous code, but
runs the middleware chain in async mode: it then moves to that thread and back twice per
old-style middleware (sessions, CSRF, locale, messages… all of Django's), and twice more
for a synchronous view, about twenty moves per page. Measured, those moves cost more than
serving a cached board. This handler builds the chain synchronously and enters it once:
one move to the request's thread, everything runs there, one move back.

Live streams still stream from the event loop: their async view only checks access and
hands back a response whose body is an async iterator, which the handler sends. The
request's database connection goes back before the stream starts, so a page waiting for
updates holds none.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from asgiref.sync import ThreadSensitiveContext, sync_to_async
from django.core.handlers.asgi import ASGIHandler
from django.db import connections
from django.http import HttpRequest
from django.http.response import HttpResponseBase

# Threads kept for the next requests; more than this at once are made and let go.
IDLE_THREADS = 64


class RequestThreadHandler(ASGIHandler):
    def __init__(self) -> None:
        super().__init__()
        # Single-thread executors, one per request at a time. Django would make a new
        # thread for every request and end it after; starting and joining them cost a
        # seventh of a cached page.
        self._idle: list[ThreadPoolExecutor] = []

    async def __call__(
        self,
        scope: dict[str, Any],
        receive: Callable[[], Awaitable[Mapping[str, Any]]],
        send: Callable[[Mapping[str, Any]], Awaitable[None]],
    ) -> None:
        if scope["type"] != "http":
            raise ValueError(f"Django can only handle ASGI/HTTP connections, not {scope['type']}.")
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

    def load_middleware(self, is_async: bool = False) -> None:
        super().load_middleware(is_async=False)
        chain: Callable[[HttpRequest], HttpResponseBase] = self._middleware_chain  # type: ignore[has-type]

        def run(request: HttpRequest) -> HttpResponseBase:
            response: HttpResponseBase = chain(request)
            # Only a body that is an async iterator (a live stream, the audit CSV in
            # batches) goes back to the event loop; it takes a connection again when it
            # reads. A sync one is read afterwards on this same thread, with this one.
            if getattr(response, "is_async", False):
                _give_back_connections()
            return response

        self._middleware_chain = sync_to_async(run, thread_sensitive=True)


def _give_back_connections() -> None:
    for connection in connections.all(initialized_only=True):
        if not connection.in_atomic_block:
            connection.close()
