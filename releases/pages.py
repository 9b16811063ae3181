"""Board and status pages rendered once per (release revision, kind of viewer, language,
variant) and reused by everyone who would get the same bytes, until the revision moves on.

The checklist is nearly all of a page and the same for every lead of one role, so it is
rendered without a request; what differs per request (the CSRF token of the no-JavaScript
forms, the person's name and messages in the shell) is added afterwards. The key holds
the revision read from the database by that very request, so no page is ever older than
the revision its request saw, in any web process. Renders run in a worker thread: a big
board never holds up the other requests of the process (Django runs sync views on one
shared thread under ASGI).
"""

from __future__ import annotations

import asyncio
import threading
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Hashable
from typing import Any, TypeVar

from asgiref.sync import sync_to_async
from django.conf import settings
from django.db import close_old_connections

_T = TypeVar("_T")

# Stands in for the request's CSRF token in a shared render; replaced per response.
CSRF_PLACEHOLDER = "csrf-token-placeholder-0f6c2a"
MAX_BYTES = 64 * 1024 * 1024


class PageCache:
    """Least recently used renders, bounded in bytes, each rendered once however many
    requests ask for it at the same time."""

    def __init__(self, max_bytes: int = MAX_BYTES) -> None:
        self._max_bytes = max_bytes
        self._pages: OrderedDict[Hashable, str] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()
        self._rendering: dict[Hashable, asyncio.Future[str]] = {}

    def clear(self) -> None:
        with self._lock:
            self._pages.clear()
            self._bytes = 0

    def get(self, key: Hashable) -> str | None:
        with self._lock:
            page = self._pages.get(key)
            if page is not None:
                self._pages.move_to_end(key)
            return page

    def put(self, key: Hashable, page: str) -> None:
        with self._lock:
            old = self._pages.pop(key, None)
            if old is not None:
                self._bytes -= len(old)
            self._pages[key] = page
            self._bytes += len(page)
            while self._bytes > self._max_bytes and len(self._pages) > 1:
                _key, dropped = self._pages.popitem(last=False)
                self._bytes -= len(dropped)

    async def get_or_render(self, key: Hashable, render: Callable[[], str]) -> str:
        cached = self.get(key)
        if cached is not None:
            return cached
        waiting = self._rendering.get(key)
        if waiting is not None and waiting.get_loop() is asyncio.get_running_loop():
            return await asyncio.shield(waiting)
        future: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        self._rendering[key] = future
        try:
            page = await off_thread(render)()
        except BaseException as error:
            future.set_exception(error)
            # Nobody else may be waiting: do not let the exception go unretrieved.
            future.exception()
            raise
        finally:
            if self._rendering.get(key) is future:
                del self._rendering[key]
        self.put(key, page)
        future.set_result(page)
        return page


def off_thread(function: Callable[..., _T]) -> Callable[..., Awaitable[_T]]:
    """`function` run in a worker thread of its own rather than on the thread Django
    shares between a process's sync views, so nothing queues behind it.

    The in-process test client keeps each test's data in a transaction on the test's own
    thread, out of sight of other threads' connections; its tests turn this off
    (PAGES_OFF_THREAD). Servers started by the live, browser and bench runs keep it on.
    """
    if not settings.PAGES_OFF_THREAD:
        return sync_to_async(function, thread_sensitive=True)
    return sync_to_async(_closing(function), thread_sensitive=False)


def _closing(function: Callable[..., _T]) -> Callable[..., _T]:
    def run(*args: Any) -> _T:
        try:
            return function(*args)
        finally:
            # The worker thread outlives the call; its connection would sit idle.
            close_old_connections()

    return run


pages = PageCache()
