from django.conf import settings
from django.contrib import admin
from django.contrib.auth import urls as auth_urls
from django.contrib.auth.views import LoginView
from django.urls import URLPattern, URLResolver, include, path

from deploycheck.security import PasswordResetView

PASSWORD_RESET_NAMES = {
    "password_reset",
    "password_reset_done",
    "password_reset_confirm",
    "password_reset_complete",
}


def _account_urls() -> list[URLPattern | URLResolver]:
    """Django's login, logout and password change; password reset only when mail reaches
    people (settings.EMAIL_ENABLED), since its link travels by mail: without it the page
    would promise a mail that never comes. Then its URLs do not exist (404) and no page
    links to them (the login page links only to a URL that resolves)."""
    replaced = {"login", "password_reset"}
    dropped = replaced if settings.EMAIL_ENABLED else replaced | PASSWORD_RESET_NAMES
    kept: list[URLPattern | URLResolver] = [
        pattern
        for pattern in auth_urls.urlpatterns
        if not isinstance(pattern, URLPattern) or pattern.name not in dropped
    ]
    kept.append(path("login/", LoginView.as_view(), name="login"))
    if settings.EMAIL_ENABLED:
        # Ours reports a mail that could not be sent instead of claiming it was.
        kept.append(path("password_reset/", PasswordResetView.as_view(), name="password_reset"))
    return kept


urlpatterns = [
    path("admin/", admin.site.urls),
    path("accounts/", include(_account_urls())),
    path("i18n/", include("django.conf.urls.i18n")),
    path("", include("checks.urls")),
    path("api/", include("api.urls")),
    path("", include("notifications.views")),
    path("", include("notifications.channel_views")),
    path("", include("releases.urls")),
]
# 503 with its own page when the database or Redis did not answer, else Django's.
handler500 = "releases.errors.server_error"
