"""Markdown checklists: read a document into a typed :class:`Checklist`, write one back.

This module knows Markdown and nothing of Django, so it can be tested in milliseconds;
``releases.checklists`` turns its documents into templates and releases.

Reading
=======
Block structure comes from markdown-it-py (CommonMark, plus GFM tables and YAML front
matter); this module only interprets the tokens.

* Front matter (``---`` ... ``---`` at the top) is skipped.
* A single level-1 heading that opens the document (after front matter and comments),
  and is its only level-1 heading, is the title. The top-level paragraphs between the
  title and the next heading are the description (Markdown source, paragraphs joined by a
  blank line).
* A heading whose text contains "rollback", "reversión" or "reversion" opens the rollback
  plan; one that contains "contact" opens the emergency contacts. Headings deeper than
  such a heading belong to it. Neither is a phase.
* Of the other headings, the shallowest level present marks phases and the next marks
  sections; deeper headings fold into the section name as ``Section › Sub``. With one
  level only, headings are phases and items have section "".
* A task item is a list item whose first block is a paragraph starting with ``[ ]``,
  ``[x]`` or ``[X]`` and whitespace. Each one is one :class:`Item`, nested ones too. Its
  text is the paragraph's source after the marker, lines joined by one space. Anything
  inside an HTML comment is not an item. The tick itself is not kept: an item's state
  lives in its record (below).
* No task item is dropped silently. Lists and quotes nested deeper than markdown-it reads
  (19 levels, a quote counting as one and a list as two) are refused, and so, as a last
  defence, is any task item markdown-it saw that the rules here make neither an item nor
  part of a rollback step.
* The rollback plan: paragraphs before its first step are the intro; each top-level
  numbered item is a step, whose text is its Markdown source without its code blocks,
  and whose commands are the contents of those code blocks (a code block right after a
  step, not indented into it, counts as that step's too). A plan written as a task list
  instead has a step for each top-level task item, read the same way without its box;
  a task item after numbered steps is refused, as a checklist item under the wrong
  heading more likely than a step. A step is written back as a numbered item, its text
  first and its commands fenced below it, so a step that would read otherwise there is
  refused at the line to blame: raw HTML (such as ``<!--``) its text leaves open above
  its commands, which it would swallow, and text after a box that would open a code
  block or read as a link reference definition.
* The emergency contacts: a table whose first three columns are role, name and contact
  (more columns are joined into contact with " / ").
* Every problem is noted at the line to blame and reading goes on, so that one
  :class:`ChecklistError` lists them all (its ``problems``, at most
  :data:`MAX_PROBLEMS`); only more items than the limit stops the reading there.
* Limits, refused at the line to blame: at most ``max_items`` items
  (:data:`DEFAULT_MAX_ITEMS`); a title, phase names and section names of at most
  :data:`MAX_TITLE_LENGTH`, :data:`MAX_PHASE_LENGTH` and :data:`MAX_SECTION_LENGTH`
  characters, the sizes of their database columns; and no bidirectional control
  character (:func:`bidi_controls`) in headings, the description, items, the rollback
  plan or the contacts table, where it could make text read differently from what it is.

Annotations
===========
HTML comments starting with ``deploycheck:``, which GitHub does not render, carry what
plain Markdown cannot::

    - [ ] Certificados instalados <!-- deploycheck: owner=devops check=tls -->

    ### Pruebas
    <!-- deploycheck: owner=qa -->

    <!-- deploycheck: gate -->

Words: ``owner=<role>`` (one of :data:`ROLE_KEYS`), ``optional``, ``required``,
``check=<name>`` (repeatable; ``[a-z0-9][a-z0-9_.-]*``), ``perform=<action>`` (one per
item; releases.performs names the actions), ``gate``. At the end of an
item's text (or alone on a line inside the item) they apply to that item. On the lines
right under a heading, ``owner=``, ``optional`` and ``required`` are defaults for every
item under that heading; the deepest heading wins and the item's own words beat them.
``gate`` on a line of its own marks where the go-live gate stands: the items before it
must be settled before go-live is approved. Ordinary comments are ignored.

Records
=======
A release export is its template's export plus, for each item with something to say, a
signed record on its own line inside the item::

    - [x] Todas las pruebas unitarias pasan <!-- deploycheck: owner=qa -->
      <!-- deploycheck: record --> done by qa (Ana López) at 2026-11-27 10:32 UTC — evidence: https://ci.example/run/1

Grammar (``—`` is U+2014 EM DASH)::

    record  = "<!-- deploycheck: record -->" " " head *( " — " field )
    head    = state [ " by " value ] [ " at " value ]
    state   = "done" / "not applicable" / "blocked" / "failed" / "pending"
    field   = ( "reason" / "evidence" / "note" ) ": " value

Fields are written in the order reason, evidence, note and read in any order. In a
value a backslash escapes the next character: ``\\\\`` is a backslash, ``\\n`` a line
break, ``\\r`` a carriage return, ``\\—`` an em dash, and in the ``by`` value ``\\at``
keeps a word "at" from ending the name. ``&`` and ``<`` are written ``&amp;`` and ``&lt;``,
so that a renderer passing raw HTML through shows a value as text, never as markup or as
a comment swallowing what follows; any other ``&`` reads as itself. Blanks around a value
are not kept. The box is ``[x]`` exactly when the state is done. Importing a release
export gives back its template: records are read into :attr:`Item.record` and nothing
else changes.

Rollback steps
==============
A step's owner (the role that ticks it when a rollback is declared; DevOps when none is
given) is an ``owner=`` annotation ending the step's first line, or on a line of its own
inside the step; no other word applies to a step. A release export writes, on a line of
its own at the end of each step with something to say, how it went in the release's
latest rollback, in the record grammar above with the state ``done`` or ``pending``::

    2. **Rollback de Backend**: <!-- deploycheck: owner=backend -->

       ```bash
       docker-compose up -d backend
       ```

       <!-- deploycheck: record --> done by devops (Dana) at 2026-12-07 01:10 UTC

Writing
=======
:func:`render_checklist` writes the canonical form: title, description, items grouped
under ``##`` phase and ``###`` section headings in their order, every non-default
annotation spelled out on its item, the gate on its own line, then the rollback plan and
the contacts table. An item whose text holds "<!" gets its annotation on the next line,
where an unclosed comment in the text cannot swallow it. Reading the output back gives
the same document, and writing that again gives the same bytes.
"""

from __future__ import annotations

import os
import re
import unicodedata
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from itertools import islice
from types import MappingProxyType
from typing import ClassVar, Final, NamedTuple

from markdown_it import MarkdownIt
from markdown_it.token import Token
from mdit_py_plugins.front_matter import front_matter_plugin

from . import performs


# Named as Django's markers so that makemessages collects the messages written with them;
# this module imports no Django, so they only keep each message's parts, and the Django
# layer (releases.checklists.translated) translates them where they are shown.
def gettext_noop(message: str, /, **params: object) -> Message:
    return Message(message, params=params)


def ngettext_lazy(singular: str, plural: str, number: int, /, **params: object) -> Message:
    return Message(singular, plural, number, params)


@dataclass(frozen=True)
class Message:
    """A message in English, with what translating it takes: its plural and count, and
    the values (strings, numbers or other messages) it is formatted with."""

    singular: str
    plural: str = ""
    count: int | None = None
    params: Mapping[str, object] = field(default_factory=dict)

    def __str__(self) -> str:
        text = self.plural if self.plural and self.count != 1 else self.singular
        if not self.params:
            return text
        return text % {key: str(value) for key, value in self.params.items()}


ROLE_KEYS: Final = ("devops", "backend", "frontend", "qa", "po", "support")
RECORD_STATES: Final = ("done", "na", "blocked", "failed", "pending")
MAX_FILE_BYTES: Final = 1024 * 1024
DEFAULT_MAX_ITEMS: Final = 2000
# The sizes of the database columns these names are stored in.
MAX_TITLE_LENGTH: Final = 300
MAX_PHASE_LENGTH: Final = 300
MAX_SECTION_LENGTH: Final = 300
NO_ITEMS_MESSAGE: Final = gettext_noop(
    "no task items found (a task item is a list item starting with [ ] or [x])"
)

