"""When the web process cannot reach what every page needs: the database, and Redis when
there is one (sessions are read through it). The health check names what it cannot
reach; a request that failed for it gets 503 and a page that says so, not a bare 500."""

from __future__ import annotations

import sys

import psycopg
import redis
from django.conf import settings
from django.core.cache import cache
from django.db import DatabaseError, connection
from django.http import HttpRequest, HttpResponse
from django.template.loader import render_to_string
from django.views import defaults

# What a person is told to wait for, and a client's Retry-After.
RETRY_AFTER_SECONDS = 30


def unreachable() -> list[str]:
    """What this process cannot reach now: "database", "redis", or neither."""
    down = []
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
    except DatabaseError:
        down.append("database")
    if settings.REDIS_URL:
        try:
            cache.has_key("healthz")
        except Exception as error:
            if not is_outage(error):
                raise
            down.append("redis")
    return down


def is_outage(error: BaseException | None) -> bool:
    """The error, or one it was raised from, is a server that did not answer: Redis
    refused or timed out, or PostgreSQL failed without an SQLSTATE (one that answered,
    with a deadlock or a timeout of its own, names its error)."""
    while error is not None:
        if isinstance(error, (redis.ConnectionError, redis.TimeoutError)):
            return True
        if isinstance(error, psycopg.OperationalError) and error.sqlstate is None:
            return True
        error = error.__cause__ or error.__context__
    return False


def server_error(request: HttpRequest) -> HttpResponse:
    """Django's handler500, called while the error is being handled."""
    if not is_outage(sys.exc_info()[1]):
        return defaults.server_error(request)
    response = HttpResponse(render_to_string("503.html"), status=503)
    response["Retry-After"] = str(RETRY_AFTER_SECONDS)
    return response
