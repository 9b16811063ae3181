"""Staff import a checklist in the browser: upload, preview, confirm."""

from __future__ import annotations

from typing import Any

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client

from releases import checklists
from releases.models import ChecklistTemplate

URL = "/templates/import/"


@pytest.fixture
def staff(users: dict[str, Any]) -> Client:
    client = Client(headers={"accept-language": "en"})
    client.force_login(users["admin"])
    return client


def upload(client: Client, content: bytes, name: str = "checklist.md", **fields: str) -> Any:
    data = {
        "file": SimpleUploadedFile(name, content, content_type="text/markdown"),
        "default_owner": "qa",
        **fields,
    }
    return client.post(URL, data)


def test_it_previews_the_seed_without_writing_anything(staff: Client) -> None:
    response = upload(staff, checklists.DEFAULT_CHECKLIST.read_bytes())
    assert response.status_code == 200
    page = response.content.decode()
    assert "3 phases, 13 sections, 66 items, 6 rollback steps, 5 emergency contacts" in page
    assert "Todas las pruebas unitarias pasan (backend y frontend)" in page
    assert "QA Lead" in page
    assert not ChecklistTemplate.objects.exists()


def test_it_creates_the_template_on_confirm(staff: Client) -> None:
    preview = upload(staff, checklists.DEFAULT_CHECKLIST.read_bytes(), name="seed.md")
    confirm = {
        "text": preview.context["confirm"].initial["text"],
        "name": "Go-live",
        "default_owner": "qa",
    }
    response = staff.post(URL, confirm, follow=True)
    template = ChecklistTemplate.objects.get(name="Go-live")
    assert template.items.count() == 66
    assert template.gate_position == 34
    assert "Template “Go-live” saved" in response.content.decode()


def test_it_gives_unowned_items_the_chosen_owner(staff: Client) -> None:
    preview = upload(staff, b"# Ship\n\n- [ ] one\n- [ ] two <!-- deploycheck: owner=devops -->\n")
    assert preview.context["defaulted"] == 1
    staff.post(
        URL,
        {
            "text": preview.context["confirm"].initial["text"],
            "name": "Ship",
            "default_owner": "frontend",
        },
    )
    owners = list(
        ChecklistTemplate.objects.get(name="Ship").items.values_list("owner_role", flat=True)
    )
    assert owners == ["frontend", "devops"]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"# Notes\n\nNothing to tick.\n", "bad.md: no task items found"),
        (b"- [ ] fine\n- [ ] x <!-- deploycheck: owner=nobody -->\n", "bad.md:2: unknown owner"),
        (b"\x00\x01\x02binary", "bad.md"),
    ],
)
def test_it_refuses_bad_files_with_the_line_to_blame(
    staff: Client, content: bytes, message: str
) -> None:
    response = upload(staff, content, name="bad.md")
    assert response.status_code == 200
    assert message in response.content.decode()
    assert not ChecklistTemplate.objects.exists()


def test_it_refuses_an_oversized_upload(staff: Client, settings: Any) -> None:
    settings.CHECKLIST_MAX_BYTES = 100
    response = upload(staff, b"- [ ] item\n" * 20, name="big.md")
    assert "too large" in response.content.decode()
    assert not ChecklistTemplate.objects.exists()


def test_it_sends_an_altered_preview_back_to_the_upload(staff: Client) -> None:
    response = staff.post(
        URL, {"text": "no items", "name": "x", "default_owner": "qa"}, follow=True
    )
    assert response.redirect_chain[-1][0] == URL
    assert "no task items found" in response.content.decode()
    assert not ChecklistTemplate.objects.exists()


@pytest.mark.parametrize("persona", ["qa", "po", "support", "outsider"])
def test_it_lets_only_staff_import(users: dict[str, Any], persona: str) -> None:
    client = Client()
    client.force_login(users[persona])
    assert client.get(URL).status_code == 403
    response = client.post(URL, {"text": "- [ ] a\n", "name": "x", "default_owner": "qa"})
    assert response.status_code == 403
    assert not ChecklistTemplate.objects.exists()


def test_it_sends_anonymous_people_to_log_in(db: Any) -> None:
    response = Client().get(URL)
    assert response.status_code == 302
    assert response["Location"].startswith("/accounts/login/")
