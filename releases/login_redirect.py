"""An htmx request whose person is no longer logged in (logged out in another tab, the
session expired, the password changed elsewhere) takes the whole page to the login form.

Django's login_required answers with a redirect, which the browser follows inside the
XMLHttpRequest: htmx then swapped the login form into the filtered checklist or a
section, or, for a tick sent with nothing to swap, dropped it without a word. HX-Redirect
makes htmx navigate instead, and `next` is the page the person was on, not the fragment
or action URL the request was for, which a GET after logging in could not show.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from django.conf import settings
from django.contrib.auth.views import redirect_to_login
from django.http import HttpRequest, HttpResponseBase
from django.shortcuts import resolve_url
from django_htmx.http import HttpResponseClientRedirect


def htmx_login_middleware(get_response: Any) -> Any:
    """After HtmxMiddleware, which tells an htmx request and the page it came from."""

    def middleware(request: HttpRequest) -> HttpResponseBase:
        response: HttpResponseBase = get_response(request)
        htmx = getattr(request, "htmx", None)
        if htmx and response.status_code == 302 and _is_login(response["Location"]):
            page = htmx.current_url_abs_path or request.get_full_path()
            return HttpResponseClientRedirect(redirect_to_login(page)["Location"])
        return response

    return middleware


def _is_login(location: str) -> bool:
    return urlsplit(location).path == resolve_url(settings.LOGIN_URL)
