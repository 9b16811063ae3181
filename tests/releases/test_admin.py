"""The Django admin is one more door: every save of release data, people or contacts,
bulk deletes included, goes through the workflow (locked, audited, pushed live)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from django.apps import apps
from django.contrib.auth import get_user_model
from django.test import Client
from django.urls import reverse

from checks import tokens
from checks.models import PipelineToken
from releases import workflow
from releases.models import (
    AuditEvent,
    EmergencyContact,
    Release,
    ReleaseStatus,
    Role,
    Stakeholder,
)


@pytest.fixture
def admin_client(client: Client, users: dict[str, Any]) -> Client:
    client.force_login(users["admin"])
    return client


def form_data(response: Any) -> dict[str, Any]:
    """What the admin change page would post back unchanged: the main form's values and
    every inline formset's, with their management forms."""
    data: dict[str, Any] = {}
    adminform = response.context["adminform"].form
    for name, field in adminform.fields.items():
        value = adminform.initial.get(name, field.initial)
        if value is None:
            continue
        if isinstance(value, bool):
            if value:
                data[name] = "on"
            continue
        data[name] = value.isoformat() if hasattr(value, "isoformat") else value
    for inline in response.context["inline_admin_formsets"]:
        formset = inline.formset
        management = formset.management_form
        for name in management.fields:
            data[f"{formset.prefix}-{name}"] = management.initial.get(name, 0)
        for form in formset.forms:
            for name, field in form.fields.items():
                value = form.initial.get(name, field.initial)
                if value is None or name in getattr(inline, "readonly_fields", ()):
                    continue
                key = f"{form.prefix}-{name}"
                if isinstance(value, bool):
                    if value:
                        data[key] = "on"
                    continue
                data[key] = getattr(value, "pk", value)
    return data


def change_url(release: Release) -> str:
    return reverse("admin:releases_release_change", args=[release.pk])


def test_it_saves_a_release_edit_through_the_workflow_with_before_and_after(
    admin_client: Client, release: Release
) -> None:
    page = admin_client.get(change_url(release))
    data = {**form_data(page), "title": "Summer"}
    revision = release.revision

    response = admin_client.post(change_url(release), data)

    assert response.status_code == 302, response.content[:3000]
    release.refresh_from_db()
    assert release.title == "Summer"
    assert release.revision == revision + 1
    event = release.audit_events.get(action="release.edited")
    assert (event.before, event.after) == ({"title": "Spring"}, {"title": "Summer"})
    assert event.actor_kind == "person" and event.actor_label.startswith("admin")


def test_it_never_undoes_an_approval_made_while_the_admin_form_was_open(
    admin_client: Client, ready_release: Release, users: dict[str, Any]
) -> None:
    page = admin_client.get(change_url(ready_release))
    workflow.approve(ready_release, by=users["po"])
    approved_at = Release.objects.get(pk=ready_release.pk).revision

    admin_client.post(change_url(ready_release), {**form_data(page), "title": "Renamed"})

    ready_release.refresh_from_db()
    assert ready_release.status == ReleaseStatus.APPROVED
    assert ready_release.active_approval() is not None
    assert ready_release.title == "Renamed"
    assert ready_release.revision == approved_at + 1


def test_it_refuses_a_duplicate_version_in_the_admin_without_saving(
    admin_client: Client, release: Release, users: dict[str, Any]
) -> None:
    workflow.create_release(release.template, version="v2.0.0", title="Next", by=users["admin"])
    page = admin_client.get(change_url(release))
    events = AuditEvent.objects.count()

    response = admin_client.post(
        change_url(release), {**form_data(page), "version": "v2.0.0"}, follow=True
    )

    release.refresh_from_db()
    assert release.version == "v1.2.3"
    assert AuditEvent.objects.count() == events
    # The admin's own form refuses it, naming the field.
    assert response.context["adminform"].form.errors["version"]


def test_it_refuses_a_title_with_invisible_bidirectional_controls_without_saving(
    admin_client: Client, release: Release
) -> None:
    page = admin_client.get(change_url(release))
    events = AuditEvent.objects.count()

    response = admin_client.post(
        change_url(release), {**form_data(page), "title": "Sum\u202emer"}, follow=True
    )

    release.refresh_from_db()
    assert release.title == "Spring"
    assert AuditEvent.objects.count() == events
    assert "U+202E" in response.content.decode()


@pytest.mark.parametrize("day", ["0001-01-01", "1999-12-31", "3000-01-01", "9999-12-31"])
def test_it_refuses_a_target_window_outside_the_years_every_date_keeps_to(
    admin_client: Client, release: Release, day: str
) -> None:
    page = admin_client.get(change_url(release))
    events = AuditEvent.objects.count()
    data = {**form_data(page), "window_start_0": day, "window_start_1": "00:00:00"}

    response = admin_client.post(change_url(release), data, headers={"accept-language": "en"})

    assert response.context["adminform"].form.errors["window_start"] == [
        "Enter a year between 2000 and 2999."
    ]
    release.refresh_from_db()
    assert release.window_start is None
    assert AuditEvent.objects.count() == events


