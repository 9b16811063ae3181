"""A pipeline's clients, and a cache of each test's own for the rate limits."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from django.test import Client

from tests.conftest import cache_of_its_own


@pytest.fixture(autouse=True)
def own_cache(settings: Any) -> Iterator[None]:
    """Its rate-limit windows start empty."""
    yield from cache_of_its_own(settings, "pipeline-api")


@pytest.fixture
def ci() -> Client:
    """A CI job: no session, no cookies, English unless a test says otherwise."""
    return Client(headers={"Accept-Language": "en"})
