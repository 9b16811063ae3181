"""A tick over a failing automated check: allowed only with a reason, shown as such, and
named by the go-live approval given over it.

The personas are the conftest's: `qa` owns the QA item, which an automated check named
"ci" verifies; `devops` owns other items; `po` approves; `admin` (staff) may override.
"""

from __future__ import annotations

import re
from typing import Any

import pytest
from django.core.exceptions import PermissionDenied
from django.test import Client
from django.urls import reverse

from releases import workflow
from releases.models import AuditAction, ItemState, Release, ReleaseItem, blocking_reasons
from releases.workflow import WorkflowError
from tests.conftest import item
from tests.releases.test_workflow import events_since, fingerprint, last_event_id

QA_ITEM = "Unit tests pass"
RED = "3 tests failed"
WHY = "Known flaky suite; ran it by hand, all green"


@pytest.fixture
def ci_linked(release: Release) -> Release:
    """The QA item is verified by an automated check named "ci"."""
    release.items.filter(text=QA_ITEM).update(checks=["ci"])
    return release


@pytest.fixture
def failed(ci_linked: Release) -> Release:
    """The check failed the QA item before anyone ticked it."""
    workflow.record_check_result(item(ci_linked, QA_ITEM), check="ci", passed=False, detail=RED)
    return ci_linked


@pytest.fixture
def ready_but_red(ready_release: Release) -> Release:
    """Everything settled and signed, but the check on the QA lead's tick now fails."""
    ready_release.items.filter(text=QA_ITEM).update(checks=["ci"])
    workflow.record_check_result(item(ready_release, QA_ITEM), check="ci", passed=False, detail=RED)
    ready_release.refresh_from_db()
    return ready_release


def codes(release: Release) -> set[str]:
    return {reason.code for reason in blocking_reasons(release)}


def override_fields(entry: ReleaseItem) -> tuple[str, str, str, bool]:
    return (
        entry.override_reason,
        entry.override_failure,
        entry.overridden_by_label,
        entry.overridden_at is not None,
    )


NO_OVERRIDE = ("", "", "", False)


# --- the workflow ------------------------------------------------------------------------


def test_it_refuses_a_tick_over_a_failing_check_without_a_reason(
    failed: Release, users: dict[str, Any]
) -> None:
    before = fingerprint(failed)

    with pytest.raises(WorkflowError) as refused:
        workflow.tick(item(failed, QA_ITEM), by=users["qa"])

    assert refused.value.message == (
        f"The automated check of “{QA_ITEM}” is failing ({RED}): say why you tick it "
        "anyway, or fix what fails. Go-live approval will name your reason."
    )
    assert fingerprint(failed) == before


@pytest.mark.parametrize(
    ("reason", "message"),
    [
        ("   ", "say why you tick it anyway"),
        ("flaky\u202e", "The override reason contains invisible bidirectional control"),
        ("x" * 2001, "The override reason is longer than 2000 characters."),
    ],
)
def test_it_refuses_an_override_reason_people_could_not_read_as_written(
    failed: Release, users: dict[str, Any], reason: str, message: str
) -> None:
    before = fingerprint(failed)

    with pytest.raises(WorkflowError) as refused:
        workflow.tick(item(failed, QA_ITEM), by=users["qa"], override_reason=reason)

    assert message in refused.value.message
    assert fingerprint(failed) == before


def test_it_ticks_over_a_failing_check_with_a_reason_and_audits_both(
    failed: Release, users: dict[str, Any]
) -> None:
    last = last_event_id()

    workflow.tick(item(failed, QA_ITEM), by=users["qa"], override_reason=f"  {WHY} ")

    entry = item(failed, QA_ITEM)
    assert (entry.state, entry.reason, entry.check_failure) == (ItemState.DONE, "", RED)
    assert override_fields(entry) == (WHY, RED, "qa (QA)", True)
    assert entry.overridden
    events = events_since(last)
    assert [(e.action, e.target, e.actor_label, e.override) for e in events] == [
        (AuditAction.ITEM_DONE, QA_ITEM, "qa (QA)", False),
        (AuditAction.CHECK_OVERRIDDEN, QA_ITEM, "qa (QA)", False),
    ]
    assert events[1].after == {"reason": WHY, "check_failure": RED}
    assert not codes(failed) & {"item-blocked", "check-failed"}