def test_it_refuses_template_text_with_invisible_bidirectional_controls(
    admin_client: Client, release: Release
) -> None:
    template = release.template
    assert template is not None
    url = reverse("admin:releases_checklisttemplate_change", args=[template.pk])
    data = form_data(admin_client.get(url))
    [text_key] = [key for key, value in data.items() if value == "Unit tests pass"]

    response = admin_client.post(url, {**data, text_key: "Unit tests \u202essap"})

    assert response.status_code == 200
    assert "U+202E" in response.content.decode()
    assert template.items.filter(text="Unit tests pass").exists()


def test_it_audits_a_person_removed_through_the_release_inline(
    admin_client: Client, release: Release
) -> None:
    page = admin_client.get(change_url(release))
    data = form_data(page)
    stake = release.stakeholders.get(role="qa")
    index = next(
        key.split("-")[1]
        for key, value in data.items()
        if key.startswith("stakeholders-") and key.endswith("-id") and value == stake.pk
    )
    data[f"stakeholders-{index}-DELETE"] = "on"

    admin_client.post(change_url(release), data)

    assert not release.stakeholders.filter(role="qa").exists()
    event = release.audit_events.get(action="stakeholder.unassigned")
    assert (event.before, event.after) == ({"person": "qa", "role": "qa"}, {})


def test_it_audits_a_role_changed_on_the_stakeholder_admin_page(
    admin_client: Client, release: Release, users: dict[str, Any]
) -> None:
    stake = release.stakeholders.get(role="qa")
    url = reverse("admin:releases_stakeholder_change", args=[stake.pk])

    admin_client.post(url, {"role": "devops", "user": users["qa"].pk})

    stake.refresh_from_db()
    assert stake.role == "devops"
    event = release.audit_events.get(action="stakeholder.changed")
    assert (event.before, event.after) == (
        {"person": "qa", "role": "qa"},
        {"person": "qa", "role": "devops"},
    )


def test_it_audits_every_row_of_an_admin_bulk_delete(
    admin_client: Client, release: Release
) -> None:
    chosen = list(
        release.stakeholders.filter(role__in=["qa", "devops"]).values_list("pk", flat=True)
    )
    revision = release.revision

    response = admin_client.post(
        reverse("admin:releases_stakeholder_changelist"),
        {"action": "delete_selected", "_selected_action": chosen, "post": "yes"},
    )

    assert response.status_code == 302
    assert not Stakeholder.objects.filter(pk__in=chosen).exists()
    removed = release.audit_events.filter(action="stakeholder.unassigned")
    assert sorted(e.before["role"] for e in removed) == ["devops", "qa"]
    release.refresh_from_db()
    assert release.revision == revision + 2


def contact_data(contact: EmergencyContact, **changes: Any) -> dict[str, Any]:
    """What the contact's admin change page posts: its stored values, `changes` over them."""
    stored = {
        field: getattr(contact, field)
        for field in ("position", "role", "name", "phone", "email", "other")
    }
    return {**stored, **changes}


def test_it_audits_a_contact_edited_in_the_admin_with_what_changed(
    admin_client: Client, release: Release
) -> None:
    contact = release.contacts.get()
    url = reverse("admin:releases_emergencycontact_change", args=[contact.pk])

    admin_client.post(url, contact_data(contact, name="Dana Operations"))

    event = release.audit_events.get(action="contact.updated")
    assert (event.before, event.after) == ({"name": "Dana Ops"}, {"name": "Dana Operations"})
    assert event.target == "DevOps Lead"


def test_it_gives_back_a_contact_edit_with_invisible_controls_as_typed(
    admin_client: Client, release: Release
) -> None:
    contact = release.contacts.get()
    url = reverse("admin:releases_emergencycontact_change", args=[contact.pk])
    data = contact_data(
        contact, name="Ana\u202eX", phone="+34 600 111 222", email="ana@example.com"
    )

    response = admin_client.post(url, data)

    assert response.status_code == 200
    page = response.content.decode()
    assert "U+202E" in page
    assert "+34 600 111 222" in page and "ana@example.com" in page
    unchanged = EmergencyContact.objects.get(pk=contact.pk)
    assert (unchanged.name, unchanged.phone) == (contact.name, contact.phone)
    assert not release.audit_events.filter(action="contact.updated").exists()


def test_it_audits_a_contact_deleted_in_the_admin(admin_client: Client, release: Release) -> None:
    contact = release.contacts.get()
    url = reverse("admin:releases_emergencycontact_delete", args=[contact.pk])

    admin_client.post(url, {"post": "yes"})

    assert not EmergencyContact.objects.filter(pk=contact.pk).exists()
    event = release.audit_events.get(action="contact.removed")
    assert event.before["name"] == "Dana Ops" and event.after == {}


