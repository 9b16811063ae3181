"""The release board and the status page, as each persona uses them.

Every action is tried as a plain form POST (no JavaScript: redirect back with a message)
and as an htmx request (the changed fragments, out of band, with a status saying what
happened). The personas are the conftest's: one person per role on `release`, `support`
who only watches, `outsider` who holds no role and `admin` (staff) who may override.
"""

from __future__ import annotations

import re
import secrets
from dataclasses import replace
from datetime import timedelta
from html.parser import HTMLParser
from typing import Any

import pytest
from django.contrib import messages
from django.contrib.messages import get_messages
from django.db import connection
from django.template.loader import render_to_string
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone, translation
from django.utils.formats import date_format
from django.utils.html import escape
from django.utils.timezone import localtime

from releases import workflow
from releases.actors import standing
from releases.board import (
    Typed,
    Viewer,
    board_context,
    load_snapshot,
    render_update,
    row_html,
    row_renders,
    viewer_for,
)
from releases.models import (
    ActorKind,
    AuditEvent,
    ChecklistTemplate,
    GoLiveApproval,
    ItemState,
    Release,
    ReleaseItem,
    Role,
    ShareLink,
    SignOff,
    TemplateItem,
    TemplateRollbackStep,
    blocking_reasons,
)
from releases.pages import BODY_SLOT, CSRF_PLACEHOLDER, compacted, pages
from releases.policy import Who
from releases.views import FILTERS
from tests.conftest import PERSONAS, item

QA_ITEM = "Unit tests pass"
BACKEND_ITEM = "Merge everything"
HTMX = {"HX-Request": "true"}
# One <li> row per item; what the tick checkbox is called is its <label for>'s text.
ROW = re.compile(r'<li id="item-(\d+)"')
LABEL = re.compile(r'<label class="item__text" for="tick-(\d+)">(.*?)</label>', re.S)
# A button while something blocks; a link to the confirmation page once nothing does.
APPROVE = re.compile(r"<(?:button|a)[^>]*>Approve go-live</(?:button|a)>", re.S)
# What every live update and every htmx answer carries, by DOM id.
PANELS = ("approval-banner", "release-status", "gonogo-panel", "progress-panel", "signoff-panel")
INDICATOR = re.compile(
    r'<span id="live-indicator" class="live-indicator" role="status" aria-live="polite"'
    r'\s+data-label-live="Live"'
)


def board_url(release: Release) -> str:
    return reverse("releases:board", args=[release.version])


def item_url(release: Release, entry: ReleaseItem) -> str:
    return reverse("releases:item", args=[release.version, entry.pk])


def post_item(
    client: Client,
    release: Release,
    entry: ReleaseItem,
    action: str,
    *,
    htmx: bool = False,
    **fields: str,
) -> Any:
    data: dict[str, Any] = {"action": action, "version": entry.version, **fields}
    return client.post(item_url(release, entry), data, headers=HTMX if htmx else {})


def found(pattern: re.Pattern[str], html: str) -> str:
    match = pattern.search(html)
    assert match, f"{pattern.pattern} not in the page"
    return match.group(0)


def messages_of(response: Any) -> list[str]:
    return [str(message) for message in get_messages(response.wsgi_request)]


def told_as_information(response: Any, *, htmx: bool) -> list[str]:
    """The messages an answer gives as information rather than as a success or an error."""
    if htmx:
        return re.findall(r'<p class="message message--info">(.*?)</p>', response.content.decode())
    return [str(m) for m in get_messages(response.wsgi_request) if m.level == messages.INFO]


def field_of(html: str, action: str, entry: ReleaseItem) -> str:
    """The field of the item's `action` form (note, na, …): its tag, and a textarea's text."""
    key = f'id="{action}-{entry.pk}"'
    match = re.search(rf"<textarea {key}[^>]*>.*?</textarea>|<input [^>]*{key}[^>]*>", html, re.S)
    assert match, f"no {action} field for {entry.text}"
    return match.group(0)


def checkbox(html: str, entry: ReleaseItem) -> str:
    match = re.search(rf'<input type="checkbox"[^>]*id="tick-{entry.pk}"[^>]*>', html)
    assert match, f"no checkbox for {entry.text}"
    return match.group(0)


# --- the board as a page ---------------------------------------------------------------


def test_it_renders_the_board_as_a_full_page(as_user: Any, release: Release) -> None:
    response = as_user("qa").get(board_url(release))

    html = response.content.decode()
    assert response.status_code == 200
    assert html.startswith("<!doctype html>")
    live = reverse("releases:live", args=[release.version])
    poll = reverse("releases:live-poll", args=[release.version])
    assert f'<div id="live" class="live" data-live-url="{live}" data-poll-url="{poll}"' in html
    assert f'data-revision="{release.revision}"' in html
    assert 'data-page="board"' in html
    assert INDICATOR.search(html)
    assert sorted(map(int, ROW.findall(html))) == sorted(release.items.values_list("pk", flat=True))
    for panel in (*PANELS, "board", "messages"):
        assert f'id="{panel}"' in html
    # The no-JavaScript fallback posts a form, so full pages carry the CSRF field.
    assert 'name="csrfmiddlewaretoken"' in html


def test_it_names_each_checkbox_by_exactly_the_item_text(as_user: Any, release: Release) -> None:
    html = as_user("qa").get(board_url(release)).content.decode()

    labels = {int(pk): text for pk, text in LABEL.findall(html)}
    assert labels == dict(release.items.values_list("pk", "text"))
    row = html[html.index(f'id="item-{item(release, QA_ITEM).pk}"') :]
    assert re.search(r'<input type="checkbox"[^>]*id="tick-\d+"', row)


def test_it_renders_only_the_checklist_for_an_htmx_filter_request(
    as_user: Any, release: Release
) -> None:
    response = as_user("qa").get(
        board_url(release) + "?show=mine", headers={**HTMX, "HX-Target": "board"}
    )

    html = response.content.decode()
    assert response.status_code == 200
    assert "<html" not in html
    assert html.lstrip().startswith('<section id="board" class="board show-mine"')
    assert f'id="item-{item(release, QA_ITEM).pk}" class="item mine"' in html
    assert f'id="item-{item(release, BACKEND_ITEM).pk}" class="item"' in html
    assert "HX-Request" in response["Vary"]


def test_it_gives_other_htmx_requests_the_whole_page(as_user: Any, release: Release) -> None:
    html = as_user("qa").get(board_url(release), headers=HTMX).content.decode()

    assert html.startswith("<!doctype html>")


@pytest.mark.parametrize("show", ["", "mine", "pending", "blocked"])
def test_it_marks_the_filter_on_the_board_container(
    as_user: Any, release: Release, show: str
) -> None:
    html = as_user("qa").get(board_url(release), {"show": show}).content.decode()

    expected = f'class="board show-{show}"' if show else 'class="board"'
    assert expected in html


def test_it_ignores_an_unknown_filter(as_user: Any, release: Release) -> None:
    html = as_user("qa").get(board_url(release), {"show": "<script>"}).content.decode()

    assert 'class="board"' in html
    assert "show-<script>" not in html and "show-&lt;script" not in html


def test_it_hides_the_board_from_outsiders_and_sends_anonymous_people_to_log_in(
    as_user: Any, release: Release
) -> None:
    assert as_user("outsider").get(board_url(release)).status_code == 404
    response = as_user(None).get(board_url(release))
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("login"))


def test_it_disables_checkboxes_the_viewer_cannot_change(as_user: Any, release: Release) -> None:
    qa_item, backend_item = item(release, QA_ITEM), item(release, BACKEND_ITEM)

    qa_html = as_user("qa").get(board_url(release)).content.decode()
    support_html = as_user("support").get(board_url(release)).content.decode()
    admin_html = as_user("admin").get(board_url(release)).content.decode()

    assert "disabled" not in checkbox(qa_html, qa_item)
    assert "disabled" in checkbox(qa_html, backend_item)
    assert all("disabled" in checkbox(support_html, entry) for entry in release.items.all())
    assert all("disabled" not in checkbox(admin_html, entry) for entry in release.items.all())
    assert "You can follow this release but not change it." in support_html


# --- item actions ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("action", "fields", "expected", "message"),
    [
        ("tick", {}, {"state": ItemState.DONE}, "Marked “Unit tests pass” as done."),
        (
            "na",
            {"reason": "no unit tests here"},
            {"state": ItemState.NOT_APPLICABLE, "reason": "no unit tests here"},
            "Marked “Unit tests pass” as not applicable.",
        ),
        (
            "blocked",
            {"reason": "CI is down"},
            {"state": ItemState.BLOCKED, "reason": "CI is down"},
            "Marked “Unit tests pass” as blocked.",
        ),
        (
            "note",
            {"note": "ran twice"},
            {"note": "ran twice"},
            "Saved the note on “Unit tests pass”.",
        ),
        (
            "evidence",
            {"evidence_url": "https://ci.example.com/run/1"},
            {"evidence_url": "https://ci.example.com/run/1"},
            "Saved the evidence link on “Unit tests pass”.",
        ),
    ],
)
def test_it_applies_each_item_action_and_redirects_back_to_the_row(
    as_user: Any,
    release: Release,
    action: str,
    fields: dict[str, str],
    expected: dict[str, str],
    message: str,
) -> None:
    entry = item(release, QA_ITEM)

    response = post_item(as_user("qa"), release, entry, action, htmx=False, **fields)

    assert response.status_code == 302
    assert response["Location"] == f"{board_url(release)}#item-{entry.pk}"
    entry.refresh_from_db()
    assert {name: getattr(entry, name) for name in expected} == expected
    assert entry.version == 1
    assert messages_of(response) == [message]


def test_it_unticks_when_the_checkbox_is_cleared(
    as_user: Any, release: Release, users: dict[str, Any]
) -> None:
    entry = workflow.tick(item(release, QA_ITEM), by=users["qa"])

    # What an unchecked box's form submits: only the hidden "untick".
    response = as_user("qa").post(
        item_url(release, entry), {"action": "untick", "version": entry.version}
    )

    entry.refresh_from_db()
    assert response.status_code == 302
    assert entry.state == ItemState.PENDING


def test_it_ticks_when_the_checkbox_form_posts_both_actions(as_user: Any, release: Release) -> None:
    entry = item(release, QA_ITEM)

    as_user("qa").post(
        item_url(release, entry), {"action": ["untick", "tick"], "version": entry.version}
    )

    entry.refresh_from_db()
    assert entry.state == ItemState.DONE


# Each of an item's forms that may remove what the item holds, with what it holds before.
EMPTIED = {
    "note": ("note", "note", "flaky on Mondays"),
    "evidence link": ("evidence", "evidence_url", "https://ci.example.com/run/1"),
}


@pytest.mark.parametrize("emptied", ["", "   "], ids=["empty", "spaces"])
@pytest.mark.parametrize(("action", "field", "held"), EMPTIED.values(), ids=EMPTIED.keys())
def test_emptying_a_note_or_evidence_link_removes_it_and_says_so(
    as_user: Any,
    release: Release,
    users: dict[str, Any],
    action: str,
    field: str,
    held: str,
    emptied: str,
) -> None:
    entry = workflow.annotate_item(item(release, QA_ITEM), by=users["qa"], **{field: held})
    events = AuditEvent.objects.count()

    response = post_item(as_user("qa"), release, entry, action, **{field: emptied})

    entry.refresh_from_db()
    assert response.status_code == 302
    assert (getattr(entry, field), entry.version) == ("", 2)
    assert AuditEvent.objects.count() == events + 1
    what = {"note": "note", "evidence": "evidence link"}[action]
    assert messages_of(response) == [f"Removed the {what} on “Unit tests pass”."]


def test_a_removed_note_is_said_so_in_spanish(
    as_user: Any, release: Release, users: dict[str, Any]
) -> None:
    entry = workflow.annotate_item(item(release, QA_ITEM), by=users["qa"], note="ran twice")

    response = post_item(as_user("qa", "es"), release, entry, "note", note="")

    assert messages_of(response) == ["Nota de “Unit tests pass” eliminada."]


