"""A vendor's status page (Atlassian Statuspage v2, or the compatible summary.json that
incident.io pages serve): the page, or each named component, is up.

API: https://confluence.status.atlassian.com/api

`url` is the page's summary.json, or the page itself, to which /api/v2/summary.json is
appended; base_url, when set, replaces its scheme and host. Components are matched by
name, case-insensitively, never by id: incident.io pages changed every component id when
they migrated.

Proof. The API documents the page's `status.indicator` as one of none, minor, major or
critical, and a component's `status` as operational, degraded_performance,
partial_outage or major_outage (under_maintenance also occurs). Only none and operational
pass as they are; minor and degraded_performance pass, noted in the evidence.

Permanent failures: the page reports a major or critical indicator, or maintenance; a
named component is in partial_outage, major_outage or under_maintenance; a named
component is not on the page; no summary at the url (404); a page that asks for a login
(401, 403), since the check sends none and reads only public pages.

Not verified: an indicator or component status outside the documented ones, named in
the evidence, is never taken for up nor for down; it ends as an error at once, since
asking again reads the same page. A summary without an indicator or a components list
is an unreadable answer, retried.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit, urlunsplit

from django.utils.translation import gettext_noop as _

from .base import Context, Kind, Reason, Said, fault, joined, said, transient, unjudged
from .client import http_client, send, unexpected
from .vendor_errors import json_object, mapping, string

SUMMARY_PATH = "/api/v2/summary.json"
PAGE_DOWN = frozenset({"major", "critical"})
# Not in the API's list of indicators, but what pages report while work is under way.
PAGE_MAINTENANCE = frozenset({"maintenance", "under_maintenance"})
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


def run(context: Context) -> Said:
    url = summary_url(context.text("url"), context.text("base_url"))
    wanted = context.texts("components")
    with http_client(ca_file=context.text("ca_file")) as client:
        response = send(client, "GET", url)
    if response.status_code == 404:
        raise fault(
            Reason.MISCONFIGURED,
            said(_("no status summary at %(path)s (HTTP 404)"), path=urlsplit(url).path),
        )
    if response.status_code in (401, 403):
        raise fault(
            Reason.MISCONFIGURED,
            said(
                _(
                    "the status page asks for a login (HTTP %(status)s); this check sends "
                    "none and reads only public pages"
                ),
                status=response.status_code,
            ),
        )
    what = said(_("status summary"))
    if response.status_code != 200:
        raise unexpected(response, what)
    summary = json_object(response, what)
    return _judge_components(summary, wanted) if wanted else _judge_page(summary)


def _judge_page(summary: dict[str, Any]) -> Said:
    status = mapping(summary, "status")
    indicator = string(status, "indicator")
    description = string(status, "description")
    reported = (
        said(
            _("page reports %(description)s (indicator %(indicator)s)"),
            description=description,
            indicator=indicator,
        )
        if description
        else said(_("page reports indicator %(indicator)s"), indicator=indicator)
    )
    if indicator == "none":
        return reported
    if indicator == "minor":
        return said(_("%(reported)s, noted"), reported=reported)
    if indicator in PAGE_DOWN:
        raise fault(Reason.VENDOR_DOWN, reported)
    if indicator in PAGE_MAINTENANCE:
        raise fault(
            Reason.VENDOR_DOWN, said(_("%(reported)s: under maintenance"), reported=reported)
        )
    if not indicator:
        raise transient(
            Reason.BAD_RESPONSE, said(_("status page: the summary reports no indicator"))
        )
    raise unjudged(
        Reason.BAD_RESPONSE,
        said(
            _("%(reported)s, which is not one the API documents (none, minor, major, critical)"),
            reported=reported,
        ),
    )


def _judge_components(summary: dict[str, Any], wanted: list[str]) -> Said:
    listed = summary.get("components")
    if not isinstance(listed, list):
        raise transient(
            Reason.BAD_RESPONSE, said(_("status page: summary without a components list"))
        )
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
                said(
                    _("component %(component)s is not on the page; available: %(available)s"),
                    component=name,
                    available=available or said(_("none")),
                ),
            )
        found += matches
    down = [f"{name} {status}" for name, status in found if status in COMPONENT_DOWN]
    if down:
        raise fault(
            Reason.VENDOR_DOWN,
            said(_("components down: %(components)s"), components=", ".join(down)),
        )
    known = COMPONENT_DOWN | {COMPONENT_OK, COMPONENT_NOTED}
    unknown = [f"{name} {status or 'null'}" for name, status in found if status not in known]
    if unknown:
        raise unjudged(
            Reason.BAD_RESPONSE,
            said(
                _(
                    "components in a status the API does not document: %(components)s; "
                    "not taken for operational"
                ),
                components=", ".join(unknown),
            ),
        )
    operational = [name for name, status in found if status == COMPONENT_OK]
    noted = [name for name, status in found if status == COMPONENT_NOTED]
    parts = []
    if operational:
        parts.append(said(_("%(components)s operational"), components=", ".join(operational)))
    if noted:
        parts.append(
            said(_("%(components)s degraded_performance (noted)"), components=", ".join(noted))
        )
    return joined(*parts)


KIND = Kind(
    name="statuspage",
    required=frozenset({"url"}),
    optional=frozenset({"components", "base_url", "ca_file"}),
    run=run,
    docs_url="https://confluence.status.atlassian.com/api",
)
