"""No input may produce a 500.

Every route of the project — found by walking the URL resolver, so that a route added
later is walked too — is requested with hostile path segments for each of its converters
and with hostile query and form values, as each persona, on the suite's PostgreSQL (which
refuses NUL in text where SQLite would store it). A 4xx is a fine answer, and so is a 2xx
or 3xx; a 5xx, or an exception while a streamed answer is read, fails the test and names
the URL, the method, the persona and the exception.

The walk's release, people and sessions are made once for the module and committed, so
that the live endpoints, which read the database from another thread, see them too; each
test still runs in a transaction that is rolled back, so what one walk changes (a release
cancelled, or deleted through the admin) never reaches the next.
"""

from __future__ import annotations

import asyncio
import html
import json
import logging
import secrets
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlencode

import pytest
from asgiref.sync import async_to_sync
from django.conf import settings as django_settings
from django.contrib.auth import get_user_model
from django.contrib.contenttypes.models import ContentType
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import call_command
from django.http import StreamingHttpResponse
from django.test import AsyncClient, Client
from django.urls import URLPattern, URLResolver, get_resolver, reverse
from django.urls.converters import IntConverter
from django.utils.regex_helper import normalize

from checks.models import PipelineToken
from releases import workflow
from releases.forms import ITEM_ACTIONS
from releases.models import ReleaseItem, Role
from tests.conftest import PERSONAS as ROLES
from tests.conftest import build_small_template

PERSONAS = (None, "qa", "support", "admin")  # anonymous, a lead, support, staff
# The admin turns away whoever is not staff before it reads anything else, so a lead and
# support get exactly the anonymous answer there: the admin is walked as these two.
ADMIN_PERSONAS = (None, "admin")
LONG = 5000
FORM = "application/x-www-form-urlencoded"
QA_ITEM = "Unit tests pass"

# Path segments, inserted into the URL as written: the test client percent-decodes the
# path as a server does, so "%00" arrives as NUL and "%ff%fe" as bytes that are not UTF-8.
SEGMENTS: dict[str, str] = {
    "nul": "v1.2.3\x00",
    "pct-nul": "v1.2.3%00",
    "over-long": "v" + "1" * LONG,
    "non-utf8": "%ff%fe",
    "full-width": "v１.０.０",
    "dot-dot": "..",
}
INT_SEGMENTS: dict[str, str] = {
    "huge": str(10**30),
    "negative": "-1",
    "full-width": "１２",
    "pct-nul": "1%00",
}
# Query and form values. The project's own routes get them all; the admin (Django's code,
# the same for every model) gets CORE_VALUES and the raw ones below.
VALUES: dict[str, str] = {
    "nul": "a\x00b",
    "over-long": "x" * LONG,
    "huge": str(10**30),
    "negative": "-1",
    "full-width": "１２",
    # Refused by the workflow as well as by forms: a refusal, never a 500.
    "bidi": "a\u202eb",
    "date-9999-99-99": "9999-99-99",
    "date-10000-01-01": "10000-01-01",
    "date-0001-01-01": "0001-01-01",
    "date-9999-12-31": "9999-12-31",
}
CORE_VALUES = ("nul", "over-long", "huge")
# What the create form's <input type="datetime-local"> fields get besides.
FORM_VALUES = {**VALUES, "datetime-9999-12-31": "9999-12-31T23:59"}
# Raw query strings no browser sends: bytes that are not UTF-8, and text that, decoded as
# the UTF-7 the request claims, is a lone surrogate (which no UTF-8 text, and so no
# PostgreSQL text, can hold). Django refuses a form body in any charset but UTF-8 itself,
# so bodies get only the bytes.
RAW_QUERIES: dict[str, tuple[str, str]] = {
    "bytes-not-utf8": ("\xff\xfe", ""),
    "utf7-surrogate": ("%2B2AA-", "; charset=utf-7"),
}
RAW_BODY = "\xff\xfe"
# Query keys the project's views and the admin read.
QUERY_KEYS = (
    *("show", "page", "since", "until", "action", "actor", "next", "role"),
    *("q", "o", "p", "e", "_to_field", "_popup", "_changelist_filters", "created_at__gte"),
)


# A form a route takes, valid, and the fields of it a person types in: those are the ones
# given each hostile value, so that the rest of the form still holds.
Forms = list[tuple[dict[str, Any], tuple[str, ...]]]


