"""The checks file: which automated checks a release has, and which items each verifies.

A checks file is TOML made of `[[check]]` tables, kept beside the Markdown checklist
(see checks.example.toml):

    [[check]]
    name = "openai"                  # how items and results name the check
    kind = "openai"                  # one of checks.kinds.registry.REGISTRY
    secret_env = "OPENAI_API_KEY"    # the kind's options; credentials by variable name
    item = "La integración con OpenAI/Google AI está verificada en producción"

`item` links the check to items by their text. An item may also name checks itself with
`<!-- deploycheck: check=NAME -->` markers in the checklist; those stay, and every name
they use must be declared here.

`load` is all or nothing: a file with any fault is refused whole, every fault worded as
`path:line: what is wrong`, and nothing is written. A credential pasted where the name of
its environment variable belongs is refused without ever being repeated.
"""

from __future__ import annotations

import difflib
import re
import tomllib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from django.db import transaction
from django.utils import timezone

from releases import workflow
from releases.models import Release, ReleaseItem

from .kinds.base import ENV_NAME, OPTION_TYPES, Kind, OptionType
from .kinds.registry import REGISTRY
from .models import CHECK_NAME_PATTERN, Check

# Keys every check has besides its kind's options.
COMMON_KEYS = ("name", "kind", "item")
TOP_LEVEL_KEYS = frozenset({"check"})
CANDIDATES_SHOWN = 3
# The variable a message shows as an example of what belongs in an ENV option.
ENV_EXAMPLES = {"account_sid_env": "TWILIO_ACCOUNT_SID"}
DEFAULT_ENV_EXAMPLE = "OPENAI_API_KEY"

_TOML_POSITION = re.compile(r"^(?P<what>.*) \(at line (?P<line>\d+), column (?P<column>\d+)\)$")
_TOML_AT_END = re.compile(r"^(?P<what>.*) \(at end of document\)$")
_CHECK_HEADER = re.compile(r"^\s*\[\[\s*check\s*\]\]\s*(?:#.*)?$")
_TABLE_HEADER = re.compile(r"^\s*\[\[?\s*[A-Za-z0-9_\-\"'. ]+\]\]?\s*(?:#.*)?$")


@dataclass(frozen=True)
class CheckSpec:
    """One `[[check]]` of a checks file, as read."""

    name: str
    kind: str
    # The kind's options: every key of the table but name, kind and item.
    options: dict[str, Any]
    # Texts of the items it verifies.
    items: tuple[str, ...]
    # The line of its `[[check]]` header.
    line: int
    # The line each of `items` is written on, for messages about one of them.
    item_lines: tuple[int, ...] = field(default=(), compare=False, repr=False)


@dataclass(frozen=True)
class LoadSummary:
    created: list[str]
    updated: list[str]
    retired: list[str]
    # How many items at least one of the file's checks now verifies.
    linked_items: int
    # Every check the file declares, in its order.
    loaded: list[str] = field(default_factory=list)

    def __str__(self) -> str:
        # Always English: operators and scripts read this line whatever the UI language.
        return (
            f"{_count(len(self.loaded), 'check')} loaded ({len(self.created)} new, "
            f"{len(self.updated)} updated, {len(self.retired)} retired), "
            f"linked to {_count(self.linked_items, 'item')}"
        )


class ChecksFileError(Exception):
    """A checks file refused whole; `errors` holds one `path:line: …` line per fault."""

    def __init__(self, errors: list[str]) -> None:
        super().__init__("\n".join(errors))
        self.errors = errors


def _count(number: int, noun: str) -> str:
    return f"{number} {noun}" if number == 1 else f"{number} {noun}s"


class _Problems:
    """Every fault found, kept with its line so they read in the file's order."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._found: list[tuple[int, str]] = []

    def add(self, line: int | None, message: str) -> None:
        # A fault with no line in the file (a checklist marker) sorts after the rest.
        where = f"{self.path}:{line}" if line is not None else self.path
        self._found.append((line if line is not None else 1 << 30, f"{where}: {message}"))

    def __len__(self) -> int:
        return len(self._found)

    def lines(self) -> list[str]:
        return [message for _, message in sorted(self._found, key=lambda found: found[0])]


class _Lines:
    """Where keys are written. tomllib gives no positions, so the text is scanned: good
    enough to point a person at the right line, never used to read values."""

    def __init__(self, text: str) -> None:
        self.lines = text.splitlines()
        self.headers = [n for n, line in enumerate(self.lines) if _CHECK_HEADER.match(line)]
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
        return self.top_level("check")

    def key(self, index: int, key: str) -> int:
        if index >= len(self.headers):
            return self.header(index)
        start, end = self._block(index)
        return self._find(self._assigns(key), start, end) or self.header(index)

    def elements(self, index: int, key: str, texts: Sequence[str]) -> tuple[int, ...]:
        """The line of each string of a list, searched in order from the key's line."""
        at = self.key(index, key)
        end = self._block(index)[1] if index < len(self.headers) else len(self.lines)
        found: list[int] = []
        for text in texts:
            line = self._find(re.compile(re.escape(text)), at - 1, end)
            found.append(line or self.key(index, key))
            at = line or at
        return tuple(found)


