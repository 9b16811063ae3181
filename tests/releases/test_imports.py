"""Staff import a checklist in the browser: upload, preview, confirm."""

from __future__ import annotations

import html
import time
from typing import Any

import pytest
from django.core import signing
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client

from releases import checklists, imports, markdown, workflow
from releases.models import ChecklistTemplate, blocking_reasons

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


def test_it_previews_the_rollback_steps_as_the_board_renders_them(staff: Client) -> None:
    response = upload(
        staff,
        b"- [ ] one\n\n## Rollback\n\n1. **Revert flag**: disable\n   ```bash\n   off\n   ```\n",
    )

    page = response.content.decode()
    assert "<strong>Revert flag</strong>: disable" in page
    assert "**Revert flag**" not in page


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
        (
            b"- [ ] one\n\n## Rollback\n\n1. **Revert flag**: disable\n   <!--\n"
            b"   ```bash\n   flag off\n   ```\n",
            "bad.md:6: the rollback step&#x27;s line &#x27;&lt;!--&#x27; opens an HTML comment",
        ),
    ],
)
def test_it_refuses_bad_files_with_the_line_to_blame(
    staff: Client, content: bytes, message: str
) -> None:
    response = upload(staff, content, name="bad.md")
    assert response.status_code == 422
    assert message in response.content.decode()
    assert not ChecklistTemplate.objects.exists()


def test_it_refuses_an_oversized_upload(staff: Client, settings: Any) -> None:
    settings.CHECKLIST_MAX_BYTES = 100
    response = upload(staff, b"- [ ] item\n" * 20, name="big.md")
    assert response.status_code == 422
    assert "too large" in response.content.decode()
    assert not ChecklistTemplate.objects.exists()


SHIP = b"# Ship\n\n- [ ] one\n"


def test_it_refuses_a_preview_whose_text_was_altered(staff: Client) -> None:
    preview = upload(staff, SHIP)
    signed = confirm_of(preview)["preview"]
    altered = signed.replace(signed[5], "A" if signed[5] != "A" else "B", 1)

    response = staff.post(URL, confirm_of(preview, preview=altered, name="Ship it"))

    assert response.status_code == 422
    assert "The preview was altered; upload the file again." in response.content.decode()
    # Back on the upload form, with the name typed on the preview and the file kept.
    assert response.context["form"]["name"].value() == "Ship it"
    assert response.context["kept"] == imports.Upload("checklist.md", SHIP.decode())
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
    response = staff.post(URL, data)

    assert response.status_code == 422
    assert "The preview was altered; upload the file again." in response.content.decode()
    assert response.context["form"]["name"].value() == "x"
    assert not ChecklistTemplate.objects.exists()


def test_it_refuses_a_preview_signed_for_something_else(staff: Client) -> None:
    # Another signer's value (a share-link cookie, say) is not a preview.
    other = signing.TimestampSigner(salt="elsewhere").sign_object({"text": "- [ ] a\n"})

    response = staff.post(URL, {"preview": other, "name": "x"})

    assert response.status_code == 422
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

    response = staff.post(URL, confirm_of(preview, name="Ship"))

    assert response.status_code == 422
    assert response.context["form"]["name"].value() == "Ship"
    assert (
        "The preview expired (a preview lasts an hour); upload the file again."
        in response.content.decode()
    )
    assert not ChecklistTemplate.objects.exists()


def test_it_refuses_a_preview_the_limits_no_longer_take_with_its_problems_and_the_name(
    staff: Client, settings: Any
) -> None:
    preview = upload(staff, b"# Ship\n\n- [ ] one\n- [ ] two\n", name="ship.md")
    settings.CHECKLIST_MAX_ITEMS = 1

    response = staff.post(URL, confirm_of(preview, name="Ship it"))

    assert response.status_code == 422
    assert response.context["problem_lines"][0].startswith("ship.md:4: ")
    assert response.context["form"]["name"].value() == "Ship it"
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
        (
            "Ship\u202e",
            "The template name contains invisible bidirectional control characters (U+202E), "
            "which can make it read differently from what it is; remove them.",
        ),
    ],
)
def test_it_explains_a_bad_name_beside_the_field_and_keeps_the_preview(
    staff: Client, name: str, message: str
) -> None:
    preview = upload(staff, SHIP)

    response = staff.post(URL, confirm_of(preview, name=name))

    assert response.status_code == 422
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

    assert preview.status_code == 422
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

    assert response.status_code == 422
    assert 'value="nnnn' in response.content.decode()
    assert response.context["form"].errors["name"] == [
        "The template name is longer than 200 characters (it has 201)."
    ]


