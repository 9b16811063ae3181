"""The cache's connections to Redis under a burst: more requests reading their sessions at
once than one process may hold connections wait their turn instead of failing (Django's
ASGI handler runs each live page's opening on a thread of its own)."""

from __future__ import annotations

import contextvars
import threading
from typing import Any

import pytest
from django.core.cache import caches

HELD_SECONDS = 0.3


def test_a_burst_past_the_connections_waits_its_turn(settings: Any) -> None:
    if not settings.REDIS_URL:
        pytest.fail("the cache is Redis only when there is one: run `make test`")
    configured = settings.CACHES["default"]
    options = configured["OPTIONS"]
    # Its own pool (django-redis keeps one per address), four connections wide.
    settings.CACHES = {
        **settings.CACHES,
        "default": {
            **configured,
            "LOCATION": f"{settings.REDIS_URL}?client_name=pool-burst",
            "OPTIONS": {
                **options,
                "CONNECTION_POOL_KWARGS": {
                    **options["CONNECTION_POOL_KWARGS"],
                    "max_connections": 4,
                },
            },
        },
    }
    failures: list[BaseException] = []

    def hold_a_connection() -> None:
        # As a request does: a cache of its own context, a connection of the shared pool.
        try:
            caches["default"].client.get_client().blpop(["pool-burst:nothing"], HELD_SECONDS)
        except BaseException as error:
            failures.append(error)

    burst = [
        threading.Thread(target=contextvars.Context().run, args=(hold_a_connection,))
        for _ in range(12)
    ]
    for thread in burst:
        thread.start()
    for thread in burst:
        thread.join()

    assert failures == []