_ROLLBACK_WORDS: Final = ("rollback", "reversión", "reversion")
_CONTACT_WORDS: Final = ("contact",)
_STATE_WORDS: Final = {
    "done": "done",
    "na": "not applicable",
    "blocked": "blocked",
    "failed": "failed",
    "pending": "pending",
}
_RECORD_FIELDS: Final = ("reason", "evidence", "note")
_STEP_RECORD_STATES: Final = ("done", "pending")
# A deploycheck comment ending a step's first line: its owner.
_TRAILING_DIRECTIVE_RE: Final = re.compile(r"[ \t]*(<!--\s*deploycheck:.*?-->)[ \t]*\Z")
_GATE_LINE: Final = "<!-- deploycheck: gate -->"
_RECORD_OPENER: Final = "<!-- deploycheck: record -->"
_DIRECTIVE_RE: Final = re.compile(r"<!--\s*deploycheck:(.*?)-->(.*)\Z", re.DOTALL)
_CHECK_NAME_RE: Final = re.compile(r"[a-z0-9][a-z0-9_.-]*")
_TASK_MARKER_RE: Final = re.compile(r"\[[ xX]\](?=[ \t\n]|\Z)")
_LIST_MARKER_RE: Final = re.compile(r"( *)(\d+[.)]|[-*+])( *)")
# The start of a line on which a task item's paragraph can begin: indentation, quote and
# list markers, then the box. Lines in code, comments or front matter match too.
_TASK_LINE_RE: Final = re.compile(r"^(?:[ \t>]|(?:[-*+]|\d{1,9}[.)])[ \t])*\[[ xX]\]", re.MULTILINE)
_BIDI_CONTROL_RE: Final = re.compile("[\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]")
_FIELD_SEPARATOR: Final = " — "

# markdown-it's own default, spelled out because the reader depends on it: markdown-it
# opens no block this deep, and skips the content of a quote or list item one level up.
_MAX_NESTING: Final = 20
_MD: Final = (
    MarkdownIt("commonmark", {"maxNesting": _MAX_NESTING}).enable("table").use(front_matter_plugin)
)


class ChecklistError(Exception):
    """A document that cannot be read; ``line`` is 1-based, or None when no line is to blame.

    ``problems`` is every problem found, this one first: the reader goes on past a
    mistake so that a file can be fixed in one go, and raises when it has read it all.
    """

    def __init__(
        self,
        line: int | None,
        message: Message | str,
        more: Sequence[ChecklistError] = (),
    ) -> None:
        self.text = message if isinstance(message, Message) else Message(message)
        self.line = line
        self.message = str(self.text)
        super().__init__(self.message if line is None else f"line {line}: {self.message}")
        self.problems: tuple[ChecklistError, ...] = (self, *more)
        # Whether there were more problems than MAX_PROBLEMS, which ``problems`` leaves out.
        self.truncated = False


class _TooMuch(ChecklistError):
    """A problem after which the rest of the document is not read: more items than the
    limit would only repeat it, once per item."""


# Problems listed at most, so that a large file made only of mistakes stays a page one
# can read; the list says when it stops short.
MAX_PROBLEMS: Final = 100


@dataclass(frozen=True)
class Record:
    """How a release settled an item, and who says so. ``state`` is one of RECORD_STATES."""

    state: str
    by: str = ""
    at: str = ""
    reason: str = ""
    note: str = ""
    evidence: str = ""

    def __post_init__(self) -> None:
        if self.state not in RECORD_STATES:
            raise ValueError(f"unknown record state {self.state!r}")


@dataclass(frozen=True)
class Item:
    text: str
    phase: str
    section: str
    owner: str | None
    required: bool = True
    checks: tuple[str, ...] = ()
    # What the app does for the item when a person presses "perform" (releases.performs),
    # as written.
    perform: str = ""
    # Where the item was read from, for error messages; two documents that differ only
    # in layout are still equal.
    line: int = field(default=0, compare=False)
    record: Record | None = None

    def __post_init__(self) -> None:
        if not self.text or "\n" in self.text:
            raise ValueError(f"an item's text is one non-empty line, not {self.text!r}")
        if self.owner is not None and self.owner not in ROLE_KEYS:
            raise ValueError(f"unknown owner {self.owner!r}")
        bad = [name for name in self.checks if not _CHECK_NAME_RE.fullmatch(name)]
        if bad:
            raise ValueError(f"bad check names {bad!r}")
        if self.perform and performs.parse(self.perform) is None:
            raise ValueError(f"unknown perform action {self.perform!r}")


@dataclass(frozen=True)
class RollbackStep:
    """``owner`` None is the default owner (DevOps). ``record``: how the step went in a
    release's rollback, its state "done" or "pending"."""

    text: str
    commands: str
    lang: str = ""
    owner: str | None = None
    record: Record | None = None

    def __post_init__(self) -> None:
        if not self.text and not self.commands:
            raise ValueError("a rollback step needs text or commands")
        if self.owner is not None and self.owner not in ROLE_KEYS:
            raise ValueError(f"unknown owner {self.owner!r}")
        if self.record is not None and self.record.state not in _STEP_RECORD_STATES:
            raise ValueError(f"a step's record is done or pending, not {self.record.state!r}")


@dataclass(frozen=True)
class RollbackPlan:
    """A rollback plan on its own, as written under its heading: what the plan's editor
    reads and writes."""

    intro: str = ""
    steps: tuple[RollbackStep, ...] = ()


@dataclass(frozen=True)
class Contact:
    role: str
    name: str
    contact: str


@dataclass(frozen=True)
class Checklist:
    """A checklist document. ``gate_index`` is the index of the first item after the gate
    (``len(items)`` when every item is before it), or None when there is no gate."""

    DEFAULT_CONTACTS_HEADER: ClassVar[tuple[str, str, str]] = ("Role", "Name", "Contact")

    title: str
    description: str = ""
    items: tuple[Item, ...] = ()
    gate_index: int | None = None
    rollback_heading: str = ""
    rollback_intro: str = ""
    rollback_steps: tuple[RollbackStep, ...] = ()
    contacts_heading: str = ""
    contacts: tuple[Contact, ...] = ()
    contacts_header: tuple[str, str, str] = DEFAULT_CONTACTS_HEADER

    def __post_init__(self) -> None:
        # Each rule keeps render_checklist's output readable as this same document.
        if self.gate_index is not None and not 0 <= self.gate_index <= len(self.items):
            raise ValueError(f"gate_index {self.gate_index} is outside 0..{len(self.items)}")
        _require_heading(
            "rollback", self.rollback_heading, bool(self.rollback_intro or self.rollback_steps)
        )
        _require_heading("contacts", self.contacts_heading, bool(self.contacts))
        for item in self.items:
            for name in (item.phase, item.section):
                kind = _heading_kind(name)
                if kind is not None:
                    raise ValueError(f"the heading {name!r} would read as the {kind}")

    @property
    def phases(self) -> tuple[str, ...]:
        """Phase names in order of first appearance ("" for items before any heading)."""
        return tuple(dict.fromkeys(item.phase for item in self.items))

    @property
    def sections(self) -> tuple[tuple[str, str], ...]:
        """(phase, section) pairs in order of first appearance."""
        return tuple(dict.fromkeys((item.phase, item.section) for item in self.items))

    def summary(self) -> str:
        phases = sum(1 for phase in self.phases if phase)
        sections = sum(1 for _, section in self.sections if section)
        return (
            f"{phases} phases, {sections} sections, {len(self.items)} items, "
            f"{len(self.rollback_steps)} rollback steps, {len(self.contacts)} emergency contacts"
        )


class OwnerDefaults(NamedTuple):
    section_owners: Mapping[str, str]
    item_owners: Mapping[str, str]
    gate_before_section: str | None


