"""Standard Webhooks (https://www.standardwebhooks.com/): the body is the envelope
`{"type", "timestamp", "data"}`, signed with the channel's `whsec_…` secret over
`id.timestamp.body`, and sent with `webhook-id` (the event's id, the same on every
attempt, so a receiver drops a repeat), `webhook-timestamp` (this attempt's time, which
receivers hold against their clock) and `webhook-signature`.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

import standardwebhooks

from checks.kinds.webhook import signing_key

from .models import Event


class BadSecret(Exception):
    """The secret is not a Standard Webhooks secret."""


def payload(event: Event) -> dict[str, Any]:
    return {"type": event.type, "timestamp": event.created_at.isoformat(), "data": event.data}


def signer(secret: str) -> standardwebhooks.Webhook:
    key = signing_key(secret)
    if key is None:
        raise BadSecret("the signing secret is not a Standard Webhooks secret (whsec_ and base64)")
    return standardwebhooks.Webhook(key)


def signed(event: Event, secret: str, now: datetime) -> tuple[bytes, dict[str, str]]:
    body = json.dumps(payload(event), ensure_ascii=False, separators=(",", ":")).encode()
    message_id = str(event.pk)
    return body, {
        "Content-Type": "application/json",
        "webhook-id": message_id,
        "webhook-timestamp": str(int(now.timestamp())),
        "webhook-signature": signer(secret).sign(message_id, now, body),
    }
