"""A lead's release day on a phone (390×844, an iPhone 12 to 14's viewport) in real
Chromium, and the support team following the status page live.

The release is the seed's v1.0.0 (tests/browser/conftest.py); the UI runs in English.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import pytest
from axe_playwright_python.sync_playwright import Axe
from playwright.sync_api import Page, Route, ViewportSize, expect

from releases import workflow
from releases.models import ItemState, Release, ReleaseStatus, Role
from tests.browser.test_release_day import (
    PRE_DEPLOY,
    STILL_LOADED,
    UNIT_TESTS,
    board_url,
    open_live,
    status_url,
)
from tests.conftest import item

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

LogIn = Callable[[str], Page]

PHONE: ViewportSize = {"width": 390, "height": 844}
# Two screens: what a thumb reaches with one scroll.
TWO_SCREENS = 2 * PHONE["height"]
# One row of the header is as tall as its tallest part, the page links (a 14.4 px font's
# 1.5 line height, padding and border: about 33 px; the title's line is 26 px). A second
# row would add at least one of those and the gap between rows: 63 px or more.
ONE_ROW_PX = 48
SIGNED = f"Signed off the QA Lead items of “{PRE_DEPLOY}”."
SECURITY_ITEM = "Los certificados SSL están instalados y configurados"


def on_phone(page: Page, url: str) -> Page:
    page.set_viewport_size(PHONE)
    return open_live(page, url)


def no_accessibility_violations(page: Page) -> bool:
    """axe-core finds nothing wrong with the page as it is now (menus open or not)."""
    found = Axe().run(page).response["violations"]
    assert not found, [(each["id"], [node["target"] for node in each["nodes"]]) for each in found]
    return True


def settle_before_gate(release: Release, people: dict[str, Any], role: str) -> None:
    for entry in release.items.filter(owner_role=role, before_gate=True):
        workflow.tick(entry, by=people[role])


def test_a_lead_sees_their_open_items_and_sign_off_on_the_first_screens(
    release_day: Release, people: dict[str, Any], log_in: LogIn
) -> None:
    workflow.link_checks(
        release_day,
        checks_of={
            item(release_day, UNIT_TESTS).pk: ["ci"],
            item(release_day, SECURITY_ITEM).pk: ["tls"],
        },
        summary={"source": "checks.toml"},
        by=people["admin"],
    )
    qa = on_phone(log_in("qa"), board_url(release_day))
    open_items = release_day.items.filter(owner_role=Role.QA).exclude(state__in=ItemState.settled())

    panel = qa.locator("#mine-panel")
    expect(panel.get_by_role("heading", name="My open items", exact=True)).to_be_visible()
    expect(panel).to_contain_text(f"{open_items.count()} items of yours are open")
    expect(panel.get_by_role("link")).to_have_count(open_items.count())
    expect(panel.get_by_role("link", name=UNIT_TESTS, exact=True)).to_have_attribute(
        "href", f"#item-{item(release_day, UNIT_TESTS).pk}"
    )
    sign = panel.get_by_role("button", name="Sign off as QA Lead", exact=True).first
    assert qa.evaluate("window.scrollY") == 0
    box = sign.bounding_box()
    assert box is not None and box["y"] < TWO_SCREENS, box
    # Disabled, and why is said beside it and read with it.
    expect(sign).to_be_disabled()
    before_gate = open_items.filter(before_gate=True, required=True).count()
    why = f"Not yet: {before_gate} required items are not done or N/A."
    expect(sign).to_have_accessible_description(why)
    expect(qa.locator(f"#{sign.get_attribute('aria-describedby')}")).to_be_visible()

    # Each item's checks run from its menu, which the keyboard opens.
    run_buttons = qa.locator("form.run-checks:has(input[name=item])")
    expect(run_buttons).to_have_count(2)
    expect(qa.locator("details.item__more form.run-checks:has(input[name=item])")).to_have_count(2)
    row = qa.locator(f"#item-{item(release_day, UNIT_TESTS).pk}")
    run = row.get_by_role("button", name="Run this item's checks", exact=True)
    expect(run).to_be_hidden()
    row.locator("summary").focus()
    qa.keyboard.press("Enter")
    expect(run).to_be_visible()
    # Someone else's item: its checks still run from a menu, which holds only them.
    other = qa.locator(f"#item-{item(release_day, SECURITY_ITEM).pk}")
    expect(other.locator("summary")).to_have_text("Checks")
    expect(other.get_by_role("checkbox")).to_have_accessible_description(
        re.compile(r"Only the DevOps Lead changes this item\.$")
    )

    # The header: the title, the live indicator and the page links share one row.
    rows = qa.evaluate(
        """() => {
            const head = document.querySelector(".page-head");
            const shown = [...head.children]
                .map((child) => child.getBoundingClientRect())
                .filter((box) => box.width > 1 && box.height > 1);
            return {
                height: head.getBoundingClientRect().height,
                lowestTop: Math.max(...shown.map((box) => box.top)),
                highestBottom: Math.min(...shown.map((box) => box.bottom)),
                children: shown.length,
            };
        }"""
    )
    assert rows["children"] == 3, rows
    assert rows["lowestTop"] < rows["highestBottom"], rows
    assert rows["height"] <= ONE_ROW_PX, rows
    assert no_accessibility_violations(qa)


def test_a_lead_with_nothing_open_is_told_so_beside_the_sign_off(
    release_day: Release, people: dict[str, Any], log_in: LogIn
) -> None:
    for entry in release_day.items.filter(owner_role=Role.QA):
        workflow.tick(entry, by=people["qa"])
    qa = on_phone(log_in("qa"), board_url(release_day))

    panel = qa.locator("#mine-panel")
    expect(panel).to_contain_text("Nothing open: every item of your role is done or N/A.")
    sign = panel.get_by_role("button", name="Sign off as QA Lead", exact=True).first
    expect(sign).to_be_enabled()
    box = sign.bounding_box()
    assert box is not None and box["y"] < PHONE["height"], box


@pytest.mark.parametrize("first", ["answer", "stream"])
def test_signing_off_keeps_the_focus_on_the_panel_and_announces_it(
    release_day: Release, people: dict[str, Any], log_in: LogIn, first: str
) -> None:
    settle_before_gate(release_day, people, Role.QA)
    qa = on_phone(log_in("qa"), board_url(release_day))
    held: list[tuple[Route, Any]] = []
    if first == "stream":
        # The answer waits until the live stream has brought the change to the page.
        qa.route("**/signoff/", lambda route: held.append((route, route.fetch())))
    panel = qa.locator("#mine-panel")
    sign = panel.get_by_role("button", name="Sign off as QA Lead", exact=True).first
    button_id = sign.get_attribute("id")

    sign.focus()
    qa.keyboard.press("Enter")

    withdraw = qa.locator(f"#{button_id}")
    expect(withdraw).to_have_text("Withdraw sign-off")
    expect(panel).to_contain_text("Signed")
    if first == "stream":
        assert len(held) == 1
        route, response = held[0]
        route.fulfill(response=response)
    announced = qa.locator("#messages")
    expect(announced).to_have_attribute("aria-live", "polite")
    expect(announced).to_have_text(SIGNED)
    expect(withdraw).to_be_focused()
    assert qa.evaluate("document.activeElement.closest('#mine-panel') !== null")
    assert qa.evaluate(STILL_LOADED), "the page reloaded instead of updating live"
    assert release_day.signoffs.filter(
        role=Role.QA, phase=PRE_DEPLOY, signed_by=people["qa"], reopened_at__isnull=True
    ).exists()


def test_the_focus_stays_in_the_panel_when_a_change_elsewhere_disables_the_focused_button(
    release_day: Release, people: dict[str, Any], log_in: LogIn
) -> None:
    settle_before_gate(release_day, people, Role.QA)
    qa = on_phone(log_in("qa"), board_url(release_day))
    sign = qa.locator("#mine-panel").get_by_role("button", name="Sign off as QA Lead").first
    expect(sign).to_be_enabled()
    its_row = sign.evaluate("(button) => button.closest('li').id")
    sign.focus()

    # Staff reopen one of QA's items: the fresh button cannot be signed, nor focused.
    workflow.untick(item(release_day, UNIT_TESTS), by=people["admin"])

    expect(sign).to_be_disabled()
    expect(qa.locator(f"#{its_row}")).to_be_focused()
    expect(qa.locator(f"#{its_row}")).to_contain_text("Not yet: 1 required item is not done")
    assert qa.evaluate(STILL_LOADED), "the page reloaded instead of updating live"


def test_support_sees_a_blocked_item_on_the_status_page_live(
    release_day: Release, people: dict[str, Any], log_in: LogIn
) -> None:
    support = on_phone(log_in("support"), status_url(release_day))
    now = support.locator("#now-panel")
    expect(now).to_contain_text("Nothing is blocked or failed.")

    workflow.mark_blocked(
        item(release_day, UNIT_TESTS), by=people["qa"], reason="the CI runners are down"
    )

    expect(now).to_contain_text(UNIT_TESTS)
    expect(now).to_contain_text("the CI runners are down")
    expect(support.locator("#progress-panel")).to_contain_text("1 blocked or failed")
    assert no_accessibility_violations(support)
    assert support.evaluate(STILL_LOADED), "the page reloaded instead of updating live"


def test_support_sees_a_rollback_declared_on_the_status_page_live(
    release_day: Release, people: dict[str, Any], log_in: LogIn
) -> None:
    for entry in release_day.items.filter(before_gate=True):
        workflow.tick(entry, by=people[entry.owner_role])
    for role in Role.leads():
        if release_day.items.filter(owner_role=role, phase=PRE_DEPLOY).exists():
            workflow.sign_off(release_day, role=role, phase=PRE_DEPLOY, by=people[role])
    workflow.approve(release_day, by=people["po"], reason="all green")
    workflow.start_deploy(release_day, by=people["devops"], reason="window open")
    workflow.finish_deploy(release_day, by=people["devops"], result="success", reason="ok")
    support = on_phone(log_in("support"), status_url(release_day))
    rollout = support.locator("#rollout-panel")
    expect(rollout).not_to_contain_text("Rollback under way")

    workflow.declare_rollback(
        release_day, by=people["devops"], reason="5xx on checkout", severity="critical"
    )

    expect(rollout).to_contain_text("Rollback under way")
    expect(rollout).to_contain_text("5xx on checkout")
    release_day.refresh_from_db()
    expect(support.locator("#now-panel")).to_contain_text(
        str(ReleaseStatus(release_day.status).label)
    )
    assert support.evaluate(STILL_LOADED), "the page reloaded instead of updating live"
