"""The Spanish catalogue: every message translated for real, none left fuzzy or empty
(gettext would then answer in English on a Spanish page), its placeholders the same as
the English ones, and the compiled .mo saying what the .po says."""

from __future__ import annotations

import gettext
import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

REPOSITORY = Path(__file__).resolve().parents[1]
CATALOG = REPOSITORY / "locale" / "es" / "LC_MESSAGES" / "django.po"
PLACEHOLDER = re.compile(r"%\((\w+)\)[sdif]")


@dataclass
class Entry:
    line: int
    flags: set[str] = field(default_factory=set)
    context: str | None = None
    msgid: str = ""
    plural: str | None = None
    # msgstr, or msgstr[0], msgstr[1]… for a plural.
    translations: list[str] = field(default_factory=list)

    def __str__(self) -> str:
        return f"line {self.line}: {self.msgid!r}"


def _unquoted(text: str) -> str:
    body = text.strip()
    assert body.startswith('"') and body.endswith('"'), body
    return re.sub(
        r"\\(.)", lambda escaped: {"n": "\n", "t": "\t"}.get(escaped[1], escaped[1]), body[1:-1]
    )


def read_catalog(path: Path) -> list[Entry]:
    """The entries of a .po file, obsolete ones (#~) left out: only the few forms
    makemessages writes and people add by hand (with or without a blank line between
    two entries)."""
    entries: list[Entry] = []
    current = Entry(1)
    # Which string a continuation line adds to; "msgstr" once the entry has its
    # translation, so that whatever else comes next starts the next entry.
    target: str | None = None
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if line.startswith("#~"):
            continue
        if target == "msgstr" and not line.startswith(('"', "msgstr")):
            entries.append(current)
            current, target = Entry(number), None
        if line.startswith("#,"):
            current.flags |= {flag.strip() for flag in line[2:].split(",")}
        elif not line.strip() or line.startswith("#"):
            continue
        elif line.startswith('"'):
            assert target is not None, f"line {number}: a string continues nothing"
            if target == "msgctxt":
                current.context = (current.context or "") + _unquoted(line)
            elif target == "msgid":
                current.msgid += _unquoted(line)
            elif target == "msgid_plural":
                current.plural = (current.plural or "") + _unquoted(line)
            else:
                current.translations[-1] += _unquoted(line)
        else:
            keyword, _space, text = line.partition(" ")
            if keyword == "msgctxt":
                current.context = _unquoted(text)
            elif keyword == "msgid":
                current.line, current.msgid = number, _unquoted(text)
            elif keyword == "msgid_plural":
                current.plural = _unquoted(text)
            elif keyword == "msgstr" or keyword.startswith("msgstr["):
                current.translations.append(_unquoted(text))
            else:
                raise AssertionError(f"line {number}: {line!r} is not a .po line")
            target = keyword if keyword.startswith(("msgid", "msgctxt")) else "msgstr"
    if target == "msgstr":
        entries.append(current)
    return entries


def messages(path: Path) -> list[Entry]:
    """Every entry but the header."""
    return [entry for entry in read_catalog(path) if entry.msgid]


def test_it_leaves_nothing_fuzzy_or_untranslated() -> None:
    entries = messages(CATALOG)

    assert len(entries) > 1000
    assert [str(entry) for entry in entries if "fuzzy" in entry.flags] == []
    assert [
        str(entry)
        for entry in entries
        if not entry.translations or not all(text.strip() for text in entry.translations)
    ] == []
    # Spanish has three plural forms (the header's Plural-Forms).
    assert [str(entry) for entry in entries if entry.plural and len(entry.translations) != 3] == []


def test_it_has_each_message_once() -> None:
    seen: set[tuple[str | None, str]] = set()
    twice = []
    for entry in messages(CATALOG):
        if (entry.context, entry.msgid) in seen:
            twice.append(str(entry))
        seen.add((entry.context, entry.msgid))

    assert twice == []


def test_its_translations_fill_the_same_placeholders() -> None:
    differ = [
        str(entry)
        for entry in messages(CATALOG)
        for text in entry.translations
        if set(PLACEHOLDER.findall(text)) != set(PLACEHOLDER.findall(entry.plural or entry.msgid))
        # A singular may say "one" in words instead of its count.
        and not (
            entry.plural
            and set(PLACEHOLDER.findall(text)) <= set(PLACEHOLDER.findall(entry.plural))
        )
    ]

    assert differ == []


def compiled_as(catalog: gettext.GNUTranslations, entry: Entry) -> str:
    """The entry's translation (its singular, for a plural) as the .mo gives it."""
    if entry.plural is None:
        if entry.context is None:
            return catalog.gettext(entry.msgid)
        return catalog.pgettext(entry.context, entry.msgid)
    if entry.context is None:
        return catalog.ngettext(entry.msgid, entry.plural, 1)
    return catalog.npgettext(entry.context, entry.msgid, entry.plural, 1)


def test_the_compiled_catalog_says_what_the_po_says() -> None:
    with open(CATALOG.with_suffix(".mo"), "rb") as compiled:
        catalog = gettext.GNUTranslations(compiled)

    stale = [
        str(entry)
        for entry in messages(CATALOG)
        if compiled_as(catalog, entry) != entry.translations[0]
    ]

    assert stale == [], "run manage.py compilemessages -l es --ignore=.venv"


def test_every_message_the_code_marks_has_its_translation(tmp_path: Path) -> None:
    # makemessages needs GNU gettext: a machine without it fails here rather than skip.
    assert shutil.which("xgettext"), "install GNU gettext (apt-get install gettext)"
    # makemessages rewrites the catalogue it finds, so it runs on a copy of the code.
    copy = tmp_path / "deploycheck"
    shutil.copytree(
        REPOSITORY,
        copy,
        ignore=shutil.ignore_patterns(
            ".*", "tests", "var", "static", "__pycache__", "node_modules", "*.mo"
        ),
    )
    subprocess.run(
        [sys.executable, "manage.py", "makemessages", "-l", "es", "--no-obsolete"],
        cwd=copy,
        env={**os.environ, "SECRET_KEY": os.environ.get("SECRET_KEY", "messages")},
        check=True,
        capture_output=True,
    )

    entries = messages(copy / CATALOG.relative_to(REPOSITORY))

    # A message new to the code comes back empty, or fuzzy with a neighbour's translation.
    assert [
        str(entry)
        for entry in entries
        if "fuzzy" in entry.flags or not all(text.strip() for text in entry.translations)
    ] == []
