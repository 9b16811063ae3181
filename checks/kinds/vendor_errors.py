"""What the vendor kinds share: where a vendor's versioned API lives once `base_url` may
override it, a lenient reading of the JSON vendors answer with, how evidence names an
error answer, and the fault of an AI kind with no model to probe.

Vendor JSON is open: these helpers read the fields a kind asks for and ignore the rest,
and a field of the wrong type reads as absent instead of raising.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import urlsplit

import httpx
from django.utils.translation import gettext_noop as _

from .base import CheckError, Reason, Said, fault, said, transient, unjudged
from .client import json_body


def api_url(base: str, default: str, version_segment: str) -> str:
    """The API root with its version segment exactly once.

    `base` (a stand-in, a proxy, a regional host) replaces the production host `default`;
    people paste either the host or the versioned root, so both are accepted.
    """
    root = (base or default).rstrip("/")
    last_segment = urlsplit(root).path.rstrip("/").rpartition("/")[2]
    return root if last_segment == version_segment else f"{root}/{version_segment}"


def json_object(response: httpx.Response, what: Said | str) -> dict[str, Any]:
    """The JSON object of a successful answer; anything else is garbage, not a verdict."""
    data = json_body(response)
    if not isinstance(data, dict):
        raise transient(
            Reason.BAD_RESPONSE,
            said(
                _("%(what)s: HTTP %(status)s with JSON of another shape"),
                what=what,
                status=response.status_code,
            ),
        )
    return data


def undocumented(what: Said, value: str, documented: Iterable[str]) -> CheckError:
    """A value the vendor's documentation does not list: it shows neither the fault nor
    its absence, so nothing is verified; asked again, the vendor would say the same."""
    return unjudged(
        Reason.BAD_RESPONSE,
        said(
            _("%(what)s is %(value)s, which is not one the API documents (%(documented)s)"),
            what=what,
            value=value,
            documented=", ".join(documented),
        ),
    )


def no_models_to_probe() -> CheckError:
    """An AI kind set to prove billing by a generation on each model, with none named."""
    return fault(
        Reason.MISCONFIGURED,
        said(
            _(
                "no models to probe: name the models the app calls in models, or set "
                "probe = false to check the key alone (billing is then not verified)"
            )
        ),
    )


def error_body(response: httpx.Response) -> dict[str, Any]:
    """The JSON object of an error answer, or {}: an edge proxy's HTML page must still be
    classified by its status, not reported as garbage."""
    try:
        data = response.json()
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}


def answer_label(status: int, code: str) -> Said:
    """An error answer as evidence names it: its HTTP status and the vendor's code, when
    it gave one."""
    if code:
        return said(_("HTTP %(status)s %(code)s"), status=status, code=code)
    return said(_("HTTP %(status)s"), status=status)


def string(data: Mapping[str, Any], key: str) -> str:
    value = data.get(key)
    return value if isinstance(value, str) else ""


def mapping(data: Mapping[str, Any], key: str) -> dict[str, Any]:
    value = data.get(key)
    return value if isinstance(value, dict) else {}


def integer(data: Mapping[str, Any], key: str) -> int | None:
    value = data.get(key)
    # bool is an int in Python; a JSON true is never a count.
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def plural(count: int, noun: str) -> str:
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"