# The seed's owners when its file leaves them unsaid, a starting point staff edit per
# release. By section: code, integrations and documentation are the Backend Lead's;
# tests, post-deploy verification and validation the QA Lead's; security,
# infrastructure, configuration, the deploy process and monitoring the DevOps Lead's;
# preparation and communication the Product Owner's. By item, which wins over the
# section: deploying the frontend and checking the experience on devices are the
# Frontend Lead's, deploying the backend and the database migrations the Backend Lead's.
#
# The go-live gate: the required items before it must be settled before the Product
# Owner may approve, and approval's digest covers only them, so the deploy itself and
# the checks after it never revoke an approval. The seed's gate stands before "Proceso
# de Despliegue": all of Pre-Despliegue plus Despliegue › Preparación.
SEED_DEFAULTS: Final = OwnerDefaults(
    section_owners=MappingProxyType(
        {
            "Código y Control de Versiones": "backend",
            "Integraciones": "backend",
            "Documentación": "backend",
            "Pruebas": "qa",
            "Verificación Post-Despliegue": "qa",
            "Validación": "qa",
            "Seguridad": "devops",
            "Infraestructura": "devops",
            "Configuración": "devops",
            "Proceso de Despliegue": "devops",
            "Monitoreo": "devops",
            "Preparación": "po",
            "Comunicación": "po",
        }
    ),
    item_owners=MappingProxyType(
        {
            "Desplegar el frontend": "frontend",
            "Validar la experiencia de usuario en diferentes dispositivos": "frontend",
            "Desplegar el backend": "backend",
            "Desplegar la base de datos (migraciones)": "backend",
        }
    ),
    gate_before_section="Proceso de Despliegue",
)


def apply_default_owners(
    doc: Checklist,
    section_owners: Mapping[str, str],
    item_owners: Mapping[str, str],
    gate_before_section: str | None,
) -> Checklist:
    """Fill in owners a document leaves unsaid: by the item's exact text first, then by its
    section name. Owners already written in the document stay. Items that match neither
    keep ``owner=None``; the Django layer decides whether to refuse them or give them a
    default role. With ``gate_before_section``, the gate moves to just before the first
    item of that section.
    """
    items = tuple(
        item
        if item.owner is not None
        else replace(item, owner=item_owners.get(item.text, section_owners.get(item.section)))
        for item in doc.items
    )
    gate_index = doc.gate_index
    if gate_before_section is not None:
        gate_index = next(
            (index for index, item in enumerate(items) if item.section == gate_before_section),
            None,
        )
        if gate_index is None:
            raise ChecklistError(
                None,
                gettext_noop(
                    "no section named %(name)s to put the gate before",
                    name=repr(gate_before_section),
                ),
            )
    return replace(doc, items=items, gate_index=gate_index)


def read_checklist_file(
    path: str | os.PathLike[str], *, max_items: int = DEFAULT_MAX_ITEMS
) -> Checklist:
    """Read a checklist file; OSError propagates, everything else is a ChecklistError."""
    with open(path, "rb") as file:
        # Read one byte past the limit, so an enormous file is never read whole.
        data = file.read(MAX_FILE_BYTES + 1)
        if len(data) > MAX_FILE_BYTES:
            raise _too_large(max(os.fstat(file.fileno()).st_size, len(data)))
    return read_checklist_bytes(data, max_items=max_items)


def read_checklist_bytes(data: bytes, *, max_items: int = DEFAULT_MAX_ITEMS) -> Checklist:
    """Read an uploaded checklist: at most MAX_FILE_BYTES of UTF-8 text, BOM or not."""
    return parse_checklist(decode_checklist_bytes(data), max_items=max_items)


def decode_checklist_bytes(data: bytes) -> str:
    """The text of at most MAX_FILE_BYTES of UTF-8, or ChecklistError saying why not."""
    if len(data) > MAX_FILE_BYTES:
        raise _too_large(len(data))
    nul = data.find(b"\0")
    if nul >= 0:
        raise ChecklistError(
            _line_of_byte(data, nul), gettext_noop("binary file (it contains NUL bytes)")
        )
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as error:
        raise ChecklistError(
            _line_of_byte(data, error.start),
            gettext_noop(
                "not UTF-8 text (byte %(byte)s cannot be read)", byte=f"0x{data[error.start]:02x}"
            ),
        ) from None
    return text


def parse_checklist(text: str, *, max_items: int = DEFAULT_MAX_ITEMS) -> Checklist:
    """Read a Markdown checklist of at most ``max_items`` items; raises ChecklistError
    naming the line to blame."""
    # markdown-it normalises line ends the same way; the rollback steps slice source lines
    # by token line numbers, so both must agree.
    source = text.removeprefix("\ufeff").replace("\r\n", "\n").replace("\r", "\n")
    _refuse_too_many_items(source, max_items)
    return _Reader(source, max_items).read()


def bidi_controls(text: str) -> list[str]:
    """The bidirectional control characters in ``text``, such as "U+202E", each once, in
    order of appearance. They are invisible and reorder the text around them, so what is
    shown can differ from what is stored, copied or run."""
    return list(dict.fromkeys(f"U+{ord(char):04X}" for char in _BIDI_CONTROL_RE.findall(text)))


def blank_or_control(text: str) -> str | None:
    """The first whitespace or control character (C0, DEL, C1) in ``text``, or None. A
    link or URL holds none: written into a request they split or end its lines, and
    URL parsers drop some of them silently, so what is sent is not what reads."""
    return next((c for c in text if c.isspace() or unicodedata.category(c) == "Cc"), None)


def render_checklist(doc: Checklist) -> str:
    blocks: list[str] = []
    if doc.title:
        blocks.append(_heading_line(1, doc.title))
    if doc.description:
        blocks.append(doc.description)
    blocks.extend(_render_items(doc))
    if doc.rollback_heading:
        blocks.append(_heading_line(2, doc.rollback_heading))
        blocks.extend(_plan_blocks(RollbackPlan(doc.rollback_intro, doc.rollback_steps)))
    if doc.contacts_heading:
        blocks.append(_heading_line(2, doc.contacts_heading))
        if doc.contacts or doc.contacts_header != Checklist.DEFAULT_CONTACTS_HEADER:
            blocks.append(_render_contacts(doc))
    return "\n\n".join(blocks) + "\n"


def render_rollback_plan(plan: RollbackPlan) -> str:
    """The plan as render_checklist writes it under its heading; "" for an empty plan."""
    blocks = _plan_blocks(plan)
    return "\n\n".join(blocks) + "\n" if blocks else ""


def _plan_blocks(plan: RollbackPlan) -> list[str]:
    blocks = [plan.intro] if plan.intro else []
    blocks.extend(_render_step(number, step) for number, step in enumerate(plan.steps, 1))
    return blocks


def _refuse_noted(reader: _Reader) -> None:
    """The reader notes a problem and reads on, to list them all; the plan's editor
    answers each block as it comes, so a noted problem ends it there."""
    if reader.problems:
        raise reader._failure()


def parse_rollback_plan(text: str) -> RollbackPlan:
    """Read a rollback plan written alone, without its heading (the plan's editor), by the
    rules of a whole checklist's plan; errors name lines of ``text``.

    Stricter than a checklist, since a person is typing it and sees no other place the
    text could go: a block the plan would not keep (a paragraph after the steps, a plain
    list, a heading) is refused rather than left out, a record is refused (how a step went
    is written by a rollback, not typed), and a plan needs a step."""
    source = text.removeprefix("\ufeff").replace("\r\n", "\n").replace("\r", "\n")
    reader = _Reader(source, None)
    reader.region = _Region("rollback", "rollback plan")
    tokens = reader.tokens
    for start, end in _blocks(tokens, 0, len(tokens)):
        token = tokens[start]
        if token.type == "html_block":
            reader._html_block(token, None, None)
            _refuse_noted(reader)
            continue
        if token.type == "heading_open":
            raise ChecklistError(
                _line(token),
                gettext_noop("a heading has no place in the rollback plan; write it as bold text"),
            )
        if token.type == "bullet_list_open":
            for item_start, _ in _blocks(tokens, start + 1, end - 1):
                if not _task_marker(tokens, item_start):
                    raise ChecklistError(_line(tokens[item_start]), _PLAN_KEEPS)
        kept = reader.plan_size()
        reader._rollback_block(start, end)
        _refuse_noted(reader)
        if reader.plan_size() == kept:
            raise ChecklistError(_line(token), _PLAN_KEEPS)
    reader._refuse_lost_items()
    _refuse_noted(reader)
    if reader.gate is not None:
        raise ChecklistError(
            reader.gate[1],
            gettext_noop("the go-live gate stands among the checklist's items, not in the plan"),
        )
    for draft in reader.steps:
        if draft.record is not None:
            raise ChecklistError(
                draft.line,
                gettext_noop(
                    "a record says how a step went in a rollback; it is written there, not "
                    "typed into the plan"
                ),
            )
    if not reader.steps:
        raise ChecklistError(
            None, gettext_noop("no steps found (a step is a numbered item, such as 1. ...)")
        )
    return RollbackPlan(
        intro="\n\n".join(reader.rollback_intro),
        steps=tuple(draft.finish() for draft in reader.steps),
    )


