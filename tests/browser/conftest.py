"""Browser tests: Debian's Chromium driven by Playwright against the production ASGI server.

The server runs in a subprocess with the very command line `deploycheck.run` gives the
"web" service, pointed at the PostgreSQL database pytest-django created. Tests mark
themselves `django_db(transaction=True)`, so what they set up is committed and the
server sees it; changes they make through releases.workflow are published to Redis as
in production, and the open pages follow them over the live stream. The server's output
is in server.log of pytest's browser-server* temporary folder.
"""

from __future__ import annotations

import os
import re
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
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

from deploycheck import run
from releases import checklists, workflow
from releases.models import Release
from tests.conftest import PERSONAS

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
READY_SECONDS = 30.0
STOP_SECONDS = 10.0
# The seed's contacts hold placeholders, which block approval; these replace them.
ON_CALL = ("Dana Ops", "Bruno Back", "Fátima Front", "Quique QA", "Paula Owner")


@dataclass(frozen=True)
class Server:
    url: str
    log: Path

    def log_tail(self, lines: int = 40) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def server_database_url() -> str:
    """DATABASE_URL for the server: the test database pytest-django created, which on
    PostgreSQL is a real database another process can open."""
    database = settings.DATABASES["default"]
    user = quote(database.get("USER") or "", safe="")
    password = quote(database.get("PASSWORD") or "", safe="")
    credentials = f"{user}:{password}@" if password else f"{user}@" if user else ""
    host = database.get("HOST") or "127.0.0.1"
    port = f":{database['PORT']}" if database.get("PORT") else ""
    return f"postgres://{credentials}{host}{port}/{quote(database['NAME'], safe='')}"


@pytest.fixture(scope="module")
def server(django_db_setup: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    if settings.DATABASES["default"]["ENGINE"] != "django.db.backends.postgresql":
        # SQLite's test database lives in this process's memory, out of the server's reach.
        pytest.fail(
            "browser tests need PostgreSQL: the server subprocess must open the test "
            "database. Run `make test` (it sets DATABASE_URL=postgres://postgres@127.0.0.1"
            ":5432/postgres and REDIS_URL=redis://127.0.0.1:6379/0)."
        )
    data_dir = tmp_path_factory.mktemp("browser-server")
    env = {
        **os.environ,
        "HOST": "127.0.0.1",
        "PORT": str(free_port()),
        "DATABASE_URL": server_database_url(),
        "REDIS_URL": settings.REDIS_URL,
        "DEBUG": "0",
        "DEMO_MODE": "0",
        "SECRET_KEY": settings.SECRET_KEY,
        "ALLOWED_HOSTS": "127.0.0.1,localhost",
        "SECURE_COOKIES": "0",
        "LANGUAGE_CODE": "en",
        "DATA_DIR": str(data_dir),
        "PYTHONUNBUFFERED": "1",
    }
    # The server must keep Django's async-safety checks; only this process lifts them.
    env.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
    url = f"http://{env['HOST']}:{env['PORT']}"
    log = data_dir / "server.log"
    with log.open("wb") as output:
        process = subprocess.Popen(
            run.service_argv("web", env),
            cwd=run.BASE_DIR,
            env=env,
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    started = Server(url=url, log=log)
    try:
        deadline = time.monotonic() + READY_SECONDS
        while True:
            if process.poll() is not None:
                pytest.fail(
                    f"the web server exited with {process.returncode}:\n{started.log_tail()}"
                )
            try:
                if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(
                    f"the web server did not answer within {READY_SECONDS:.0f} s:\n"
                    f"{started.log_tail()}"
                )
            time.sleep(0.1)
        yield started
    finally:
        process.terminate()
        try:
            process.wait(timeout=STOP_SECONDS)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.fixture(scope="module")
def browser(server: Server) -> Iterator[Browser]:
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
    template = checklists.load_default_template()
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
    server: Server
    contexts: list[BrowserContext]
    errors: list[str]

    def log_in(self, username: str) -> Page:
        """A fresh browser (own cookies) logged in through the real login form."""
        context = self.browser.new_context(base_url=self.server.url, locale="en-US")
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

    def _console(self, username: str, message: ConsoleMessage) -> None:
        if message.type == "error":
            self.errors.append(f"{username}: console: {message.text}")

    def _response(self, username: str, response: Response) -> None:
        if response.status >= 400:
            method = response.request.method
            self.errors.append(f"{username}: {response.status} {method} {response.url}")


@pytest.fixture
def browsing(browser: Browser, server: Server) -> Iterator[Browsing]:
    session = Browsing(browser=browser, server=server, contexts=[], errors=[])
    yield session
    errors = list(session.errors)
    for context in session.contexts:
        context.close()
    assert not errors, "errors in the pages:\n" + "\n".join(errors)


@pytest.fixture
def log_in(browsing: Browsing) -> Callable[[str], Page]:
    return browsing.log_in
