"""A TOML file of tables, as the checks file (checks.config) and the notifications file
(notifications.config) are read: every fault worded `path:line: what is wrong` and kept
in the file's order, and where each key is written.
"""

from __future__ import annotations

import os
import re
import stat
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from django.utils.translation import gettext as _

from releases.markdown import bidi_controls

# Arrays and inline tables one inside another. A checks file needs three at most
# (`check = [{ item = ["…"] }]`); tomllib recurses once per level, so a deeper file is
# refused before it is parsed rather than ending in a RecursionError.
MAX_NESTING = 8

_TOML_POSITION = re.compile(r"^(?P<what>.*) \(at line (?P<line>\d+), column (?P<column>\d+)\)$")
_TOML_AT_END = re.compile(r"^(?P<what>.*) \(at end of document\)$")
_TABLE_HEADER = re.compile(r"^\s*\[\[?\s*[A-Za-z0-9_\-\"'. ]+\]\]?\s*(?:#.*)?$")


class NotARegularFile(Exception):
    """The path names a directory, a FIFO, a device or a socket; `mode` says which."""

    def __init__(self, mode: int) -> None:
        super().__init__(mode)
        self.mode = mode


def read_regular_file(path: str, limit: int) -> bytes:
    """Up to `limit` + 1 bytes of the file at `path`, so that the caller can tell one
    that is too large. Only a regular file is read: opening a FIFO waits for a writer,
    and opening a device may act on it (NotARegularFile); OSError as reading raises it."""
    mode = os.stat(path).st_mode
    if not stat.S_ISREG(mode):
        raise NotARegularFile(mode)
    # Should the path be swapped for a FIFO after the stat, O_NONBLOCK still opens it at
    # once, and the fstat below refuses it before any read.
    with open(os.open(path, os.O_RDONLY | os.O_NONBLOCK), "rb") as file:
        mode = os.fstat(file.fileno()).st_mode
        if not stat.S_ISREG(mode):
            raise NotARegularFile(mode)
        return file.read(limit + 1)


@dataclass(frozen=True)
class Fault:
    """One fault of a table (a check, a channel), without its place in a file: what a form
    shows beside the field of `key` (None when no one key is at fault)."""

    key: str | None
    message: str


class Problems:
    """Every fault found, kept with its line so they read in the file's order."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._found: list[tuple[int, str, Fault]] = []
        # The file could not be read as tables at all: nothing in it is compared with
        # what is stored (a release's items would only be reported against checks never
        # read).
        self.whole_file = False

    def add(self, line: int | None, message: str, key: str | None = None) -> None:
        # A fault with no line in the file (a checklist marker) sorts after the rest.
        where = f"{self.path}:{line}" if line is not None else self.path
        self._found.append(
            (line if line is not None else 1 << 30, f"{where}: {message}", Fault(key, message))
        )

    def refuse_file(self, line: int | None, message: str) -> None:
        self.add(line, message)
        self.whole_file = True

    def __len__(self) -> int:
        return len(self._found)

    def lines(self) -> list[str]:
        """Each fault as `path:line: what is wrong`."""
        return [found[1] for found in self._ordered()]

    def faults(self) -> list[Fault]:
        return [found[2] for found in self._ordered()]

    def _ordered(self) -> list[tuple[int, str, Fault]]:
        return sorted(self._found, key=lambda found: found[0])


class Lines:
    """Where the keys of each `[[table]]` are written. tomllib gives no positions, so the
    text is scanned: good enough to point a person at the right line, never used to read
    values."""

    def __init__(self, text: str, table: str) -> None:
        self.lines = text.splitlines()
        self.table = table
        header = re.compile(rf"^\s*\[\[\s*{re.escape(table)}\s*\]\]\s*(?:#.*)?$")
        self.headers = [n for n, line in enumerate(self.lines) if header.match(line)]
        self.tables = [n for n, line in enumerate(self.lines) if _TABLE_HEADER.match(line)]

    @staticmethod
    def _assigns(key: str) -> re.Pattern[str]:
        quoted = re.escape(key)
        return re.compile(rf"^\s*(?:{quoted}|\"{quoted}\"|'{quoted}')\s*[=.]")

    def _find(self, pattern: re.Pattern[str], start: int, end: int) -> int | None:
        for n in range(start, min(end, len(self.lines))):
            if pattern.search(self.lines[n]):
                return n + 1
        return None

    def top_level(self, key: str) -> int:
        first_table = self.tables[0] if self.tables else len(self.lines)
        quoted = re.escape(key)
        as_table = re.compile(rf"^\s*\[\[?\s*(?:{quoted}|\"{quoted}\"|'{quoted}')\s*[\].]")
        return (
            self._find(self._assigns(key), 0, first_table)
            or self._find(as_table, 0, len(self.lines))
            or 1
        )

    def _block(self, index: int) -> tuple[int, int]:
        start = self.headers[index]
        end = next((n for n in self.tables if n > start), len(self.lines))
        return start, end

    def header(self, index: int) -> int:
        # An inline `check = [{...}]` has no headers: point at its key instead.
        if index < len(self.headers):
            return self.headers[index] + 1
        return self.top_level(self.table)

    def key(self, index: int, key: str) -> int:
        if index >= len(self.headers):
            return self.header(index)
        start, end = self._block(index)
        return self._find(self._assigns(key), start, end) or self.header(index)

    def _end(self, index: int) -> int:
        return self._block(index)[1] if index < len(self.headers) else len(self.lines)

    def elements(self, index: int, key: str, texts: Sequence[str]) -> tuple[int, ...]:
        """The line of each string of a list, searched in order from the key's line."""
        at = self.key(index, key)
        end = self._end(index)
        found: list[int] = []
        for text in texts:
            line = self._find(re.compile(re.escape(text)), at - 1, end)
            found.append(line or self.key(index, key))
            at = line or at
        return tuple(found)

    def text_in(self, index: int, key: str, text: str) -> int:
        """The line `text` is written on, from the key's line to the end of its table
        (a list may span lines); the key's line when it is written otherwise (escaped)."""
        at = self.key(index, key)
        return self._find(re.compile(re.escape(text)), at - 1, self._end(index)) or at

    def top_level_text(self, key: str, text: str) -> int:
        at = self.top_level(key)
        return self._find(re.compile(re.escape(text)), at - 1, len(self.lines)) or at