def test_it_lets_only_the_owner_or_staff_tick_over_a_failing_check(
    failed: Release, users: dict[str, Any]
) -> None:
    before = fingerprint(failed)

    with pytest.raises(PermissionDenied):
        workflow.tick(item(failed, QA_ITEM), by=users["devops"], override_reason=WHY)

    assert fingerprint(failed) == before
    last = last_event_id()
    workflow.tick(item(failed, QA_ITEM), by=users["admin"], override_reason=WHY)
    assert [(e.action, e.override) for e in events_since(last)] == [
        (AuditAction.ITEM_DONE, True),
        (AuditAction.CHECK_OVERRIDDEN, True),
    ]


def test_it_treats_a_failure_beside_a_persons_na_as_failing_when_they_tick(
    ci_linked: Release, users: dict[str, Any]
) -> None:
    workflow.mark_not_applicable(item(ci_linked, QA_ITEM), by=users["qa"], reason="No suite")
    workflow.record_check_result(item(ci_linked, QA_ITEM), check="ci", passed=False, detail=RED)

    with pytest.raises(WorkflowError):
        workflow.tick(item(ci_linked, QA_ITEM), by=users["qa"])
    workflow.tick(item(ci_linked, QA_ITEM), by=users["qa"], override_reason=WHY)

    entry = item(ci_linked, QA_ITEM)
    assert (entry.state, entry.check_failure, entry.overridden) == (ItemState.DONE, RED, True)


def test_it_blocks_approval_on_a_check_failing_after_a_tick_until_its_owner_overrides(
    ready_but_red: Release, users: dict[str, Any]
) -> None:
    message = f"Automated check failing on “{QA_ITEM}”: {RED}; override it with a reason or fix it"
    assert message in [reason.message for reason in blocking_reasons(ready_but_red)]
    with pytest.raises(WorkflowError, match="override it with a reason"):
        workflow.approve(ready_but_red, by=users["po"])
    with pytest.raises(WorkflowError, match="say why you tick it anyway"):
        workflow.tick(item(ready_but_red, QA_ITEM), by=users["qa"])
    last = last_event_id()

    workflow.tick(item(ready_but_red, QA_ITEM), by=users["qa"], override_reason=WHY)

    entry = item(ready_but_red, QA_ITEM)
    assert (entry.state, entry.changed_by, entry.overridden) == (ItemState.DONE, users["qa"], True)
    assert [e.action for e in events_since(last)] == [AuditAction.CHECK_OVERRIDDEN]
    assert "check-failed" not in codes(ready_but_red)
    assert workflow.approve(ready_but_red, by=users["po"]).overrides


def test_it_keeps_the_override_while_the_check_fails_the_same_way(
    ready_but_red: Release, users: dict[str, Any]
) -> None:
    workflow.tick(item(ready_but_red, QA_ITEM), by=users["qa"], override_reason=WHY)

    workflow.record_check_result(item(ready_but_red, QA_ITEM), check="ci", passed=False, detail=RED)

    assert item(ready_but_red, QA_ITEM).overridden
    assert "check-failed" not in codes(ready_but_red)


def test_it_ends_the_override_when_the_check_passes(
    ready_but_red: Release, users: dict[str, Any]
) -> None:
    workflow.tick(item(ready_but_red, QA_ITEM), by=users["qa"], override_reason=WHY)
    last = last_event_id()

    workflow.record_check_result(item(ready_but_red, QA_ITEM), check="ci", passed=True)

    entry = item(ready_but_red, QA_ITEM)
    assert (entry.state, entry.check_failure) == (ItemState.DONE, "")
    assert override_fields(entry) == NO_OVERRIDE
    ended = [
        (e.action, e.actor_label, e.before, e.after)
        for e in events_since(last)
        if e.action == AuditAction.CHECK_OVERRIDE_CLEARED
    ]
    assert ended == [
        (
            AuditAction.CHECK_OVERRIDE_CLEARED,
            "check:ci",
            {"reason": WHY, "check_failure": RED, "by": "qa (QA)"},
            {"check_failure": ""},
        )
    ]
    # The same failure coming back is not covered by an override that ended.
    workflow.record_check_result(item(ready_but_red, QA_ITEM), check="ci", passed=False, detail=RED)
    assert "check-failed" in codes(ready_but_red)


