"""Twilio: the account is active and Full, and every incoming number's webhooks use
https (on the expected host, when one is configured).

API: https://www.twilio.com/docs/usage/api/accounts
and https://www.twilio.com/docs/phone-numbers/api/incomingphonenumber-resource

Authentication is HTTP Basic with the account SID and its auth token. The Account JSON
carries the auth token itself: this module reads only `status` and `type` from it.

Permanent failures: the SID and token refused (401, code 20003); no account for these
credentials (404, code 20404); an account SID not of the form AC + 32 hex digits; an
account not active, or a Trial account (it only messages verified numbers); and any
number whose webhook is not https or points at another host. A number's voice_* URLs are
not checked when voice_application_sid or trunk_sid is set, nor its sms_* URLs when
sms_application_sid is set: Twilio ignores them then.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import httpx

from .base import Context, Kind, Reason, fault, transient
from .client import http_client, retry_after, send, unexpected
from .vendor_errors import api_url, error_body, integer, json_object, plural, string

PRODUCTION = "https://api.twilio.com"
VERSION = "2010-04-01"
ACCOUNT_SID = re.compile(r"AC[0-9a-fA-F]{32}")
MAX_PAGES = 20
VOICE_FIELDS = ("voice_url", "voice_fallback_url")
SMS_FIELDS = ("sms_url", "sms_fallback_url")
SHOWN_PROBLEMS = 3


@dataclass
class Audit:
    numbers: int = 0
    voice_elsewhere: int = 0
    sms_elsewhere: int = 0
    problems: list[str] = field(default_factory=list)


def run(context: Context) -> str:
    token = context.secret("secret_env")
    sid = context.secret("account_sid_env")
    if not ACCOUNT_SID.fullmatch(sid):
        raise fault(
            Reason.MISCONFIGURED,
            f"the account SID in {context.text('account_sid_env')} is not AC and 32 hex digits",
        )
    expected_host = context.text("expected_host").strip().lower()
    base = api_url(context.text("base_url"), PRODUCTION, VERSION)
    with http_client(base_url=base, ca_file=context.text("ca_file"), auth=(sid, token)) as client:
        account = _get(client, f"/Accounts/{sid}.json", "account", account=True)
        status, kind = string(account, "status"), string(account, "type")
        if status != "active":
            raise fault(
                Reason.MISCONFIGURED, f"account status is {status or 'missing'}, not active"
            )
        if kind != "Full":
            raise fault(
                Reason.MISCONFIGURED,
                f"account type is {kind or 'missing'}, not Full: "
                "a Trial account only messages verified numbers",
            )
        audit = Audit()
        for number in _numbers(client, sid):
            _audit_number(number, expected_host, audit)
    if audit.problems:
        shown = "; ".join(audit.problems[:SHOWN_PROBLEMS])
        more = len(audit.problems) - SHOWN_PROBLEMS
        raise fault(
            Reason.MISCONFIGURED,
            f"{plural(len(audit.problems), 'webhook problem')}: {shown}"
            + (f"; and {more} more" if more > 0 else ""),
        )
    return _summary(audit, expected_host)


def _numbers(client: httpx.Client, sid: str) -> Iterator[dict[str, Any]]:
    path = f"/Accounts/{sid}/IncomingPhoneNumbers.json"
    for _ in range(MAX_PAGES):
        page = _get(client, path, "incoming phone numbers")
        numbers = page.get("incoming_phone_numbers")
        if not isinstance(numbers, list) or not all(isinstance(n, dict) for n in numbers):
            raise transient(
                Reason.BAD_RESPONSE, "incoming phone numbers: HTTP 200 without a list of numbers"
            )
        yield from numbers
        next_page = page.get("next_page_uri")
        if not next_page:
            return
        path = _next_path(next_page, sid)
    raise transient(
        Reason.BAD_RESPONSE,
        f"incoming phone numbers: more than {MAX_PAGES} pages; not every number was checked",
    )


def _next_path(next_page: Any, sid: str) -> str:
    # The client sends the credentials with every request, so the next page must stay
    # under this account on this host: an absolute or foreign URI is never followed.
    prefix = f"/{VERSION}/Accounts/{sid}/IncomingPhoneNumbers"
    if not isinstance(next_page, str) or not next_page.startswith(prefix):
        raise transient(
            Reason.BAD_RESPONSE,
            "incoming phone numbers: next_page_uri is not a page of this account's numbers",
        )
    return next_page.removeprefix(f"/{VERSION}")


def _audit_number(number: dict[str, Any], expected_host: str, audit: Audit) -> None:
    audit.numbers += 1
    label = string(number, "phone_number") or string(number, "sid") or f"number {audit.numbers}"
    fields: list[str] = []
    if string(number, "voice_application_sid") or string(number, "trunk_sid"):
        audit.voice_elsewhere += 1
    else:
        fields += VOICE_FIELDS
    if string(number, "sms_application_sid"):
        audit.sms_elsewhere += 1
    else:
        fields += SMS_FIELDS
    fields.append("status_callback")
    for name in fields:
        url = string(number, name).strip()
        problem = _webhook_problem(url, expected_host) if url else ""
        if problem:
            audit.problems.append(f"{label} {name} {problem}")


def _webhook_problem(url: str, expected_host: str) -> str:
    # Only scheme and host reach the evidence: a webhook's query may carry a token.
    parts = urlsplit(url)
    host = (parts.hostname or "").lower()
    if parts.scheme.lower() != "https":
        return f"is not https ({parts.scheme or 'no scheme'} on {host or 'no host'})"
    if not host:
        return "has no host"
    if expected_host and host != expected_host:
        return f"points at {host}, not {expected_host}"
    return ""


def _summary(audit: Audit, expected_host: str) -> str:
    where = f"https on {expected_host}" if expected_host else "https"
    summary = f"account active, Full; {plural(audit.numbers, 'number')}, all webhooks {where}"
    if audit.voice_elsewhere:
        summary += (
            f"; voice URLs of {plural(audit.voice_elsewhere, 'number')} not checked "
            "(an application or trunk handles them)"
        )
    if audit.sms_elsewhere:
        summary += (
            f"; sms URLs of {plural(audit.sms_elsewhere, 'number')} not checked "
            "(an application handles them)"
        )
    return summary


def _get(client: httpx.Client, path: str, what: str, *, account: bool = False) -> dict[str, Any]:
    response = send(client, "GET", path)
    if response.status_code != 200:
        raise _refused(response, what, account)
    return json_object(response, what)


def _refused(response: httpx.Response, what: str, account: bool) -> Exception:
    status = response.status_code
    code = integer(error_body(response), "code")
    label = f"HTTP {status} code {code}" if code is not None else f"HTTP {status}"
    if status == 401:
        return fault(
            Reason.AUTH_FAILED, f"{what}: the account SID and auth token were refused ({label})"
        )
    if status == 404 and account:
        return fault(Reason.AUTH_FAILED, f"account not found for these credentials ({label})")
    if status == 429:
        return transient(
            Reason.RATE_LIMITED, f"{what}: too many requests ({label})", retry_after(response)
        )
    return unexpected(response, what)


KIND = Kind(
    name="twilio",
    required=frozenset({"secret_env", "account_sid_env"}),
    optional=frozenset({"expected_host", "base_url", "ca_file"}),
    run=run,
    docs_url="https://www.twilio.com/docs/usage/api/accounts",
)
