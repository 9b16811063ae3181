"""Staff import a checklist in the browser: upload, preview, confirm."""

from __future__ import annotations

import html
import time
from typing import Any

import pytest
from django.core import signing
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client

from releases import checklists, imports, workflow
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


def confirm_of(page: Any, **fields: str) -> dict[str, str]:
    """The confirm form as the preview page carries it, with what the person typed."""
    form = page.context["confirm"]
    data = {name: str(form[name].value()) for name in form.fields}
    return {**data, **fields}


def test_it_creates_the_template_on_confirm(staff: Client) -> None:
    preview = upload(staff, checklists.DEFAULT_CHECKLIST.read_bytes(), name="seed.md")
    response = staff.post(URL, confirm_of(preview, name="Go-live"), follow=True)
    template = ChecklistTemplate.objects.get(name="Go-live")
    assert template.items.count() == 66
    assert template.gate_position == 34
    assert "Template “Go-live” saved" in response.content.decode()


def test_it_gives_unowned_items_the_owner_chosen_on_upload(staff: Client) -> None:
    preview = upload(
        staff,
        b"# Ship\n\n- [ ] one\n- [ ] two <!-- deploycheck: owner=devops -->\n",
        default_owner="frontend",
    )
    assert preview.context["defaulted"] == 1
    assert "Frontend Lead" in preview.content.decode()
    # The owner is part of what was previewed: one posted beside it changes nothing.
    staff.post(URL, confirm_of(preview, name="Ship", default_owner="qa"))
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


SHIP = b"# Ship\n\n- [ ] one\n"


def test_it_refuses_a_preview_whose_text_was_altered(staff: Client) -> None:
    preview = upload(staff, SHIP)
    signed = confirm_of(preview)["preview"]
    altered = signed.replace(signed[5], "A" if signed[5] != "A" else "B", 1)

    response = staff.post(URL, confirm_of(preview, preview=altered, name="Ship"), follow=True)

    assert response.redirect_chain[-1][0] == URL
    assert "The preview was altered; upload the file again." in response.content.decode()
    assert not ChecklistTemplate.objects.exists()


@pytest.mark.parametrize(
    "data",
    [
        {"text": "- [ ] forged\n", "name": "x", "default_owner": "qa"},  # the unsigned form
        {"preview": "", "name": "x"},
        {"preview": "not-signed", "name": "x"},
    ],
)
def test_it_refuses_a_preview_it_did_not_sign(staff: Client, data: dict[str, str]) -> None:
    response = staff.post(URL, data, follow=True)

    assert response.redirect_chain[-1][0] == URL
    assert "The preview was altered; upload the file again." in response.content.decode()
    assert not ChecklistTemplate.objects.exists()


def test_it_refuses_a_preview_signed_for_something_else(staff: Client) -> None:
    # Another signer's value (a share-link cookie, say) is not a preview.
    other = signing.TimestampSigner(salt="elsewhere").sign_object({"text": "- [ ] a\n"})

    response = staff.post(URL, {"preview": other, "name": "x"}, follow=True)

    assert "The preview was altered; upload the file again." in response.content.decode()


class AnHourLater:
    """Stands in for the time module that django.core.signing reads the clock from."""

    @staticmethod
    def time() -> float:
        return time.time() + imports.PREVIEW_MAX_AGE.total_seconds() + 1


def test_it_refuses_a_preview_older_than_an_hour(
    staff: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    preview = upload(staff, SHIP)
    monkeypatch.setattr(signing, "time", AnHourLater)

    response = staff.post(URL, confirm_of(preview, name="Ship"), follow=True)

    assert response.redirect_chain[-1][0] == URL
    assert (
        "The preview expired (a preview lasts an hour); upload the file again."
        in response.content.decode()
    )
    assert not ChecklistTemplate.objects.exists()


def test_it_lets_the_person_rename_the_template_on_the_preview(staff: Client) -> None:
    preview = upload(staff, SHIP)

    staff.post(URL, confirm_of(preview, name="  Renamed  "))

    assert list(ChecklistTemplate.objects.values_list("name", flat=True)) == ["Renamed"]


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("n" * 201, "The template name is longer than 200 characters (it has 201)."),
        ("n" * 5000, "The template name is longer than 200 characters (it has 5,000)."),
        ("   ", "Give the template a name."),
    ],
)
def test_it_explains_a_bad_name_beside_the_field_and_keeps_the_preview(
    staff: Client, name: str, message: str
) -> None:
    preview = upload(staff, SHIP)

    response = staff.post(URL, confirm_of(preview, name=name))

    assert response.status_code == 200
    assert response.context["confirm"].errors["name"] == [message]
    page = response.content.decode()
    assert message in page
    assert "1 phase" in page or "1 item" in page  # the preview is still shown
    assert not ChecklistTemplate.objects.exists()
    # Fixing the name is all it takes.
    staff.post(URL, confirm_of(response, name="Ship"))
    assert ChecklistTemplate.objects.filter(name="Ship").exists()