def user_change_url(user: Any) -> str:
    return reverse("admin:auth_user_change", args=[user.pk])


def new_person(username: str) -> dict[str, str]:
    """What the user admin's add page posts for a person with a password."""
    return {"username": username, "password1": "a long pass 42", "password2": "a long pass 42"}


def test_it_refuses_a_new_username_with_invisible_controls_and_keeps_it(
    admin_client: Client,
) -> None:
    people = get_user_model().objects.count()

    response = admin_client.post(
        reverse("admin:auth_user_add"), new_person("ad\u202enim"), headers={"accept-language": "en"}
    )

    assert response.status_code == 200
    [error] = response.context["adminform"].form.errors["username"]
    assert error.startswith("Username contains invisible bidirectional control characters (U+202E)")
    assert 'value="ad\u202enim"' in response.content.decode()
    assert get_user_model().objects.count() == people


def test_it_still_adds_a_person_through_the_user_admin(admin_client: Client) -> None:
    response = admin_client.post(reverse("admin:auth_user_add"), new_person("nadia"))

    added = get_user_model().objects.get(username="nadia")
    assert response.status_code == 302
    assert response["Location"] == user_change_url(added)
    assert added.check_password("a long pass 42")


def test_it_refuses_a_name_with_invisible_controls_in_spanish_and_keeps_what_was_typed(
    admin_client: Client, users: dict[str, Any]
) -> None:
    """Names show on the boards and, with the username, in the audit trail's labels."""
    qa = users["qa"]
    url = user_change_url(qa)
    data = {
        "username": qa.username,
        "first_name": "Ana\u2067",
        "last_name": "Ruiz",
        "email": qa.email,
        "is_active": "on",
        "date_joined_0": qa.date_joined.date().isoformat(),
        "date_joined_1": qa.date_joined.time().isoformat("seconds"),
    }

    response = admin_client.post(url, data, headers={"accept-language": "es"})

    assert response.status_code == 200
    [error] = response.context["adminform"].form.errors["first_name"]
    assert "contiene caracteres invisibles de control bidireccional (U+2067)" in error
    page = response.content.decode()
    assert 'value="Ana\u2067"' in page and 'value="Ruiz"' in page
    qa.refresh_from_db()
    assert (qa.first_name, qa.last_name) == ("QA", "")


SPANISH = (Path(__file__).parents[2] / "locale/es/LC_MESSAGES/django.po").read_text()


def translated(msgid: str) -> bool:
    """Whether the Spanish catalogue has a non-empty translation of a one-line msgid."""
    entry = re.search(rf'^msgid "{re.escape(msgid)}"\nmsgstr "(.+)"$', SPANISH, re.MULTILINE)
    return entry is not None


MODELS = [
    model for app in ("releases", "checks") for model in apps.get_app_config(app).get_models()
]


@pytest.mark.parametrize("model", MODELS, ids=lambda model: model.__name__)
def test_every_model_names_itself_in_words_spanish_has(model: Any) -> None:
    """Without its own names a model shows as its class name split ("rollback step
    record"), which no catalogue translates."""
    options = model._meta.original_attrs
    names = [options.get("verbose_name"), options.get("verbose_name_plural")]

    assert all(names), f"{model.__name__} needs verbose_name and verbose_name_plural"
    # The lazy names are read in English here: their msgids.
    assert all(translated(str(name)) for name in names), names


@pytest.mark.parametrize("app", ["releases", "checks"])
def test_every_app_names_itself_in_words_spanish_has(app: str) -> None:
    assert translated(str(apps.get_app_config(app).verbose_name))


def test_the_admin_index_names_apps_and_models_in_spanish(admin_client: Client) -> None:
    page = admin_client.get(reverse("admin:index"), headers={"accept-language": "es"})

    text = page.content.decode()
    for shown in (
        "Versiones",
        "Comprobaciones automáticas",
        "Ítems de versión",
        "Vistos buenos",
        "Aprobaciones de la puesta en producción",
        "Enlaces para compartir",
        "Ejecuciones de comprobaciones",
        "Resultados de comprobaciones",
        "Tokens de pipeline",
    ):
        assert shown in text, shown


def test_a_share_link_and_a_pipeline_token_read_what_they_are_first_and_no_hash(
    admin_client: Client, release: Release, users: dict[str, Any]
) -> None:
    workflow.create_share_link(release, label="Support desk", by=users["admin"])
    tokens.create(release, role=Role.QA, label="deployer", pattern="", by=users["admin"])
    pages = [
        reverse("admin:releases_sharelink_change", args=[release.share_links.get().pk]),
        reverse("admin:checks_pipelinetoken_change", args=[PipelineToken.objects.get().pk]),
    ]

    for url in pages:
        html = admin_client.get(url).content.decode()
        assert html.index("field-release") < html.index("field-created_by"), url
        assert "field-token_hash" not in html, url
