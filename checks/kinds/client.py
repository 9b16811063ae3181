"""Every outgoing request of a check starts here: explicit timeouts, no redirects, no
proxy or netrc from the environment, our User-Agent, and an optional CA file; and the
ways an answer fails are classified here once."""

from __future__ import annotations

import contextlib
import email.utils
import errno
import json
import socket
import ssl
import threading
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

import httpx
from django.conf import settings
from django.utils.translation import gettext_noop as _

from .base import CheckError, Reason, Said, fault, said, transient, unjudged, unloadable_ca_file

USER_AGENT = "deploycheck-verify/1.0"


def timeouts() -> httpx.Timeout:
    connect = float(settings.CHECKS_CONNECT_TIMEOUT)
    read = float(settings.CHECKS_READ_TIMEOUT)
    return httpx.Timeout(connect=connect, read=read, write=read, pool=connect)


_contexts: dict[str, ssl.SSLContext] = {}
_contexts_lock = threading.Lock()


def ssl_context(ca_file: str = "") -> ssl.SSLContext:
    # The system's trust store, plus (or instead, for a private CA) the file named.
    # Reading the store costs tens of milliseconds of CPU, so a worker keeps one
    # context per CA file; clients only read it. The lock matters: a run's checks start
    # together, and each thread building its own copy at once cost a second of CPU.
    with _contexts_lock:
        context = _contexts.get(ca_file)
        if context is None:
            try:
                context = ssl.create_default_context(cafile=ca_file or None)
            except OSError:
                raise unloadable_ca_file(ca_file) from None
            _contexts[ca_file] = context
        return context


def http_client(
    *,
    base_url: str = "",
    ca_file: str = "",
    headers: Mapping[str, str] | None = None,
    auth: httpx.Auth | tuple[str, str] | None = None,
) -> httpx.Client:
    return httpx.Client(
        base_url=base_url.rstrip("/"),
        timeout=timeouts(),
        follow_redirects=False,
        verify=ssl_context(ca_file),
        trust_env=False,
        headers={"User-Agent": USER_AGENT, **(headers or {})},
        auth=auth,
    )


@dataclass
class Attempt:
    """One attempt of one check as its requests see it: when it must be over, and what
    the server said of retrying its latest error answer (`x-should-retry`)."""

    seconds: float
    deadline: float  # on time.monotonic()
    server_says_retry: bool | None = None

    def remaining(self) -> float:
        return self.deadline - time.monotonic()


_attempt: ContextVar[Attempt | None] = ContextVar("check_attempt", default=None)


@contextmanager
def attempt(seconds: float) -> Iterator[Attempt]:
    """The requests of one attempt, all within `seconds`: `send` enforces it while a body
    arrives, so a server dripping a byte at a time cannot hold a worker's thread."""
    current = Attempt(seconds, time.monotonic() + seconds)
    token = _attempt.set(current)
    try:
        yield current
    finally:
        _attempt.reset(token)


def _current_attempt() -> Attempt:
    # A kind run outside the runner (a test, a shell) gets one attempt's time per request.
    current = _attempt.get()
    if current is None:
        seconds = float(settings.CHECKS_ATTEMPT_SECONDS)
        return Attempt(seconds, time.monotonic() + seconds)
    return current


def send(client: httpx.Client, method: str, url: str, **kwargs: Any) -> httpx.Response:
    """The response, read whole, or a CheckError for a transport failure (never the
    request URL's query, which could carry a key).

    The body is read as it arrives, up to CHECKS_MAX_RESPONSE_BYTES and until the
    attempt's deadline; the response returned holds all of it, so kinds read it as they
    would any response."""
    current = _current_attempt()
    auth = kwargs.pop("auth", httpx.USE_CLIENT_DEFAULT)
    follow_redirects = kwargs.pop("follow_redirects", httpx.USE_CLIENT_DEFAULT)
    timeout = kwargs.pop("timeout", client.timeout)
    request = client.build_request(
        method, url, timeout=_within(httpx.Timeout(timeout), current.remaining()), **kwargs
    )
    where = {"host": _host(request.url), "method": method, "path": request.url.path or "/"}
    if current.remaining() <= 0:
        raise transient(Reason.TIMED_OUT, _late(current, where))
    # What a server said of an earlier answer says nothing of this request's fate.
    current.server_says_retry = None
    try:
        streamed = client.send(request, stream=True, auth=auth, follow_redirects=follow_redirects)
        try:
            body = _body(streamed, current, where)
        finally:
            streamed.close()
    except httpx.TimeoutException:
        if current.remaining() <= 0:
            raise transient(Reason.TIMED_OUT, _late(current, where)) from None
        raise transient(
            Reason.TIMED_OUT,
            said(_("no answer from %(host)s within the timeout (%(method)s %(path)s)"), **where),
        ) from None
    except httpx.ConnectError as error:
        if _is_certificate_error(error):
            raise fault(
                Reason.MISCONFIGURED,
                said(_("TLS certificate not accepted: %(why)s"), why=_tls_reason(error)),
            ) from None
        raise unreachable(where["host"], error) from None
    except httpx.UnsupportedProtocol:
        raise fault(
            Reason.MISCONFIGURED,
            said(_("%(path)s is not an http:// or https:// URL"), path=where["path"]),
        ) from None
    except httpx.TransportError as error:
        raise transient(
            Reason.BAD_RESPONSE,
            said(
                _("the exchange with %(host)s broke off (%(error)s; %(method)s %(path)s)"),
                error=type(error).__name__,
                **where,
            ),
        ) from None
    except httpx.DecodingError:
        raise transient(
            Reason.BAD_RESPONSE,
            said(_("the answer of %(host)s cannot be decoded (%(method)s %(path)s)"), **where),
        ) from None
    response = _whole(streamed, body)
    # What the server says of retrying an error answer; the runner weighs it against
    # the kind's own verdict of it.
    current.server_says_retry = should_retry(response) if response.status_code >= 400 else None
    return response