# What can hold a bracket that is not TOML's: strings, in their four forms, and comments.
# Multi-line strings may end with up to two quotes of their own before the delimiter.
_NESTING_TOKENS = re.compile(
    r'"""(?:\\[\s\S]|[^\\])*?"{3,5}'
    r"|'''[\s\S]*?'{3,5}"
    r'|"(?:\\.|[^"\\\n])*"'
    r"|'[^'\n]*'"
    r"|#[^\n]*"
    r"|[\[\]{}]"
)


def too_deep(text: str) -> int | None:
    """The line where arrays and inline tables first nest more than MAX_NESTING deep."""
    depth = 0
    for token in _NESTING_TOKENS.finditer(text):
        mark = token[0]
        if mark == "[" or mark == "{":
            depth += 1
            if depth > MAX_NESTING:
                return text.count("\n", 0, token.start()) + 1
        elif mark == "]" or mark == "}":
            depth = max(depth - 1, 0)
    return None


def toml_problem(problems: Problems, message: str, last_line: int) -> None:
    """Refuses the file for tomllib's error `message`, at the line it names."""
    positioned = _TOML_POSITION.match(message)
    if positioned:
        what = positioned["what"]
        problems.refuse_file(
            int(positioned["line"]),
            # tomllib's own words, in English: it has no others.
            _("not valid TOML: %(error)s at column %(column)s")
            % {"error": f"{what[:1].lower()}{what[1:]}", "column": positioned["column"]},
        )
        return
    at_end = _TOML_AT_END.match(message)
    what = at_end["what"] if at_end else message
    problems.refuse_file(
        max(last_line, 1),
        _("not valid TOML: %(error)s") % {"error": f"{what[:1].lower()}{what[1:]}"},
    )


def _controls_in(value: Any) -> list[str]:
    if isinstance(value, str):
        return bidi_controls(value)
    if isinstance(value, list):
        return [found for each in value for found in _controls_in(each)]
    if isinstance(value, dict):
        return [found for pair in value.items() for found in _controls_in(list(pair))]
    return []


def hidden_text_problem(key: str, value: Any) -> str:
    """What is wrong with a value whose text (a list's or a table's included) holds
    invisible bidirectional control characters, which make it read on the page
    differently from what it is, as a checklist may not (releases.markdown); "" when
    it holds none."""
    found = list(dict.fromkeys(_controls_in(value)))
    if not found:
        return ""
    return _(
        "%(key)s contains invisible bidirectional control characters (%(found)s), "
        "which can make it read differently from what it is; remove them"
    ) % {"key": key, "found": ", ".join(found)}
