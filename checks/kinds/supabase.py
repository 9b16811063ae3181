"""Supabase: the project answers, the gateway accepts the key, and every table the app
uses is readable with it.

API: https://supabase.com/docs/guides/api/api-keys
PostgREST errors: https://postgrest.org/en/stable/references/errors.html

There is no shared production host: base_url is the project's https://<ref>.supabase.co.
The key goes in the apikey header; a legacy JWT key (eyJ...) also goes in Authorization,
while the new sb_... keys are not JWTs and must not.

Permanent failures: the gateway refusing the key (401 "No API key found" or "Invalid API
key"); a JWT PostgREST refuses (401 PGRST301-303) or any other 401/403; a table that does
not exist (404 PGRST205); a table the key's role has no GRANT on (401/403 42501); and a
paused project (HTTP 540), which stays paused until someone restores it, so waiting and
retrying cannot help. 5xx answers (PGRST000-003: database unreachable) are transient.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import httpx

from .base import Context, Kind, Reason, fault, transient
from .client import http_client, json_body, retry_after, send, unexpected
from .vendor_errors import error_body, json_object, string

PAUSED = 540


def run(context: Context) -> str:
    key = context.secret("secret_env")
    base = context.text("base_url")
    if not base:
        raise fault(
            Reason.MISCONFIGURED, "no base_url: set the project URL https://<ref>.supabase.co"
        )
    tables = context.texts("tables")
    headers = {"apikey": key}
    if key.startswith("eyJ"):
        headers["Authorization"] = f"Bearer {key}"
    with http_client(base_url=base, ca_file=context.text("ca_file"), headers=headers) as client:
        health = _get(client, "/auth/v1/health", "auth health")
        service = " ".join(
            part for part in (string(health, "name"), string(health, "version")) if part
        )
        if not service:
            raise transient(Reason.BAD_RESPONSE, "auth health: HTTP 200 without name or version")
        for table in tables:
            _read(client, table)
    summary = f"key accepted; auth {service} healthy"
    return f"{summary}; tables {', '.join(tables)} readable" if tables else summary


def _get(client: httpx.Client, path: str, what: str) -> dict[str, Any]:
    response = send(client, "GET", path)
    if response.status_code != 200:
        raise _refused(response, what, "")
    return json_object(response, what)


def _read(client: httpx.Client, table: str) -> None:
    what = f"table {table}"
    response = send(
        client, "GET", f"/rest/v1/{quote(table, safe='')}", params={"select": "*", "limit": "1"}
    )
    if response.status_code != 200:
        raise _refused(response, what, table)
    # Only the shape is judged: the row itself is user data and is dropped unread.
    if not isinstance(json_body(response), list):
        raise transient(Reason.BAD_RESPONSE, f"{what}: HTTP 200 without a list of rows")


def _refused(response: httpx.Response, what: str, table: str) -> Exception:
    status = response.status_code
    body = error_body(response)
    # PostgREST's code is a string; GoTrue's legacy `code` is the HTTP status number.
    code = string(body, "code")
    message = string(body, "message")
    label = f"HTTP {status} {code}" if code else f"HTTP {status}"
    if status == PAUSED:
        return fault(
            Reason.MISCONFIGURED, f"{what}: the project is paused (HTTP 540); restore it to resume"
        )
    if table and status == 404:
        return fault(Reason.MISCONFIGURED, f"table {table} not found ({label})")
    if table and status in (401, 403) and code == "42501":
        return fault(Reason.MISCONFIGURED, f"permission denied on {table}: missing GRANT ({label})")
    if status == 401 and message.startswith("No API key found"):
        return fault(Reason.AUTH_FAILED, f"{what}: no API key reached the gateway ({label})")
    if status == 401 and message.startswith("Invalid API key"):
        return fault(Reason.AUTH_FAILED, f"{what}: the gateway refused the API key ({label})")
    if status in (401, 403):
        return fault(Reason.AUTH_FAILED, f"{what}: the key was refused ({label})")
    if status >= 500 and code:
        return transient(Reason.VENDOR_DOWN, f"{what}: {label}", retry_after(response))
    return unexpected(response, what)


KIND = Kind(
    name="supabase",
    required=frozenset({"secret_env", "base_url"}),
    optional=frozenset({"tables", "ca_file"}),
    run=run,
    docs_url="https://supabase.com/docs/guides/api/api-keys",
)
