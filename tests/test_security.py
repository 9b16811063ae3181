"""Logins, secrets and settings: login throttling, secrets kept out of every log line,
the production security headers, and password reset only where mail reaches people."""

from __future__ import annotations

import importlib
import io
import logging
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from asgiref.sync import async_to_sync
from axes.models import AccessAttempt
from django.conf import settings
from django.core import mail
from django.core.mail.backends.locmem import EmailBackend as LocmemBackend
from django.db.models import F
from django.test import Client, override_settings
from django.test.client import AsyncClient
from django.urls import clear_url_caches, reverse

from deploycheck import logs, security
from releases.models import Release
from tests.servers import serving_the_test_database

ROOT = Path(__file__).resolve().parent.parent
TEMPLATES = ROOT / "templates"
WRONG = "not-the-password"
RIGHT = "pw"  # tests/conftest.py's users

# --- login throttling ------------------------------------------------------------------


@pytest.fixture(autouse=True)
def english_pages(settings: Any) -> None:
    # These tests read the English messages; a request without Accept-Language gets
    # the default language, Spanish.
    settings.LANGUAGE_CODE = "en"


def attempt(client: Client, url: str, username: str, password: str, address: str) -> Any:
    return client.post(url, {"username": username, "password": password}, REMOTE_ADDR=address)


def logged_in(client: Client) -> bool:
    return "_auth_user_id" in client.session


def test_an_account_is_locked_after_repeated_failures_from_any_address(
    client: Client, users: dict[str, Any]
) -> None:
    login = reverse("login")
    for number in range(settings.AXES_FAILURE_LIMIT - 1):
        refused = attempt(client, login, "qa", WRONG, f"203.0.113.{number}")
        assert refused.status_code == 200, "refused as a wrong password, not yet locked"

    locked = attempt(client, login, "qa", WRONG, "203.0.113.99")

    assert locked.status_code == 429
    assert "Try again in 15 minutes." in locked.content.decode()
    assert locked["Retry-After"] == str(15 * 60)
    # The right password, from an address never seen before, waits for the cool-off too.
    again = attempt(client, login, "qa", RIGHT, "198.51.100.7")
    assert again.status_code == 429
    assert not logged_in(client)


def test_an_address_is_locked_after_failures_on_many_accounts(
    client: Client, users: dict[str, Any]
) -> None:
    login = reverse("login")
    names = ["devops", "backend", "frontend", "qa", "po"]
    assert len(names) == settings.AXES_FAILURE_LIMIT
    responses = [attempt(client, login, name, WRONG, "203.0.113.9") for name in names]

    assert [response.status_code for response in responses] == [200, 200, 200, 200, 429]
    assert attempt(client, login, "support", RIGHT, "203.0.113.9").status_code == 429
    assert not logged_in(client)
    # The accounts are not locked themselves: from another address they log in.
    assert attempt(client, login, "support", RIGHT, "198.51.100.7").status_code == 302
    assert logged_in(client)


def test_the_admin_login_is_throttled_too(client: Client, users: dict[str, Any]) -> None:
    admin_login = reverse("admin:login")
    for _ in range(settings.AXES_FAILURE_LIMIT - 1):
        assert attempt(client, admin_login, "admin", WRONG, "203.0.113.9").status_code == 200

    locked = attempt(client, admin_login, "admin", WRONG, "203.0.113.9")

    assert locked.status_code == 429
    assert "Try again in 15 minutes." in locked.content.decode()
    assert attempt(client, admin_login, "admin", RIGHT, "198.51.100.7").status_code == 429


def test_a_successful_login_starts_the_count_again(client: Client, users: dict[str, Any]) -> None:
    login = reverse("login")
    for _ in range(settings.AXES_FAILURE_LIMIT - 1):
        attempt(client, login, "qa", WRONG, "203.0.113.9")
    assert attempt(client, login, "qa", RIGHT, "203.0.113.9").status_code == 302

    client.post(reverse("logout"))
    for _ in range(settings.AXES_FAILURE_LIMIT - 1):
        assert attempt(client, login, "qa", WRONG, "203.0.113.9").status_code == 200


def test_the_lockout_ends_after_the_cool_off(client: Client, users: dict[str, Any]) -> None:
    login = reverse("login")
    for _ in range(settings.AXES_FAILURE_LIMIT):
        attempt(client, login, "qa", WRONG, "203.0.113.9")
    assert attempt(client, login, "qa", RIGHT, "203.0.113.9").status_code == 429

    AccessAttempt.objects.update(
        attempt_time=F("attempt_time") - settings.AXES_COOLOFF_TIME - timedelta(seconds=1)
    )

    assert attempt(client, login, "qa", RIGHT, "203.0.113.9").status_code == 302


