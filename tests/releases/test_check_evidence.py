"""What the board, the status page, live updates and the go/no-go reasons make of an
automated check's results: a check that could not judge reads "not verified", never
"failed"; and a check's evidence is shown in each viewer's language.

Results are recorded as the worker records them, through workflow.record_check_results,
with their evidence as a message and its values (releases.evidence.Said).
"""

from __future__ import annotations

import re
from typing import Any

import pytest
from django.test import Client
from django.urls import reverse
from django.utils.translation import gettext_noop

from releases import workflow
from releases.actors import CheckActor, PipelineActor
from releases.board import load_snapshot, render_update, viewer_for
from releases.evidence import Said, said
from releases.models import (
    AuditAction,
    CheckOutcome,
    CheckReason,
    ItemState,
    Release,
    ReleaseItem,
    blocking_reasons,
)
from tests.conftest import item

QA_ITEM = "Unit tests pass"
UNREACHABLE = said(
    gettext_noop("the worker cannot reach %(host)s (%(why)s)"),
    host="api.openai.com",
    why=said(gettext_noop("name does not resolve")),
)
UNREACHABLE_TEXT = "the worker cannot reach api.openai.com (name does not resolve)"


@pytest.fixture
def linked(release: Release) -> Release:
    release.items.filter(text=QA_ITEM).update(checks=["api"])
    return release


def record(release: Release, outcome: str, reason: str, evidence: Said) -> None:
    workflow.record_check_results(
        release.pk,
        [
            workflow.CheckFinding(
                CheckActor("api", 1),
                outcome,
                reason,
                evidence.english(),
                12,
                said=evidence.as_json(),
            )
        ],
    )


def unreachable(release: Release) -> None:
    record(release, CheckOutcome.ERROR, CheckReason.UNREACHABLE, UNREACHABLE)


def reasons_of(release: Release) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for reason in blocking_reasons(release):
        found.setdefault(reason.code, []).append(reason.message)
    return found


def client_in(language: str, user: Any) -> Client:
    client = Client(headers={"Accept-Language": language})
    client.force_login(user)
    return client


def row_of(html: str, entry: ReleaseItem) -> str:
    start = html.index(f'<li id="item-{entry.pk}"')
    end = html.find('<li id="item-', start + 1)
    return html[start : end if end != -1 else len(html)]


def board_row(release: Release, user: Any, language: str = "en") -> str:
    html = client_in(language, user).get(reverse("releases:board", args=[release.version]))
    return row_of(html.content.decode(), item(release, QA_ITEM))


# --- not verified -----------------------------------------------------------------------------


def test_it_leaves_a_pending_item_pending_when_its_check_could_not_judge(
    linked: Release,
) -> None:
    unreachable(linked)

    entry = item(linked, QA_ITEM)
    assert (entry.state, entry.reason, entry.check_failure) == (ItemState.PENDING, "", "")
    assert entry.check_results["api"]["outcome"] == "error"
    assert not linked.audit_events.filter(action=AuditAction.CHECK_FAILED).exists()
    reasons = reasons_of(linked)
    assert reasons["not-verified"] == [f"Not verified: “{QA_ITEM}” (QA Lead) — {UNREACHABLE_TEXT}"]
    assert not any(QA_ITEM in message for message in reasons.get("item-open", []))


def test_it_takes_back_a_tick_a_check_gave_once_the_check_cannot_judge(
    linked: Release,
) -> None:
    record(linked, CheckOutcome.PASS, CheckReason.OK, said(gettext_noop("HTTP 200")))
    assert item(linked, QA_ITEM).state == ItemState.DONE

    unreachable(linked)

    entry = item(linked, QA_ITEM)
    assert (entry.state, entry.changed_by_label) == (ItemState.PENDING, "check:api")
    event = linked.audit_events.latest("pk")
    assert (event.action, event.before["state"], event.after["state"]) == (
        AuditAction.CHECK_NOT_VERIFIED,
        "done",
        "pending",
    )


def test_it_still_fails_an_item_whose_check_could_not_judge_beside_one_that_failed(
    release: Release,
) -> None:
    release.items.filter(text=QA_ITEM).update(checks=["api", "db"])
    unreachable(release)
    workflow.record_check_results(
        release.pk, [workflow.CheckFinding(CheckActor("db", 1), "fail", "misconfigured", "red")]
    )

    entry = item(release, QA_ITEM)
    # Only what was judged is the failure; the other check is not verified, not failing.
    assert (entry.state, entry.reason) == (ItemState.FAILED, "db: red")


