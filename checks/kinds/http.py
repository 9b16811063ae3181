"""http: GET a URL (no redirects followed) and judge its status and Gatus-style conditions.

Conditions follow Gatus's syntax (https://github.com/TwiN/gatus#conditions), parsed by
`conditions.py`; the status codes are those of RFC 9110 §15
(https://www.rfc-editor.org/rfc/rfc9110#section-15).

The status must equal `expect_status` when it is given, and every condition that
mentions [STATUS] must hold; with neither, the status must be 200.

Permanent failures (misconfigured): a status other than `expect_status`, a redirect
neither it nor a [STATUS] condition accepts (named by the Location's host only), a
condition that is false or cannot hold (a [BODY] path into a body that is not JSON).
Transient: a 5xx or 429 that neither `expect_status` nor a [STATUS] condition accepts
(the server is down or asks us to wait: nothing else can be judged), and whatever
`client.send` reports (timeouts, refused connections).
"""

from __future__ import annotations

import ssl
import time
from collections.abc import Mapping
from typing import Any

import httpx

from .base import Context, Kind, Reason, fault, transient
from .client import http_client, retry_after, send
from .conditions import Observation, parse

DEFAULT_STATUS = 200


def run(context: Context) -> str:
    try:
        conditions = [parse(text) for text in context.texts("conditions")]
    except ValueError as error:
        # check_options refuses these when the checks file loads; this is the fallback.
        raise fault(Reason.MISCONFIGURED, str(error)) from None
    expected = context.number("expect_status", 0) if "expect_status" in context.options else None
    peer = _Peer()
    with http_client(ca_file=context.text("ca_file")) as client:
        client.event_hooks = {"response": [peer.note]}
        started = time.perf_counter()
        response = send(client, "GET", context.text("url"))
        elapsed_ms = round((time.perf_counter() - started) * 1000)
    seen = Observation(
        status=response.status_code,
        response_time_ms=elapsed_ms,
        body=response.text,
        ip=peer.ip,
        certificate_expiration_ms=peer.certificate_expiration_ms,
    )
    verdicts = [(condition, condition.evaluate(seen)) for condition in conditions]
    if expected is None and not any(c.mentions_status for c in conditions):
        expected = DEFAULT_STATUS
    status = response.status_code
    status_holds = [verdict.holds for condition, verdict in verdicts if condition.mentions_status]
    vouched = status == expected or (bool(status_holds) and all(status_holds))
    if not vouched and (status >= 500 or status == 429):
        reason = Reason.RATE_LIMITED if status == 429 else Reason.VENDOR_DOWN
        raise transient(reason, f"HTTP {status}", retry_after(response))
    problems = [verdict.evidence for _, verdict in verdicts if not verdict.holds]
    if expected is not None and status != expected:
        problems.insert(0, f"{_status(response)}, expected {expected}")
    elif not vouched and 300 <= status < 400:
        problems.insert(0, _status(response))
    if problems:
        raise fault(Reason.MISCONFIGURED, "; ".join(problems))
    held = f"; {_count(len(conditions))}" if conditions else ""
    return f"HTTP {status} in {elapsed_ms} ms{held}"


def _status(response: httpx.Response) -> str:
    status = response.status_code
    location = response.headers.get("location")
    if not 300 <= status < 400 or location is None:
        return f"HTTP {status}"
    # Only the host: a Location's path or query may carry a token.
    host = response.url.join(location).host or "an unreadable Location"
    return f"HTTP {status} redirect to {host}"


def _count(held: int) -> str:
    return "1 condition holds" if held == 1 else f"{held} conditions hold"


class _Peer:
    """What the connection showed while it was still open: the server's address and how
    long its certificate has left."""

    def __init__(self) -> None:
        self.ip = ""
        self.certificate_expiration_ms: int | None = None

    def note(self, response: httpx.Response) -> None:
        stream = response.extensions.get("network_stream")
        if stream is None:
            return
        address = stream.get_extra_info("server_addr")
        if address:
            self.ip = str(address[0])
        tls = stream.get_extra_info("ssl_object")
        certificate = tls.getpeercert() if tls is not None else None
        if certificate and "notAfter" in certificate:
            expires = ssl.cert_time_to_seconds(certificate["notAfter"])
            self.certificate_expiration_ms = round((expires - time.time()) * 1000)


def check_options(options: Mapping[str, Any]) -> None:
    try:
        url = httpx.URL(str(options.get("url", "")))
    except httpx.InvalidURL as error:
        raise ValueError(f"url is not a URL: {error}") from None
    if url.scheme not in ("http", "https") or not url.host:
        raise ValueError("url must be an http:// or https:// URL with a host")
    if "expect_status" in options and not 100 <= int(options["expect_status"]) <= 599:
        raise ValueError("expect_status must be an HTTP status between 100 and 599")
    raw = options.get("conditions", [])
    for text in [raw] if isinstance(raw, str) else raw:
        parse(str(text))


KIND = Kind(
    name="http",
    required=frozenset({"url"}),
    optional=frozenset({"expect_status", "conditions", "ca_file"}),
    run=run,
    docs_url="https://github.com/TwiN/gatus#conditions",
    check_options=check_options,
)
