"""axe-core in real Chromium finds no serious or critical violation on any page.

Every page is found from the URL configuration, not listed here: each route that takes
nothing or a release's version and answers a GET with HTML is visited, by staff, with
the release in the middle of its day (deployed, a rollback declared with commands to
copy, an incident update posted, a window scheduled, checks run). A page added later is
covered without a change here. The share link's pages are visited without an account,
and the board and status page also as a lead and as support, who see other controls.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from axe_playwright_python.sync_playwright import Axe
from django.conf import settings
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver, reverse
from django.utils import timezone
from playwright.sync_api import Page, expect

from checks.models import Check
from notifications.models import Attempt, Channel, Delivery, EmailDelivery, Event
from releases import workflow
from releases.actors import SystemActor
from releases.models import Release, ReleaseStatus, Role
from tests.browser.conftest import Browsing

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

LogIn = Callable[[str], Page]
PRE_DEPLOY = "Pre-Despliegue"
BLOCKING = {"serious", "critical"}
SEED = Path(settings.BASE_DIR, "releases", "data", "checklist-produccion.md")
# Answer a GET with HTML but are fragments or forms' targets, not pages a person opens;
# and Django's async views (streams, the CSV download), which the sync test client cannot
# run beside the browser's event loop and which are no HTML pages.
NOT_PAGES = {"releases:section", "releases:healthz", "releases:language", "set_language",
             "releases:live", "releases:live-poll", "releases:audit-csv"}  # fmt: skip


def _routes(patterns: list[Any], namespace: str = "") -> Iterator[tuple[str, list[str]]]:
    for pattern in patterns:
        if isinstance(pattern, URLResolver):
            inner = pattern.namespace or namespace
            yield from _routes(pattern.url_patterns, inner)
        elif isinstance(pattern, URLPattern) and pattern.name:
            name = f"{namespace}:{pattern.name}" if namespace else pattern.name
            yield name, list(pattern.pattern.converters)


def _pages(release: Release, staff: Any) -> list[str]:
    """Every HTML page a GET of a route of no argument or a version gives staff."""
    client = Client()
    # As stored: the server's password hash was written past the object (conftest).
    staff.refresh_from_db()
    client.force_login(staff)
    found = []
    for name, arguments in _routes(get_resolver().url_patterns):
        if name.startswith("admin:") or name in NOT_PAGES or set(arguments) - {"version"}:
            continue
        url = reverse(name, args=[release.version] if arguments else [])
        response = client.get(url)
        html = response.get("Content-Type", "").startswith("text/html")
        if response.status_code == 200 and html and not response.streaming:
            found.append(url)
    return found


@pytest.fixture
def mid_incident(release_day: Release, people: dict[str, Any]) -> Release:
    for entry in release_day.items.filter(before_gate=True):
        workflow.tick(entry, by=people[entry.owner_role])
    for role in Role.leads():
        if release_day.items.filter(owner_role=role, phase=PRE_DEPLOY).exists():
            workflow.sign_off(release_day, role=role, phase=PRE_DEPLOY, by=people[role])
    workflow.approve(release_day, by=people["po"], reason="all green")
    start = timezone.now() + timedelta(days=1)
    workflow.schedule_window(
        release_day,
        start=start,
        end=start + timedelta(hours=2),
        time_zone="Europe/Madrid",
        by=people["admin"],
    )
    workflow.start_deploy(release_day, by=people["devops"], reason="window open")
    workflow.finish_deploy(release_day, by=people["devops"], result="success", reason="ok")
    workflow.declare_rollback(
        release_day, by=people["devops"], reason="5xx on checkout", severity="critical"
    )
    workflow.post_update(
        release_day, state="investigating", message="Checkout errors", by=people["po"]
    )
    Check.objects.create(
        release=release_day, name="health", kind="http", options={"url": "https://x.test/"}
    )
    Check.objects.create(
        release=release_day,
        name="old-health",
        kind="http",
        options={"url": "https://x.test/old"},
        retired_at=timezone.now(),
    )
    # A channel with a failed delivery, and an e-mail, so the logs show rows and replays.
    channel = Channel.objects.create(
        name="ops",
        kind="webhook",
        url="http://127.0.0.1:9/hook",
        secret_env="OPS_WEBHOOK_SECRET",
        events=["*"],
    )
    event = Event.objects.create(
        type="rollback.declared",
        release=release_day,
        actor_label="devops",
        actor_kind="person",
        data={"release": {"version": release_day.version}},
    )
    sent = Delivery.objects.create(
        event=event, channel=channel, state="failed", attempts=1, last_error="HTTP 404"
    )
    Attempt.objects.create(
        delivery=sent, number=1, outcome="failed", http_status=404, latency_ms=20, error="HTTP 404"
    )
    EmailDelivery.objects.create(
        event=event, user=people["qa"], address="qa@example.com", state="failed", attempts=1
    )
    release_day.refresh_from_db()
    assert release_day.status == ReleaseStatus.ROLLED_BACK
    return release_day


def _serious(page: Page) -> list[str]:
    violations = Axe().run(page).response["violations"]
    return [
        f"{page.url}: {violation['id']} ({violation['impact']}) at "
        + ", ".join(str(node["target"]) for node in violation["nodes"][:3])
        for violation in violations
        if violation["impact"] in BLOCKING
    ]


def test_no_page_has_a_serious_or_critical_violation(
    mid_incident: Release, people: dict[str, Any], log_in: LogIn, browsing: Browsing
) -> None:
    urls = _pages(mid_incident, people["admin"])
    assert len(urls) >= 10, urls
    check = Check.objects.get(release=mid_incident, name="health")
    channel = Channel.objects.get(name="ops")
    urls += [
        reverse("checks:edit", args=[mid_incident.version, check.pk]),
        reverse("channels:edit", args=[channel.pk]),
        reverse("channels:channel-log", args=[channel.pk]),
        *(
            reverse("releases:confirm", args=[mid_incident.version, action])
            for action in ("mitigate", "resolve", "close")
        ),
    ]
    staff = log_in("admin")
    found = []
    for url in urls:
        staff.goto(url)
        found += _serious(staff)
    # The import's preview, which only a POST of a file shows.
    staff.goto(reverse("releases:import"))
    staff.locator("input[type=file]").set_input_files(SEED)
    staff.get_by_role("button", name="Preview", exact=True).click()
    expect(staff.get_by_role("button", name="Create the template", exact=True)).to_be_visible()
    found += _serious(staff)
    # A channel test's answer, which only a POST shows: here a refusal (422) before
    # sending, since the channel's address is this machine's and the server under test
    # keeps NOTIFY_ALLOW_PRIVATE off.
    staff.goto(reverse("channels:channels"))
    staff.get_by_role("button", name="Send a test to channel ops", exact=True).click()
    expect(staff.get_by_role("heading", name="Nothing was sent")).to_be_visible()
    browsing.refused_on_purpose("/test/")
    found += _serious(staff)

    assert found == [], "\n".join(found)


def test_the_page_for_an_address_that_leads_nowhere_has_none(
    mid_incident: Release, log_in: LogIn, browsing: Browsing
) -> None:
    staff = log_in("admin")
    answer = staff.goto("/releases/no-such-release/")
    found = _serious(staff)
    # The 404 is what was asked for: the browser reporting it is no fault of the page.
    browsing.errors[:] = [
        error for error in browsing.errors if "404" not in error and "no-such-release" not in error
    ]

    assert answer is not None and answer.status == 404
    assert found == [], "\n".join(found)


@pytest.mark.parametrize("persona", ["devops", "support"])
def test_the_board_and_status_page_have_none_for_a_lead_or_support(
    persona: str, mid_incident: Release, log_in: LogIn
) -> None:
    person = log_in(persona)
    found = []
    for name in ("releases:board", "releases:status", "releases:timeline"):
        person.goto(reverse(name, args=[mid_incident.version]))
        found += _serious(person)

    assert found == [], "\n".join(found)


def test_the_share_links_pages_have_none(mid_incident: Release, browsing: Browsing) -> None:
    token = workflow.create_share_link(
        mid_incident, label="vendor", by=SystemActor("tests"), hides_personal=True
    )
    outside = browsing.browser.new_context(base_url=browsing.server.url, locale="en-US")
    browsing.contexts.append(outside)
    page = outside.new_page()
    found = []
    for name in ("releases:shared-status", "releases:shared-timeline"):
        page.goto(reverse(name, args=[token]))
        found += _serious(page)

    assert found == [], "\n".join(found)