@pytest.mark.parametrize("htmx", [False, True], ids=["without JavaScript", "htmx"])
@pytest.mark.parametrize(("action", "field", "held"), EMPTIED.values(), ids=EMPTIED.keys())
def test_emptying_a_note_or_evidence_link_the_item_lacks_changes_nothing_and_says_so(
    as_user: Any, release: Release, action: str, field: str, held: str, htmx: bool
) -> None:
    entry = item(release, QA_ITEM)
    events, revision = AuditEvent.objects.count(), release.revision

    response = post_item(as_user("qa"), release, entry, action, htmx=htmx, **{field: " "})

    entry.refresh_from_db()
    release.refresh_from_db()
    assert response.status_code == (200 if htmx else 302)
    assert (entry.version, AuditEvent.objects.count(), release.revision) == (0, events, revision)
    what = {"note": "note", "evidence": "evidence link"}[action]
    message = f"“Unit tests pass” has no {what} to remove: nothing changed."
    assert told_as_information(response, htmx=htmx) == [message]


# An item's state, what asks for it again (the action and its reason) and how it is told.
ALREADY = {
    "pending": (ItemState.PENDING, "untick", "", "pending"),
    "done": (ItemState.DONE, "tick", "", "done"),
    "N/A for the same reason": (ItemState.NOT_APPLICABLE, "na", "no tests", "not applicable"),
}


@pytest.mark.parametrize("htmx", [False, True], ids=["without JavaScript", "htmx"])
@pytest.mark.parametrize(("state", "action", "reason", "label"), ALREADY.values(),
                         ids=ALREADY.keys())  # fmt: skip
def test_an_item_already_as_asked_changes_nothing_and_says_so(
    as_user: Any,
    release: Release,
    users: dict[str, Any],
    state: str,
    action: str,
    reason: str,
    label: str,
    htmx: bool,
) -> None:
    entry = item(release, QA_ITEM)
    if state != ItemState.PENDING:
        entry = workflow.set_item_state(entry, by=users["admin"], state=state, reason=reason)
        release.refresh_from_db()
    seen, events, revision = entry.version, AuditEvent.objects.count(), release.revision

    response = post_item(as_user("qa"), release, entry, action, htmx=htmx, reason=reason)

    entry.refresh_from_db()
    release.refresh_from_db()
    assert response.status_code == (200 if htmx else 302)
    assert (entry.state, entry.version) == (state, seen)
    assert (AuditEvent.objects.count(), release.revision) == (events, revision)
    message = f"“Unit tests pass” is already {label}: nothing changed."
    assert told_as_information(response, htmx=htmx) == [message]


def test_two_people_unticking_at_once_are_told_what_happened(
    as_user: Any, release: Release, users: dict[str, Any]
) -> None:
    entry = workflow.tick(item(release, QA_ITEM), by=users["qa"])
    loaded = entry.version
    first = post_item(as_user("admin"), release, entry, "untick")

    # One page still holds the version both loaded; one followed the first untick live.
    stale = as_user("qa").post(item_url(release, entry), {"action": "untick", "version": loaded})
    entry.refresh_from_db()
    current = post_item(as_user("qa"), release, entry, "untick")

    assert messages_of(first) == ["Reopened “Unit tests pass”."]
    assert "since you loaded the page" in messages_of(stale)[0]
    assert messages_of(current) == ["“Unit tests pass” is already pending: nothing changed."]
    entry.refresh_from_db()
    assert (entry.state, entry.version) == (ItemState.PENDING, loaded + 1)


def test_it_keeps_the_filter_when_redirecting_back(as_user: Any, release: Release) -> None:
    entry = item(release, QA_ITEM)
    referer = "http://testserver" + board_url(release) + "?show=mine"

    response = as_user("qa").post(
        item_url(release, entry),
        {"action": "tick", "version": entry.version},
        headers={"Referer": referer},
    )

    assert response["Location"] == f"{board_url(release)}?show=mine#item-{entry.pk}"


def test_it_answers_htmx_with_the_changed_row_the_panels_and_the_message(
    as_user: Any, release: Release
) -> None:
    entry, other = item(release, QA_ITEM), item(release, BACKEND_ITEM)

    response = post_item(as_user("qa"), release, entry, "tick", htmx=True)

    html = response.content.decode()
    assert response.status_code == 200
    assert "<html" not in html
    assert f'<li id="item-{entry.pk}" class="item mine"' in html
    assert 'data-state="done"' in html
    assert f'id="item-{other.pk}"' not in html
    for panel in PANELS:
        assert re.search(rf'id="{panel}"[^>]*hx-swap-oob="true"', html, re.S), panel
    assert 'id="messages"' in html and 'hx-swap-oob="innerHTML"' in html
    assert "Marked “Unit tests pass” as done." in html
    # Fragments are request-free: htmx sends the CSRF token as a header instead.
    assert "csrfmiddlewaretoken" not in html


@pytest.mark.parametrize("action", ["na", "blocked"])
def test_it_refuses_na_and_blocked_without_a_reason(
    as_user: Any, release: Release, action: str
) -> None:
    entry = item(release, QA_ITEM)
    client = as_user("qa")

    plain = post_item(client, release, entry, action, reason="  ")
    htmx = post_item(client, release, entry, action, htmx=True, reason="")

    entry.refresh_from_db()
    assert entry.state == ItemState.PENDING and entry.version == 0
    label = {"na": "not applicable", "blocked": "blocked"}[action]
    assert plain.status_code == 422
    assert messages_of(plain) == [f"Say why the item is {label}."]
    assert 'value="  " aria-invalid="true"' in field_of(plain.content.decode(), action, entry)
    assert htmx.status_code == 422
    assert f"Say why the item is {label}." in htmx.content.decode()
    assert f'id="item-{entry.pk}"' in htmx.content.decode()


def test_it_refuses_an_evidence_link_that_is_not_http(as_user: Any, release: Release) -> None:
    entry = item(release, QA_ITEM)

    response = post_item(
        as_user("qa"), release, entry, "evidence", htmx=True, evidence_url="javascript:alert(1)"
    )

    entry.refresh_from_db()
    assert response.status_code == 422
    assert "The evidence link must be an http(s) URL." in response.content.decode()
    assert entry.evidence_url == ""


def test_it_keeps_an_evidence_link_to_a_host_named_without_a_domain(
    as_user: Any, release: Release
) -> None:
    entry = item(release, QA_ITEM)

    response = post_item(
        as_user("qa"), release, entry, "evidence", htmx=True, evidence_url="https://ci/x"
    )

    entry.refresh_from_db()
    assert response.status_code == 200
    assert entry.evidence_url == "https://ci/x"
    assert 'href="https://ci/x"' in response.content.decode()


def test_it_refuses_a_form_without_a_version(as_user: Any, release: Release) -> None:
    entry = item(release, QA_ITEM)

    response = as_user("qa").post(item_url(release, entry), {"action": "tick"}, headers=HTMX)

    entry.refresh_from_db()
    assert response.status_code == 422
    assert (
        "The item version is missing from the form. Reload the page and try again."
        in response.content.decode()
    )
    assert entry.state == ItemState.PENDING


@pytest.mark.parametrize(
    ("action", "field", "limit", "message"),
    [
        ("note", "note", 5000, "The note is longer than 5,000 characters (it has 5,312)."),
        ("na", "reason", 2000, "The reason is longer than 2,000 characters (it has 5,312)."),
        ("blocked", "reason", 2000, "The reason is longer than 2,000 characters (it has 5,312)."),
        (
            "evidence",
            "evidence_url",
            1000,
            "The evidence link is longer than 1,000 characters (it has 5,312).",
        ),
    ],
)
def test_it_names_the_field_and_its_limit_when_a_text_is_too_long(
    as_user: Any, release: Release, action: str, field: str, limit: int, message: str
) -> None:
    entry = item(release, QA_ITEM)
    client = as_user("qa")
    text = "https://example.com/" + "x" * (5312 - 20) if field == "evidence_url" else "x" * 5312

    htmx = post_item(client, release, entry, action, htmx=True, **{field: text})
    plain = post_item(client, release, entry, action, **{field: text})

    entry.refresh_from_db()
    assert entry.version == 0 and entry.note == "" and entry.reason == ""
    # htmx: refused (422) with the message and the row re-rendered as it stands.
    assert htmx.status_code == 422
    assert message in htmx.content.decode()
    assert f'id="item-{entry.pk}"' in htmx.content.decode()
    # Without JavaScript: the board again, with the same message and the text typed.
    assert plain.status_code == 422
    assert messages_of(plain) == [message]
    assert text in field_of(plain.content.decode(), action, entry)


def test_it_accepts_a_note_of_exactly_the_limit(as_user: Any, release: Release) -> None:
    entry = item(release, QA_ITEM)

    response = post_item(as_user("qa"), release, entry, "note", note="x" * 5000)

    entry.refresh_from_db()
    assert response.status_code == 302
    assert len(entry.note) == 5000


def test_it_counts_in_the_readers_number_format(as_user: Any, release: Release) -> None:
    entry = item(release, QA_ITEM)
    client = as_user("qa")

    # Django's Spanish format groups thousands with a no-break space.
    response = client.post(
        item_url(release, entry),
        {"action": "note", "version": entry.version, "note": "x" * 5312},
        headers={**HTMX, "Accept-Language": "es"},
    )

    assert response.status_code == 422
    assert "5\xa0000" in response.content.decode() and "5\xa0312" in response.content.decode()


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"action": "launch"}, "The action “launch” is not one this page offers."),
        ({"version": "-1"}, "The item version cannot be below 0."),
        ({"version": "one"}, "The item version is not a number."),
        ({"action": ""}, "The action is missing from the form."),
    ],
)
def test_it_names_each_refused_hidden_field(
    as_user: Any, release: Release, data: dict[str, str], message: str
) -> None:
    entry = item(release, QA_ITEM)

    response = as_user("qa").post(
        item_url(release, entry), {"action": "tick", "version": "0", **data}, headers=HTMX
    )

    assert response.status_code == 422
    assert message + " Reload the page and try again." in response.content.decode()


def test_it_names_every_refused_field_at_once(as_user: Any, release: Release) -> None:
    entry = item(release, QA_ITEM)

    response = as_user("qa").post(
        item_url(release, entry),
        {"action": "note", "version": "x", "note": "x" * 5001},
        headers=HTMX,
    )

    page = response.content.decode()
    assert "The item version is not a number." in page
    assert "The note is longer than 5,000 characters (it has 5,001)." in page


HIDDEN = "contains invisible bidirectional control characters"
# What a person types and has refused, in each of an item's forms that takes text: the
# action, its field, the text (with what HTML must escape) and what the refusal says.
REFUSED_TEXTS = {
    "note over the limit": (
        "note",
        "note",
        '<b>"Ana" & co</b> ' + "x" * 4983,
        "The note is longer than 5,000 characters (it has 5,001).",
    ),
    "note with a bidi control": ("note", "note", "ask <Ana> \u202eexe.txt", HIDDEN),
    "evidence link with a bidi control": (
        "evidence",
        "evidence_url",
        'https://ci.example/run/\u202e1gpj.exe?"x"',
        HIDDEN,
    ),
    "note of only invisible characters": (
        "note",
        "note",
        "\u200b\u2060",
        "The note holds only invisible characters, so it would show nothing: write "
        "something that can be read, or empty the field to remove the note.",
    ),
    "N/A reason over the limit": (
        "na",
        "reason",
        "r" * 2001,
        "The reason is longer than 2,000 characters (it has 2,001).",
    ),
    "blocked reason with a bidi control": ("blocked", "reason", "waits on <ops> \u2067", HIDDEN),
}


def message_beside(html: str, action: str, entry: ReleaseItem) -> str:
    return found(re.compile(rf'<p class="error" id="{action}-{entry.pk}-error">.*?</p>'), html)


def row_of(html: str, entry: ReleaseItem) -> str:
    """The item's row and whatever follows it."""
    return html[html.index(f'<li id="item-{entry.pk}"') :]


@pytest.mark.parametrize(("action", "field", "typed", "message"), REFUSED_TEXTS.values(),
                         ids=REFUSED_TEXTS.keys())  # fmt: skip