# --- the routes --------------------------------------------------------------------------


@dataclass(frozen=True)
class Route:
    """One URL pattern: its qualified name, its path as a format string, its parameters
    and the converter of each (a re_path's parameters have none)."""

    name: str
    template: str
    params: tuple[str, ...]
    converters: dict[str, Any]

    @property
    def is_admin(self) -> bool:
        return self.name.startswith("admin:")

    @property
    def personas(self) -> tuple[str | None, ...]:
        return ADMIN_PERSONAS if self.is_admin else PERSONAS

    @property
    def values(self) -> list[str]:
        names = CORE_VALUES if self.is_admin else tuple(VALUES)
        return [VALUES[name] for name in names]

    def url(self, **values: str) -> str:
        return "/" + self.template % values


def _walk(
    entries: list[Any], prefix: str, namespace: str, above: dict[str, Any]
) -> Iterator[Route]:
    for entry in entries:
        regex = prefix + entry.pattern.regex.pattern.removeprefix("^")
        converters = above | getattr(entry.pattern, "converters", {})
        if isinstance(entry, URLResolver):
            inner = ":".join(part for part in (namespace, entry.namespace or "") if part)
            yield from _walk(entry.url_patterns, regex, inner, converters)
            continue
        assert isinstance(entry, URLPattern)
        template, params = normalize(regex)[0]
        name = entry.name or "/" + template  # the admin's unnamed object redirects
        yield Route(
            f"{namespace}:{name}" if namespace else name, template, tuple(params), converters
        )


ROUTES = list(_walk(get_resolver().url_patterns, "", "", {}))


def test_the_walk_finds_every_part_of_the_project() -> None:
    names = {route.name for route in ROUTES}
    assert {"releases:board", "releases:item", "releases:audit-csv", "releases:live"} <= names
    assert {"api:evidence", "checks:tokens", "admin:index", "login", "set_language"} <= names
    assert "admin:releases_release_change" in names
    item = next(route for route in ROUTES if route.name == "releases:item")
    assert isinstance(item.converters["item_id"], IntConverter)


# --- the world the walk runs in ----------------------------------------------------------


@dataclass(frozen=True)
class World:
    """What the routes' parameters and forms point at, and each persona's session."""

    release_id: int
    version: str
    item_id: int
    step_id: int
    contact_id: int
    template_id: int
    outsider_id: int
    admin_id: int
    share_token: str
    pipeline_token: str
    deploy_token: str
    sessions: dict[str, str]

    def path_values(self, route: Route) -> dict[str, str]:
        values = {
            "version": self.version,
            "item_id": str(self.item_id),
            "step_id": str(self.step_id),
            # The pipeline API numbers rollback steps as people see them.
            "number": "1",
            "move": "close",
            # The confirmation page asking the most of its form.
            "action": "rollback",
            "index": "0",
            "token": "set-password" if route.name == "password_reset_confirm" else self.share_token,
            "key": self.share_token if route.template.startswith("s/") else self.version,
            "object_id": str(self.release_id),
            "content_type_id": str(ContentType.objects.get_for_model(ReleaseItem).pk),
            "id": str(self.admin_id),
            "app_label": "releases",
            "url": "nowhere/",
            "uidb64": "MQ",
        }
        return {name: values[name] for name in route.params}