@pytest.mark.parametrize("url", ["login", "admin:login"])
def test_an_over_long_username_is_refused_and_counted_not_a_500(
    client: Client, users: dict[str, Any], url: str
) -> None:
    # Django's login forms leave the username's length to the browser; django-axes
    # records it in a column of 255 characters.
    long_name = "x" * 300
    answers = [
        attempt(client, reverse(url), long_name, WRONG, "203.0.113.9").status_code
        for _ in range(settings.AXES_FAILURE_LIMIT)
    ]

    assert answers == [200] * (settings.AXES_FAILURE_LIMIT - 1) + [429]


def test_the_lockout_page_is_served_under_asgi_too(
    transactional_db: None, users: dict[str, Any]
) -> None:
    # Production runs ASGI. Transactional: an ASGI request closes its database
    # connection at the end, as in production.
    client = AsyncClient()
    login = reverse("login")

    async def log_in_wrong() -> list[Any]:
        credentials = {"username": "qa", "password": WRONG}
        return [await client.post(login, credentials) for _ in range(settings.AXES_FAILURE_LIMIT)]

    responses = async_to_sync(log_in_wrong)()

    assert [response.status_code for response in responses][-2:] == [200, 429]
    assert "Try again in 15 minutes." in responses[-1].content.decode()


def test_the_lockout_page_says_how_long_to_wait(client: Client, users: dict[str, Any]) -> None:
    login = reverse("login")
    with override_settings(AXES_COOLOFF_TIME=timedelta(minutes=1)):
        for _ in range(settings.AXES_FAILURE_LIMIT):
            locked = attempt(client, login, "qa", WRONG, "203.0.113.9")

    html = locked.content.decode()
    assert "Try again in 1 minute." in html
    assert "Too many failed logins" in html
    assert 'class="site-header"' in html, "the lockout page is one of ours, on base.html"


# --- secrets in logs -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("Not Found: /s/SECRETTOKEN/", "Not Found: /s/[redacted]/"),
        ('"GET /s/SECRETTOKEN/live/?since=3"', '"GET /s/[redacted]/live/?since=3"'),
        ("https://dc.example.com/s/SECRETTOKEN", "https://dc.example.com/s/[redacted]"),
        ("/accounts/reset/MQ/SECRETTOKEN/", "/accounts/reset/MQ/[redacted]/"),
        ("/accounts/reset/MQ/set-password/", "/accounts/reset/MQ/set-password/"),
        ("Authorization: Bearer SECRETTOKEN", "Authorization: Bearer [redacted]"),
        ("{'authorization': 'Basic SECRETTOKEN='}", "{'authorization': 'Basic [redacted]'}"),
        ("headers: authorization=SECRETTOKEN", "headers: authorization=[redacted]"),
        ("sent bearer SECRETTOKEN.x-y_z to the API", "sent bearer [redacted] to the API"),
        ("GET /v1beta/models?key=AIzaSECRET&x=1", "GET /v1beta/models?key=[redacted]&x=1"),
        ("/cb?access_token=SECRET", "/cb?access_token=[redacted]"),
        ("/releases/?page=2&keyboard=1", "/releases/?page=2&keyboard=1"),
        ("/releases/v1.2.3/status/", "/releases/v1.2.3/status/"),
    ],
)
def test_it_redacts_tokens_in_text(line: str, expected: str) -> None:
    assert logs.redact(line) == expected


@contextmanager
def written_by(handler_name: str, logger: str = "") -> Iterator[io.StringIO]:
    """What the logger's handler of settings.LOGGING named so writes, instead of the
    console."""
    handlers = [h for h in logging.getLogger(logger).handlers if h.name == handler_name]
    assert handlers, f"{logger or 'root'} has no {handler_name!r} handler"
    handler = handlers[0]
    assert isinstance(handler, logging.StreamHandler)
    output = io.StringIO()
    previous = handler.setStream(output)
    try:
        yield output
    finally:
        handler.setStream(previous)


def test_a_share_link_token_never_reaches_the_log(
    client: Client, db: None, caplog: pytest.LogCaptureFixture
) -> None:
    with written_by("console") as console, caplog.at_level(logging.INFO):
        response = client.get("/s/SECRETTOKEN/")

    assert response.status_code == 404
    assert "Not Found: /s/[redacted]/" in console.getvalue()
    assert "Not Found: /s/[redacted]/" in caplog.text
    assert "SECRETTOKEN" not in console.getvalue()
    assert "SECRETTOKEN" not in caplog.text


