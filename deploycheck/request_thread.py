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

from collections.abc import Callable

from asgiref.sync import sync_to_async
from django.core.handlers.asgi import ASGIHandler
from django.db import connections
from django.http import HttpRequest
from django.http.response import HttpResponseBase


class RequestThreadHandler(ASGIHandler):
    def load_middleware(self, is_async: bool = False) -> None:
        super().load_middleware(is_async=False)
        chain: Callable[[HttpRequest], HttpResponseBase] = self._middleware_chain  # type: ignore[has-type]

        def run(request: HttpRequest) -> HttpResponseBase:
            response: HttpResponseBase = chain(request)
            if response.streaming:
                _give_back_connections()
            return response

        self._middleware_chain = sync_to_async(run, thread_sensitive=True)


def _give_back_connections() -> None:
    for connection in connections.all(initialized_only=True):
        if not connection.in_atomic_block:
            connection.close()