def _build_world() -> World:
    User = get_user_model()
    # No passwords: nobody logs in with one, and hashing eight would cost seconds.
    users = {name: User.objects.create_user(name, f"{name}@example.com") for name in ROLES}
    users["outsider"] = User.objects.create_user("outsider")
    users["admin"] = User.objects.create_superuser("admin", "admin@example.com", None)
    template = build_small_template("walk")
    release = workflow.create_release(template, version="v1.2.3", title="Walk", by=users["admin"])
    for role in ROLES:
        workflow.assign(release, role=role, user=users[role], by=users["admin"])
    share_token = workflow.create_share_link(release, label="Support", by=users["admin"])
    # Running, so that its extend, complete and cancel forms and its calendar answer.
    started = datetime.now(UTC) - timedelta(hours=1)
    workflow.schedule_window(
        release,
        start=started,
        end=started + timedelta(days=6),
        time_zone="Europe/Madrid",
        by=users["admin"],
    )
    pipeline_token = secrets.token_urlsafe(32)
    PipelineToken.objects.create(
        release=release,
        role=Role.QA,
        label="ci",
        token_hash=PipelineToken.hash_token(pipeline_token),
        created_by=users["admin"],
    )
    # A deploy job's: the release day's endpoints take its requests past the rules.
    deploy_token = secrets.token_urlsafe(32)
    PipelineToken.objects.create(
        release=release,
        role=Role.DEVOPS,
        label="deploys",
        token_hash=PipelineToken.hash_token(deploy_token),
        created_by=users["admin"],
    )
    sessions = {}
    for persona in ("qa", "support", "admin"):
        client = Client()
        client.force_login(users[persona])
        sessions[persona] = client.cookies[django_settings.SESSION_COOKIE_NAME].value
    contact = release.contacts.first()
    assert contact is not None
    return World(
        release_id=release.pk,
        version=release.version,
        item_id=release.items.get(text=QA_ITEM).pk,
        step_id=release.rollback_steps.get().pk,
        contact_id=contact.pk,
        template_id=template.pk,
        outsider_id=users["outsider"].pk,
        admin_id=users["admin"].pk,
        share_token=share_token,
        pipeline_token=pipeline_token,
        deploy_token=deploy_token,
        sessions=sessions,
    )


@pytest.fixture(scope="module")
def world(django_db_setup: None, django_db_blocker: Any) -> Iterator[World]:
    # What is committed here goes as a transactional test's data goes (a flush), so that
    # later modules find the database as empty as ever.
    with django_db_blocker.unblock():
        try:
            built = _build_world()
        except BaseException:
            call_command("flush", interactive=False, verbosity=0)
            raise
    yield built
    with django_db_blocker.unblock():
        call_command("flush", interactive=False, verbosity=0)


def read_whole(response: StreamingHttpResponse) -> bytes:
    """A download's bytes, whether it streams from a thread or from the event loop."""
    if not response.is_async:
        return b"".join(response.streaming_content)  # type: ignore[arg-type]

    async def downloaded() -> bytes:
        return b"".join([part async for part in response.streaming_content])  # type: ignore[union-attr]

    return async_to_sync(downloaded)()


class Walker:
    """Sends the walk's requests, one client per persona, and keeps every 5xx."""

    def __init__(self, world: World) -> None:
        self.world = world
        self.clients: dict[str | None, Client] = {}
        self.failures: list[str] = []
        self.import_forms: Forms = []

    def client(self, persona: str | None) -> Client:
        if persona not in self.clients:
            client = Client(raise_request_exception=False, headers={"accept-language": "en"})
            if persona is not None:
                client.cookies[django_settings.SESSION_COOKIE_NAME] = self.world.sessions[persona]
            self.clients[persona] = client
        return self.clients[persona]

    def send(self, persona: str | None, method: str, url: str, **request: Any) -> None:
        client = self.client(persona)
        response = getattr(client, method.lower())(url, **request)
        error = response.exc_info[1] if response.exc_info else None
        # An exception while a download streams cuts it short: a 500 in all but name. A
        # live stream never ends by itself, so only its status is judged. (The client
        # closes a stream it has read; closing one here would close the test's database
        # connection, as the end of a real request does.)
        if (
            isinstance(response, StreamingHttpResponse)
            and response.status_code < 500
            and not response.get("Content-Type", "").startswith("text/event-stream")
        ):
            try:
                read_whole(response)
            except Exception as streamed:  # any exception is the finding
                error = streamed
        if response.status_code >= 500 or error is not None:
            shown = url if len(url) <= 120 else f"{url[:100]!r}… ({len(url)} characters)"
            cause = f" {type(error).__name__}: {str(error)[:200]}" if error else ""
            who = persona or "anonymous"
            self.failures.append(f"{method} {shown} as {who} → {response.status_code}{cause}")

    def assert_no_5xx(self) -> None:
        count = len(self.failures)
        assert not self.failures, f"{count} requests got a 5xx:\n" + "\n".join(self.failures[:40])


@pytest.fixture
def walker(world: World, db: None) -> Iterator[Walker]:
    # Thousands of expected 4xx would each be logged as a warning; a 5xx is still logged,
    # and the walk keeps its exception besides.
    logging.disable(logging.WARNING)
    try:
        yield Walker(world)
    finally:
        logging.disable(logging.NOTSET)


# --- path segments -----------------------------------------------------------------------


