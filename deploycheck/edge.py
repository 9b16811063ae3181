"""What a request must be before any of Django sees it.

A body is read here, on the event loop, and handed on whole: a slow or hostile client
holds a waiting coroutine, never one of the threads that serve pages, and nothing reads
more than MAX_REQUEST_BYTES. A body announced larger is refused from its Content-Length
before a byte of it is read; one sent in chunks is cut as it passes the limit; a client
that stops sending for BODY_RECEIVE_SECONDS is let go. A WebSocket upgrade and a method
no view serves are refused here too.

A refusal says why in the language the person's pages are in, as a page, or for the
pipeline API as its JSON error: as far as this can tell before Django, from the language
cookie, else Accept-Language, else the default language (Spanish).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from django.conf import settings
from django.http import HttpRequest
from django.http.cookie import parse_cookie
from django.template.defaultfilters import filesizeformat
from django.template.loader import render_to_string
from django.utils import translation
from django.utils.translation import gettext_lazy

Scope = dict[str, Any]
Message = Mapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

# The methods the views answer (the pipeline API and forms included); TRACE, WebDAV's
# and anything else that reaches this far get 405 here. (CONNECT's usual host:port
# form, like any request uvicorn cannot parse, is its own plain 400.)
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
# Longest wait for the next piece of a body (nginx waits 60 s by default).
BODY_RECEIVE_SECONDS = 15.0
# Sent by a refusal: the client may still be sending, and the connection must not be
# read on for a next request.
_CLOSE = (b"connection", b"close")
# The pipeline API's paths (deploycheck.urls), whose callers read its JSON errors.
API_PATH = "/api/"
# Each refusal's heading and what it tells whoever sent the request.
_REFUSALS = {
    400: (
        gettext_lazy("Bad request"),
        gettext_lazy(
            "The request's Content-Length is not a number of bytes, so none of it was read."
        ),
    ),
    403: (
        gettext_lazy("Not served here"),
        gettext_lazy("This server takes no WebSocket connections."),
    ),
    405: (
        gettext_lazy("Method not allowed"),
        gettext_lazy("This server answers only these methods: %(methods)s."),
    ),
    408: (
        gettext_lazy("Too slow"),
        gettext_lazy(
            "Nothing more of the request came for %(seconds)d seconds, so none of it was "
            "kept. Send it again."
        ),
    ),
    413: (
        gettext_lazy("Too large"),
        gettext_lazy(
            "What was sent is larger than %(limit)s, the most this server takes, so none "
            "of it was read or kept."
        ),
    ),
}


class Edge:
    """ASGI middleware in front of `app`: refuses what no view should get, and gives it
    each request with its body already read."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self.app(scope, receive, send)
        elif scope["type"] != "http":
            # Nothing here speaks WebSocket: refused before it is accepted, with a page
            # where the server can send one, else closed, which it answers with 403.
            await receive()
            if "websocket.http.response" in scope.get("extensions", {}):
                await _refuse(send, scope, 403)
            else:
                await send({"type": "websocket.close", "code": 1008})
        elif scope["method"] not in METHODS:
            await _refuse(send, scope, 405, [(b"allow", ", ".join(sorted(METHODS)).encode())])
        elif (announced := _content_length(scope)) is None:
            await _refuse(send, scope, 400)
        elif announced > settings.MAX_REQUEST_BYTES:
            await _refuse(send, scope, 413)
        else:
            body = await _read_body(receive, settings.MAX_REQUEST_BYTES)
            if isinstance(body, bytes):
                await self.app(scope, _replaying(body, receive), send)
            elif body is not None:
                await _refuse(send, scope, body)


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
    send: Send, scope: Scope, status: int, headers: list[tuple[bytes, bytes]] | None = None
) -> None:
    body, content_type, language = _refusal(scope, status)
    kind = "http.response" if scope["type"] == "http" else "websocket.http.response"
    await send({"type": f"{kind}.start", "status": status,
                "headers": [(b"content-type", content_type),
                            (b"content-length", str(len(body)).encode()),
                            (b"content-language", language.encode()),
                            (b"cache-control", b"no-store"), _CLOSE,
                            *(headers or [])]})  # fmt: skip
    await send({"type": f"{kind}.body", "body": body})


def _refusal(scope: Scope, status: int) -> tuple[bytes, bytes, str]:
    """The body telling why, its content type, and its language."""
    language = _language(scope)
    title, message = _REFUSALS[status]
    with translation.override(language):
        said = message % {
            "methods": ", ".join(sorted(METHODS)),
            "seconds": BODY_RECEIVE_SECONDS,
            "limit": filesizeformat(settings.MAX_REQUEST_BYTES),
        }
        if scope["path"].startswith(API_PATH):
            return json.dumps({"error": said}).encode(), b"application/json", language
        page = render_to_string("refused.html", {"title": title, "message": said})
    return page.encode(), b"text/html; charset=utf-8", language


def _language(scope: Scope) -> str:
    """The language LocaleMiddleware would choose before the person's session is read:
    the language cookie, else Accept-Language, else the default."""
    request = HttpRequest()
    for name, value in scope["headers"]:
        if name == b"cookie":
            request.COOKIES.update(parse_cookie(value.decode("latin-1")))
        elif name == b"accept-language":
            request.META["HTTP_ACCEPT_LANGUAGE"] = value.decode("latin-1")
    return translation.get_language_from_request(request)