def test_development_logs_hold_no_token_either(tmp_path: Path) -> None:
    # With DEBUG, Django's defaults would give its loggers a console handler of their own.
    code = (
        "import django; django.setup(); import logging; "
        "logging.getLogger('django.request').warning('Not Found: %s', '/s/SECRETTOKEN/')"
    )
    env = {**os.environ, "DEBUG": "1", "DATA_DIR": str(tmp_path)}
    env["DJANGO_SETTINGS_MODULE"] = "deploycheck.settings"
    ran = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60
    )

    assert ran.returncode == 0, ran.stderr
    assert "Not Found: /s/[redacted]/" in ran.stderr
    assert "SECRETTOKEN" not in ran.stdout + ran.stderr


def test_an_exception_quoting_a_token_is_redacted() -> None:
    with written_by("console") as console:
        try:
            raise ValueError("could not open https://dc.example.com/s/SECRETTOKEN/")
        except ValueError:
            logging.getLogger("deploycheck.tests").exception("failed")

    assert "/s/[redacted]/" in console.getvalue()
    assert "SECRETTOKEN" not in console.getvalue()


def test_an_access_log_line_goes_through_the_filter() -> None:
    # As uvicorn's protocols log each request: its AccessFormatter reads these arguments.
    with written_by("access", "uvicorn.access") as access:
        logging.getLogger("uvicorn.access").info(
            '%s - "%s %s HTTP/%s" %d',
            "203.0.113.9:51234",
            "GET",
            "/s/SECRETTOKEN/live/?since=3",
            "1.1",
            200,
        )

    line = access.getvalue()
    assert '203.0.113.9:51234 - "GET /s/[redacted]/live/?since=3 HTTP/1.1" 200 OK' in line
    assert "SECRETTOKEN" not in line


# The log is read while the server runs.
UNBUFFERED = {"PYTHONUNBUFFERED": "1"}


@pytest.mark.live
def test_the_web_service_writes_its_access_log_redacted(
    django_db_setup: None, tmp_path: Path
) -> None:
    with serving_the_test_database(tmp_path, extra_args=(), **UNBUFFERED) as server:
        answer = httpx.get(f"{server.url}/s/SECRETTOKEN/", timeout=5)
        log = server.log.read_text()

    assert answer.status_code == 404
    assert re.search(r'uvicorn\.access .*"GET /s/\[redacted\]/ HTTP/1\.1" 404', log), log
    assert "SECRETTOKEN" not in log


@pytest.mark.live
def test_the_web_service_keeps_no_access_log_when_told(
    django_db_setup: None, tmp_path: Path
) -> None:
    with serving_the_test_database(tmp_path, **UNBUFFERED) as server:
        assert httpx.get(f"{server.url}/healthz", timeout=5).status_code == 200
        log = server.log.read_text()

    assert "uvicorn.access" not in log
    assert '"GET /healthz' not in log


# --- headers ---------------------------------------------------------------------------

# Tests that render release pages are transactional: pages render in threads of their
# own (releases.pages), which see only committed data.


def policy(header: str) -> dict[str, str]:
    directives = (part.strip().split(None, 1) for part in header.split(";") if part.strip())
    return {name: value for name, value in directives}


def test_pages_carry_the_production_security_headers(
    transactional_db: None, client: Client, release: Release, users: dict[str, Any], settings: Any
) -> None:
    settings.SECURE_HSTS_SECONDS = 31536000
    client.force_login(users["qa"])

    response = client.get(reverse("releases:board", args=[release.version]), secure=True)

    assert response.status_code == 200
    assert response["Strict-Transport-Security"] == "max-age=31536000; includeSubDomains"
    assert response["Referrer-Policy"] == "same-origin"
    assert response["X-Frame-Options"] == "DENY"
    assert policy(response["Content-Security-Policy"]) == {
        "default-src": "'self'",
        "script-src": "'self'",
        "style-src": "'self'",
        "img-src": "'self' data:",
        "connect-src": "'self'",
        "frame-ancestors": "'none'",
        "form-action": "'self'",
        "base-uri": "'none'",
        "object-src": "'none'",
    }


def test_plain_http_is_redirected_to_https_but_not_the_health_check(
    client: Client, db: None, settings: Any
) -> None:
    settings.SECURE_SSL_REDIRECT = True

    redirected = client.get("/accounts/login/")
    health = client.get("/healthz")
    proxied = client.get("/accounts/login/", HTTP_X_FORWARDED_PROTO="https")

    assert redirected.status_code == 301
    assert redirected["Location"] == "https://testserver/accounts/login/"
    assert health.status_code == 200
    assert proxied.status_code == 200