def test_it_keeps_a_persons_tick_beside_a_check_that_could_not_judge_and_blocks_approval(
    ready_release: Release, users: dict[str, Any]
) -> None:
    ready_release.items.filter(text=QA_ITEM).update(checks=["api"])

    unreachable(ready_release)

    entry = item(ready_release, QA_ITEM)
    assert (entry.state, entry.changed_by) == (ItemState.DONE, users["qa"])
    assert entry.check_failure == UNREACHABLE_TEXT
    event = ready_release.audit_events.latest("pk")
    assert (event.action, event.after) == (
        AuditAction.CHECK_NOT_VERIFIED,
        {"check_failure": UNREACHABLE_TEXT},
    )
    reasons = reasons_of(ready_release)
    assert "check-failed" not in reasons
    assert reasons["not-verified"] == [f"Not verified: “{QA_ITEM}” (QA Lead) — {UNREACHABLE_TEXT}"]
    with pytest.raises(workflow.WorkflowError, match="Not verified: “Unit tests pass”"):
        workflow.approve(ready_release, by=users["po"])


def test_the_board_reads_not_verified_where_a_check_could_not_judge(
    linked: Release, users: dict[str, Any]
) -> None:
    unreachable(linked)

    row = board_row(linked, users["qa"])

    assert '<span class="badge badge--pending">Pending</span>' in row
    assert '<span class="badge badge--unverified">not verified</span>' in row
    assert f"<strong>Not verified:</strong> {UNREACHABLE_TEXT}</p>" in row
    assert '<span class="check__reason">unreachable from the worker</span>' in row
    assert "Failed" not in row
    assert "Automated check failing" not in row


def test_the_board_reads_not_verified_beside_a_persons_tick(
    linked: Release, users: dict[str, Any]
) -> None:
    workflow.tick(item(linked, QA_ITEM), by=users["qa"])

    unreachable(linked)

    row = board_row(linked, users["qa"])
    assert '<span class="badge badge--done">Done</span>' in row
    assert f"<strong>Not verified:</strong> {UNREACHABLE_TEXT}</p>" in row
    assert "Automated check failing" not in row


def test_the_status_page_lists_a_check_that_could_not_judge_as_not_verified(
    linked: Release, users: dict[str, Any]
) -> None:
    unreachable(linked)

    html = client_in("en", users["support"]).get(reverse("releases:status", args=[linked.version]))

    page = html.content.decode()
    assert f"<li>Not verified: “{QA_ITEM}” (QA Lead) — {UNREACHABLE_TEXT}</li>" in page
    assert "Failed:" not in page


# --- in the viewer's language -----------------------------------------------------------------

# A message the catalogue already translates, standing in for a check's evidence: the
# checks' own messages have no Spanish yet, so with one of them both languages would read
# the same English. What this proves is that the stored message is translated when a page
# is rendered, for each viewer, values and all; not what any check says in Spanish.
EVIDENCE = said(gettext_noop("%(field)s is not a number."), field="latency_ms")
IN_ENGLISH = "latency_ms is not a number."
IN_SPANISH = "latency_ms no es un número."


@pytest.fixture
def failed(linked: Release) -> Release:
    record(linked, CheckOutcome.FAIL, CheckReason.MISCONFIGURED, EVIDENCE)
    entry = item(linked, QA_ITEM)
    # Stored in English, whoever reads it later.
    assert (entry.state, entry.reason) == (ItemState.FAILED, IN_ENGLISH)
    return linked


def test_the_board_shows_a_checks_evidence_and_failure_in_the_viewers_language(
    failed: Release, users: dict[str, Any]
) -> None:
    # English first: a row rendered for one language must not be served to the other.
    english = board_row(failed, users["qa"], "en")
    spanish = board_row(failed, users["qa"], "es")

    assert f'<span class="check__evidence">{IN_ENGLISH}</span>' in english
    assert f"<strong>Reason:</strong> {IN_ENGLISH}</p>" in english
    assert f'<span class="check__evidence">{IN_SPANISH}</span>' in spanish
    assert f"{IN_SPANISH}</p>" in spanish
    assert IN_ENGLISH not in spanish


def test_the_go_no_go_reasons_give_a_checks_failure_in_the_viewers_language(
    failed: Release, users: dict[str, Any]
) -> None:
    url = reverse("releases:status", args=[failed.version])

    english = client_in("en", users["support"]).get(url).content.decode()
    spanish = client_in("es", users["support"]).get(url).content.decode()

    assert re.search(
        rf"<li>Failed: “{QA_ITEM}” \(QA Lead\) — {re.escape(IN_ENGLISH)}</li>", english
    )
    assert re.search(rf"<li>[^<]*“{QA_ITEM}”[^<]*— {re.escape(IN_SPANISH)}</li>", spanish)


def test_a_live_update_gives_a_checks_evidence_in_the_viewers_language(
    failed: Release, users: dict[str, Any]
) -> None:
    shown = {
        language: render_update(
            load_snapshot(failed.pk), viewer_for(users["qa"], failed, language=language), "board", 0
        )[1]
        for language in ("en", "es")
    }

    assert f'<span class="check__evidence">{IN_ENGLISH}</span>' in shown["en"]
    assert f'<span class="check__evidence">{IN_SPANISH}</span>' in shown["es"]


