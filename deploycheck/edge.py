"""What a request must be before any of Django sees it.

A body is read here, on the event loop, and handed on whole: a slow or hostile client
holds a waiting coroutine, never one of the threads that serve pages, and nothing reads
more than MAX_REQUEST_BYTES. A body announced larger is refused from its Content-Length
before a byte of it is read; one sent in chunks is cut as it passes the limit; a client
that stops sending for BODY_RECEIVE_SECONDS is let go. A WebSocket upgrade and a method
no view serves are refused here too.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from django.conf import settings

Scope = dict[str, Any]
Message = Mapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

# The methods the views answer (the pipeline API and forms included); TRACE, CONNECT,
# WebDAV's and anything else get 405 here.
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
# Longest wait for the next piece of a body (nginx waits 60 s by default).
BODY_RECEIVE_SECONDS = 15.0
# Sent by a refusal: the client may still be sending, and the connection must not be
# read on for a next request.
_CLOSE = (b"connection", b"close")


class Edge:
    """ASGI middleware in front of `app`: refuses what no view should get, and gives it
    each request with its body already read."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self.app(scope, receive, send)
        elif scope["type"] != "http":
            # Nothing here speaks WebSocket: closed before it is accepted, which the
            # server answers with 403.
            await receive()
            await send({"type": "websocket.close", "code": 1008})
        elif scope["method"] not in METHODS:
            await _refuse(send, 405, b"405 Method not allowed",
                          [(b"allow", ", ".join(sorted(METHODS)).encode())])  # fmt: skip
        elif (announced := _content_length(scope)) is None:
            await _refuse(send, 400, b"400 Bad Content-Length")
        elif announced > settings.MAX_REQUEST_BYTES:
            await _refuse(send, 413, b"413 Payload too large")
        else:
            body = await _read_body(receive, settings.MAX_REQUEST_BYTES)
            if isinstance(body, bytes):
                await self.app(scope, _replaying(body, receive), send)
            elif body is not None:
                await _refuse(send, body, _REASONS[body])


_REASONS = {408: b"408 Request timeout", 413: b"413 Payload too large"}


def _content_length(scope: Scope) -> int | None:
    """The announced body length; 0 when none is announced (a chunked body is counted
    as it comes), None when the header is not a length."""
    for name, value in scope["headers"]:
        if name == b"content-length":
            return int(value) if value.isdigit() else None
    return 0


async def _read_body(receive: Receive, limit: int) -> bytes | int | None:
    """The whole body, or the status refusing it (408 too slow, 413 too large), or None
    when the client went away."""
    chunks: list[bytes] = []
    size = 0
    while True:
        try:
            async with asyncio.timeout(BODY_RECEIVE_SECONDS):
                message = await receive()
        except TimeoutError:
            return 408
        if message["type"] == "http.disconnect":
            return None
        chunk: bytes = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            return 413
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


def _replaying(body: bytes, receive: Receive) -> Receive:
    """`receive` for the application: the body in one message, then the client's own
    messages (its disconnect, which a live stream waits for)."""
    pending = [{"type": "http.request", "body": body, "more_body": False}]

    async def replay() -> Message:
        return pending.pop() if pending else await receive()

    return replay


async def _refuse(
    send: Send, status: int, text: bytes, headers: list[tuple[bytes, bytes]] | None = None
) -> None:
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"text/plain; charset=utf-8"),
                            (b"content-length", str(len(text)).encode()), _CLOSE,
                            *(headers or [])]})  # fmt: skip
    await send({"type": "http.response.body", "body": text})