def test_without_javascript_a_refused_text_comes_back_in_its_field_with_why(
    as_user: Any, release: Release, action: str, field: str, typed: str, message: str
) -> None:
    entry = item(release, QA_ITEM)

    response = post_item(as_user("qa"), release, entry, action, **{field: typed})

    html = response.content.decode()
    entry.refresh_from_db()
    assert (entry.version, entry.note, entry.reason, entry.evidence_url) == (0, "", "", "")
    assert response.status_code == 422
    assert html.startswith("<!doctype html>")
    assert message in found(re.compile(r'<div id="messages".*?</div>', re.S), html)
    shown = field_of(html, action, entry)
    assert escape(typed) in shown
    assert f'aria-invalid="true" aria-describedby="{action}-{entry.pk}-error" autofocus' in shown
    assert message in message_beside(html, action, entry)
    # The item's menu holding the form is open, and the form posts again as it is.
    row = row_of(html, entry)
    assert row.startswith(f'<li id="item-{entry.pk}" class="item mine"')
    assert '<details class="item__more" open>' in row
    assert f'name="version" value="{entry.version}"' in row
    assert 'name="csrfmiddlewaretoken"' in row
    # Only that form: the item's other forms start from what the item holds.
    assert html.count('aria-invalid="true"') == 1


@pytest.mark.parametrize(("action", "field", "typed", "message"), REFUSED_TEXTS.values(),
                         ids=REFUSED_TEXTS.keys())  # fmt: skip
def test_with_htmx_the_refused_row_carries_the_text_typed_and_why(
    as_user: Any, release: Release, action: str, field: str, typed: str, message: str
) -> None:
    entry = item(release, QA_ITEM)

    # As live.js sends it, from a page showing the release as it is.
    response = as_user("qa").post(
        item_url(release, entry),
        {"action": action, "version": entry.version, field: typed},
        headers=shown_at(release.revision),
    )

    html = response.content.decode()
    assert response.status_code == 422
    assert response["X-Revision"] == str(release.revision)
    row = row_of(html, entry)
    assert re.match(r'<li id="item-\d+" class="item mine"[^>]* data-refused hx-swap-oob=', row)
    assert escape(typed) in field_of(row, action, entry)
    assert message in message_beside(row, action, entry)
    assert message in found(re.compile(r'<div id="messages".*?</div>', re.S), html)


def test_a_refused_override_reason_comes_back_in_the_override_form(
    as_user: Any, release: Release
) -> None:
    entry = item(release, QA_ITEM)
    release.items.filter(pk=entry.pk).update(checks=["ci"])
    workflow.record_check_result(entry, check="ci", passed=False, detail="3 tests failed")
    entry.refresh_from_db()
    typed = "flaky <suite> " + "x" * 1990

    response = post_item(as_user("qa"), release, entry, "override", reason=typed)

    html = response.content.decode()
    assert response.status_code == 422
    assert escape(typed) in field_of(html, "override", entry)
    assert "The reason is longer than 2,000 characters" in message_beside(html, "override", entry)
    # The override form is never folded away; the menu stays as it was.
    assert '<details class="item__more">' in row_of(html, entry)


def test_a_refused_tick_has_nothing_typed_and_goes_back_to_its_row(
    as_user: Any, release: Release
) -> None:
    entry = item(release, QA_ITEM)
    release.items.filter(pk=entry.pk).update(checks=["ci"])
    workflow.record_check_result(entry, check="ci", passed=False, detail="3 tests failed")
    entry.refresh_from_db()

    response = post_item(as_user("qa"), release, entry, "tick")

    assert response.status_code == 302
    assert response["Location"].endswith(f"#item-{entry.pk}")
    assert "say why you tick it anyway" in messages_of(response)[0]


@pytest.mark.usefixtures("big_board")
def test_without_javascript_a_refused_text_opens_the_section_a_big_board_keeps_closed(
    as_user: Any, release: Release
) -> None:
    smoke = item(release, "Smoke tests in production")
    assert str(smoke.pk) not in ROW.findall(as_user("qa").get(board_url(release)).content.decode())

    response = post_item(as_user("qa"), release, smoke, "note", note="y" * 5001)

    html = response.content.decode()
    assert response.status_code == 422
    assert "y" * 5001 in field_of(html, "note", smoke)


def test_what_one_person_typed_and_had_refused_reaches_no_other_page(
    as_user: Any, release: Release
) -> None:
    entry = item(release, QA_ITEM)
    typed = "draft for nobody else " + "z" * 5000
    viewers = {persona: as_user(persona) for persona in ("qa", "po", "admin", "backend")}
    # Every board rendered and kept (the shared body, every row) before the refusals.
    for client in viewers.values():
        assert client.get(board_url(release)).status_code == 200

    refused = [
        post_item(viewers["qa"], release, entry, "note", note=typed),
        post_item(viewers["qa"], release, entry, "note", htmx=True, note=typed),
    ]

    assert [response.status_code for response in refused] == [422, 422]
    for persona, client in viewers.items():
        html = client.get(board_url(release)).content.decode()
        assert typed[:30] not in html, persona
        assert "data-refused" not in html and 'aria-invalid="true"' not in html, persona
    opened = viewers["qa"].get(section_url(release, 0), headers=HTMX).content.decode()
    assert typed[:30] not in opened


def test_a_row_holding_what_a_person_typed_is_never_shared(
    release: Release, users: dict[str, Any]
) -> None:
    viewer = viewer_for(users["qa"], release, language="en")
    context = {**board_context(release, viewer), "csrf_token": CSRF_PLACEHOLDER}
    row = next(row for row in context["rows"] if row.can_change)
    typed = replace(row, typed=Typed("note", "typed by one person", "Too long."))

    with translation.override("en"):
        first = row_html(typed, context)
        second = row_html(row, context)

    assert "typed by one person" in first
    assert "typed by one person" not in second and "data-refused" not in second


def test_it_reports_a_stale_edit_as_a_conflict_and_overwrites_nothing(
    as_user: Any, release: Release, users: dict[str, Any]
) -> None:
    entry = item(release, QA_ITEM)
    seen_version = entry.version
    workflow.mark_blocked(entry, by=users["qa"], reason="flaky suite")  # from another tab

    response = as_user("qa").post(
        item_url(release, entry), {"action": "tick", "version": seen_version}, headers=HTMX
    )

    html = response.content.decode()
    entry.refresh_from_db()
    assert response.status_code == 409
    assert entry.state == ItemState.BLOCKED and entry.reason == "flaky suite"
    assert "was changed by qa (QA) since you loaded the page" in html
    # The row comes back as it is now, so the person sees what they would overwrite.
    row = html[html.index(f'<li id="item-{entry.pk}"') :]
    assert 'data-state="blocked"' in row[:300]
    assert f'name="version" value="{entry.version}"' in row


def test_it_reports_a_stale_edit_without_javascript_through_a_message(
    as_user: Any, release: Release, users: dict[str, Any]
) -> None:
    entry = item(release, QA_ITEM)
    workflow.tick(entry, by=users["admin"])

    response = as_user("qa").post(item_url(release, entry), {"action": "tick", "version": 0})

    entry.refresh_from_db()
    assert response.status_code == 302
    assert entry.state == ItemState.DONE
    assert "since you loaded the page" in messages_of(response)[0]


@pytest.mark.parametrize("htmx", [False, True], ids=["without JavaScript", "htmx"])
def test_a_stale_edit_comes_back_with_what_was_typed_ready_to_send_again(
    as_user: Any, release: Release, users: dict[str, Any], htmx: bool
) -> None:
    entry = item(release, QA_ITEM)
    workflow.annotate_item(entry, by=users["admin"], note="looked at it")
    entry.refresh_from_db()
    posted = {"action": "na", "version": 0, "reason": "not needed on this release"}

    response = as_user("qa").post(item_url(release, entry), posted, headers=HTMX if htmx else {})

    assert response.status_code == 409
    html = response.content.decode()
    row = html[html.index(f'<li id="item-{entry.pk}"') :]
    assert "not needed on this release" in row
    assert "since you loaded the page" in row
    assert f'name="version" value="{entry.version}"' in row
    entry.refresh_from_db()
    assert entry.state == ItemState.PENDING and entry.note == "looked at it"


NEVER_HAD = (
    "The form names version 999 of “Unit tests pass”, which it has never had. "
    "Reload the page and try again."
)


def test_a_version_the_item_never_had_is_refused_not_called_a_conflict(
    as_user: Any, release: Release, users: dict[str, Any]
) -> None:
    entry = workflow.tick(item(release, QA_ITEM), by=users["qa"])

    response = as_user("qa").post(
        item_url(release, entry), {"action": "untick", "version": 999}, headers=HTMX
    )

    html = response.content.decode()
    entry.refresh_from_db()
    assert response.status_code == 422
    assert NEVER_HAD in html
    assert "since you loaded the page" not in html
    assert (entry.state, entry.version) == (ItemState.DONE, 1)
    # The row comes back holding the version it has, to be sent again.
    assert f'name="version" value="{entry.version}"' in row_of(html, entry)


def test_without_javascript_a_version_never_had_comes_back_with_what_was_typed(
    as_user: Any, release: Release
) -> None:
    entry = item(release, QA_ITEM)
    posted = {"action": "note", "version": 999, "note": "ran twice"}

    response = as_user("qa").post(item_url(release, entry), posted)

    html = response.content.decode()
    entry.refresh_from_db()
    assert response.status_code == 422
    assert messages_of(response) == [NEVER_HAD]
    assert "ran twice" in field_of(html, "note", entry)
    assert (entry.note, entry.version) == ("", 0)


def test_the_workflow_tells_a_version_never_had_from_a_stale_one(
    release: Release, users: dict[str, Any]
) -> None:
    entry = workflow.tick(item(release, QA_ITEM), by=users["qa"])

    with pytest.raises(workflow.WorkflowError, match="which it has never had") as never_had:
        workflow.untick(entry, by=users["qa"], expected_version=2)
    with pytest.raises(workflow.Conflict, match="since you loaded the page"):
        workflow.untick(entry, by=users["qa"], expected_version=0)

    assert not isinstance(never_had.value, workflow.Conflict)
    entry.refresh_from_db()
    assert (entry.state, entry.version) == (ItemState.DONE, 1)


def test_it_keeps_both_ticks_when_two_people_act_at_once(as_user: Any, release: Release) -> None:
    qa_item, backend_item = item(release, QA_ITEM), item(release, BACKEND_ITEM)

    first = post_item(as_user("qa"), release, qa_item, "tick", htmx=True)
    second = post_item(as_user("backend"), release, backend_item, "tick", htmx=True)

    assert (first.status_code, second.status_code) == (200, 200)
    states = dict(
        release.items.filter(pk__in=[qa_item.pk, backend_item.pk]).values_list("text", "state")
    )
    assert states == {QA_ITEM: ItemState.DONE, BACKEND_ITEM: ItemState.DONE}
    # Each answer carries the row its action changed; the other row reaches that page
    # through the live stream.
    assert f'id="item-{backend_item.pk}"' in second.content.decode()
    assert f'id="item-{qa_item.pk}"' not in second.content.decode()


def shown_at(revision: int) -> dict[str, str]:
    """What live.js sends with an action: htmx's header and the revision the page shows."""
    return {**HTMX, "X-Revision-Shown": str(revision)}


def test_an_answer_brings_the_page_from_the_revision_it_shows_and_names_the_new_one(
    as_user: Any, release: Release, users: dict[str, Any]
) -> None:
    qa_item, backend_item = item(release, QA_ITEM), item(release, BACKEND_ITEM)
    shown = release.revision
    # Another person's tick, which has not reached the page yet.
    workflow.tick(backend_item, by=users["backend"])

    response = as_user("qa").post(
        item_url(release, qa_item),
        {"action": "tick", "version": qa_item.version},
        headers=shown_at(shown),
    )

    release.refresh_from_db()
    html = response.content.decode()
    assert response.status_code == 200
    # live.js skips the stream's updates up to this revision: the answer must hold
    # everything they would have brought, the other person's row too.
    assert response["X-Revision"] == str(release.revision)
    assert sorted(ROW.findall(html)) == sorted([str(qa_item.pk), str(backend_item.pk)])
    for panel in PANELS:
        assert f'id="{panel}"' in html, panel