@pytest.mark.parametrize(
    ("content", "file_name", "origin"),
    [
        (b"# " + b"T" * 250 + b"\n\n- [ ] one\n", "ship.md", "the checklist's title"),
        (b"- [ ] one\n", "f" * 230 + ".md", "the file name"),
    ],
)
def test_it_explains_a_derived_name_that_is_too_long(
    staff: Client, content: bytes, file_name: str, origin: str
) -> None:
    preview = upload(staff, content, name=file_name)

    assert preview.status_code == 200
    errors = preview.context["confirm"].errors["name"]
    assert errors[0].startswith("The template name is longer than 200 characters")
    assert errors[1] == f"It comes from {origin}; shorten it here."
    assert "expired" not in preview.content.decode()
    # The preview stands: shortening the name creates the template.
    staff.post(URL, confirm_of(preview, name="Ship"))
    assert ChecklistTemplate.objects.get(name="Ship").items.count() == 1


def test_it_explains_a_typed_name_that_is_too_long_on_the_upload(staff: Client) -> None:
    file = SimpleUploadedFile("ship.md", SHIP, content_type="text/markdown")
    response = staff.post(URL, {"file": file, "name": "n" * 201, "default_owner": "qa"})

    assert response.context["form"].errors["name"] == [
        "The template name is longer than 200 characters (it has 201)."
    ]


# Headings and cells longer than the columns that keep them: each is refused before
# anything is written, with the line or the place to blame, never a 500 at confirm.
LONG = "L" * 310


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (f"# Ship\n\n## {LONG}\n\n- [ ] one\n", "the heading is 310 characters long"),
        (
            f"# Ship\n\n## Pre\n\n### {LONG}\n\n- [ ] one\n",
            "the heading is 310 characters long",
        ),
        (
            f"# Ship\n\n## Pre\n\n- [ ] one\n\n## Rollback {LONG}\n\n1. Roll back\n",
            "the rollback plan heading is 319 characters long; the limit is 200",
        ),
        (
            "# Ship\n\n## Pre\n\n- [ ] one\n\n## Rollback\n\n1. Back\n\n"
            f"   ```{'b' * 50}\n   deploy --previous\n   ```\n",
            "a rollback step's code language is 50 characters long; the limit is 40",
        ),
        (
            f"# Ship\n\n## Pre\n\n- [ ] one\n\n## Contacts {LONG}\n\n"
            "| Role | Name | Contact |\n|---|---|---|\n| QA | Ana | ana@example.com |\n",
            "the emergency contacts heading is 319 characters long; the limit is 200",
        ),
        (
            "# Ship\n\n## Pre\n\n- [ ] one\n\n## Contacts\n\n"
            f"| Role | Name | Contact |\n|---|---|---|\n| {'R' * 150} | Ana | ana@example.com |\n",
            "an emergency contact's role is 150 characters long; the limit is 100",
        ),
        (
            "# Ship\n\n## Pre\n\n- [ ] one\n\n## Contacts\n\n"
            f"| Role | Name | Contact |\n|---|---|---|\n| QA | {'N' * 250} | ana@example.com |\n",
            "an emergency contact's name is 250 characters long; the limit is 200",
        ),
        (
            "# Ship\n\n## Pre\n\n- [ ] one\n\n## Contacts\n\n"
            f"| Role | Name | Contact |\n|---|---|---|\n| QA | Ana | {'c' * 350} |\n",
            "an emergency contact's contact is 350 characters long; the limit is 300",
        ),
    ],
    ids=["phase", "section", "rollback", "code-language", "contacts", "role", "name", "contact"],
)
def test_it_refuses_headings_and_cells_longer_than_their_column(
    staff: Client, content: str, message: str
) -> None:
    response = upload(staff, content.encode(), name="long.md")

    assert response.status_code == 200
    page = html.unescape(response.content.decode())
    assert message in page
    assert "long.md" in page
    assert "confirm" not in response.context or response.context.get("confirm") is None
    assert not ChecklistTemplate.objects.exists()


@pytest.mark.parametrize("cell", ["+34 " + "6" * 60, "a" * 250 + "@example.com"])
def test_it_keeps_a_contact_part_too_long_for_a_phone_or_email_as_written(
    staff: Client, users: dict[str, Any], cell: str
) -> None:
    # A release splits each contact cell into a phone, an email and the rest: a part too
    # long for its column made creating any release from the template a 500.
    content = (
        "# Ship\n\n## Pre\n\n- [ ] one\n\n## Contacts\n\n"
        f"| Role | Name | Contact |\n|---|---|---|\n| QA | Ana | {cell} |\n"
    )
    preview = upload(staff, content.encode(), name="phones.md")
    assert preview.status_code == 200 and "confirm" in preview.context
    template = workflow.import_template(
        checklists.parse_text(content, "phones.md"), "Phones", by=users["admin"]
    )

    made = workflow.create_release(template, version="v9.0.0", title="x", by=users["admin"])

    contact = made.contacts.get()
    assert (contact.phone, contact.email, contact.other) == ("", "", cell)
    # Nobody can be called or mailed there: it holds go-live up like a placeholder.
    assert contact.has_placeholder()


@pytest.mark.parametrize("persona", ["qa", "po", "support", "outsider"])
def test_it_lets_only_staff_import(users: dict[str, Any], persona: str) -> None:
    client = Client()
    client.force_login(users[persona])
    assert client.get(URL).status_code == 403
    response = client.post(URL, {"preview": "x", "text": "- [ ] a\n", "name": "x"})
    assert response.status_code == 403
    assert not ChecklistTemplate.objects.exists()


def test_it_sends_anonymous_people_to_log_in(db: Any) -> None:
    response = Client().get(URL)
    assert response.status_code == 302
    assert response["Location"].startswith("/accounts/login/")
