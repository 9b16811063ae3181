"""What every kind of check shares: the verdict, the error that says whether trying
again could help, and the options a checks file may set.

A kind's `run(context)` returns the evidence of a pass (a short summary parsed from the
answer, never a raw body) or raises CheckError:

- permanent: the answer shows a fault (a bad key, an unknown model, a false condition).
  The outcome is `fail` and nothing is retried.
- transient: nothing could be judged this time (a timeout, a refused connection, a 5xx,
  a 429, garbage). The task tries again with backoff, honouring `retry_after`; when the
  attempts run out the outcome is `error`.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

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


class CheckError(Exception):
    """The check did not pass; `evidence` says why in a line a person can act on."""

    def __init__(
        self,
        reason: Reason,
        evidence: str,
        *,
        permanent: bool,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(evidence)
        self.reason = reason
        self.evidence = clip(evidence)
        self.permanent = permanent
        self.retry_after = retry_after


def fault(reason: Reason, evidence: str) -> CheckError:
    """The answer shows something wrong in production: fail, never retried."""
    return CheckError(reason, evidence, permanent=True)


def transient(reason: Reason, evidence: str, retry_after: float | None = None) -> CheckError:
    """Nothing could be judged this time: retried, then `error`."""
    return CheckError(reason, evidence, permanent=False, retry_after=retry_after)


class OptionType(StrEnum):
    TEXT = "text"
    ENV = "env"  # the name of an environment variable, never its value
    URL = "url"
    INT = "int"
    TEXT_LIST = "text_list"  # a string or a list of strings


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
    run: Callable[[Context], str]
    # Where its documentation lives, shown beside the check on the board.
    docs_url: str = ""
    # Checks the options beyond their types when a checks file is loaded (a condition's
    # syntax, a repo's owner/name form); raises ValueError with a message for the file.
    check_options: Callable[[Mapping[str, Any]], None] | None = None

    @property
    def options(self) -> frozenset[str]:
        return self.required | self.optional