# Whatever the Content-Security-Policy would refuse: inline script and style.
INLINE = re.compile(
    r"<script(?![^>]*\bsrc=)[^>]*>|<style\b|\sstyle=|\son[a-z]+\s*=|javascript:", re.IGNORECASE
)


def test_no_template_holds_inline_script_or_style() -> None:
    found = [
        f"{path.relative_to(ROOT)}: {match.group(0)}"
        for path in sorted(TEMPLATES.rglob("*.html"))
        for match in INLINE.finditer(path.read_text())
    ]
    assert not found, found


def test_the_board_renders_without_inline_script_or_style(
    transactional_db: None, client: Client, release: Release, users: dict[str, Any]
) -> None:
    client.force_login(users["admin"])
    for url in (
        reverse("releases:board", args=[release.version]),
        reverse("releases:status", args=[release.version]),
        reverse("releases:list"),
    ):
        html = client.get(url).content.decode()
        assert not INLINE.findall(html), url


def test_pages_and_exports_are_not_stored(
    transactional_db: None, client: Client, release: Release, users: dict[str, Any]
) -> None:
    client.force_login(users["admin"])
    board = client.get(reverse("releases:board", args=[release.version]))
    audit_csv = client.get(reverse("releases:audit-csv", args=[release.version]))
    static = client.get("/static/js/live.js")
    health = client.get("/healthz")

    assert board["Cache-Control"] == "private, no-store"
    assert audit_csv["Cache-Control"] == "private, no-store"
    # Static files stay cacheable; plain text is not a page.
    assert static.status_code == 200
    assert "no-store" not in static.get("Cache-Control", "")
    assert not health.has_header("Cache-Control")


def test_a_view_that_chose_its_cache_control_keeps_it(
    transactional_db: None, client: Client, release: Release, users: dict[str, Any]
) -> None:
    # Transactional: the live endpoints are async and close their database connection.
    client.force_login(users["devops"])
    url = reverse("releases:live-poll", args=[release.version])

    poll = client.get(url, {"page": "board", "since": release.revision})

    assert poll.status_code == 204
    assert "no-cache" in poll["Cache-Control"]
    assert poll["Cache-Control"] != "private, no-store"


def test_a_share_link_page_is_not_stored_either(
    transactional_db: None, client: Client, release: Release, users: dict[str, Any]
) -> None:
    from releases import workflow

    token = workflow.create_share_link(release, label="desk", by=users["admin"])

    shared = client.get(reverse("releases:shared-status", args=[token]))

    assert shared.status_code == 200
    assert shared["Cache-Control"] == "private, no-store"


# --- password reset --------------------------------------------------------------------


LOCMEM = "django.core.mail.backends.locmem.EmailBackend"


def rebuild_urls() -> None:
    importlib.reload(importlib.import_module(settings.ROOT_URLCONF))
    clear_url_caches()


@contextmanager
def mail_setup(enabled: bool, backend: str = LOCMEM) -> Iterator[None]:
    """deploycheck.urls as it is built with mail working or not (it decides at import)."""
    try:
        with override_settings(EMAIL_ENABLED=enabled, EMAIL_BACKEND=backend):
            rebuild_urls()
            yield
    finally:
        rebuild_urls()


class RefusingBackend(LocmemBackend):
    """A mail server that takes the connection and refuses every message."""

    def send_messages(self, messages: Any) -> int:
        raise ConnectionResetError("the mail server hung up")


class UnreachableBackend(LocmemBackend):
    """A mail server that is down."""

    def open(self) -> bool:
        raise ConnectionRefusedError("no mail server")


def test_password_reset_is_not_offered_without_mail(client: Client, db: None) -> None:
    with mail_setup(enabled=False):
        login_page = client.get(reverse("login")).content.decode()
        answers = [
            client.get(path).status_code
            for path in (
                "/accounts/password_reset/",
                "/accounts/password_reset/done/",
                "/accounts/reset/MQ/set-password/",
                "/accounts/reset/done/",
            )
        ]
        still = client.get("/accounts/login/").status_code

    assert answers == [404, 404, 404, 404]
    assert still == 200
    assert "password_reset" not in login_page
    assert "/reset/" not in login_page


