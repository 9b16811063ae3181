"""The statuspage kind against a stand-in Statuspage v2 summary.json."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack

import pytest
from django.utils import translation

from checks.kinds import statuspage
from checks.kinds.base import Reason

from .standin import Reply, Seen, stand_in
from .test_vendor_kinds import (
    Serve,
    assert_not_verified_at_once,
    assert_permanent,
    assert_transient,
    context,
    failure,
    success,
)
from .vendors import StatusPage


@pytest.fixture
def serve() -> Iterator[Serve]:
    with ExitStack() as servers:
        yield lambda vendor: servers.enter_context(stand_in(vendor))


def test_it_passes_a_page_reporting_none_from_its_base_url(serve: Serve) -> None:
    server = serve(StatusPage())
    evidence = success(statuspage.KIND, context({"url": server.url + "/"}))
    assert evidence == "page reports All Systems Operational (indicator none)"
    assert [seen.path for seen in server.requests] == ["/api/v2/summary.json"]


def test_it_uses_a_json_status_url_as_given(serve: Serve) -> None:
    server = serve(StatusPage())
    success(statuspage.KIND, context({"url": server.url + "/api/v2/summary.json"}))
    assert [seen.path for seen in server.requests] == ["/api/v2/summary.json"]


def test_it_puts_a_base_url_in_place_of_the_page_host(serve: Serve) -> None:
    server = serve(StatusPage())
    success(statuspage.KIND, context({"url": "https://status.openai.com", "base_url": server.url}))
    assert [seen.path for seen in server.requests] == ["/api/v2/summary.json"]


def test_it_passes_a_minor_page_but_notes_it(serve: Serve) -> None:
    server = serve(StatusPage(indicator="minor", description="Partially Degraded Service"))
    evidence = success(statuspage.KIND, context({"url": server.url}))
    assert evidence == "page reports Partially Degraded Service (indicator minor), noted"


@pytest.mark.parametrize("indicator", ["major", "critical"])
def test_it_fails_a_page_reporting_a_major_outage(indicator: str, serve: Serve) -> None:
    server = serve(StatusPage(indicator=indicator, description="Major Service Outage"))
    error = failure(statuspage.KIND, context({"url": server.url}))
    assert_permanent(error, Reason.VENDOR_DOWN)
    assert error.evidence == f"page reports Major Service Outage (indicator {indicator})"


def test_it_matches_components_by_name_ignoring_case_and_notes_degradation(serve: Serve) -> None:
    components = [
        ("API", "operational"),
        ("SMS", "degraded_performance"),
        ("Voice", "major_outage"),
    ]
    server = serve(StatusPage(indicator="major", components=components))
    evidence = success(statuspage.KIND, context({"url": server.url, "components": ["api", "Sms"]}))
    assert evidence == "API operational; SMS degraded_performance (noted)"


@pytest.mark.parametrize("status", ["partial_outage", "major_outage", "under_maintenance"])
def test_it_fails_a_named_component_that_is_down(status: str, serve: Serve) -> None:
    server = serve(StatusPage(components=[("API", "operational"), ("SMS", status)]))
    error = failure(statuspage.KIND, context({"url": server.url, "components": ["SMS", "API"]}))
    assert_permanent(error, Reason.VENDOR_DOWN)
    assert error.evidence == f"components down: SMS {status}"


def test_it_lists_up_to_five_available_names_for_a_component_not_on_the_page(serve: Serve) -> None:
    components = [(f"Region {i}", "operational") for i in range(7)]
    server = serve(StatusPage(components=components))
    error = failure(
        statuspage.KIND,
        # An id is never matched: incident.io pages changed them all.
        context({"url": server.url, "components": ["01JMXBRMFE6N2NNT7DG6XZQ6P0"]}),
    )
    assert_permanent(error, Reason.MISCONFIGURED)
    assert error.evidence == (
        "component 01JMXBRMFE6N2NNT7DG6XZQ6P0 is not on the page; available: "
        "Region 0, Region 1, Region 2, Region 3, Region 4"
    )


def test_it_fails_a_status_url_with_no_summary(serve: Serve) -> None:
    server = serve(StatusPage())
    error = failure(statuspage.KIND, context({"url": server.url + "/nope.json"}))
    assert_permanent(error, Reason.MISCONFIGURED)
    assert error.evidence == "no status summary at /nope.json (HTTP 404)"


# What the page reports beyond the documented values ---------------------------------------


@pytest.mark.parametrize("indicator", ["maintenance", "under_maintenance"])
def test_it_fails_a_page_under_maintenance_for_good(indicator: str, serve: Serve) -> None:
    """The documented indicators are none, minor, major and critical:
    https://confluence.status.atlassian.com/api"""
    server = serve(StatusPage(indicator=indicator, description="Service Under Maintenance"))
    error = failure(statuspage.KIND, context({"url": server.url}))
    assert_permanent(error, Reason.VENDOR_DOWN)
    assert error.evidence == (
        f"page reports Service Under Maintenance (indicator {indicator}): under maintenance"
    )