def _within(timeout: httpx.Timeout, remaining: float) -> httpx.Timeout:
    """Each wait of a request, no longer than what is left of the attempt."""
    left = max(0.001, remaining)

    def capped(seconds: float | None) -> float:
        return left if seconds is None else min(seconds, left)

    return httpx.Timeout(
        connect=capped(timeout.connect),
        read=capped(timeout.read),
        write=capped(timeout.write),
        pool=capped(timeout.pool),
    )


def _body(response: httpx.Response, current: Attempt, where: Mapping[str, str]) -> bytes:
    limit = int(settings.CHECKS_MAX_RESPONSE_BYTES)
    declared = response.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise _too_big(limit, where)
    chunks: list[bytes] = []
    size = 0
    # Decoded bytes: a small compressed body must not unpack past the limit.
    for chunk in response.iter_bytes():
        size += len(chunk)
        if size > limit:
            raise _too_big(limit, where)
        if current.remaining() <= 0:
            raise transient(Reason.TIMED_OUT, _late(current, where))
        chunks.append(chunk)
    return b"".join(chunks)


def _too_big(limit: int, where: Mapping[str, str]) -> CheckError:
    return transient(
        Reason.BAD_RESPONSE,
        said(
            _("the answer of %(host)s is larger than %(limit)s bytes (%(method)s %(path)s)"),
            limit=limit,
            **where,
        ),
    )


def _whole(streamed: httpx.Response, body: bytes) -> httpx.Response:
    """A response holding `body`, already decoded: its headers lose the encoding and
    length of the bytes that came over the wire."""
    wire_only = {b"content-encoding", b"content-length", b"transfer-encoding"}
    response = httpx.Response(
        streamed.status_code,
        headers=[(k, v) for k, v in streamed.headers.raw if k.lower() not in wire_only],
        content=body,
        request=streamed.request,
        extensions=streamed.extensions,
        history=streamed.history,
        default_encoding=streamed.default_encoding,
    )
    response.next_request = streamed.next_request
    # httpx times a response when its network stream closes; a transport without one
    # (a mounted or mock transport) leaves it untimed, and that is no fault of the answer.
    with contextlib.suppress(RuntimeError):
        response.elapsed = streamed.elapsed
    return response


def _late(current: Attempt, where: Mapping[str, str]) -> Said:
    return said(
        _(
            "no complete answer from %(host)s within the attempt's %(seconds)s s "
            "(%(method)s %(path)s)"
        ),
        seconds=round(current.seconds),
        **where,
    )


def _host(url: httpx.URL) -> str:
    # Host and port only: the rest of a URL may carry a key.
    return f"{url.host}:{url.port}" if url.port is not None else url.host


def causes(error: BaseException) -> Iterator[BaseException]:
    """The error, then the one it was raised from or while handling, and so on: a
    transport error keeps the socket's or TLS's error somewhere down this chain."""
    cause: BaseException | None = error
    while cause is not None:
        yield cause
        cause = cause.__cause__ or cause.__context__


def _verify_error(error: BaseException) -> ssl.SSLCertVerificationError | None:
    return next(
        (cause for cause in causes(error) if isinstance(cause, ssl.SSLCertVerificationError)),
        None,
    )


def _is_certificate_error(error: BaseException) -> bool:
    return _verify_error(error) is not None or "CERTIFICATE_VERIFY_FAILED" in str(error)


def _tls_reason(error: BaseException) -> str:
    found = _verify_error(error)
    return str(found.verify_message) if found is not None else "certificate verify failed"


