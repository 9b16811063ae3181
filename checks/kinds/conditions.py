"""Gatus-style conditions on one HTTP answer, parsed when a checks file is loaded.

The syntax follows Gatus's "Conditions" (https://github.com/TwiN/gatus#conditions), a
subset of it, evaluated here without Gatus:

    condition   := side OPERATOR side            OPERATOR: == != < <= > >=
    side        := placeholder | len(body) | has(body) | pat(glob) | any(v, v, ...) | constant
    placeholder := [STATUS] | [RESPONSE_TIME] | [CONNECTED] | [IP]
                 | [CERTIFICATE_EXPIRATION] | body
    body        := [BODY] followed by any of .key and [index], e.g. [BODY].data[0].id

- The first operator outside parentheses splits the condition; the rest is the right side.
- Two numbers compare as numbers, anything else as text (JSON true/false/null read as
  the words, objects and arrays as minified JSON). [BODY] alone is the body's text.
- [RESPONSE_TIME] (milliseconds) and [CERTIFICATE_EXPIRATION] (time left on the server's
  certificate) also compare with durations: 500ms, 30s, 5m, 48h, 14d.
- len() counts an array's items, an object's keys, or a value's characters; has() says
  whether a path exists. pat() (only * is special) and any() go with == and != only.
- A path the body does not have makes its condition false whatever the operator (test
  absence with `has(...) == false`); so does a path into a body that is not JSON.
- [CONNECTED] is false when no connection could be made at all (refused, unreachable,
  no address, no answer to the connection attempt), as Gatus reads it; every other
  placeholder then has no value, and its condition is false.

Why a condition is false is evidence: a `Said` naming the condition and the values seen.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property
from operator import eq, ge, gt, le, lt, ne
from typing import Any

from django.utils.translation import gettext_noop as _

from releases.evidence import SaidError

from .base import OptionError, Said, clip, option_problem, said

OPERATORS = ("==", "!=", "<=", ">=", "<", ">")
PLACEHOLDERS = ("STATUS", "RESPONSE_TIME", "CONNECTED", "IP", "CERTIFICATE_EXPIRATION", "BODY")
FUNCTIONS = ("len", "has", "pat", "any")
SHOWN_MAX = 60

_PLACEHOLDER = re.compile(r"\[([A-Z_]+)\](.*)", re.DOTALL)
_PATH_STEP = re.compile(r"\.([^.\[\]\s]+)|\[(\d+)\]")
_CALL = re.compile(r"([a-z_]+)\((.*)\)", re.DOTALL)
_NUMBER = re.compile(r"-?\d+(?:\.\d+)?")
_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d)")
_MILLISECONDS = {"ms": 1, "s": 1_000, "m": 60_000, "h": 3_600_000, "d": 86_400_000}
_BOOLEANS = ("true", "false")
_COMPARISONS: dict[str, Callable[[Any, Any], Any]] = {
    "==": eq,
    "!=": ne,
    "<": lt,
    "<=": le,
    ">": gt,
    ">=": ge,
}
# The operator that keeps a condition's meaning when its sides swap.
_FLIPPED = {"==": "==", "!=": "!=", "<": ">", ">": "<", "<=": ">=", ">=": "<="}

# What a placeholder's value is, which decides the constants it may be compared with.
_NUMBER_KIND, _DURATION_KIND, _BOOLEAN_KIND, _TEXT_KIND = "number", "duration", "boolean", "text"
_KINDS = {
    "STATUS": _NUMBER_KIND,
    "RESPONSE_TIME": _DURATION_KIND,
    "CERTIFICATE_EXPIRATION": _DURATION_KIND,
    "CONNECTED": _BOOLEAN_KIND,
    "IP": _TEXT_KIND,
    "BODY": _TEXT_KIND,
}


@dataclass(frozen=True)
class Placeholder:
    name: str
    path: tuple[str | int, ...] = ()

    def __str__(self) -> str:
        steps = "".join(f"[{s}]" if isinstance(s, int) else f".{s}" for s in self.path)
        return f"[{self.name}]{steps}"

    @property
    def kind(self) -> str:
        return _KINDS[self.name]


@dataclass(frozen=True)
class Call:
    """len() or has() of the body or a path in it."""

    function: str
    target: Placeholder

    @property
    def kind(self) -> str:
        return _NUMBER_KIND if self.function == "len" else _BOOLEAN_KIND


@dataclass(frozen=True)
class Pattern:
    glob: str

    def matches(self, text: str) -> bool:
        pieces = (re.escape(piece) for piece in self.glob.split("*"))
        return re.fullmatch(".*".join(pieces), text, re.DOTALL) is not None


@dataclass(frozen=True)
class AnyOf:
    choices: tuple[str, ...]


@dataclass(frozen=True)
class Constant:
    text: str


Dynamic = Placeholder | Call
Operand = Placeholder | Call | Pattern | AnyOf | Constant


@dataclass
class Observation:
    """What the conditions of one check see of its answer."""

    status: int
    response_time_ms: int
    body: str
    ip: str = ""
    certificate_expiration_ms: int | None = None
    connected: bool = True

    @cached_property
    def document(self) -> Any:
        try:
            return json.loads(self.body)
        except ValueError:
            return _NOT_JSON


class _NotJson:
    pass


_NOT_JSON = _NotJson()
_ABSENT = object()


class _CannotHold(SaidError):
    """The answer lacks what the condition looks at (a path, a certificate, a connection)."""


@dataclass(frozen=True)
class Verdict:
    holds: bool
    # Why it does not hold, for the evidence; None when it holds.
    evidence: Said | None = None


@dataclass(frozen=True)
class Condition:
    source: str
    left: Dynamic
    operator: str
    right: Operand

    def mentions(self, name: str) -> bool:
        """Whether a side is the placeholder `name` itself, such as "STATUS"."""
        return Placeholder(name) in (self.left, self.right)

    def evaluate(self, seen: Observation) -> Verdict:
        try:
            left = _resolve(self.left, seen)
            holds = _holds(left[0], self.operator, self.right, seen)
            right = (
                _resolve(self.right, seen) if isinstance(self.right, Placeholder | Call) else None
            )
        except _CannotHold as error:
            return Verdict(
                False,
                said(_("%(condition)s cannot hold: %(why)s"), condition=self.source, why=error.why),
            )
        if holds:
            return Verdict(True)
        shown = clip(left[1], SHOWN_MAX)
        if right is None:
            return Verdict(
                False,
                said(_("%(condition)s is false: %(value)s"), condition=self.source, value=shown),
            )
        return Verdict(
            False,
            said(
                _("%(condition)s is false: %(left)s vs %(right)s"),
                condition=self.source,
                left=shown,
                right=clip(right[1], SHOWN_MAX),
            ),
        )


def parse(source: str) -> Condition:
    """The condition, or OptionError naming it and what is wrong with it."""
    try:
        return _parse(source.strip())
    except ValueError as error:
        raise OptionError(
            said(
                _("condition %(condition)s: %(problem)s"),
                condition=repr(clip(source, 80)),
                problem=option_problem(error),
            )
        ) from None


def _parse(source: str) -> Condition:
    if not source:
        raise OptionError(said(_("it is empty")))
    at, operator = _find_operator(source)
    left = _operand(
        source[:at].strip(), said(_("nothing is on the left of %(operator)s"), operator=operator)
    )
    right = _operand(
        source[at + len(operator) :].strip(),
        said(_("nothing is on the right of %(operator)s"), operator=operator),
    )
    subject: Dynamic
    if isinstance(left, Placeholder | Call):
        subject, other = left, right
    elif isinstance(right, Placeholder | Call):
        # `300 > [RESPONSE_TIME]` reads as `[RESPONSE_TIME] < 300`.
        subject, other, operator = right, left, _FLIPPED[operator]
    else:
        raise OptionError(said(_("one side must be a placeholder such as [STATUS] or [BODY].path")))
    if isinstance(other, Pattern | AnyOf) and operator not in ("==", "!="):
        raise OptionError(
            said(_("pat() and any() work only with == and !=, not %(operator)s"), operator=operator)
        )
    if isinstance(other, Constant | AnyOf):
        other = _typed(subject, operator, other)
    return Condition(source, subject, operator, other)


def _find_operator(source: str) -> tuple[int, str]:
    depth = 0
    found: tuple[int, str] | None = None
    for at, char in enumerate(source):
        if char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
            if depth < 0:
                raise OptionError(said(_("a ) has no matching (")))
        elif depth == 0 and found is None:
            operator = next((op for op in OPERATORS if source.startswith(op, at)), None)
            if operator is not None:
                found = (at, operator)
    if depth:
        raise OptionError(said(_("a ( is never closed")))
    if found is None:
        raise OptionError(
            said(
                _("it has no comparison operator (%(operators)s)"),
                operators=", ".join(OPERATORS),
            )
        )
    return found


def _operand(text: str, missing: Said) -> Operand:
    """The operand `text` is; `missing` says where it is absent, when it is."""
    if not text:
        raise OptionError(missing)
    if _PLACEHOLDER.match(text):
        return _placeholder(text)
    call = _CALL.fullmatch(text)
    if call is None:
        return Constant(text)
    function, argument = call.group(1), call.group(2).strip()
    if function not in FUNCTIONS:
        raise OptionError(
            said(
                _("%(function)s() is not a function (%(functions)s)"),
                function=function,
                functions=", ".join(FUNCTIONS),
            )
        )
    if function == "pat":
        if not argument:
            raise OptionError(said(_("pat() needs a pattern")))
        return Pattern(argument)
    if function == "any":
        choices = tuple(choice.strip() for choice in argument.split(","))
        if not all(choices):
            raise OptionError(said(_("any() needs values separated by commas")))
        return AnyOf(choices)
    target = _placeholder(argument) if _PLACEHOLDER.match(argument) else None
    if target is None or target.name != "BODY":
        raise OptionError(
            said(_("%(function)s() takes [BODY] or a [BODY] path"), function=function)
        )
    return Call(function, target)


def _placeholder(text: str) -> Placeholder:
    match = _PLACEHOLDER.fullmatch(text)
    assert match is not None  # the caller matched the same pattern
    name, rest = match.group(1), match.group(2)
    if name not in PLACEHOLDERS:
        known = ", ".join(f"[{p}]" for p in PLACEHOLDERS)
        raise OptionError(
            said(_("[%(name)s] is not a placeholder (%(known)s)"), name=name, known=known)
        )
    if name != "BODY":
        if rest:
            raise OptionError(said(_("[%(name)s] takes no path"), name=name))
        return Placeholder(name)
    path: list[str | int] = []
    at = 0
    while at < len(rest):
        step = _PATH_STEP.match(rest, at)
        if step is None:
            raise OptionError(
                said(_("[BODY]%(path)s is not a path of .key and [index] steps"), path=rest)
            )
        path.append(step.group(1) if step.group(1) is not None else int(step.group(2)))
        at = step.end()
    return Placeholder(name, tuple(path))


def _typed(side: Dynamic, operator: str, constant: Constant | AnyOf) -> Constant | AnyOf:
    """The constants in the form the side's values take (a duration in milliseconds),
    refusing those it can never equal."""
    kind = side.kind
    label = str(side) if isinstance(side, Placeholder) else f"{side.function}()"
    if kind == _BOOLEAN_KIND and operator not in ("==", "!="):
        raise OptionError(
            said(_("%(side)s is true or false: compare it with == or !="), side=label)
        )
    texts = [constant.text] if isinstance(constant, Constant) else list(constant.choices)
    typed = [_typed_text(label, kind, text) for text in texts]
    return Constant(typed[0]) if isinstance(constant, Constant) else AnyOf(tuple(typed))


def _typed_text(label: str, kind: str, text: str) -> str:
    if kind == _BOOLEAN_KIND and text not in _BOOLEANS:
        raise OptionError(
            said(_("%(side)s is true or false, not %(text)s"), side=label, text=repr(text))
        )
    if kind == _NUMBER_KIND and not _NUMBER.fullmatch(text):
        raise OptionError(
            said(_("%(side)s is a number, not %(text)s"), side=label, text=repr(text))
        )
    if kind == _DURATION_KIND and not _NUMBER.fullmatch(text):
        duration = _DURATION.fullmatch(text)
        if duration is None:
            raise OptionError(
                said(
                    _("%(side)s is milliseconds or a duration such as 48h, not %(text)s"),
                    side=label,
                    text=repr(text),
                )
            )
        return str(round(float(duration.group(1)) * _MILLISECONDS[duration.group(2)]))
    return text


def _resolve(side: Dynamic | Constant, seen: Observation) -> tuple[str, str]:
    """The side's value as compared, and as shown in evidence."""
    if isinstance(side, Constant):
        return side.text, side.text
    if not seen.connected and not (isinstance(side, Placeholder) and side.name == "CONNECTED"):
        raise _CannotHold(said(_("no connection was made")))
    if isinstance(side, Call):
        return _call(side, seen)
    if side.name == "STATUS":
        return str(seen.status), str(seen.status)
    if side.name == "RESPONSE_TIME":
        return str(seen.response_time_ms), str(seen.response_time_ms)
    if side.name == "CONNECTED":
        word = "true" if seen.connected else "false"
        return word, word
    if side.name == "IP":
        if not seen.ip:
            raise _CannotHold(said(_("the server's address is unknown")))
        return seen.ip, seen.ip
    if side.name == "CERTIFICATE_EXPIRATION":
        left = seen.certificate_expiration_ms
        if left is None:
            raise _CannotHold(said(_("the answer came without a TLS certificate")))
        return str(left), _duration(left)
    if not side.path:
        text = seen.body.strip()
        return text, text
    text = _text(_walk(side, seen))
    return text, text


