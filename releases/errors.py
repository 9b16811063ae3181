"""What a person is told when a request cannot be served. The pages are templates of ours
that Django's own error views render (404.html, 403.html, 400.html, 500.html,
403_csrf.html); here are the answers that depend on the request or the error.

When the web process cannot reach what every page needs (the database, and Redis when
there is one: sessions are read through it), the health check names what, and a request
that failed for it gets 503 and a page that says so, not a bare 500."""

from __future__ import annotations

import sys

import psycopg
import redis
from django.conf import settings
from django.core.cache import cache
from django.db import DatabaseError, connection
from django.http import (
    HttpRequest,
    HttpResponse,
    HttpResponseBadRequest,
    HttpResponseForbidden,
)
from django.template.loader import render_to_string
from django.utils import translation
from django.utils.html import format_html
from django.utils.translation import gettext as _
from django.views import csrf, defaults
from django_htmx.http import reswap, retarget

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


def unknown_action(request: HttpRequest) -> HttpResponse:
    """A form whose `action` its view does not take: forged, or from an older page. Our
    400 page, saying why in the person's language."""
    message = _(
        "The form asked for an action this page does not take, so nothing was changed. "
        "Reload the page and try again."
    )
    response = HttpResponseBadRequest(render_to_string("400.html", {"message": message}))
    response["Content-Language"] = translation.get_language()
    return response


def csrf_failure(request: HttpRequest, reason: str = "") -> HttpResponse:
    """Django's CSRF refusal, told the way the page asked: a page of its own, or for an
    htmx request a message in the page's messages, the rest of the page left as it is (a
    whole page swapped into the row that was ticked would hide the row)."""
    if not getattr(request, "htmx", False):
        return csrf.csrf_failure(request, reason)
    said = _(
        "Nothing was saved: this page was opened before you logged in or out. Reload it "
        "and try again."
    )
    response = HttpResponseForbidden(format_html('<p class="message message--error">{}</p>', said))
    return reswap(retarget(response, "#messages"), "innerHTML")