def read(path: str | Path) -> list[CheckSpec]:
    """The checks a file declares; ChecksFileError lists every fault it has."""
    specs, problems = _parse(str(path))
    if problems:
        raise ChecksFileError(problems.lines())
    return specs


def _parse(path: str) -> tuple[list[CheckSpec], _Problems]:
    """Every check the file declares, and its faults. A check with faults is still
    returned, with what could be read of it, so that loading can report its items too."""
    problems = _Problems(path)
    try:
        raw = Path(path).read_bytes()
    except OSError as error:
        problems.add(None, f"cannot be read ({error.strerror or error})")
        return [], problems
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as error:
        problems.add(raw.count(b"\n", 0, error.start) + 1, "is not UTF-8 text")
        return [], problems
    lines = _Lines(text)
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        _toml_problem(problems, str(error), len(lines.lines))
        return [], problems
    for key in data:
        if key not in TOP_LEVEL_KEYS:
            problems.add(
                lines.top_level(key),
                f"unknown top-level key “{key}”; a checks file holds only [[check]] tables",
            )
    tables = data.get("check", [])
    if not isinstance(tables, list) or not all(isinstance(t, dict) for t in tables):
        problems.add(lines.top_level("check"), "check must be [[check]] tables")
        return [], problems
    specs: list[CheckSpec] = []
    first_use: dict[str, int] = {}
    for index, table in enumerate(tables):
        spec = _parse_check(index, table, lines, problems, first_use)
        if spec is not None:
            specs.append(spec)
    return specs, problems


def _toml_problem(problems: _Problems, message: str, last_line: int) -> None:
    positioned = _TOML_POSITION.match(message)
    if positioned:
        what = positioned["what"]
        problems.add(
            int(positioned["line"]),
            f"not valid TOML: {what[:1].lower()}{what[1:]} at column {positioned['column']}",
        )
        return
    at_end = _TOML_AT_END.match(message)
    what = at_end["what"] if at_end else message
    problems.add(max(last_line, 1), f"not valid TOML: {what[:1].lower()}{what[1:]}")


def _parse_check(
    index: int,
    table: dict[str, Any],
    lines: _Lines,
    problems: _Problems,
    first_use: dict[str, int],
) -> CheckSpec | None:
    header = lines.header(index)
    name = table.get("name")
    kind_name = table.get("kind")
    if name is None:
        problems.add(header, "this [[check]] has no name")
    elif not isinstance(name, str):
        problems.add(lines.key(index, "name"), "name must be a string")
    elif not re.fullmatch(CHECK_NAME_PATTERN, name):
        problems.add(
            lines.key(index, "name"),
            f"check name “{name}” must be lower-case letters, digits, dots, dashes and "
            "underscores, starting with a letter or digit (at most 64)",
        )
    elif name in first_use:
        problems.add(
            lines.key(index, "name"),
            f"check name “{name}” is used twice (first at line {first_use[name]})",
        )
    else:
        first_use[name] = header
    label = f"check “{name}”" if isinstance(name, str) else "this [[check]]"

    known = ", ".join(sorted(REGISTRY))
    kind: Kind | None = None
    if kind_name is None:
        problems.add(header, f"{label} has no kind; known kinds: {known}")
    elif not isinstance(kind_name, str) or kind_name not in REGISTRY:
        shown = f"“{kind_name}”" if isinstance(kind_name, str) else "that"
        problems.add(
            lines.key(index, "kind"), f"{label}: {shown} is not a kind of check; known: {known}"
        )
    else:
        kind = REGISTRY[kind_name]

    items, item_lines = _parse_items(index, table.get("item"), lines, problems, label)
    faults_before = len(problems)
    options = _parse_options(index, table, kind, lines, problems, label) if kind else {}
    # A kind's own checks assume well-typed options, so they run only on a clean check.
    clean = len(problems) == faults_before
    if kind is not None and kind.check_options is not None and clean:
        try:
            kind.check_options(options)
        except ValueError as error:
            message = str(error)
            first_word = message.split(" ", 1)[0]
            line = lines.key(index, first_word) if first_word in options else header
            problems.add(line, f"{label}: {message}")
    if not isinstance(name, str):
        return None
    return CheckSpec(
        name=name,
        kind=kind.name if kind else "",
        options=options,
        items=items,
        line=header,
        item_lines=item_lines,
    )


