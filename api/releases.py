"""The API of a release: a deploy job asks whether it may go, and a CI job reports
evidence for the items its token's role owns."""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest, JsonResponse
from django.utils.translation import gettext as _

from releases import workflow
from releases.access import get_release_for_user
from releases.models import BlockingReason, Release, ReleaseItem, blocking_reasons

from .auth import acting, authenticate
from .endpoint import (
    MAX_ID,
    ApiError,
    endpoint,
    json_object,
    link_field,
    refuse_unknown,
    refuse_unstorable,
    text_field,
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


@endpoint("GET")
def go_no_go(request: HttpRequest, version: str) -> JsonResponse:
    """Whether the release may go live now: approved, and nothing blocking it. A person
    signed in may ask too, without a token: a GET, so the session needs no CSRF token."""
    if request.user.is_authenticated and "Authorization" not in request.headers:
        release = get_release_for_user(request, version)
    else:
        _token, release = authenticate(request, version)
    response = JsonResponse(_go_no_go(release))
    response["Cache-Control"] = "no-store"
    return response


def _evidence_request(request: HttpRequest) -> dict[str, Any]:
    data = json_object(request)
    refuse_unknown(data, {"item", "outcome", "url", "detail"})
    if data.get("outcome") not in ("pass", "fail"):
        raise ApiError(400, _('outcome must be "pass" or "fail".'))
    wanted = data.get("item")
    if (
        not isinstance(wanted, str | int)
        or isinstance(wanted, bool)
        or (isinstance(wanted, int) and not 0 < wanted <= MAX_ID)
    ):
        raise ApiError(400, _("item must be the item's text or its id."))
    if isinstance(wanted, str):
        refuse_unstorable("item", wanted)
    link_field(data, "url", 1000)
    text_field(data, "detail", 2000)
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


@endpoint("POST")
def evidence(request: HttpRequest, version: str) -> JsonResponse:
    """A CI job settles an item its token's role owns, with a link to the run."""
    token, release = authenticate(request, version)
    data = _evidence_request(request)
    entry = _item_of(release, data["item"])
    with acting(token, request) as by:
        settled = workflow.record_pipeline_evidence(
            entry,
            by=by,
            passed=data["outcome"] == "pass",
            url=data.get("url", ""),
            detail=data.get("detail", ""),
        )
    return JsonResponse(
        {
            "item": settled.pk,
            "text": settled.text,
            "state": settled.state,
            "revision": settled.revision,
        }
    )
