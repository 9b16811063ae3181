"""What every view asks first: which release this person may see, whether they are
staff, and where the request came from (for the audit trail)."""

from __future__ import annotations

from django.core.exceptions import PermissionDenied
from django.http import HttpRequest
from django.shortcuts import get_object_or_404
from django.utils.translation import gettext as _

from .models import Release


def get_release_for_user(request: HttpRequest, version: str) -> Release:
    """A release this person may see, or 404 (an outsider learns nothing of it)."""
    return get_object_or_404(Release.objects.visible_to(request.user), version=version)


def require_staff(request: HttpRequest) -> None:
    if not request.user.is_staff:
        raise PermissionDenied(_("Only staff can do this."))


def client_ip(request: HttpRequest) -> str | None:
    return request.META.get("REMOTE_ADDR") or None
