"""Each person's language: chosen with the switcher, remembered on their account, and
used on every page they open from then on, whatever browser they log in from. People
who never chose get their browser's Accept-Language, and Spanish failing that."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.urls import URLPattern, path
from django.utils import translation
from django.views.decorators.http import require_POST
from django.views.i18n import set_language as set_language_cookie

from .models import LanguagePreference

# The session carries the choice so that no request pays a query for it.
SESSION_KEY = "deploycheck_language"


def user_language_middleware(get_response: Any) -> Any:
    """After AuthenticationMiddleware: a person's saved choice beats the cookie and
    Accept-Language that LocaleMiddleware went by (a shared browser's cookie may be
    someone else's)."""

    def middleware(request: HttpRequest) -> HttpResponse:
        if hasattr(request, "session"):
            _activate(request, request.session.get(SESSION_KEY))
        response: HttpResponse = get_response(request)
        return response

    return middleware


def _activate(request: HttpRequest, language: str | None) -> None:
    if language in dict(settings.LANGUAGES):
        translation.activate(language)
        request.LANGUAGE_CODE = language


def remember_on_login(sender: Any, request: HttpRequest, user: Any, **kwargs: Any) -> None:
    language = (
        LanguagePreference.objects.filter(user=user).values_list("language", flat=True).first()
    )
    if language:
        request.session[SESSION_KEY] = language


@require_POST
def set_language(request: HttpRequest) -> HttpResponse:
    response = set_language_cookie(request)
    language = request.POST.get("language", "")
    if language in dict(settings.LANGUAGES) and request.user.is_authenticated:
        LanguagePreference.objects.update_or_create(
            user=request.user, defaults={"language": language}
        )
        request.session[SESSION_KEY] = language
    return response


routes: list[URLPattern] = [path("language/", set_language, name="language")]
