"""Text the database cannot store (NUL, a lone surrogate) is refused with a 400 that says
where it was, in the person's language, and loses nothing they typed.

The rest of the guard's tests, and the walk of every route with such text, are in
tests/test_hostile_inputs.py.
"""

from __future__ import annotations

import html
import json
from typing import Any

import pytest
from django.conf import settings
from django.test import Client
from django.urls import reverse

from releases.models import IncidentUpdate, LanguagePreference, Release
from tests.conftest import item

OTHER = {"en": "es", "es": "en"}
# What the refusals say, in each language.
SAID = {
    "en": {
        "note": "Nothing was saved: the field “note” holds a character that cannot be stored",
        "back": "Your browser's Back button takes you back to the form with everything you typed",
        "kept": "The form still holds what you typed",
        "role": "Nothing was done: the address's parameter “role” holds a character that",
        "cookie": "Nothing was done: a cookie your browser keeps for this site holds a",
    },
    "es": {
        "note": "No se guardó nada: el campo «note» contiene un carácter que no se puede",
        "back": "El botón Atrás de tu navegador te devuelve al formulario con todo lo que",
        "kept": "El formulario conserva lo que escribiste",
        "role": "No se hizo nada: el parámetro «role» de la dirección contiene un carácter",
        "cookie": "No se hizo nada: una cookie que tu navegador guarda para este sitio",
    },
}


def page_text(response: Any) -> str:
    return " ".join(html.unescape(response.content.decode()).split())


def fresh_login(user: Any, language: str) -> Client:
    """A browser with no language cookie that asks for the other language, logged in as
    `user`, whose account says `language`."""
    LanguagePreference.objects.create(user=user, language=language)
    client = Client(headers={"accept-language": OTHER[language]})
    client.force_login(user)
    return client


def assert_refused_page(response: Any, language: str) -> str:
    assert response.status_code == 400
    assert response["Content-Type"] == "text/html; charset=utf-8"
    assert response["Content-Language"] == language
    text = page_text(response)
    assert f'<html lang="{language}">' in text
    return text


@pytest.mark.parametrize("language", ["en", "es"])
def test_a_note_with_nul_is_refused_in_the_accounts_language(
    release: Release, users: dict[str, Any], language: str
) -> None:
    client = fresh_login(users["qa"], language)
    board = client.get(reverse("releases:board", args=[release.version]))
    assert f'lang="{language}"' in board.content.decode()
    row = item(release, "Unit tests pass")
    url = reverse("releases:item", args=[release.version, row.pk])

    response = client.post(url, {"action": "note", "version": "0", "note": "a\x00b"})

    text = assert_refused_page(response, language)
    assert SAID[language]["note"] in text
    assert SAID[language]["back"] in text
    row.refresh_from_db()
    assert row.note == ""


@pytest.mark.parametrize("language", ["en", "es"])
def test_a_note_sent_by_htmx_is_refused_among_the_pages_messages(
    release: Release, users: dict[str, Any], language: str
) -> None:
    client = fresh_login(users["qa"], language)
    row = item(release, "Unit tests pass")
    url = reverse("releases:item", args=[release.version, row.pk])

    response = client.post(
        url, {"action": "note", "version": "0", "note": "a\x00b"}, headers={"HX-Request": "true"}
    )

    # 422, which the page's htmx swaps in, into #messages: the form keeps what was typed.
    assert response.status_code == 422
    assert response["HX-Retarget"] == "#messages"
    assert response["HX-Reswap"] == "innerHTML"
    assert response["Content-Language"] == language
    text = page_text(response)
    assert text.startswith('<p class="message message--error">')
    assert SAID[language]["note"] in text
    assert SAID[language]["kept"] in text
    row.refresh_from_db()
    assert row.note == ""