def test_a_refused_answer_names_the_revision_its_rows_are_at(
    as_user: Any, release: Release
) -> None:
    entry = item(release, QA_ITEM)

    response = post_item(as_user("backend"), release, entry, "tick", htmx=True)

    assert response.status_code == 403
    assert response["X-Revision"] == str(release.revision)
    # The refused row as it is, to put back a box the person ticked.
    assert ROW.findall(response.content.decode()) == [str(entry.pk)]


def test_a_page_claiming_a_revision_the_release_never_had_gets_every_change_again(
    as_user: Any, release: Release, users: dict[str, Any]
) -> None:
    qa_item, backend_item = item(release, QA_ITEM), item(release, BACKEND_ITEM)
    workflow.tick(backend_item, by=users["backend"])

    response = as_user("qa").post(
        item_url(release, qa_item),
        {"action": "tick", "version": qa_item.version},
        headers=shown_at(10**6),
    )

    assert sorted(ROW.findall(response.content.decode())) == sorted(
        [str(qa_item.pk), str(backend_item.pk)]
    )


# --- who may change what ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("persona", "text", "status", "changes"),
    [
        ("qa", QA_ITEM, 302, True),
        ("backend", BACKEND_ITEM, 302, True),
        ("devops", "TLS certificates installed", 302, True),
        ("frontend", "Screens reviewed", 302, True),
        ("backend", QA_ITEM, 403, False),
        ("devops", BACKEND_ITEM, 403, False),
        ("po", QA_ITEM, 403, False),
        ("support", QA_ITEM, 403, False),
        ("outsider", QA_ITEM, 404, False),
        (None, QA_ITEM, 302, False),
        ("admin", QA_ITEM, 302, True),
    ],
)
def test_it_lets_only_the_owner_or_staff_tick(
    as_user: Any,
    release: Release,
    persona: str | None,
    text: str,
    status: int,
    changes: bool,
) -> None:
    entry = item(release, text)
    before = AuditEvent.objects.count()

    response = post_item(as_user(persona), release, entry, "tick")

    entry.refresh_from_db()
    assert response.status_code == status
    assert (entry.state == ItemState.DONE) is changes
    assert AuditEvent.objects.count() == before + (1 if changes else 0)
    if persona is None:
        assert response["Location"].startswith(reverse("login"))


def test_it_audits_a_staff_tick_as_an_override(as_user: Any, release: Release) -> None:
    entry = item(release, QA_ITEM)

    post_item(as_user("admin"), release, entry, "tick")

    event = AuditEvent.objects.filter(action="item.done").get()
    assert event.override is True
    assert event.actor_label == "admin"
    assert event.source_ip == "127.0.0.1"


def test_it_audits_the_owner_tick_without_override_and_with_the_address(
    as_user: Any, release: Release
) -> None:
    post_item(as_user("qa"), release, item(release, QA_ITEM), "tick")

    event = AuditEvent.objects.filter(action="item.done").get()
    assert (event.override, event.source_ip) == (False, "127.0.0.1")


@pytest.mark.parametrize("action", ["tick", "na", "blocked", "note", "evidence"])
def test_it_forbids_a_forged_post_by_support_and_changes_nothing(
    as_user: Any, release: Release, action: str
) -> None:
    entry = item(release, QA_ITEM)
    revision = release.revision
    fields = {"reason": "x", "note": "x", "evidence_url": "https://example.com/"}

    plain = post_item(as_user("support"), release, entry, action, htmx=False, **fields)
    htmx = post_item(as_user("support"), release, entry, action, htmx=True, **fields)

    entry.refresh_from_db()
    release.refresh_from_db()
    assert (plain.status_code, htmx.status_code) == (403, 403)
    assert "Only the QA Lead may change “Unit tests pass”." in plain.content.decode()
    assert "Only the QA Lead may change “Unit tests pass”." in htmx.content.decode()
    assert (entry.state, entry.note, entry.evidence_url, entry.version) == (
        ItemState.PENDING,
        "",
        "",
        0,
    )
    assert release.revision == revision


def test_it_answers_a_forbidden_plain_post_with_the_board_and_the_reason(
    as_user: Any, release: Release
) -> None:
    response = post_item(as_user("po"), release, item(release, QA_ITEM), "tick")

    html = response.content.decode()
    assert response.status_code == 403
    assert html.startswith("<!doctype html>")
    assert 'class="message message--error"' in html


def test_it_404s_an_item_of_another_release(
    as_user: Any, release: Release, small_template: ChecklistTemplate, users: dict[str, Any]
) -> None:
    other = workflow.create_release(
        small_template, version="v9.9.9", title="Other", by=users["admin"]
    )
    foreign = other.items.first()
    assert foreign is not None

    response = post_item(as_user("admin"), release, foreign, "tick")

    assert response.status_code == 404


# --- sign-off and approval -------------------------------------------------------------


def signoff_post(
    client: Client,
    release: Release,
    action: str,
    role: str = "qa",
    phase: str = "Pre",
    htmx: bool = False,
) -> Any:
    return client.post(
        reverse("releases:signoff", args=[release.version]),
        {"role": role, "phase": phase, "action": action},
        headers=HTMX if htmx else {},
    )


def revoke_post(client: Client, release: Release, reason: str = "", htmx: bool = False) -> Any:
    return client.post(
        reverse("releases:revoke-approval", args=[release.version]),
        {"reason": reason},
        headers=HTMX if htmx else {},
    )


def approve_post(client: Client, release: Release, reason: str = "All green") -> Any:
    """Approving is asked first: the confirmation page's form, posted."""
    return client.post(
        reverse("releases:confirm", args=[release.version, "approve"]), {"reason": reason}
    )


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"phase": "P" * 301}, "The phase is longer than 300 characters (it has 301)."),
        ({"role": "ceo"}, "The role “ceo” is not one this page offers."),
        ({"action": "sign-all"}, "The action “sign-all” is not one this page offers."),
    ],
)
def test_it_names_the_refused_field_of_a_sign_off(
    as_user: Any, release: Release, fields: dict[str, str], message: str
) -> None:
    response = as_user("qa").post(
        reverse("releases:signoff", args=[release.version]),
        {"role": "qa", "phase": "Pre", "action": "sign", **fields},
        headers=HTMX,
    )

    assert response.status_code == 422
    assert message in response.content.decode()
    assert 'id="signoff-panel"' in response.content.decode()
    assert not SignOff.objects.exists()


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        (
            {"reason": "r" * 2500},
            "The reason is longer than 2,000 characters (it has 2,500).",
        ),
    ],
)
def test_it_names_the_refused_field_of_a_revocation(
    as_user: Any, ready_release: Release, fields: dict[str, str], message: str
) -> None:
    workflow.approve(ready_release, by=ready_release.stakeholders.get(role="po").user)
    response = as_user("po").post(
        reverse("releases:revoke-approval", args=[ready_release.version]), fields, headers=HTMX
    )

    assert response.status_code == 422
    assert message in response.content.decode()
    assert GoLiveApproval.objects.get().revoked_at is None


@pytest.mark.parametrize("htmx", [False, True], ids=["page", "htmx"])
def test_a_refused_revoke_reason_comes_back_in_its_field(
    as_user: Any, ready_release: Release, htmx: bool
) -> None:
    workflow.approve(ready_release, by=ready_release.stakeholders.get(role="po").user)
    typed = "Rollback \u202eplan missing"

    response = revoke_post(as_user("po"), ready_release, typed, htmx=htmx)

    assert response.status_code == 422
    html = response.content.decode()
    assert f'name="reason" required maxlength="2000" value="{typed}"' in html
    assert GoLiveApproval.objects.get().revoked_at is None
    # Only in that answer: the board as others load it keeps the field empty.
    board = as_user("po").get(reverse("releases:board", args=[ready_release.version]))
    assert typed not in board.content.decode()


def test_approving_and_moving_the_status_have_no_one_click_endpoint(
    as_user: Any, ready_release: Release
) -> None:
    client = as_user("po")
    for old in ("approval/", "status/change/"):
        response = client.post(
            f"/releases/{ready_release.version}/{old}", {"action": "approve", "status": "cancelled"}
        )
        assert response.status_code == 404
    ready_release.refresh_from_db()
    assert ready_release.status == "in_progress" and not GoLiveApproval.objects.exists()


def test_it_signs_off_a_lead_once_their_items_are_settled(
    as_user: Any, release: Release, users: dict[str, Any]
) -> None:
    client = as_user("qa")
    refused = signoff_post(client, release, "sign", htmx=True)
    workflow.tick(item(release, QA_ITEM), by=users["qa"])

    signed = signoff_post(client, release, "sign")

    assert refused.status_code == 422
    assert "are not done or N/A yet" in refused.content.decode()
    assert "required item(s) of yours" in refused.content.decode()
    assert signed.status_code == 302
    assert signed["Location"] == board_url(release) + "#mine-panel"
    assert messages_of(signed) == ["Signed off the QA Lead items of “Pre”."]
    signoff = SignOff.objects.get(release=release, role="qa", phase="Pre")
    assert signoff.signed_by == users["qa"] and signoff.reopened_at is None


def test_it_disables_the_sign_off_button_until_the_items_are_settled(
    as_user: Any, release: Release, users: dict[str, Any]
) -> None:
    client = as_user("qa")
    before = client.get(board_url(release)).content.decode()
    workflow.tick(item(release, QA_ITEM), by=users["qa"])
    after = client.get(board_url(release)).content.decode()

    button = re.compile(r"<button[^>]*>\s*Sign off as QA Lead", re.S)
    assert "disabled" in found(button, before)
    assert "disabled" not in found(button, after)
    # Only the lead holding the role gets the button.
    assert "Sign off as Backend Lead" not in after


def test_it_lets_only_the_lead_sign_their_role(
    as_user: Any, release: Release, users: dict[str, Any]
) -> None:
    workflow.tick(item(release, QA_ITEM), by=users["qa"])

    by_backend = signoff_post(as_user("backend"), release, "sign", htmx=True)
    by_support = signoff_post(as_user("support"), release, "sign")
    as_support_role = signoff_post(as_user("support"), release, "sign", role="support", htmx=True)

    assert by_backend.status_code == 403
    assert "Only the QA Lead signs off these items." in by_backend.content.decode()
    assert by_support.status_code == 403
    assert as_support_role.status_code == 422
    assert not SignOff.objects.exists()


def test_it_shows_a_reopened_sign_off_with_its_reason(
    as_user: Any, release: Release, users: dict[str, Any]
) -> None:
    entry = workflow.tick(item(release, QA_ITEM), by=users["qa"])
    workflow.sign_off(release, role="qa", phase="Pre", by=users["qa"])

    response = post_item(as_user("qa"), release, entry, "untick", htmx=True)

    html = response.content.decode()
    panel = html[html.index('id="signoff-panel"') :]
    assert "Reopened" in panel
    assert "“Unit tests pass” changed after sign-off" in panel


def test_it_withdraws_a_sign_off(as_user: Any, release: Release, users: dict[str, Any]) -> None:
    workflow.tick(item(release, QA_ITEM), by=users["qa"])
    workflow.sign_off(release, role="qa", phase="Pre", by=users["qa"])

    response = signoff_post(as_user("qa"), release, "withdraw", htmx=True)

    assert response.status_code == 200
    assert "Withdrew the QA Lead sign-off of “Pre”." in response.content.decode()
    assert not SignOff.objects.filter(reopened_at__isnull=True).exists()


def test_it_lets_the_product_owner_approve_when_nothing_blocks(
    as_user: Any, ready_release: Release
) -> None:
    client = as_user("po")
    page = client.get(board_url(ready_release)).content.decode()

    response = approve_post(client, ready_release)

    assert "disabled" not in found(APPROVE, page)
    assert response.status_code == 302
    assert messages_of(response) == ["Go-live approved."]
    ready_release.refresh_from_db()
    assert ready_release.active_approval() is not None
    assert ready_release.status == "approved"


def test_it_disables_the_approve_button_while_anything_blocks(
    as_user: Any, release: Release
) -> None:
    page = as_user("po").get(board_url(release)).content.decode()

    assert "disabled" in found(APPROVE, page)
    assert "Pending: “Unit tests pass” (QA Lead)" in page