@pytest.mark.parametrize("route", [r for r in ROUTES if r.params], ids=lambda r: r.name)
def test_no_hostile_path_segment_gets_a_500(route: Route, walker: Walker) -> None:
    valid = walker.world.path_values(route)
    for param in route.params:
        segments = list(SEGMENTS.values())
        if isinstance(route.converters.get(param), IntConverter):
            segments += INT_SEGMENTS.values()
        for segment in segments:
            url = route.url(**(valid | {param: segment}))
            for persona in route.personas:
                walker.send(persona, "GET", url)
                # The admin finds its object the same way whatever the method.
                if not route.is_admin:
                    walker.send(persona, "POST", url)
    walker.assert_no_5xx()


# --- query strings and forms -------------------------------------------------------------


def _item_forms(world: World) -> Forms:
    version = ReleaseItem.objects.get(pk=world.item_id).version
    typed = ("reason", "note", "evidence_url")
    return [({"action": action, "version": str(version)}, typed) for action in ITEM_ACTIONS]


def _people_forms(world: World) -> Forms:
    prefix = f"contact-{world.contact_id}-"
    person = {"role": "qa", "user": str(world.outsider_id)}
    contact = {
        "action": "contact",
        "contact": str(world.contact_id),
        f"{prefix}name": "Dana",
        f"{prefix}phone": "+34 600 000 001",
        f"{prefix}email": "dana@example.com",
    }
    return [
        ({"action": "assign", **person}, ("role", "user")),
        ({"action": "unassign", **person}, ("role", "user")),
        (contact, ("contact", f"{prefix}name", f"{prefix}phone", f"{prefix}email")),
    ]


def _import_forms(world: World, walker: Walker) -> Forms:
    # The confirm form exactly as the preview carries it, whatever that is.
    preview = walker.client("admin").post(
        reverse("releases:import"),
        {"file": SimpleUploadedFile("ship.md", b"# Ship\n\n- [ ] one\n"), "default_owner": "qa"},
    )
    confirm = {key: str(value) for key, value in preview.context["confirm"].initial.items()}
    return [(confirm, ("name",))]


FORMS: dict[str, Callable[[World], Forms]] = {
    "releases:item": _item_forms,
    "releases:signoff": lambda w: [
        ({"role": "qa", "phase": "Pre", "action": action}, ("phase",))
        for action in ("sign", "withdraw")
    ],
    "releases:revoke-approval": lambda w: [({}, ("reason",))],
    "releases:confirm": lambda w: [({}, ("reason", "severity", "detected_at"))],
    "releases:rollback-step": lambda w: [
        ({"action": "note", "version": "0"}, ("note",)),
        ({"action": "evidence", "version": "0"}, ("evidence_url",)),
    ],
    "releases:people": _people_forms,
    "releases:create": lambda w: [
        (
            {"template": str(w.template_id), "version": "v9.9.9", "title": "Autumn"},
            ("version", "title", "window_start", "window_end", "changelog_url"),
        )
    ],
    "releases:share": lambda w: [({}, ("label",)), ({"action": "revoke"}, ("link",))],
    "releases:updates": lambda w: [
        ({"state": "resolved"}, ("message",)),
        ({"state": "resolved", "confirmed": "1"}, ("message",)),
    ],
    "releases:window": lambda w: [
        (
            {"action": "schedule", "time_zone": "Europe/Madrid", "start": "2030-06-01T22:00"},
            ("start", "end", "time_zone"),
        ),
        ({"action": "cancel"}, ("reason",)),
        ({"action": "extend", "end": "2030-06-02T04:00"}, ("end", "reason")),
    ],
    "releases:language": lambda w: [({}, ("language", "next"))],
    "set_language": lambda w: [({}, ("language", "next"))],
    "checks:run": lambda w: [({}, ("item",)), ({}, ("phase", "section"))],
    "checks:tokens": lambda w: [({"role": "qa"}, ("label",)), ({"action": "revoke"}, ("token",))],
    "checks:project-tokens": lambda w: [
        ({"role": "qa"}, ("label", "version_pattern")),
        ({"action": "revoke"}, ("token",)),
    ],
    "login": lambda w: [({}, ("username", "password"))],
    "password_reset": lambda w: [({}, ("email",))],
    "admin:login": lambda w: [({}, ("username", "password"))],
}


