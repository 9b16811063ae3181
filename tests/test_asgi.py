"""The web server's application: what it does once, when a web process starts, and
which of Django's handlers each request goes to."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from asgiref.sync import async_to_sync, iscoroutinefunction
from django.conf import settings
from django.template import engines
from django.urls import URLPattern, URLResolver, get_resolver, reverse

from deploycheck import asgi
from deploycheck.asgi import ASYNC_PATH, compile_templates


def test_every_template_of_ours_is_compiled_before_the_first_request() -> None:
    engine = engines["django"].engine
    (partials,) = engine.template_loaders
    (cached,) = partials.loaders
    cached.reset()

    compile_templates()

    root = Path(settings.BASE_DIR, "templates")
    ours = {path.relative_to(root).as_posix() for path in root.rglob("*.html")}
    assert "releases/board.html" in ours
    assert ours <= set(cached.get_template_cache)


def _views(patterns: list[URLPattern | URLResolver], prefix: str = "") -> Iterator[tuple[str, Any]]:
    for pattern in patterns:
        if isinstance(pattern, URLResolver):
            namespace = f"{pattern.namespace}:" if pattern.namespace else ""
            yield from _views(pattern.url_patterns, prefix + namespace)
        elif pattern.name:
            yield prefix + pattern.name, pattern.callback


def test_the_async_views_are_the_ones_the_router_sends_to_asgi() -> None:
    """A view written async must be served by Django's ASGI handler, on the event loop
    (where the live hub is): a new one needs its path in ASYNC_PATH."""
    names = {name for name, view in _views(get_resolver().url_patterns)
             if iscoroutinefunction(view)}  # fmt: skip
    routed = {
        "releases:live": "v1.2.3",
        "releases:live-poll": "v1.2.3",
        "releases:shared-live": "token",
        "releases:shared-live-poll": "token",
        "releases:audit-csv": "v1.2.3",
        "channels:test": 7,
    }
    assert names == set(routed)
    for name, arg in routed.items():
        assert ASYNC_PATH.fullmatch(reverse(name, args=[arg]))


@pytest.mark.parametrize(
    "path",
    [
        "/releases/v1.2.3/",
        "/releases/live/",
        "/releases/v1.2.3/status/",
        "/releases/v1.2.3/audit.csv/",
        "/releases/v1.2.3/audit/",
        "/releases/v1.2.3/live/extra/",
        "/s/token/",
        "/healthz/",
        "/templates/import/",
    ],
)
def test_every_other_page_goes_to_the_wsgi_threads(path: str) -> None:
    assert not ASYNC_PATH.fullmatch(path)


@pytest.mark.parametrize(
    ("path", "handler"),
    [
        ("/healthz", "health"),
        ("/releases/v1.2.3/", "pages"),
        ("/healthz/", "pages"),
        ("/releases/v1.2.3/live/", "streams"),
        ("/releases/v1.2.3/audit.csv", "streams"),
    ],
)
def test_the_health_check_has_threads_of_its_own(
    path: str, handler: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A health check must not queue behind the pages waiting for the page threads."""
    reached = []
    for name in ("health", "pages", "streams"):

        async def record(scope: Any, receive: Any, send: Any, name: str = name) -> None:
            reached.append(name)

        monkeypatch.setattr(asgi, name, record)

    async_to_sync(asgi.route)({"type": "http", "path": path}, None, None)

    assert reached == [handler]
