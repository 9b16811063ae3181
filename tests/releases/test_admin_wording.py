"""The admin speaks the reader's language: every model and field of releases, checks and
notifications is named through the catalogue, so a Spanish admin shows no English
column, label or model name, and its delete pages read as Spanish sentences."""

from __future__ import annotations

import html
import re
from typing import Any

import pytest
from django.apps import apps
from django.contrib import admin
from django.contrib.admin.templatetags.admin_list import result_headers
from django.db.models import Model
from django.test import Client
from django.urls import reverse
from django.utils import translation
from django.utils.functional import Promise

from releases.models import ChecklistTemplate, EmergencyContact, Release, Stakeholder
from tests.test_catalog import CATALOG, messages

APPS = ("releases", "checks", "notifications")


def catalogue() -> dict[str, str]:
    return {entry.msgid: entry.translations[0] for entry in messages(CATALOG) if not entry.context}


def models() -> list[type[Model]]:
    return [model for app in APPS for model in apps.get_app_config(app).get_models()]


def names(model: type[Model]) -> dict[str, Any]:
    """The model's own names and each of its fields' (Django's implicit `id` aside)."""
    found = {
        f"{model.__name__} (verbose_name)": model._meta.original_attrs.get("verbose_name"),
        f"{model.__name__} (verbose_name_plural)": model._meta.original_attrs.get(
            "verbose_name_plural"
        ),
    }
    for field in model._meta.get_fields():
        if field.concrete and not field.auto_created:
            found[f"{model.__name__}.{field.name}"] = field.verbose_name
    return found


def test_every_model_and_field_is_named_by_a_message_of_the_catalogue() -> None:
    known = catalogue()
    untranslatable, missing, not_spanish = [], [], []
    for model in models():
        for where, name in names(model).items():
            if not isinstance(name, Promise):
                untranslatable.append(where)
                continue
            with translation.override("en"):
                msgid = str(name)
            with translation.override("es"):
                shown = str(name)
            if msgid not in known:
                missing.append(f"{where}: {msgid!r}")
            elif shown != known[msgid]:
                not_spanish.append(f"{where}: {shown!r}")

    assert untranslatable == []
    assert missing == []
    assert not_spanish == []


def english_labels() -> set[str]:
    """Every name of these models and fields whose Spanish differs, as English shows it."""
    labels = set()
    for model in models():
        for name in names(model).values():
            with translation.override("en"):
                english = str(name)
            with translation.override("es"):
                spanish = str(name)
            if english.lower() != spanish.lower():
                labels.add(english.lower())
    return labels


def shown_labels(page: str) -> set[str]:
    """The texts of a page's column headers and field labels."""
    found = re.findall(r"<(?:th|label)\b[^>]*>(.*?)</(?:th|label)>", page, re.S)
    return {
        html.unescape(re.sub(r"<[^>]+>", "", text)).strip().rstrip(":").strip().lower()
        for text in found
    }


@pytest.fixture
def spanish_admin(client: Client, users: dict[str, Any]) -> Client:
    client.force_login(users["admin"])
    client.defaults["HTTP_ACCEPT_LANGUAGE"] = "es"
    return client


def registered() -> list[type[Model]]:
    return [model for model in admin.site._registry if model._meta.app_label in APPS]


@pytest.mark.parametrize("model", registered(), ids=lambda model: model.__name__)
def test_a_spanish_changelist_has_no_english_column(
    spanish_admin: Client, release: Release, model: type[Model]
) -> None:
    url = reverse(f"admin:{model._meta.app_label}_{model._meta.model_name}_changelist")

    response = spanish_admin.get(url)

    assert response.status_code == 200
    with translation.override("es"):
        headers = {str(header["text"]).lower() for header in result_headers(response.context["cl"])}
    english = english_labels() | {"items"}
    assert headers & english == set()
    assert shown_labels(response.content.decode()) & english == set()


def test_the_spanish_change_pages_of_a_template_and_a_release_have_no_english_label(
    spanish_admin: Client, release: Release
) -> None:
    pages = {
        reverse("admin:releases_checklisttemplate_change", args=[release.template_id]): {
            "posición",
            "texto",
        },
        reverse("admin:releases_release_change", args=[release.pk]): {
            "plantilla",
            "revisión",
            "creado el",
            "usuario",
        },
    }

    for url, spanish in pages.items():
        shown = shown_labels(spanish_admin.get(url).content.decode())

        assert shown & english_labels() == set(), url
        assert spanish <= shown, url


@pytest.mark.parametrize(
    "model", [Stakeholder, EmergencyContact, ChecklistTemplate], ids=lambda m: m.__name__
)
def test_a_spanish_delete_page_names_the_object_and_its_kind_in_spanish(
    spanish_admin: Client, release: Release, model: type[Model]
) -> None:
    row = model.objects.first()
    assert row is not None
    url = reverse(f"admin:releases_{model._meta.model_name}_delete", args=[row.pk])

    page = html.unescape(spanish_admin.get(url).content.decode())

    with translation.override("es"):
        kind = str(model._meta.verbose_name)
    assert f"«{row}» ({kind})" in page
    assert not re.search(r"borrar (los|el) " + re.escape(kind), page)


def test_a_spanish_bulk_delete_page_names_the_kind_in_brackets(
    spanish_admin: Client, release: Release
) -> None:
    people = list(release.stakeholders.values_list("pk", flat=True))

    response = spanish_admin.post(
        reverse("admin:releases_stakeholder_changelist"),
        {"action": "delete_selected", "_selected_action": people},
    )

    page = html.unescape(response.content.decode())
    assert "¿Seguro que quieres borrar los objetos seleccionados (personas en versiones)?" in page
    assert "eliminar el personas" not in page
