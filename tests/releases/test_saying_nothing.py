"""A reason or a message made only of characters that show nothing (whitespace, zero-width
spaces and joiners, the word joiner, the byte-order mark, bidirectional controls, wide
and non-breaking spaces) says nothing: it is refused where a blank one is, with the
same message, and an optional one is kept as none. The pipeline API's side is in
tests/api/test_day.py.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
from django.test import Client
from django.urls import reverse

from releases import workflow
from releases.models import AuditAction, AuditEvent, IncidentUpdate, Release, ReleaseStatus
from tests.conftest import item

HTMX = {"HX-Request": "true"}
QA_ITEM = "Unit tests pass"


@pytest.mark.parametrize(
    "text",
    [
        "",
        " \t\n",
        "\u200b",
        "\u200b\u200b",
        "\u2060",
        "\ufeff",
        "\u200b\u2060",
        "\u200c\u200d",
        "\u3000\u00a0",
        "\u202e",
        "\u2066\u2069",
        "\u3164",
        "\u2800",
        "\ufe0f",
        "\x07",
    ],
)
def test_text_of_only_invisible_characters_says_nothing(text: str) -> None:
    assert workflow.says_nothing(text)
    assert workflow.trimmed(text) == ""


@pytest.mark.parametrize("text", ["ok", "\u200bok", "日本", "😀", "\u00a0 a \u3000"])
def test_text_with_something_to_read_says_something(text: str) -> None:
    assert not workflow.says_nothing(text)
    assert workflow.trimmed(text) == text.strip()


@dataclass(frozen=True)
class Typed:
    """A required text typed in the browser as nothing but invisible characters."""

    fixture: str
    persona: str
    url: Callable[[Release], str]
    form: Callable[[Release], dict[str, Any]]
    refusal: str
    # What the page gives back of what was typed; None for the board's refused row.
    shown: str | None
    htmx: bool = False


def confirm(action: str) -> Callable[[Release], str]:
    return lambda release: reverse("releases:confirm", args=[release.version, action])


def item_url(release: Release) -> str:
    return reverse("releases:item", args=[release.version, item(release, QA_ITEM).pk])


def item_form(action: str, reason: str) -> Callable[[Release], dict[str, Any]]:
    return lambda release: {
        "action": action,
        "version": item(release, QA_ITEM).version,
        "reason": reason,
    }


def updates_url(release: Release) -> str:
    return reverse("releases:updates", args=[release.version])


TYPED = {
    "blocked item's reason": Typed(
        "release",
        "qa",
        item_url,
        item_form("blocked", "\u200b"),
        "Say why the item is blocked.",
        None,
        htmx=True,
    ),
    "N/A item's reason": Typed(
        "release",
        "qa",
        item_url,
        item_form("na", "\u200b"),
        "Say why the item is not applicable.",
        None,
        htmx=True,
    ),
    "move back to planned": Typed(
        "ready_release",
        "admin",
        confirm("status-" + ReleaseStatus.PLANNED),
        lambda r: {"reason": "\u200b\u200b"},
        "Say why the release moves.",
        "\u200b\u200b</textarea>",
    ),
    "cancellation": Typed(
        "release",
        "admin",
        confirm("status-" + ReleaseStatus.CANCELLED),
        lambda r: {"reason": "\u2060"},
        "Say why the release moves.",
        "\u2060</textarea>",
    ),
    "approval": Typed(
        "ready_release",
        "po",
        confirm("approve"),
        lambda r: {"reason": "\ufeff"},
        "Say why go-live is approved now.",
        "\ufeff</textarea>",
    ),
    "approval revoked": Typed(
        "approved",
        "po",
        lambda r: reverse("releases:revoke-approval", args=[r.version]),
        lambda r: {"reason": "\u200d"},
        "Say why go-live approval is revoked.",
        None,
        htmx=True,
    ),
    "incident update": Typed(
        "release",
        "po",
        updates_url,
        lambda r: {"state": "monitoring", "message": "\u200b\u2060"},
        "Write what is happening for the people outside the team.",
        "\u200b\u2060</textarea>",
    ),
    "incident update, confirmed": Typed(
        "release",
        "devops",
        updates_url,
        lambda r: {"state": "monitoring", "message": "\u200b\ufeff", "confirmed": "1"},
        "Write what is happening for the people outside the team.",
        "\u200b\ufeff</textarea>",
    ),
    "incident update of wide and non-breaking spaces": Typed(
        "release",
        "po",
        updates_url,
        lambda r: {"state": "monitoring", "message": "\u3000\u00a0"},
        "Write what is happening for the people outside the team.",
        "\u3000\u00a0</textarea>",
    ),
    "incident update of a bidirectional control": Typed(
        "release",
        "po",
        updates_url,
        lambda r: {"state": "monitoring", "message": "\u202e"},
        "Write what is happening for the people outside the team.",
        "\u202e</textarea>",
    ),
}


def kept(release: Release) -> dict[str, Any]:
    """What any of these posts would change."""
    release.refresh_from_db()
    return {
        "release": (release.status, release.revision),
        "approvals": list(release.approvals.values_list("pk", "revoked_at")),
        "items": sorted(release.items.values_list("pk", "state", "reason", "version")),
        "updates": IncidentUpdate.objects.count(),
        "events": AuditEvent.objects.count(),
    }


@pytest.mark.parametrize("typed", TYPED.values(), ids=TYPED.keys())
def test_every_page_refuses_a_required_text_that_says_nothing_as_a_blank_one(
    request: pytest.FixtureRequest, users: dict[str, Any], typed: Typed
) -> None:
    release: Release = request.getfixturevalue(typed.fixture)
    client = Client(headers={"Accept-Language": "en", **(HTMX if typed.htmx else {})})
    client.force_login(users[typed.persona])
    before = kept(release)

    response = client.post(typed.url(release), typed.form(release))

    page = response.content.decode()
    assert response.status_code == 422
    assert typed.refusal in page
    assert "missing from the form" not in page
    if typed.shown is not None:
        assert typed.shown in page
    assert kept(release) == before


def test_the_updates_page_says_so_in_spanish_as_the_api_does(
    as_user: Any, release: Release
) -> None:
    response = as_user("po", "es").post(
        updates_url(release), {"state": "monitoring", "message": "\u3000\u00a0"}
    )

    page = response.content.decode()
    assert response.status_code == 422
    assert "Escribe qué está pasando" in page
    assert "falta en el formulario" not in page


def test_an_optional_reason_that_says_nothing_is_kept_as_none(
    ready_release: Release, users: dict[str, Any]
) -> None:
    workflow.set_status(
        ready_release, status=ReleaseStatus.PLANNED, by=users["admin"], reason="\u200b\u3000"
    )

    event = ready_release.audit_events.get(action=AuditAction.RELEASE_STATUS)
    assert event.after == {"status": ReleaseStatus.PLANNED}


@pytest.mark.parametrize(
    "typed", ["\u200b", "\u200c", "\u2060", "\ufeff", " \u2060\u200b ", "\u202e"]
)
def test_a_note_of_only_invisible_characters_is_refused_and_the_note_kept(
    release: Release, users: dict[str, Any], typed: str
) -> None:
    entry = workflow.annotate_item(item(release, QA_ITEM), by=users["qa"], note="flaky on Mondays")
    events = AuditEvent.objects.count()

    with pytest.raises(workflow.WorkflowError) as refused:
        workflow.annotate_item(entry, by=users["qa"], note=typed)

    assert refused.value.message == (
        "The note holds only invisible characters, so it would show nothing: write "
        "something that can be read, or empty the field to remove the note."
    )

    entry.refresh_from_db()
    assert (entry.note, entry.version) == ("flaky on Mondays", 1)
    assert AuditEvent.objects.count() == events


@pytest.mark.parametrize("htmx", [False, True], ids=["without JavaScript", "htmx"])
def test_the_board_refuses_a_note_of_only_invisible_characters_and_keeps_it_typed(
    as_user: Any, release: Release, users: dict[str, Any], htmx: bool
) -> None:
    entry = workflow.annotate_item(item(release, QA_ITEM), by=users["qa"], note="flaky on Mondays")

    response = as_user("qa", "es").post(
        item_url(release),
        {"action": "note", "version": entry.version, "note": "\ufeff\u200b"},
        headers=HTMX if htmx else {},
    )

    page = response.content.decode()
    assert response.status_code == 422
    assert "La nota solo contiene caracteres invisibles" in page
    assert "vacía el campo para quitar la nota" in page
    assert "\ufeff\u200b</textarea>" in page
    entry.refresh_from_db()
    assert entry.note == "flaky on Mondays"


@pytest.mark.parametrize("typed", ["\u200b", "\u2060\ufeff", "\u3164"])
def test_a_name_or_title_of_only_invisible_characters_is_refused(
    release: Release, users: dict[str, Any], typed: str
) -> None:
    contact = release.contacts.get()
    holds_nothing = "holds only invisible characters; write something that can be read."

    with pytest.raises(workflow.WorkflowError, match=holds_nothing):
        workflow.create_share_link(release, label=typed, by=users["admin"])
    with pytest.raises(workflow.WorkflowError, match=holds_nothing):
        workflow.update_contact(contact, by=users["admin"], name=typed, phone="1", email="")

    assert not release.share_links.exists()
    assert release.contacts.get().name == contact.name
    # Zero-width joiners inside a name that reads are the name's own (Persian, emoji).
    workflow.update_contact(contact, by=users["admin"], name="Dana\u200cOps", phone="1", email="")
    assert release.contacts.get().name == "Dana\u200cOps"
