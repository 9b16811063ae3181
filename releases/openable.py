"""Where a person goes when the address of what they asked for is one a GET cannot open:
the address of a form's action (an item's tick, a channel's test), which answers only
the POST that the form sends.

A browser ends on such an address after logging in again (login_required sends the
person back to the address that asked for it), on reloading or switching the language
of a page rendered from a POST, or from a bookmark; Django's answer there was an empty
405, a blank page. Instead they go to the page the form was on, or to the release's
board, and whatever still asks gets a page saying where to go.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from django.http import HttpRequest, HttpResponseBase, HttpResponseNotAllowed
from django.shortcuts import render
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme

# The methods that ask for the page at the request's own address.
SHOWN = frozenset({"GET", "HEAD"})


def came_from(request: HttpRequest) -> str:
    """The page the request's form was on: its Referer when that is one of ours, else
    the release's board or the releases (release_home)."""
    referer = request.headers.get("Referer", "")
    if url_has_allowed_host_and_scheme(
        referer, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        page = urlsplit(referer)
        if page.path.startswith("/"):
            return f"{page.path}?{page.query}" if page.query else page.path
    return release_home(request)


def release_home(request: HttpRequest) -> str:
    """The board of the release the request's address is under, else the releases."""
    version = _release(request)
    return reverse("releases:board", args=[version]) if version else reverse("releases:list")


def _release(request: HttpRequest) -> str | None:
    match = request.resolver_match
    if match is not None and match.app_name == "releases":
        version: str | None = match.kwargs.get("version")
        return version
    return None


def page_to_return_to(request: HttpRequest) -> str:
    """Where a page goes back to after a form of its own (the language switcher): itself,
    or, rendered from a POST, the page that form was on."""
    return request.get_full_path() if request.method in SHOWN else came_from(request)


def not_allowed_middleware(get_response: Any) -> Any:
    """After the middleware base.html reads (the person, their messages): Django's 405
    for a method the view does not take (require_POST and kin) has an empty body."""

    def middleware(request: HttpRequest) -> HttpResponseBase:
        response: HttpResponseBase = get_response(request)
        if isinstance(response, HttpResponseNotAllowed) and not response.content:
            page = render(request, "405.html", {"version": _release(request)}, status=405)
            page["Allow"] = response["Allow"]
            return page
        return response

    return middleware
