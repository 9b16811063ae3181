"""An htmx request that finds its person logged out takes the page to the login form."""

from __future__ import annotations

from django.shortcuts import redirect
from django.test import Client, RequestFactory
from django.urls import reverse
from django_htmx.middleware import HtmxMiddleware

from releases.login_redirect import htmx_login_middleware
from releases.models import ItemState, Release
from tests.conftest import item

SERVER = "http://testserver"


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
        headers=htmx_headers(f"{SERVER}{board}"),
    )

    assert response["HX-Redirect"] == f"/accounts/login/?next={board}"
    entry.refresh_from_db()
    assert entry.state == ItemState.PENDING


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
    chain = HtmxMiddleware(htmx_login_middleware(lambda request: redirect("/elsewhere/")))

    response = chain(request)

    assert response.status_code == 302
    assert response["Location"] == "/elsewhere/"
