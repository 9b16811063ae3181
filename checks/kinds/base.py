"""What every kind of check shares: the verdict, the error that says whether trying
again could help, and the options a checks file may set.

A kind's `run(context)` returns the evidence of a pass (a short summary parsed from the
answer, never a raw body) or raises CheckError. Evidence is a `Said`: an English message
marked for translation and the values it names, so that each person reads it in their
own language while the worker, which has no reader, only records it. Kinds mark their
messages with `_`, which is `gettext_noop` there: extracted for the catalogue, never
translated on the worker.

- permanent: the answer shows a fault (a bad key, an unknown model, a false condition).
  The outcome is `fail` and nothing is retried.
- transient: nothing could be judged this time (a timeout, a refused connection, a 5xx,
  a 429, garbage). The task tries again with backoff, honouring `retry_after`; when the
  attempts run out the outcome is `error`.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Union

from django.utils.translation import gettext

from releases.models import CheckReason

EVIDENCE_MAX = 300
ENV_NAME = re.compile(r"^[A-Z_][A-Z0-9_]*$")


# The codes are stored on release items and shown on the board, so they and their
# labels live with the release models.
Reason = CheckReason


def clip(text: str, limit: int = EVIDENCE_MAX) -> str:
    # NUL cannot be stored in PostgreSQL text; a vendor's field may hold one.
    text = " ".join(text.replace("\x00", "").split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


# A value named in a message: a number, a vendor's word, or a phrase of our own that is
# itself translated.
Value = Union[str, int, float, "Said"]
VALUE_MAX = 200


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


class CheckError(Exception):
    """The check did not pass; `said` says why in a line a person can act on, and
    `evidence` is that line in English (logs, the command line, tests)."""

    def __init__(
        self,
        reason: Reason,
        evidence: Said | str,
        *,
        permanent: bool,
        retry_after: float | None = None,
    ) -> None:
        self.said = as_said(evidence)
        self.evidence = self.said.english()
        super().__init__(self.evidence)
        self.reason = reason
        self.permanent = permanent
        self.retry_after = retry_after


def fault(reason: Reason, evidence: Said | str) -> CheckError:
    """The answer shows something wrong in production: fail, never retried."""
    return CheckError(reason, evidence, permanent=True)


def transient(reason: Reason, evidence: Said | str, retry_after: float | None = None) -> CheckError:
    """Nothing could be judged this time: retried, then `error`."""
    return CheckError(reason, evidence, permanent=False, retry_after=retry_after)


class OptionType(StrEnum):
    TEXT = "text"
    ENV = "env"  # the name of an environment variable, never its value
    URL = "url"
    INT = "int"
    TEXT_LIST = "text_list"  # a string or a list of strings
    BOOL = "bool"
    ENV_TABLE = "env_table"  # a table of names (e.g. header names) to environment variable names


# Every option a checks file may give a check, besides name, kind and item.
OPTION_TYPES: dict[str, OptionType] = {
    "secret_env": OptionType.ENV,
    "base_url": OptionType.URL,
    "ca_file": OptionType.TEXT,
    "account_sid_env": OptionType.ENV,
    "expected_host": OptionType.TEXT,
    "tables": OptionType.TEXT_LIST,
    "models": OptionType.TEXT_LIST,
    "voice_id": OptionType.TEXT,
    "min_characters": OptionType.INT,
    "repo": OptionType.TEXT,
    "url": OptionType.URL,
    "expect_status": OptionType.INT,
    "conditions": OptionType.TEXT_LIST,
    "allowed_origin": OptionType.TEXT,
    "components": OptionType.TEXT_LIST,
    "host": OptionType.TEXT,
    "port": OptionType.INT,
    "min_days": OptionType.INT,
    "expect": OptionType.TEXT_LIST,
    "nameserver": OptionType.TEXT,
    "api_key_sid_env": OptionType.ENV,
    "min_balance": OptionType.INT,
    "trunking_base_url": OptionType.URL,
    "role": OptionType.TEXT,
    "probe": OptionType.BOOL,
    "method": OptionType.TEXT,
    "scheme": OptionType.TEXT,
    "signature_header": OptionType.TEXT,
    "signature_prefix": OptionType.TEXT,
    "public": OptionType.BOOL,
    "request_headers": OptionType.TEXT_LIST,
    "request_method": OptionType.TEXT,
    "headers_env": OptionType.ENV_TABLE,
    "prove": OptionType.TEXT_LIST,
    "changelog": OptionType.TEXT,
}


@dataclass(frozen=True)
class Context:
    """One execution of one check: its options, the worker's environment, the release."""

    options: Mapping[str, Any]
    release_version: str
    env: Mapping[str, str] = field(default_factory=lambda: dict(os.environ))

    def text(self, key: str, default: str = "") -> str:
        value = self.options.get(key, default)
        return str(value)

    def texts(self, key: str) -> list[str]:
        value = self.options.get(key, [])
        return [value] if isinstance(value, str) else [str(v) for v in value]

    def number(self, key: str, default: int) -> int:
        return int(self.options.get(key, default))

    def secret(self, key: str = "secret_env", *, required: bool = True) -> str:
        """The value of the environment variable the option names; only workers call it."""
        name = self.options.get(key)
        if not name:
            if required:
                raise fault(Reason.MISCONFIGURED, f"no {key} is configured for this check")
            return ""
        value = self.env.get(str(name), "")
        if not value and required:
            raise fault(Reason.MISCONFIGURED, f"environment variable {name} is not set")
        return value

    def secrets(self) -> list[str]:
        """Every credential this check could read, so evidence can be scrubbed of them."""
        return [
            self.env[str(value)]
            for key, value in self.options.items()
            if OPTION_TYPES.get(key) == OptionType.ENV and self.env.get(str(value))
        ]


@dataclass(frozen=True)
class Kind:
    """One kind of check: the options it needs and may take, and how to run it."""

    name: str
    required: frozenset[str]
    optional: frozenset[str]
    run: Callable[[Context], Said | str]
    # Where its documentation lives, shown beside the check on the board.
    docs_url: str = ""
    # Checks the options beyond their types when a checks file is loaded (a condition's
    # syntax, a repo's owner/name form); raises ValueError with a message for the file.
    check_options: Callable[[Mapping[str, Any]], None] | None = None

    @property
    def options(self) -> frozenset[str]:
        return self.required | self.optional