def test_it_ends_the_override_when_the_check_fails_differently(
    ready_but_red: Release, users: dict[str, Any]
) -> None:
    workflow.tick(item(ready_but_red, QA_ITEM), by=users["qa"], override_reason=WHY)

    workflow.record_check_result(
        item(ready_but_red, QA_ITEM), check="ci", passed=False, detail="40 tests failed"
    )

    entry = item(ready_but_red, QA_ITEM)
    assert (entry.state, entry.check_failure) == (ItemState.DONE, "40 tests failed")
    assert override_fields(entry) == NO_OVERRIDE
    assert ready_but_red.audit_events.filter(action=AuditAction.CHECK_OVERRIDE_CLEARED).exists()
    assert "check-failed" in codes(ready_but_red)


def test_it_ends_the_override_when_the_item_is_unticked(
    failed: Release, users: dict[str, Any]
) -> None:
    workflow.tick(item(failed, QA_ITEM), by=users["qa"], override_reason=WHY)
    last = last_event_id()

    workflow.untick(item(failed, QA_ITEM), by=users["qa"])

    entry = item(failed, QA_ITEM)
    assert (entry.state, entry.check_failure) == (ItemState.PENDING, "")
    assert override_fields(entry) == NO_OVERRIDE
    assert [e.action for e in events_since(last)] == [
        AuditAction.ITEM_REOPENED,
        AuditAction.CHECK_OVERRIDE_CLEARED,
    ]


def test_it_names_every_override_in_the_approval_and_its_audit_event(
    ready_but_red: Release, users: dict[str, Any]
) -> None:
    workflow.tick(item(ready_but_red, QA_ITEM), by=users["qa"], override_reason=WHY)
    last = last_event_id()

    approval = workflow.approve(ready_but_red, by=users["po"])

    approval.refresh_from_db()
    assert len(approval.overrides) == 1
    [named] = approval.overrides
    assert {key: named[key] for key in ("text", "role", "failure", "reason", "by")} == {
        "text": QA_ITEM,
        "role": "qa",
        "failure": RED,
        "reason": WHY,
        "by": "qa (QA)",
    }
    assert named["at"]
    [event] = events_since(last)
    assert event.action == AuditAction.RELEASE_APPROVED
    assert event.after["overrides"] == approval.overrides


def test_it_revokes_the_approval_when_an_override_it_named_ends_in_a_new_failure(
    ready_but_red: Release, users: dict[str, Any]
) -> None:
    workflow.tick(item(ready_but_red, QA_ITEM), by=users["qa"], override_reason=WHY)
    workflow.approve(ready_but_red, by=users["po"])

    workflow.record_check_result(
        item(ready_but_red, QA_ITEM), check="ci", passed=False, detail="40 tests failed"
    )

    ready_but_red.refresh_from_db()
    assert ready_but_red.active_approval() is None
    assert ready_but_red.status == "in_progress"


# --- the board and the status page -------------------------------------------------------


def client_of(users: dict[str, Any], persona: str) -> Client:
    client = Client(headers={"Accept-Language": "en"})
    client.force_login(users[persona])
    return client


def row_of(html: str, entry: ReleaseItem) -> str:
    start = html.index(f'<li id="item-{entry.pk}"')
    end = html.find('<li id="item-', start + 1)
    return html[start : end if end != -1 else len(html)]


def checkbox(row: str, entry: ReleaseItem) -> str:
    match = re.search(rf'<input type="checkbox"[^>]*id="tick-{entry.pk}"[^>]*>', row)
    assert match, f"no checkbox for {entry.text}"
    return match.group(0)


def gonogo_of(html: str) -> str:
    start = html.index('<section id="gonogo-panel"')
    return html[start : html.index("</section>", start)]


def board(release: Release, users: dict[str, Any], persona: str) -> str:
    url = reverse("releases:board", args=[release.version])
    return client_of(users, persona).get(url).content.decode()


def post_item(client: Client, entry: ReleaseItem, **data: Any) -> Any:
    url = reverse("releases:item", args=[entry.release.version, entry.pk])
    return client.post(url, {"version": entry.version, **data})


def test_it_asks_for_a_reason_on_the_row_instead_of_a_plain_tick(
    failed: Release, users: dict[str, Any]
) -> None:
    entry = item(failed, QA_ITEM)

    row = row_of(board(failed, users, "qa"), entry)

    assert checkbox(row, entry).endswith(" disabled>")
    assert '<input type="hidden" name="action" value="override">' in row
    assert f'<label for="override-{entry.pk}">Tick it over the failing check, because…</label>' in (
        row
    )
    assert f'id="override-{entry.pk}" name="reason" required maxlength="2000"' in row
    # Someone who may not override sees the failure, but no form to go past it.
    assert 'value="override"' not in row_of(board(failed, users, "devops"), entry)


