"""Release day in real Chromium: several people on one release, each in their own browser.

The release is v1.0.0 from the built-in Spanish checklist; the UI runs in English. Pages
are opened before the change they must show, and a marker set on `window` proves that
they showed it without a reload.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import pytest
from django.urls import reverse
from playwright.sync_api import Locator, Page, expect

from releases import workflow
from releases.models import AuditEvent, ItemState, Release, Role
from tests.conftest import PERSONAS, item

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

LogIn = Callable[[str], Page]

UNIT_TESTS = "Todas las pruebas unitarias pasan (backend y frontend)"
PRE_DEPLOY = "Pre-Despliegue"
SSL_CERTIFICATES = "Los certificados SSL están instalados y configurados"
VERSION_TAGGED = "La versión está etiquetada correctamente (vX.Y.Z)"
STILL_LOADED = "window.releaseDayStillLoaded === true"


def board_url(release: Release) -> str:
    return reverse("releases:board", args=[release.version])


def status_url(release: Release) -> str:
    return reverse("releases:status", args=[release.version])


CONNECT_TIMEOUT_MS = 20_000


def open_live(page: Page, url: str) -> Page:
    """Open a live page, wait until its stream is up, and mark it to detect reloads."""
    page.goto(url)
    # Opening the stream is not what these tests measure; a loaded CI machine may take a
    # few seconds to serve the page, its scripts and the first event.
    expect(page.locator("#live-indicator")).to_have_attribute(
        "data-state", "live", timeout=CONNECT_TIMEOUT_MS
    )
    page.evaluate("window.releaseDayStillLoaded = true")
    return page


def checkbox(page: Page, text: str) -> Locator:
    return page.get_by_role("checkbox", name=text, exact=True)


def signoff_button(page: Page, phase: str, role_label: str) -> Locator:
    # A lead signs off under "My open items", one row per phase of theirs.
    rows = page.locator("#mine-panel li.mine__signoff").filter(
        has=page.locator(f'.mine__phase strong:text-is("{phase}")')
    )
    return rows.get_by_role("button", name=f"Sign off as {role_label}", exact=True)


def test_it_shows_a_qa_tick_on_every_open_page_without_reload(
    release_day: Release, people: dict[str, Any], log_in: LogIn
) -> None:
    po = open_live(log_in("po"), board_url(release_day))
    support = open_live(log_in("support"), status_url(release_day))
    qa = open_live(log_in("qa"), board_url(release_day))
    for page in (po, support):
        indicator = page.locator("#live-indicator")
        expect(indicator).to_have_text("Live")
        expect(indicator).to_have_attribute("data-state", "live")
    qa_total = release_day.items.filter(owner_role=Role.QA).count()
    qa_progress = support.get_by_role("progressbar", name=re.compile(r"^QA Lead"))
    expect(qa_progress).to_have_attribute("value", "0")
    expect(checkbox(po, UNIT_TESTS)).not_to_be_checked()

    checkbox(qa, UNIT_TESTS).check()

    expect(checkbox(po, UNIT_TESTS)).to_be_checked()
    expect(qa_progress).to_have_attribute("value", "1")
    expect(support.locator("#progress-panel")).to_contain_text(f"1 of {qa_total}")
    for page in (po, support):
        assert page.evaluate(STILL_LOADED), "the page reloaded instead of updating live"
    entry = item(release_day, UNIT_TESTS)
    assert (entry.state, entry.changed_by) == (ItemState.DONE, people["qa"])


def test_it_lets_the_product_owner_approve_only_after_every_lead_signed_off(
    release_day: Release, people: dict[str, Any], log_in: LogIn
) -> None:
    for entry in release_day.items.filter(before_gate=True):
        workflow.tick(entry, by=people[entry.owner_role])
    po = open_live(log_in("po"), board_url(release_day))
    qa = open_live(log_in("qa"), board_url(release_day))
    approve = po.get_by_role("button", name="Approve go-live", exact=True)
    reasons = po.locator("#gonogo-panel")
    expect(approve).to_be_disabled()
    for lead in ("DevOps Lead", "Backend Lead", "QA Lead"):
        expect(reasons).to_contain_text(f"{lead} has not signed off “{PRE_DEPLOY}”")

    signoff_button(qa, PRE_DEPLOY, "QA Lead").click()
    expect(reasons).not_to_contain_text("QA Lead has not signed off")
    expect(approve).to_be_disabled()
    assert release_day.signoffs.filter(
        role=Role.QA, phase=PRE_DEPLOY, signed_by=people["qa"], reopened_at__isnull=True
    ).exists()
    workflow.sign_off(release_day, role=Role.DEVOPS, phase=PRE_DEPLOY, by=people["devops"])
    workflow.sign_off(release_day, role=Role.BACKEND, phase=PRE_DEPLOY, by=people["backend"])

    # Once nothing blocks, approving asks first, on a page of its own, and why.
    approve_link = po.get_by_role("link", name="Approve go-live", exact=True)
    expect(approve_link).to_be_visible()
    approve_link.click()
    po.get_by_label("Why? (kept in the audit trail)").fill("Every lead signed off")
    po.get_by_role("button", name="Approve go-live", exact=True).click()
    open_live(po, board_url(release_day))
    reasons = po.locator("#gonogo-panel")
    expect(reasons).to_contain_text("Go-live approved")
    approval = release_day.active_approval()
    assert approval is not None and approval.approved_by == people["po"]
    event = release_day.audit_events.get(action="release.approved")
    assert event.after["reason"] == "Every lead signed off"

    checkbox(qa, UNIT_TESTS).uncheck()

    banner = po.get_by_role("alert")
    expect(banner).to_contain_text("Go-live approval was revoked.")
    expect(banner).to_contain_text(UNIT_TESTS)
    expect(po.get_by_role("button", name="Approve go-live", exact=True)).to_be_disabled()
    assert po.evaluate(STILL_LOADED), "the page reloaded instead of updating live"
    approval.refresh_from_db()
    assert approval.revoked_at is not None and UNIT_TESTS in approval.revoked_reason_text
    assert release_day.active_approval() is None
    assert not release_day.signoffs.filter(role=Role.QA, reopened_at__isnull=True).exists()


def test_it_tells_an_open_board_its_person_logged_out_in_another_tab(
    release_day: Release, log_in: LogIn
) -> None:
    qa = open_live(log_in("qa"), board_url(release_day))
    streams_asked: list[str] = []
    qa.on("request", lambda request: streams_asked.append(request.url))
    other_tab = qa.context.new_page()
    other_tab.goto(status_url(release_day))

    other_tab.get_by_role("button", name="Log out", exact=True).click()

    expect(other_tab).to_have_url(re.compile(r"/accounts/login/"))
    indicator = qa.locator("#live-indicator")
    expect(indicator).to_have_attribute("data-state", "revoked")
    expect(indicator).to_have_text("Your access to this release has ended: reload the page")
    # Past the reconnect delay the stream had set: the page neither reconnects nor polls.
    qa.wait_for_timeout(2_500)
    expect(indicator).to_have_attribute("data-state", "revoked")
    assert streams_asked == []
    assert qa.evaluate(STILL_LOADED), "the page reloaded instead of saying so"


def test_it_lets_support_watch_but_change_nothing(release_day: Release, log_in: LogIn) -> None:
    support = log_in("support")
    support.goto(status_url(release_day))
    expect(support.get_by_role("heading", level=1)).to_contain_text(release_day.version)
    expect(support.locator("#progress-panel")).to_be_visible()
    for contact in release_day.contacts.all():
        expect(support.get_by_text(contact.name)).to_be_visible()

    support.goto(board_url(release_day))
    expect(support.locator("input[type=checkbox]")).to_have_count(release_day.items.count())
    expect(support.locator("input[type=checkbox]:enabled")).to_have_count(0)

    entry = item(release_day, UNIT_TESTS)
    csrf = next(c["value"] for c in support.context.cookies() if c["name"] == "csrftoken")
    response = support.request.post(
        reverse("releases:item", args=[release_day.version, entry.pk]),
        form={"action": "tick", "version": str(entry.version)},
        headers={"X-CSRFToken": csrf},
    )
    assert response.status == 403
    # Past the CSRF check: the refusal is the workflow's own.
    assert "Only the QA Lead may change" in response.text()
    entry.refresh_from_db()
    assert entry.state == ItemState.PENDING
    assert not AuditEvent.objects.filter(release=release_day, action="item.done").exists()


def test_it_keeps_both_ticks_when_two_leads_tick_at_the_same_moment(
    release_day: Release, people: dict[str, Any], log_in: LogIn
) -> None:
    ticks = {"devops": SSL_CERTIFICATES, "backend": VERSION_TAGGED}
    pages = {lead: open_live(log_in(lead), board_url(release_day)) for lead in ticks}
    # Both pages click at the same wall-clock instant, each in its own renderer.
    moment = pages["devops"].evaluate("Date.now()") + 300
    for lead, text in ticks.items():
        pages[lead].evaluate(
            "([id, moment]) => setTimeout(() => document.getElementById(id).click(),"
            " moment - Date.now())",
            [f"tick-{item(release_day, text).pk}", moment],
        )

    for page in pages.values():
        for text in ticks.values():
            expect(checkbox(page, text)).to_be_checked()
        expect(page.locator(".message--error")).to_have_count(0)
        assert page.evaluate(STILL_LOADED), "the page reloaded instead of updating live"
    for lead, text in ticks.items():
        entry = item(release_day, text)
        assert (entry.state, entry.changed_by) == (ItemState.DONE, people[lead])


def test_it_keeps_what_a_lead_is_typing_when_their_row_changes_elsewhere(
    release_day: Release, people: dict[str, Any], log_in: LogIn
) -> None:
    entry = item(release_day, UNIT_TESTS)
    qa = open_live(log_in("qa"), board_url(release_day))
    row = qa.locator(f"#item-{entry.pk}")
    row.locator("summary").click()
    reason = qa.locator(f"#na-{entry.pk}")
    reason.fill("covered by the integration suite")

    # Someone else changes the same row: the fresh row arrives while QA is typing.
    workflow.annotate_item(entry, by=people["admin"], note="CI run 4521 is green")

    expect(row).to_contain_text("CI run 4521 is green")
    expect(row.locator("details")).to_have_attribute("open", "")
    expect(reason).to_have_value("covered by the integration suite")
    expect(reason).to_be_focused()
    assert qa.evaluate(STILL_LOADED), "the page reloaded instead of updating live"
    row.get_by_role("button", name="Mark N/A").click()
    expect(row).to_have_attribute("data-state", ItemState.NOT_APPLICABLE)
    # The fresh row's form went through htmx too, not a page load.
    assert qa.evaluate(STILL_LOADED), "the fresh row's form reloaded the page"
    entry.refresh_from_db()
    assert (entry.state, entry.reason) == (
        ItemState.NOT_APPLICABLE,
        "covered by the integration suite",
    )


HIDDEN = "contains invisible bidirectional control characters"


@pytest.mark.parametrize("javascript", [True, False], ids=["htmx", "no JavaScript"])
def test_a_refused_note_stays_as_typed_with_why_beside_it(
    release_day: Release, browsing: Any, javascript: bool
) -> None:
    entry = item(release_day, UNIT_TESTS)
    qa = browsing.log_in("qa", javascript=javascript)
    if javascript:
        open_live(qa, board_url(release_day))
    else:
        qa.goto(board_url(release_day))
    row = qa.locator(f"#item-{entry.pk}")
    row.locator("summary").click()
    typed = "Ask <Ana> about run \u202e4521"
    qa.locator(f"#note-{entry.pk}").fill(typed)

    row.get_by_role("button", name="Save note").click()

    expect(qa.locator("#messages .message--error")).to_contain_text(HIDDEN)
    note = qa.locator(f"#note-{entry.pk}")
    expect(note).to_have_value(typed)
    expect(note).to_be_focused()
    expect(note).to_have_accessible_description(re.compile(HIDDEN))
    expect(qa.locator(f"#note-{entry.pk}-error")).to_be_visible()
    if javascript:
        assert qa.evaluate(STILL_LOADED), "the page reloaded instead of answering in place"
    assert item(release_day, UNIT_TESTS).note == ""
    # Put right, it saves, and the row says nothing more of the refusal.
    note.fill("Ask Ana about run 4521")
    row.get_by_role("button", name="Save note").click()
    expect(row.locator(".item__note")).to_have_text("Note: Ask Ana about run 4521")
    expect(row.locator(".error")).to_have_count(0)
    assert item(release_day, UNIT_TESTS).note == "Ask Ana about run 4521"
    expect_failed(browsing, f"/items/{entry.pk}/")


# Records the revision of every update the page's stream delivers, whether live.js takes
# it or leaves it out. Run before the page's own scripts.
HEAR_THE_STREAM = """
window.streamRevisions = [];
window.EventSource = class extends window.EventSource {
  constructor(url, options) {
    super(url, options);
    this.addEventListener("update", (event) => {
      window.streamRevisions.push(Number(event.lastEventId));
    });
  }
};
"""
COUNT_CHANGES = """(rowId) => {
  window.rowReplaced = 0;
  window.revisionsApplied = [];
  new MutationObserver((records) => {
    for (const record of records) {
      for (const node of record.removedNodes) {
        if (node.id === rowId) window.rowReplaced += 1;
      }
    }
  }).observe(document.body, { childList: true, subtree: true });
  document.addEventListener("live:updated", (event) => {
    window.revisionsApplied.push(event.detail.revision);
  });
}"""


def test_the_acting_page_applies_its_own_change_once(release_day: Release, log_in: LogIn) -> None:
    entry = item(release_day, UNIT_TESTS)
    qa = log_in("qa")
    qa.add_init_script(HEAR_THE_STREAM)
    open_live(qa, board_url(release_day))
    shown = int(qa.locator("#live").get_attribute("data-revision") or "")
    qa.evaluate(COUNT_CHANGES, f"item-{entry.pk}")

    checkbox(qa, UNIT_TESTS).check()

    # The stream brings the tick's revision to this page too, after or before the
    # answer: whichever comes second is left out.
    qa.wait_for_function("(revision) => window.streamRevisions.includes(revision)", arg=shown + 1)
    expect(qa.locator(f"#item-{entry.pk}")).to_have_attribute("data-state", ItemState.DONE)
    expect(qa.locator("#messages")).to_contain_text("Marked")
    assert qa.evaluate("window.rowReplaced") == 1
    assert qa.evaluate("window.revisionsApplied") == [shown + 1]
    assert qa.locator("#live").get_attribute("data-revision") == str(shown + 1)
    assert qa.evaluate(STILL_LOADED), "the page reloaded instead of updating live"


BIG_SECTIONS = 13
PER_SECTION = 20


@pytest.fixture
def big_release(people: dict[str, Any]) -> Release:
    """260 items in sections of 20: more than a board shows at once."""
    from releases.models import ChecklistTemplate, TemplateItem

    template = ChecklistTemplate.objects.create(name="big", title="Big", gate_position=100)
    leads = Role.leads()
    TemplateItem.objects.bulk_create([
        TemplateItem(template=template, position=index, phase=f"Fase {index // 100 + 1}",
                     section=f"Sección {index // PER_SECTION + 1}", text=f"Punto {index + 1}",
                     owner_role=leads[index % len(leads)])
        for index in range(BIG_SECTIONS * PER_SECTION)
    ])  # fmt: skip
    release = workflow.create_release(template, version="v9.0.0", title="Big", by=people["admin"])
    for persona in PERSONAS:
        workflow.assign(release, role=persona, user=people[persona], by=people["admin"])
    return release


def test_a_big_board_opens_a_section_on_demand_and_keeps_it_live(
    big_release: Release, people: dict[str, Any], log_in: LogIn
) -> None:
    last = f"Sección {BIG_SECTIONS}"
    qa = open_live(log_in("qa"), board_url(big_release))
    po = open_live(log_in("po"), board_url(big_release))
    for page in (qa, po):
        expect(checkbox(page, "Punto 1")).to_be_visible()
        expect(checkbox(page, f"Punto {BIG_SECTIONS * PER_SECTION}")).to_have_count(0)
    first_in_last = (BIG_SECTIONS - 1) * PER_SECTION + 1
    qa_item = next(
        number for number in range(first_in_last, first_in_last + 4)
        if item(big_release, f"Punto {number}").owner_role == Role.QA
    )  # fmt: skip

    # A change to a row that is on no page: the pages take the rest of the update, and
    # the closed section's heading counts it.
    workflow.tick(item(big_release, f"Punto {qa_item}"), by=people["qa"])
    expect(po.locator("#progress-panel")).to_contain_text("1 of")
    po_last = po.locator(f"#section-{BIG_SECTIONS - 1}")
    expect(po_last.locator("summary")).to_contain_text(f"1 of {PER_SECTION} items settled")

    qa.locator("summary", has_text=last).click()
    expect(checkbox(qa, f"Punto {qa_item}")).to_be_checked()
    expect(checkbox(qa, f"Punto {qa_item}")).to_be_enabled()
    checkbox(qa, f"Punto {qa_item}").uncheck()
    expect(po.locator("#progress-panel")).not_to_contain_text("1 of")
    expect(po_last.locator("summary")).to_contain_text(f"0 of {PER_SECTION} items settled")
    # QA's opened section kept its rows through its own heading's update.
    expect(checkbox(qa, f"Punto {qa_item}")).not_to_be_checked()
    expect(qa.locator(f"#section-{BIG_SECTIONS - 1}")).to_have_attribute("open", "")
    assert item(big_release, f"Punto {qa_item}").state == ItemState.PENDING
    for page in (qa, po):
        assert page.evaluate(STILL_LOADED), "the page reloaded instead of updating live"


FAILURE = "The server could not complete that request. Reload the page and try again."


def expect_failed(browsing: Any, url_part: str) -> None:
    """What a route made fail on purpose (the answer, htmx's and the console's word of
    it) is what the test expects, not an error of the page."""
    browsing.errors[:] = [
        error for error in browsing.errors
        if url_part not in error and "htmx:" not in error
        and "Failed to load resource" not in error
    ]  # fmt: skip


@pytest.mark.parametrize("failure", ["404", "500", "connection lost"])
def test_it_says_so_when_a_filter_gets_no_answer(
    release_day: Release, log_in: LogIn, browsing: Any, failure: str
) -> None:
    qa = open_live(log_in("qa"), board_url(release_day))
    filtered = re.compile(r".*\?show=pending$")

    def answer(route: Any) -> None:
        if failure == "connection lost":
            route.abort("connectionreset")
        else:
            route.fulfill(status=int(failure), body="", content_type="text/html")

    qa.route(filtered, answer)
    qa.get_by_role("link", name="Pending", exact=True).click()

    expect(qa.locator("#messages .message--error")).to_have_text(FAILURE)
    # Nothing was swapped: the whole checklist is still there, the filter not applied.
    expect(qa.locator("#board")).not_to_have_class(re.compile("show-pending"))
    expect(checkbox(qa, UNIT_TESTS)).to_be_visible()
    assert qa.evaluate(STILL_LOADED), "the page reloaded instead of saying so"
    expect_failed(browsing, "show=pending")


def test_it_says_so_when_a_tick_gets_no_answer(
    release_day: Release, log_in: LogIn, browsing: Any
) -> None:
    qa = open_live(log_in("qa"), board_url(release_day))
    qa.route(re.compile(r".*/items/\d+/$"), lambda route: route.fulfill(status=500, body=""))

    checkbox(qa, UNIT_TESTS).check()

    expect(qa.locator("#messages .message--error")).to_have_text(FAILURE)
    assert item(release_day, UNIT_TESTS).state == ItemState.PENDING
    expect_failed(browsing, "/items/")


def test_a_board_logged_out_elsewhere_goes_to_the_login_form_on_its_next_click(
    release_day: Release, log_in: LogIn
) -> None:
    qa = open_live(log_in("qa"), board_url(release_day))
    other_tab = qa.context.new_page()
    other_tab.goto(status_url(release_day))
    other_tab.get_by_role("button", name="Log out", exact=True).click()
    expect(qa.locator("#live-indicator")).to_have_attribute("data-state", "revoked")

    qa.get_by_role("link", name="Pending", exact=True).click()

    # The whole page goes, and comes back to the board after logging in; the login form
    # is not swapped into the checklist.
    expect(qa).to_have_url(re.compile(r"/accounts/login/\?next=/releases/v1\.0\.0/$"))
    expect(qa.locator("#board")).to_have_count(0)
