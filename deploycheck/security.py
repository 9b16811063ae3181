"""What keeps logins and pages private: the no-store middleware, the lockout page, and a
password reset that says when its mail could not be sent and cannot be used to flood a
mailbox."""

from __future__ import annotations

import logging
import math
from typing import Any

from axes.helpers import get_cool_off  # type: ignore[import-untyped]
from django.contrib.auth import forms as auth_forms
from django.contrib.auth import get_user_model
from django.contrib.auth import views as auth_views
from django.core import mail
from django.http import HttpRequest, HttpResponse, HttpResponseBase
from django.shortcuts import render
from django.template import loader
from django.utils.crypto import salted_hmac
from django.utils.translation import gettext as _
from django.utils.translation import ngettext

from deploycheck import limits

logger = logging.getLogger(__name__)

# What release pages and exports are served as: HTML pages and fragments, the audit
# trail's CSV, checklists' Markdown.
PRIVATE_TYPES = ("text/html", "text/csv", "text/markdown")
NO_STORE = "private, no-store"


def _keep_private(response: HttpResponseBase) -> None:
    content_type = response.get("Content-Type", "").split(";")[0].strip().lower()
    if content_type in PRIVATE_TYPES and not response.has_header("Cache-Control"):
        response["Cache-Control"] = NO_STORE


def private_cache_middleware(get_response: Any) -> Any:
    """`Cache-Control: private, no-store` on every page, fragment and export, so that no
    shared cache, and no browser history after logout, keeps a release's state, its
    contacts or a share link's page. A view that chose its own Cache-Control (the live
    stream's no-cache, a page showing a new token) keeps it. Static files never get here:
    whitenoise answers them first, cacheable. Every page qualifies, not only a logged-in
    person's: a share link's status page is as private, and the login page carries a
    CSRF token."""

    def middleware(request: HttpRequest) -> HttpResponseBase:
        response: HttpResponseBase = get_response(request)
        _keep_private(response)
        return response

    return middleware


# --- login throttling ------------------------------------------------------------------

# django-axes keeps the username tried in a column of this many characters.
AXES_USERNAME_LENGTH = 255


def axes_username(request: HttpRequest, credentials: dict[str, Any] | None) -> str | None:
    """django-axes' AXES_USERNAME_CALLABLE: the username tried, as axes reads it by
    default (from the credentials, else the form), cut to what its table holds.

    Django's login forms leave the username's length to the browser (the max_length
    they set comes after the field's validators are made), so a longer one reaches
    axes, whose INSERT then fails: a 500, and a failure not counted. No account has
    a name that long, so the cut joins nothing that could log in.
    """
    # axes' own default for AXES_USERNAME_FORM_FIELD, which is not set here.
    field = get_user_model().USERNAME_FIELD
    source = credentials if credentials else getattr(request, "data", request.POST)
    username = source.get(field)
    return username[:AXES_USERNAME_LENGTH] if isinstance(username, str) else None


def lockout_response(
    request: HttpRequest,
    original_response: HttpResponse | None = None,
    credentials: dict[str, Any] | None = None,
) -> HttpResponse:
    """django-axes' AXES_LOCKOUT_CALLABLE: our page, saying how long to wait.

    Every attempt during the lockout starts the cool-off again (axes' default), so the
    wait is counted from this one. The arguments after `request` are unused: axes'
    async middleware passes them in another order than its sync one.
    """
    cool_off = get_cool_off(request)
    minutes = max(1, math.ceil(cool_off.total_seconds() / 60))
    response = render(request, "registration/locked_out.html", {"minutes": minutes}, status=429)
    response["Retry-After"] = str(int(cool_off.total_seconds()))
    return response


# --- password reset --------------------------------------------------------------------


class ResetMailNotSent(Exception):
    """The reset mail could not be handed to the mail server."""


class PasswordResetForm(auth_forms.PasswordResetForm):
    """Django's form logs a failed send and reports success anyway; a person would wait
    for a mail that never comes. This one raises ResetMailNotSent instead.

    It connects to the mail server before looking the address up, so a server that is
    down or refuses our login fails every request alike: the answer does not tell
    whether the address has an account.
    """

    _connection: Any = None

    def save(self, *args: Any, **kwargs: Any) -> None:
        try:
            connection = mail.get_connection(fail_silently=False)
            connection.open()
        except Exception as exc:
            logger.exception("Could not connect to the mail server for a password reset")
            raise ResetMailNotSent from exc
        self._connection = connection
        try:
            super().save(*args, **kwargs)
        finally:
            self._connection = None
            connection.close()

    def send_mail(
        self,
        subject_template_name: str,
        email_template_name: str,
        context: dict[str, Any],
        from_email: str | None,
        to_email: str,
        html_email_template_name: str | None = None,
    ) -> None:
        # As Django's, but on the open connection and without swallowing a failure.
        subject = "".join(loader.render_to_string(subject_template_name, context).splitlines())
        body = loader.render_to_string(email_template_name, context)
        message = mail.EmailMultiAlternatives(
            subject, body, from_email, [to_email], connection=self._connection
        )
        if html_email_template_name is not None:
            message.attach_alternative(
                loader.render_to_string(html_email_template_name, context), "text/html"
            )
        try:
            message.send()
        except Exception as exc:
            # The account's id, not its address: the log is no place for it.
            logger.exception("Could not send a password reset mail to user %s", context["user"].pk)
            raise ResetMailNotSent from exc


# Each reset request mails a link. Counted per hour in Django's cache (Redis, shared by
# every web process, when there is one), from one client address and for one email
# address, whether it has an account or not: the answer must not tell which do.
RESET_WINDOW_SECONDS = 3600
RESET_LIMIT_PER_ADDRESS = 10
RESET_LIMIT_PER_ACCOUNT = 3


def _reset_wait(kind: str, value: str, limit: int) -> int:
    """Count one reset request for `value`; the seconds until it may ask again, 0 while
    within `limit`. The cache key holds a digest: no address is kept in the cache."""
    digest = salted_hmac("deploycheck.security.reset", value).hexdigest()
    counted = limits.count(f"password-reset:{kind}:{digest}", RESET_WINDOW_SECONDS)
    return 0 if counted.count <= limit else counted.retry_after


def reset_wait(address: str | None, email: str) -> int:
    """Seconds a reset request from `address` for `email` must wait; 0 to go ahead."""
    waits = [_reset_wait("account", email.strip().lower(), RESET_LIMIT_PER_ACCOUNT)]
    if address:
        waits.append(_reset_wait("address", address, RESET_LIMIT_PER_ADDRESS))
    return max(waits)


class PasswordResetView(auth_views.PasswordResetView):
    form_class = PasswordResetForm

    def form_valid(self, form: auth_forms.PasswordResetForm) -> HttpResponse:
        wait = reset_wait(self.request.META.get("REMOTE_ADDR"), form.cleaned_data["email"])
        if wait:
            minutes = max(1, math.ceil(wait / 60))
            form.add_error(
                None,
                ngettext(
                    "Too many password reset requests. Try again in %(minutes)d minute.",
                    "Too many password reset requests. Try again in %(minutes)d minutes.",
                    minutes,
                )
                % {"minutes": minutes},
            )
            response = self.form_invalid(form)
            response.status_code = 429
            response["Retry-After"] = str(wait)
            return response
        try:
            return super().form_valid(form)
        except ResetMailNotSent:
            form.add_error(
                None,
                _(
                    "The password reset mail could not be sent. Try again later, or ask "
                    "an administrator to reset your password."
                ),
            )
            response = self.form_invalid(form)
            # Not a success, for monitoring as for the person.
            response.status_code = 503
            return response
