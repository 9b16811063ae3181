"""Browser tests: Debian's Chromium driven by Playwright against the production ASGI server.

The server runs in a subprocess with the very command line `deploycheck.run` gives the
"web" service, pointed at the PostgreSQL database pytest-django created. Tests mark
themselves `django_db(transaction=True)`, so what they set up is committed and the
server sees it; changes they make through releases.workflow are published to Redis as
in production, and the open pages follow them over the live stream. The server's output
is in server.log of pytest's browser-server* temporary folder.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.hashers import PBKDF2PasswordHasher
from playwright.sync_api import (
    Browser,
    BrowserContext,
    ConsoleMessage,
    Page,
    Response,
    expect,
    sync_playwright,
)

from releases import workflow
from releases.actors import SystemActor
from releases.models import Release
from tests.conftest import PERSONAS
from tests.servers import WebServer, serving_the_test_database

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
PASSWORD = "pw"
# Every wait in these tests is bounded by this: a live update that takes longer is a bug.
TIMEOUT_MS = 5_000
# The seed's contacts hold placeholders, which block approval; these replace them.
ON_CALL = ("Dana Ops", "Bruno Back", "Fátima Front", "Quique QA", "Paula Owner")


@pytest.fixture(scope="module")
def server(django_db_setup: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[WebServer]:
    with serving_the_test_database(
        tmp_path_factory.mktemp("browser-server"),
        extra_args=(),
        REDIS_URL=settings.REDIS_URL,
        DEMO_MODE="0",
        ALLOWED_HOSTS="127.0.0.1,localhost",
        SECURE_COOKIES="0",
        LANGUAGE_CODE="en",
        PYTHONUNBUFFERED="1",
    ) as running:
        yield running


@pytest.fixture(scope="module")
def browser(server: WebServer) -> Iterator[Browser]:
    """Depends on the server only so that every page closes before the server stops."""
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} is missing: install Debian's chromium (apt-get install chromium)")
    with pytest.MonkeyPatch.context() as patch:
        # Playwright's sync API keeps an asyncio loop marked as running in this thread, so
        # Django would refuse every ORM call as if made from async code. Nothing here runs
        # concurrently with the ORM; the lift ends with the module, before other tests.
        patch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
        with sync_playwright() as playwright:
            launched = playwright.chromium.launch(
                executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS
            )
            try:
                yield launched
            finally:
                launched.close()


@pytest.fixture(scope="session")
def server_password_hash() -> str:
    # tests/conftest.py hashes with MD5 for speed, which the server (production hashers)
    # cannot check. One production-strength hash, made once, serves every persona.
    hasher = PBKDF2PasswordHasher()
    return hasher.encode(PASSWORD, hasher.salt())


@pytest.fixture
def people(users: dict[str, Any], server_password_hash: str) -> dict[str, Any]:
    get_user_model().objects.filter(pk__in=[user.pk for user in users.values()]).update(
        password=server_password_hash
    )
    return users


@pytest.fixture
def release_day(people: dict[str, Any]) -> Release:
    """v1.0.0 from the built-in default checklist, one person per role, contacts filled."""
    admin = people["admin"]
    template = workflow.import_default_template(by=SystemActor("tests"))
    release = workflow.create_release(
        template, version="v1.0.0", title="Call automation go-live", by=admin
    )
    for persona in PERSONAS:
        workflow.assign(release, role=persona, user=people[persona], by=admin)
    contacts = list(release.contacts.order_by("position"))
    assert len(contacts) == len(ON_CALL), "the seed's contacts table changed"
    for number, (contact, name) in enumerate(zip(contacts, ON_CALL, strict=True)):
        workflow.update_contact(
            contact,
            by=admin,
            name=name,
            phone=f"+34 600 000 {number:03d}",
            email=f"oncall{number}@example.com",
        )
    release.refresh_from_db()
    return release


@dataclass
class Browsing:
    """The contexts a test opened and what went wrong inside their pages."""

    browser: Browser
    server: WebServer
    contexts: list[BrowserContext]
    errors: list[str]

    def log_in(self, username: str, *, javascript: bool = True) -> Page:
        """A fresh browser (own cookies) logged in through the real login form; with
        `javascript` off, as a browser that runs none."""
        context = self.browser.new_context(
            base_url=self.server.url, locale="en-US", java_script_enabled=javascript
        )
        context.set_default_timeout(TIMEOUT_MS)
        self.contexts.append(context)
        page = context.new_page()
        page.on("pageerror", lambda error: self.errors.append(f"{username}: {error}"))
        page.on("console", lambda message: self._console(username, message))
        page.on("response", lambda response: self._response(username, response))
        page.goto("/accounts/login/")
        page.locator("input[name=username]").fill(username)
        page.locator("input[name=password]").fill(PASSWORD)
        page.get_by_role("button", name="Log in", exact=True).click()
        expect(page).not_to_have_url(re.compile(r"/accounts/login/"))
        return page

    def refused_on_purpose(self, url_part: str) -> None:
        """A form the test had refused (its 422, and the console's word of it) is what
        the test expects, not an error of the page."""
        self.errors[:] = [
            error
            for error in self.errors
            if url_part not in error and "Failed to load resource" not in error
        ]

    def _console(self, username: str, message: ConsoleMessage) -> None:
        if message.type == "error":
            self.errors.append(f"{username}: console: {message.text}")

    def _response(self, username: str, response: Response) -> None:
        if response.status >= 400:
            method = response.request.method
            self.errors.append(f"{username}: {response.status} {method} {response.url}")


@pytest.fixture
def browsing(browser: Browser, server: WebServer) -> Iterator[Browsing]:
    session = Browsing(browser=browser, server=server, contexts=[], errors=[])
    yield session
    errors = list(session.errors)
    for context in session.contexts:
        context.close()
    assert not errors, "errors in the pages:\n" + "\n".join(errors)


@pytest.fixture
def log_in(browsing: Browsing) -> Callable[[str], Page]:
    return browsing.log_in
