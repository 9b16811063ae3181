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

`[[perform]]` tables link items to an action the app performs for them when a person
presses "perform" (releases.performs), as `perform=` does in the checklist:

    [[perform]]
    item = ["Notificar a los usuarios sobre el despliegue completado"]
    action = "announce:users"

Items a file does not name keep their action.

`load` is all or nothing: a file with any fault is refused whole, every fault worded as
`path:line: what is wrong` in the active language (LANGUAGE_CODE on the command line),
and nothing is written. A credential pasted anywhere in the
file (a key where the name of its variable belongs, a token in a URL, a key in a list) is
refused without ever being repeated, and so is an `*_env` option naming one of
deploycheck's own settings, or a vendor's `base_url` that would carry its credential over
plain HTTP to another machine. Only a regular file of at most MAX_BYTES of UTF-8 is read,
with at most CHECKS_MAX_PER_RELEASE checks.

The release's Checks page declares one check at a time through the same rules: a form
becomes the table a `[[check]]` would hold, `parse_one` judges it with the file's own
messages, and `save` declares it as `load` does, leaving the other checks be; `retire`
retires one. Every check added, changed or retired, by a file or a form, is an audit
event whose target is the check's name.
"""

from __future__ import annotations

import codecs
import difflib
import re
import stat
import tomllib
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from django.conf import settings
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_noop, ngettext

from releases import performs, workflow
from releases.models import AuditAction, Release, ReleaseItem

from .credentials import (
    find_credential,
    is_app_variable,
    is_loopback,
    url_character_problem,
    web_url,
)
from .kinds.base import (
    ENV_NAME,
    OPTION_TYPES,
    Kind,
    OptionType,
    ca_file_problem,
    is_variable_name,
    option_problem,
)
from .kinds.registry import REGISTRY
from .models import CHECK_NAME_PATTERN, Check
from .toml_file import (
    MAX_NESTING,
    Fault,
    Lines,
    NotARegularFile,
    Problems,
    hidden_text_problem,
    read_regular_file,
    toml_problem,
    too_deep,
)

# Keys every check has besides its kind's options.
COMMON_KEYS = ("name", "kind", "item")
TOP_LEVEL_KEYS = frozenset({"check", "perform"})
PERFORM_KEYS = ("item", "action")
CANDIDATES_SHOWN = 3
# The variable a message shows as an example of what belongs in an ENV option.
ENV_EXAMPLES = {"account_sid_env": "TWILIO_ACCOUNT_SID", "headers_env": "PROMETHEUS_AUTHORIZATION"}
DEFAULT_ENV_EXAMPLE = "OPENAI_API_KEY"
# The largest checks file read: room for CHECKS_MAX_PER_RELEASE commented checks.
MAX_BYTES = 256 * 1024


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
class PerformSpec:
    """One `[[perform]]` of a checks file: the action the items it names are linked to."""

    action: str
    items: tuple[str, ...]
    line: int
    item_lines: tuple[int, ...] = field(default=(), compare=False, repr=False)

    @property
    def name(self) -> str:
        # How _resolve_items keys what it found.
        return f"[[perform]] of line {self.line}"


@dataclass(frozen=True)
class LoadSummary:
    created: list[str]
    updated: list[str]
    retired: list[str]
    # How many items at least one of the file's checks now verifies.
    linked_items: int
    # Every check the file declares, in its order.
    loaded: list[str] = field(default_factory=list)
    # How many items its `[[perform]]` tables link to an action, when it has any.
    performing: int | None = None

    def __str__(self) -> str:
        # Always English: operators and scripts read this line whatever the UI language.
        said = (
            f"{_count(len(self.loaded), 'check')} loaded ({len(self.created)} new, "
            f"{len(self.updated)} updated, {len(self.retired)} retired), "
            f"linked to {_count(self.linked_items, 'item')}"
        )
        if self.performing is None:
            return said
        return f"{said}; {_count(self.performing, 'item')} linked to an action the app performs"


class ChecksFileError(Exception):
    """A checks file refused whole; `errors` holds one `path:line: …` line per fault, and
    `faults` the same faults with the key each concerns."""

    def __init__(self, errors: list[str], faults: Sequence[Fault] = ()) -> None:
        super().__init__("\n".join(errors))
        self.errors = errors
        self.faults = list(faults)


def _count(number: int, noun: str) -> str:
    return f"{number} {noun}" if number == 1 else f"{number} {noun}s"


def read(path: str | Path) -> list[CheckSpec]:
    """The checks a file declares; ChecksFileError lists every fault it has."""
    specs, _performs, problems = _parse(str(path))
    if problems:
        raise ChecksFileError(problems.lines())
    return specs


def _parse(path: str) -> tuple[list[CheckSpec], list[PerformSpec], Problems]:
    """Every check the file declares, and its faults. A check with faults is still
    returned, with what could be read of it, so that loading can report its items too."""
    problems = Problems(path)
    raw = _read_bytes(path, problems)
    if raw is None:
        return [], [], problems
    # Some editors start UTF-8 with a byte order mark; the text is still UTF-8.
    raw = raw.removeprefix(codecs.BOM_UTF8)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as error:
        problems.refuse_file(raw.count(b"\n", 0, error.start) + 1, _("is not UTF-8 text"))
        return [], [], problems
    nested_at = too_deep(text)
    if nested_at is not None:
        problems.refuse_file(
            nested_at,
            _(
                "arrays or inline tables nested more than %(most)d deep; "
                "a checks file needs 3 at most"
            )
            % {"most": MAX_NESTING},
        )
        return [], [], problems
    lines = Lines(text, "check")
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        toml_problem(problems, str(error), len(lines.lines))
        return [], [], problems
    for key, value in data.items():
        if key in TOP_LEVEL_KEYS:
            continue
        if found := find_credential(key):
            problems.add(
                lines.top_level_text(key, found.text),
                _("a top-level key carries a credential (%(what)s); remove it")
                % {"what": found.what},
            )
        elif found := find_credential(value):
            problems.add(
                lines.top_level_text(key, found.text),
                _("top-level key “%(key)s” carries a credential (%(what)s); remove it")
                % {"key": key, "what": found.what},
            )
        else:
            problems.add(
                lines.top_level(key),
                _("unknown top-level key “%(key)s”; a checks file holds only [[check]] tables")
                % {"key": key},
            )
    tables = data.get("check", [])
    if not isinstance(tables, list) or not all(isinstance(t, dict) for t in tables):
        if found := find_credential(tables):
            problems.add(
                lines.top_level_text("check", found.text),
                _("check carries a credential (%(what)s); remove it") % {"what": found.what},
            )
        problems.refuse_file(lines.top_level("check"), _("check must be [[check]] tables"))
        return [], [], problems
    limit: int = settings.CHECKS_MAX_PER_RELEASE
    if len(tables) > limit:
        problems.refuse_file(
            lines.header(limit),
            ngettext(
                "the file declares %(count)d check; a release may have at most %(limit)d "
                "(CHECKS_MAX_PER_RELEASE)",
                "the file declares %(count)d checks; a release may have at most %(limit)d "
                "(CHECKS_MAX_PER_RELEASE)",
                len(tables),
            )
            % {"count": len(tables), "limit": limit},
        )
        return [], [], problems
    specs: list[CheckSpec] = []
    first_use: dict[str, int] = {}
    for index, table in enumerate(tables):
        spec = _parse_check(index, table, lines, problems, first_use)
        if spec is not None:
            specs.append(spec)
    return specs, _parse_performs(data.get("perform", []), text, problems), problems


def _parse_performs(tables: Any, text: str, problems: Problems) -> list[PerformSpec]:
    lines = Lines(text, "perform")
    if not isinstance(tables, list) or not all(isinstance(t, dict) for t in tables):
        problems.add(lines.top_level("perform"), _("perform must be [[perform]] tables"))
        return []
    specs: list[PerformSpec] = []
    for index, table in enumerate(tables):
        header = lines.header(index)
        label = _("[[perform]] of line %(line)d") % {"line": header}
        for key in table:
            if key not in PERFORM_KEYS:
                problems.add(
                    lines.key(index, key),
                    _("%(label)s: unknown key “%(key)s” (a [[perform]] has item and action)")
                    % {"label": label, "key": key},
                )
        action = _perform_action(table, label, lines.key(index, "action"), problems)
        if "item" not in table:
            problems.add(
                header,
                _("%(label)s: item is missing (an item's text or a list of them)")
                % {"label": label},
            )
        items, item_lines = _parse_items(index, table.get("item"), lines, problems, label)
        if action and items:
            specs.append(PerformSpec(action, items, header, item_lines))
    return specs


def _perform_action(table: Mapping[str, Any], label: str, line: int, problems: Problems) -> str:
    """The table's action, or "" after noting what is wrong with it."""
    action = table.get("action")
    if action is None:
        problems.add(
            line,
            _("%(label)s: action is missing; expected %(expected)s")
            % {"label": label, "expected": performs.EXPECTED},
        )
        return ""
    if not isinstance(action, str) or performs.parse(action) is None:
        message = (
            _("%(label)s: “%(action)s” is not an action the app performs; expected %(expected)s")
            if isinstance(action, str)
            else _("%(label)s: that is not an action the app performs; expected %(expected)s")
        )
        problems.add(
            line, message % {"label": label, "action": action, "expected": performs.EXPECTED}
        )
        return ""
    return action


