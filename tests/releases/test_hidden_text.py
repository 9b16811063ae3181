"""Invisible bidirectional control characters (U+202E and its kin) are refused in every
text a person types in the browser, as in notes and reasons: each page answers 422 with
the workflow's message, keeps what was typed where it shows a form, and changes nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
from django.test import Client
from django.urls import reverse

from releases import workflow
from releases.models import (
    AuditEvent,
    ChecklistTemplate,
    EmergencyContact,
    Release,
    ShareLink,
)
from tests.conftest import item

HIDDEN = "invisible bidirectional control characters"
HTMX = {"HX-Request": "true"}
SPOOFED_LINK = "https://ci.example/run/\u202e1gpj.exe"


@pytest.fixture
def rolling_back(deployed: Release, users: dict[str, Any]) -> Release:
    workflow.declare_rollback(deployed, by=users["devops"], reason="errors", severity="major")
    deployed.refresh_from_db()
    return deployed


def the_contact(release: Release) -> EmergencyContact:
    return release.contacts.get()


def contact_form(release: Release, **typed: str) -> dict[str, str]:
    contact = the_contact(release)
    fields = {"name": contact.name, "phone": "+34 600 000 001", "email": "", **typed}
    return {
        "action": "contact",
        "contact": str(contact.pk),
        **{f"contact-{contact.pk}-{key}": value for key, value in fields.items()},
    }


def create_form(release: Release, **typed: str) -> dict[str, str]:
    template = ChecklistTemplate.objects.get()
    return {"template": str(template.pk), "version": "v2.0.0", "title": "Summer", **typed}


def confirm(action: str) -> Callable[[Release], str]:
    return lambda release: reverse("releases:confirm", args=[release.version, action])


def qa_item_url(release: Release) -> str:
    return reverse("releases:item", args=[release.version, item(release, "Unit tests pass").pk])


def qa_item_form(release: Release) -> dict[str, Any]:
    entry = item(release, "Unit tests pass")
    return {"action": "evidence", "version": entry.version, "evidence_url": SPOOFED_LINK}


def step_url(release: Release) -> str:
    step = release.rollback_steps.get()
    return reverse("releases:rollback-step", args=[release.version, step.pk])


def kept(release: Release) -> dict[str, Any]:
    """What any of these posts would change."""
    release.refresh_from_db()
    return {
        "release": (release.status, release.title, release.revision),
        "approvals": list(release.approvals.values_list("pk", "revoked_at")),
        "contacts": list(release.contacts.values_list("name", "email")),
        "evidence": sorted(release.items.values_list("evidence_url", flat=True)),
        "releases": Release.objects.count(),
        "links": ShareLink.objects.count(),
        "events": AuditEvent.objects.count(),
    }


@dataclass(frozen=True)
class Typed:
    """A text typed in the browser: where it starts from, who posts it, and where."""

    fixture: str
    persona: str
    url: Callable[[Release], str]
    form: Callable[[Release], dict[str, Any]]
    # What the page must give back, None where the answer is the board's refused row.
    shown: str | None
    htmx: bool = False


TYPED = {
    "approval reason": Typed(
        "ready_release", "po", confirm("approve"), lambda r: {"reason": "ok\u202e"}, "ok\u202e"
    ),
    "status move reason": Typed(
        "release",
        "admin",
        confirm("status-cancelled"),
        lambda r: {"reason": "stop\u2067"},
        "stop\u2067",
    ),
    "approval revoked's reason": Typed(
        "approved",
        "po",
        lambda r: reverse("releases:revoke-approval", args=[r.version]),
        lambda r: {"reason": "late\u202e"},
        None,
        htmx=True,
    ),
    "release title": Typed(
        "release",
        "admin",
        lambda r: reverse("releases:create"),
        lambda r: create_form(r, title="Sum\u202emer"),
        'value="Sum\u202emer"',
    ),
    "changelog link": Typed(
        "release",
        "admin",
        lambda r: reverse("releases:create"),
        lambda r: create_form(r, changelog_url="https://example.com/\u202edm.GOLEGNAHC"),
        'value="https://example.com/\u202edm.GOLEGNAHC"',
    ),
    "contact name": Typed(
        "release",
        "admin",
        lambda r: reverse("releases:people", args=[r.version]),
        lambda r: contact_form(r, name="Dolores\u202e Ortega"),
        'value="Dolores\u202e Ortega"',
    ),
    "contact email": Typed(
        "release",
        "po",
        lambda r: reverse("releases:people", args=[r.version]),
        lambda r: contact_form(r, email="dana@exa\u202emple.com"),
        'value="dana@exa\u202emple.com"',
    ),
    "share-link label": Typed(
        "release",
        "admin",
        lambda r: reverse("releases:share", args=[r.version]),
        lambda r: {"action": "create", "label": "lab\u202eel"},
        'value="lab\u202eel"',
    ),
    "item evidence link": Typed("release", "qa", qa_item_url, qa_item_form, None, htmx=True),
    "rollback step evidence link": Typed(
        "rolling_back",
        "devops",
        step_url,
        lambda r: {"action": "evidence", "version": "0", "evidence_url": SPOOFED_LINK},
        None,
        htmx=True,
    ),
}


@pytest.mark.parametrize("typed", TYPED.values(), ids=TYPED.keys())
def test_every_page_refuses_invisible_bidirectional_controls_and_keeps_what_was_typed(
    request: pytest.FixtureRequest, users: dict[str, Any], typed: Typed
) -> None:
    release: Release = request.getfixturevalue(typed.fixture)
    client = Client(headers={"Accept-Language": "en", **(HTMX if typed.htmx else {})})
    client.force_login(users[typed.persona])
    before = kept(release)

    response = client.post(typed.url(release), typed.form(release))

    page = response.content.decode()
    assert response.status_code == 422
    assert HIDDEN in page
    if typed.shown is not None:
        assert typed.shown in page
    assert kept(release) == before


def test_the_people_page_says_so_in_spanish(release: Release, users: dict[str, Any]) -> None:
    client = Client(headers={"Accept-Language": "es"})
    client.force_login(users["admin"])

    response = client.post(
        reverse("releases:people", args=[release.version]),
        contact_form(release, name="Dolores\u202e Ortega"),
    )

    assert response.status_code == 422
    assert "caracteres invisibles de control bidireccional (U+202E)" in response.content.decode()
    assert the_contact(release).name == "Dana Ops"
