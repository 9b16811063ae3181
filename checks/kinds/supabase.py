"""Supabase: the project answers and the gateway accepts the key; then, by `role`, either
every table the app uses exists and is readable with the service key, or (role "anon")
row-level security keeps every named table's rows from the public anon key.

API: https://supabase.com/docs/guides/api/api-keys
     https://supabase.com/docs/guides/database/postgres/row-level-security
PostgREST: https://docs.postgrest.org/en/stable/references/api/pagination_count.html
           https://docs.postgrest.org/en/stable/references/errors.html

There is no shared production host: base_url is the project's https://<ref>.supabase.co.
The key goes in the apikey header; a legacy JWT key (eyJ...) also goes in Authorization,
while the new sb_... keys are not JWTs and must not.

Proof. `GET /auth/v1/health` answering GoTrue's name and version shows the project is up
and the gateway takes the key. Then each table is read with `limit=0`, so no row is ever
fetched:
- role "service" (the default): the service key bypasses row-level security, so a 200
  proves only that the table exists and the service role holds its GRANT.
- role "anon": the key must be the anon or publishable one (a secret or service_role key
  is refused before any request, since it would bypass the policies under test). The
  request asks `Prefer: count=exact`, and PostgREST puts the number of rows the role can
  see after the Content-Range header's slash. A table passes when anon is refused
  (401/403 with PostgreSQL's 42501, permission denied) or sees no rows (`*/0`); one whose
  rows anon can count is a fault naming it. An answer without that count says nothing
  about the rows and is retried.

Permanent failures: the gateway refusing the key (401 "No API key found" or "Invalid API
key"); a JWT PostgREST refuses (401 PGRST301-303) or any other 401/403; a table that does
not exist (404 PGRST205); with role "service", a table the key's role has no GRANT on
(401/403 42501); with role "anon", a secret key or a table whose rows anon can read; and a
paused project (HTTP 540), which stays paused until someone restores it, so waiting and
retrying cannot help. 5xx answers (PGRST000-003: database unreachable) are transient.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote

import httpx
from django.utils.translation import gettext_noop as _

from .base import Context, Kind, OptionError, Reason, Said, fault, joined, said, transient
from .client import busy_or_down, http_client, json_body, send, unexpected
from .vendor_errors import answer_label, error_body, json_object, string

PAUSED = 540
SERVICE = "service"
ANON = "anon"
ROLES = (SERVICE, ANON)
PERMISSION_DENIED = "42501"
# "0-24/3573458", "*/0"; the total is "*" when it was not counted.
CONTENT_RANGE = re.compile(r"^\s*(?:\*|\d+-\d+)/(\d+|\*)\s*$")


def run(context: Context) -> Said:
    key = context.secret("secret_env")
    base = context.text("base_url")
    if not base:
        raise fault(
            Reason.MISCONFIGURED,
            said(_("no base_url: set the project URL https://<ref>.supabase.co")),
        )
    role = context.text("role", SERVICE)
    tables = context.texts("tables")
    if role == ANON:
        # check_options refuses these when the checks file loads; this is the fallback.
        if not tables:
            raise fault(Reason.MISCONFIGURED, said(_("role anon needs the tables to check")))
        if _bypasses_policies(key):
            raise fault(
                Reason.MISCONFIGURED,
                said(
                    _(
                        "role anon needs the project's anon or publishable key; this one is "
                        "a secret key, which bypasses row-level security"
                    )
                ),
            )
    headers = {"apikey": key}
    if key.startswith("eyJ"):
        headers["Authorization"] = f"Bearer {key}"
    with http_client(base_url=base, ca_file=context.text("ca_file"), headers=headers) as client:
        summary = _health(client)
        if role == ANON:
            return joined(summary, _judge_anon(client, tables))
        for table in tables:
            _read(client, table)
    if not tables:
        return summary
    return said(
        _("%(summary)s; tables %(tables)s readable"), summary=summary, tables=", ".join(tables)
    )


def _bypasses_policies(key: str) -> bool:
    """Whether the key is a secret one: an sb_secret_ key, or a legacy JWT whose role claim
    is service_role. Only the claim is read; the gateway checks the signature."""
    if key.startswith("sb_secret_"):
        return True
    parts = key.split(".")
    if not key.startswith("eyJ") or len(parts) != 3:
        return False
    try:
        claims = json.loads(base64.urlsafe_b64decode(parts[1] + "=" * (-len(parts[1]) % 4)))
    except (binascii.Error, ValueError):
        return False
    return isinstance(claims, dict) and claims.get("role") == "service_role"


def _health(client: httpx.Client) -> Said:
    what = said(_("auth health"))
    response = send(client, "GET", "/auth/v1/health")
    if response.status_code != 200:
        raise _refused(response, what, "")
    health = json_object(response, what)
    service = " ".join(part for part in (string(health, "name"), string(health, "version")) if part)
    if not service:
        raise transient(
            Reason.BAD_RESPONSE, said(_("auth health: HTTP 200 without name or version"))
        )
    return said(_("key accepted; auth %(service)s healthy"), service=service)


def _table_path(table: str) -> str:
    return f"/rest/v1/{quote(table, safe='')}"


def _read(client: httpx.Client, table: str) -> None:
    what = said(_("table %(table)s"), table=table)
    # limit=0 still runs the query, so privileges and the table's existence are checked,
    # while no row (user data) is ever sent.
    response = send(client, "GET", _table_path(table), params={"limit": "0"})
    if response.status_code != 200:
        raise _refused(response, what, table)
    if not isinstance(json_body(response), list):
        raise transient(
            Reason.BAD_RESPONSE,
            said(_("table %(table)s: HTTP 200 without a list of rows"), table=table),
        )


def _judge_anon(client: httpx.Client, tables: list[str]) -> Said:
    hidden: list[str] = []
    refused: list[str] = []
    for table in tables:
        if _anon_refused(client, table):
            refused.append(table)
        else:
            hidden.append(table)
    parts = []
    if hidden:
        parts.append(said(_("anon sees no rows in %(tables)s"), tables=", ".join(hidden)))
    if refused:
        parts.append(
            said(_("anon is refused on %(tables)s (permission denied)"), tables=", ".join(refused))
        )
    return joined(*parts)


def _anon_refused(client: httpx.Client, table: str) -> bool:
    """True when anon may not read the table at all, False when it sees none of its rows;
    a table whose rows anon can count is a fault."""
    what = said(_("table %(table)s"), table=table)
    response = send(
        client,
        "GET",
        _table_path(table),
        params={"limit": "0"},
        headers={"Prefer": "count=exact"},
    )
    status = response.status_code
    if status in (401, 403) and string(error_body(response), "code") == PERMISSION_DENIED:
        return True
    if status not in (200, 206):
        raise _refused(response, what, table)
    total = _counted(response.headers)
    if total is None:
        raise transient(
            Reason.BAD_RESPONSE,
            said(
                _("table %(table)s: HTTP %(status)s without a row count in Content-Range"),
                table=table,
                status=status,
            ),
        )
    if total:
        raise fault(
            Reason.MISCONFIGURED,
            said(
                _(
                    "table %(table)s: anon can read its %(rows)s rows; row-level security is "
                    "off or a policy lets anon read them"
                ),
                table=table,
                rows=total,
            ),
        )
    return False


def _counted(headers: Mapping[str, str]) -> int | None:
    match = CONTENT_RANGE.match(headers.get("content-range", ""))
    if match is None or match.group(1) == "*":
        return None
    return int(match.group(1))


def _refused(response: httpx.Response, what: Said, table: str) -> Exception:
    status = response.status_code
    body = error_body(response)
    # PostgREST's code is a string; GoTrue's legacy `code` is the HTTP status number.
    code = string(body, "code")
    message = string(body, "message")
    label = answer_label(status, code)
    if status == PAUSED:
        return fault(
            Reason.MISCONFIGURED,
            said(_("%(what)s: the project is paused (HTTP 540); restore it to resume"), what=what),
        )
    if table and status == 404:
        return fault(
            Reason.MISCONFIGURED,
            said(_("table %(table)s not found (%(label)s)"), table=table, label=label),
        )
    if table and status in (401, 403) and code == PERMISSION_DENIED:
        return fault(
            Reason.MISCONFIGURED,
            said(
                _("permission denied on %(table)s: missing GRANT (%(label)s)"),
                table=table,
                label=label,
            ),
        )
    if status == 401 and message.startswith("No API key found"):
        return fault(
            Reason.AUTH_FAILED,
            said(_("%(what)s: no API key reached the gateway (%(label)s)"), what=what, label=label),
        )
    if status == 401 and message.startswith("Invalid API key"):
        return fault(
            Reason.AUTH_FAILED,
            said(
                _("%(what)s: the gateway refused the API key (%(label)s)"), what=what, label=label
            ),
        )
    if status in (401, 403):
        return fault(
            Reason.AUTH_FAILED,
            said(_("%(what)s: the key was refused (%(label)s)"), what=what, label=label),
        )
    if status >= 500 and code:
        return busy_or_down(response, said(_("%(what)s: %(label)s"), what=what, label=label))
    return unexpected(response, what)


def check_options(options: Mapping[str, Any]) -> None:
    role = str(options.get("role", SERVICE))
    if role not in ROLES:
        raise OptionError(
            said(
                _("role must be %(service)s or %(anon)s, not %(role)s"),
                service=SERVICE,
                anon=ANON,
                role=role,
            )
        )
    if role == ANON and not options.get("tables"):
        raise OptionError(
            said(_("role anon needs tables: the tables whose rows anon must not read"))
        )


KIND = Kind(
    name="supabase",
    required=frozenset({"secret_env", "base_url"}),
    optional=frozenset({"tables", "role", "ca_file"}),
    run=run,
    docs_url="https://supabase.com/docs/guides/api/api-keys",
    check_options=check_options,
)
