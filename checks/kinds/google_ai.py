"""Google AI (Gemini API): the key is accepted and every model the app uses resolves.

API: https://ai.google.dev/api/models

The key travels in the x-goog-api-key header, never as ?key=, which ends up in logs.

Permanent failures: an invalid key, which Google answers with HTTP 400 and the ErrorInfo
reason API_KEY_INVALID (not 401); any other 400, such as FAILED_PRECONDITION when billing
or the country prevents use; a key without permission (403 PERMISSION_DENIED); and an
unknown model (404).
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import quote

import httpx

from .base import Context, Kind, Reason, fault, transient
from .client import http_client, retry_after, send, unexpected
from .vendor_errors import api_url, error_body, json_object, mapping, string

PRODUCTION = "https://generativelanguage.googleapis.com"
VERSION = "v1beta"
# A protobuf Duration in its JSON form: "38s", "57.238747106s".
DURATION = re.compile(r"(\d+(?:\.\d+)?)s")


def run(context: Context) -> str:
    key = context.secret("secret_env")
    models = [name.removeprefix("models/") for name in context.texts("models")]
    base = api_url(context.text("base_url"), PRODUCTION, VERSION)
    headers = {"x-goog-api-key": key}
    with http_client(base_url=base, ca_file=context.text("ca_file"), headers=headers) as client:
        if not models:
            listing = _get(client, "/models", "model list", params={"pageSize": "1"})
            if not isinstance(listing.get("models"), list):
                raise transient(Reason.BAD_RESPONSE, "model list: HTTP 200 without a models list")
            return "key accepted; model list readable"
        without_generate = []
        for model in models:
            found = _get(client, f"/models/{quote(model, safe='')}", f"model {model}", model=model)
            methods = found.get("supportedGenerationMethods")
            if not isinstance(methods, list) or "generateContent" not in methods:
                without_generate.append(model)
    summary = f"key accepted; models {', '.join(models)} available"
    if without_generate:
        # Embedding models legitimately lack it, so this is a note and not a failure.
        return f"{summary}; generateContent not supported by {', '.join(without_generate)}"
    return f"{summary}, all with generateContent"


def _get(
    client: httpx.Client,
    path: str,
    what: str,
    *,
    model: str = "",
    params: dict[str, str] | None = None,
) -> dict[str, Any]:
    response = send(client, "GET", path, params=params)
    if response.status_code != 200:
        raise _refused(response, what, model)
    return json_object(response, what)


def _refused(response: httpx.Response, what: str, model: str) -> Exception:
    status = response.status_code
    error = mapping(error_body(response), "error")
    rpc_status = string(error, "status") or "no status"
    details = [d for d in _list(error.get("details")) if isinstance(d, dict)]
    if status == 400 and any(d.get("reason") == "API_KEY_INVALID" for d in details):
        return fault(
            Reason.AUTH_FAILED, f"{what}: the API key is not valid (HTTP 400 API_KEY_INVALID)"
        )
    if status == 400:
        reason = f"HTTP 400 {rpc_status}"
        if rpc_status == "FAILED_PRECONDITION":
            reason += ": billing or the country or region prevents use of the API"
        return fault(Reason.MISCONFIGURED, f"{what}: {reason}")
    if status == 403:
        return fault(
            Reason.AUTH_FAILED, f"{what}: the key lacks permission (HTTP 403 {rpc_status})"
        )
    if status == 404 and model:
        return fault(Reason.MISCONFIGURED, f"unknown model {model} (HTTP 404 {rpc_status})")
    if status == 404:
        return fault(Reason.MISCONFIGURED, f"{what}: HTTP 404, the base URL serves no Gemini API")
    if status == 429:
        wait = _retry_delay(details)
        return transient(
            Reason.RATE_LIMITED,
            f"{what}: HTTP 429 {rpc_status}",
            retry_after(response) if wait is None else wait,
        )
    return unexpected(response, what)


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _retry_delay(details: list[dict[str, Any]]) -> float | None:
    for detail in details:
        if string(detail, "@type").endswith("google.rpc.RetryInfo"):
            matched = DURATION.fullmatch(string(detail, "retryDelay"))
            if matched:
                return float(matched.group(1))
    return None


KIND = Kind(
    name="google_ai",
    required=frozenset({"secret_env"}),
    optional=frozenset({"models", "base_url", "ca_file"}),
    run=run,
    docs_url="https://ai.google.dev/api/models",
)