@pytest.mark.parametrize(
    "disposition",
    [
        'filename="ship\u202egpj.md"',
        "filename*=UTF-8''ship%E2%80%AEgpj.md",
        'filename="ship&#x202E;gpj.md"',
    ],
    ids=["utf-8", "rfc-2231", "html-entity"],
)
def test_a_file_name_s_hidden_controls_never_reach_the_import(
    staff: Client, disposition: str
) -> None:
    # The name is shown on the pages that follow and, for a file without a title, is the
    # template's: Django's upload parser drops every character that is not printable (the
    # bidirectional controls among them) however the name is sent, so the import need
    # not refuse it; this fails the day it stops doing so.
    body = (
        f'--zzz\r\nContent-Disposition: form-data; name="file"; {disposition}\r\n'
        "Content-Type: text/markdown\r\n\r\n- [ ] one\r\n"
        '--zzz\r\nContent-Disposition: form-data; name="default_owner"\r\n\r\nqa\r\n'
        "--zzz--\r\n"
    )

    preview = staff.post(URL, body.encode(), content_type="multipart/form-data; boundary=zzz")

    assert preview.status_code == 200
    assert preview.context["file_name"] == "shipgpj.md"
    assert preview.context["confirm"]["name"].value() == "shipgpj.md"
    assert "\u202e" not in preview.content.decode()


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

    assert response.status_code == 422
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


# Every problem at once --------------------------------------------------------------

MANY_MISTAKES = (
    b"# Ship\n\n## Pre\n\n"
    b"- [ ] one <!-- deploycheck: owner=nobody -->\n"
    b"- [ ] two <!-- deploycheck: bogus -->\n"
    b"- [ ] fine\n"
    b"- [ ] three <!-- deploycheck: optional required -->\n\n"
    b"## Contacts\n\n| Role | Name |\n|---|---|\n| QA | Ana |\n"
)


def test_it_lists_every_problem_in_the_file_with_its_line(staff: Client) -> None:
    response = upload(staff, MANY_MISTAKES, name="many.md")

    assert response.status_code == 422
    assert response.context["problem_lines"] == [
        "many.md:5: unknown owner 'nobody' (expected one of devops, backend, frontend, qa, "
        "po, support)",
        "many.md:6: unknown deploycheck word 'bogus' (expected owner=, optional, required, "
        "check=, perform=, gate or record)",
        "many.md:8: both optional and required",
        "many.md:12: the contacts table has 2 columns; it needs role | name | contact",
    ]
    page = html.unescape(response.content.decode())
    assert "many.md has 4 problems; nothing was imported." in page
    for line in response.context["problem_lines"]:
        assert line in page
    assert response.context.get("confirm") is None
    assert not ChecklistTemplate.objects.exists()


def test_it_lists_every_column_too_long_for_the_database(staff: Client) -> None:
    content = (
        "# Ship\n\n## Pre\n\n- [ ] one\n\n## Contacts\n\n"
        f"| Role | Name | Contact |\n|---|---|---|\n| {'R' * 150} | {'N' * 250} | a@b.c |\n"
    )

    response = upload(staff, content.encode(), name="long.md")

    assert response.context["problem_lines"] == [
        "long.md: an emergency contact's role is 150 characters long; the limit is 100",
        "long.md: an emergency contact's name is 250 characters long; the limit is 200",
    ]


def test_it_says_when_it_lists_only_the_first_problems(staff: Client) -> None:
    content = b"- [ ] fine\n" + b"- [ ] x <!-- deploycheck: owner=nobody -->\n" * 500

    response = upload(staff, content, name="bad.md")

    assert response.status_code == 422
    assert len(response.context["problem_lines"]) == markdown.MAX_PROBLEMS
    assert "Only the first 100 problems are listed; there are more." in response.content.decode()


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "The submitted file is empty."),
        (b"\xff\xfe- [ ] item\n", "bad.md:1: not UTF-8 text (byte 0xff cannot be read)"),
        (b"- [ ] one\n\x00\x01\x02", "bad.md:2: binary file (it contains NUL bytes)"),
        (b"# Notes\n\nNothing to tick.\n", "bad.md: no task items found"),
    ],
    ids=["empty", "not-utf8", "binary", "no-items"],
)
def test_it_explains_a_file_it_cannot_read(staff: Client, content: bytes, message: str) -> None:
    response = upload(staff, content, name="bad.md")

    assert response.status_code == 422
    assert message in html.unescape(response.content.decode())
    assert not ChecklistTemplate.objects.exists()


