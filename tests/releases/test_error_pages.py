"""What a person meets when a page cannot be served: our pages, in their language, with a
way back, for an unknown address, a refusal, a bad request, an expired form and a server
error; and 503, saying so, when the database or Redis does not answer."""

from __future__ import annotations

from typing import Any

import psycopg
import pytest
import redis
from django.test import Client
from django.urls import reverse
from django_redis.exceptions import ConnectionInterrupted

from releases import views
from releases.errors import is_outage
from releases.models import AuditEvent, Release

CLOSED_REDIS = "redis://127.0.0.1:1/0"


def test_an_unknown_release_says_so_in_the_persons_language_with_the_page_around_it(
    as_user: Any,
) -> None:
    spanish = as_user("qa", "es").get("/releases/v9.9.9/")
    english = as_user("qa").get("/releases/v9.9.9/")

    assert spanish.status_code == english.status_code == 404
    assert "Página no encontrada" in spanish.content.decode()
    html = english.content.decode()
    assert "Page not found" in html
    assert '<span class="whoami">qa</span>' in html
    assert 'href="/">Back to the releases' in html


def test_an_address_nobody_serves_gets_the_same_page_logged_out(db: None, as_user: Any) -> None:
    answer = as_user(None).get("/no/such/page/")

    assert answer.status_code == 404
    assert "Page not found" in answer.content.decode()


def test_a_refusal_gives_its_reason(as_user: Any) -> None:
    answer = as_user("qa").get("/templates/import/")

    assert answer.status_code == 403
    assert "Only staff can do this." in answer.content.decode()
    assert "Solo la administración puede hacer esto." in (
        as_user("qa", "es").get("/templates/import/").content.decode()
    )


def test_a_request_for_another_host_gets_a_bad_request_page(db: None) -> None:
    answer = Client(HTTP_HOST="elsewhere.example", HTTP_ACCEPT_LANGUAGE="en").get("/")

    assert answer.status_code == 400
    assert "The server could not read this request" in answer.content.decode()


@pytest.mark.parametrize("page", ["releases:people", "releases:plan", "releases:window"])
def test_a_forged_action_gets_the_bad_request_page_in_the_persons_language(
    as_user: Any, release: Release, page: str
) -> None:
    url = reverse(page, args=[release.version])
    audited = AuditEvent.objects.count()

    english = as_user("admin").post(url, {"action": "explode"})
    spanish = as_user("admin", "es").post(url, {"action": "explode"})

    assert english.status_code == spanish.status_code == 400
    assert english["Content-Type"] == "text/html; charset=utf-8"
    html = english.content.decode()
    assert "<h1>Bad request</h1>" in html
    assert (
        "The form asked for an action this page does not take, so nothing was changed. "
        "Reload the page and try again." in html
    )
    assert 'href="/">Back to the releases' in html
    assert spanish["Content-Language"] == "es"
    spanish_html = spanish.content.decode()
    assert "<h1>Solicitud incorrecta</h1>" in spanish_html
    assert "El formulario pidió una acción que esta página no admite" in spanish_html
    assert AuditEvent.objects.count() == audited


@pytest.fixture
def without_csrf_token(users: dict[str, Any]) -> Client:
    """QA's browser sending forms as a page opened before the login would: with no token
    the server issued to this session."""
    client = Client(enforce_csrf_checks=True, HTTP_ACCEPT_LANGUAGE="en")
    client.force_login(users["qa"])
    return client


def test_a_form_sent_without_its_csrf_token_says_it_expired_and_nothing_was_saved(
    without_csrf_token: Client, release: Release
) -> None:
    answer = without_csrf_token.post(
        f"/releases/{release.version}/signoff/", {"role": "qa", "action": "sign"}
    )

    assert answer.status_code == 403
    html = answer.content.decode()
    assert "The form had expired" in html
    assert "Nothing was saved." in html
    assert not release.signoffs.exists()


def test_an_htmx_action_without_its_csrf_token_says_so_in_the_messages_alone(
    without_csrf_token: Client, release: Release
) -> None:
    answer = without_csrf_token.post(
        f"/releases/{release.version}/signoff/",
        {"role": "qa", "action": "sign"},
        HTTP_HX_REQUEST="true",
    )

    assert answer.status_code == 403
    assert (answer["HX-Retarget"], answer["HX-Reswap"]) == ("#messages", "innerHTML")
    assert answer.content.decode() == (
        '<p class="message message--error">Nothing was saved: this page was opened before '
        "you logged in or out. Reload it and try again.</p>"
    )


def test_a_server_error_gets_our_page(
    as_user: Any, release: Release, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("a fault")

    monkeypatch.setattr(views, "board_context", broken)
    client = as_user("qa")
    client.raise_request_exception = False

    answer = client.get(f"/releases/{release.version}/?show=mine")

    assert answer.status_code == 500
    assert "Server error" in answer.content.decode()


def test_a_redis_that_does_not_answer_is_a_503_saying_so_and_the_health_check_names_it(
    as_user: Any, release: Release, settings: Any
) -> None:
    client = as_user("qa")
    client.raise_request_exception = False
    settings.CACHES = {
        **settings.CACHES,
        "default": {"BACKEND": "django_redis.cache.RedisCache", "LOCATION": CLOSED_REDIS},
    }

    page = client.get(f"/releases/{release.version}/")
    health = Client().get("/healthz")

    assert page.status_code == 503
    assert page["Retry-After"] == "30"
    assert "cannot reach its database or its session store" in page.content.decode()
    assert health.status_code == 503
    assert health.content == b"unreachable: redis"


def test_the_health_check_says_ok_when_both_answer(db: None) -> None:
    answer = Client().get("/healthz")

    assert (answer.status_code, answer.content) == (200, b"ok")


def chained(error: BaseException, cause: BaseException) -> BaseException:
    error.__cause__ = cause
    return error


@pytest.mark.parametrize(
    ("error", "outage"),
    [
        (redis.ConnectionError("refused"), True),
        (redis.TimeoutError("timed out"), True),
        (chained(ConnectionInterrupted(None), redis.ConnectionError("refused")), True),
        (psycopg.OperationalError("connection failed"), True),
        # The server answered, with an error of its own.
        (psycopg.errors.DeadlockDetected("deadlock"), False),
        (psycopg.errors.QueryCanceled("statement timeout"), False),
        (chained(ConnectionInterrupted(None), redis.ResponseError("WRONGTYPE")), False),
        (RuntimeError("a fault"), False),
        (None, False),
    ],
)
def test_it_tells_an_outage_from_another_error(error: BaseException | None, outage: bool) -> None:
    assert is_outage(error) is outage