def test_it_does_not_verify_an_unknown_indicator_naming_it(serve: Serve) -> None:
    """The documented indicators are none, minor, major and critical:
    https://confluence.status.atlassian.com/api"""
    server = serve(StatusPage(indicator="degraded", description="Some Systems Degraded"))
    error = failure(statuspage.KIND, context({"url": server.url}))
    assert_not_verified_at_once(error)
    assert error.evidence == (
        "page reports Some Systems Degraded (indicator degraded), which is not one the API "
        "documents (none, minor, major, critical)"
    )


def test_it_retries_a_summary_without_an_indicator(serve: Serve) -> None:
    """Every summary carries status.indicator: https://confluence.status.atlassian.com/api"""
    server = serve(StatusPage(indicator=""))
    error = failure(statuspage.KIND, context({"url": server.url}))
    assert_transient(error, Reason.BAD_RESPONSE)
    assert error.evidence == "status page: the summary reports no indicator"


def test_it_retries_a_summary_without_a_status() -> None:
    with stand_in(lambda seen: Reply(body={"page": {}, "components": []})) as server:
        error = failure(statuspage.KIND, context({"url": server.url}))
    assert_transient(error, Reason.BAD_RESPONSE)


@pytest.mark.parametrize("status", [401, 403])
def test_it_says_a_page_asking_for_a_login_is_not_one_it_can_read(status: int) -> None:
    """The kind sends no credential, so none was refused."""

    def private_page(seen: Seen) -> Reply:
        return Reply(status=status, body="Log in to view this page")

    with stand_in(private_page) as server:
        error = failure(statuspage.KIND, context({"url": server.url}))
    assert_permanent(error, Reason.MISCONFIGURED)
    assert error.evidence == (
        f"the status page asks for a login (HTTP {status}); this check sends none and "
        "reads only public pages"
    )
    assert "credential" not in error.evidence


def test_it_names_an_unexpected_answer_in_the_readers_language() -> None:
    with stand_in(lambda seen: Reply(status=418, body="teapot")) as server:
        error = failure(statuspage.KIND, context({"url": server.url}))
    assert_transient(error, Reason.BAD_RESPONSE)
    assert error.evidence == "status summary: unexpected HTTP 418"
    with translation.override("es"):
        assert error.said.translated() == "resumen de estado: HTTP 418 inesperado"


def test_it_does_not_verify_an_unknown_component_status_naming_it(serve: Serve) -> None:
    """A component's status is operational, degraded_performance, partial_outage or
    major_outage: https://confluence.status.atlassian.com/api"""
    server = serve(StatusPage(components=[("API", "investigating"), ("SMS", "operational")]))
    error = failure(statuspage.KIND, context({"url": server.url, "components": ["API", "SMS"]}))
    assert_not_verified_at_once(error)
    assert error.evidence == (
        "components in a status the API does not document: API investigating; "
        "not taken for operational"
    )
