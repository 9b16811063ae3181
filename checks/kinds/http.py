"""http: GET a URL (no redirects followed) and judge its status and Gatus-style conditions.

Conditions follow Gatus's syntax (https://github.com/TwiN/gatus#conditions), parsed by
`conditions.py`; the status codes are those of RFC 9110 §15
(https://www.rfc-editor.org/rfc/rfc9110#section-15).

The status must equal `expect_status` when it is given, and every condition that
mentions [STATUS] must hold; with neither, the status must be 200.

`headers_env` sends headers whose values are read from the worker's environment (a
table of header name to variable name, e.g. `{ Authorization = "PROMETHEUS_AUTH" }`,
the variable holding the whole value, such as `Bearer …`): for Prometheus, Loki or
Grafana behind authentication. The values never reach the evidence, even when the
server echoes them into a field a condition shows.

A condition on [CONNECTED] makes a connection that cannot be made (refused, no route,
no address, no answer to the connection attempt) an observation rather than an outage:
as in Gatus, [CONNECTED] is then false and the conditions are judged, so
`[CONNECTED] == false` proves that nothing answers there. A TLS handshake that fails
still counts as a connection made.

Permanent failures (misconfigured): a status other than `expect_status`, a redirect
neither it nor a [STATUS] condition accepts (named by the Location's host only), a
condition that is false or cannot hold (a [BODY] path into a body that is not JSON), a
variable `headers_env` names that is not set. Transient: a 5xx or 429 that neither
`expect_status` nor a [STATUS] condition accepts (the server is down or asks us to wait:
nothing else can be judged), and whatever `client.send` reports (timeouts, refused
connections) unless a condition judges [CONNECTED].
"""

from __future__ import annotations

import re
import ssl
import time
from collections.abc import Iterable, Mapping
from typing import Any

import httpx
from django.utils.translation import gettext_noop as _

from .base import (
    CheckError,
    Context,
    Kind,
    OptionError,
    Reason,
    Said,
    fault,
    invalid_option,
    joined,
    said,
    texts,
)
from .client import busy_or_down, causes, http_client, send
from .conditions import Condition, Observation, parse

DEFAULT_STATUS = 200
# RFC 9110 §5.1: a field name is a token.
HEADER_NAME = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")


def run(context: Context) -> Said:
    try:
        conditions = [parse(text) for text in context.texts("conditions")]
    except ValueError as error:
        raise invalid_option(error) from None
    headers = _headers(context)
    credentials = _credentials(headers.values())
    try:
        return _judge(context, conditions, headers).scrubbed(credentials)
    except CheckError as error:
        if not credentials:
            raise
        raise CheckError(
            error.reason,
            error.said.scrubbed(credentials),
            permanent=error.permanent,
            retry_after=error.retry_after,
        ) from None


def _judge(context: Context, conditions: list[Condition], headers: dict[str, str]) -> Said:
    url = context.text("url")
    expected = context.number("expect_status", 0) if "expect_status" in context.options else None
    judges_connection = any(condition.mentions("CONNECTED") for condition in conditions)
    peer = _Peer()
    with http_client(ca_file=context.text("ca_file"), headers=headers) as client:
        client.event_hooks = {"response": [peer.note]}
        started = time.perf_counter()
        try:
            response: httpx.Response | None = send(client, "GET", url)
        except CheckError as error:
            # `send` raises its verdict from the transport error it handled, which stays
            # the verdict's __context__: what tells a connection never made from the rest.
            if not judges_connection or not _never_connected(error.__context__):
                raise
            response = None
        elapsed_ms = round((time.perf_counter() - started) * 1000)
    if response is None:
        return _unreachable(url, expected, conditions, elapsed_ms)
    seen = Observation(
        status=response.status_code,
        response_time_ms=elapsed_ms,
        body=response.text,
        ip=peer.ip,
        certificate_expiration_ms=peer.certificate_expiration_ms,
    )
    verdicts = [(condition, condition.evaluate(seen)) for condition in conditions]
    if expected is None and not any(c.mentions("STATUS") for c in conditions):
        expected = DEFAULT_STATUS
    status = response.status_code
    status_holds = [
        verdict.holds for condition, verdict in verdicts if condition.mentions("STATUS")
    ]
    vouched = status == expected or (bool(status_holds) and all(status_holds))
    if not vouched and (status >= 500 or status == 429):
        raise busy_or_down(response, said(_("HTTP %(status)s"), status=status))
    problems = [verdict.evidence for _condition, verdict in verdicts if verdict.evidence]
    if expected is not None and status != expected:
        problems.insert(
            0,
            said(
                _("%(status)s, expected %(expected)s"), status=_status(response), expected=expected
            ),
        )
    elif not vouched and 300 <= status < 400:
        problems.insert(0, _status(response))
    if problems:
        raise fault(Reason.MISCONFIGURED, joined(*problems))
    answered = said(_("HTTP %(status)s in %(ms)s ms"), status=status, ms=elapsed_ms)
    if not conditions:
        return answered
    return said(_("%(answer)s; %(held)s"), answer=answered, held=_held(len(conditions)))


