"""cors: an endpoint's CORS policy refuses a foreign origin, and allows the app's own.

It sends a GET and an OPTIONS preflight (Access-Control-Request-Method: POST), first from
a foreign origin and then, when `allowed_origin` is given, from that one, and reads
Access-Control-Allow-Origin as the Fetch standard defines it
(https://fetch.spec.whatwg.org/#http-cors-protocol; also
https://developer.mozilla.org/en-US/docs/Web/HTTP/Guides/CORS).

Permanent failures (misconfigured): either answer to the foreign origin allows it (`*`
or the origin echoed back); an answer to `allowed_origin` does not name it; a redirect
(a preflight may not redirect, and the check does not follow one); a GET of 404 or 410
(no endpoint to judge). Transient: 429 and 5xx, and whatever `client.send` reports.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import httpx

from .base import Context, Kind, Reason, fault
from .client import http_client, send, unexpected

FOREIGN_ORIGIN = "https://foreign.deploycheck.invalid"
ALLOW_ORIGIN = "access-control-allow-origin"
ALLOW_CREDENTIALS = "access-control-allow-credentials"


@dataclass(frozen=True)
class _Allowed:
    method: str
    origin: str  # the Access-Control-Allow-Origin answered, "" for none
    credentials: bool


def run(context: Context) -> str:
    url = context.text("url")
    allowed = context.text("allowed_origin")
    with http_client(ca_file=context.text("ca_file")) as client:
        for answer in _ask(client, url, FOREIGN_ORIGIN):
            if answer.origin in ("*", FOREIGN_ORIGIN):
                shown = "*" if answer.origin == "*" else "the origin echoed back"
                credentials = ", with credentials" if answer.credentials else ""
                raise fault(
                    Reason.MISCONFIGURED,
                    f"accepts requests from any origin{credentials}"
                    f" ({answer.method} answers Access-Control-Allow-Origin: {shown})",
                )
        if not allowed:
            return f"refuses {FOREIGN_ORIGIN}"
        refusals = [
            f"{answer.method} answers {answer.origin or 'no Access-Control-Allow-Origin'}"
            for answer in _ask(client, url, allowed)
            if answer.origin != allowed
        ]
    if refusals:
        raise fault(Reason.MISCONFIGURED, f"does not allow {allowed} ({'; '.join(refusals)})")
    return f"refuses {FOREIGN_ORIGIN}; allows {allowed}"


def _ask(client: httpx.Client, url: str, origin: str) -> list[_Allowed]:
    """What a GET and a preflight from `origin` are allowed, in that order."""
    answers = []
    for method, extra in (("GET", {}), ("OPTIONS", {"Access-Control-Request-Method": "POST"})):
        response = send(client, method, url, headers={"Origin": origin, **extra})
        status = response.status_code
        if method == "GET" and status in (404, 410):
            raise fault(Reason.MISCONFIGURED, f"no endpoint answers at this URL (HTTP {status})")
        if 300 <= status < 400 or status == 429 or status >= 500:
            raise unexpected(response, f"CORS {method}")
        answers.append(
            _Allowed(
                method=method,
                origin=response.headers.get(ALLOW_ORIGIN, "").strip(),
                credentials=response.headers.get(ALLOW_CREDENTIALS, "").strip() == "true",
            )
        )
    return answers


def check_options(options: Mapping[str, Any]) -> None:
    url = urlsplit(str(options.get("url", "")))
    if url.scheme not in ("http", "https") or not url.netloc:
        raise ValueError("url must be an http:// or https:// URL with a host")
    origin = str(options.get("allowed_origin", ""))
    if not origin:
        return
    parts = urlsplit(origin)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError("allowed_origin must be an origin such as https://app.example.com")
    if parts.path or parts.query or parts.fragment:
        raise ValueError(
            f"allowed_origin is an origin, with no path: write {parts.scheme}://{parts.netloc}"
        )


KIND = Kind(
    name="cors",
    required=frozenset({"url"}),
    optional=frozenset({"allowed_origin", "ca_file"}),
    run=run,
    docs_url="https://fetch.spec.whatwg.org/#http-cors-protocol",
    check_options=check_options,
)
