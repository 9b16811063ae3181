"""cors: an endpoint's CORS policy refuses foreign origins and lets the app's own origin
make its requests, read the way the Fetch standard reads it
(https://fetch.spec.whatwg.org/#http-cors-protocol, "CORS-preflight fetch" at
https://fetch.spec.whatwg.org/#cors-preflight-fetch; also
https://developer.mozilla.org/en-US/docs/Web/HTTP/Guides/CORS).

From each origin it sends a GET and a preflight: OPTIONS with Origin,
Access-Control-Request-Method (`request_method`, POST) and Access-Control-Request-Headers
(`request_headers`, "content-type, authorization"). The foreign origins are
https://foreign.deploycheck.invalid and `null` and, when `allowed_origin` is given, its
look-alikes: a suffix (https://app.example.evil), a prefix (https://evilapp.example), the
other scheme and another port. Each must be refused: no Access-Control-Allow-Origin that
is `*` or echoes it. Origins compare exactly: scheme, host and port.

The app's own origin (`allowed_origin`) must be named in both answers, and its preflight
must answer an ok status (200-299) allowing the method (unless CORS-safelisted: GET,
HEAD, POST) and each requested header, compared case-insensitively. `*` stands for any
method or header only for a request without credentials (no
Access-Control-Allow-Credentials: true), and never for Authorization.

An endpoint declared `public = true` may answer `*`, or echo any origin, when it does so
without credentials; its preflight (from `allowed_origin`, or else from the foreign
origin) is judged as above.

Permanent failures (misconfigured): a foreign origin allowed (`*` on an endpoint not
public, any origin with credentials, a look-alike echoed); the app's origin not named; a
preflight that answers another status or does not allow the method or a header; a
redirect (a preflight may not redirect, and the check follows none); a GET of 404 or 410
(no endpoint to judge). Transient: 429 and 5xx, and whatever `client.send` reports.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import httpx
from django.utils.translation import gettext_noop as _

from .base import CheckError, Context, Kind, OptionError, Reason, Said, Value, fault, said, texts
from .client import busy_or_down, http_client, send

FOREIGN_ORIGIN = "https://foreign.deploycheck.invalid"
# What a browser sends from an opaque origin: a sandboxed frame, a file, a data: URL.
NULL_ORIGIN = "null"
DEFAULT_REQUEST_HEADERS = ("content-type", "authorization")
DEFAULT_METHOD = "POST"
# Fetch: a preflight need not list these methods.
SAFELISTED_METHODS = frozenset({"GET", "HEAD", "POST"})
# Fetch normalises these methods to upper case, and no other.
NORMALIZED_METHODS = frozenset({"DELETE", "GET", "HEAD", "OPTIONS", "POST", "PUT"})
# Fetch: `*` in Access-Control-Allow-Headers never stands for these.
NON_WILDCARD_HEADERS = frozenset({"authorization"})
DEFAULT_PORTS = {"http": 80, "https": 443}
# Another port for a look-alike of an origin on its scheme's default port.
OTHER_PORTS = {"http": 8080, "https": 8443}
ALLOW_ORIGIN = "access-control-allow-origin"
ALLOW_CREDENTIALS = "access-control-allow-credentials"
ALLOW_METHODS = "access-control-allow-methods"
ALLOW_HEADERS = "access-control-allow-headers"
# An HTTP token (RFC 9110 §5.6.2): what a method or a header name is made of.
TOKEN = re.compile(r"^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$")


@dataclass(frozen=True)
class _Answer:
    """What one request from an origin was allowed."""

    method: str  # GET or OPTIONS
    status: int
    origin: str  # the Access-Control-Allow-Origin answered, "" for none
    credentials: bool
    methods: tuple[str, ...]
    headers: tuple[str, ...]


@dataclass(frozen=True)
class _Request:
    method: str
    headers: tuple[str, ...]  # lower case, sorted, as a browser lists them

    def shown(self) -> Value:
        return ", ".join(self.headers) if self.headers else said(_("no extra headers"))


def run(context: Context) -> Said:
    url = context.text("url")
    allowed = context.text("allowed_origin")
    public = context.options.get("public") is True
    request = _Request(_method(context), _request_headers(context))
    asked: dict[str, tuple[_Answer, _Answer]] = {}
    with http_client(ca_file=context.text("ca_file")) as client:

        def ask(origin: str) -> tuple[_Answer, _Answer]:
            if origin not in asked:
                asked[origin] = _ask(client, url, origin, request)
            return asked[origin]

        foreign = _foreign_origins(allowed)
        _refuse_foreign(foreign, ask, public=public, allowed=allowed)
        target = allowed or (FOREIGN_ORIGIN if public else "")
        if not target:
            return said(
                _("refuses %(count)s foreign origins, to a GET and to a preflight"),
                count=len(foreign),
            )
        preflight = _allow(target, ask(target), request, public=public)
    values: dict[str, Value] = {
        "origin": target,
        "status": preflight.status,
        "method": request.method,
        "headers": request.shown(),
    }
    if public:
        return said(
            _(
                "public, and no foreign origin gets credentials; the preflight from %(origin)s"
                " answers HTTP %(status)s and allows %(method)s with %(headers)s"
            ),
            **values,
        )
    return said(
        _(
            "refuses %(count)s foreign origins, look-alikes of %(origin)s among them; allows"
            " %(origin)s, whose preflight answers HTTP %(status)s and allows %(method)s with"
            " %(headers)s"
        ),
        count=len(foreign),
        **values,
    )


def _refuse_foreign(
    foreign: Sequence[str],
    ask: Callable[[str], tuple[_Answer, _Answer]],
    *,
    public: bool,
    allowed: str,
) -> None:
    """Fails on the first `*` that is not allowed, or on every echoed foreign origin."""
    echoed: dict[str, list[str]] = {}
    with_credentials = False
    for origin in foreign:
        for answer in ask(origin):
            if answer.origin == "*":
                if answer.credentials or not public:
                    raise _wildcard(answer)
            elif answer.origin == origin and (answer.credentials or not public):
                echoed.setdefault(origin, []).append(answer.method)
                with_credentials = with_credentials or answer.credentials
    if not echoed:
        return
    origins = "; ".join(f"{origin} ({', '.join(methods)})" for origin, methods in echoed.items())
    if with_credentials:
        message = _(
            "allows foreign origins with credentials: %(origins)s; Access-Control-Allow-Origin"
            " echoes them and Access-Control-Allow-Credentials is true"
        )
    elif allowed:
        message = _(
            "allows foreign origins: %(origins)s; Access-Control-Allow-Origin must name only"
            " %(allowed)s, compared exactly"
        )
    else:
        message = _("allows foreign origins: %(origins)s; Access-Control-Allow-Origin echoes them")
    raise fault(Reason.MISCONFIGURED, said(message, origins=origins, allowed=allowed))


def _wildcard(answer: _Answer) -> CheckError:
    if answer.credentials:
        message = _(
            "accepts requests from any origin, with credentials (%(method)s answers"
            " Access-Control-Allow-Origin: * and Access-Control-Allow-Credentials: true)"
        )
    else:
        message = _(
            "accepts requests from any origin (%(method)s answers Access-Control-Allow-Origin:"
            " *); declare public = true if the endpoint is meant for every site"
        )
    return fault(Reason.MISCONFIGURED, said(message, method=answer.method))


def _allow(
    origin: str, answers: tuple[_Answer, _Answer], request: _Request, *, public: bool
) -> _Answer:
    """The preflight, once both answers are shown to let `origin` make `request`."""
    preflight = answers[1]
    if not 200 <= preflight.status < 300:
        raise fault(
            Reason.MISCONFIGURED,
            said(
                _(
                    "the preflight from %(origin)s answered HTTP %(status)s: a browser goes on"
                    " only after an ok status (200-299)"
                ),
                origin=origin,
                status=preflight.status,
            ),
        )
    for answer in answers:
        if answer.origin == "*":
            if answer.credentials or not public:
                raise _wildcard(answer)
        elif not answer.origin:
            raise fault(
                Reason.MISCONFIGURED,
                said(
                    _(
                        "does not allow %(origin)s: %(method)s answers no"
                        " Access-Control-Allow-Origin"
                    ),
                    origin=origin,
                    method=answer.method,
                ),
            )
        elif answer.origin != origin:
            raise fault(
                Reason.MISCONFIGURED,
                said(
                    _(
                        "does not allow %(origin)s: %(method)s answers"
                        " Access-Control-Allow-Origin: %(answered)s"
                    ),
                    origin=origin,
                    method=answer.method,
                    answered=answer.origin,
                ),
            )
    _allow_method(preflight, request.method)
    _allow_headers(preflight, request.headers)
    return preflight


def _allow_method(preflight: _Answer, method: str) -> None:
    wildcard = "*" in preflight.methods and not preflight.credentials
    if method in SAFELISTED_METHODS or method in preflight.methods or wildcard:
        return
    if "*" in preflight.methods:
        message = _(
            "the preflight does not allow %(method)s: Access-Control-Allow-Methods: * does not"
            " count for a request with credentials"
        )
    elif preflight.methods:
        message = _(
            "the preflight does not allow %(method)s (Access-Control-Allow-Methods: %(listed)s)"
        )
    else:
        message = _(
            "the preflight does not allow %(method)s: it answers no Access-Control-Allow-Methods"
        )
    raise fault(
        Reason.MISCONFIGURED,
        said(message, method=method, listed=", ".join(preflight.methods)),
    )


def _allow_headers(preflight: _Answer, headers: Sequence[str]) -> None:
    listed = {name.lower() for name in preflight.headers}
    wildcard = "*" in listed and not preflight.credentials
    missing = [
        name
        for name in headers
        if name not in listed and (not wildcard or name in NON_WILDCARD_HEADERS)
    ]
    if not missing:
        return
    if "*" in listed:
        message = _(
            "the preflight does not allow the headers %(missing)s: Access-Control-Allow-Headers:"
            " * covers neither Authorization nor any header of a request with credentials"
        )
    elif listed:
        message = _(
            "the preflight does not allow the headers %(missing)s"
            " (Access-Control-Allow-Headers: %(listed)s)"
        )
    else:
        message = _(
            "the preflight does not allow the headers %(missing)s: it answers no"
            " Access-Control-Allow-Headers"
        )
    raise fault(
        Reason.MISCONFIGURED,
        said(message, missing=", ".join(missing), listed=", ".join(preflight.headers)),
    )


def _ask(client: httpx.Client, url: str, origin: str, request: _Request) -> tuple[_Answer, _Answer]:
    """What a GET and a preflight from `origin` are allowed, in that order."""
    preflight = {"Origin": origin, "Access-Control-Request-Method": request.method}
    if request.headers:
        preflight["Access-Control-Request-Headers"] = ",".join(request.headers)
    get = _answer(send(client, "GET", url, headers={"Origin": origin}))
    return get, _answer(send(client, "OPTIONS", url, headers=preflight))


def _answer(response: httpx.Response) -> _Answer:
    method = response.request.method
    status = response.status_code
    if method == "GET" and status in (404, 410):
        raise fault(
            Reason.MISCONFIGURED,
            said(_("no endpoint answers at this URL (HTTP %(status)s)"), status=status),
        )
    if 300 <= status < 400:
        raise fault(
            Reason.MISCONFIGURED,
            said(
                _(
                    "%(method)s answered an HTTP %(status)s redirect: a preflight may not be"
                    " redirected, and the check follows none; give the final URL"
                ),
                method=method,
                status=status,
            ),
        )
    if status == 429 or status >= 500:
        raise busy_or_down(
            response, said(_("CORS %(method)s: HTTP %(status)s"), method=method, status=status)
        )
    headers = response.headers
    return _Answer(
        method=method,
        status=status,
        origin=headers.get(ALLOW_ORIGIN, "").strip(),
        credentials=headers.get(ALLOW_CREDENTIALS, "").strip() == "true",
        methods=tuple(headers.get_list(ALLOW_METHODS, split_commas=True)),
        headers=tuple(headers.get_list(ALLOW_HEADERS, split_commas=True)),
    )


def _foreign_origins(allowed: str) -> list[str]:
    """Origins that must be refused: ours, `null`, and look-alikes of `allowed`, which a
    policy matching by prefix, suffix or host alone would let through."""
    if not allowed:
        return [FOREIGN_ORIGIN, NULL_ORIGIN]
    parts = urlsplit(allowed)
    scheme, host, port = parts.scheme, parts.hostname or "", parts.port
    other_scheme = "http" if scheme == "https" else "https"
    at_port = f":{port}" if port is not None else ""
    bare = parts.netloc.removesuffix(at_port)
    look_alikes = [
        f"{other_scheme}://{parts.netloc}",
        f"{scheme}://{bare}:{_other_port(scheme, port)}",
    ]
    if ":" not in host:
        # An IPv6 literal cannot be spelt with a prefix or a suffix.
        look_alikes[:0] = [f"{scheme}://{host}.evil{at_port}", f"{scheme}://evil{host}{at_port}"]
    return [FOREIGN_ORIGIN, *look_alikes, NULL_ORIGIN]


def _other_port(scheme: str, port: int | None) -> int:
    if port is None:
        return OTHER_PORTS[scheme]
    return port + 1 if port < 65535 else port - 1


def _method(context: Context) -> str:
    method = context.text("request_method", DEFAULT_METHOD)
    return method.upper() if method.upper() in NORMALIZED_METHODS else method


def _request_headers(context: Context) -> tuple[str, ...]:
    values = (
        context.texts("request_headers")
        if "request_headers" in context.options
        else list(DEFAULT_REQUEST_HEADERS)
    )
    names = {name.strip().lower() for value in values for name in value.split(",")}
    return tuple(sorted(names - {""}))


def _serialized(origin: str) -> str:
    """The origin as a browser sends it: lower case, no default port. Raises ValueError."""
    parts = urlsplit(origin)
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    port = parts.port
    shown_port = f":{port}" if port is not None and port != DEFAULT_PORTS[parts.scheme] else ""
    return f"{parts.scheme}://{host}{shown_port}"


def check_options(options: Mapping[str, Any]) -> None:
    url = urlsplit(str(options.get("url", "")))
    if url.scheme not in ("http", "https") or not url.netloc:
        raise OptionError(said(_("url must be an http:// or https:// URL with a host")))
    method = str(options.get("request_method", DEFAULT_METHOD))
    if not TOKEN.fullmatch(method):
        raise OptionError(said(_("request_method must be an HTTP method such as PUT")))
    for value in texts(options.get("request_headers", [])):
        for name in value.split(","):
            if name.strip() and not TOKEN.fullmatch(name.strip()):
                raise OptionError(
                    said(_("request_headers must be header names such as content-type"))
                )
    origin = str(options.get("allowed_origin", ""))
    if not origin:
        return
    example = said(_("allowed_origin must be an origin such as https://app.example.com"))
    parts = urlsplit(origin)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise OptionError(example)
    if parts.path or parts.query or parts.fragment:
        raise OptionError(
            said(
                _("allowed_origin is an origin, with no path: write %(origin)s"),
                origin=f"{parts.scheme}://{parts.netloc}",
            )
        )
    try:
        serialized = _serialized(origin)
    except ValueError:
        raise OptionError(example) from None
    if serialized != origin:
        raise OptionError(
            said(
                _("allowed_origin must be written as a browser sends it: %(origin)s"),
                origin=serialized,
            )
        )


KIND = Kind(
    name="cors",
    required=frozenset({"url"}),
    optional=frozenset(
        {"allowed_origin", "public", "request_headers", "request_method", "ca_file"}
    ),
    run=run,
    docs_url="https://fetch.spec.whatwg.org/#cors-preflight-fetch",
    check_options=check_options,
)