_PLAN_KEEPS: Final = gettext_noop(
    "the plan would not keep this: text goes before the first step or inside a step "
    "(indented under its number), and steps are a numbered list"
)


# Reading ------------------------------------------------------------------------------


@dataclass
class _Annotations:
    owner: str | None = None
    required: bool | None = None
    checks: list[str] = field(default_factory=list)
    perform: str = ""

    def apply(self, word: str, line: int) -> None:
        key, _, value = word.partition("=")
        if key == "owner":
            if self.owner is not None and self.owner != value:
                raise _two_owners(line, self.owner, value)
            self.owner = value
        elif key == "check":
            if value in self.checks:
                raise ChecklistError(
                    line, gettext_noop("check %(name)s is given twice", name=repr(value))
                )
            self.checks.append(value)
        elif key == "perform":
            if self.perform:
                raise ChecklistError(
                    line,
                    gettext_noop(
                        "two perform actions (%(first)s and %(second)s); an item has one",
                        first=repr(self.perform),
                        second=repr(value),
                    ),
                )
            self.perform = value
        else:
            required = word == "required"
            if self.required not in (None, required):
                raise ChecklistError(line, gettext_noop("both optional and required"))
            self.required = required


@dataclass
class _Scope:
    """A heading, with the defaults written under it."""

    level: int
    text: str
    line: int = 0
    annotations: _Annotations = field(default_factory=_Annotations)


@dataclass
class _ItemDraft:
    text: str
    phase: str
    section: str
    line: int
    ticked: bool
    default_owner: str | None
    default_required: bool | None
    annotations: _Annotations
    record: Record | None = None

    def finish(self) -> Item:
        if self.record is not None and self.ticked != (self.record.state == "done"):
            state = repr(_STATE_WORDS[self.record.state])
            raise ChecklistError(
                self.line,
                gettext_noop("the box is ticked but the record says %(state)s", state=state)
                if self.ticked
                else gettext_noop(
                    "the box is not ticked but the record says %(state)s", state=state
                ),
            )
        owner = self.annotations.owner if self.annotations.owner is not None else self.default_owner
        required = self.annotations.required
        if required is None:
            required = self.default_required if self.default_required is not None else True
        return Item(
            text=self.text,
            phase=self.phase,
            section=self.section,
            owner=owner,
            required=required,
            checks=tuple(self.annotations.checks),
            perform=self.annotations.perform,
            line=self.line,
            record=self.record,
        )


@dataclass
class _StepDraft:
    line: int
    text: str = ""
    # The source line of each line of text, to blame.
    text_lines: list[int] = field(default_factory=list)
    commands: list[str] = field(default_factory=list)
    lang: str | None = None
    owner: str | None = None
    record: Record | None = None

    def add_code(self, token: Token) -> None:
        content = token.content.removesuffix("\n")
        if not content:
            return
        self.commands.append(content)
        if self.lang is None:
            self.lang = token.info.strip() if token.type == "fence" else ""

    def finish(self) -> RollbackStep:
        if not self.text and not self.commands:
            raise ChecklistError(self.line, gettext_noop("empty rollback step"))
        step = RollbackStep(self.text, "\n".join(self.commands), self.lang or "")
        misreading = _export_misreading(step)
        if misreading is not None:
            index, why = misreading
            raise ChecklistError(self.text_lines[index], why)
        return replace(step, owner=self.owner, record=self.record)

    def annotate(self, comment: str, line: int) -> None:
        """A deploycheck comment of the step: owner= (ending its first line or on a line
        of its own), or its record (on a line of its own)."""
        directive = _directive(comment, line)
        if directive is None:
            return
        words, rest = directive
        if words == ["record"]:
            if self.record is not None:
                raise ChecklistError(
                    line, gettext_noop("a second record for the same rollback step")
                )
            record = _parse_record(rest, line)
            if record.state not in _STEP_RECORD_STATES:
                raise ChecklistError(
                    line, gettext_noop("a rollback step's record is done or pending")
                )
            self.record = record
            return
        if rest:
            raise _text_after_comment(line, rest)
        for word in words:
            key, _, value = word.partition("=")
            if key != "owner":
                raise ChecklistError(
                    line,
                    gettext_noop(
                        "%(word)s does not apply to a rollback step (only owner= does)",
                        word=repr(word),
                    ),
                )
            if self.owner is not None and self.owner != value:
                raise _two_owners(line, self.owner, value)
            self.owner = value


@dataclass
class _Region:
    """Where the reader is: under phase headings (kind "items"), in the rollback plan or in
    the contacts."""

    kind: str
    heading: str = ""


