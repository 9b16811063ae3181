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
- transient: nothing could be judged this time (a timeout, a host the worker cannot
  reach, a 5xx, a 429, garbage). The task tries again with backoff, honouring
  `retry_after`; when the attempts run out the outcome is `error`, which the board shows
  as "not verified", never as the vendor failing.
- unjudged: nothing could be judged and the server says not to try again: `error` at
  once.
"""

from __future__ import annotations

import os
import re
import ssl
import stat
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from django.utils.translation import gettext_noop as _

# Re-exported: the kinds write their evidence with these.
from releases.evidence import Said as Said
from releases.evidence import Value as Value
from releases.evidence import as_said as as_said
from releases.evidence import clip as clip
from releases.evidence import said as said
from releases.models import CheckReason

from ..credentials import find_credential, is_app_variable

ENV_NAME = re.compile(r"^[A-Z_][A-Z0-9_]*$")


def is_variable_name(value: Any) -> bool:
    """Whether a value written where a variable's name belongs is one. An AWS access key
    id is upper case and digits, as a variable's name is, so a credential is never one."""
    return isinstance(value, str) and bool(ENV_NAME.fullmatch(value)) and not find_credential(value)


# The longest a result waits to be tried again; a vendor asking for longer ends the
# attempt, saying when to try again. Kinds read it to tell a wait that a retry can
# outlast from one it cannot.
MAX_RETRY_DELAY = 60.0


# The codes are stored on release items and shown on the board, so they and their
# labels live with the release models; so does the evidence, which items store too.
Reason = CheckReason


def joined(first: Said, *more: Said) -> Said:
    """Sentences of evidence one after another, each still translated on its own."""
    for then in more:
        first = said(_("%(first)s; %(then)s"), first=first, then=then)
    return first


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
        retry: bool = True,
    ) -> None:
        self.said = as_said(evidence)
        self.evidence = self.said.english()
        super().__init__(self.evidence)
        self.reason = reason
        self.permanent = permanent
        self.retry_after = retry_after
        # Only for what is not permanent: whether another attempt could judge it.
        self.retry = retry and not permanent


def fault(reason: Reason, evidence: Said | str) -> CheckError:
    """The answer shows something wrong in production: fail, never retried."""
    return CheckError(reason, evidence, permanent=True)


def transient(reason: Reason, evidence: Said | str, retry_after: float | None = None) -> CheckError:
    """Nothing could be judged this time: retried, then `error`."""
    return CheckError(reason, evidence, permanent=False, retry_after=retry_after)


def unjudged(reason: Reason, evidence: Said | str) -> CheckError:
    """Nothing could be judged, and the server says another try would not help either
    (`x-should-retry: false` on a 5xx): `error` at once."""
    return CheckError(reason, evidence, permanent=False, retry=False)


class OptionError(ValueError):
    """An option a kind refuses (check_options, or a condition that does not parse).
    `said` is the sentence, which names the option first, marked for translation: a
    checks file's fault is read in the reader's language, and evidence kept in English."""

    def __init__(self, problem: Said) -> None:
        super().__init__(problem.english())
        self.said = problem


def option_problem(error: ValueError) -> Said:
    """What is wrong with an option: an OptionError's sentence, or another ValueError's
    text (a library's, in English)."""
    return error.said if isinstance(error, OptionError) else as_said(str(error))


def invalid_option(error: ValueError) -> CheckError:
    """An option the kind's check_options refuses. A checks file holding one is refused
    when it loads; this is the fallback for a check run without that."""
    return fault(
        Reason.MISCONFIGURED,
        said(_("invalid option: %(problem)s"), problem=option_problem(error)),
    )


# Far more than any CA bundle (the system's is about 200 KiB): a larger file is not one,
# and is not read whole to find out.
CA_FILE_MAX_BYTES = 4 * 1024 * 1024


