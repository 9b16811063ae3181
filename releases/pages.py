"""Board and status page bodies rendered once per (release revision, kind of viewer,
language, variant) and reused by everyone who would get the same bytes, until the
revision moves on.

The checklist is nearly all of a page and the same for every lead of one role, so it is
rendered without a request; the CSRF token of its no-JavaScript forms is put in per
request, and the page around it (the person's name, their messages) is rendered per
request (releases.views). The key holds the revision read from the database by that very
request, so no page is ever older than the revision its request saw, in any web process.
"""

from __future__ import annotations

import re
import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable, Mapping, Sized
from typing import Generic, TypeVar

from django.utils.safestring import mark_safe

# Stands in for a request's CSRF token in a shared render; replaced per response. It is
# marked safe, so the templates print it as it is, and starts with "<", which HTML
# escaping always turns into "&lt;": text a person typed (a note, an evidence link) can
# never hold one, however it is written, and so is never filled with a viewer's token.
CSRF_PLACEHOLDER = mark_safe("<deploycheck-csrf-token>")
# Where the page shell takes its shared body; "<" again, for the same reason.
BODY_SLOT = mark_safe("<deploycheck-body>")
_HOLES = re.compile(f"({re.escape(CSRF_PLACEHOLDER)})".encode())
# The templates' indentation: white space alone between two tags, holding a line break.
# A browser shows it as it shows a lone line break, except where white space is kept as
# written: <pre>, <textarea> (whose text is what its form sends back), <script>, <style>.
_INDENTATION_OR_AS_WRITTEN = re.compile(
    rb"(<(pre|textarea|script|style)\b.*?</\2>)|(?<=>)[ \t\r\f]*\n[ \t\n\r\f]*(?=<)",
    re.DOTALL | re.IGNORECASE,
)
MAX_BYTES = 64 * 1024 * 1024
# A request waiting for another's render of the same page gives up after this long and
# renders it itself: a stuck render must not hold up every reader.
RENDER_WAIT_SECONDS = 30.0


def compacted(page: bytes) -> bytes:
    """`page` with its indentation between tags cut to a line break: a board is a third
    smaller (193 KB of 66 items becomes 127 KB), and every request sends it."""
    return _INDENTATION_OR_AS_WRITTEN.sub(lambda found: found.group(1) or b"\n", page)


class CutPage:
    """A shared render, compacted and cut at its placeholders: a response puts its own
    token in with one join, where replacing each placeholder in turn copied the page
    each time (a board holds one CSRF token per form; 0.16 ms against 0.015)."""

    __slots__ = ("_holes", "_parts", "_size")

    def __init__(self, page: bytes) -> None:
        page = compacted(page)
        # split() puts the placeholders at odd indexes.
        self._parts = _HOLES.split(page)
        self._holes = [hole.decode() for hole in self._parts[1::2]]
        self._size = len(page)

    def __len__(self) -> int:
        return self._size

    def filled(self, values: Mapping[str, bytes]) -> bytes:
        """`values` by placeholder."""
        parts = self._parts.copy()
        parts[1::2] = [values[hole] for hole in self._holes]
        return b"".join(parts)


Page = TypeVar("Page", bound=Sized)


class PageCache(Generic[Page]):
    """Least recently used renders, bounded in bytes, each rendered once however many
    requests ask for it at the same time."""

    def __init__(self, max_bytes: int = MAX_BYTES) -> None:
        self._max_bytes = max_bytes
        self._pages: OrderedDict[Hashable, Page] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()
        self._rendering: dict[Hashable, threading.Event] = {}

    def clear(self) -> None:
        with self._lock:
            self._pages.clear()
            self._bytes = 0

    def get(self, key: Hashable) -> Page | None:
        with self._lock:
            page = self._pages.get(key)
            if page is not None:
                self._pages.move_to_end(key)
            return page

    def put(self, key: Hashable, page: Page) -> None:
        with self._lock:
            old = self._pages.pop(key, None)
            if old is not None:
                self._bytes -= len(old)
            self._pages[key] = page
            self._bytes += len(page)
            while self._bytes > self._max_bytes and len(self._pages) > 1:
                _key, dropped = self._pages.popitem(last=False)
                self._bytes -= len(dropped)

    def get_or_render(self, key: Hashable, render: Callable[[], Page]) -> Page:
        with self._lock:
            page = self._pages.get(key)
            if page is not None:
                self._pages.move_to_end(key)
                return page
            underway = self._rendering.get(key)
            if underway is None:
                self._rendering[key] = mine = threading.Event()
        if underway is not None:
            underway.wait(RENDER_WAIT_SECONDS)
            cached = self.get(key)
            if cached is not None:
                return cached
            return render()
        try:
            page = render()
            self.put(key, page)
            return page
        finally:
            with self._lock:
                if self._rendering.get(key) is mine:
                    del self._rendering[key]
            mine.set()


pages: PageCache[CutPage] = PageCache()
