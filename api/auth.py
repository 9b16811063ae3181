"""Who calls the API: the pipeline token a request carries, the release it may act on,
how often it may ask, and the actor it writes as.

A token is for one role and either one release or, as a project token, every release
whose version matches its pattern (checks.models.PipelineToken; only its hash is stored).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from django.conf import settings
from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.http import HttpRequest
from django.utils import timezone
from django.utils.translation import gettext as _

from checks.models import PipelineToken
from deploycheck import limits
from releases import workflow
from releases.actors import PipelineActor
from releases.models import Release

from .endpoint import ApiError

RATE_WINDOW_SECONDS = 60


def _refused() -> ApiError:
    # The same answer for an unknown or revoked token, one for another release or
    # pattern, and a release that does not exist: a probe learns nothing about which
    # releases exist.
    return ApiError(401, _("This token is unknown, revoked, or not for this release."))


def authenticate(request: HttpRequest, version: str) -> tuple[PipelineToken, Release]:
    """The active token the request carries, and the release of this version it may act
    on; refused otherwise."""
    header = request.headers.get("Authorization", "")
    scheme, _space, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise ApiError(
            401,
            _("Send a pipeline token as Authorization: Bearer <token>."),
            **{"WWW-Authenticate": "Bearer"},
        )
    found = (
        PipelineToken.objects.active()
        .select_related("release")
        .filter(token_hash=PipelineToken.hash_token(token.strip()))
        .first()
    )
    if found is None or not found.applies_to(version):
        raise _refused()
    release = found.release or Release.objects.filter(version=version).first()
    if release is None:
        raise _refused()
    _throttle(found)
    _mark_used(found)
    return found, release


def _mark_used(token: PipelineToken) -> None:
    """Records the use, unless the token was revoked since it was read: a revocation
    ends a token's use at once, even for a request already under way."""
    if not PipelineToken.objects.active().filter(pk=token.pk).update(last_used_at=timezone.now()):
        raise _refused()


def _throttle(token: PipelineToken) -> None:
    """A fixed window per token, counted across web processes."""
    counted = limits.count(f"pipeline-rate:{token.pk}", RATE_WINDOW_SECONDS)
    if counted.count > settings.PIPELINE_REQUESTS_PER_MINUTE:
        wait = counted.retry_after
        raise ApiError(
            429,
            _("Too many requests with this token; try again in %(seconds)d s.") % {"seconds": wait},
            **{"Retry-After": str(wait)},
        )


@contextmanager
def acting(token: PipelineToken, request: HttpRequest) -> Iterator[PipelineActor]:
    """The token's actor, for the workflow operations of one change: all written, or
    nothing and an ApiError."""
    actor = PipelineActor(
        token_label=token.label,
        role=token.role,
        token_id=token.pk,
        ip=request.META.get("REMOTE_ADDR") or None,
    )
    try:
        with transaction.atomic():
            yield actor
            # Revoked while the change was being recorded: the change goes with it.
            # Asked after the release lock, the order a revocation takes them in.
            _mark_used(token)
    except PermissionDenied as refusal:
        raise ApiError(403, str(refusal)) from None
    except workflow.Conflict as refusal:
        raise ApiError(409, refusal.message) from None
    except workflow.WorkflowError as refusal:
        raise ApiError(422, refusal.message) from None
