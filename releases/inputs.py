"""Refuse a request carrying text the database cannot store, saying where it was.

PostgreSQL text cannot hold NUL (U+0000), and no UTF-8 text can hold a lone surrogate
(U+D800–U+DFFF, which a query string declared as UTF-7, or a JSON escape, can produce):
psycopg raises on either, at whichever query first meets the value — a lookup by version
in the path, a session key in a cookie, an audit or admin filter — and the person gets a
500. Forms refuse NUL themselves, but not everything read from a request goes through a
form, so two checks keep every such input a 400:

- unstorable_cookie_middleware, right after SecurityMiddleware: the session key is a
  cookie, and the first middleware that asks who the person is reads the session (from
  Redis, and from PostgreSQL when Redis does not have it). Nobody is known yet, so it
  answers in the language LocaleMiddleware would choose: the language cookie, else
  Accept-Language.
- unstorable_input_middleware, once the person and their language are known and before
  anything reads the path, the query string or the form for the database (a view, or
  login_redirect_middleware's `next`). It answers in the person's language and names the
  field or parameter. Nothing typed is lost: a form sent by htmx stays on the page as
  typed, with the message among the page's messages; a page sent without it says that
  the browser's Back button returns to the form, whose fields browsers restore.

Uploaded files are not looked at: Django strips such characters from their names, and
their bytes are read by whatever handles them. JSON bodies are left to the API views that
parse them; under /api/ a refusal is the API's JSON error.
"""

from __future__ import annotations

import re
from typing import Any

from django.http import HttpRequest, HttpResponse, JsonResponse, QueryDict
from django.template.loader import render_to_string
from django.utils import translation
from django.utils.html import format_html
from django.utils.text import Truncator
from django.utils.translation import gettext as _
from django.utils.translation import ngettext
from django_htmx.http import reswap, retarget

from deploycheck.edge import API_PATH

UNSTORABLE = re.compile("[\x00\ud800-\udfff]")
# Longest field or parameter name a refusal repeats.
NAME_CHARS = 40


def unstorable_cookie_middleware(get_response: Any) -> Any:
    def middleware(request: HttpRequest) -> HttpResponse:
        if not any(UNSTORABLE.search(text) for pair in request.COOKIES.items() for text in pair):
            response: HttpResponse = get_response(request)
            return response
        with translation.override(translation.get_language_from_request(request)):
            return _refusal(
                request,
                _(
                    "Nothing was done: a cookie your browser keeps for this site holds a "
                    "character that cannot be stored, such as NUL."
                ),
                _("Delete this site's cookies in your browser, then log in again."),
            )

    return middleware


def unstorable_input_middleware(get_response: Any) -> Any:
    """After user_language_middleware, for the person's language, and HtmxMiddleware."""

    def middleware(request: HttpRequest) -> HttpResponse:
        refused = _input_refusal(request)
        if refused is not None:
            return refused
        response: HttpResponse = get_response(request)
        return response

    return middleware


def _input_refusal(request: HttpRequest) -> HttpResponse | None:
    if UNSTORABLE.search(request.path_info):
        said = _(
            "Nothing was done: the page's address holds a character that cannot be "
            "stored, such as NUL."
        )
        return _refusal(request, said)
    # CsrfViewMiddleware reads POST anyway; for a body that is not a form it is empty and
    # leaves request.body readable for the view. Not under /api/, whose views are exempt
    # from CSRF and read the body as JSON: a body sent as a form there, parsed here,
    # could not be read again.
    is_form_post = request.method == "POST" and not request.path_info.startswith(API_PATH)
    fields = _holding(request.POST) if is_form_post else []
    if fields:
        said = ngettext(
            "Nothing was saved: the field %(names)s holds a character that cannot be "
            "stored, such as NUL.",
            "Nothing was saved: the fields %(names)s hold characters that cannot be "
            "stored, such as NUL.",
            len(fields),
        ) % {"names": _names(fields)}
        if getattr(request, "htmx", False):
            hint = _(
                "The form still holds what you typed: remove that character (it may not "
                "show; typing the text again leaves it out) and send it again."
            )
        else:
            hint = _(
                "Your browser's Back button takes you back to the form with everything "
                "you typed: remove that character there (it may not show; typing the text "
                "again leaves it out) and send the form again."
            )
        return _refusal(request, said, hint)
    parameters = _holding(request.GET)
    if parameters:
        said = ngettext(
            "Nothing was done: the address's parameter %(names)s holds a character that "
            "cannot be stored, such as NUL.",
            "Nothing was done: the address's parameters %(names)s hold characters that "
            "cannot be stored, such as NUL.",
            len(parameters),
        ) % {"names": _names(parameters)}
        return _refusal(request, said, without_query=request.method == "GET")
    return None


def _holding(data: QueryDict) -> list[str]:
    """The names of the entries whose name or value holds unstorable text."""
    return [
        name
        for name, values in data.lists()
        if any(UNSTORABLE.search(text) for text in (name, *values))
    ]


def _names(names: list[str]) -> str:
    # A lone surrogate cannot even be encoded into the page, and a NUL shows as nothing.
    return ", ".join(
        _("“%(name)s”") % {"name": Truncator(UNSTORABLE.sub("\ufffd", name)).chars(NAME_CHARS)}
        for name in names
    )


def _refusal(
    request: HttpRequest, said: str, hint: str = "", *, without_query: bool = False
) -> HttpResponse:
    """The refusal in the active language, told the way the request asked: the API's
    JSON error, a message among an htmx page's messages (422, which htmx swaps in, where
    it swaps nothing of a 400), or a page."""
    response: HttpResponse
    if request.path_info.startswith(API_PATH):
        response = JsonResponse({"error": said}, status=400)
    elif getattr(request, "htmx", False):
        message = format_html('<p class="message message--error">{}</p>', f"{said} {hint}".strip())
        response = reswap(retarget(HttpResponse(message, status=422), "#messages"), "innerHTML")
    else:
        page = render_to_string(
            "unstorable.html",
            {"message": said, "hint": hint, "without_query": request.path if without_query else ""},
        )
        response = HttpResponse(page, status=400)
    response["Content-Language"] = translation.get_language()
    response["Cache-Control"] = "no-store"
    return response
