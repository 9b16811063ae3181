"""What every view asks first: which release this person may see, who they are as an
actor, and whether they may manage releases. The rules themselves live in
releases.policy; this module only applies them to a request."""

from __future__ import annotations

from contextlib import suppress

from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest
from django.utils.translation import gettext as _

from . import policy
from .actors import Person, standing, who_anywhere, who_on
from .models import Release


def get_release_for_user(request: HttpRequest, version: str) -> Release:
    """A release this person may see, or 404 (an outsider learns nothing of it): staff
    see every release, anyone else those they hold a role on (Release.visible_to, read
    here through the person's standing at this revision, which pages ask for anyway)."""
    user = request.user
    release = None
    if user.is_authenticated:
        # get(), not filter().first(): the version is unique, and ordering the one row
        # took a fifth of this query's time, the query most pages make.
        with suppress(Release.DoesNotExist):
            release = Release.objects.get(version=version)
    if release is None or not (user.is_staff or standing(user.pk, release.pk, release.revision)[0]):
        raise Http404(_("No such release."))
    return release


def client_ip(request: HttpRequest) -> str | None:
    return request.META.get("REMOTE_ADDR") or None


def person(request: HttpRequest) -> Person:
    """The logged-in person acting through this request, and from where."""
    user = request.user
    if not user.is_authenticated:
        raise PermissionDenied(_("Log in first."))
    return Person(user, client_ip(request))


def may_manage(request: HttpRequest) -> bool:
    return request.user.is_authenticated and bool(policy.may_manage(who_anywhere(person(request))))


def require_manager(request: HttpRequest) -> None:
    if not may_manage(request):
        raise PermissionDenied(_("Only staff can do this."))


def may_edit_contacts(request: HttpRequest, release: Release) -> bool:
    return request.user.is_authenticated and bool(
        policy.may_edit_contacts(who_on(person(request), release))
    )
