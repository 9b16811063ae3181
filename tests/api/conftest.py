"""A pipeline's clients, and a cache of each test's own for the rate limits."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from django.core.cache import cache
from django.test import Client


@pytest.fixture(autouse=True)
def own_cache(settings: Any) -> Iterator[None]:
    """A cache of this test's own, so its rate-limit windows start empty. Not the shared
    Redis: clearing that would flush the Celery broker other runs may be using."""
    settings.CACHES = {
        **settings.CACHES,
        "default": {
            "BACKEND": "django.core.cache.backends.locmem.LocMemCache",
            "LOCATION": f"pipeline-api-{uuid.uuid4()}",
        },
    }
    cache.clear()
    yield
    cache.clear()


@pytest.fixture
def ci() -> Client:
    """A CI job: no session, no cookies, English unless a test says otherwise."""
    return Client(headers={"Accept-Language": "en"})