class _Reader:
    def __init__(self, source: str, max_items: int | None) -> None:
        """``max_items`` None reads any number of items."""
        self.lines = source.split("\n")
        self.max_items = max_items
        self.tokens: list[Token] = _MD.parse(source)
        self.kinds, self.phase_level = self._classify_headings()
        self.scopes = [_Scope(0, "")]  # the document itself; the title's defaults land here
        self.region = _Region("items")
        self.in_preamble = True
        self.title = ""
        self.description: list[str] = []
        self.drafts: list[_ItemDraft] = []
        # Indexes of the tokens read as items or as part of rollback steps.
        self.kept: set[int] = set()
        self.gate: tuple[int, int] | None = None  # (gate_index, line)
        self.rollback_heading = ""
        self.rollback_intro: list[str] = []
        self.steps: list[_StepDraft] = []
        self.numbered_steps = False
        self.contacts_heading = ""
        self.contacts: list[Contact] = []
        self.contacts_header: tuple[str, str, str] | None = None
        self.problems: list[ChecklistError] = []
        self.unread_items = 0  # task items refused, which no-items must not overlook
        self.stopped = False

    def read(self) -> Checklist:
        self.scan()
        self._refuse_lost_items()
        if not self.drafts and not self.unread_items:
            self._note(ChecklistError(None, NO_ITEMS_MESSAGE))
        items: list[Item] = []
        for draft in self.drafts:
            with self._going_on():
                items.append(draft.finish())
        steps: list[RollbackStep] = []
        for step in self.steps:
            with self._going_on():
                steps.append(step.finish())
        if self.problems:
            raise self._failure()
        return Checklist(
            title=self.title,
            description="\n\n".join(self.description),
            items=tuple(items),
            gate_index=self.gate[0] if self.gate else None,
            rollback_heading=self.rollback_heading,
            rollback_intro="\n\n".join(self.rollback_intro),
            rollback_steps=tuple(steps),
            contacts_heading=self.contacts_heading,
            contacts=tuple(self.contacts),
            contacts_header=self.contacts_header or Checklist.DEFAULT_CONTACTS_HEADER,
        )

    def _note(self, problem: ChecklistError) -> None:
        """Keep a problem and read on; stop at one that ends the reading, or at one more
        than MAX_PROBLEMS."""
        self.problems.append(problem)
        if isinstance(problem, _TooMuch) or len(self.problems) > MAX_PROBLEMS:
            self.stopped = True
            raise self._failure()

    @contextmanager
    def _going_on(self) -> Iterator[None]:
        """Note a problem raised inside, and go on after the block."""
        try:
            yield
        except ChecklistError as problem:
            if self.stopped:
                raise
            self._note(problem)

    def _failure(self) -> ChecklistError:
        first, *more = self.problems[:MAX_PROBLEMS]
        failure = ChecklistError(first.line, first.text, more)
        failure.truncated = len(self.problems) > MAX_PROBLEMS
        return failure

    def plan_size(self) -> tuple[int, int, int]:
        """How much of the rollback plan has been read: what grows when a block is kept."""
        commands = len(self.steps[-1].commands) if self.steps else 0
        return len(self.steps), len(self.rollback_intro), commands

    def scan(self) -> None:
        """Read the blocks in order, noting each mistake in ``problems``; read() checks the
        result."""
        below_heading: _Scope | None = None
        for start, end in _blocks(self.tokens, 0, len(self.tokens)):
            token = self.tokens[start]
            if token.type == "heading_open":
                below_heading = None
                with self._going_on():
                    below_heading = self._heading(start, self.kinds[start])
            elif token.type == "html_block":
                with self._going_on():
                    self._html_block(token, below_heading, None)
            else:
                below_heading = None
                with self._going_on():
                    self._block(start, end)

    def _refuse_lost_items(self) -> None:
        """Refuse what markdown-it skipped, and any task item it read that no rule kept."""
        for index, token in enumerate(self.tokens):
            if token.type in ("blockquote_open", "list_item_open") and (
                token.level >= _MAX_NESTING - 1
            ):
                self._note(
                    ChecklistError(
                        _line(token),
                        gettext_noop(
                            "lists and quotes nest too deeply here: markdown-it reads no "
                            "deeper, so what is inside would be lost (the limit is %(limit)s "
                            "levels, a quote counting as one and a list as two)",
                            limit=_MAX_NESTING - 1,
                        ),
                    )
                )
            elif (
                token.type == "list_item_open"
                and index not in self.kept
                and _task_marker(self.tokens, index)
            ):
                self._note(
                    ChecklistError(
                        _line(token),
                        gettext_noop(
                            "this task item would be lost: it is read neither as an item nor "
                            "as part of a rollback step"
                        ),
                    )
                )

    def _classify_headings(self) -> tuple[dict[int, str], int | None]:
        """Give every top-level heading a kind (title, rollback, contacts, nested, phase)
        before reading, since which level marks phases depends on all of them."""
        headings = [
            (start, int(self.tokens[start].tag[1:]), _inline_line(self.tokens[start + 1]))
            for start, _ in _blocks(self.tokens, 0, len(self.tokens))
            if self.tokens[start].type == "heading_open"
        ]
        # Front matter and comments (license notes, linter switches) are not seen.
        opening = next(
            (
                t
                for t in self.tokens
                if t.type != "front_matter"
                and not (t.type == "html_block" and t.content.lstrip().startswith("<!--"))
            ),
            None,
        )
        title_at = None
        if (
            opening is not None
            and opening.tag == "h1"
            and opening.type == "heading_open"
            and sum(1 for _, level, _ in headings if level == 1) == 1
        ):
            title_at = headings[0][0]
        kinds: dict[int, str] = {}
        region_level: int | None = None
        for start, level, text in headings:
            kind = _heading_kind(text)
            if start == title_at:
                kinds[start] = "title"
            elif region_level is not None and level > region_level:
                kinds[start] = "nested"
            elif kind is not None:
                kinds[start], region_level = kind, level
            else:
                kinds[start], region_level = "phase", None
        levels = [level for start, level, _ in headings if kinds[start] == "phase"]
        return kinds, min(levels, default=None)

    def _heading(self, start: int, kind: str) -> _Scope:
        token = self.tokens[start]
        level = int(token.tag[1:])
        text = _inline_line(self.tokens[start + 1])
        self._refuse_bidi(token)
        if kind == "title":
            if len(text) > MAX_TITLE_LENGTH:
                raise too_long(_line(token), gettext_noop("the title"), len(text), MAX_TITLE_LENGTH)
            self.title = text
            return self.scopes[0]
        self.in_preamble = False
        if kind == "nested":
            return _Scope(level, text)  # defaults under it would have no items to apply to
        while self.scopes[-1].level >= level:
            self.scopes.pop()
        if kind == "phase":
            self.region = _Region("items")
            self.scopes.append(_Scope(level, text, _line(token)))
            return self.scopes[-1]
        self.region = _Region(kind, text)
        if kind == "rollback":
            if self.rollback_heading:
                raise ChecklistError(_line(token), gettext_noop("a second rollback plan heading"))
            self.rollback_heading = text
        else:
            if self.contacts_heading:
                raise ChecklistError(
                    _line(token), gettext_noop("a second emergency contacts heading")
                )
            self.contacts_heading = text
        return _Scope(level, text)

    def _block(self, start: int, end: int) -> None:
        token = self.tokens[start]
        if self.region.kind == "items":
            if token.type == "paragraph_open" and self.in_preamble:
                self._refuse_bidi(token)
                self.description.append(self.tokens[start + 1].content)
            self._scan_items(start, end)
        elif self.region.kind == "rollback":
            self._rollback_block(start, end)
        elif token.type == "table_open":
            self._contacts_table(start, end)
        else:
            self._refuse_task_items(start, end, gettext_noop("the emergency contacts are a table"))

    def _scan_items(self, start: int, end: int) -> None:
        open_items: list[_ItemDraft | None] = []  # innermost list item last; None: not a task
        for index in range(start, end):
            token = self.tokens[index]
            if token.type == "list_item_open":
                draft = None
                try:
                    draft = self._task_item(index)
                except ChecklistError as problem:
                    if self.stopped:
                        raise
                    # Said once, here: not again as an item that would be lost.
                    self.kept.add(index)
                    self.unread_items += 1
                    self._note(problem)
                open_items.append(draft)
            elif token.type == "list_item_close":
                open_items.pop()
            elif token.type == "html_block":
                with self._going_on():
                    self._html_block(token, None, open_items[-1] if open_items else None)

    def _task_item(self, index: int) -> _ItemDraft | None:
        marker = _task_marker(self.tokens, index)
        if marker is None:
            return None
        inline = self.tokens[index + 2]
        line = _line(inline)
        # A refused item counts: the file has it all the same.
        if len(self.drafts) + self.unread_items == self.max_items:
            raise _too_many_items(line, self.max_items)
        self._refuse_bidi(inline)
        annotations = _Annotations()
        text = self._item_text(inline, marker.end(), line, annotations)
        if not text:
            raise ChecklistError(line, gettext_noop("task item without text"))
        phase_scope = next((s for s in self.scopes if s.level == self.phase_level), None)
        phase = phase_scope.text if phase_scope is not None else ""
        if phase_scope is not None and len(phase) > MAX_PHASE_LENGTH:
            raise too_long(
                phase_scope.line, gettext_noop("the heading"), len(phase), MAX_PHASE_LENGTH
            )
        section_scopes = [
            s
            for s in self.scopes
            if self.phase_level is not None and s.level > self.phase_level and s.text
        ]
        section = " › ".join(s.text for s in section_scopes)
        if len(section) > MAX_SECTION_LENGTH:
            name = (
                gettext_noop("the heading")
                if len(section_scopes) == 1
                else gettext_noop("the section name this heading completes")
            )
            raise too_long(section_scopes[-1].line, name, len(section), MAX_SECTION_LENGTH)
        draft = _ItemDraft(
            text=text,
            phase=phase,
            section=section,
            line=line,
            ticked=marker.group() != "[ ]",
            default_owner=next(
                (s.annotations.owner for s in reversed(self.scopes) if s.annotations.owner), None
            ),
            default_required=next(
                (
                    s.annotations.required
                    for s in reversed(self.scopes)
                    if s.annotations.required is not None
                ),
                None,
            ),
            annotations=annotations,
        )
        self.drafts.append(draft)
        self.kept.add(index)
        return draft

    def _item_text(self, inline: Token, marker_end: int, line: int, into: _Annotations) -> str:
        """The item's text without its trailing deploycheck comments, which go ``into``."""
        body = inline.content
        children = list(inline.children or ())
        comments: list[tuple[str, int]] = []
        while children:
            last = children[-1]
            if last.type in ("softbreak", "hardbreak") or (
                last.type == "text" and not last.content.strip()
            ):
                children.pop()
            elif (
                last.type == "html_inline"
                and _DIRECTIVE_RE.match(last.content)
                and body.rstrip().endswith(last.content)
            ):
                body = body.rstrip()[: -len(last.content)]
                comments.insert(0, (last.content, line + body.count("\n")))
                children.pop()
            else:
                break
        for child in children:
            if child.type == "html_inline" and _DIRECTIVE_RE.match(child.content):
                raise ChecklistError(
                    line, gettext_noop("a deploycheck comment must end the item's text")
                )
        for comment, comment_line in comments:
            words, _ = _directive(comment, comment_line) or ([], "")
            for word in words:
                if word in ("gate", "record"):
                    raise ChecklistError(
                        comment_line,
                        gettext_noop(
                            "%(word)s goes in a comment on a line of its own", word=repr(word)
                        ),
                    )
                into.apply(word, comment_line)
        return " ".join(part.strip() for part in body[marker_end:].split("\n")).strip()

    def _html_block(self, token: Token, heading: _Scope | None, item: _ItemDraft | None) -> None:
        line = _line(token)
        directive = _directive(token.content, line)
        if directive is None:
            return
        words, rest = directive
        if "record" in words:
            if words != ["record"]:
                raise ChecklistError(
                    line, gettext_noop("a record comment holds the word 'record' only")
                )
            if item is None:
                raise ChecklistError(line, gettext_noop("a record must stand inside its task item"))
            if item.record is not None:
                raise ChecklistError(line, gettext_noop("a second record for the same item"))
            item.record = _parse_record(rest, line)
            return
        if rest:
            raise _text_after_comment(line, rest)
        for word in words:
            if word == "gate":
                if self.gate is not None:
                    raise ChecklistError(
                        line,
                        gettext_noop(
                            "a second gate (the first is on line %(line)s)", line=self.gate[1]
                        ),
                    )
                self.gate = (len(self.drafts), line)
            elif heading is not None:
                if word.startswith("check="):
                    raise ChecklistError(
                        line, gettext_noop("check= belongs to an item, not to a heading")
                    )
                if word.startswith("perform="):
                    raise ChecklistError(
                        line, gettext_noop("perform= belongs to an item, not to a heading")
                    )
                heading.annotations.apply(word, line)
            elif item is not None:
                item.annotations.apply(word, line)
            else:
                raise ChecklistError(
                    line,
                    gettext_noop(
                        "%(word)s applies to an item or a heading: put it at the end of the "
                        "item's text or on the line right under the heading",
                        word=repr(word),
                    ),
                )

    def _rollback_block(self, start: int, end: int) -> None:
        token = self.tokens[start]
        if token.type == "ordered_list_open":
            self.numbered_steps = True
            for item_start, item_end in _blocks(self.tokens, start + 1, end - 1):
                with self._going_on():
                    self.steps.append(self._step(item_start, item_end, boxed=False))
        elif token.type == "bullet_list_open" and not self.numbered_steps:
            for item_start, item_end in _blocks(self.tokens, start + 1, end - 1):
                if _task_marker(self.tokens, item_start):
                    with self._going_on():
                        self.steps.append(self._step(item_start, item_end, boxed=True))
                else:
                    self._refuse_task_items(item_start, item_end, _steps_rule())
        elif token.type in ("fence", "code_block") and self.steps:
            self._refuse_bidi(token)
            self.steps[-1].add_code(token)
        elif token.type == "paragraph_open" and not self.steps:
            self._refuse_bidi(token)
            self.rollback_intro.append(self.tokens[start + 1].content)
        else:
            self._refuse_task_items(
                start,
                end,
                gettext_noop("the steps are a numbered list")
                if self.numbered_steps
                else _steps_rule(),
            )

    def _step(self, start: int, end: int, *, boxed: bool) -> _StepDraft:
        """A top-level item of the rollback plan: its code blocks are its commands, and the
        source lines of its other blocks, without the item's indentation (nor its box, when
        ``boxed``), its text."""
        self.kept.update(range(start, end))
        self._refuse_bidi(self.tokens[start])
        item_line = (self.tokens[start].map or (0, 0))[0]
        step = _StepDraft(item_line + 1)
        marker = _LIST_MARKER_RE.match(self.lines[item_line])
        assert marker is not None, "markdown-it found a list item on this line"
        # CommonMark: the text starts after the marker and its spaces, unless the line is
        # blank there or holds indented code (five spaces or more): then one space after it.
        after = self.lines[item_line][marker.end() :]
        indent = marker.end() if after and len(marker.group(3)) < 5 else marker.end(2) + 1
        lines: list[str] = []
        sources: list[int] = []  # the source line of each of ``lines``
        previous_end: int | None = None  # source line just after the last text block
        for block_start, _ in _blocks(self.tokens, start + 1, end - 1):
            token = self.tokens[block_start]
            if token.type in ("fence", "code_block"):
                step.add_code(token)
                continue
            if token.type == "html_block" and _directive(token.content, _line(token)):
                step.annotate(token.content, _line(token))
                continue
            first_line, last_line = token.map or (0, 0)
            block_lines = (
                [" " * indent + self.lines[first_line][indent:]]
                if (first_line == item_line)
                else [self.lines[first_line]]
            )
            block_lines.extend(self.lines[first_line + 1 : last_line])
            while block_lines and not block_lines[-1].strip():
                block_lines.pop()  # a list's line range runs on over the blank lines after it
            if previous_end is not None and first_line > previous_end:
                lines.append("")
                sources.append(first_line)
            lines.extend(_unindent(line, indent) for line in block_lines)
            sources.extend(range(first_line + 1, first_line + 1 + len(block_lines)))
            previous_end = first_line + len(block_lines)
        # The first line's own indentation means nothing: the item's first line fixes it.
        text = "\n".join(lines).lstrip(" ")
        if boxed:
            # As with items, the tick is not kept; a tab may stand before the box.
            text = text.lstrip(" \t")
            box = _TASK_MARKER_RE.match(text)
            assert box is not None, "a task item's first block starts with its box"
            text = text[box.end() :].lstrip()
        first, newline, others = text.partition("\n")
        trailing = _TRAILING_DIRECTIVE_RE.search(first)
        if trailing is not None and _directive(trailing.group(1), item_line + 1):
            step.annotate(trailing.group(1), item_line + 1)
            text = first[: trailing.start()] + newline + others
        step.text = text
        # Only leading lines can have been stripped.
        step.text_lines = sources[len(sources) - text.count("\n") - 1 :]
        return step

    def _contacts_table(self, start: int, end: int) -> None:
        self._refuse_bidi(self.tokens[start])
        rows: list[tuple[int, list[str]]] = []
        for token in self.tokens[start:end]:
            if token.type == "tr_open":
                rows.append((_line(token), []))
            elif token.type == "inline":
                rows[-1][1].append(token.content)
        (header_line, header), *body = rows
        if len(header) < 3:
            raise ChecklistError(
                header_line,
                ngettext_lazy(
                    "the contacts table has %(count)s column; it needs role | name | contact",
                    "the contacts table has %(count)s columns; it needs role | name | contact",
                    len(header),
                    count=len(header),
                ),
            )
        if self.contacts_header is None:
            self.contacts_header = (header[0], header[1], header[2])
        for _, cells in body:
            self.contacts.append(
                Contact(cells[0], cells[1], " / ".join(cell for cell in cells[2:] if cell))
            )

    def _refuse_task_items(self, start: int, end: int, why: Message) -> None:
        # A task item is never dropped silently: it is either an item or an error.
        for index in range(start, end):
            if self.tokens[index].type == "list_item_open" and _task_marker(self.tokens, index):
                self.kept.add(index)  # said here: not again as an item that would be lost
                self._note(
                    ChecklistError(
                        _line(self.tokens[index]),
                        gettext_noop(
                            "task item under %(heading)s, where %(rule)s; move it under a "
                            "phase heading, or rename the heading",
                            heading=repr(self.region.heading),
                            rule=why,
                        ),
                    )
                )

    def _refuse_bidi(self, token: Token) -> None:
        """Note each line of ``token`` holding a bidirectional control character."""
        first, last = token.map or (0, 0)
        for number in range(first, last):
            found = _BIDI_CONTROL_RE.search(self.lines[number])
            if found is not None:
                self._note(
                    ChecklistError(
                        number + 1,
                        gettext_noop(
                            "the line contains an invisible bidirectional control character "
                            "%(char)s, which can make text read differently from what it is",
                            char=f"U+{ord(found.group()):04X}",
                        ),
                    )
                )