def test_it_names_a_huge_file_too_large_without_reading_it(staff: Client) -> None:
    response = upload(staff, b"- [ ] item\n" * 200_000, name="huge.md")

    assert response.status_code == 422
    assert response.context["form"].errors["file"] == [
        "huge.md: the file is too large (2,200,000 bytes, the limit is 1,048,576)."
    ]
    assert response.context["kept"] is None


# The chosen file is kept ------------------------------------------------------------


def test_it_names_the_file_it_previews(staff: Client) -> None:
    preview = upload(staff, SHIP, name="ship.md")

    assert "File: <strong>ship.md</strong>" in preview.content.decode()


def test_it_keeps_the_file_when_the_upload_form_is_sent_back(staff: Client) -> None:
    refused = staff.post(
        URL,
        {
            "file": SimpleUploadedFile("ship.md", SHIP, content_type="text/markdown"),
            "name": "n" * 201,
            "default_owner": "qa",
        },
    )
    assert "ship.md" in refused.content.decode()  # the page says which file it keeps

    # Only the name is fixed; the file is not picked again.
    preview = staff.post(URL, {"name": "Ship", "default_owner": "frontend"})

    assert preview.status_code == 200
    assert preview.context["file_name"] == "ship.md"
    staff.post(URL, confirm_of(preview))
    owners = ChecklistTemplate.objects.get(name="Ship").items.values_list("owner_role", flat=True)
    assert list(owners) == ["frontend"]


def test_it_shows_the_problems_again_without_the_file_being_picked_again(
    staff: Client,
) -> None:
    first = upload(staff, MANY_MISTAKES, name="many.md")

    again = staff.post(URL, {"name": "", "default_owner": "qa"})

    assert again.context["problem_lines"] == first.context["problem_lines"]
    assert "many.md" in again.content.decode()


