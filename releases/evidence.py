"""Evidence of an automated check as it is stored: an English message and its values, so
that each reader gets it in their own language when a page is rendered.

It lives with the release models, which store it on items and read it for the go/no-go
reasons; the checks write it (checks.kinds.base re-exports it for the kinds). Nothing
here imports a model, so the models may import it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Union

from django.utils.translation import gettext

EVIDENCE_MAX = 300
# A value named in a message: a number, a vendor's word, or a phrase of our own that is
# itself translated.
Value = Union[str, int, float, "Said"]
VALUE_MAX = 200


def clip(text: str, limit: int = EVIDENCE_MAX) -> str:
    # NUL cannot be stored in PostgreSQL text; a vendor's field may hold one.
    text = " ".join(text.replace("\x00", "").split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


@dataclass(frozen=True)
class Said:
    """A sentence of evidence: `message` is English with `%(name)s` slots, marked with
    `_` where it is written so that the catalogue has it; `values` fill the slots."""

    message: str
    values: Mapping[str, Value] = field(default_factory=dict)

    def english(self) -> str:
        return clip(self._render(lambda message: message))

    def translated(self) -> str:
        """In the active language: called where a person reads it."""
        return clip(self._render(gettext))

    def _render(self, translate: Callable[[str], str]) -> str:
        message = translate(self.message)
        if not self.values:
            return message
        shown = {
            name: value._render(translate) if isinstance(value, Said) else value
            for name, value in self.values.items()
        }
        try:
            return message % shown
        except (KeyError, TypeError, ValueError):
            # A catalogue entry that lost a slot must not hide the evidence.
            return self.message % {
                name: value._render(lambda m: m) if isinstance(value, Said) else value
                for name, value in self.values.items()
            }

    def scrubbed(self, secrets: Iterable[str]) -> Said:
        """The same sentence with every credential masked, in its values and in a plain
        message that came with none."""
        return Said(
            str(_scrub_value(self.message, secrets)),
            {k: _scrub_value(v, secrets) for k, v in self.values.items()},
        )

    def as_json(self) -> dict[str, Any]:
        return {
            "m": self.message,
            "v": {k: v.as_json() if isinstance(v, Said) else v for k, v in self.values.items()},
        }

    @classmethod
    def from_json(cls, data: Any) -> Said | None:
        """What `as_json` wrote, or None for anything else (an older row's plain text)."""
        if not isinstance(data, dict) or not isinstance(data.get("m"), str):
            return None
        raw = data.get("v")
        values: dict[str, Value] = {}
        for name, value in (raw if isinstance(raw, dict) else {}).items():
            nested = cls.from_json(value)
            if nested is not None:
                values[str(name)] = nested
            elif isinstance(value, str | int | float):
                values[str(name)] = value
        return cls(data["m"], values)


class SaidError(Exception):
    """A failure told as a Said: the exception's text is its English, for the logs, and
    `why` keeps the Said for a person to read in their own language."""

    def __init__(self, why: Said) -> None:
        super().__init__(why.english())
        self.why = why


def said(message: str, **values: Value) -> Said:
    """Evidence as a kind writes it: `said(_("model %(model)s answered"), model=name)`."""
    return Said(message, {name: _value(value) for name, value in values.items()})


def _value(value: Value) -> Value:
    # A vendor's string is clipped here, so one long field cannot push the rest of the
    # sentence out of the evidence.
    return clip(value, VALUE_MAX) if isinstance(value, str) else value


def _scrub_value(value: Value, secrets: Iterable[str]) -> Value:
    if isinstance(value, Said):
        return value.scrubbed(secrets)
    if isinstance(value, str):
        for secret in secrets:
            if len(secret) >= 4:
                value = value.replace(secret, "•••")
    return value


def as_said(evidence: Said | str) -> Said:
    # Plain text is a message with no values, which is never %-formatted: shown as it
    # is, in English.
    return evidence if isinstance(evidence, Said) else Said(evidence)


def result_text(result: Mapping[str, Any], *, english: bool = False) -> str:
    """The evidence of one stored check result: its `said` in the reader's language (or
    in English, for what is stored), else the plain text an older row kept."""
    found = Said.from_json(result.get("said"))
    if found is None:
        return str(result.get("evidence") or "")
    return found.english() if english else found.translated()