def _refuse_too_many_items(source: str, max_items: int) -> None:
    """Refuse a document of more than ``max_items`` items from its start, so that a huge
    one costs what reading its first items costs, not the seconds markdown-it takes to
    read it all. What this cannot settle, _Reader.read settles, reading everything."""
    lines = _TASK_LINE_RE.finditer(source)
    cut = next(islice(lines, max_items + 1, None), None)
    if cut is None:
        return  # few enough lines that could hold an item: the whole read is cheap
    # The cut falls before a line that could hold an item: such a line is no setext
    # underline and no table delimiter row, so it cannot change how the lines before it
    # read, and the items before the cut are the document's first items.
    head = _Reader(source[: cut.start()], None)
    try:
        head.scan()
    except ChecklistError:
        return  # read() finds it too, unless the rest of the document changes the start
    if head.problems:
        return
    # Except where the rest of the document changes the start: front matter closed only
    # after the cut reads as Markdown without its end, and a lone "#" title naming a
    # rollback plan or contacts becomes that section when a second "#" heading follows.
    front_matter_cut = source.startswith("---") and head.tokens[0].type != "front_matter"
    if len(head.drafts) > max_items and not front_matter_cut and _heading_kind(head.title) is None:
        raise _too_many_items(head.drafts[max_items].line, max_items)


