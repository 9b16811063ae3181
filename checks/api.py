"""The pipeline API: a deploy job asks whether it may go, and a CI job reports evidence.

Both authenticate with `Authorization: Bearer <token>`, a pipeline token made by staff
for one role and either one release or, as a project token, every release whose version
matches its pattern (only its hash is stored). Staff manage a release's tokens on its
"Pipeline tokens" page and project tokens on the project's, both also here. Every
refusal is a JSON answer with a 4xx status and an `error` message; nothing is written
unless the whole request holds.
"""

from __future__ import annotations

import json
import re
import secrets
from typing import Any

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied, RequestDataTooBig
from django.db import IntegrityError, transaction
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.urls import URLPattern, path, reverse
from django.utils import timezone
from django.utils.translation import gettext as _
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from deploycheck import limits
from releases import workflow
from releases.access import get_release_for_user, person, require_manager
from releases.actors import PipelineActor
from releases.markdown import bidi_controls
from releases.models import AuditAction, BlockingReason, Release, ReleaseItem, blocking_reasons

from .forms import PipelineTokenForm, ProjectTokenForm, RevokePipelineTokenForm
from .models import PipelineToken

RATE_WINDOW_SECONDS = 60
# Item ids are a bigint primary key.
MAX_ITEM_ID = 2**63 - 1
UNSTORABLE = re.compile("[\x00\ud800-\udfff]")


