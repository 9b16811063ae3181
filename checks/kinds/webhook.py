"""webhook: an inbound webhook endpoint takes the vendor's signed deliveries and refuses
forged ones.

It POSTs two deliveries to `url`, each in the vendor's own format: one signed with the
secret named by `secret_env`, which must be accepted (2xx), and the same kind of delivery
signed with another key, which must be refused (4xx). Only both results together prove
that validation is on and uses the right secret: a refusal alone proves nothing when the
endpoint refuses everything, or refuses the vendor's real body.

`scheme` picks the format; every body is a harmless test event with zeroed identifiers:
- twilio: a form body shaped like a voice status callback (AccountSid AC000…, CallSid
  CA000…, Twilio's test number +15005550006, CallStatus completed), and
  X-Twilio-Signature: base64 HMAC-SHA1, keyed with the auth token, of the URL exactly as
  sent followed by each POST parameter's name and value sorted by name
  (https://www.twilio.com/docs/usage/webhooks/webhooks-security,
  https://www.twilio.com/docs/voice/api/call-resource#statuscallback).
- elevenlabs: a JSON post-call transcription event and
  ElevenLabs-Signature: t=<unix time>,v0=<hex HMAC-SHA256 of "<time>.<body>">
  (https://elevenlabs.io/docs/eleven-agents/workflows/post-call-webhooks).
- standard: Standard Webhooks, as OpenAI sends them: webhook-id, webhook-timestamp and
  webhook-signature: v1,<base64 HMAC-SHA256 of "<id>.<time>.<body>">, the key being the
  base64 after `whsec_` (https://www.standardwebhooks.com/,
  https://github.com/standard-webhooks/standard-webhooks/blob/main/spec/standard-webhooks.md).
- hmac: GitHub's style: GitHub's ping event, and `signature_header`
  (X-Hub-Signature-256) holding `signature_prefix` (sha256=) and the hex HMAC-SHA256 of
  the body (https://docs.github.com/en/webhooks/using-webhooks/validating-webhook-deliveries).
Status codes as in RFC 9110 §15 (https://www.rfc-editor.org/rfc/rfc9110#section-15).

Pass: the signed delivery answered 2xx and the forged one 4xx. Permanent failures
(misconfigured): a url that is not https, no scheme or an unknown one, no secret (or a
Standard Webhooks secret that is not `whsec_` and base64), the forged delivery accepted
(validation is off), the signed one refused with a 4xx (a wrong secret, or validation of
another shape: another URL, a re-serialised body), 404/405/410 (no endpoint at this URL),
a redirect (senders post to the URL as given and never follow one). Transient: 429, 5xx,
408 and any other status nothing can be judged from, and whatever `client.send` reports
(timeouts, refused connections).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import re
import secrets
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import format_datetime
from typing import Any
from urllib.parse import urlencode

import httpx
import standardwebhooks
from django.utils.translation import gettext_noop as _

from .base import Context, Kind, OptionError, Reason, Said, fault, said, transient
from .client import busy_or_down, http_client, send

ABSENT = frozenset({404, 405, 410})
# Harmless stand-ins for a vendor's identifiers: no account, call or agent has them.
TWILIO_ACCOUNT_SID = "AC" + "0" * 32
TWILIO_CALL_SID = "CA" + "0" * 32
# Twilio's own test number (https://www.twilio.com/docs/iam/test-credentials).
TWILIO_TEST_NUMBER = "+15005550006"
ELEVENLABS_AGENT_ID = "agent_" + "0" * 26
ELEVENLABS_CONVERSATION_ID = "conv_" + "0" * 26
TEST_NOTE = "deploycheck signature test: not a real event"
DEFAULT_SIGNATURE_HEADER = "X-Hub-Signature-256"
DEFAULT_SIGNATURE_PREFIX = "sha256="
# An HTTP field name (RFC 9110 §5.1).
HEADER_NAME = re.compile(r"^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$")
SECRET_PREFIX = "whsec_"


@dataclass(frozen=True)
class Delivery:
    body: bytes
    headers: dict[str, str]


@dataclass(frozen=True)
class Scheme:
    # How evidence names it.
    label: str
    # The delivery for (the check's options, the URL as sent, the signing secret, now).
    deliver: Callable[[Context, str, str, int], Delivery]
    # A key of the same form as the real secret, for the forged delivery.
    wrong_secret: Callable[[], str]


def run(context: Context) -> Said:
    url = context.text("url")
    if not _is_https(url):
        raise fault(Reason.MISCONFIGURED, NOT_HTTPS)
    scheme = SCHEMES.get(context.text("scheme"))
    if scheme is None:
        raise fault(
            Reason.MISCONFIGURED,
            said(
                _("no signature scheme is configured: set scheme to one of %(schemes)s"),
                schemes=", ".join(SCHEMES),
            ),
        )
    secret = context.secret()
    # The URL exactly as httpx sends it (a default port dropped, the path normalised):
    # Twilio's signature covers it, and the endpoint rebuilds it from the request.
    sent = str(httpx.URL(url))
    now = int(time.time())
    signed = scheme.deliver(context, sent, secret, now)
    forged = scheme.deliver(context, sent, scheme.wrong_secret(), now)
    with http_client(ca_file=context.text("ca_file")) as client:
        signed_status = _post(client, sent, signed, said(_("the correctly signed delivery")))
        forged_status = _post(client, sent, forged, said(_("the wrongly signed delivery")))
    if 200 <= forged_status < 300:
        raise fault(
            Reason.MISCONFIGURED,
            said(
                _(
                    "the endpoint accepted a request with a wrong signature: validation is off"
                    " (%(scheme)s, HTTP %(status)s)"
                ),
                scheme=scheme.label,
                status=forged_status,
            ),
        )
    if signed_status in ABSENT:
        raise fault(
            Reason.MISCONFIGURED,
            said(
                _("no webhook endpoint answers at this URL (HTTP %(status)s)"), status=signed_status
            ),
        )
    if not 200 <= signed_status < 300:
        raise fault(
            Reason.MISCONFIGURED,
            said(
                _(
                    "the endpoint refused a correctly signed request: wrong secret or validation"
                    " of another shape (%(scheme)s, HTTP %(status)s)"
                ),
                scheme=scheme.label,
                status=signed_status,
            ),
        )
    return said(
        _(
            "accepted a correctly signed %(scheme)s delivery (HTTP %(accepted)s) and refused"
            " a wrongly signed one (HTTP %(refused)s)"
        ),
        scheme=scheme.label,
        accepted=signed_status,
        refused=forged_status,
    )


def _post(client: httpx.Client, url: str, delivery: Delivery, which: Said) -> int:
    """The status of a 2xx or 4xx answer; anything else cannot be judged, or is a fault of
    its own (a redirect)."""
    response = send(client, "POST", url, content=delivery.body, headers=delivery.headers)
    status = response.status_code
    if 300 <= status < 400:
        host = response.url.join(response.headers.get("location", "")).host
        raise fault(
            Reason.MISCONFIGURED,
            said(
                _("HTTP %(status)s redirect to %(host)s: senders post to the URL as given"),
                status=status,
                host=host,
            ),
        )
    if status == 429 or status >= 500:
        raise busy_or_down(
            response, said(_("%(delivery)s: HTTP %(status)s"), delivery=which, status=status)
        )
    if status < 200 or status == 408:
        raise transient(
            Reason.BAD_RESPONSE,
            said(_("%(delivery)s: unexpected HTTP %(status)s"), delivery=which, status=status),
        )
    return status


# --- the schemes -------------------------------------------------------------------------


def _twilio(_context: Context, url: str, secret: str, now: int) -> Delivery:
    params = {
        "AccountSid": TWILIO_ACCOUNT_SID,
        "ApiVersion": "2010-04-01",
        "CallSid": TWILIO_CALL_SID,
        "CallStatus": "completed",
        "CallDuration": "0",
        "CallbackSource": "call-progress-events",
        "Called": TWILIO_TEST_NUMBER,
        "Caller": TWILIO_TEST_NUMBER,
        "Direction": "inbound",
        "From": TWILIO_TEST_NUMBER,
        "SequenceNumber": "0",
        "Timestamp": format_datetime(datetime.fromtimestamp(now, UTC)),
        "To": TWILIO_TEST_NUMBER,
    }
    signed = url + "".join(name + value for name, value in sorted(params.items()))
    digest = hmac.new(secret.encode(), signed.encode(), hashlib.sha1).digest()
    return Delivery(
        urlencode(params).encode(),
        {
            "Content-Type": "application/x-www-form-urlencoded",
            "X-Twilio-Signature": base64.b64encode(digest).decode(),
        },
    )


def _elevenlabs(_context: Context, _url: str, secret: str, now: int) -> Delivery:
    body = _json(
        {
            "type": "post_call_transcription",
            "event_timestamp": now,
            "data": {
                "agent_id": ELEVENLABS_AGENT_ID,
                "conversation_id": ELEVENLABS_CONVERSATION_ID,
                "status": "done",
                "user_id": None,
                "transcript": [{"role": "agent", "message": TEST_NOTE, "time_in_call_secs": 0}],
                "metadata": {"start_time_unix_secs": now, "call_duration_secs": 0},
                "analysis": {"call_successful": "unknown", "transcript_summary": TEST_NOTE},
                "conversation_initiation_client_data": {"dynamic_variables": {}},
                "has_audio": False,
                "has_user_audio": False,
                "has_response_audio": False,
            },
        }
    )
    digest = hmac.new(secret.encode(), f"{now}.".encode() + body, hashlib.sha256).hexdigest()
    return Delivery(
        body,
        {"Content-Type": "application/json", "ElevenLabs-Signature": f"t={now},v0={digest}"},
    )


def _standard(_context: Context, _url: str, secret: str, now: int) -> Delivery:
    moment = datetime.fromtimestamp(now, UTC)
    body = _json(
        {
            "type": "deploycheck.test",
            "timestamp": moment.isoformat().replace("+00:00", "Z"),
            "data": {"note": TEST_NOTE},
        }
    )
    message_id = f"msg_{uuid.uuid4().hex}"
    return Delivery(
        body,
        {
            "Content-Type": "application/json",
            "webhook-id": message_id,
            "webhook-timestamp": str(now),
            "webhook-signature": _standard_webhook(secret).sign(message_id, moment, body),
        },
    )


def _standard_webhook(secret: str) -> standardwebhooks.Webhook:
    key = signing_key(secret)
    if key is None:
        raise fault(
            Reason.MISCONFIGURED,
            said(_("the signing secret is not a Standard Webhooks secret (whsec_ and base64)")),
        )
    return standardwebhooks.Webhook(key)


def signing_key(secret: str) -> bytes | None:
    """The key a Standard Webhooks secret (whsec_ and base64) holds, or None when it is
    not one. The library decodes loosely, skipping characters that are not base64: a
    secret copied wrong would sign with another key and read as "wrong secret" at the
    endpoint."""
    encoded = secret.removeprefix(SECRET_PREFIX)
    try:
        key = base64.b64decode(encoded + "=" * (-len(encoded) % 4), validate=True)
    except (binascii.Error, ValueError):
        key = b""
    if not secret.startswith(SECRET_PREFIX) or not key:
        return None
    return key


def _hmac(context: Context, _url: str, secret: str, _now: int) -> Delivery:
    body = _json(
        {
            "zen": TEST_NOTE,
            "hook_id": 0,
            "hook": {
                "type": "Repository",
                "id": 0,
                "name": "web",
                "active": True,
                "events": ["push"],
                "config": {"content_type": "json", "insecure_ssl": "0"},
            },
        }
    )
    digest = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    header = context.text("signature_header", DEFAULT_SIGNATURE_HEADER)
    prefix = context.text("signature_prefix", DEFAULT_SIGNATURE_PREFIX)
    return Delivery(
        body,
        {
            "Content-Type": "application/json",
            "X-GitHub-Event": "ping",
            "X-GitHub-Delivery": str(uuid.uuid4()),
            "X-GitHub-Hook-ID": "0",
            header: prefix + digest,
        },
    )


def _json(payload: Mapping[str, Any]) -> bytes:
    # Compact, as the vendors send it; the signature covers these exact bytes.
    return json.dumps(payload, separators=(",", ":")).encode()


def _random_secret() -> str:
    return secrets.token_hex(24)


def _random_standard_secret() -> str:
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(24)).decode()


SCHEMES: dict[str, Scheme] = {
    "twilio": Scheme("Twilio", _twilio, _random_secret),
    "elevenlabs": Scheme("ElevenLabs", _elevenlabs, _random_secret),
    "standard": Scheme("Standard Webhooks", _standard, _random_standard_secret),
    "hmac": Scheme("HMAC", _hmac, _random_secret),
}


# --- options -----------------------------------------------------------------------------


NOT_HTTPS = said(_("a webhook url must start with https://"))


def _is_https(url: str) -> bool:
    # Senders deliver signed events only to https endpoints; a plain one also leaks them.
    return url.startswith("https://")


def check_options(options: Mapping[str, Any]) -> None:
    if not _is_https(str(options.get("url", ""))):
        raise OptionError(NOT_HTTPS)
    scheme = str(options.get("scheme", ""))
    if scheme not in SCHEMES:
        raise OptionError(said(_("scheme must be one of %(schemes)s"), schemes=", ".join(SCHEMES)))
    for key in ("signature_header", "signature_prefix"):
        if key in options and scheme != "hmac":
            raise OptionError(said(_("%(option)s applies only to scheme hmac"), option=key))
    header = str(options.get("signature_header", DEFAULT_SIGNATURE_HEADER))
    if not HEADER_NAME.fullmatch(header):
        raise OptionError(
            said(_("signature_header must be an HTTP header name such as X-Signature"))
        )
    prefix = str(options.get("signature_prefix", DEFAULT_SIGNATURE_PREFIX))
    if not (prefix.isascii() and prefix.isprintable()):
        raise OptionError(said(_("signature_prefix must be printable ASCII such as sha256=")))


KIND = Kind(
    name="webhook",
    required=frozenset({"url", "scheme", "secret_env"}),
    optional=frozenset({"signature_header", "signature_prefix", "ca_file"}),
    run=run,
    docs_url="https://www.twilio.com/docs/usage/webhooks/webhooks-security",
    check_options=check_options,
)