# --- a failing check unlinked ------------------------------------------------------------------


def unlink(release: Release, users: dict[str, Any], keep: list[str]) -> ReleaseItem:
    entry = item(release, QA_ITEM)
    workflow.link_checks(
        release, checks_of={entry.pk: keep}, summary={"source": "checks.toml"}, by=users["admin"]
    )
    return item(release, QA_ITEM)


def test_unlinking_the_failing_check_takes_its_failure_back_to_pending(
    failed: Release, users: dict[str, Any]
) -> None:
    entry = unlink(failed, users, keep=[])

    assert (entry.state, entry.reason, entry.check_failure) == (ItemState.PENDING, "", "")
    event = failed.audit_events.get(action=AuditAction.CHECK_UNLINKED)
    assert event.target == QA_ITEM
    assert event.after["state"] == ItemState.PENDING
    # Nothing is left in English for a Spanish reader.
    assert IN_ENGLISH not in board_row(failed, users["qa"], "es")


def checked_twice(release: Release, web: str, evidence: Said) -> Release:
    """The item verified by two checks: "api" fails as EVIDENCE says, "web" ends `web`."""
    release.items.filter(text=QA_ITEM).update(checks=["api", "web"])
    workflow.record_check_results(
        release.pk,
        [
            workflow.CheckFinding(CheckActor("api", 1), CheckOutcome.FAIL,
                                  CheckReason.MISCONFIGURED, EVIDENCE.english(),
                                  said=EVIDENCE.as_json()),
            workflow.CheckFinding(CheckActor("web", 2), web, detail=evidence.english(),
                                  reason=CheckReason.OK if web == CheckOutcome.PASS
                                  else CheckReason.MISCONFIGURED, said=evidence.as_json()),
        ],
    )  # fmt: skip
    assert item(release, QA_ITEM).state == ItemState.FAILED
    return release


def test_unlinking_a_failing_check_never_ticks_an_item_whose_other_check_passes(
    release: Release, users: dict[str, Any]
) -> None:
    checked_twice(release, CheckOutcome.PASS, said(gettext_noop("answered 200")))

    entry = unlink(release, users, keep=["web"])

    assert (entry.state, entry.reason) == (ItemState.PENDING, "")


def test_what_another_check_still_finds_failing_stays(
    release: Release, users: dict[str, Any]
) -> None:
    checked_twice(release, CheckOutcome.FAIL, said("%(code)s from the health URL", code=503))

    entry = unlink(release, users, keep=["web"])

    assert entry.state == ItemState.FAILED
    assert "503 from the health URL" in entry.reason
    assert IN_ENGLISH not in entry.reason


def test_what_another_check_still_finds_reads_in_the_readers_language(
    release: Release, users: dict[str, Any]
) -> None:
    release.items.filter(text=QA_ITEM).update(checks=["api", "web"])
    workflow.record_check_results(
        release.pk,
        [
            workflow.CheckFinding(CheckActor(name, pk), CheckOutcome.FAIL,
                                  CheckReason.MISCONFIGURED, EVIDENCE.english(),
                                  said=EVIDENCE.as_json())
            for name, pk in (("api", 1), ("web", 2))
        ],
    )  # fmt: skip

    unlink(release, users, keep=["web"])

    spanish = board_row(release, users["qa"], "es")
    assert IN_SPANISH in spanish
    assert IN_ENGLISH not in spanish


def test_a_failure_kept_beside_a_persons_tick_goes_with_its_check_and_the_override_too(
    failed: Release, users: dict[str, Any]
) -> None:
    entry = item(failed, QA_ITEM)
    workflow.tick(entry, by=users["qa"], override_reason="Known flake, tracked in QA-12")
    assert item(failed, QA_ITEM).override_reason

    entry = unlink(failed, users, keep=[])

    assert (entry.state, entry.check_failure, entry.override_reason) == (ItemState.DONE, "", "")
    assert failed.audit_events.filter(action=AuditAction.CHECK_OVERRIDE_CLEARED).exists()


def test_a_pipelines_failure_stays_when_the_items_check_is_unlinked(
    linked: Release, users: dict[str, Any]
) -> None:
    workflow.record_pipeline_evidence(
        item(linked, QA_ITEM),
        by=PipelineActor("ci", "qa", 1),
        passed=False,
        detail="3 tests failed",
    )

    entry = unlink(linked, users, keep=[])

    assert (entry.state, entry.reason) == (ItemState.FAILED, "3 tests failed")
    assert not linked.audit_events.filter(action=AuditAction.CHECK_UNLINKED).exists()