def _too_many_items(line: int, max_items: int) -> ChecklistError:
    return _TooMuch(
        line,
        ngettext_lazy(
            "the checklist has more than %(limit)s item (the limit is %(limit)s)",
            "the checklist has more than %(limit)s items (the limit is %(limit)s)",
            max_items,
            limit=max_items,
        ),
    )


def _blocks(tokens: Sequence[Token], start: int, stop: int) -> Iterator[tuple[int, int]]:
    """Yield the (first, end) token ranges of the sibling blocks in tokens[start:stop]."""
    while start < stop:
        depth, end = 0, start
        for end in range(start, stop):
            depth += tokens[end].nesting
            if depth == 0:
                break
        yield start, end + 1
        start = end + 1


def _task_marker(tokens: Sequence[Token], list_item: int) -> re.Match[str] | None:
    if tokens[list_item + 1].type != "paragraph_open":
        return None
    return _TASK_MARKER_RE.match(tokens[list_item + 2].content)


def _directive(html: str, line: int) -> tuple[list[str], str] | None:
    """The words of a deploycheck comment and the text after it; None for other HTML."""
    match = _DIRECTIVE_RE.match(html.strip())
    if match is None:
        return None
    words = match.group(1).split()
    for word in words:
        key, equals, value = word.partition("=")
        if equals and key == "owner":
            if value not in ROLE_KEYS:
                raise ChecklistError(
                    line,
                    gettext_noop(
                        "unknown owner %(owner)s (expected one of %(roles)s)",
                        owner=repr(value),
                        roles=", ".join(ROLE_KEYS),
                    ),
                )
        elif equals and key == "check":
            if not _CHECK_NAME_RE.fullmatch(value):
                raise ChecklistError(
                    line,
                    gettext_noop(
                        "bad check name %(name)s (lowercase letters, digits, '.', '_' and '-', "
                        "starting with a letter or digit)",
                        name=repr(value),
                    ),
                )
        elif equals and key == "perform":
            if performs.parse(value) is None:
                raise ChecklistError(
                    line,
                    gettext_noop(
                        "unknown perform action %(action)s (expected %(expected)s)",
                        action=repr(value),
                        expected=performs.EXPECTED,
                    ),
                )
        elif word not in ("optional", "required", "gate", "record"):
            raise ChecklistError(
                line,
                gettext_noop(
                    "unknown deploycheck word %(word)s "
                    "(expected owner=, optional, required, check=, perform=, gate or record)",
                    word=repr(word),
                ),
            )
    return words, match.group(2).strip()


def _parse_record(body: str, line: int) -> Record:
    head, *fields = _split_unescaped(body, _FIELD_SEPARATOR)
    state = next(
        (
            key
            for key, word in _STATE_WORDS.items()
            if head == word or head.startswith((word + " by ", word + " at "))
        ),
        None,
    )
    if state is None:
        raise ChecklistError(
            line,
            gettext_noop(
                "a record starts with done, not applicable, blocked, failed or pending, then "
                "optionally 'by …' and 'at …'; found %(found)s",
                found=repr(head),
            ),
        )
    rest = head[len(_STATE_WORDS[state]) :]
    by, at = "", ""
    if rest.startswith(" by "):
        by, *after = _split_unescaped(rest[len(" by ") :], " at ", 1)
        at = after[0] if after else ""
    elif rest:
        at = rest[len(" at ") :]
    values: dict[str, str] = {}
    for segment in fields:
        key, colon, value = segment.partition(":")
        key = key.strip()
        if not colon or key not in _RECORD_FIELDS:
            raise ChecklistError(
                line,
                gettext_noop(
                    "unknown record field %(field)s (expected reason:, evidence: or note:)",
                    field=repr(segment),
                ),
            )
        if key in values:
            raise ChecklistError(line, gettext_noop("the record gives %(field)s twice", field=key))
        values[key] = _unescape(value.strip())
    return Record(state, by=_unescape(by.strip()), at=_unescape(at.strip()), **values)


def _split_unescaped(text: str, separator: str, limit: int = -1) -> list[str]:
    parts: list[str] = []
    start = index = 0
    while index < len(text):
        if text[index] == "\\":
            index += 2
        elif text.startswith(separator, index) and len(parts) != limit:
            parts.append(text[start:index])
            index += len(separator)
            start = index
        else:
            index += 1
    parts.append(text[start:])
    return parts


def _unescape(text: str) -> str:
    out: list[str] = []
    index = 0
    while index < len(text):
        char = text[index]
        if char == "\\" and index + 1 < len(text):
            char = {"n": "\n", "r": "\r"}.get(text[index + 1], text[index + 1])
            index += 1
        elif text.startswith(("&amp;", "&lt;"), index):
            char = "&" if text[index + 1] == "a" else "<"
            index = text.index(";", index)
        out.append(char)
        index += 1
    return "".join(out)


def _heading_kind(text: str) -> str | None:
    folded = text.casefold()
    if any(word in folded for word in _ROLLBACK_WORDS):
        return "rollback"
    if any(word in folded for word in _CONTACT_WORDS):
        return "contacts"
    return None


def _require_heading(kind: str, heading: str, has_content: bool) -> None:
    if heading and _heading_kind(heading) != kind:
        raise ValueError(f"the {kind} heading {heading!r} would not read as the {kind}")
    if has_content and not heading:
        raise ValueError(f"the {kind} section needs a heading")


def _unindent(line: str, width: int) -> str:
    """The line without up to ``width`` leading spaces (lazy lines have fewer)."""
    return line[min(width, len(line) - len(line.lstrip(" "))) :]


def _inline_line(inline: Token) -> str:
    """A heading's text on one line (a setext heading may span several)."""
    return " ".join(part.strip() for part in inline.content.split("\n"))


def _line(token: Token) -> int:
    return token.map[0] + 1 if token.map else 0


def _line_of_byte(data: bytes, offset: int) -> int:
    before = data[:offset].replace(b"\r\n", b"\n").replace(b"\r", b"\n")
    return before.count(b"\n") + 1


def _too_large(size: int) -> ChecklistError:
    return ChecklistError(
        None,
        ngettext_lazy(
            "file is too large (%(size)s byte, the limit is %(limit)s)",
            "file is too large (%(size)s bytes, the limit is %(limit)s)",
            size,
            size=size,
            limit=MAX_FILE_BYTES,
        ),
    )


def _two_owners(line: int, first: str, second: str) -> ChecklistError:
    return ChecklistError(
        line,
        gettext_noop(
            "two owners (%(first)s and %(second)s); one is allowed", first=first, second=second
        ),
    )


def _text_after_comment(line: int, rest: str) -> ChecklistError:
    return ChecklistError(
        line,
        gettext_noop("unexpected text after the deploycheck comment: %(text)s", text=repr(rest)),
    )


