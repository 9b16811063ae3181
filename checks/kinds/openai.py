"""OpenAI: the key is accepted and every model the app uses is available to it.

API: https://platform.openai.com/docs/api-reference/models

Permanent failures: the key refused (401: invalid or missing key, wrong organization or
project, an address outside the project's allowlist), the request refused by region
(403), a configured model unknown or not available to the key (404 model_not_found),
the billing quota exhausted (429 insufficient_quota), and any error the server marks
`x-should-retry: false`.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import httpx

from .base import Context, Kind, Reason, fault, transient
from .client import http_client, send, unexpected
from .vendor_errors import api_url, error_body, json_object, mapping, plural, string

PRODUCTION = "https://api.openai.com"
VERSION = "v1"


def run(context: Context) -> str:
    key = context.secret("secret_env")
    models = context.texts("models")
    base = api_url(context.text("base_url"), PRODUCTION, VERSION)
    headers = {"Authorization": f"Bearer {key}"}
    with http_client(base_url=base, ca_file=context.text("ca_file"), headers=headers) as client:
        listing = _get(client, "/models", "model list")
        data = listing.get("data")
        if not isinstance(data, list):
            raise transient(Reason.BAD_RESPONSE, "model list: HTTP 200 without a data list")
        for model in models:
            _get(client, f"/models/{quote(model, safe=':')}", f"model {model}", model)
    summary = f"key accepted; {plural(len(data), 'model')} listed"
    return f"{summary}; models {', '.join(models)} available" if models else summary


def _get(client: httpx.Client, path: str, what: str, model: str = "") -> dict[str, Any]:
    response = send(client, "GET", path)
    if response.status_code != 200:
        raise _refused(response, what, model)
    return json_object(response, what)


def _refused(response: httpx.Response, what: str, model: str) -> Exception:
    status = response.status_code
    error = mapping(error_body(response), "error")
    code = string(error, "code")
    if status == 401:
        return fault(
            Reason.AUTH_FAILED, f"{what}: the key was refused (HTTP 401 {code or 'no code'})"
        )
    if status == 403:
        return fault(
            Reason.AUTH_FAILED,
            f"{what}: HTTP 403, OpenAI refuses this key from here (unsupported country or region)",
        )
    if status == 404 and model:
        return fault(
            Reason.MISCONFIGURED,
            f"model {model} does not exist or this key has no access to it "
            f"(HTTP 404 {code or 'no code'})",
        )
    if status == 404:
        return fault(Reason.MISCONFIGURED, f"{what}: HTTP 404, the base URL serves no OpenAI API")
    # Billing quota answers 429 like a rate limit, but waiting never refills it.
    if status == 429 and "insufficient_quota" in (code, string(error, "type")):
        return fault(
            Reason.QUOTA_EXHAUSTED,
            f"{what}: quota exhausted (HTTP 429 insufficient_quota): check the plan and billing",
        )
    return unexpected(response, what)


KIND = Kind(
    name="openai",
    required=frozenset({"secret_env"}),
    optional=frozenset({"models", "base_url", "ca_file"}),
    run=run,
    docs_url="https://platform.openai.com/docs/api-reference/models",
)
