"""ElevenLabs: the key is accepted, the subscription is active with characters to spare,
and the app's voice exists.

API: https://elevenlabs.io/docs/api-reference/user/subscription/get
Errors: https://elevenlabs.io/docs/eleven-api/resources/errors

Permanent failures: the key refused (401 invalid_api_key); a scoped key lacking the
permission a request needs (401 missing_permissions: the key itself is valid); the
character quota exhausted (400 or 401 quota_exceeded, or fewer characters left than
min_characters, which defaults to 1); a subscription neither active nor trialing; and an
unknown voice (400 voice_not_found, or 404).
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import quote

import httpx

from .base import Context, Kind, Reason, fault, transient
from .client import http_client, retry_after, send, unexpected
from .vendor_errors import api_url, error_body, integer, json_object, string

PRODUCTION = "https://api.elevenlabs.io"
VERSION = "v1"
USABLE = frozenset({"active", "trialing"})
# "The API key you used is missing the permission voices_read to execute this operation."
PERMISSION = re.compile(r"permission ([a-z]+(?:_[a-z]+)+)")


def run(context: Context) -> str:
    key = context.secret("secret_env")
    # With no threshold configured, a subscription with nothing left still fails: it
    # cannot speak a single character.
    minimum = context.number("min_characters", 1)
    voice_id = context.text("voice_id")
    base = api_url(context.text("base_url"), PRODUCTION, VERSION)
    headers = {"xi-api-key": key}
    with http_client(base_url=base, ca_file=context.text("ca_file"), headers=headers) as client:
        subscription = _get(client, "/user/subscription", "subscription", "user_read")
        summary = _judge_subscription(subscription, minimum)
        if not voice_id:
            return summary
        voice = _get(
            client,
            f"/voices/{quote(voice_id, safe='')}",
            f"voice {voice_id}",
            "voices_read",
            voice_id,
        )
    name = string(voice, "name")
    return f"{summary}; voice {voice_id} ({name})" if name else f"{summary}; voice {voice_id}"


def _judge_subscription(subscription: dict[str, Any], minimum: int) -> str:
    status = string(subscription, "status")
    limit = integer(subscription, "character_limit")
    used = integer(subscription, "character_count")
    if not status or limit is None or used is None:
        raise transient(
            Reason.BAD_RESPONSE, "subscription: HTTP 200 without status and character counts"
        )
    if status not in USABLE:
        raise fault(
            Reason.MISCONFIGURED, f"subscription status is {status}, not active or trialing"
        )
    remaining = limit - used
    if remaining < minimum:
        raise fault(
            Reason.QUOTA_EXHAUSTED,
            f"{remaining} of {limit} characters left, below the minimum of {minimum}",
        )
    tier = string(subscription, "tier")
    plan = f"{tier} subscription" if tier else "subscription"
    return f"key accepted; {plan} {status}; {remaining} of {limit} characters left"


def _get(
    client: httpx.Client, path: str, what: str, permission: str, voice_id: str = ""
) -> dict[str, Any]:
    response = send(client, "GET", path)
    if response.status_code != 200:
        raise _refused(response, what, permission, voice_id)
    return json_object(response, what)


def _detail(response: httpx.Response) -> tuple[str, str]:
    """The error's code and message: `code` is the current field, `status` the legacy one
    that older answers carry alone."""
    detail: Any = error_body(response).get("detail")
    if isinstance(detail, list):
        # FastAPI's validation errors (422) are a list of {loc, msg, type}.
        detail = next((item for item in detail if isinstance(item, dict)), {})
    if not isinstance(detail, dict):
        return "", ""
    code = string(detail, "code") or string(detail, "status") or string(detail, "type")
    return code, string(detail, "message")


def _refused(response: httpx.Response, what: str, permission: str, voice_id: str) -> Exception:
    status = response.status_code
    code, message = _detail(response)
    label = f"HTTP {status} {code}" if code else f"HTTP {status}"
    if status in (400, 401) and code == "quota_exceeded":
        return fault(Reason.QUOTA_EXHAUSTED, f"{what}: the character quota is exhausted ({label})")
    if status == 401 and code == "missing_permissions":
        named = PERMISSION.search(message)
        return fault(
            Reason.AUTH_FAILED,
            f"{what}: the key is valid but lacks the permission "
            f"{named.group(1) if named else permission} ({label})",
        )
    if status == 401:
        return fault(Reason.AUTH_FAILED, f"{what}: the key was refused ({label})")
    if voice_id and (status == 404 or (status == 400 and code == "voice_not_found")):
        return fault(Reason.MISCONFIGURED, f"voice {voice_id} not found ({label})")
    if status == 429:
        return transient(Reason.RATE_LIMITED, f"{what}: {label}", retry_after(response))
    return unexpected(response, f"{what} ({code})" if code else what)


KIND = Kind(
    name="elevenlabs",
    required=frozenset({"secret_env"}),
    optional=frozenset({"min_characters", "voice_id", "base_url", "ca_file"}),
    run=run,
    docs_url="https://elevenlabs.io/docs/api-reference/user/subscription/get",
)
