"""A vendor's status page (Atlassian Statuspage v2, or the compatible summary.json that
incident.io pages serve): the page, or each named component, is up.

API: https://confluence.status.atlassian.com/api

`url` is the page's summary.json, or the page itself, to which /api/v2/summary.json is
appended; base_url, when set, replaces its scheme and host. Components are matched by
name, case-insensitively, never by id: incident.io pages changed every component id when
they migrated.

Permanent failures: the page reports a major or critical indicator; a named component is
in partial_outage, major_outage or under_maintenance; a named component is not on the
page; no summary at the url (404). A minor indicator or degraded_performance passes, noted
in the evidence. An indicator or status we do not know is transient: unknown is never ok.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit, urlunsplit

from .base import Context, Kind, Reason, fault, transient
from .client import http_client, send, unexpected
from .vendor_errors import json_object, mapping, string

SUMMARY_PATH = "/api/v2/summary.json"
PAGE_DOWN = frozenset({"major", "critical"})
COMPONENT_OK = "operational"
COMPONENT_NOTED = "degraded_performance"
COMPONENT_DOWN = frozenset({"partial_outage", "major_outage", "under_maintenance"})
SHOWN_NAMES = 5


def summary_url(url: str, base_url: str = "") -> str:
    """Where the summary lives; `base_url` (a stand-in, a proxy) takes the place of the
    page's scheme and host and keeps its path."""
    parts = urlsplit(url)
    path = parts.path if parts.path.endswith(".json") else parts.path.rstrip("/") + SUMMARY_PATH
    if base_url:
        base = urlsplit(base_url.rstrip("/"))
        return urlunsplit(base._replace(path=base.path + path, query=parts.query))
    return urlunsplit(parts._replace(path=path))


def run(context: Context) -> str:
    url = summary_url(context.text("url"), context.text("base_url"))
    wanted = context.texts("components")
    with http_client(ca_file=context.text("ca_file")) as client:
        response = send(client, "GET", url)
    if response.status_code == 404:
        raise fault(Reason.MISCONFIGURED, f"no status summary at {urlsplit(url).path} (HTTP 404)")
    if response.status_code != 200:
        raise unexpected(response, "status page")
    summary = json_object(response, "status page")
    return _judge_components(summary, wanted) if wanted else _judge_page(summary)


def _judge_page(summary: dict[str, Any]) -> str:
    status = mapping(summary, "status")
    indicator = string(status, "indicator")
    description = string(status, "description") or "no description"
    if indicator == "none":
        return f"page reports {description} (indicator none)"
    if indicator == "minor":
        return f"page reports {description} (indicator minor, noted)"
    if indicator in PAGE_DOWN:
        raise fault(Reason.VENDOR_DOWN, f"page reports {description} (indicator {indicator})")
    raise transient(Reason.BAD_RESPONSE, f"status page: unknown indicator {indicator or 'missing'}")


def _judge_components(summary: dict[str, Any], wanted: list[str]) -> str:
    listed = summary.get("components")
    if not isinstance(listed, list):
        raise transient(Reason.BAD_RESPONSE, "status page: summary without a components list")
    # A name can repeat across groups (regions); every component of that name counts.
    by_name: dict[str, list[tuple[str, str]]] = {}
    for component in listed:
        if isinstance(component, dict) and string(component, "name"):
            name = string(component, "name")
            by_name.setdefault(name.strip().casefold(), []).append(
                (name, string(component, "status"))
            )
    found: list[tuple[str, str]] = []
    for name in wanted:
        matches = by_name.get(name.strip().casefold())
        if not matches:
            available = ", ".join(entries[0][0] for entries in list(by_name.values())[:SHOWN_NAMES])
            raise fault(
                Reason.MISCONFIGURED,
                f"component {name} is not on the page; available: {available or 'none'}",
            )
        found += matches
    down = [f"{name} {status}" for name, status in found if status in COMPONENT_DOWN]
    if down:
        raise fault(Reason.VENDOR_DOWN, f"components down: {', '.join(down)}")
    known = COMPONENT_DOWN | {COMPONENT_OK, COMPONENT_NOTED}
    unknown = [f"{name} {status or 'no status'}" for name, status in found if status not in known]
    if unknown:
        raise transient(Reason.BAD_RESPONSE, f"components in unknown status: {', '.join(unknown)}")
    operational = [name for name, status in found if status == COMPONENT_OK]
    noted = [name for name, status in found if status == COMPONENT_NOTED]
    parts = [f"{', '.join(operational)} operational"] if operational else []
    if noted:
        parts.append(f"{', '.join(noted)} degraded_performance (noted)")
    return "; ".join(parts)


KIND = Kind(
    name="statuspage",
    required=frozenset({"url"}),
    optional=frozenset({"components", "base_url", "ca_file"}),
    run=run,
    docs_url="https://confluence.status.atlassian.com/api",
)