def ca_file_problem(path: str) -> Said | None:
    """What keeps `path` from serving as a ca_file, or None: it must be a regular file
    this process can read, holding at least one PEM certificate. Never opened when it is
    a directory, FIFO or device; its content is never quoted."""
    try:
        found = os.stat(path)
    except FileNotFoundError:
        return said(_("ca_file %(path)s does not exist"), path=path)
    except OSError:
        return said(_("ca_file %(path)s cannot be read"), path=path)
    if not stat.S_ISREG(found.st_mode):
        return said(_("ca_file %(path)s is not a regular file"), path=path)
    if found.st_size > CA_FILE_MAX_BYTES:
        return said(
            _("ca_file %(path)s is larger than %(limit)s bytes, which no CA bundle is"),
            path=path,
            limit=CA_FILE_MAX_BYTES,
        )
    # Read as the checks read it: by the TLS library, into a context of its own.
    trust = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    try:
        trust.load_verify_locations(cafile=path)
    except ssl.SSLError:
        return said(_("ca_file %(path)s holds no PEM certificate"), path=path)
    except OSError:
        return said(_("ca_file %(path)s cannot be read"), path=path)
    if not trust.cert_store_stats()["x509"]:
        return said(_("ca_file %(path)s holds no PEM certificate"), path=path)
    return None


def unloadable_ca_file(path: str) -> CheckError:
    """A ca_file the worker could not load: the check's configuration is at fault, never
    the vendor, and nothing was sent."""
    return fault(
        Reason.MISCONFIGURED,
        ca_file_problem(path)
        or said(_("ca_file %(path)s cannot be read as PEM certificates"), path=path),
    )


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


def texts(value: Any) -> list[str]:
    """A text-list option's value as a list: one string stands for a list of one."""
    return [value] if isinstance(value, str) else [str(v) for v in value]


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
        return texts(self.options.get(key, []))

    def number(self, key: str, default: int) -> int:
        return int(self.options.get(key, default))

    def secret(self, key: str = "secret_env", *, required: bool = True) -> str:
        """The value of the environment variable the option names; only workers call it.

        A value with white space around it or a line break in it (a key pasted with its
        newline) is refused before anything is sent: the vendor would refuse it, or
        httpx would not send it, and either would read as the vendor's fault."""
        name = self.options.get(key)
        if not name:
            if required:
                raise fault(
                    Reason.MISCONFIGURED,
                    said(_("no %(option)s is configured for this check"), option=key),
                )
            return ""
        value = self.variable(str(name))
        if not value and required:
            raise fault(
                Reason.MISCONFIGURED,
                said(_("environment variable %(name)s is not set"), name=str(name)),
            )
        flaw = _pasting_flaw(value)
        if flaw is not None:
            # The variable's name only: its value is the credential.
            raise fault(Reason.MISCONFIGURED, said(flaw, name=str(name)))
        return value

    def variable(self, name: str) -> str:
        """The value of an environment variable an option names, "" when unset; never
        one of deploycheck's own (its secret key, its database's address), even for a
        check saved before such names were refused."""
        if is_app_variable(name):
            raise fault(
                Reason.MISCONFIGURED,
                said(
                    _("%(name)s is deploycheck's own variable, which no check may send"),
                    name=name,
                ),
            )
        return self.env.get(name, "")

    def secrets(self) -> list[str]:
        """Every credential this check could read, so evidence can be scrubbed of them."""
        names: list[str] = []
        for key, value in self.options.items():
            kind = OPTION_TYPES.get(key)
            if kind == OptionType.ENV:
                names.append(str(value))
            elif kind == OptionType.ENV_TABLE and isinstance(value, Mapping):
                names.extend(str(name) for name in value.values())
        return [self.env[name] for name in names if self.env.get(name)]


_LINE_BREAKS = ("\n", "\r")


def _pasting_flaw(value: str) -> str | None:
    """What is wrong with a credential as it was pasted, as a message naming the
    variable (`%(name)s`), or None when nothing is."""
    if not value:
        return None
    if value[-1] in _LINE_BREAKS:
        return _("%(name)s ends with a newline")
    if value[0] in _LINE_BREAKS:
        return _("%(name)s starts with a newline")
    if any(mark in value for mark in _LINE_BREAKS):
        return _("%(name)s contains a line break")
    if value[-1].isspace():
        return _("%(name)s ends with a space")
    if value[0].isspace():
        return _("%(name)s starts with a space")
    return None


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
    # syntax, a repo's owner/name form); raises OptionError with a message for the file.
    check_options: Callable[[Mapping[str, Any]], None] | None = None

    @property
    def options(self) -> frozenset[str]:
        return self.required | self.optional
