"""What every view asks first: which release this person may see, who they are as an
actor, and whether they may manage releases. The rules themselves live in
releases.policy; this module only applies them to a request."""

from __future__ import annotations

from django.core.exceptions import PermissionDenied
from django.http import HttpRequest
from django.shortcuts import get_object_or_404
from django.utils.translation import gettext as _

from . import policy
from .actors import Person, who_anywhere, who_on
from .models import Release


def get_release_for_user(request: HttpRequest, version: str) -> Release:
    """A release this person may see, or 404 (an outsider learns nothing of it)."""
    return get_object_or_404(Release.objects.visible_to(request.user), version=version)


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
