"""Shared fixtures: one person per role on a small release, the seed release, and that
release further on its day (ready, approved, deployed).

The personas mirror the demo accounts, so tests read like the release day they model:
`qa` ticks, `po` approves, `support` only watches, `admin` overrides, `outsider` holds
no role on the release.
"""

from __future__ import annotations

import os
import signal
import sys
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import FrameType
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.core.cache import cache
from django.test import Client, override_settings
from django.utils import translation

from releases import exports, tasks, workflow
from releases.actors import standing
from releases.board import panels_sent, row_renders
from releases.models import (
    ChecklistTemplate,
    Release,
    Role,
    TemplateContact,
    TemplateItem,
    TemplateRollbackStep,
)
from releases.pages import pages

PERSONAS = ("devops", "backend", "frontend", "qa", "po", "support")


@pytest.fixture(scope="session", autouse=True)
def plain_http() -> Iterator[None]:
    """The suite speaks plain HTTP: through Django's test client, and to the servers it
    starts on loopback, which inherit this environment. Production redirects plain HTTP
    to HTTPS (SSL_REDIRECT, on without DEBUG); the tests of that turn it back on."""
    with pytest.MonkeyPatch.context() as patch, override_settings(SECURE_SSL_REDIRECT=False):
        patch.setenv("SSL_REDIRECT", "0")
        yield


def cache_of_its_own(settings: Any, name: str) -> Iterator[None]:
    """For a module's autouse fixture: a default cache of the test's own, so that what it
    counts (rate-limit windows, runs per person) starts empty. Not the shared Redis:
    clearing that would flush the Celery broker other runs may be using. The other
    caches (the page shell's) stay as configured."""
    settings.CACHES = {
        **settings.CACHES,
        "default": {
            "BACKEND": "django.core.cache.backends.locmem.LocMemCache",
            "LOCATION": f"{name}-{uuid.uuid4()}",
        },
    }
    cache.clear()
    yield
    cache.clear()


@pytest.fixture(autouse=True)
def fresh_caches() -> None:
    # Keys hold release ids and revisions, which another test's rolled-back data reuses.
    pages.clear()
    standing.cache_clear()
    panels_sent.clear()
    row_renders.clear()


@pytest.fixture(autouse=True)
def exports_written_at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    """The audit CSV's worker, run in the test's own thread and transaction when the
    download asks: a test of the download reads what a worker would have written. The
    tests through a real server start a real worker. Written whole before the download
    reads, it must not wait for the download to keep up."""
    monkeypatch.setattr(tasks, "enqueue_export", exports.write)
    monkeypatch.setattr(exports, "PARTS_AHEAD", sys.maxsize)


@pytest.fixture(autouse=True)
def fast_password_hashing(settings: Any) -> None:
    # The default hasher costs a noticeable fraction of a second per user on 2 cores.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture(autouse=True)
def english_outside_requests() -> Iterator[None]:
    # Code called outside a request speaks the default language (Spanish); tests assert
    # the English source strings. Requests still choose their language themselves.
    with translation.override("en"):
        yield


@pytest.fixture
def users(db: Any) -> dict[str, Any]:
    User = get_user_model()
    people = {
        name: User.objects.create_user(name, f"{name}@example.com", "pw", first_name=name.upper())
        for name in (*PERSONAS, "outsider")
    }
    people["admin"] = User.objects.create_superuser("admin", "admin@example.com", "pw")
    return people


@pytest.fixture
def as_user(users: dict[str, Any]) -> Any:
    """A client asking for English (or `language`), logged in as `persona` (None:
    nobody)."""

    def login(persona: str | None, language: str = "en") -> Client:
        client = Client(headers={"Accept-Language": language})
        if persona is not None:
            client.force_login(users[persona])
        return client

    return login