def _unreachable(
    url: str, expected: int | None, conditions: list[Condition], elapsed_ms: int
) -> Said:
    """The verdict when no connection could be made and a condition judges that."""
    seen = Observation(status=0, response_time_ms=elapsed_ms, body="", connected=False)
    verdicts = [condition.evaluate(seen) for condition in conditions]
    problems = [verdict.evidence for verdict in verdicts if verdict.evidence]
    if expected is not None:
        problems.insert(
            0, said(_("no connection was made, expected HTTP %(expected)s"), expected=expected)
        )
    if problems:
        raise fault(Reason.MISCONFIGURED, joined(*problems))
    host = httpx.URL(url).host
    return said(
        _("no connection to %(host)s could be made; %(held)s"),
        host=host,
        held=_held(len(conditions)),
    )


def _never_connected(error: BaseException | None) -> bool:
    """Whether a transport error came before any connection was made: a TLS error means
    the server was reached."""
    if not isinstance(error, httpx.ConnectError | httpx.ConnectTimeout):
        return False
    return not any(isinstance(cause, ssl.SSLError) for cause in causes(error))


def _headers(context: Context) -> dict[str, str]:
    """The headers `headers_env` names, read from the environment."""
    headers: dict[str, str] = {}
    for name, variable in dict(context.options.get("headers_env", {})).items():
        value = context.variable(str(variable))
        if not value:
            raise fault(
                Reason.MISCONFIGURED,
                said(
                    _("environment variable %(variable)s (header %(header)s) is not set"),
                    variable=str(variable),
                    header=str(name),
                ),
            )
        headers[str(name)] = value
    return headers


def _credentials(values: Iterable[str]) -> list[str]:
    """What to mask in evidence: each header's value, and the credential after its
    scheme (`Bearer abc` → `abc`), which a server may echo alone."""
    masked: list[str] = []
    for value in values:
        masked.append(value)
        _scheme, space, credential = value.strip().partition(" ")
        if space and credential.strip():
            masked.append(credential.strip())
    # Longest first, so that a value is masked whole before its credential part.
    return sorted(masked, key=len, reverse=True)


def _status(response: httpx.Response) -> Said:
    status = response.status_code
    location = response.headers.get("location")
    if not 300 <= status < 400 or location is None:
        return said(_("HTTP %(status)s"), status=status)
    # Only the host: a Location's path or query may carry a token.
    host = response.url.join(location).host
    if not host:
        return said(_("HTTP %(status)s redirect to an unreadable Location"), status=status)
    return said(_("HTTP %(status)s redirect to %(host)s"), status=status, host=host)


def _held(count: int) -> Said:
    if count == 1:
        return said(_("1 condition holds"))
    return said(_("%(count)s conditions hold"), count=count)


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
    except httpx.InvalidURL:
        raise OptionError(
            said(_("url is not a valid URL: check its host, its port and its length"))
        ) from None
    if url.scheme not in ("http", "https") or not url.host:
        raise OptionError(said(_("url must be an http:// or https:// URL with a host")))
    if "expect_status" in options and not 100 <= int(options["expect_status"]) <= 599:
        raise OptionError(said(_("expect_status must be an HTTP status between 100 and 599")))
    for text in texts(options.get("conditions", [])):
        parse(text)
    for name in dict(options.get("headers_env", {})):
        if not HEADER_NAME.fullmatch(str(name)):
            raise OptionError(
                said(
                    _("headers_env names %(name)s, which is not an HTTP header name"),
                    name=repr(name),
                )
            )


KIND = Kind(
    name="http",
    required=frozenset({"url"}),
    optional=frozenset({"expect_status", "conditions", "ca_file", "headers_env"}),
    run=run,
    docs_url="https://github.com/TwiN/gatus#conditions",
    check_options=check_options,
)
