"""A release's checks written back as a checks file (checks.config), which `load_checks`
reads as the same checks: loading it, exporting again and loading that changes nothing.

Its shape is small — `[[check]]` tables of strings, whole numbers, booleans, lists and
inline tables — so a small writer does, with every string a TOML basic string escaped as
the TOML specification says (https://toml.io/en/v1.0.0#string).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

from releases.models import Release

from .kinds.registry import REGISTRY
from .models import Check

BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")
# A list longer than this on one line is written one element a line, as people write them.
LINE_WIDTH = 88
# TOML's short escapes; every other control character is written as \uXXXX.
_SHORT_ESCAPES = {'"': '\\"', "\\": "\\\\", "\b": "\\b", "\t": "\\t", "\n": "\\n", "\f": "\\f",
                  "\r": "\\r"}  # fmt: skip
_ESCAPES = str.maketrans(
    {
        **{chr(code): f"\\u{code:04X}" for code in [*range(0x20), 0x7F]},
        **_SHORT_ESCAPES,
    }
)


def filename(release: Release) -> str:
    return f"checks-{release.version}.toml"


def checks_file(release: Release) -> str:
    """The release's active checks, by name, each with the items it links itself (an
    item's own `check=` marker stays in the checklist)."""
    text_of = dict(release.items.values_list("pk", "text"))
    blocks = [
        _table(check, [text_of[pk] for pk in check.linked_item_ids if pk in text_of])
        for check in Check.objects.active().filter(release=release).order_by("name")
    ]
    head = (
        f"# deploycheck checks file: the automated checks of release {release.version} and the\n"
        "# items they verify. Credentials are not here: an option ending in _env names the\n"
        "# environment variable that holds one, which only the workers read.\n"
        "#\n"
        f"#   python manage.py load_checks {filename(release)} --release {release.version}\n"
    )
    return "\n".join([head, *blocks])


def _table(check: Check, items: Sequence[str]) -> str:
    kind = REGISTRY.get(check.kind)
    required = kind.required if kind else frozenset()
    # The kind's required options first, then the rest, each group by name: the same
    # check is always written the same way.
    keys = sorted(check.options, key=lambda key: (key not in required, key))
    lines = ["[[check]]", _assignment("name", check.name), _assignment("kind", check.kind)]
    lines += [_assignment(key, check.options[key]) for key in keys]
    if items:
        lines.append(_assignment("item", items[0] if len(items) == 1 else list(items)))
    return "\n".join(lines) + "\n"


def _assignment(key: str, value: Any) -> str:
    written = f"{toml_key(key)} = {toml_value(value)}"
    if isinstance(value, list) and value and len(written) > LINE_WIDTH:
        elements = "".join(f"  {toml_value(element)},\n" for element in value)
        return f"{toml_key(key)} = [\n{elements}]"
    return written


def toml_key(key: str) -> str:
    return key if BARE_KEY.fullmatch(key) else toml_string(key)


def toml_string(text: str) -> str:
    return '"' + text.translate(_ESCAPES) + '"'


def toml_value(value: Any) -> str:
    """A value of a check's options as TOML writes it: what the option types allow, and
    inline tables for a type holding names by key."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str):
        return toml_string(value)
    if isinstance(value, list):
        return "[" + ", ".join(toml_value(element) for element in value) + "]"
    if isinstance(value, Mapping):
        pairs = ", ".join(f"{toml_key(str(k))} = {toml_value(v)}" for k, v in value.items())
        return "{ " + pairs + " }" if pairs else "{}"
    raise TypeError(f"no TOML form for {type(value).__name__}")