@pytest.mark.parametrize("language", ["en", "es"])
def test_a_query_with_nul_is_refused_in_the_accounts_language(
    release: Release, users: dict[str, Any], language: str
) -> None:
    client = fresh_login(users["support"], language)
    status = reverse("releases:status", args=[release.version])

    response = client.get(f"{status}?role=%00")

    text = assert_refused_page(response, language)
    assert SAID[language]["role"] in text
    assert f'<a href="{status}">' in text


def test_the_release_form_names_the_field_and_creates_nothing(
    release: Release, users: dict[str, Any]
) -> None:
    client = fresh_login(users["admin"], "en")
    data = {"template": release.template_id, "version": "v9.9.9", "title": "Sp\x00ring"}

    response = client.post(reverse("releases:create"), data)

    text = assert_refused_page(response, "en")
    assert "the field “title” holds a character" in text
    assert not Release.objects.filter(version="v9.9.9").exists()


def test_the_incident_form_names_every_field_holding_one(
    release: Release, users: dict[str, Any]
) -> None:
    client = fresh_login(users["po"], "es")
    data = {"state": "investigating\x00", "message": "Caída\x00 parcial", "confirmed": "1"}

    response = client.post(reverse("releases:updates", args=[release.version]), data)

    text = assert_refused_page(response, "es")
    assert "los campos «state», «message» contienen caracteres" in text
    assert not IncidentUpdate.objects.exists()


def test_a_name_that_cannot_be_written_into_the_page_is_shown_replaced(
    release: Release, users: dict[str, Any]
) -> None:
    client = fresh_login(users["qa"], "en")
    # Read as the UTF-7 the request claims, the name is a lone surrogate: it cannot be
    # encoded into the page, and a NUL would show as nothing.
    response = client.get(
        reverse("releases:board", args=[release.version]),
        QUERY_STRING="%2B2AA-=1&a%00b=1",
        CONTENT_TYPE="application/x-www-form-urlencoded; charset=utf-7",
    )
    text = assert_refused_page(response, "en")
    assert "the address's parameters “\ufffd”, “a\ufffdb” hold characters" in text


@pytest.mark.parametrize("language", ["en", "es"])
def test_a_cookie_with_nul_is_refused_before_the_session_is_read(
    users: dict[str, Any], language: str, django_assert_num_queries: Any
) -> None:
    assert settings.SESSION_ENGINE == "django.contrib.sessions.backends.cached_db"
    client = Client(headers={"accept-language": language})
    # Long enough to pass for a session key: cached_db would look for it in PostgreSQL,
    # which refuses NUL in text.
    client.cookies[settings.SESSION_COOKIE_NAME] = "abcdefghijklmnop\x00"

    with django_assert_num_queries(0):
        response = client.get(reverse("releases:list"))

    text = assert_refused_page(response, language)
    assert SAID[language]["cookie"] in text


def test_the_api_refuses_as_json(release: Release, db: Any) -> None:
    timeline = reverse("api:timeline", args=[release.version])

    for response in (
        Client(headers={"accept-language": "es"}).get(f"{timeline}?since=%00"),
        Client(headers={"accept-language": "es"}).get(f"{timeline}%00"),
    ):
        assert response.status_code == 400
        assert response["Content-Type"] == "application/json"
        assert json.loads(response.content)["error"].startswith("No se hizo nada: ")

    cookie = Client(headers={"accept-language": "en"})
    cookie.cookies[settings.SESSION_COOKIE_NAME] = "abcdefghijklmnop\x00"
    response = cookie.get(timeline)
    assert response.status_code == 400
    assert response["Content-Type"] == "application/json"
    assert json.loads(response.content)["error"].startswith("Nothing was done: a cookie ")


def test_ordinary_text_goes_through(release: Release, users: dict[str, Any]) -> None:
    client = fresh_login(users["qa"], "en")
    row = item(release, "Unit tests pass")
    url = reverse("releases:item", args=[release.version, row.pk])
    note = "Señal «verde» ✓ — 日本語"
    assert client.post(url, {"action": "note", "version": "0", "note": note}).status_code == 302
    row.refresh_from_db()
    assert row.note == note