def _parse_items(
    index: int, value: Any, lines: _Lines, problems: _Problems, label: str
) -> tuple[tuple[str, ...], tuple[int, ...]]:
    if value is None:
        return (), ()
    texts = [value] if isinstance(value, str) else value
    if not isinstance(texts, list) or not all(isinstance(text, str) for text in texts):
        problems.add(
            lines.key(index, "item"), f"{label}: item must be an item's text or a list of them"
        )
        return (), ()
    if any(not text.strip() for text in texts):
        problems.add(lines.key(index, "item"), f"{label}: item must not be empty")
        return (), ()
    return tuple(texts), lines.elements(index, "item", texts)


def _parse_options(
    index: int,
    table: dict[str, Any],
    kind: Kind,
    lines: _Lines,
    problems: _Problems,
    label: str,
) -> dict[str, Any]:
    """The well-typed options; a refused value is left out, so it travels no further."""
    allowed = ", ".join([*COMMON_KEYS, *sorted(kind.required), *sorted(kind.optional)])
    options: dict[str, Any] = {}
    for key, value in table.items():
        if key in COMMON_KEYS:
            continue
        line = lines.key(index, key)
        if key not in kind.options:
            problems.add(
                line, f"{label}: unknown key “{key}” for kind {kind.name}; allowed: {allowed}"
            )
            continue
        problem = _type_problem(key, OPTION_TYPES[key], value)
        if problem:
            problems.add(line, f"{label}: {problem}")
            continue
        options[key] = value
    for key in sorted(kind.required - set(table)):
        problems.add(lines.header(index), f"{label}: kind {kind.name} needs {key}")
    return options


def _type_problem(key: str, expected: OptionType, value: Any) -> str:
    """What is wrong with an option's value, or "". Never quotes the value: a wrong one
    may be a credential pasted in the wrong place."""
    if expected is OptionType.INT:
        ok = isinstance(value, int) and not isinstance(value, bool)
        return "" if ok else f"{key} must be a whole number"
    if expected is OptionType.TEXT:
        return "" if isinstance(value, str) else f"{key} must be a string"
    if expected is OptionType.TEXT_LIST:
        ok = isinstance(value, str) or (
            isinstance(value, list) and all(isinstance(v, str) for v in value)
        )
        return "" if ok else f"{key} must be a string or a list of strings"
    if expected is OptionType.ENV:
        if isinstance(value, str) and ENV_NAME.fullmatch(value):
            return ""
        example = ENV_EXAMPLES.get(key, DEFAULT_ENV_EXAMPLE)
        return (
            f"{key} must name an environment variable such as {example}, "
            "not hold the credential itself"
        )
    return _url_problem(key, value)


def _url_problem(key: str, value: Any) -> str:
    if not isinstance(value, str):
        return f"{key} must be an http:// or https:// URL with a host"
    try:
        parts = urlsplit(value)
        host = parts.hostname
        has_credentials = parts.username is not None or parts.password is not None
    except ValueError:
        return f"{key} must be an http:// or https:// URL with a host"
    if parts.scheme not in ("http", "https") or not host:
        return f"{key} must be an http:// or https:// URL with a host"
    if has_credentials:
        # The database never holds a credential; checks name the variable that does.
        return f"{key} must not hold credentials (user:password@); name a variable instead"
    return ""


# --- loading into a release --------------------------------------------------------------


