"""ElevenLabs: the key is accepted, the subscription is active with characters to spare
in this period, and the app's voice exists.

API: https://elevenlabs.io/docs/api-reference/user/subscription/get
     https://elevenlabs.io/docs/api-reference/voices/get
Errors: https://elevenlabs.io/docs/eleven-api/resources/errors

Proof. `GET /v1/user/subscription` (the key permission user_read) gives `status` and the
period's `character_limit` and `character_count`; what is left is their difference. It
must be at least `min_characters`, or, when that is not set, 5 % of the limit. Usage-based
billing lets a workspace go on past the limit, each character billed as overage: the
reference reads `can_extend_character_limit` as the workspace being entitled to it and
`max_credit_limit_extension` as how far past the limit its admin allows (0: billing off,
"unlimited": no cap); older answers say the same with the deprecated
`allowed_to_extend_character_limit` and `max_character_limit_extension`. When both allow
it, the allowed overage counts as characters to spare, and the evidence says so because
those characters cost money; an extension whose size no field states is not counted.
`GET /v1/voices/{voice_id}` (voices_read) shows the voice exists.

A scoped key may lack a permission (401 missing_permissions): the key is valid, so the
check still reads what its scope allows, but where the subscription or the voice cannot
be read the check says which permission is missing and does not pass.

Permanent failures: the key refused (401 invalid_api_key); a missing permission
(misconfigured); the character quota exhausted (400 or 401 quota_exceeded) or fewer
characters left than the threshold; a subscription in a documented status other than
active or trialing (incomplete, past_due, free, free_disabled); an unknown voice (400 or
404 voice_not_found or voice_does_not_exist, or any 404); and any other
not-found answer (a code ending in _not_found or _does_not_exist, or a 404 from the
subscription path: base_url serves no ElevenLabs API).

Not verified: a subscription status the API does not document, named, ends as an error
at once.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import httpx
from django.utils.translation import gettext_noop as _

from .base import CheckError, Context, Kind, Reason, Said, fault, joined, said, transient
from .client import busy_or_down, http_client, send, unexpected
from .vendor_errors import (
    answer_label,
    api_url,
    error_body,
    integer,
    json_object,
    string,
    undocumented,
)

PRODUCTION = "https://api.elevenlabs.io"
VERSION = "v1"
USABLE = frozenset({"active", "trialing"})
# Every status the SDK's SubscriptionStatusType documents.
SUBSCRIPTION_STATUSES = ("trialing", "active", "incomplete", "past_due", "free", "free_disabled")
# Without min_characters, the threshold is this share of the period's characters.
DEFAULT_SHARE_PERCENT = 5
# "The API key you used is missing the permission voices_read to execute this operation."
PERMISSION = re.compile(r"permission ([a-z]+(?:_[a-z]+)+)")
NOT_FOUND_SUFFIXES = ("not_found", "_does_not_exist")
UNLIMITED = "unlimited"


class MissingPermission(Exception):
    """The key is valid but its scope does not cover this read."""

    def __init__(self, permission: str) -> None:
        super().__init__(permission)
        self.permission = permission


@dataclass(frozen=True)
class Threshold:
    characters: int
    # How the threshold was set, for the evidence.
    named: Said


def run(context: Context) -> Said:
    key = context.secret("secret_env")
    voice_id = context.text("voice_id")
    base = api_url(context.text("base_url"), PRODUCTION, VERSION)
    headers = {"xi-api-key": key}
    # What the key's scope kept from being read: each a sentence naming the permission.
    unread: list[Said] = []
    summary: Said | None = None
    voice: Said | None = None
    with http_client(base_url=base, ca_file=context.text("ca_file"), headers=headers) as client:
        try:
            subscription = _get(client, "/user/subscription", said(_("subscription")), "user_read")
            summary = _judge_subscription(subscription, context)
        except MissingPermission as lacking:
            unread.append(_lacking(lacking.permission, said(_("the subscription and its quota"))))
        if voice_id:
            try:
                voice = _voice(client, voice_id)
            except MissingPermission as lacking:
                unread.append(_lacking(lacking.permission, said(_("the voice"))))
            except CheckError as error:
                if not unread:
                    raise
                # The subscription stays unread whatever the voice's answer: no retry helps.
                unread.append(error.said)
    if summary is None or unread:
        raise fault(Reason.MISCONFIGURED, _unreadable(unread, voice))
    if voice is None:
        return summary
    return joined(summary, voice)


def _voice(client: httpx.Client, voice_id: str) -> Said:
    what = said(_("voice %(voice)s"), voice=voice_id)
    found = _get(client, f"/voices/{quote(voice_id, safe='')}", what, "voices_read", voice_id)
    name = string(found, "name")
    if name:
        return said(_("voice %(voice)s (%(name)s)"), voice=voice_id, name=name)
    return what


def _lacking(permission: str, unread: Said) -> Said:
    return said(
        _("the key is valid but lacks the permission %(permission)s, so %(unread)s cannot be read"),
        permission=permission,
        unread=unread,
    )


def _unreadable(unread: list[Said], voice: Said | None) -> Said:
    if voice is not None:
        unread = [*unread, said(_("%(voice)s found"), voice=voice)]
    evidence = unread[0]
    for more in unread[1:]:
        evidence = joined(evidence, more)
    return evidence


def _threshold(context: Context, limit: int) -> Threshold:
    if context.options.get("min_characters") is not None:
        minimum = context.number("min_characters", 0)
        return Threshold(minimum, said(_("the minimum of %(minimum)s"), minimum=minimum))
    # Rounded up, so that a small limit still asks for at least one character.
    share = -(-limit * DEFAULT_SHARE_PERCENT // 100)
    return Threshold(
        share,
        said(
            _("%(percent)s %% of the period's characters (%(share)s)"),
            percent=DEFAULT_SHARE_PERCENT,
            share=share,
        ),
    )


def _judge_subscription(subscription: dict[str, Any], context: Context) -> Said:
    status = string(subscription, "status")
    limit = integer(subscription, "character_limit")
    used = integer(subscription, "character_count")
    if not status or limit is None or used is None:
        raise transient(
            Reason.BAD_RESPONSE,
            said(_("subscription: HTTP 200 without status and character counts")),
        )
    if status not in SUBSCRIPTION_STATUSES:
        raise undocumented(said(_("subscription status")), status, SUBSCRIPTION_STATUSES)
    if status not in USABLE:
        raise fault(
            Reason.MISCONFIGURED,
            said(_("subscription status is %(status)s, not active or trialing"), status=status),
        )
    tier = string(subscription, "tier")
    plan = (
        said(_("%(tier)s subscription %(status)s"), tier=tier, status=status)
        if tier
        else said(_("subscription %(status)s"), status=status)
    )
    threshold = _threshold(context, limit)
    remaining = limit - used
    left = (
        said(_("%(left)s of %(limit)s characters left"), left=remaining, limit=limit)
        if remaining >= 0
        else said(
            _("%(over)s characters past the limit of %(limit)s"), over=-remaining, limit=limit
        )
    )
    if remaining >= threshold.characters:
        return said(_("key accepted; %(plan)s; %(left)s"), plan=plan, left=left)
    overage = _overage(subscription)
    if overage is None:
        return said(
            _(
                "key accepted; %(plan)s; %(left)s, below %(threshold)s, but usage-based "
                "billing is on with no cap: characters past the limit are billed as overage"
            ),
            plan=plan,
            left=left,
            threshold=threshold.named,
        )
    if overage > 0 and remaining + overage >= threshold.characters:
        return said(
            _(
                "key accepted; %(plan)s; %(left)s, below %(threshold)s, but usage-based "
                "billing allows %(overage)s characters past the limit, billed as overage"
            ),
            plan=plan,
            left=left,
            threshold=threshold.named,
            overage=overage,
        )
    if overage > 0:
        raise fault(
            Reason.QUOTA_EXHAUSTED,
            said(
                _(
                    "%(left)s, below %(threshold)s even with the %(overage)s characters "
                    "usage-based billing allows past the limit"
                ),
                left=left,
                threshold=threshold.named,
                overage=overage,
            ),
        )
    raise fault(
        Reason.QUOTA_EXHAUSTED,
        said(
            _("%(left)s, below %(threshold)s, and usage-based billing is off"),
            left=left,
            threshold=threshold.named,
        ),
    )


def _overage(subscription: dict[str, Any]) -> int | None:
    """Characters usage-based billing allows past the limit: 0 when it is off or its size
    is not stated, None when there is no cap."""
    if subscription.get("can_extend_character_limit") is not True:
        return 0
    extension = subscription.get("max_credit_limit_extension")
    if extension == UNLIMITED:
        return None
    current = integer(subscription, "max_credit_limit_extension")
    if current is not None:
        return max(current, 0)
    if subscription.get("allowed_to_extend_character_limit") is not True:
        return 0
    return max(integer(subscription, "max_character_limit_extension") or 0, 0)


def _get(
    client: httpx.Client, path: str, what: Said, permission: str, voice_id: str = ""
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


def _refused(response: httpx.Response, what: Said, permission: str, voice_id: str) -> Exception:
    status = response.status_code
    code, message = _detail(response)
    label = answer_label(status, code)
    if status in (400, 401) and code == "quota_exceeded":
        return fault(
            Reason.QUOTA_EXHAUSTED,
            said(
                _("%(what)s: the character quota is exhausted (%(label)s)"),
                what=what,
                label=label,
            ),
        )
    if status == 401 and code == "missing_permissions":
        named = PERMISSION.search(message)
        return MissingPermission(named.group(1) if named else permission)
    if status == 401:
        return fault(
            Reason.AUTH_FAILED,
            said(_("%(what)s: the key was refused (%(label)s)"), what=what, label=label),
        )
    not_found = code.endswith(NOT_FOUND_SUFFIXES)
    if voice_id and (status == 404 or (status == 400 and not_found)):
        return fault(
            Reason.MISCONFIGURED,
            said(_("voice %(voice)s not found (%(label)s)"), voice=voice_id, label=label),
        )
    if status == 404 or (status == 400 and not_found):
        return fault(
            Reason.MISCONFIGURED,
            said(_("%(what)s: not found (%(label)s); check base_url"), what=what, label=label),
        )
    if status == 429:
        return busy_or_down(response, said(_("%(what)s: %(label)s"), what=what, label=label))
    return unexpected(
        response, said(_("%(what)s (%(code)s)"), what=what, code=code) if code else what
    )


KIND = Kind(
    name="elevenlabs",
    required=frozenset({"secret_env"}),
    optional=frozenset({"min_characters", "voice_id", "base_url", "ca_file"}),
    run=run,
    docs_url="https://elevenlabs.io/docs/api-reference/user/subscription/get",
)