def test_password_reset_mails_a_working_link_when_mail_works(
    client: Client, users: dict[str, Any]
) -> None:
    with mail_setup(enabled=True):
        login_page = client.get(reverse("login")).content.decode()
        asked = client.post("/accounts/password_reset/", {"email": "qa@example.com"})
        assert len(mail.outbox) == 1
        link = re.search(r"https?://testserver(/accounts/reset/\S+/)", str(mail.outbox[0].body))
        assert link, mail.outbox[0].body
        form = client.get(link.group(1), follow=True)
        changed = client.post(
            form.redirect_chain[-1][0],
            {"new_password1": "a long new passphrase", "new_password2": "a long new passphrase"},
        )

    assert 'href="/accounts/password_reset/"' in login_page
    assert asked.status_code == 302
    assert asked["Location"] == "/accounts/password_reset/done/"
    assert mail.outbox[0].to == ["qa@example.com"]
    assert changed.status_code == 302
    users["qa"].refresh_from_db()
    assert users["qa"].check_password("a long new passphrase")


@pytest.mark.parametrize("backend", ["RefusingBackend", "UnreachableBackend"])
def test_a_reset_mail_that_cannot_be_sent_is_not_reported_as_sent(
    client: Client, users: dict[str, Any], backend: str, caplog: pytest.LogCaptureFixture
) -> None:
    with mail_setup(enabled=True, backend=f"tests.test_security.{backend}"):
        answer = client.post("/accounts/password_reset/", {"email": "qa@example.com"})

    assert answer.status_code == 503
    assert "The password reset mail could not be sent." in answer.content.decode()
    assert "qa@example.com" not in caplog.text


def test_a_mail_server_that_is_down_fails_an_unknown_address_alike(
    client: Client, users: dict[str, Any]
) -> None:
    # Otherwise the answer would tell which addresses have an account.
    with mail_setup(enabled=True, backend="tests.test_security.UnreachableBackend"):
        answer = client.post("/accounts/password_reset/", {"email": "nobody@example.com"})

    assert answer.status_code == 503


@pytest.fixture(autouse=True)
def own_cache(settings: Any, request: pytest.FixtureRequest) -> None:
    # Reset requests are counted in the cache for an hour: each test counts its own.
    settings.CACHES = {
        **settings.CACHES,
        "default": {
            "BACKEND": "django.core.cache.backends.locmem.LocMemCache",
            "LOCATION": request.node.nodeid,
        },
    }


def ask_reset(client: Client, email: str, address: str = "10.0.0.1") -> Any:
    return client.post("/accounts/password_reset/", {"email": email}, REMOTE_ADDR=address)


@pytest.mark.parametrize("email", ["qa@example.com", "nobody@example.com"])
def test_password_reset_is_limited_per_account_whoever_asks(
    client: Client, users: dict[str, Any], email: str
) -> None:
    limit = security.RESET_LIMIT_PER_ACCOUNT
    with mail_setup(enabled=True):
        # From a new address each time, and however the address is written.
        answers = [
            ask_reset(client, email.upper() if n % 2 else email, f"10.0.1.{n}")
            for n in range(limit + 1)
        ]

    assert [answer.status_code for answer in answers] == [302] * limit + [429]
    refused = answers[-1]
    assert "Too many password reset requests. Try again in" in refused.content.decode()
    assert 0 < int(refused["Retry-After"]) <= security.RESET_WINDOW_SECONDS
    # An address with an account and one without are answered alike.
    assert len(mail.outbox) == (limit if email == "qa@example.com" else 0)


def test_password_reset_is_limited_per_client_address(
    client: Client, users: dict[str, Any]
) -> None:
    limit = security.RESET_LIMIT_PER_ADDRESS
    with mail_setup(enabled=True):
        answers = [ask_reset(client, f"person{n}@example.com") for n in range(limit)]
        refused = ask_reset(client, "qa@example.com")
        elsewhere = ask_reset(client, "qa@example.com", "10.0.0.2")

    assert [answer.status_code for answer in answers] == [302] * limit
    assert refused.status_code == 429
    assert elsewhere.status_code == 302
    assert len(mail.outbox) == 1


def test_reset_mail_printed_on_the_console_hides_the_token(
    client: Client, users: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    with mail_setup(enabled=True, backend="deploycheck.logs.ConsoleEmailBackend"):
        asked = ask_reset(client, "qa@example.com")

    printed = capsys.readouterr().out
    link = re.search(r"/accounts/reset/([^/\s]+)/([^/\s]+)/", printed)
    assert asked.status_code == 302
    assert link, printed
    assert link.group(2) == logs.REDACTED
