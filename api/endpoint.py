"""What every endpoint of the API shares besides its token: a refusal answered as JSON,
the request body read as a JSON object within its limits, and its fields checked."""

from __future__ import annotations

import json
from collections.abc import Callable, Collection
from functools import wraps
from typing import Any

from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.utils.translation import gettext as _
from django.views.decorators.csrf import csrf_exempt

from releases.inputs import UNSTORABLE
from releases.markdown import bidi_controls
from releases.workflow import WorkflowError, checked_link, says_nothing

# Ids are bigint primary keys.
MAX_ID = 2**63 - 1

View = Callable[..., HttpResponse]


class ApiError(Exception):
    """A refusal: its status, the message a pipeline shows, and any headers it needs."""

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


def endpoint(method: str) -> Callable[[View], View]:
    """An endpoint answering `method` only (405 otherwise, in JSON as every refusal
    is, where Django's require_http_methods answers an empty page), whose ApiError is its
    answer."""

    def decorate(view: View) -> View:
        @wraps(view)
        def answer(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
            try:
                if request.method != method:
                    raise ApiError(
                        405,
                        _("This endpoint takes %(method)s requests only.") % {"method": method},
                        Allow=method,
                    )
                return view(request, *args, **kwargs)
            except ApiError as error:
                return _error(error)

        # Authenticated by the bearer token, never by a cookie.
        return csrf_exempt(answer)

    return decorate


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


class NoId:
    """An integer longer than any id, read as no valid value instead of converted (Python
    refuses to convert one of more than 4,300 digits)."""


def _bounded_int(digits: str) -> int | NoId:
    return int(digits) if len(digits) <= len(str(MAX_ID)) else NoId()


def json_object(request: HttpRequest) -> dict[str, Any]:
    """The body, a JSON object; its integers longer than any id are NoId."""
    try:
        data = json.loads(_body(request) or b"", parse_int=_bounded_int)
    except (ValueError, RecursionError):
        # RecursionError: nesting deeper than the parser goes is no JSON object of ours.
        raise ApiError(400, _("The body must be a JSON object.")) from None
    if not isinstance(data, dict):
        raise ApiError(400, _("The body must be a JSON object."))
    return data


def quoted(value: str, limit: int) -> str:
    """`value` as a refusal quotes it back: whole, or cut at `limit` characters and
    marked so, since a path may carry any length and a cut one would name another."""
    return value if len(value) <= limit else value[: limit - 1] + "…"


def refuse_unknown(data: dict[str, Any], known: Collection[str]) -> None:
    """A field the endpoint does not take is refused, not ignored: a typo would
    otherwise pass for a request that sent nothing."""
    unknown = sorted(set(data) - set(known))
    if unknown:
        raise ApiError(400, _("Unknown fields: %(fields)s.") % {"fields": ", ".join(unknown)})


def refuse_unstorable(name: str, value: str) -> None:
    # JSON bodies are left to the endpoints by releases.inputs, which checks the rest.
    if UNSTORABLE.search(value):
        raise ApiError(
            400,
            _("%(field)s must not contain NUL or unpaired surrogate characters.") % {"field": name},
        )


def refuse_hidden(name: str, value: str) -> None:
    """Text people read, refused when invisible bidirectional controls would make it read
    differently from what it is (as the workflow refuses them in people's text)."""
    hidden = bidi_controls(value)
    if hidden:
        raise ApiError(
            400,
            _(
                "%(what)s contains invisible bidirectional control characters (%(chars)s), "
                "which can make it read differently from what it is; remove them."
            )
            % {"what": name, "chars": ", ".join(hidden)},
        )


def text_field(
    data: dict[str, Any], name: str, limit: int, *, required: bool = False, shown: bool = True
) -> str | None:
    """The field's string, or None when it is not sent and not `required`. `shown`: text
    people read, where bidirectional controls are refused."""
    if name not in data:
        if required:
            raise ApiError(400, _("%(field)s is required.") % {"field": name})
        return None
    value = data[name]
    if not isinstance(value, str):
        raise ApiError(400, _("%(field)s must be a string.") % {"field": name})
    if len(value) > limit:
        raise ApiError(
            400,
            _("%(field)s is longer than %(limit)d characters.") % {"field": name, "limit": limit},
        )
    refuse_unstorable(name, value)
    # Text that says nothing, bidirectional controls and all, is the workflow's to
    # refuse or drop, as it does a blank one.
    if shown and not says_nothing(value):
        refuse_hidden(name, value)
    return value


def link_field(data: dict[str, Any], name: str, limit: int) -> str | None:
    """The field's link without the whitespace around it, or None when it is not sent;
    refused as the workflow refuses an evidence link on the board, with 422: JSON well
    formed, a value a rule refuses."""
    value = text_field(data, name, limit)
    if value is None:
        return None
    try:
        return checked_link(value, name)
    except WorkflowError as refusal:
        raise ApiError(422, refusal.message) from None


def choice_field(data: dict[str, Any], name: str, choices: Collection[str]) -> str:
    """The field's value, one of `choices`."""
    value = data.get(name)
    if not isinstance(value, str) or value not in choices:
        raise ApiError(
            400,
            _("%(field)s must be one of: %(choices)s.")
            % {"field": name, "choices": ", ".join(choices)},
        )
    return value