def _call(call: Call, seen: Observation) -> tuple[str, str]:
    if call.function == "has":
        present = bool(seen.body.strip()) if not call.target.path else _has(call.target, seen)
        word = "true" if present else "false"
        return word, word
    value = _walk(call.target, seen) if call.target.path else seen.body.strip()
    count = len(value) if isinstance(value, list | dict | str) else len(_text(value))
    return str(count), str(count)


def _has(target: Placeholder, seen: Observation) -> bool:
    try:
        _walk(target, seen)
    except _CannotHold:
        if seen.document is _NOT_JSON:
            raise
        return False
    return True


def _walk(target: Placeholder, seen: Observation) -> Any:
    value = seen.document
    if value is _NOT_JSON:
        raise _CannotHold(said(_("the body is not JSON")))
    for at, step in enumerate(target.path):
        if isinstance(step, int):
            value = value[step] if isinstance(value, list) and step < len(value) else _ABSENT
        else:
            value = value.get(step, _ABSENT) if isinstance(value, dict) else _ABSENT
        if value is _ABSENT:
            absent = Placeholder(target.name, target.path[: at + 1])
            raise _CannotHold(said(_("%(path)s is absent"), path=str(absent)))
    return value


def _text(value: Any) -> str:
    if isinstance(value, str):
        return value
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def _holds(left: str, operator: str, right: Operand, seen: Observation) -> bool:
    if isinstance(right, Pattern):
        return right.matches(left) == (operator == "==")
    if isinstance(right, AnyOf):
        equal = any(_compare(left, "==", choice) for choice in right.choices)
        return equal == (operator == "==")
    return _compare(left, operator, _resolve(right, seen)[0])


def _compare(left: str, operator: str, right: str) -> bool:
    compare = _COMPARISONS[operator]
    if _NUMBER.fullmatch(left) and _NUMBER.fullmatch(right):
        return bool(compare(float(left), float(right)))
    return bool(compare(left, right))


def _duration(milliseconds: int) -> str:
    if milliseconds >= 3_600_000:
        return f"{milliseconds // 3_600_000}h"
    return f"{milliseconds // 60_000}m"