def too_long(line: int | None, what: Message, length: int, limit: int) -> ChecklistError:
    """``what`` (such as "the title") is longer than its limit."""
    return ChecklistError(
        line,
        ngettext_lazy(
            "%(what)s is %(length)s character long; the limit is %(limit)s",
            "%(what)s is %(length)s characters long; the limit is %(limit)s",
            length,
            what=what,
            length=length,
            limit=limit,
        ),
    )


# Writing ------------------------------------------------------------------------------


def _heading_line(level: int, text: str) -> str:
    line = "#" * level + (f" {text}" if text else "")
    # Without a closing sequence, a trailing "#" in the text would be read as one.
    return f"{line} #" if text.endswith("#") else line


def _render_items(doc: Checklist) -> list[str]:
    blocks: list[str] = []
    run: list[str] = []  # consecutive item lines: one list

    def close_run() -> None:
        if run:
            blocks.append("\n".join(run))
            run.clear()

    phase, section = "", ""
    wrote_phase_heading = False
    for index, item in enumerate(doc.items):
        if index == doc.gate_index:
            close_run()
            blocks.append(_GATE_LINE)
        # A phase heading is also the only way back to "no section" within a phase.
        if item.phase != phase or (section and not item.section):
            close_run()
            blocks.append(_heading_line(2, item.phase))
            phase, section, wrote_phase_heading = item.phase, "", True
        if item.section != section:
            close_run()
            if not wrote_phase_heading:
                # Alone, a ### heading would be read as a phase.
                blocks.append(_heading_line(2, ""))
                wrote_phase_heading = True
            blocks.append(_heading_line(3, item.section))
            section = item.section
        run.extend(_render_item(item))
    close_run()
    if doc.gate_index == len(doc.items):
        blocks.append(_GATE_LINE)
    return blocks


def _render_item(item: Item) -> list[str]:
    record = item.record
    box = "[x]" if record is not None and record.state == "done" else "[ ]"
    words = [f"owner={item.owner}"] if item.owner else []
    if not item.required:
        words.append("optional")
    words.extend(f"check={name}" for name in item.checks)
    if item.perform:
        words.append(f"perform={item.perform}")
    lines = [f"- {box} {item.text}"]
    if words:
        annotation = f"<!-- deploycheck: {' '.join(words)} -->"
        if "<!" in item.text:
            # An unclosed "<!--" or "<!X" in the text would swallow a comment on its line.
            lines.append(f"  {annotation}")
        else:
            lines[0] += f" {annotation}"
    if record is not None:
        lines.append(f"  {_RECORD_OPENER} {_render_record(record)}")
    return lines


def _render_record(record: Record) -> str:
    head = _STATE_WORDS[record.state]
    if record.by:
        # "at" between spaces would end the name: escape it.
        head += " by " + re.sub(r"(?<= )at(?= |\Z)", r"\\at", _escape(record.by))
    if record.at:
        head += " at " + _escape(record.at)
    fields = [
        f"{key}: {_escape(value)}"
        for key, value in (
            ("reason", record.reason),
            ("evidence", record.evidence),
            ("note", record.note),
        )
        if value
    ]
    return _FIELD_SEPARATOR.join([head, *fields])


def _escape(value: str) -> str:
    escaped = value.replace("\\", "\\\\").replace("\n", "\\n").replace("\r", "\\r")
    return escaped.replace("—", "\\—").replace("&", "&amp;").replace("<", "&lt;")


def _render_step(number: int, step: RollbackStep) -> str:
    marker = f"{number}."
    indent = " " * (len(marker) + 1)
    text_lines = step.text.split("\n") if step.text else []
    lines = [f"{marker} {text_lines[0]}" if text_lines else marker]
    annotation = f"<!-- deploycheck: owner={step.owner} -->" if step.owner else ""
    if annotation and text_lines and "<!" not in text_lines[0]:
        lines[0] += f" {annotation}"
        annotation = ""
    lines.extend(indent + line if line else "" for line in text_lines[1:])
    if annotation:
        # After text whose first line holds "<!", which could swallow it there.
        lines.extend(["", indent + annotation] if text_lines else [indent + annotation])
    if step.commands:
        fence_char = "~" if "`" in step.lang else "`"
        longest = max((len(run) for run in re.findall(f"{fence_char}+", step.commands)), default=0)
        fence = fence_char * max(3, longest + 1)
        if text_lines:
            lines.append("")
        lines.append(f"{indent}{fence}{step.lang}")
        lines.extend(indent + line if line else "" for line in step.commands.split("\n"))
        lines.append(indent + fence)
    if step.record is not None:
        lines.extend(["", f"{indent}{_RECORD_OPENER} {_render_record(step.record)}"])
    return "\n".join(lines)


def _steps_rule() -> Message:
    return gettext_noop("only the top-level items of a numbered list or of a task list are steps")


def _comment_over_code(token: Token) -> bool:
    """Whether `token` is an HTML comment a step's text leaves open above its own code
    block, which the comment holds instead: the step's commands lost to its text."""
    if token.type != "html_block" or not token.content.lstrip().startswith("<!--"):
        return False
    if "-->" in token.content:
        return False
    below = token.content.partition("\n")[2]
    return any(inner.type == "fence" for inner in _MD.parse(below))


def _export_misreading(step: RollbackStep) -> tuple[int, Message] | None:
    """The line of ``step.text`` (0-based) that reads as something else in
    :func:`_render_step`'s output, and how; None when that output reads as the step.

    Its text is the same Markdown source there, but it now opens a numbered item, where a
    task item had its box first, and its commands follow it in a fence of their own."""
    if not step.text:
        return None
    text_lines = step.text.split("\n")
    tokens = _MD.parse(_render_step(1, replace(step, owner=None, record=None)))
    item_start, item_end = next(_blocks(tokens, 1, len(tokens)))
    covered: set[int] = set()
    for start, _ in _blocks(tokens, item_start + 1, item_end - 1):
        token = tokens[start]
        first, end = token.map or (0, 0)
        if first >= len(text_lines):
            break  # the commands' fence, one blank line below the text
        line = text_lines[first]
        if token.type == "fence":
            char = line.lstrip()[0]
            return first, gettext_noop(
                "the rollback step's line %(line)s would open a code block in the export, "
                "where rollback steps are a numbered list; write '\\%(char)s' for a literal "
                "'%(char)s'",
                line=repr(line),
                char=char,
            )
        if token.type == "code_block":
            return first, gettext_noop(
                "the rollback step's line %(line)s would read as code in the export, where "
                "rollback steps are a numbered list; indent it less",
                line=repr(line),
            )
        swallows_commands = step.commands and end > len(text_lines) + 1
        if swallows_commands or _comment_over_code(token):
            opens = (
                gettext_noop(
                    "the rollback step's line %(line)s opens an HTML comment that the step "
                    "does not close: in the export, where rollback steps are a numbered list, "
                    "it would swallow the step's commands; close it, or write '\\<' for a "
                    "literal '<'",
                    line=repr(line),
                )
                if line.lstrip().startswith("<!--")
                else gettext_noop(
                    "the rollback step's line %(line)s opens raw HTML that the step does not "
                    "close: in the export, where rollback steps are a numbered list, it would "
                    "swallow the step's commands; close it, or write '\\<' for a literal '<'",
                    line=repr(line),
                )
            )
            return first, opens
        covered.update(range(first, end))
    # markdown-it makes no block of a link reference definition.
    lost = next(
        (index for index, line in enumerate(text_lines) if line.strip() and index not in covered),
        None,
    )
    if lost is not None:
        return lost, gettext_noop(
            "the rollback step's line %(line)s would read as a link reference definition, "
            "which shows nothing, in the export, where rollback steps are a numbered list; "
            "write '\\[' for a literal '['",
            line=repr(text_lines[lost]),
        )
    return None


def _render_contacts(doc: Checklist) -> str:
    rows = [doc.contacts_header, ("---", "---", "---")]
    rows.extend((c.role, c.name, c.contact) for c in doc.contacts)
    return "\n".join(
        "| " + " | ".join(cell.replace("|", "\\|") for cell in row) + " |" for row in rows
    )
