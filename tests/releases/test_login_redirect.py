"""A request that finds its person logged out takes them to the login form, and back
afterwards to a page they can open; an action's address opened as a page gets one."""

from __future__ import annotations

from typing import Any

from django.shortcuts import redirect
from django.test import Client, RequestFactory
from django.urls import reverse
from django_htmx.middleware import HtmxMiddleware

from releases.login_redirect import login_redirect_middleware
from releases.models import ItemState, Release
from tests.conftest import item

SERVER = "http://testserver"
UNSAVED = "You were logged out, so what you sent was not saved. Log in, then do it again."


def htmx_headers(current_url: str, **more: str) -> dict[str, str]:
    return {"HX-Request": "true", "HX-Current-URL": current_url, **more}


def test_a_filter_asked_for_after_logout_sends_the_page_to_the_login_form(
    client: Client, release: Release
) -> None:
    board = reverse("releases:board", args=[release.version])

    response = client.get(
        f"{board}?show=pending",
        headers=htmx_headers(f"{SERVER}{board}?show=mine", **{"HX-Target": "board"}),
    )

    assert response.status_code == 200
    assert response.content == b""
    assert response["HX-Redirect"] == f"/accounts/login/?next={board}%3Fshow%3Dmine"
    assert "Location" not in response


def test_a_tick_sent_after_logout_is_not_dropped_without_a_word(
    client: Client, release: Release
) -> None:
    board = reverse("releases:board", args=[release.version])
    entry = item(release, release.items.first().text)

    response = client.post(
        reverse("releases:item", args=[release.version, entry.pk]),
        {"action": "tick"},
        headers=htmx_headers(f"{SERVER}{board}", **{"Accept-Language": "en"}),
    )

    assert response["HX-Redirect"] == f"/accounts/login/?next={board}"
    entry.refresh_from_db()
    assert entry.state == ItemState.PENDING
    assert UNSAVED in client.get(response["HX-Redirect"]).content.decode()


def test_a_page_from_another_site_is_not_where_the_login_returns(
    client: Client, release: Release
) -> None:
    section = reverse("releases:section", args=[release.version, 0])

    response = client.get(section, headers=htmx_headers("https://elsewhere.example/phish"))

    assert response["HX-Redirect"] == f"/accounts/login/?next={section}"


def test_a_plain_request_still_gets_the_redirect(client: Client, release: Release) -> None:
    board = reverse("releases:board", args=[release.version])

    response = client.get(board)

    assert response.status_code == 302
    assert response["Location"] == f"/accounts/login/?next={board}"
    assert "HX-Redirect" not in response


def test_a_redirect_elsewhere_is_left_to_htmx(rf: RequestFactory) -> None:
    request = rf.get("/somewhere/", headers=htmx_headers(f"{SERVER}/page/"))
    chain = HtmxMiddleware(login_redirect_middleware(lambda request: redirect("/elsewhere/")))

    response = chain(request)

    assert response.status_code == 302
    assert response["Location"] == "/elsewhere/"


def test_a_form_sent_without_javascript_after_logout_comes_back_to_its_page(
    client: Client, release: Release
) -> None:
    board = reverse("releases:board", args=[release.version])
    entry = item(release, "Unit tests pass")

    response = client.post(
        reverse("releases:item", args=[release.version, entry.pk]),
        {"action": "note", "note": "Green on CI"},
        headers={"Referer": f"{SERVER}{board}?show=mine", "Accept-Language": "en"},
    )

    assert response.status_code == 302
    assert response["Location"] == f"/accounts/login/?next={board}%3Fshow%3Dmine"
    login_page = client.get(response["Location"], headers={"Accept-Language": "en"})
    assert UNSAVED in login_page.content.decode()
    logged_in = client.post(
        response["Location"], {"username": "qa", "password": "pw", "next": f"{board}?show=mine"}
    )
    assert logged_in["Location"] == f"{board}?show=mine"
    assert client.get(logged_in["Location"]).status_code == 200
    entry.refresh_from_db()
    assert entry.note == ""


def test_the_login_page_speaks_the_persons_language_about_what_was_lost(
    client: Client, release: Release
) -> None:
    entry = item(release, "Unit tests pass")

    response = client.post(
        reverse("releases:item", args=[release.version, entry.pk]),
        {"action": "note", "note": "Verde"},
        headers={"Accept-Language": "es"},
    )
    login_page = client.get(response["Location"], headers={"Accept-Language": "es"})

    assert "lo que enviaste no se guardó" in login_page.content.decode()


def test_without_a_referer_of_ours_the_login_returns_to_the_releases_board(
    client: Client, release: Release
) -> None:
    board = reverse("releases:board", args=[release.version])
    entry = item(release, "Unit tests pass")
    action = reverse("releases:item", args=[release.version, entry.pk])

    unsent = client.post(action, {"action": "tick"})
    foreign = client.post(
        action, {"action": "tick"}, headers={"Referer": "https://elsewhere.example/phish"}
    )

    assert unsent["Location"] == f"/accounts/login/?next={board}"
    assert foreign["Location"] == f"/accounts/login/?next={board}"


def test_an_action_outside_a_release_returns_to_the_releases(client: Client, db: None) -> None:
    response = client.post(reverse("channels:retire", args=[1]))

    assert response["Location"] == f"/accounts/login/?next={reverse('releases:list')}"


def test_logging_out_is_not_said_to_lose_anything(
    client: Client, release: Release, users: dict[str, Any]
) -> None:
    client.force_login(users["qa"])
    board = reverse("releases:board", args=[release.version])

    response = client.post(
        reverse("logout"), headers={"Referer": f"{SERVER}{board}", "Accept-Language": "en"}
    )

    assert response.status_code == 302
    assert response["Location"] == reverse("login")
    assert UNSAVED not in client.get(response["Location"]).content.decode()


def test_a_page_asked_for_after_logout_is_not_said_to_be_lost(
    client: Client, release: Release
) -> None:
    board = reverse("releases:board", args=[release.version])

    client.get(board)

    assert UNSAVED not in client.get(f"/accounts/login/?next={board}").content.decode()


def test_an_actions_address_opened_as_a_page_says_where_to_go(
    as_user: Any, release: Release
) -> None:
    entry = item(release, "Unit tests pass")
    action = reverse("releases:item", args=[release.version, entry.pk])

    english = as_user("qa").get(action)
    spanish = as_user("qa", "es").get(action)

    assert english.status_code == 405
    assert english["Allow"] == "POST"
    page = english.content.decode()
    assert "This address only takes what a form sends" in page
    assert f'href="{reverse("releases:board", args=[release.version])}"' in page
    assert spanish.status_code == 405
    assert "Esta dirección solo recibe lo que envía un formulario" in spanish.content.decode()


def test_a_405_outside_a_release_leads_to_the_releases(as_user: Any) -> None:
    response = as_user("qa").get(reverse("logout"))

    assert response.status_code == 405
    assert f'href="{reverse("releases:list")}"' in response.content.decode()