def test_it_keeps_the_file_for_a_preview_that_expired(
    staff: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    preview = upload(staff, SHIP, name="ship.md")
    with monkeypatch.context() as later:
        later.setattr(signing, "time", AnHourLater)
        refused = staff.post(URL, confirm_of(preview, name="Ship"))
    assert refused.status_code == 422
    assert refused.context["kept"] == imports.Upload("ship.md", SHIP.decode())

    again = staff.post(URL, {"default_owner": "qa"})
    staff.post(URL, confirm_of(again, name="Ship"))

    assert ChecklistTemplate.objects.get(name="Ship").items.count() == 1


def test_it_forgets_the_file_once_the_template_is_created(staff: Client) -> None:
    preview = upload(staff, SHIP)
    staff.post(URL, confirm_of(preview, name="Ship"))

    response = staff.post(URL, {"default_owner": "qa"})

    assert response.context["kept"] is None
    assert response.context["form"].errors["file"] == ["Choose the Markdown checklist to import."]


def test_a_new_file_replaces_the_kept_one_even_when_it_is_refused(staff: Client) -> None:
    upload(staff, SHIP, name="ship.md")

    response = upload(staff, b"\x00binary", name="blob.bin")

    assert response.context["kept"] is None
    assert "ship.md" not in response.content.decode()


# What the preview shows ----------------------------------------------------------------


def test_it_warns_that_placeholder_contacts_will_block_go_live(
    staff: Client, users: dict[str, Any]
) -> None:
    content = (
        "# Ship\n\n## Pre\n\n- [ ] one\n\n## Rollback\n\n1. Back\n\n## Contacts\n\n"
        "| Role | Name | Contact |\n|---|---|---|\n"
        "| DevOps Lead | [Nombre] | [Teléfono/Email] |\n"
        "| QA Lead | Ana | ana@example.com |\n"
        "| Product Owner | Pablo | [Teléfono] |\n"
    ).encode()

    preview = upload(staff, content)

    assert [c.role for c in preview.context["placeholders"]] == ["DevOps Lead", "Product Owner"]
    page = html.unescape(preview.content.decode())
    assert "2 emergency contacts are still placeholders. Go-live approval" in page
    assert "blocked until they are filled in" in page
    assert "DevOps Lead: [Nombre] — [Teléfono/Email]" in page
    assert "Product Owner: Pablo — [Teléfono]" in page
    assert "QA Lead: Ana" not in page
    # The warning names exactly the contacts a release's approval is blocked on.
    staff.post(URL, confirm_of(preview, name="Ship"))
    made = workflow.create_release(
        ChecklistTemplate.objects.get(name="Ship"), version="v1.0.0", title="x", by=users["admin"]
    )
    assert [r.message for r in blocking_reasons(made) if r.code == "contact-placeholder"] == [
        "Emergency contact for DevOps Lead still holds a placeholder",
        "Emergency contact for Product Owner still holds a placeholder",
    ]


def test_it_warns_about_the_seed_s_five_placeholder_contacts(staff: Client) -> None:
    preview = upload(staff, checklists.DEFAULT_CHECKLIST.read_bytes())

    assert len(preview.context["placeholders"]) == 5
    assert "5 emergency contacts are still placeholders" in preview.content.decode()


def test_it_does_not_warn_when_every_contact_can_be_reached(staff: Client) -> None:
    content = (
        b"# Ship\n\n- [ ] one\n\n## Contacts\n\n| Role | Name | Contact |\n|---|---|---|\n"
        b"| QA Lead | Ana | +34 600 000 000 |\n"
    )

    preview = upload(staff, content)

    assert preview.context["placeholders"] == []
    assert "placeholder" not in preview.content.decode()


def test_it_renders_inline_code_in_item_text_and_escapes_html(staff: Client) -> None:
    content = b"# Ship\n\n- [ ] Run `make test` on *main*\n- [ ] Check <script>x</script>\n"

    page = upload(staff, content).content.decode()

    assert "Run <code>make test</code> on <em>main</em>" in page
    assert "<script>x</script>" not in page
    assert "&lt;script&gt;x&lt;/script&gt;" in page


# In Spanish -----------------------------------------------------------------------------


@pytest.fixture
def staff_es(users: dict[str, Any]) -> Client:
    client = Client(headers={"accept-language": "es"})
    client.force_login(users["admin"])
    return client


def test_it_summarises_the_preview_in_spanish(staff_es: Client) -> None:
    preview = upload(staff_es, checklists.DEFAULT_CHECKLIST.read_bytes(), name="seed.md")

    page = html.unescape(preview.content.decode())
    assert "3 fases, 13 secciones, 66 ítems, 6 pasos de rollback, 5 contactos de emergencia" in page
    assert "Archivo: <strong>seed.md</strong>" in page
    assert "5 contactos de emergencia aún son marcadores de posición" in page


def test_it_lists_the_problems_in_spanish(staff_es: Client) -> None:
    response = upload(staff_es, MANY_MISTAKES, name="many.md")

    page = html.unescape(response.content.decode())
    assert "many.md tiene 4 problemas; no se ha importado nada." in page
    assert response.context["problem_lines"] == [
        "many.md:5: responsable desconocido 'nobody' (se esperaba uno de estos: devops, "
        "backend, frontend, qa, po, support)",
        "many.md:6: palabra deploycheck desconocida 'bogus' (se esperaba owner=, optional, "
        "required, check=, perform=, gate o record)",
        "many.md:8: optional y required a la vez",
        "many.md:12: la tabla de contactos tiene 2 columnas; necesita rol | nombre | contacto",
    ]


def test_it_says_saved_in_spanish(staff_es: Client) -> None:
    preview = upload(staff_es, SHIP)

    response = staff_es.post(URL, confirm_of(preview, name="Ship"), follow=True)

    assert "Plantilla “Ship” guardada: 0 fases, 0 secciones, 1 ítem, 0 pasos de rollback" in (
        response.content.decode()
    )


def test_it_asks_for_a_file_when_the_form_arrives_empty(staff: Client) -> None:
    response = staff.post(URL, {})

    assert response.status_code == 422
    assert response.context["form"].errors["file"] == ["Choose the Markdown checklist to import."]
    assert not ChecklistTemplate.objects.exists()