def _forms_of(route: Route, walker: Walker) -> Forms:
    """The route's forms as they stand now (an item's version moves with each change)."""
    if route.name == "releases:import":
        # The preview's signature does not change: one upload serves the whole walk.
        if not walker.import_forms:
            walker.import_forms = _import_forms(walker.world, walker)
        return walker.import_forms
    return FORMS[route.name](walker.world) if route.name in FORMS else []


@pytest.mark.parametrize("route", ROUTES, ids=lambda r: r.name)
def test_no_hostile_query_or_form_value_gets_a_500(route: Route, walker: Walker) -> None:
    url = route.url(**walker.world.path_values(route))
    forms = _forms_of(route, walker)
    # Besides the route's own forms: every field any of them has (or, without forms,
    # every query key), all hostile at once, from every persona.
    every = tuple({key for form, typed in forms for key in (*form, *typed)} or QUERY_KEYS)
    for persona in route.personas:
        for value in route.values:
            walker.send(persona, "GET", url, data=dict.fromkeys(QUERY_KEYS, value))
        for name in CORE_VALUES:
            walker.send(persona, "POST", url, data=dict.fromkeys(every, VALUES[name]))
        for raw, charset in RAW_QUERIES.values():
            query = "&".join(f"{key}={raw}" for key in QUERY_KEYS)
            walker.send(persona, "GET", url, QUERY_STRING=query, CONTENT_TYPE=FORM + charset)
        if not route.is_admin:  # the admin decodes a body as Django does, for every model
            body = "&".join(f"{key}={RAW_BODY}" for key in every)
            walker.send(persona, "POST", url, data=body.encode("latin-1"), content_type=FORM)
        multipart = "multipart/form-data; boundary=zzz"
        walker.send(persona, "POST", url, data=b"--zzz\r\nbroken", content_type=multipart)
    # The route's valid forms with only the typed fields hostile, from the people who may
    # send them (anonymous people and support are turned away before a form is read).
    for persona in ("qa", "admin"):
        for index in range(len(forms)):
            for value in (*FORM_VALUES.values(), None):
                form, typed = _forms_of(route, walker)[index]
                if value is None:
                    body = urlencode(form) + "".join(f"&{key}={RAW_BODY}" for key in typed)
                    data: Any = body.encode("latin-1")
                    walker.send(persona, "POST", url, data=data, content_type=FORM)
                else:
                    data = {**form, **dict.fromkeys(typed, value)}
                    walker.send(persona, "POST", url, data=data)
    walker.assert_no_5xx()


def test_no_hostile_upload_gets_a_500(walker: Walker) -> None:
    url = reverse("releases:import")
    for value in (*FORM_VALUES.values(), "x" * 250):
        # An upload is consumed by the request that sends it: a new one each time.
        name = SimpleUploadedFile(value[:240] + ".md", b"# Ship\n\n- [ ] one\n")
        title = SimpleUploadedFile("ship.md", f"# {value}\n\n- [ ] one\n".encode())
        for upload in (name, title):
            walker.send("admin", "POST", url, data={"file": upload, "default_owner": "qa"})
    walker.assert_no_5xx()


# --- the pipeline API's JSON -------------------------------------------------------------


def _evidence_bodies() -> Iterator[Any]:
    for name, value in VALUES.items():
        body = {"item": value, "outcome": "pass", "url": value, "detail": value}
        yield pytest.param(json.dumps(body).encode(), id=name)
    yield pytest.param(json.dumps({"item": 10**30, "outcome": "pass"}).encode(), id="item-huge")
    yield pytest.param(json.dumps({"item": -1, "outcome": "pass"}).encode(), id="item-negative")
    yield pytest.param(b'{"item": "\xff\xfe", "outcome": "pass"}', id="bytes-not-utf8")
    yield pytest.param(b'{"item": "\\ud800", "outcome": "pass"}', id="lone-surrogate")
    yield pytest.param(b"[" * 100_000, id="deep-nesting")


@pytest.mark.parametrize("body", list(_evidence_bodies()))
def test_the_pipeline_api_answers_hostile_json_without_a_500(walker: Walker, body: bytes) -> None:
    walker.send(
        None,
        "POST",
        reverse("api:evidence", args=[walker.world.version]),
        data=body,
        content_type="application/json",
        headers={"authorization": f"Bearer {walker.world.pipeline_token}"},
    )
    walker.assert_no_5xx()