class ApiError(Exception):
    def __init__(self, status: int, message: str, **headers: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = headers


def _error(error: ApiError) -> JsonResponse:
    response = JsonResponse({"error": error.message}, status=error.status)
    for name, value in error.headers.items():
        response[name] = value
    response["Cache-Control"] = "no-store"
    return response


def _refused() -> ApiError:
    # The same answer for an unknown or revoked token, one for another release or
    # pattern, and a release that does not exist: a probe learns nothing about which
    # releases exist.
    return ApiError(401, _("This token is unknown, revoked, or not for this release."))


def _token_of(request: HttpRequest, version: str) -> tuple[PipelineToken, Release]:
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


def _go_no_go(release: Release) -> dict[str, Any]:
    reasons = blocking_reasons(release)
    approved = release.active_approval() is not None
    if not approved:
        reasons.insert(0, BlockingReason("not-approved", _("Go-live is not approved.")))
    return {
        "version": release.version,
        "status": release.status,
        "go": approved and not reasons,
        "reasons": [{"code": r.code, "message": r.message} for r in reasons],
    }


@require_GET
def go_no_go(request: HttpRequest, version: str) -> JsonResponse:
    """Whether the release may go live now: approved, and nothing blocking it."""
    try:
        if request.user.is_authenticated and "Authorization" not in request.headers:
            release = get_release_for_user(request, version)
        else:
            _token, release = _token_of(request, version)
    except ApiError as error:
        return _error(error)
    response = JsonResponse(_go_no_go(release))
    response["Cache-Control"] = "no-store"
    return response


def _body(request: HttpRequest) -> bytes:
    try:
        return request.body
    except RequestDataTooBig:
        # Django's own answer is an HTML page; a pipeline reads JSON.
        raise ApiError(
            413,
            _("The body is larger than %(limit)d bytes.")
            % {"limit": settings.DATA_UPLOAD_MAX_MEMORY_SIZE},
        ) from None


class _NoId:
    """An integer longer than any id, read as no valid value instead of converted (Python
    refuses to convert one of more than 4,300 digits)."""


def _bounded_int(digits: str) -> int | _NoId:
    return int(digits) if len(digits) <= len(str(MAX_ITEM_ID)) else _NoId()


def _evidence_request(request: HttpRequest) -> dict[str, Any]:
    try:
        data = json.loads(_body(request) or b"", parse_int=_bounded_int)
    except (ValueError, RecursionError):
        # RecursionError: nesting deeper than the parser goes is no JSON object of ours.
        raise ApiError(400, _("The body must be a JSON object.")) from None
    if not isinstance(data, dict):
        raise ApiError(400, _("The body must be a JSON object."))
    unknown = sorted(set(data) - {"item", "outcome", "url", "detail"})
    if unknown:
        raise ApiError(400, _("Unknown fields: %(fields)s.") % {"fields": ", ".join(unknown)})
    if data.get("outcome") not in ("pass", "fail"):
        raise ApiError(400, _('outcome must be "pass" or "fail".'))
    wanted = data.get("item")
    if (
        not isinstance(wanted, str | int)
        or isinstance(wanted, bool)
        or (isinstance(wanted, int) and not 0 < wanted <= MAX_ITEM_ID)
    ):
        raise ApiError(400, _("item must be the item's text or its id."))
    for name, limit in (("url", 1000), ("detail", 2000)):
        value = data.get(name, "")
        if not isinstance(value, str):
            raise ApiError(400, _("%(field)s must be a string.") % {"field": name})
        if len(value) > limit:
            raise ApiError(
                400,
                _("%(field)s is longer than %(limit)d characters.")
                % {"field": name, "limit": limit},
            )
    # PostgreSQL text cannot hold NUL, nor psycopg encode a lone surrogate (a 500
    # otherwise); Django's forms refuse both too.
    for name in ("item", "url", "detail"):
        if UNSTORABLE.search(str(data.get(name, ""))):
            raise ApiError(
                400,
                _("%(field)s must not contain NUL or unpaired surrogate characters.")
                % {"field": name},
            )
    hidden = bidi_controls(data.get("detail", ""))
    if hidden:
        raise ApiError(
            400,
            _(
                "detail contains invisible bidirectional control characters (%(chars)s), "
                "which can make it read differently from what it is; remove them."
            )
            % {"chars": ", ".join(hidden)},
        )
    return data


def _item_of(release: Release, wanted: str | int) -> ReleaseItem:
    items = release.items.all()
    if isinstance(wanted, int):
        found = list(items.filter(pk=wanted))
    else:
        found = list(items.filter(text=wanted.strip()))
    if len(found) == 1:
        return found[0]
    if not found:
        raise ApiError(
            404,
            _("No item “%(item)s” on %(version)s.") % {"item": wanted, "version": release.version},
        )
    raise ApiError(
        409,
        _("“%(item)s” names %(count)d items; send the id of one instead.")
        % {"item": wanted, "count": len(found)},
    )


@csrf_exempt  # authenticated by the bearer token, never by a cookie
@require_POST
def evidence(request: HttpRequest, version: str) -> JsonResponse:
    """A CI job settles an item its token's role owns, with a link to the run."""
    try:
        token, release = _token_of(request, version)
        data = _evidence_request(request)
        entry = _item_of(release, data["item"])
        actor = PipelineActor(
            token_label=token.label,
            role=token.role,
            token_id=token.pk,
            ip=request.META.get("REMOTE_ADDR") or None,
        )
        try:
            with transaction.atomic():
                settled = workflow.record_pipeline_evidence(
                    entry,
                    by=actor,
                    passed=data["outcome"] == "pass",
                    url=data.get("url", ""),
                    detail=data.get("detail", ""),
                )
                # Revoked while the report was being recorded: the report goes with it.
                # Asked after the release lock, the order a revocation takes them in.
                _mark_used(token)
        except PermissionDenied as refusal:
            raise ApiError(403, str(refusal)) from None
        except workflow.WorkflowError as refusal:
            raise ApiError(422, refusal.message) from None
    except ApiError as error:
        return _error(error)
    return JsonResponse(
        {
            "item": settled.pk,
            "text": settled.text,
            "state": settled.state,
            "revision": settled.revision,
        }
    )


# --- staff: the tokens of a release, and the project's ---------------------------------


@login_required
@require_http_methods(["GET", "POST"])
def tokens(request: HttpRequest, version: str) -> HttpResponse:
    release = get_release_for_user(request, version)
    require_manager(request)
    return _tokens_page(request, release)


@login_required
@require_http_methods(["GET", "POST"])
def project_tokens(request: HttpRequest) -> HttpResponse:
    """Tokens for every release whose version matches a pattern, so that CI needs no
    new token for each release."""
    require_manager(request)
    return _tokens_page(request, None)


def _tokens_page(request: HttpRequest, release: Release | None) -> HttpResponse:
    """The tokens of a release, or with None the project's: create, list, revoke."""
    if release is not None:
        here = reverse("checks:tokens", args=[release.version])
        form_class: type[PipelineTokenForm] = PipelineTokenForm
        version = release.version
    else:
        here = reverse("checks:project-tokens")
        form_class = ProjectTokenForm
        # The example the page shows leaves the version to the CI job's shell.
        version = "$RELEASE_VERSION"
    form = form_class()
    new_token = ""
    if request.method == "POST":
        if request.POST.get("action") == "revoke":
            revoke = RevokePipelineTokenForm(request.POST, release=release)
            if revoke.is_valid() and _revoke(request, revoke.cleaned_data["token"]):
                messages.success(request, _("Token revoked; it no longer works."))
            else:
                messages.error(request, _("That token is already revoked or does not exist."))
            return redirect(here)
        form = form_class(request.POST)
        if form.is_valid():
            new_token = _create(request, release, form.cleaned_data)
            if new_token:
                form = form_class()
            else:
                form.add_error("label", _("An active token already has this label."))
    shown = PipelineToken.objects.select_related("created_by")
    context = {
        "release": release,
        "form": form,
        "new_token": new_token,
        "tokens": [
            (t, RevokePipelineTokenForm(initial={"token": t.pk}, release=release, auto_id=False))
            for t in (shown.filter(release=release) if release is not None else shown.of_project())
        ],
        # The project tokens that also work here, shown read-only: the project's page
        # manages them.
        "applying": [(t, None) for t in shown.active().applying_to(release.version)]
        if release is not None
        else [],
        "api_go": request.build_absolute_uri(reverse("checks:go-no-go", args=[version])),
        "api_evidence": request.build_absolute_uri(reverse("checks:evidence", args=[version])),
    }
    template = "checks/tokens.html" if release is not None else "checks/project_tokens.html"
    response = render(request, template, context)
    # The page may carry a working token: never cached, never kept in history.
    response["Cache-Control"] = "no-store"
    return response


def _create(request: HttpRequest, release: Release | None, cleaned: dict[str, Any]) -> str:
    """The new token, or "" when an active token of the same scope has its label."""
    token = secrets.token_urlsafe(32)
    actor = person(request)
    label, role = cleaned["label"], cleaned["role"]
    pattern = cleaned.get("version_pattern", "")
    with workflow.managing(release, by=actor) as change:
        try:
            # A savepoint: the label's unique constraint decides between two people
            # creating at once, and the refusal leaves the transaction usable.
            with transaction.atomic():
                PipelineToken.objects.create(
                    release=release,
                    version_pattern=pattern,
                    role=role,
                    label=label,
                    token_hash=PipelineToken.hash_token(token),
                    created_by=actor.user,
                )
        except IntegrityError:
            return ""
        change.audit(AuditAction.PIPELINE_TOKEN_CREATED, f"ci:{label}", {}, _scope(role, pattern))
    return token


def _revoke(request: HttpRequest, token: PipelineToken) -> bool:
    with workflow.managing(token.release, by=person(request)) as change:
        revoked = (
            PipelineToken.objects.active().filter(pk=token.pk).update(revoked_at=timezone.now())
        )
        if revoked:
            change.audit(
                AuditAction.PIPELINE_TOKEN_REVOKED,
                f"ci:{token.label}",
                {},
                _scope(token.role, token.version_pattern),
            )
    return bool(revoked)


def _scope(role: str, pattern: str) -> dict[str, str]:
    """What a token may do, as its audit events record it."""
    return {"role": role, "releases": pattern} if pattern else {"role": role}


routes: list[URLPattern] = [
    path("api/releases/<str:version>/go-no-go", go_no_go, name="go-no-go"),
    path("api/releases/<str:version>/evidence", evidence, name="evidence"),
    path("releases/<str:version>/tokens/", tokens, name="tokens"),
    path("tokens/", project_tokens, name="project-tokens"),
]