def test_it_ticks_over_the_failing_check_from_the_row_without_javascript(
    failed: Release, users: dict[str, Any]
) -> None:
    client = client_of(users, "qa")
    entry = item(failed, QA_ITEM)

    refused = post_item(client, entry, action="override", reason="")
    assert item(failed, QA_ITEM).state == ItemState.FAILED
    response = post_item(client, entry, action="override", reason=WHY)

    assert refused.status_code == 422
    assert "say why you tick it anyway" in refused.content.decode()
    assert response.status_code == 302
    assert response["Location"].endswith(f"#item-{entry.pk}")
    entry = item(failed, QA_ITEM)
    assert (entry.state, entry.override_reason) == (ItemState.DONE, WHY)


def test_it_refuses_the_plain_tick_of_a_failing_item_from_the_board(
    failed: Release, users: dict[str, Any]
) -> None:
    entry = item(failed, QA_ITEM)
    before = fingerprint(failed)

    response = client_of(users, "qa").post(
        reverse("releases:item", args=[failed.version, entry.pk]),
        {"version": entry.version, "action": "tick"},
        headers={"HX-Request": "true"},
    )

    assert response.status_code == 422
    assert "say why you tick it anyway" in response.content.decode()
    assert fingerprint(failed) == before


def test_it_shows_overridden_beside_the_failure_on_the_board(
    failed: Release, users: dict[str, Any]
) -> None:
    workflow.tick(item(failed, QA_ITEM), by=users["qa"], override_reason=WHY)
    entry = item(failed, QA_ITEM)

    html = board(failed, users, "qa")

    row = row_of(html, entry)
    assert '<span class="badge badge--override">Overridden</span>' in row
    assert '<span class="badge badge--done">' not in row
    assert f"<strong>Automated check failing:</strong> {RED}" in row
    assert '<span class="badge badge--override">overridden</span>' in row
    assert "Ticked over the failing check by qa (QA)" in row
    assert WHY in row
    assert 'value="override"' not in row
    panel = gonogo_of(html)
    assert "Go-live would be approved over these failing checks" in panel
    assert f"“{QA_ITEM}” (QA Lead): {RED}" in panel
    assert WHY in panel


def test_it_offers_the_owner_the_override_of_a_tick_a_check_failed_since(
    ready_but_red: Release, users: dict[str, Any]
) -> None:
    entry = item(ready_but_red, QA_ITEM)

    row = row_of(board(ready_but_red, users, "qa"), entry)

    assert checkbox(row, entry).endswith(" checked>")
    assert (
        f'<label for="override-{entry.pk}">Keep the tick over the failing check, because…</label>'
        in row
    )


def test_it_shows_the_override_and_its_reason_on_the_status_page(
    failed: Release, users: dict[str, Any]
) -> None:
    workflow.tick(item(failed, QA_ITEM), by=users["qa"], override_reason=WHY)

    url = reverse("releases:status", args=[failed.version])
    html = client_of(users, "support").get(url).content.decode()

    panel = gonogo_of(html)
    assert '<span class="badge badge--override">overridden</span>' in panel
    assert f"“{QA_ITEM}” (QA Lead): {RED}" in panel
    assert WHY in panel
    assert "(qa (QA) · <time" in panel


def test_it_shows_the_overrides_an_approval_was_given_over(
    ready_but_red: Release, users: dict[str, Any]
) -> None:
    workflow.tick(item(ready_but_red, QA_ITEM), by=users["qa"], override_reason=WHY)
    workflow.approve(ready_but_red, by=users["po"])
    ready_but_red.refresh_from_db()

    panel = gonogo_of(board(ready_but_red, users, "po"))

    assert "Go-live approved" in panel
    assert "Approved over these failing checks" in panel
    assert f"“{QA_ITEM}” (QA Lead): {RED}" in panel
    assert WHY in panel


def test_it_lists_the_override_in_the_audit_trail(failed: Release, users: dict[str, Any]) -> None:
    workflow.tick(item(failed, QA_ITEM), by=users["qa"], override_reason=WHY)

    url = reverse("releases:audit", args=[failed.version])
    html = client_of(users, "qa").get(url, {"action": "check.overridden"}).content.decode()

    assert '<span title="check.overridden">Ticked over a failing check</span>' in html
    assert WHY in html