@pytest.mark.parametrize("persona", ["qa", "backend", "support"])
def test_it_shows_no_approve_button_to_others_and_refuses_their_post(
    as_user: Any, ready_release: Release, persona: str
) -> None:
    client = as_user(persona)
    page = client.get(board_url(ready_release)).content.decode()

    response = approve_post(client, ready_release)

    assert "Approve go-live</button>" not in page
    assert response.status_code == 403
    assert "Only the Product Owner approves go-live." in response.content.decode()
    assert not GoLiveApproval.objects.exists()


def test_it_enforces_the_two_person_rule_through_the_view(
    as_user: Any, ready_release: Release, users: dict[str, Any]
) -> None:
    # The QA lead also holds the product owner role, and has already signed off as QA.
    workflow.assign(ready_release, role=Role.PRODUCT_OWNER, user=users["qa"], by=users["admin"])
    client = as_user("qa")

    page = client.get(board_url(ready_release)).content.decode()
    response = approve_post(client, ready_release)

    rule = "Two-person rule: you signed off as a lead on this release"
    assert rule in page
    assert "disabled" in found(APPROVE, page)
    assert response.status_code == 422
    assert rule in response.content.decode()
    assert not GoLiveApproval.objects.exists()


def test_it_needs_a_reason_to_revoke_and_then_shows_a_loud_banner_everywhere(
    as_user: Any, ready_release: Release, users: dict[str, Any]
) -> None:
    workflow.approve(ready_release, by=users["po"])
    client = as_user("po")

    refused = revoke_post(client, ready_release, htmx=True)
    revoked = revoke_post(client, ready_release, reason="payment provider outage", htmx=True)
    board_html = as_user("qa").get(board_url(ready_release)).content.decode()
    status_html = (
        as_user("support")
        .get(reverse("releases:status", args=[ready_release.version]))
        .content.decode()
    )

    assert refused.status_code == 422
    assert "Say why go-live approval is revoked." in refused.content.decode()
    assert revoked.status_code == 200
    banner = re.compile(
        r'<div class="banner banner--alert" role="alert">.*?payment provider '
        r"outage",
        re.S,
    )
    assert banner.search(revoked.content.decode())
    assert banner.search(board_html)
    assert banner.search(status_html)


def test_it_raises_the_banner_when_a_gate_change_revokes_the_approval(
    as_user: Any, ready_release: Release, users: dict[str, Any]
) -> None:
    workflow.approve(ready_release, by=users["po"])
    entry = item(ready_release, QA_ITEM)

    response = post_item(as_user("qa"), ready_release, entry, "untick", htmx=True)

    html = response.content.decode()
    assert 'role="alert"' in html
    assert "“Unit tests pass” changed after go-live was approved" in html


def test_it_lists_the_same_obstacles_as_the_workflow_for_every_persona(
    ready_release: Release, users: dict[str, Any]
) -> None:
    workflow.assign(ready_release, role=Role.PRODUCT_OWNER, user=users["qa"], by=users["admin"])

    with translation.override("en"):
        for stage in ("ready", "blocked", "approved"):
            if stage == "blocked":
                workflow.mark_blocked(
                    item(ready_release, BACKEND_ITEM), by=users["backend"], reason="waiting"
                )
                workflow.untick(item(ready_release, QA_ITEM), by=users["qa"])
            if stage == "approved":
                workflow.tick(item(ready_release, BACKEND_ITEM), by=users["backend"])
                workflow.tick(item(ready_release, QA_ITEM), by=users["qa"])
                for role in ("backend", "qa"):
                    workflow.sign_off(ready_release, role=role, phase="Pre", by=users[role])
                workflow.approve(ready_release, by=users["po"])
            for persona in (*PERSONAS, "admin"):
                viewer = viewer_for(users[persona], ready_release, language="en")
                expected = workflow.approval_obstacles(ready_release, users[persona])
                shown = board_context(ready_release, viewer)["gonogo"].obstacles
                assert sorted(shown) == sorted(expected), (stage, persona)


# --- the status page and share links ----------------------------------------------------


def status_url(release: Release) -> str:
    return reverse("releases:status", args=[release.version])


def test_it_shows_support_a_read_only_status_page_with_what_they_need(
    as_user: Any, release: Release, users: dict[str, Any]
) -> None:
    workflow.mark_blocked(item(release, QA_ITEM), by=users["qa"], reason="CI is down")

    response = as_user("support").get(status_url(release))

    html = response.content.decode()
    assert response.status_code == 200
    assert 'data-page="status"' in html
    assert INDICATOR.search(html)
    assert 'type="checkbox"' not in html
    assert "<form" not in html[html.index('id="live"') :]
    assert 'href="tel:+34600000001"' in html
    assert 'href="mailto:dana@example.com"' in html
    step = release.rollback_steps.get()
    assert (
        f'<pre id="plan-code-{step.pk}" tabindex="0" role="region" '
        'aria-label="Commands of step 1"><code class="language-bash">deploy --previous</code></pre>'
    ) in html
    # What actively stops the release is listed before what is merely not done yet.
    blocked = html.index("Blocked: “Unit tests pass” (QA Lead) — CI is down")
    assert blocked < html.index("Pending: “Merge everything” (Backend Lead)")
    assert re.search(r"Current phase</dt>\s*<dd>Pre</dd>", html)
    assert 'id="progress-phase-1"' in html and 'id="progress-role-1"' in html


@pytest.mark.parametrize("persona", ["po", "qa", "admin"])
def test_it_keeps_the_status_page_read_only_for_everyone(
    as_user: Any, ready_release: Release, persona: str
) -> None:
    html = as_user(persona).get(status_url(ready_release)).content.decode()

    assert "<form" not in html[html.index('id="live"') :]


def test_it_moves_the_current_phase_on_once_required_items_are_settled(
    as_user: Any, ready_release: Release
) -> None:
    html = as_user("support").get(status_url(ready_release)).content.decode()

    assert re.search(r"Current phase</dt>\s*<dd>Deploy</dd>", html)


def test_it_hides_the_status_page_from_outsiders(as_user: Any, release: Release) -> None:
    assert as_user("outsider").get(status_url(release)).status_code == 404


def make_share_link(release: Release, users: dict[str, Any]) -> tuple[ShareLink, str]:
    token = secrets.token_urlsafe(24)
    link = ShareLink.objects.create(
        release=release,
        token_hash=ShareLink.hash_token(token),
        label="support desk",
        created_by=users["admin"],
    )
    return link, token


def test_it_opens_the_status_page_through_a_share_link_without_an_account(
    as_user: Any, release: Release, users: dict[str, Any]
) -> None:
    _link, token = make_share_link(release, users)

    response = as_user(None).get(reverse("releases:shared-status", args=[token]))

    html = response.content.decode()
    assert response.status_code == 200
    assert 'data-page="status"' in html
    assert 'href="tel:+34600000001"' in html
    assert 'type="checkbox"' not in html
    assert board_url(release) not in html
    assert response["Referrer-Policy"] == "no-referrer"


def test_it_keeps_a_share_link_read_only_for_a_logged_in_product_owner(
    as_user: Any, ready_release: Release, users: dict[str, Any]
) -> None:
    _link, token = make_share_link(ready_release, users)

    html = as_user("po").get(reverse("releases:shared-status", args=[token])).content.decode()

    assert "<form" not in html[html.index('id="live"') :]


def test_it_404s_a_revoked_or_unknown_share_link(
    as_user: Any, release: Release, users: dict[str, Any]
) -> None:
    link, token = make_share_link(release, users)
    ShareLink.objects.filter(pk=link.pk).update(revoked_at=link.created_at)

    assert as_user(None).get(reverse("releases:shared-status", args=[token])).status_code == 404
    assert as_user(None).get(reverse("releases:shared-status", args=["nope"])).status_code == 404


# --- cost and live updates -------------------------------------------------------------


