"""A long-work helper process (see long_work.py): `python -m deploycheck.long_work_helper
FD`, started by a web process, serves the requests it is handed over the socket FD, one
at a time, until the web process goes away."""

from __future__ import annotations

import asyncio
import os
import socket
import sys
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from deploycheck.long_work import DONE, END, Receive, Send, read_message, write_message
from deploycheck.request_thread import RequestThreadHandler


async def _serve_parent(fd: int) -> None:
    application = RequestThreadHandler(hands_on_long_work=False)
    reader, writer = await asyncio.open_connection(sock=socket.socket(fileno=fd), limit=2**20)
    while True:
        try:
            first = await read_message(reader)
            await _serve_one(application, first["scope"], reader, writer)
        except asyncio.IncompleteReadError:
            return  # the web process is gone


async def _serve_one(
    application: Callable[[dict[str, Any], Receive, Send], Awaitable[None]],
    scope: dict[str, Any],
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
) -> None:
    incoming: asyncio.Queue[dict[str, Any]] = asyncio.Queue()

    async def from_parent() -> None:
        # Read to END even after the answer is out, so that the next request starts on
        # a message boundary.
        while (message := await read_message(reader)) != END:
            await incoming.put(message)

    async def to_parent(message: Mapping[str, Any]) -> None:
        await write_message(writer, message)

    reading = asyncio.create_task(from_parent())
    await application(scope, incoming.get, to_parent)
    await write_message(writer, DONE)
    await reading


def main() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "deploycheck.settings")
    import django

    django.setup(set_prefix=False)
    asyncio.run(_serve_parent(int(sys.argv[1])))


if __name__ == "__main__":
    main()
