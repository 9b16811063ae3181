"""Spanish by default, English on request, and a person's choice follows them."""

from __future__ import annotations

from typing import Any

from django.test import Client

from releases.models import LanguagePreference


def login_page(client: Client) -> str:
    return client.get("/accounts/login/").content.decode()


def test_it_speaks_spanish_by_default(db: Any) -> None:
    assert 'lang="es"' in login_page(Client())


def test_it_follows_the_browsers_language(db: Any) -> None:
    assert 'lang="en"' in login_page(Client(headers={"accept-language": "en"}))


def test_it_remembers_a_persons_choice_on_any_browser(users: dict[str, Any]) -> None:
    laptop = Client()
    laptop.force_login(users["qa"])
    response = laptop.post("/language/", {"language": "en", "next": "/"})
    assert response.status_code == 302
    assert LanguagePreference.objects.get(user=users["qa"]).language == "en"

    phone = Client(headers={"accept-language": "es"})
    phone.post("/accounts/login/", {"username": "qa", "password": "pw"})
    assert 'lang="en"' in phone.get("/").content.decode()


def test_it_lets_a_saved_choice_beat_a_shared_browsers_cookie(users: dict[str, Any]) -> None:
    LanguagePreference.objects.create(user=users["po"], language="es")
    shared = Client()
    shared.post("/language/", {"language": "en", "next": "/"})
    shared.post("/accounts/login/", {"username": "po", "password": "pw"})
    assert 'lang="es"' in shared.get("/").content.decode()


def test_it_switches_anonymous_visitors_by_cookie_only(db: Any) -> None:
    client = Client()
    client.post("/language/", {"language": "en", "next": "/accounts/login/"})
    assert 'lang="en"' in login_page(client)
    assert not LanguagePreference.objects.exists()


def test_it_ignores_a_language_it_does_not_offer(users: dict[str, Any]) -> None:
    client = Client()
    client.force_login(users["qa"])
    client.post("/language/", {"language": "fr", "next": "/"})
    assert not LanguagePreference.objects.exists()
    assert 'lang="es"' in client.get("/").content.decode()
