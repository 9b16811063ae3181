"""Long work (an import preview, the audit CSV) runs in a process of its own.

A web process has one core's worth of Python. While an import preview parses a 1 MB
checklist (about a second) or the audit CSV formats 100,000 events (several seconds), any
other request of that process shares the GIL with it, and a status page that takes 10 ms
alone took 150-350 ms. Lanes alone (request_thread.py) cannot help: taking turns
orders the work, it does not make room beside it.

So each web process keeps LONG_PROCESSES helper processes, started when first needed.
A request in the long lane is handed whole to an idle helper: its ASGI scope, every
message its client sends, and back every message of the answer, relayed as they come
(the CSV still streams). The helper is this same Django application, so sessions,
CSRF, permissions and the audit trail work there as here; it only never hands work on.
Parent and helper talk over a socket pair that nobody else holds; each message is a
length and a pickle. A helper that dies is replaced, and its request answered with an
error page rather than left hanging. The helper's own side is long_work_helper.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import pickle
import socket
import struct
import subprocess
import sys
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from django.conf import settings

logger = logging.getLogger(__name__)

Receive = Callable[[], Awaitable[Mapping[str, Any]]]
Send = Callable[[Mapping[str, Any]], Awaitable[None]]

_LENGTH = struct.Struct("!I")
# The helper sends DONE after the answer's last message; the parent then stops relaying
# its client and sends END, after which the socket carries the next request.
DONE = {"type": "deploycheck.done"}
END = {"type": "deploycheck.end"}
# What of the scope crosses over: uvicorn may add a lifespan "state" that cannot.
_SCOPE_KEYS = ("type", "asgi", "http_version", "server", "client", "scheme", "method",
               "root_path", "path", "raw_path", "query_string", "headers")  # fmt: skip


async def write_message(writer: asyncio.StreamWriter, message: Mapping[str, Any]) -> None:
    data = pickle.dumps(dict(message), protocol=pickle.HIGHEST_PROTOCOL)
    writer.write(_LENGTH.pack(len(data)) + data)
    await writer.drain()


async def read_message(reader: asyncio.StreamReader) -> dict[str, Any]:
    (length,) = _LENGTH.unpack(await reader.readexactly(_LENGTH.size))
    message: dict[str, Any] = pickle.loads(await reader.readexactly(length))
    return message


class Helper:
    """One helper process and the parent's end of its socket."""

    def __init__(self) -> None:
        ours, theirs = socket.socketpair()
        env = {**os.environ, **helper_database_env(os.environ)}
        try:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "deploycheck.long_work_helper", str(theirs.fileno())],
                pass_fds=[theirs.fileno()],
                env=env,
            )
        except OSError:
            ours.close()
            raise
        finally:
            theirs.close()
        self._socket = ours
        self._streams: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None

    async def streams(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        if self._streams is None:
            self._streams = await asyncio.open_connection(sock=self._socket, limit=2**20)
        return self._streams

    def alive(self) -> bool:
        return self.process.poll() is None

    def stop(self) -> None:
        if self._streams is not None:
            self._streams[1].close()
        else:
            self._socket.close()
        if self.alive():
            self.process.terminate()


def helper_database_env(env: Mapping[str, str]) -> dict[str, str]:
    """A helper serves one request at a time: a pool of two connections is plenty."""
    if env.get("DB_POOL_SIZE", "").strip() not in ("", "0"):
        return {"DB_POOL_SIZE": "2"}
    return {}


class Helpers:
    """The helpers of one web process: at most LONG_PROCESSES, each serving one request
    at a time; a request finding all of them busy waits for the first one free."""

    def __init__(self, count: int) -> None:
        self._count = count
        self._idle: list[Helper] = []
        self._started = 0
        self._freed: asyncio.Condition | None = None

    def _condition(self) -> asyncio.Condition:
        if self._freed is None:
            self._freed = asyncio.Condition()
        return self._freed

    async def _take(self) -> Helper:
        freed = self._condition()
        async with freed:
            await freed.wait_for(lambda: bool(self._idle) or self._started < self._count)
            while self._idle:
                helper = self._idle.pop()
                if helper.alive():
                    return helper
                helper.stop()
                self._started -= 1
            self._started += 1
        try:
            return Helper()
        except OSError:
            await self._give_back(None)
            raise

    async def _give_back(self, helper: Helper | None) -> None:
        freed = self._condition()
        async with freed:
            if helper is None:
                self._started -= 1
            else:
                self._idle.append(helper)
            freed.notify()

    async def serve(self, scope: Mapping[str, Any], receive: Receive, send: Send) -> None:
        try:
            helper = await self._take()
        except OSError:
            logger.exception("could not start a long-work helper")
            await _unavailable(send)
            return
        finished = False
        try:
            finished = await _relay(helper, scope, receive, send)
        finally:
            if not finished:
                helper.stop()
            await self._give_back(helper if finished else None)


async def _relay(helper: Helper, scope: Mapping[str, Any], receive: Receive, send: Send) -> bool:
    """The request through `helper`; whether the helper finished it and can take another."""
    started = False
    try:
        reader, writer = await helper.streams()
        crossing = {key: scope[key] for key in _SCOPE_KEYS if key in scope}
        await write_message(writer, {"type": "deploycheck.scope", "scope": crossing})
    except (ConnectionError, OSError):
        await _unavailable(send)
        return False

    async def forward_client() -> None:
        while True:
            message = await receive()
            await write_message(writer, message)
            if message["type"] == "http.disconnect":
                return

    forwarding = asyncio.create_task(forward_client())
    try:
        while True:
            message = await read_message(reader)
            if message == DONE:
                break
            started = True
            await send(message)
    except (asyncio.IncompleteReadError, ConnectionError, OSError):
        if not started:
            await _unavailable(send)
        return False
    finally:
        forwarding.cancel()
        with contextlib.suppress(asyncio.CancelledError, ConnectionError, OSError):
            await forwarding
    try:
        await write_message(writer, END)
    except (ConnectionError, OSError):
        return False
    return True


async def _unavailable(send: Send) -> None:
    from django.template.loader import render_to_string
    from django.utils import translation

    with translation.override(settings.LANGUAGE_CODE):
        body = render_to_string("long_work_failed.html").encode()
    await send({"type": "http.response.start", "status": 503,
                "headers": [(b"content-type", b"text/html; charset=utf-8"),
                            (b"retry-after", b"5"), (b"cache-control", b"no-store")]})  # fmt: skip
    await send({"type": "http.response.body", "body": body})
