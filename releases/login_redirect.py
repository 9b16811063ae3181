"""A request whose person is no longer logged in (logged out in another tab, the session
expired, the password changed elsewhere) takes them to the login form, and from there
back to a page they can open; what it sent is not saved, and the login form says so.

Django's login_required answers with a redirect whose `next` is the request's own
address. An htmx request follows it inside the XMLHttpRequest: htmx then swapped the
login form into the filtered checklist or a section, or, for a tick sent with nothing to
swap, dropped it without a word. HX-Redirect makes htmx navigate instead, and `next` is
the page the person was on. A form sent without JavaScript has an action's address
(releases.openable), which answers only the POST it sent: after logging in, `next` led
to an empty 405, and what the person typed was gone without a word.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from django.conf import settings
from django.contrib import messages
from django.contrib.auth import REDIRECT_FIELD_NAME
from django.contrib.auth.views import redirect_to_login
from django.http import HttpRequest, HttpResponseBase, QueryDict
from django.shortcuts import resolve_url
from django.utils.translation import gettext as _
from django_htmx.http import HttpResponseClientRedirect

from .openable import SHOWN, came_from


def login_redirect_middleware(get_response: Any) -> Any:
    """After HtmxMiddleware, which tells an htmx request and the page it came from, and
    MessageMiddleware, which keeps the message for the login page."""

    def middleware(request: HttpRequest) -> HttpResponseBase:
        response: HttpResponseBase = get_response(request)
        if response.status_code != 302 or not _asks_login_for(request, response["Location"]):
            return response
        sent = request.method not in SHOWN
        if sent:
            messages.warning(
                request,
                _("You were logged out, so what you sent was not saved. Log in, then do it again."),
            )
        htmx = getattr(request, "htmx", None)
        if htmx:
            page = htmx.current_url_abs_path or request.get_full_path()
            return HttpResponseClientRedirect(redirect_to_login(page)["Location"])
        if sent:
            return redirect_to_login(came_from(request))
        return response

    return middleware


def _asks_login_for(request: HttpRequest, location: str) -> bool:
    """The redirect is login_required's for this very request, which comes back to it
    after logging in; a logout's to the login form names no such page."""
    target = urlsplit(location)
    back = QueryDict(target.query).get(REDIRECT_FIELD_NAME)
    return target.path == resolve_url(settings.LOGIN_URL) and back == request.get_full_path()