def unreachable(host: str, error: BaseException) -> CheckError:
    """The worker could not connect to `host`, which says nothing of the host itself."""
    return transient(
        Reason.UNREACHABLE,
        said(
            _("the worker cannot reach %(host)s (%(why)s)"),
            host=host,
            why=unreachable_because(error),
        ),
    )


def unreachable_because(error: BaseException) -> Said:
    for cause in causes(error):
        if isinstance(cause, socket.gaierror):
            return said(_("name does not resolve"))
        if isinstance(cause, ConnectionRefusedError):
            return said(_("connection refused"))
        if isinstance(cause, OSError) and cause.errno in (errno.EHOSTUNREACH, errno.ENETUNREACH):
            return said(_("no route to host"))
        if isinstance(cause, ssl.SSLError):
            return said(
                _("TLS handshake failed: %(why)s"), why=cause.reason or type(cause).__name__
            )
    return said(_("connection failed: %(error)s"), error=str(error) or type(error).__name__)


def json_body(response: httpx.Response) -> Any:
    """The parsed JSON of an answer; garbage is transient (a proxy's error page)."""
    try:
        return response.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise transient(
            Reason.BAD_RESPONSE,
            said(_("HTTP %(status)s with a body that is not JSON"), status=response.status_code),
        ) from None


def retry_after(response: httpx.Response, now: float | None = None) -> float | None:
    """Seconds the server asks us to wait: retry-after-ms, then Retry-After in seconds or
    as an HTTP date. None when it says nothing usable."""
    raw_ms = response.headers.get("retry-after-ms")
    if raw_ms:
        try:
            return max(0.0, float(raw_ms) / 1000)
        except ValueError:
            pass
    raw = response.headers.get("retry-after")
    if not raw:
        return None
    try:
        return max(0.0, float(raw))
    except ValueError:
        pass
    try:
        moment = email.utils.parsedate_to_datetime(raw)
    except (TypeError, ValueError):
        return None
    return max(0.0, moment.timestamp() - (time.time() if now is None else now))


def busy_or_down(response: httpx.Response, evidence: Said) -> CheckError:
    """A 429 or a 5xx: nothing could be judged now; tried again after the wait the server
    asks for."""
    reason = Reason.RATE_LIMITED if response.status_code == 429 else Reason.VENDOR_DOWN
    return transient(reason, evidence, retry_after(response))


def should_retry(response: httpx.Response) -> bool | None:
    """The server's own word on retrying (`x-should-retry`), when it gives one."""
    value = response.headers.get("x-should-retry", "").strip().lower()
    return {"true": True, "false": False}.get(value)


def unexpected(response: httpx.Response, what: Said | str) -> CheckError:
    """The default reading of an answer a kind did not expect.

    401/403 are a bad or under-privileged credential and a redirect is not followed:
    both fail. 429 and 5xx are transient, and anything else is an answer we cannot
    judge, retried in case it was a passing glitch. The server's `x-should-retry` has
    the last word on trying again: `true` retries even what would fail, `false` ends
    what could not be judged as `error` at once (never as `fail`: nothing was judged).
    """
    status = response.status_code
    wait = retry_after(response)
    verdict: CheckError
    if status in (401, 403):
        verdict = fault(
            Reason.AUTH_FAILED,
            said(
                _("%(what)s: HTTP %(status)s, the credential was refused"), what=what, status=status
            ),
        )
    elif 300 <= status < 400:
        verdict = fault(
            Reason.MISCONFIGURED,
            said(_("%(what)s: HTTP %(status)s redirect, not followed"), what=what, status=status),
        )
    elif status == 429:
        verdict = transient(Reason.RATE_LIMITED, said(_("%(what)s: HTTP 429"), what=what), wait)
    elif status >= 500:
        verdict = transient(
            Reason.VENDOR_DOWN, said(_("%(what)s: HTTP %(status)s"), what=what, status=status), wait
        )
    else:
        verdict = transient(
            Reason.BAD_RESPONSE,
            said(_("%(what)s: unexpected HTTP %(status)s"), what=what, status=status),
        )
    return heeding_server(verdict, should_retry(response) if status >= 400 else None, wait)


def heeding_server(
    verdict: CheckError, server_says_retry: bool | None, wait: float | None = None
) -> CheckError:
    """`verdict` as the server's `x-should-retry` on the answer amends it."""
    if server_says_retry is True and verdict.permanent:
        return transient(
            verdict.reason,
            said(_("%(evidence)s; the server says to try again"), evidence=verdict.said),
            wait,
        )
    if server_says_retry is False and verdict.retry:
        return unjudged(
            verdict.reason,
            said(_("%(evidence)s; the server says not to try again"), evidence=verdict.said),
        )
    return verdict