def build_small_template(name: str = "small") -> ChecklistTemplate:
    """Two phases; the gate stands before the second. Every lead owns an item before it."""
    template = ChecklistTemplate.objects.create(name=name, title="Small", gate_position=5)
    rows = [
        ("Pre", "Code", "Merge everything", Role.BACKEND, True),
        ("Pre", "Tests", "Unit tests pass", Role.QA, True),
        ("Pre", "Infra", "TLS certificates installed", Role.DEVOPS, True),
        ("Pre", "UI", "Screens reviewed", Role.FRONTEND, True),
        ("Pre", "Prep", "Nice-to-have dashboard", Role.DEVOPS, False),
        ("Deploy", "Run", "Deploy the backend", Role.BACKEND, True),
        ("Deploy", "Run", "Smoke tests in production", Role.QA, True),
    ]
    TemplateItem.objects.bulk_create(
        [
            TemplateItem(
                template=template,
                position=i,
                phase=phase,
                section=section,
                text=text,
                owner_role=role,
                required=required,
            )
            for i, (phase, section, text, role, required) in enumerate(rows)
        ]
    )
    TemplateRollbackStep.objects.create(
        template=template, position=0, text="Roll back", commands="deploy --previous", lang="bash"
    )
    TemplateContact.objects.create(
        template=template,
        position=0,
        role="DevOps Lead",
        name="Dana Ops",
        contact="+34 600 000 001 / dana@example.com",
    )
    return template


@pytest.fixture
def small_template(db: Any) -> ChecklistTemplate:
    return build_small_template()


@pytest.fixture
def release(small_template: ChecklistTemplate, users: dict[str, Any]) -> Release:
    made = workflow.create_release(
        small_template, version="v1.2.3", title="Spring", by=users["admin"]
    )
    for persona in PERSONAS:
        workflow.assign(made, role=persona, user=users[persona], by=users["admin"])
    made.refresh_from_db()
    return made


def item(release: Release, text: str) -> Any:
    return release.items.get(text=text)


@pytest.fixture
def ready_release(release: Release, users: dict[str, Any]) -> Release:
    """Everything before the gate settled and signed: the product owner may approve."""
    for entry in release.items.filter(before_gate=True):
        workflow.tick(entry, by=users[entry.owner_role])
    for role in Role.leads():
        workflow.sign_off(release, role=role, phase="Pre", by=users[role])
    release.refresh_from_db()
    return release


@pytest.fixture
def approved(ready_release: Release, users: dict[str, Any]) -> Release:
    workflow.approve(ready_release, by=users["po"], reason="everything green")
    ready_release.refresh_from_db()
    return ready_release


@pytest.fixture
def deployed(approved: Release, users: dict[str, Any]) -> Release:
    workflow.start_deploy(approved, by=users["devops"], reason="window open")
    workflow.finish_deploy(approved, by=users["devops"], result="success", reason="smoke ok")
    approved.refresh_from_db()
    return approved


@pytest.fixture(scope="session")
def django_db_modify_db_settings(
    django_db_modify_db_settings_parallel_suffix: None, tmp_path_factory: pytest.TempPathFactory
) -> None:
    # Threads in transactional tests need a file: an in-memory SQLite database shared
    # between connections fails a second writer with "database table is locked" at once
    # instead of making it wait, as a file database in WAL mode does.
    from django.conf import settings

    database = settings.DATABASES["default"]
    if database["ENGINE"] == "django.db.backends.postgresql":
        # Each run its own database: two runs on one machine (a developer's and CI's, or
        # two terminals) would otherwise drop each other's fixed test_postgres.
        database["TEST"] = {**database.get("TEST", {}), "NAME": f"test_deploycheck_{os.getpid()}"}
        # A transactional test's flush truncates every table while a live server may
        # still be rendering a join for its pages: the two can deadlock, and PostgreSQL
        # ends whichever waiter looks first. This process looks last, so the server's
        # query is the one ended (a render it retries at the next revision), not the
        # flush, whose failure would leave its rows to the next test.
        options = database.setdefault("OPTIONS", {})
        options["options"] = f"{options.get('options', '')} -c deadlock_timeout=10s".strip()
    if database["ENGINE"] == "django.db.backends.sqlite3":
        database["TEST"] = {
            **database.get("TEST", {}),
            "NAME": str(tmp_path_factory.mktemp("db") / "test.sqlite3"),
        }


@contextmanager
def deadline(seconds: float) -> Iterator[None]:
    """Fails the test, instead of hanging it, if the code inside blocks (opening a FIFO
    waits for a writer that never comes)."""

    def expire(signum: int, frame: FrameType | None) -> None:
        raise TimeoutError(f"still blocked after {seconds} s")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def swapped_for_a_fifo(path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A FIFO at `path` that os.stat reports as the regular file it replaced: a file
    swapped between a reader's first look and its open."""
    path.write_text("", encoding="utf-8")
    regular = os.stat(path)
    path.unlink()
    os.mkfifo(path)
    real_stat = os.stat
    monkeypatch.setattr(
        os, "stat", lambda at, **kw: regular if str(at) == str(path) else real_stat(at, **kw)
    )
    return path
