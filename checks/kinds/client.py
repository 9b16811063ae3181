"""Every outgoing request of a check starts here: explicit timeouts, no redirects, no
proxy or netrc from the environment, our User-Agent, and an optional CA file; and the
ways an answer fails are classified here once."""

from __future__ import annotations

import email.utils
import json
import ssl
import threading
import time
from collections.abc import Mapping
from typing import Any

import httpx
from django.conf import settings

from .base import Reason, fault, transient

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
            context = _contexts[ca_file] = ssl.create_default_context(cafile=ca_file or None)
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


def send(client: httpx.Client, method: str, url: str, **kwargs: Any) -> httpx.Response:
    """The response, or a CheckError for a transport failure (never the request URL's
    query, which could carry a key)."""
    try:
        return client.request(method, url, **kwargs)
    except httpx.TimeoutException:
        raise transient(
            Reason.TIMED_OUT, f"no answer within the timeout ({method} {_path(url)})"
        ) from None
    except httpx.ConnectError as error:
        if _is_certificate_error(error):
            raise fault(
                Reason.MISCONFIGURED, f"TLS certificate not accepted: {_tls_reason(error)}"
            ) from None
        raise transient(Reason.VENDOR_DOWN, f"connection failed ({method} {_path(url)})") from None
    except httpx.TransportError as error:
        raise transient(
            Reason.VENDOR_DOWN, f"{type(error).__name__} ({method} {_path(url)})"
        ) from None


def _path(url: str) -> str:
    return httpx.URL(url).path or "/"


def _is_certificate_error(error: BaseException) -> bool:
    cause: BaseException | None = error
    while cause is not None:
        if isinstance(cause, ssl.SSLCertVerificationError):
            return True
        cause = cause.__cause__ or cause.__context__
    return "CERTIFICATE_VERIFY_FAILED" in str(error)


def _tls_reason(error: BaseException) -> str:
    cause: BaseException | None = error
    while cause is not None:
        if isinstance(cause, ssl.SSLCertVerificationError):
            return str(cause.verify_message)
        cause = cause.__cause__ or cause.__context__
    return "certificate verify failed"


def json_body(response: httpx.Response) -> Any:
    """The parsed JSON of an answer; garbage is transient (a proxy's error page)."""
    try:
        return response.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise transient(
            Reason.BAD_RESPONSE, f"HTTP {response.status_code} with a body that is not JSON"
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


def should_retry(response: httpx.Response) -> bool | None:
    """The server's own word on retrying (`x-should-retry`), when it gives one."""
    value = response.headers.get("x-should-retry", "").strip().lower()
    return {"true": True, "false": False}.get(value)


def unexpected(response: httpx.Response, what: str) -> Exception:
    """The default reading of an answer a kind did not expect.

    429 and 5xx are transient; 401/403 are a bad or under-privileged credential; anything
    else is an answer we cannot judge, retried in case it was a passing glitch.
    """
    status = response.status_code
    if should_retry(response) is False and status >= 400:
        return fault(_status_reason(status), f"{what}: HTTP {status}, the server says not to retry")
    if status == 429:
        return transient(Reason.RATE_LIMITED, f"{what}: HTTP 429", retry_after(response))
    if status >= 500:
        return transient(Reason.VENDOR_DOWN, f"{what}: HTTP {status}", retry_after(response))
    if status in (401, 403):
        return fault(Reason.AUTH_FAILED, f"{what}: HTTP {status}, the credential was refused")
    if 300 <= status < 400:
        return fault(Reason.MISCONFIGURED, f"{what}: HTTP {status} redirect, not followed")
    return transient(Reason.BAD_RESPONSE, f"{what}: unexpected HTTP {status}")


def _status_reason(status: int) -> Reason:
    if status in (401, 403):
        return Reason.AUTH_FAILED
    if status == 429:
        return Reason.RATE_LIMITED
    if status >= 500:
        return Reason.VENDOR_DOWN
    return Reason.BAD_RESPONSE