DAY_REQUESTS: dict[str, tuple[str, Callable[[str], dict[str, Any]]]] = {
    "api:deploy": ("POST", lambda value: {"state": "started", "url": value, "reason": value}),
    "api:rollback": ("POST", lambda value: {"reason": value, "severity": "critical"}),
    "api:rollback-step": ("POST", lambda value: {"done": True, "note": value, "url": value}),
    "api:rollback-move": ("POST", lambda value: {"cause": value}),
    "api:updates": ("POST", lambda value: {"state": "investigating", "message": value}),
    "api:window": ("PUT", lambda value: {"start": value, "end": value, "time_zone": value}),
}


@pytest.mark.parametrize("name", DAY_REQUESTS)
def test_the_release_days_api_answers_hostile_json_without_a_500(walker: Walker, name: str) -> None:
    method, body = DAY_REQUESTS[name]
    extra = {"api:rollback-step": ["1"], "api:rollback-move": ["close"]}.get(name, [])
    args = [walker.world.version, *extra]
    for value in VALUES.values():
        walker.send(
            None,
            method,
            reverse(name, args=args),
            data=json.dumps(body(value)).encode(),
            content_type="application/json",
            headers={"authorization": f"Bearer {walker.world.deploy_token}"},
        )
    walker.assert_no_5xx()


# --- the guard itself --------------------------------------------------------------------


# Each request, and where its refusal says the text was.
GUARDED: dict[str, tuple[Callable[[Client], Any], str]] = {
    "path": (lambda c: c.get("/releases/v1.2.3%00/"), "the page's address holds"),
    "raw-path": (lambda c: c.get("/releases/v1.2.3\x00/people/"), "the page's address holds"),
    "query": (
        lambda c: c.get("/releases/", {"show": "a\x00"}),
        "the address's parameter “show” holds",
    ),
    "query-key": (
        lambda c: c.get("/releases/", {"a\x00": "1"}),
        "the address's parameter “a\ufffd” holds",
    ),
    "query-utf7-surrogate": (
        lambda c: c.get(
            "/releases/", QUERY_STRING="show=%2B2AA-", CONTENT_TYPE=FORM + "; charset=utf-7"
        ),
        "the address's parameter “show” holds",
    ),
    "form": (
        lambda c: c.post("/accounts/login/", {"username": "a\x00", "password": "x"}),
        "the field “username” holds",
    ),
    "session-cookie": (
        lambda c: (
            c.cookies.load({django_settings.SESSION_COOKIE_NAME: "abcdefgh\x00"}),
            c.get("/"),
        )[1],
        "a cookie your browser keeps for this site holds",
    ),
}


@pytest.mark.parametrize(("send", "where"), GUARDED.values(), ids=GUARDED.keys())
def test_the_guard_answers_unstorable_text_with_a_page_saying_where(
    walker: Walker, send: Callable[[Client], Any], where: str
) -> None:
    response = send(Client(headers={"accept-language": "en"}))
    assert response.status_code == 400
    assert response["Content-Type"] == "text/html; charset=utf-8"
    page = html.unescape(response.content.decode())
    assert "<h1>Bad request</h1>" in page
    assert f"{where} a character that cannot be stored, such as NUL." in page


@pytest.mark.parametrize(("accept", "language"), [("es", "es"), ("en-GB,en;q=0.8", "en")])
def test_the_guard_speaks_the_language_the_page_would(
    walker: Walker, accept: str, language: str
) -> None:
    # It answers before LocaleMiddleware has run, so it picks the language itself.
    response = Client(headers={"accept-language": accept}).get("/releases/v1.2.3%00/")
    assert response.status_code == 400
    assert response["Content-Language"] == language


def test_the_guard_lets_ordinary_text_through(walker: Walker) -> None:
    client = walker.client("qa")
    board = reverse("releases:board", args=[walker.world.version])
    assert client.get(board, {"show": "mine"}).status_code == 200
    note = {"action": "note", "version": "0", "note": "Señal «verde» ✓ — 日本語"}
    item = reverse("releases:item", args=[walker.world.version, walker.world.item_id])
    assert client.post(item, note).status_code == 302
    assert ReleaseItem.objects.get(pk=walker.world.item_id).note == note["note"]


def test_the_guard_refuses_on_the_async_live_endpoints_too(walker: Walker) -> None:
    client = AsyncClient(headers={"accept-language": "en"})
    response = asyncio.run(client.get("/releases/v1.2.3%00/live/poll/"))
    assert response.status_code == 400
