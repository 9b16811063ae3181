"""Refuse, with a 400, a request carrying text that the database cannot store.

PostgreSQL text cannot hold NUL (U+0000), and no UTF-8 text can hold a lone surrogate
(U+D800–U+DFFF, which a query string declared as UTF-7, or a JSON escape, can produce):
psycopg raises on either, at whichever query first meets the value — a lookup by version
in the path, a session key in a cookie, an audit or admin filter — and the person gets a
500.
Forms refuse NUL themselves, but not everything read from a request goes through a form,
so this one check, before any view or session lookup runs, keeps every such input a
400 that says why (our page, or JSON under /api/). It must come before
SessionMiddleware's lazy session load is first used (AuthenticationMiddleware, the
language middleware); right after SecurityMiddleware is simplest.

It looks at what Django has already decoded: the path, the query string, form fields
(not uploaded files, whose bytes are read by whatever handles them) and cookies.
JSON bodies are left to the views that parse them.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

from django.http import HttpRequest, HttpResponse, QueryDict
from django.utils import translation
from django.utils.translation import gettext as _

from .errors import bad_request

UNSTORABLE = re.compile("[\x00\ud800-\udfff]")


def _entries(data: QueryDict) -> Iterator[str]:
    for key, values in data.lists():
        yield key
        yield from values


def _texts(request: HttpRequest) -> Iterator[str]:
    yield request.path_info
    yield from _entries(request.GET)
    for name, value in request.COOKIES.items():
        yield name
        yield value
    if request.method == "POST":
        # CsrfViewMiddleware reads POST next anyway; for a body that is not a form it is
        # empty and leaves request.body readable for the view.
        yield from _entries(request.POST)


def refusal(request: HttpRequest) -> HttpResponse | None:
    """The 400 for a request carrying unstorable text, or None to let it through."""
    if not any(UNSTORABLE.search(text) for text in _texts(request)):
        return None
    # LocaleMiddleware has not run yet: speak the language it would choose (cookie or
    # Accept-Language, nothing read from the database).
    language = translation.get_language_from_request(request)
    with translation.override(language):
        return bad_request(
            request,
            _(
                "The request contains characters that cannot be stored, such as NUL. "
                "Remove them and try again."
            ),
        )


def unstorable_input_middleware(get_response: Any) -> Any:
    def middleware(request: HttpRequest) -> HttpResponse:
        refused = refusal(request)
        if refused is not None:
            return refused
        response: HttpResponse = get_response(request)
        return response

    return middleware