_NOT_FILES: tuple[tuple[Callable[[int], bool], str], ...] = (
    (stat.S_ISDIR, gettext_noop("is a directory, not a checks file")),
    (stat.S_ISFIFO, gettext_noop("is a named pipe (FIFO), not a checks file")),
    (stat.S_ISCHR, gettext_noop("is a character device, not a checks file")),
    (stat.S_ISBLK, gettext_noop("is a block device, not a checks file")),
    (stat.S_ISSOCK, gettext_noop("is a socket, not a checks file")),
)


def _not_a_file(mode: int) -> str:
    """What a path that is not a regular file is."""
    what = next(
        (what for is_it, what in _NOT_FILES if is_it(mode)),
        gettext_noop("is a special file, not a checks file"),
    )
    return _(what)


def _read_bytes(path: str, problems: Problems) -> bytes | None:
    """The file's bytes, or None with the reason in problems."""
    try:
        raw = read_regular_file(path, MAX_BYTES)
    except NotARegularFile as refused:
        problems.refuse_file(None, _not_a_file(refused.mode))
        return None
    except OSError as error:
        problems.refuse_file(
            None, _("cannot be read (%(reason)s)") % {"reason": error.strerror or error}
        )
        return None
    if len(raw) > MAX_BYTES:
        problems.refuse_file(
            None,
            _("is larger than %(size)d KiB, the most a checks file may be")
            % {"size": MAX_BYTES // 1024},
        )
        return None
    return raw


def _parse_check(
    index: int,
    table: dict[str, Any],
    lines: Lines,
    problems: Problems,
    first_use: dict[str, int],
) -> CheckSpec | None:
    header = lines.header(index)
    written_name = table.get("name")
    kind_name = table.get("kind")
    # What names the check in its faults and its spec: None when there is no name to
    # show, a credential pasted there included.
    name: str | None = None
    if found := find_credential(written_name):
        problems.add(
            lines.text_in(index, "name", found.text),
            _("this [[check]]: name carries a credential (%(what)s); remove it")
            % {"what": found.what},
            "name",
        )
    elif written_name is None:
        problems.add(header, _("this [[check]] has no name"), "name")
    elif not isinstance(written_name, str):
        problems.add(lines.key(index, "name"), _("name must be a string"), "name")
    else:
        name = written_name
        if not re.fullmatch(CHECK_NAME_PATTERN, name):
            problems.add(
                lines.key(index, "name"),
                _(
                    "check name “%(name)s” must be lower-case letters, digits, dots, dashes "
                    "and underscores, starting with a letter or digit (at most 64)"
                )
                % {"name": name},
                "name",
            )
        elif name in first_use:
            problems.add(
                lines.key(index, "name"),
                _("check name “%(name)s” is used twice (first at line %(line)d)")
                % {"name": name, "line": first_use[name]},
                "name",
            )
        else:
            first_use[name] = header
    label = _("check “%(name)s”") % {"name": name} if name is not None else _("this [[check]]")

    known = ", ".join(sorted(REGISTRY))
    kind: Kind | None = None
    if found := find_credential(kind_name):
        problems.add(
            lines.text_in(index, "kind", found.text),
            _("%(label)s: kind carries a credential (%(what)s); remove it")
            % {"label": label, "what": found.what},
            "kind",
        )
    elif kind_name is None:
        problems.add(
            header,
            _("%(label)s has no kind; known kinds: %(known)s") % {"label": label, "known": known},
            "kind",
        )
    elif not isinstance(kind_name, str) or kind_name not in REGISTRY:
        message = (
            _("%(label)s: “%(kind)s” is not a kind of check; known: %(known)s")
            if isinstance(kind_name, str)
            else _("%(label)s: that is not a kind of check; known: %(known)s")
        )
        problems.add(
            lines.key(index, "kind"),
            message % {"label": label, "kind": kind_name, "known": known},
            "kind",
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
            # Its English sentence (str) names the option it is about first.
            first_word = str(error).split(" ", 1)[0]
            key = first_word if first_word in options else None
            problems.add(
                lines.key(index, key) if key else header,
                _("%(label)s: %(problem)s")
                % {"label": label, "problem": option_problem(error).translated()},
                key,
            )
    if name is None:
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
    index: int, value: Any, lines: Lines, problems: Problems, label: str
) -> tuple[tuple[str, ...], tuple[int, ...]]:
    if value is None:
        return (), ()
    texts = [value] if isinstance(value, str) else value
    if not isinstance(texts, list) or not all(isinstance(text, str) for text in texts):
        problems.add(
            lines.key(index, "item"),
            _("%(label)s: item must be an item's text or a list of them") % {"label": label},
            "item",
        )
        return (), ()
    if any(not text.strip() for text in texts):
        problems.add(
            lines.key(index, "item"),
            _("%(label)s: item must not be empty") % {"label": label},
            "item",
        )
        return (), ()
    item_lines = lines.elements(index, "item", texts)
    for text, line in zip(texts, item_lines, strict=True):
        if found := find_credential(text):
            # Left out with the rest: an item matching nothing would be quoted.
            problems.add(
                line,
                _("%(label)s: item carries a credential (%(what)s); remove it")
                % {"label": label, "what": found.what},
                "item",
            )
            return (), ()
    return tuple(texts), item_lines


def _parse_options(
    index: int,
    table: dict[str, Any],
    kind: Kind,
    lines: Lines,
    problems: Problems,
    label: str,
) -> dict[str, Any]:
    """The well-typed options; a refused value is left out, so it travels no further."""
    allowed = ", ".join([*COMMON_KEYS, *sorted(kind.required), *sorted(kind.optional)])
    options: dict[str, Any] = {}
    for key, value in table.items():
        if key in COMMON_KEYS:
            continue
        line = lines.key(index, key)
        if found := find_credential(key):
            problems.add(
                line,
                _("%(label)s: a key carries a credential (%(what)s); remove it")
                % {"label": label, "what": found.what},
            )
            continue
        # An *_env option's value is judged as a variable's name by _type_problem, which
        # refuses anything else as a credential held in its place.
        names_variable = key in kind.options and OPTION_TYPES[key] is OptionType.ENV
        if not names_variable and (found := find_credential(value)):
            problems.add(
                lines.text_in(index, key, found.text),
                _(
                    "%(label)s: option %(key)s carries a credential (%(what)s); "
                    "name an environment variable instead"
                )
                % {"label": label, "key": key, "what": found.what},
                key,
            )
            continue
        if key not in kind.options:
            problems.add(
                line,
                _("%(label)s: unknown key “%(key)s” for kind %(kind)s; allowed: %(allowed)s")
                % {"label": label, "key": key, "kind": kind.name, "allowed": allowed},
                key,
            )
            continue
        problem = (
            hidden_text_problem(key, value)
            or _type_problem(key, OPTION_TYPES[key], value)
            or _file_problem(key, value)
        )
        if problem:
            problems.add(
                line, _("%(label)s: %(problem)s") % {"label": label, "problem": problem}, key
            )
            continue
        options[key] = value
    for key in sorted(kind.required - set(table)):
        problems.add(
            lines.header(index),
            _("%(label)s: kind %(kind)s needs %(key)s")
            % {"label": label, "kind": kind.name, "key": key},
            key,
        )
    return options


def _type_problem(key: str, expected: OptionType, value: Any) -> str:
    """What is wrong with an option's value, or "". Never quotes the value: a wrong one
    may be a credential pasted in the wrong place."""
    if expected is OptionType.INT:
        ok = isinstance(value, int) and not isinstance(value, bool)
        return "" if ok else _("%(key)s must be a whole number") % {"key": key}
    if expected is OptionType.TEXT:
        return "" if isinstance(value, str) else _("%(key)s must be a string") % {"key": key}
    if expected is OptionType.BOOL:
        return "" if isinstance(value, bool) else _("%(key)s must be true or false") % {"key": key}
    if expected is OptionType.TEXT_LIST:
        ok = isinstance(value, str) or (
            isinstance(value, list) and all(isinstance(v, str) for v in value)
        )
        return "" if ok else _("%(key)s must be a string or a list of strings") % {"key": key}
    if expected is OptionType.ENV_TABLE:
        ok = isinstance(value, dict) and all(
            isinstance(name, str) and isinstance(env, str) and ENV_NAME.fullmatch(env)
            for name, env in value.items()
        )
        if not ok:
            return _(
                "%(key)s must be a table whose values name environment variables such as "
                "%(example)s, not hold the credentials themselves"
            ) % {"key": key, "example": ENV_EXAMPLES.get(key, DEFAULT_ENV_EXAMPLE)}
        return next(
            (
                _env_problem(key, variable)
                for variable in value.values()
                if is_app_variable(variable)
            ),
            "",
        )
    if expected is OptionType.ENV:
        return _env_problem(key, value)
    return _url_problem(key, value)


def _file_problem(key: str, value: Any) -> str:
    """What is wrong with the file a path option names, told when the check is saved
    rather than as a misconfigured result on each run. It is read where the check is
    saved: a worker on another machine needs the file at the same path too."""
    if key != "ca_file":
        return ""
    problem = ca_file_problem(value)
    return problem.translated() if problem is not None else ""


def _env_problem(key: str, value: Any) -> str:
    if not is_variable_name(value):
        return _(
            "%(key)s must name an environment variable such as %(example)s, "
            "not hold the credential itself"
        ) % {"key": key, "example": ENV_EXAMPLES.get(key, DEFAULT_ENV_EXAMPLE)}
    if is_app_variable(value):
        return _(
            "%(key)s must not name %(variable)s, which deploycheck reads for itself; name a "
            "variable that holds only this check's credential"
        ) % {"key": key, "variable": value}
    return ""


def _url_problem(key: str, value: Any) -> str:
    url = web_url(value)
    if url is None:
        return url_character_problem(key, value) or _(
            "%(key)s must be an http:// or https:// URL with a host"
        ) % {"key": key}
    if url.has_login:
        # The database never holds a credential; checks name the variable that does.
        return _("%(key)s must not hold credentials (user:password@); name a variable instead") % {
            "key": key
        }
    if key == "base_url" and url.scheme != "https" and not is_loopback(url.host):
        # A vendor kind sends its credential to base_url: in the clear only to a stand-in
        # on this machine.
        return _(
            "base_url must be an https:// URL; http:// only to this machine "
            "(localhost, 127.0.0.0/8, ::1)"
        )
    return ""


def carries_credential(value: Any) -> bool:
    """Whether a value holds a credential, which a checks file refuses wherever it is."""
    return find_credential(value) is not None


# --- loading into a release --------------------------------------------------------------


def load(path: str | Path, release: Release, *, by: workflow.By) -> LoadSummary:
    """Declare the file's checks on the release and link them to its items, all or
    nothing: on any fault ChecksFileError lists them all and nothing is written."""
    path = str(path)
    specs, perform_specs, problems = _parse(path)
    if problems.whole_file:
        raise ChecksFileError(problems.lines())
    return _declare(
        release, specs, problems, by=by, source=Path(path).name, perform_specs=perform_specs
    )


def parse_one(table: Mapping[str, Any]) -> CheckSpec | list[Fault]:
    """One check as a form gives it: the table a `[[check]]` of a file would hold, judged
    as loading that file would judge it, every fault worded the same."""
    problems = Problems("")
    spec = _parse_check(0, dict(table), Lines("", "check"), problems, {})
    if spec is None or problems:
        return problems.faults()
    return spec


def save(
    release: Release, spec: CheckSpec, *, by: workflow.By, new: bool, seen: str | None = None
) -> LoadSummary:
    """Declare one check (parse_one's) on the release and link it to the items its spec
    names, leaving the release's other checks as they are; all or nothing, as `load`.

    `new`: the name must not be an active check's (a retired one comes back). `seen`: the
    check's `updated_at` as the person saw it, in ISO format; a change made since then
    refuses the save with workflow.Conflict rather than undo it unseen. ChecksFileError
    lists what only the release can show: an item text naming two items, a name taken,
    CHECKS_MAX_PER_RELEASE reached."""
    return _declare(release, [spec], Problems(""), by=by, source=None, new=new, seen=seen)


def retire(release: Release, check: Check, *, by: workflow.By) -> bool:
    """Retire one check as a file that stops declaring it does: its row and its results
    stay, its items stop naming it. False when it was retired already."""
    with workflow.managing(release, by=by) as change:
        current = Check.objects.active().filter(release=change.on, pk=check.pk).first()
        if current is None:
            return False
        items = list(change.on.items.order_by("position"))
        markers = _markers(items, Check.objects.filter(release=change.on))
        marked = next((entry for entry in items if current.name in markers[entry.pk]), None)
        if marked is not None:
            # A file could not retire it either: every marker must name a declared check.
            raise workflow.WorkflowError(
                _(
                    "The checklist's item “%(item)s” names %(check)s with a check= marker, "
                    "so the check cannot be retired."
                )
                % {"item": marked.text, "check": current.name}
            )
        before = _snapshot(current, {entry.pk: entry.text for entry in items})
        now = timezone.now()
        # As `load` retires the checks a file no longer declares.
        Check.objects.filter(pk=current.pk).update(retired_at=now, updated_at=now)
        change.audit(AuditAction.CHECK_RETIRED, current.name, before, {**before, "retired": True})
        workflow.link_checks(
            change.on,
            checks_of={
                entry.pk: [name for name in entry.checks if name != current.name]
                for entry in items
                if current.name in entry.checks
            },
            summary={"source": ""},
            by=by,
        )
    return True


def _declare(
    release: Release,
    specs: Sequence[CheckSpec],
    problems: Problems,
    *,
    by: workflow.By,
    source: str | None,
    new: bool = False,
    seen: str | None = None,
    perform_specs: Sequence[PerformSpec] = (),
) -> LoadSummary:
    """What `load` and `save` share. `source` names the file that declares every check of
    the release, so that those it lacks retire; None for one check from a form, which
    leaves the others be."""
    whole_file = source is not None
    with workflow.managing(release, by=by) as change:
        # Under the release lock: two loads at once must not compute links from the
        # same old state.
        locked = change.on
        items = list(locked.items.order_by("position"))
        text_of = {entry.pk: entry.text for entry in items}
        existing = {check.name: check for check in Check.objects.filter(release=locked)}
        linked_to = _resolve_items(specs, items, locked.version, problems)
        markers = _markers(items, existing.values())
        declared = {spec.name for spec in specs}
        if whole_file:
            for entry in items:
                for name in markers[entry.pk]:
                    if name not in declared:
                        problems.add(
                            None,
                            _(
                                "item “%(item)s” has a check=%(name)s marker, "
                                "but the file declares no check %(name)s"
                            )
                            % {"item": entry.text, "name": name},
                        )
        else:
            _refuse_one(specs[0], existing, locked.version, problems, new=new, seen=seen)
        perform_of = _perform_links(perform_specs, items, locked.version, problems)
        if problems:
            raise ChecksFileError(problems.lines(), problems.faults())

        now = timezone.now()
        created: list[str] = []
        updated: list[str] = []
        for spec in specs:
            fields: dict[str, Any] = {
                "kind": spec.kind,
                "options": spec.options,
                # Only links the file alone makes: an item's own marker outlives the file.
                "linked_item_ids": [i for i in linked_to[spec.name] if spec.name not in markers[i]],
            }
            if whole_file:
                fields["source"] = f"{source}:{spec.line}"
            check = existing.get(spec.name)
            if check is None:
                check = Check.objects.create(
                    release=locked, name=spec.name, created_at=now, updated_at=now, **fields
                )
                created.append(spec.name)
                change.audit(AuditAction.CHECK_ADDED, spec.name, {}, _snapshot(check, text_of))
            elif check.retired_at is not None or any(
                getattr(check, key) != value for key, value in fields.items()
            ):
                before = _snapshot(check, text_of)
                # A form's change makes the page, not a file, where the check is declared.
                fields.setdefault("source", "")
                for key, value in fields.items():
                    setattr(check, key, value)
                check.retired_at = None
                check.updated_at = now
                check.save(update_fields=[*fields, "retired_at", "updated_at"])
                updated.append(spec.name)
                # A retired check declared again is added back.
                back = bool(before.get("retired"))
                action = AuditAction.CHECK_ADDED if back else AuditAction.CHECK_CHANGED
                change.audit(action, spec.name, before, _snapshot(check, text_of))
        retired = sorted(
            check.name
            for check in existing.values()
            if whole_file and check.name not in declared and check.retired_at is None
        )
        Check.objects.filter(release=locked, name__in=retired).retire(now)
        for name in retired:
            before = _snapshot(existing[name], text_of)
            change.audit(AuditAction.CHECK_RETIRED, name, before, {**before, "retired": True})

        checks_of: dict[int, list[str]] = {}
        linked_items = 0
        for entry in items:
            linking = [s.name for s in specs if entry.pk in linked_to[s.name]]
            if whole_file:
                wanted = list(dict.fromkeys([*markers[entry.pk], *linking]))
            else:
                # A form says only its own check's links: an item keeps its other checks,
                # and every check keeps its place.
                stays = [
                    name
                    for name in entry.checks
                    if name not in declared or name in markers[entry.pk] or name in linking
                ]
                wanted = list(dict.fromkeys([*stays, *linking]))
            if any(name in declared for name in wanted):
                linked_items += 1
            if linking or wanted != entry.checks:
                checks_of[entry.pk] = wanted
        summary: dict[str, Any] = {"source": source or ""}
        if whole_file:
            summary |= {"created": created, "updated": updated, "retired": retired}
        workflow.link_checks(locked, checks_of=checks_of, summary=summary, by=by)
        if perform_of:
            workflow.link_performs(locked, perform_of=perform_of, source=source or "", by=by)
    return LoadSummary(
        created=created,
        updated=updated,
        retired=retired,
        linked_items=linked_items,
        loaded=[spec.name for spec in specs],
        performing=len(perform_of) if perform_specs else None,
    )


def _perform_links(
    specs: Sequence[PerformSpec], items: Sequence[ReleaseItem], version: str, problems: Problems
) -> dict[int, str]:
    """The action of each item (by id) the `[[perform]]` tables name; an item given two
    different actions is a fault at the second."""
    linked = _resolve_items(specs, items, version, problems)
    perform_of: dict[int, str] = {}
    first: dict[int, PerformSpec] = {}
    for spec in specs:
        for item_id in linked[spec.name]:
            earlier = first.setdefault(item_id, spec)
            if earlier.action != spec.action:
                text = next(entry.text for entry in items if entry.pk == item_id)
                problems.add(
                    spec.line,
                    _(
                        "item “%(item)s” is given two actions: %(first)s (line %(line)d) "
                        "and %(second)s"
                    )
                    % {
                        "item": text,
                        "first": earlier.action,
                        "line": earlier.line,
                        "second": spec.action,
                    },
                    "item",
                )
            perform_of[item_id] = earlier.action
    return perform_of


def _refuse_one(
    spec: CheckSpec,
    existing: Mapping[str, Check],
    version: str,
    problems: Problems,
    *,
    new: bool,
    seen: str | None,
) -> None:
    """What refuses a form's one check besides the file's rules: a change made since the
    person saw it, an active check's name for a new one, a release at its limit."""
    check = existing.get(spec.name)
    if seen is not None and (check is None or check.updated_at.isoformat() != seen):
        raise workflow.Conflict(
            _(
                "Someone changed this check after you opened it, so nothing was saved. "
                "Its current values are on the Checks page; save again to replace them "
                "with what you typed."
            )
        )
    if new and check is not None and check.retired_at is None:
        problems.add(
            None,
            _("check name “%(name)s” is taken on %(version)s; edit that check")
            % {"name": spec.name, "version": version},
            "name",
        )
    limit: int = settings.CHECKS_MAX_PER_RELEASE
    active = sum(1 for other in existing.values() if other.retired_at is None)
    if (check is None or check.retired_at is not None) and active >= limit:
        problems.add(
            None,
            ngettext(
                "%(version)s has %(count)d check; a release may have at most %(limit)d "
                "(CHECKS_MAX_PER_RELEASE)",
                "%(version)s has %(count)d checks; a release may have at most %(limit)d "
                "(CHECKS_MAX_PER_RELEASE)",
                active,
            )
            % {"version": version, "count": active, "limit": limit},
        )


def _snapshot(check: Check, text_of: Mapping[int, str]) -> dict[str, Any]:
    """A check as its audit events show it: no credential, as the options hold none."""
    snapshot: dict[str, Any] = {
        "kind": check.kind,
        "options": check.options,
        "items": [text_of[i] for i in check.linked_item_ids if i in text_of],
        "source": check.source,
    }
    if check.retired_at is not None:
        snapshot["retired"] = True
    return snapshot


def _normal(text: str) -> str:
    return " ".join(text.split()).casefold()


def _resolve_items(
    specs: Sequence[CheckSpec] | Sequence[PerformSpec],
    items: Sequence[ReleaseItem],
    version: str,
    problems: Problems,
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
                problems.add(line, _no_match(text, items, version), "item")
            else:
                where = _all(
                    _("“%(item)s” in %(place)s") % {"item": m.text, "place": _place(m)}
                    for m in matches
                )
                problems.add(
                    line,
                    _("item “%(item)s” matches %(count)d items of %(version)s: %(where)s")
                    % {"item": text, "count": len(matches), "version": version, "where": where},
                    "item",
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
    names = {"item": text.strip(), "version": version}
    if not close:
        return _("item “%(item)s” matches no item of %(version)s") % names
    return _("item “%(item)s” matches no item of %(version)s; did you mean %(close)s?") % {
        **names,
        "close": _either(f"“{by_key[key]}”" for key in close),
    }


def _either(quoted: Iterable[str]) -> str:
    shown = list(quoted)
    if len(shown) == 1:
        return shown[0]
    return _("%(some)s or %(last)s") % {"some": ", ".join(shown[:-1]), "last": shown[-1]}


def _all(places: Iterable[str]) -> str:
    shown = list(places)
    joined = shown[0]
    for then in shown[1:]:
        joined = _("%(first)s and %(then)s") % {"first": joined, "then": then}
    return joined


def _place(entry: ReleaseItem) -> str:
    return " › ".join(part for part in (entry.phase, entry.section) if part) or (
        _("position %(position)d") % {"position": entry.position + 1}
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