def load(path: str | Path, release: Release, *, by: workflow.By) -> LoadSummary:
    """Declare the file's checks on the release and link them to its items, all or
    nothing: on any fault ChecksFileError lists them all and nothing is written."""
    path = str(path)
    source = Path(path).name
    specs, problems = _parse(path)
    with transaction.atomic():
        # Under the release lock: two loads at once must not compute links from the
        # same old state.
        locked = Release.objects.select_for_update().get(pk=release.pk)
        items = list(locked.items.order_by("position"))
        existing = {check.name: check for check in Check.objects.filter(release=locked)}
        linked_to = _resolve_items(specs, items, locked.version, problems)
        markers = _markers(items, existing.values())
        declared = {spec.name for spec in specs}
        for entry in items:
            for name in markers[entry.pk]:
                if name not in declared:
                    problems.add(
                        None,
                        f"item “{entry.text}” has a check={name} marker, "
                        f"but the file declares no check {name}",
                    )
        if problems:
            raise ChecksFileError(problems.lines())

        now = timezone.now()
        created: list[str] = []
        updated: list[str] = []
        for spec in specs:
            fields: dict[str, Any] = {
                "kind": spec.kind,
                "options": spec.options,
                # Only links the file alone makes: an item's own marker outlives the file.
                "linked_item_ids": [i for i in linked_to[spec.name] if spec.name not in markers[i]],
                "source": f"{source}:{spec.line}",
            }
            check = existing.get(spec.name)
            if check is None:
                Check.objects.create(
                    release=locked, name=spec.name, created_at=now, updated_at=now, **fields
                )
                created.append(spec.name)
            elif check.retired_at is not None or any(
                getattr(check, key) != value for key, value in fields.items()
            ):
                for key, value in fields.items():
                    setattr(check, key, value)
                check.retired_at = None
                check.updated_at = now
                check.save(update_fields=[*fields, "retired_at", "updated_at"])
                updated.append(spec.name)
        retired = sorted(
            check.name
            for check in existing.values()
            if check.name not in declared and check.retired_at is None
        )
        Check.objects.filter(release=locked, name__in=retired).retire(now)

        checks_of: dict[int, list[str]] = {}
        linked_items = 0
        for entry in items:
            wanted = list(
                dict.fromkeys(
                    [*markers[entry.pk], *(s.name for s in specs if entry.pk in linked_to[s.name])]
                )
            )
            if any(name in declared for name in wanted):
                linked_items += 1
            named = any(entry.pk in linked_to[s.name] for s in specs)
            if named or wanted != entry.checks:
                checks_of[entry.pk] = wanted
        workflow.link_checks(
            locked,
            checks_of=checks_of,
            summary={"source": source, "created": created, "updated": updated, "retired": retired},
            by=by,
        )
    return LoadSummary(
        created=created,
        updated=updated,
        retired=retired,
        linked_items=linked_items,
        loaded=[spec.name for spec in specs],
    )


def _normal(text: str) -> str:
    return " ".join(text.split()).casefold()


def _resolve_items(
    specs: Sequence[CheckSpec], items: Sequence[ReleaseItem], version: str, problems: _Problems
) -> dict[str, list[int]]:
    """The ids of the items each check names, in the file's order."""
    linked: dict[str, list[int]] = {}
    for spec in specs:
        ids: list[int] = []
        for text, line in zip(spec.items, spec.item_lines, strict=True):
            matches = _matching(text, items)
            if len(matches) == 1:
                ids.append(matches[0].pk)
            elif not matches:
                problems.add(line, _no_match(text, items, version))
            else:
                where = " and ".join(f"“{m.text}” in {_place(m)}" for m in matches)
                problems.add(
                    line, f"item “{text}” matches {len(matches)} items of {version}: {where}"
                )
        linked[spec.name] = list(dict.fromkeys(ids))
    return linked


def _matching(text: str, items: Sequence[ReleaseItem]) -> list[ReleaseItem]:
    # Exact text first; a difference of case or spacing only when nothing is exact, so a
    # checklist holding both spellings still resolves the exact one.
    wanted = text.strip()
    exact = [entry for entry in items if entry.text.strip() == wanted]
    if exact:
        return exact
    key = _normal(wanted)
    return [entry for entry in items if _normal(entry.text) == key]


def _no_match(text: str, items: Sequence[ReleaseItem], version: str) -> str:
    by_key: dict[str, str] = {}
    for entry in items:
        by_key.setdefault(_normal(entry.text), entry.text)
    close = difflib.get_close_matches(_normal(text), list(by_key), n=CANDIDATES_SHOWN)
    message = f"item “{text.strip()}” matches no item of {version}"
    if not close:
        return message
    return f"{message}; did you mean {_either(f'“{by_key[key]}”' for key in close)}?"


def _either(quoted: Iterable[str]) -> str:
    shown = list(quoted)
    return shown[0] if len(shown) == 1 else f"{', '.join(shown[:-1])} or {shown[-1]}"


def _place(entry: ReleaseItem) -> str:
    return " › ".join(part for part in (entry.phase, entry.section) if part) or (
        f"position {entry.position + 1}"
    )


def _markers(items: Sequence[ReleaseItem], checks: Iterable[Check]) -> dict[int, list[str]]:
    """Each item's check names that come from its checklist marker, not from a file: its
    current names minus those a checks file linked to it."""
    by_file: dict[int, set[str]] = {}
    for check in checks:
        for item_id in check.linked_item_ids:
            by_file.setdefault(int(item_id), set()).add(check.name)
    return {
        entry.pk: [name for name in entry.checks if name not in by_file.get(entry.pk, set())]
        for entry in items
    }
