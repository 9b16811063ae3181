"""webhook: an inbound webhook endpoint must refuse a request that carries no signature.

It POSTs a small JSON event with none of the signature headers vendors send (Twilio's
X-Twilio-Signature, OpenAI's webhook-signature, ElevenLabs-Signature; see the vendors'
signing docs, e.g. https://www.twilio.com/docs/usage/webhooks/webhooks-security and
https://platform.openai.com/docs/guides/webhooks). Status codes as in RFC 9110 §15
(https://www.rfc-editor.org/rfc/rfc9110#section-15).

Pass: 400, 401 or 403, the endpoint refused it. Permanent failures (misconfigured): a 2xx
(signature validation is off), 404/405/410 (no endpoint at this URL), a redirect (senders
post to the URL as given). Transient: 429 and 5xx, any other status (nothing can be
judged from it), and whatever `client.send` reports (timeouts, refused connections).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .base import Context, Kind, Reason, fault
from .client import http_client, send, unexpected

PROBE = {"type": "deploycheck.probe"}
REFUSED = frozenset({400, 401, 403})
ABSENT = frozenset({404, 405, 410})


def run(context: Context) -> str:
    url = context.text("url")
    problem = _https_problem(url)
    if problem:
        raise fault(Reason.MISCONFIGURED, problem)
    with http_client(ca_file=context.text("ca_file")) as client:
        response = send(client, "POST", url, json=PROBE)
    status = response.status_code
    if status in REFUSED:
        return f"refuses an unsigned request (HTTP {status})"
    if 200 <= status < 300:
        raise fault(
            Reason.MISCONFIGURED,
            f"accepted an unsigned request: signature validation is off (HTTP {status})",
        )
    if status in ABSENT:
        raise fault(
            Reason.MISCONFIGURED, f"no webhook endpoint answers at this URL (HTTP {status})"
        )
    if 300 <= status < 400:
        host = response.url.join(response.headers.get("location", "")).host
        raise fault(
            Reason.MISCONFIGURED,
            f"HTTP {status} redirect to {host}: senders post to the URL as given",
        )
    raise unexpected(response, "webhook probe")


def _https_problem(url: str) -> str:
    # Senders deliver signed events only to https endpoints; a plain one also leaks them.
    if not url.startswith("https://"):
        return "a webhook url must start with https://"
    return ""


def check_options(options: Mapping[str, Any]) -> None:
    problem = _https_problem(str(options.get("url", "")))
    if problem:
        raise ValueError(problem)


KIND = Kind(
    name="webhook",
    required=frozenset({"url"}),
    optional=frozenset({"ca_file"}),
    run=run,
    docs_url="https://www.twilio.com/docs/usage/webhooks/webhooks-security",
    check_options=check_options,
)