def release_with(count: int, users: dict[str, Any]) -> Release:
    template = ChecklistTemplate.objects.create(name=f"t{count}", gate_position=count // 2)
    leads = [role.value for role in Role.leads()] + [Role.PRODUCT_OWNER.value]
    TemplateItem.objects.bulk_create(
        [
            TemplateItem(
                template=template,
                position=index,
                phase=f"Phase {index % 3}",
                section=f"Section {index % 5}",
                text=f"Item {index}",
                owner_role=leads[index % len(leads)],
                required=index % 4 != 0,
            )
            for index in range(count)
        ]
    )
    TemplateRollbackStep.objects.create(
        template=template, position=0, text="Back", commands="deploy --previous"
    )
    made = workflow.create_release(
        template, version=f"v{count}.0.0", title="Load", by=users["admin"]
    )
    for persona in PERSONAS:
        workflow.assign(made, role=persona, user=users[persona], by=users["admin"])
    entries = list(made.items.all())
    for entry in entries[::3]:
        workflow.tick(entry, by=users["admin"])
    workflow.mark_blocked(entries[1], by=users["admin"], reason="waiting")
    workflow.annotate_item(
        entries[2], by=users["admin"], note="n", evidence_url="https://example.com/e"
    )
    made.refresh_from_db()
    return made


def queries_for(client: Client, url: str) -> int:
    with CaptureQueriesContext(connection) as captured:
        response = client.get(url)
    assert response.status_code == 200
    return len(captured.captured_queries)


def test_it_renders_the_board_in_the_same_queries_for_7_and_70_items(
    as_user: Any, users: dict[str, Any]
) -> None:
    small, large = release_with(7, users), release_with(70, users)
    client = as_user("qa")
    client.get(board_url(small))  # the session and language settle on the first request

    # Each measured as a full render, then as the shared render reused.
    counts = {}
    for name, url in [
        ("board", board_url),
        ("status", status_url),
    ]:
        for made in (small, large):
            pages.clear()
            standing.cache_clear()
            counts[name, made.pk, "render"] = queries_for(client, url(made))
            counts[name, made.pk, "reuse"] = queries_for(client, url(made))

    assert large.items.count() == 70
    for name in ("board", "status"):
        for use in ("render", "reuse"):
            assert counts[name, small.pk, use] == counts[name, large.pk, use]
        assert counts[name, small.pk, "reuse"] < counts[name, small.pk, "render"]


def test_it_renders_a_live_update_in_the_same_queries_for_7_and_70_items(
    users: dict[str, Any],
) -> None:
    small, large = release_with(7, users), release_with(70, users)
    viewer = Viewer(Who(ActorKind.PERSON, frozenset({"qa"})), signed_off=False, language="en")

    counts = []
    for made in (small, large):
        with CaptureQueriesContext(connection) as captured:
            render_update(load_snapshot(made.pk), viewer, "board", 0)
        counts.append(len(captured.captured_queries))

    assert counts[0] == counts[1]


def test_it_renders_the_next_lead_of_a_live_update_without_a_query(
    release: Release, users: dict[str, Any]
) -> None:
    """What a tick's fan-out renders for every lead after the first comes from the one
    load of the revision: the sign-offs, the nudges, the deploy and rollback, the window."""
    start = timezone.now() + timedelta(days=1)
    workflow.schedule_window(
        release, start=start, end=start + timedelta(hours=2), time_zone="UTC", by=users["devops"]
    )
    workflow.nudge_role(release, role="backend", by=users["po"])
    snapshot = load_snapshot(release.pk)
    render_update(snapshot, viewer_for(users["qa"], release, language="en"), "board", 0)
    devops = viewer_for(users["devops"], release, language="en")

    with CaptureQueriesContext(connection) as captured:
        html = render_update(snapshot, devops, "board", 0)[1]

    assert captured.captured_queries == []
    assert "nudged by po" in html
    assert 'class="status status--window-scheduled"' in html


def test_it_sends_only_changed_rows_and_every_panel_as_a_live_update(
    release: Release, users: dict[str, Any]
) -> None:
    viewer = viewer_for(users["qa"], release, language="en")
    since = release.revision
    changed = workflow.tick(item(release, QA_ITEM), by=users["qa"])

    revision, html = render_update(load_snapshot(release.pk), viewer, "board", since)

    assert revision == since + 1
    assert ROW.findall(html) == [str(changed.pk)]
    assert re.search(rf'<li id="item-{changed.pk}"[^>]*hx-swap-oob="true"', html, re.S)
    for panel in PANELS:
        assert re.search(rf'id="{panel}"[^>]*hx-swap-oob="true"', html, re.S), panel
    assert "csrfmiddlewaretoken" not in html
    nothing_new = render_update(load_snapshot(release.pk), viewer, "board", revision)[1]
    assert ROW.findall(nothing_new) == []


def test_it_sends_the_status_page_panels_and_no_rows_as_a_live_update(
    release: Release, users: dict[str, Any]
) -> None:
    viewer = viewer_for(users["support"], release, read_only=True, language="en")
    workflow.tick(item(release, QA_ITEM), by=users["qa"])

    _revision, html = render_update(load_snapshot(release.pk), viewer, "status", 0)

    assert ROW.findall(html) == []
    assert re.search(r'id="contacts-panel"[^>]*hx-swap-oob="true"', html, re.S)
    assert "<form" not in html


def test_it_renders_a_live_update_in_the_viewer_language(
    release: Release, users: dict[str, Any]
) -> None:
    changed = workflow.tick(item(release, QA_ITEM), by=users["qa"])
    stamps = {}

    for language in ("en", "es"):
        viewer = viewer_for(users["qa"], release, language=language)
        html = render_update(load_snapshot(release.pk), viewer, "board", 0)[1]
        with translation.override(language):
            when = localtime(changed.changed_at)
            stamps[language] = date_format(when, "SHORT_DATETIME_FORMAT")
        assert stamps[language] in html

    assert stamps["en"] != stamps["es"]


def test_it_describes_each_persona_as_a_viewer(release: Release, users: dict[str, Any]) -> None:
    support = viewer_for(users["support"], release, language="es")
    po = viewer_for(users["po"], release, language="es")
    admin = viewer_for(users["admin"], release, language="es")
    shared = viewer_for(users["qa"], release, read_only=True, language="en")

    assert (support.read_only, support.roles) == (True, frozenset({"support"}))
    assert (po.is_product_owner, po.read_only) == (True, False)
    assert (admin.is_staff, admin.read_only, admin.roles) == (True, False, frozenset())
    assert shared.read_only is True
    assert hash(support) == hash(viewer_for(users["support"], release, language="es"))


def confirm_url(release: Release, action: str) -> str:
    return reverse("releases:confirm", args=[release.version, action])


def test_it_lets_the_product_owner_and_devops_record_the_deploy_and_a_rollback(
    as_user: Any, ready_release: Release, users: dict[str, Any]
) -> None:
    po = as_user("po")
    approved = po.post(confirm_url(ready_release, "approve"), {"reason": "All green"})
    assert approved.status_code == 302
    devops = as_user("devops")
    page = devops.get(board_url(ready_release)).content.decode()
    assert f'href="{confirm_url(ready_release, "deploy-start")}"' in page

    response = devops.post(confirm_url(ready_release, "deploy-start"), {"reason": "Window open"})
    assert response.status_code == 302
    assert messages_of(response) == ["The deploy is recorded as started."]
    po.post(confirm_url(ready_release, "deploy-finish"), {"result": "success", "reason": "Smoke"})
    devops.post(
        confirm_url(ready_release, "rollback"), {"severity": "major", "reason": "Errors up"}
    )

    ready_release.refresh_from_db()
    assert ready_release.status == "rolled_back"
    status_page = (
        as_user("support")
        .get(reverse("releases:status", args=[ready_release.version]))
        .content.decode()
    )
    assert "Rolled back" in status_page
    assert "Rollback under way" in status_page
    assert "/confirm/" not in status_page
    actions = list(
        ready_release.audit_events.filter(action__startswith="deploy.")
        .union(ready_release.audit_events.filter(action="rollback.declared"))
        .values_list("actor_label", "action")
    )
    assert sorted((label.split()[0], action) for label, action in actions) == [
        ("devops", "deploy.started"),
        ("devops", "rollback.declared"),
        ("po", "deploy.finished"),
    ]


@pytest.mark.parametrize("persona", ["qa", "backend", "frontend", "support"])
def test_it_refuses_a_status_change_from_anyone_else(
    as_user: Any, release: Release, persona: str
) -> None:
    client = as_user(persona)
    assert 'name="status"' not in client.get(board_url(release)).content.decode()

    response = client.post(confirm_url(release, "status-cancelled"), {"reason": "not needed"})

    assert response.status_code == 403
    release.refresh_from_db()
    assert release.status == "planned"


def test_it_explains_why_a_cancelled_release_cannot_move_back_to_planned(
    as_user: Any, release: Release, users: dict[str, Any]
) -> None:
    workflow.set_status(release, status="cancelled", by=users["po"])
    response = as_user("po").post(confirm_url(release, "status-planned"), {"reason": "redo"})

    assert response.status_code == 422
    assert "The release is cancelled: it accepts no change until staff reopen it." in (
        response.content.decode()
    )
    release.refresh_from_db()
    assert release.status == "cancelled"


def test_it_offers_devops_only_the_moves_devops_may_make(
    as_user: Any, ready_release: Release
) -> None:
    workflow.approve(ready_release, by=ready_release.stakeholders.get(role="po").user)
    page = as_user("devops").get(board_url(ready_release)).content.decode()

    assert f'href="{confirm_url(ready_release, "deploy-start")}"' in page
    assert "confirm/status-cancelled/" not in page


# --- pages rendered once and shared ---------------------------------------------------------


def test_it_never_serves_a_shared_page_older_than_the_revision_its_request_read(
    as_user: Any, release: Release, users: dict[str, Any]
) -> None:
    devops, qa = as_user("devops"), as_user("qa")
    entry = item(release, QA_ITEM)
    devops.get(board_url(release))  # rendered and kept for viewers like devops

    workflow.tick(entry, by=users["qa"])
    seen = {name: client.get(board_url(release)).content.decode() for name, client in
            [("devops", devops), ("qa", qa)]}  # fmt: skip

    for html in seen.values():
        row = html[html.index(f'<li id="item-{entry.pk}"') :]
        assert (
            row.startswith(f'<li id="item-{entry.pk}" class="item')
            and 'data-state="done"' in row[:300]
        )


def test_it_shares_a_render_only_between_viewers_who_would_get_the_same_page(
    as_user: Any, release: Release
) -> None:
    qa_page = as_user("qa").get(board_url(release)).content.decode()
    devops_page = as_user("devops").get(board_url(release)).content.decode()

    qa_item = item(release, QA_ITEM)
    checkbox = f'id="tick-{qa_item.pk}"'
    assert "disabled" not in qa_page[qa_page.index(checkbox) :][:200]
    assert "disabled" in devops_page[devops_page.index(checkbox) :][:200]


def test_it_gives_each_request_its_own_csrf_token_and_name_in_a_shared_page(
    as_user: Any, release: Release
) -> None:
    first, second = as_user("qa"), as_user("qa")

    pages_served = [client.get(board_url(release)) for client in (first, second)]

    for response, client in zip(pages_served, (first, second), strict=True):
        html = response.content.decode()
        assert CSRF_PLACEHOLDER not in html
        assert 'name="csrfmiddlewaretoken" value="' in html
        # The token in the page is one the session's cookie accepts.
        token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', html)
        assert token is not None
        answer = client.post(
            item_url(release, item(release, QA_ITEM)),
            {"action": "note", "version": item(release, QA_ITEM).version, "note": "seen",
             "csrfmiddlewaretoken": token.group(1)},
        )  # fmt: skip
        assert answer.status_code in (200, 302)


def test_a_shared_page_carries_each_persons_name_and_their_own_address(
    as_user: Any, release: Release
) -> None:
    hostile = '?show=pending&x="><script>alert(1)</script>'

    qa_page = as_user("qa").get(board_url(release) + hostile).content.decode()
    devops_page = as_user("devops").get(board_url(release)).content.decode()

    assert '<span class="whoami">qa</span>' in qa_page
    assert '<span class="whoami">devops</span>' in devops_page
    assert "<script>alert(1)</script>" not in qa_page
    # The address goes into an attribute escaped, as a render for this request puts it.
    assert f'name="next" value="{board_url(release)}?show=pending&amp;x=%22%3E%3Cscript' in qa_page
    assert CSRF_PLACEHOLDER not in qa_page + devops_page


@pytest.mark.parametrize(
    "written",
    [
        CSRF_PLACEHOLDER,
        # The placeholder as escaping would print it, in case a person types that.
        escape(str(CSRF_PLACEHOLDER)),
        # Where the shell takes the shared body.
        BODY_SLOT,
        # Those of earlier versions, for the person's name and the page's address.
        "<deploycheck-person-name><deploycheck-request-path>",
        # The placeholders of earlier versions, plain letters and digits.
        "csrf-token-placeholder-0f6c2a",
    ],
)
def test_a_note_made_of_placeholders_reads_as_written_to_every_other_viewer(
    as_user: Any, release: Release, users: dict[str, Any], written: str
) -> None:
    """A shared page is filled with each viewer's CSRF token, name and address: text a
    person wrote must never be filled, or it would show a viewer's token inside a link
    to another host."""
    entry = item(release, QA_ITEM)
    workflow.annotate_item(
        entry, note=written, evidence_url=f"https://evil.example/?t={written}", by=users["qa"]
    )

    page = as_user("devops").get(board_url(release)).content.decode()

    assert escape(written) in page
    # The body and the page around it each carry a masked token of the viewer's own.
    slots = re.findall(r'name="csrfmiddlewaretoken" value="([^"]+)"', page)
    slots += re.findall(r'"X-CSRFToken": "([^"]+)"', page)
    assert slots and all(re.fullmatch("[A-Za-z0-9]{64}", token) for token in slots)
    assert sum(page.count(token) for token in set(slots)) == len(slots)
    assert '<span class="whoami">devops</span>' in page
    assert page.count("devops</span>") == 1
    assert BODY_SLOT not in page
    assert page.count('<main id="main"') == 1 and page.rstrip().endswith("</html>")


class Shown(HTMLParser):
    """What a browser shows of a page: its tags with their attributes, and its text with
    each run of white space as one space, except inside <textarea> and <pre>."""

    KEPT = ("textarea", "pre")

    def __init__(self, html: str) -> None:
        super().__init__()
        self.shown: list[tuple[str, Any]] = []
        self._kept = 0
        self.feed(html)
        self.close()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.shown.append(("start", (tag, attrs)))
        self._kept += tag in self.KEPT

    def handle_endtag(self, tag: str) -> None:
        self.shown.append(("end", tag))
        self._kept -= tag in self.KEPT

    def handle_data(self, data: str) -> None:
        self.shown.append(("text", data if self._kept else re.sub(r"\s+", " ", data)))


def test_the_board_goes_out_without_its_indentation_and_shows_the_same(
    as_user: Any, release: Release, users: dict[str, Any]
) -> None:
    note = "Ran twice:\n    first on staging\n\n        then on production"
    workflow.annotate_item(item(release, QA_ITEM), note=note, by=users["qa"])
    release.refresh_from_db()
    context = board_context(release, viewer_for(users["qa"], release, language="en"))
    with translation.override("en"):
        written = render_to_string(
            "releases/board.html#page",
            {**context, "show": "", "filters": FILTERS, "csrf_token": CSRF_PLACEHOLDER},
        )

    sent = compacted(written.encode()).decode()

    assert Shown(sent).shown == Shown(written).shown
    assert len(sent) < 0.75 * len(written)
    page = as_user("qa").get(board_url(release)).content.decode()
    body = page[page.index('<main id="main"') :]
    assert f'maxlength="5000">{escape(note)}</textarea>' in body
    assert not re.search(r">\n[ \t]+<", body)


def test_each_person_gets_the_header_of_their_own_account_and_language(
    as_user: Any, release: Release
) -> None:
    """Parts of the page shell are rendered once per language and kind of account, and
    reused: each request must still get those of its own."""
    headers = [
        (persona, as_user(persona, language).get(board_url(release)).content.decode())
        for persona, language in [("qa", "en"), ("admin", "en"), ("qa", "es"), ("admin", "es")]
    ]

    qa_en, admin_en, qa_es, admin_es = (page for _persona, page in headers)
    channels = f'href="{reverse("channels:channels")}"'
    assert channels not in qa_en + qa_es
    assert channels in admin_en and channels in admin_es
    assert ">Log out<" in qa_en and ">Cerrar sesión<" in admin_es
    assert '<option value="en" lang="en" selected>' in qa_en
    assert '<option value="es" lang="es" selected>' in qa_es
    releases = f'<li><a href="{reverse("releases:list")}">'
    assert releases + "Releases</a>" in qa_en and releases + "Versiones</a>" in qa_es
    for persona, page in headers:
        assert f'<span class="whoami">{persona}</span>' in page
        assert page.count('name="csrfmiddlewaretoken"') >= 2
        assert '<link rel="stylesheet" href="/static/' in page


def test_a_message_waiting_for_the_person_is_shown_on_a_shared_page(
    as_user: Any, release: Release
) -> None:
    client = as_user("qa")
    client.get(board_url(release))
    answer = client.post(item_url(release, item(release, QA_ITEM)), {"action": "done"}, follow=True)

    html = answer.content.decode()
    assert 'class="message message--' in html
    assert '<span class="whoami">qa</span>' in html


def test_a_live_update_goes_out_without_its_indentation(
    release: Release, users: dict[str, Any]
) -> None:
    viewer = viewer_for(users["qa"], release, language="en")
    workflow.tick(item(release, QA_ITEM), by=users["qa"])

    _revision, html = render_update(load_snapshot(release.pk), viewer, "board", 0)

    assert ROW.search(html) and 'id="signoff-panel"' in html
    assert not re.search(r">\n[ \t]+<", html)


def test_a_live_update_leaves_out_the_panels_the_page_already_shows(
    release: Release, users: dict[str, Any]
) -> None:
    viewer = viewer_for(users["qa"], release, language="en")
    first = workflow.tick(item(release, QA_ITEM), by=users["qa"])
    revision, _everything = render_update(
        load_snapshot(release.pk), viewer, "board", release.revision
    )
    # A note changes the row and nothing any panel counts.
    workflow.annotate_item(first, note="ran twice", by=users["qa"])

    _later, html = render_update(load_snapshot(release.pk), viewer, "board", revision)

    assert ROW.findall(html) == [str(first.pk)]
    for panel in PANELS:
        assert f'id="{panel}"' not in html, panel
    # A page that is further behind than this process remembers gets every panel.
    _again, from_the_start = render_update(load_snapshot(release.pk), viewer, "board", 0)
    for panel in PANELS:
        assert re.search(rf'id="{panel}"[^>]*hx-swap-oob="true"', from_the_start, re.S), panel


def test_a_live_update_sends_the_rows_of_a_panel_that_changed_not_the_whole_panel(
    release: Release, users: dict[str, Any]
) -> None:
    viewer = viewer_for(users["devops"], release, language="en")
    revision, _everything = render_update(
        load_snapshot(release.pk), viewer, "board", release.revision
    )
    workflow.tick(item(release, QA_ITEM), by=users["qa"])

    _later, html = render_update(load_snapshot(release.pk), viewer, "board", revision)

    assert 'id="signoff-panel"' not in html
    assert 'id="progress-panel"' not in html
    sent = re.findall(r'<li id="((?:signoff|bar)-[^"]+)" data-live-part hx-swap-oob="true"', html)
    # QA's sign-off row, and the bars of QA's role and of the item's phase.
    assert sent and all(part.startswith(("signoff-", "bar-")) for part in sent)
    assert any(part.startswith("signoff-") and part.endswith("-qa") for part in sent)
    assert not any(part.endswith("-devops") for part in sent)
    assert len([part for part in sent if part.startswith("bar-")]) == 2


# --- a big board: sections on demand --------------------------------------------------


def section_url(release: Release, index: int) -> str:
    return reverse("releases:section", args=[release.version, index])


def shown_items(html: str) -> list[str]:
    return [text.strip() for _key, text in LABEL.findall(html)]


@pytest.fixture
def big_board(monkeypatch: pytest.MonkeyPatch) -> None:
    # The small release stands in for a 2,000-item one: only three rows fit on the page.
    monkeypatch.setattr("releases.board.ON_DEMAND_ABOVE", 3)


@pytest.mark.usefixtures("big_board")
def test_a_big_board_shows_its_first_unsettled_sections_and_opens_the_others_on_demand(
    as_user: Any, release: Release
) -> None:
    html = as_user("qa").get(board_url(release)).content.decode()

    assert shown_items(html) == [BACKEND_ITEM, QA_ITEM, "TLS certificates installed"]
    for index in (3, 4, 5):
        assert f'hx-get="{section_url(release, index)}" hx-trigger="toggle once"' in html
    assert "0 of 2 items settled" in html
    # What the filters need to know of a section whose rows are not on the page.
    closed = re.findall(r'<details id="section-\d+" class="section section--on-demand"[^>]*>', html)
    assert [("data-mine" in tag, "data-pending" in tag) for tag in closed] == [
        (False, True),
        (False, True),
        (True, True),
    ]


@pytest.mark.usefixtures("big_board")
def test_an_opened_section_brings_its_rows_ready_to_tick(as_user: Any, release: Release) -> None:
    client = as_user("qa")
    client.get(board_url(release))
    response = client.get(section_url(release, 5), headers=HTMX)

    html = response.content.decode()
    assert response.status_code == 200
    assert html.lstrip().startswith('<div class="section__rows">')
    assert shown_items(html) == ["Deploy the backend", "Smoke tests in production"]
    assert CSRF_PLACEHOLDER not in html
    smoke = item(release, "Smoke tests in production")
    assert "disabled" not in checkbox(html, smoke)
    assert post_item(client, release, smoke, "tick").status_code == 302
    assert item(release, "Smoke tests in production").state == "done"


@pytest.mark.usefixtures("big_board")
def test_a_settled_section_folds_away_and_the_next_one_opens(
    as_user: Any, release: Release, users: dict[str, Any]
) -> None:
    workflow.tick(item(release, BACKEND_ITEM), by=users["backend"])

    html = as_user("qa").get(board_url(release)).content.decode()

    assert shown_items(html) == [QA_ITEM, "TLS certificates installed", "Screens reviewed"]
    assert f'hx-get="{section_url(release, 0)}"' in html
    assert "1 of 1 item settled" in html


@pytest.mark.usefixtures("big_board")
def test_a_live_update_brings_the_new_heading_of_a_section_holding_a_changed_row(
    as_user: Any, release: Release, users: dict[str, Any]
) -> None:
    viewer = viewer_for(users["qa"], release, language="en")
    since = release.revision
    smoke = workflow.tick(item(release, "Smoke tests in production"), by=users["qa"])

    html = render_update(load_snapshot(release.pk), viewer, "board", since)[1]
    answer = post_item(as_user("qa"), release, item(release, smoke.text), "note", note="seen",
                       htmx=True)  # fmt: skip

    heading = re.search(r'<details id="section-5"[^>]*>.*?</summary>', html, re.S)
    assert heading is not None and 'hx-swap-oob="true"' in heading.group(0)
    assert "1 of 2 items settled" in heading.group(0)
    assert "data-mine" in heading.group(0) and "data-pending" in heading.group(0)
    assert ROW.findall(html) == [str(smoke.pk)]
    # Only the one section; and never in an htmx answer, whose swap would close a
    # section the person opened.
    assert len(re.findall(r"<details id=", html)) == 1
    assert answer.status_code == 200 and f'id="item-{smoke.pk}"' in answer.content.decode()
    assert "<details id=" not in answer.content.decode()


@pytest.mark.usefixtures("big_board")
def test_an_answer_brings_the_section_headings_the_streams_update_would(
    as_user: Any, release: Release, users: dict[str, Any]
) -> None:
    viewer = viewer_for(users["qa"], release, language="en")
    shown = release.revision
    smoke = item(release, "Smoke tests in production")

    answer = as_user("qa").post(
        item_url(release, smoke),
        {"action": "tick", "version": smoke.version},
        headers=shown_at(shown),
    )

    # live.js applies this answer instead of the stream's update for its revision, and
    # keeps a section the person opened, as it does for that update.
    revision, update = render_update(load_snapshot(release.pk), viewer, "board", shown)
    html = answer.content.decode()
    headings = re.compile(r'<details id="section-\d+".*?</summary>', re.S)
    assert answer["X-Revision"] == str(revision)
    assert headings.findall(html) == headings.findall(update) != []
    assert ROW.findall(html) == ROW.findall(update) == [str(smoke.pk)]


def test_a_small_board_sends_no_section_headings(release: Release, users: dict[str, Any]) -> None:
    viewer = viewer_for(users["qa"], release, language="en")
    since = release.revision
    workflow.tick(item(release, "Smoke tests in production"), by=users["qa"])

    assert "<details id=" not in render_update(load_snapshot(release.pk), viewer, "board", since)[1]


@pytest.mark.usefixtures("big_board")
def test_a_section_is_only_for_those_who_see_the_board(as_user: Any, release: Release) -> None:
    assert as_user("outsider").get(section_url(release, 5)).status_code == 404
    anonymous = as_user(None).get(section_url(release, 5))
    assert anonymous.status_code == 302 and "/accounts/login/" in anonymous["Location"]
    missing = as_user("qa").get(section_url(release, 99))
    assert missing.status_code == 404


def test_a_small_board_shows_every_section(as_user: Any, release: Release) -> None:
    html = as_user("qa").get(board_url(release)).content.decode()
    assert len(shown_items(html)) == 7
    assert "section--on-demand" not in html


def test_the_go_no_go_panel_counts_the_pending_items_it_does_not_list(
    as_user: Any, release: Release, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("releases.board._REASONS_FIRST", 2)
    monkeypatch.setattr("releases.board._REASONS_LISTED", 3)
    html = as_user("support").get(board_url(release)).content.decode()
    panel = html[html.index('id="gonogo-panel"') :]
    panel = panel[: panel.index("</section>")]
    total = int(re.search(r"No-go: (\d+) reasons", panel).group(1))  # type: ignore[union-attr]
    reasons = blocking_reasons(release)
    stopping = [reason for reason in reasons if reason.code != "item-open"]

    assert len(reasons) == total > len(stopping) > 3
    # Whatever the cap, no reason other than a pending item is ever left out.
    for reason in stopping:
        assert escape(reason.message) in panel
    listed = panel.count("<li>")
    assert listed == len(stopping)
    assert f"…and {total - listed} more pending items, not listed here" in panel


# A request's own CSRF token, in the forms and in the header htmx sends.
_TOKEN = re.compile(r'(name="csrfmiddlewaretoken" value="|"X-CSRFToken": ")[^"]+')


def test_a_board_built_from_shared_rows_is_the_board_rendered_afresh(
    as_user: Any, release: Release, users: dict[str, Any]
) -> None:
    qa = as_user("qa")
    ticked, noted = item(release, QA_ITEM), item(release, BACKEND_ITEM)
    qa.get(board_url(release))  # every row rendered and kept

    workflow.tick(ticked, by=users["qa"])
    workflow.annotate_item(noted, by=users["backend"], note="merged at 14:02")
    reused = _TOKEN.sub(r"\1", qa.get(board_url(release)).content.decode())
    pages.clear()
    row_renders.clear()
    afresh = _TOKEN.sub(r"\1", qa.get(board_url(release)).content.decode())

    assert reused == afresh
    assert 'data-state="done"' in reused[reused.index(f'<li id="item-{ticked.pk}"') :][:300]
    assert "merged at 14:02" in reused


def test_a_row_holding_a_persons_own_csrf_token_is_never_shared(
    release: Release, users: dict[str, Any]
) -> None:
    viewer = viewer_for(users["qa"], release, language="en")
    context = board_context(release, viewer)
    row = next(row for row in context["rows"] if row.can_change)

    with translation.override("en"):
        first = row_html(row, {**context, "csrf_token": "token-of-one-person"})
        second = row_html(row, {**context, "csrf_token": "token-of-another"})

    assert "token-of-one-person" in first
    assert "token-of-another" in second and "token-of-one-person" not in second


def test_a_lead_signs_off_over_an_optional_item_and_the_panel_says_what_was_left_open(
    as_user: Any, release: Release, users: dict[str, Any]
) -> None:
    client = as_user("devops")
    workflow.tick(item(release, "TLS certificates installed"), by=users["devops"])
    before = client.get(board_url(release)).content.decode()

    signed = signoff_post(client, release, "sign", role="devops")
    after = client.get(board_url(release)).content.decode()

    assert "1 optional item open" in before
    assert "Every required item must be done or N/A first." not in before
    assert signed.status_code == 302
    assert "Left open:" in after and "“Nice-to-have dashboard”" in after


# --- my open items ------------------------------------------------------------------------

MY_ITEM = re.compile(
    r'<li class="mine__item"[^>]*>\s*<a href="#item-(\d+)">(.*?)</a>(.*?)</li>', re.S
)
# Each lead's items on the small release, in checklist order.
OPEN_OF = {
    "devops": ["TLS certificates installed", "Nice-to-have dashboard"],
    "backend": ["Merge everything", "Deploy the backend"],
    "frontend": ["Screens reviewed"],
    "qa": ["Unit tests pass", "Smoke tests in production"],
}


def panel_of(html: str, panel_id: str) -> str:
    start = html.index(f'<section id="{panel_id}"')
    return html[start : html.index("</section>", start)]


@pytest.mark.parametrize("persona", list(OPEN_OF))
def test_a_lead_meets_their_own_open_items_and_sign_off_first(
    as_user: Any, release: Release, persona: str
) -> None:
    html = as_user(persona).get(board_url(release)).content.decode()

    mine = panel_of(html, "mine-panel")
    listed = [(int(pk), text) for pk, text, _badges in MY_ITEM.findall(mine)]
    assert listed == [(item(release, text).pk, text) for text in OPEN_OF[persona]]
    assert f"{len(OPEN_OF[persona])} item" in mine
    label = Role(persona).label
    assert re.search(rf"<button[^>]*>\s*Sign off as {label}", mine)
    # Above everything else of the release: its status, the go/no-go, the checklist.
    assert html.index('id="mine-panel"') < html.index('id="release-status"')
    assert html.index('id="mine-panel"') < html.index('id="gonogo-panel"')
    assert html.index('id="mine-panel"') < html.index('id="board"')


def test_my_open_items_leaves_out_what_is_done_or_na_and_keeps_what_is_blocked(
    as_user: Any, release: Release, users: dict[str, Any]
) -> None:
    workflow.tick(item(release, "TLS certificates installed"), by=users["devops"])
    workflow.mark_blocked(
        item(release, "Nice-to-have dashboard"), by=users["devops"], reason="Grafana is down"
    )
    workflow.mark_not_applicable(item(release, QA_ITEM), by=users["qa"], reason="No unit tests")

    devops = panel_of(as_user("devops").get(board_url(release)).content.decode(), "mine-panel")
    qa = panel_of(as_user("qa").get(board_url(release)).content.decode(), "mine-panel")

    [(_pk, text, badges)] = MY_ITEM.findall(devops)
    assert text == "Nice-to-have dashboard"
    assert "Blocked" in badges and "optional" in badges
    assert [text for _pk, text, _badges in MY_ITEM.findall(qa)] == ["Smoke tests in production"]


def test_a_lead_with_nothing_open_is_told_so_beside_an_enabled_sign_off(
    as_user: Any, release: Release, users: dict[str, Any]
) -> None:
    workflow.tick(item(release, "Screens reviewed"), by=users["frontend"])

    mine = panel_of(as_user("frontend").get(board_url(release)).content.decode(), "mine-panel")

    assert "Nothing open: every item of your role is done or N/A." in mine
    assert MY_ITEM.findall(mine) == []
    button = found(re.compile(r"<button[^>]*>\s*Sign off as Frontend Lead", re.S), mine)
    assert "disabled" not in button


@pytest.mark.parametrize("persona", ["po", "support", "admin"])
def test_my_open_items_is_an_empty_hidden_place_for_those_who_sign_nothing_off(
    as_user: Any, release: Release, persona: str
) -> None:
    mine = panel_of(as_user(persona).get(board_url(release)).content.decode(), "mine-panel")

    assert re.match(r'<section id="mine-panel"[^>]* hidden', mine)
    assert "My open items" not in mine and "<button" not in mine


def test_a_disabled_sign_off_names_its_reason_in_text_it_points_to(
    as_user: Any, release: Release
) -> None:
    mine = panel_of(as_user("qa").get(board_url(release)).content.decode(), "mine-panel")

    buttons = re.findall(r"<button[^>]*>\s*Sign off as QA Lead", mine)
    assert len(buttons) == 2
    for button in buttons:
        assert "disabled" in button
        why_id = re.search(r'aria-describedby="([^"]+)"', button).group(1)  # type: ignore[union-attr]
        why = re.search(rf'<p class="signoff__hint" id="{why_id}">(.*?)</p>', mine, re.S)
        assert why and " ".join(why.group(1).split()) == (
            "Not yet: 1 required item is not done or N/A."
        )


def test_the_sign_off_panel_sends_a_lead_to_their_one_sign_off_button(
    as_user: Any, release: Release
) -> None:
    qa = as_user("qa").get(board_url(release)).content.decode()
    admin = as_user("admin").get(board_url(release)).content.decode()

    signoffs = panel_of(qa, "signoff-panel")
    assert "Sign off as" not in signoffs
    assert '<a href="#mine-signoff-1-qa">Your sign-off: under “My open items”</a>' in signoffs
    assert 'id="mine-signoff-1-qa"' in panel_of(qa, "mine-panel")
    # Staff sign for any lead from the panel itself.
    assert "Sign off as QA Lead" in panel_of(admin, "signoff-panel")


def test_signing_and_withdrawing_keep_the_buttons_id_so_the_focus_can_stay(
    as_user: Any, release: Release, users: dict[str, Any]
) -> None:
    workflow.tick(item(release, QA_ITEM), by=users["qa"])
    client = as_user("qa")
    before = panel_of(client.get(board_url(release)).content.decode(), "mine-panel")

    answer = signoff_post(client, release, "sign", htmx=True).content.decode()

    sign = found(re.compile(r'<button type="submit" id="mine-signoff-button-1-qa"[^>]*>'), before)
    assert "disabled" not in sign
    after = panel_of(answer, "mine-panel")
    assert re.search(r'id="mine-signoff-button-1-qa"[^>]*>Withdraw sign-off<', after)
    assert "Signed off the QA Lead items of “Pre”." in answer


def test_a_live_update_brings_my_open_items_only_to_the_lead_whose_items_changed(
    release: Release, users: dict[str, Any]
) -> None:
    viewers = {
        persona: viewer_for(users[persona], release, language="en") for persona in ("qa", "devops")
    }
    since = {
        persona: render_update(load_snapshot(release.pk), viewer, "board", release.revision)[0]
        for persona, viewer in viewers.items()
    }
    workflow.tick(item(release, QA_ITEM), by=users["qa"])

    qa = render_update(load_snapshot(release.pk), viewers["qa"], "board", since["qa"])[1]
    devops = render_update(load_snapshot(release.pk), viewers["devops"], "board", since["devops"])[
        1
    ]

    assert re.search(r'<section id="mine-panel"[^>]*hx-swap-oob="true"', qa)
    assert [text for _pk, text, _b in MY_ITEM.findall(qa)] == ["Smoke tests in production"]
    assert 'id="mine-panel"' not in devops


def test_two_leads_of_one_role_share_one_render_of_my_open_items(
    release: Release, users: dict[str, Any]
) -> None:
    second_qa = users["outsider"]
    workflow.assign(release, role="qa", user=second_qa, by=users["admin"])
    release.refresh_from_db()

    one = viewer_for(users["qa"], release, language="en")
    other = viewer_for(second_qa, release, language="en")

    # Nothing of the person is in the key: the same viewer, hence the same cached body.
    assert one == other
    with translation.override("en"):
        assert (
            board_context(release, one)["my_open_items"]
            == board_context(release, other)["my_open_items"]
        )


@pytest.mark.parametrize(
    ("persona", "why"),
    [
        ("support", "You follow this release without changing it."),
        ("backend", "Only the QA Lead changes this item."),
        ("qa", None),
    ],
)
def test_a_disabled_tick_says_why_to_whoever_reaches_it(
    as_user: Any, release: Release, persona: str, why: str | None
) -> None:
    entry = item(release, QA_ITEM)
    html = as_user(persona).get(board_url(release)).content.decode()

    box = checkbox(html, entry)
    if why is None:
        assert "disabled" not in box and f"locked-{entry.pk}" not in box
        return
    assert "disabled" in box and f'aria-describedby="meta-{entry.pk} locked-{entry.pk}"' in box
    assert f'<span class="visually-hidden" id="locked-{entry.pk}">{why}</span>' in html


@pytest.mark.usefixtures("big_board")
def test_my_open_items_on_a_big_board_point_to_closed_sections_and_count_the_rest(
    as_user: Any, release: Release, monkeypatch: pytest.MonkeyPatch
) -> None:
    client = as_user("qa")
    mine = panel_of(client.get(board_url(release)).content.decode(), "mine-panel")
    monkeypatch.setattr("releases.board._MINE_LISTED", 1)
    pages.clear()
    capped = panel_of(client.get(board_url(release)).content.decode(), "mine-panel")

    links = re.findall(r'<li class="mine__item"[^>]*>\s*<a href="#([^"]+)">(.*?)</a>', mine)
    # The smoke tests' section ("Run", the sixth) is not on the page until opened.
    assert links == [
        (f"item-{item(release, QA_ITEM).pk}", QA_ITEM),
        ("section-5", "Smoke tests in production"),
    ]
    assert "2 items of yours are open" in capped
    assert len(re.findall(r'<li class="mine__item"', capped)) == 1
    assert "…and 1 more, not listed here:" in " ".join(capped.split())
    assert f'<a href="{board_url(release)}?show=mine">show only mine</a>' in capped


def test_without_javascript_a_sign_off_returns_to_where_its_button_was(
    as_user: Any, release: Release, users: dict[str, Any]
) -> None:
    workflow.tick(item(release, QA_ITEM), by=users["qa"])
    by_lead = signoff_post(as_user("qa"), release, "sign")
    workflow.withdraw_sign_off(release, role="qa", phase="Pre", by=users["qa"])

    by_staff = signoff_post(as_user("admin"), release, "sign")

    assert by_lead["Location"] == board_url(release) + "#mine-panel"
    assert by_staff["Location"] == board_url(release) + "#signoff-panel"
    assert SignOff.objects.filter(signed_by=users["admin"], reopened_at__isnull=True).exists()


def test_a_tick_held_back_by_its_failing_check_or_a_closed_release_says_so(
    as_user: Any, release: Release, users: dict[str, Any]
) -> None:
    release.items.filter(text=QA_ITEM).update(checks=["ci"])
    entry = workflow.record_check_result(
        item(release, QA_ITEM), check="ci", passed=False, detail="3 tests failed"
    )
    failing = as_user("qa").get(board_url(release)).content.decode()
    workflow.set_status(release, status="cancelled", by=users["po"], reason="Moved to May")
    closed = as_user("qa").get(board_url(release)).content.decode()

    for html, why in (
        (failing, "Its automated check fails: tick it over the check with a reason, or fix it."),
        (closed, "The release is closed: nothing on it changes until staff reopen it."),
    ):
        assert "disabled" in checkbox(html, entry)
        assert f'<span class="visually-hidden" id="locked-{entry.pk}">{why}</span>' in html


def test_my_open_items_speaks_spanish_by_default(release: Release, users: dict[str, Any]) -> None:
    client = Client(headers={"Accept-Language": "es"})
    client.force_login(users["qa"])

    mine = panel_of(client.get(board_url(release)).content.decode(), "mine-panel")

    assert ">Mis pendientes</h2>" in mine
    assert "Todavía no: 1 ítem obligatorio no está hecho ni es N/A." in " ".join(mine.split())
    assert "Tienes 2 ítems pendientes" in mine
