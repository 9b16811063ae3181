"""Google AI (Gemini API): the key can make the calls the app makes, on every model it
uses, within a quota that lasts.

Models: https://ai.google.dev/api/models#method:-models.get
Generation: https://ai.google.dev/api/generate-content#method:-models.generatecontent
Embeddings: https://ai.google.dev/api/embeddings#method:-models.embedcontent
Tuned models: https://ai.google.dev/api/tuning
Errors: https://ai.google.dev/gemini-api/docs/troubleshooting
Quotas: https://ai.google.dev/gemini-api/docs/rate-limits

The key travels in the x-goog-api-key header, never as ?key=, which ends up in logs.

Each configured model is read (`GET v1beta/models/{m}`, or `v1beta/tunedModels/{id}` for
a tuned model) and must support the configured `method` (`generateContent` unless set):
its `supportedGenerationMethods` name it, or, for a tuned model, it is ACTIVE and the
method is one a tuned model serves. Reading a model proves neither billing nor quota:
both show on generation alone. So each model then gets the cheapest call of that method,
of the fixed prompt "ping" (never anything of the app's users): `generateContent` with
`generationConfig.maxOutputTokens: 1`, or `embedContent` of the word; about one token per
model per run. No thinking configuration is sent, as the models differ in what they take;
a thinking model that spends the token thinking answers 200 with finishReason MAX_TOKENS
and no parts, and that answer is the proof. `probe = false` reads the models alone, and
the evidence says billing was not verified.

Permanent failures: an invalid key, which Google answers with HTTP 400 and the ErrorInfo
reason API_KEY_INVALID (not 401); any other 400, such as FAILED_PRECONDITION when billing
or the country prevents use; a key without permission (403 PERMISSION_DENIED); an
unknown model (404); a model without the configured method, or a tuned model not ACTIVE;
an exhausted quota that will not come back within the check's retries (429
RESOURCE_EXHAUSTED whose QuotaFailure names a daily or free-tier quota, or whose
RetryInfo delay outlasts the retries); and, with probing on, no model named or a method
that cannot be probed. A per-minute quota is retried after its RetryInfo delay.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote

import httpx
from django.conf import settings
from django.utils.translation import gettext_noop as _

from .base import (
    MAX_RETRY_DELAY,
    Context,
    Kind,
    OptionError,
    Reason,
    Said,
    fault,
    said,
    transient,
)
from .client import http_client, retry_after, send, unexpected
from .vendor_errors import api_url, error_body, json_object, mapping, no_models_to_probe, string

PRODUCTION = "https://generativelanguage.googleapis.com"
VERSION = "v1beta"
# A protobuf Duration in its JSON form: "38s", "57.238747106s".
DURATION = re.compile(r"(\d+(?:\.\d+)?)s")
GENERATE = "generateContent"
# Harmless and the same on every run: a probe never carries the app's data.
PROMPT = "ping"
# The cheapest request of each method a probe knows: one output token for a generation.
PROBES: dict[str, dict[str, Any]] = {
    GENERATE: {
        "contents": [{"role": "user", "parts": [{"text": PROMPT}]}],
        "generationConfig": {"maxOutputTokens": 1},
    },
    "embedContent": {"content": {"parts": [{"text": PROMPT}]}},
}
TUNED = "tunedModels/"
# The generation methods of a tuned model (a TunedModel lists none itself).
TUNED_METHODS = frozenset({GENERATE, "streamGenerateContent"})
# Quota ids such as GenerateRequestsPerDayPerProjectPerModel-FreeTier: a daily quota resets
# at midnight, and a free-tier one means the project has no billing.
LASTING_QUOTA = re.compile(r"PerDay|FreeTier", re.IGNORECASE)


def run(context: Context) -> Said:
    key = context.secret("secret_env")
    models = [_resource(name) for name in context.texts("models")]
    method = context.text("method") or GENERATE
    probe = context.options.get("probe", True) is not False
    if probe and method not in PROBES:
        raise fault(Reason.MISCONFIGURED, _unprobed_method(method))
    if probe and not models:
        raise no_models_to_probe()
    base = api_url(context.text("base_url"), PRODUCTION, VERSION)
    headers = {"x-goog-api-key": key}
    with http_client(base_url=base, ca_file=context.text("ca_file"), headers=headers) as client:
        if not models:
            listing = _get(client, "/models", "models", params={"pageSize": "1"})
            if not isinstance(listing.get("models"), list):
                raise transient(
                    Reason.BAD_RESPONSE,
                    said(_("%(what)s: HTTP 200 without a models list"), what="models"),
                )
            return said(
                _("key accepted; model list readable; billing not verified (probe = false)")
            )
        answers = []
        for resource in models:
            _resolve(client, resource, method)
            if probe:
                answers.append(_probe(client, resource, method))
    if not probe:
        return said(
            _(
                "key accepted; models %(models)s available with %(method)s; billing not "
                "verified (probe = false)"
            ),
            models=", ".join(_shown(resource) for resource in models),
            method=method,
        )
    return said(
        _("key accepted; billing verified by a minimal %(method)s on each model: %(answers)s"),
        method=method,
        answers="; ".join(answers),
    )


def _unprobed_method(method: str) -> Said:
    return said(
        _(
            "method %(method)s cannot be probed: use one of %(probed)s, or set probe = false "
            "to check the models alone (billing is then not verified)"
        ),
        method=method,
        probed=", ".join(PROBES),
    )


def check_options(options: Mapping[str, Any]) -> None:
    method = options.get("method") or GENERATE
    if options.get("probe", True) is not False and method not in PROBES:
        raise OptionError(_unprobed_method(str(method)))


def _resource(name: str) -> str:
    """The model's resource name: models/{m} or tunedModels/{id}, as configured or with
    models/ added to a bare name."""
    name = name.strip()
    return name if name.startswith(("models/", TUNED)) else f"models/{name}"


def _shown(resource: str) -> str:
    return resource.removeprefix("models/")


def _path(resource: str) -> str:
    collection, _slash, ident = resource.partition("/")
    return f"/{collection}/{quote(ident, safe='')}"


def _resolve(client: httpx.Client, resource: str, method: str) -> None:
    """Fail unless the model exists and serves `method`."""
    shown = _shown(resource)
    found = _get(client, _path(resource), resource, model=shown)
    if resource.startswith(TUNED):
        state = string(found, "state")
        if state and state != "ACTIVE":
            raise fault(
                Reason.MISCONFIGURED,
                said(_("tuned model %(model)s is %(state)s, not ACTIVE"), model=shown, state=state),
            )
        if method not in TUNED_METHODS:
            raise fault(
                Reason.MISCONFIGURED,
                said(
                    _("tuned model %(model)s does not support %(method)s, only %(methods)s"),
                    model=shown,
                    method=method,
                    methods=", ".join(sorted(TUNED_METHODS)),
                ),
            )
        return
    methods = found.get("supportedGenerationMethods")
    if not isinstance(methods, list):
        raise transient(
            Reason.BAD_RESPONSE,
            said(_("model %(model)s: HTTP 200 without supportedGenerationMethods"), model=shown),
        )
    if method not in methods:
        supported = ", ".join(str(name) for name in methods)
        raise fault(
            Reason.MISCONFIGURED,
            said(
                _("model %(model)s does not support %(method)s; it supports %(methods)s"),
                model=shown,
                method=method,
                methods=supported or said(_("no method")),
            ),
        )


def _probe(client: httpx.Client, resource: str, method: str) -> str:
    """The cheapest call of `method` on the model; what it answered, in vendor words."""
    shown = _shown(resource)
    what = f"{shown}:{method}"
    response = send(client, "POST", f"{_path(resource)}:{method}", json=PROBES[method])
    if response.status_code != 200:
        raise _refused(response, what, shown)
    data = json_object(response, what)
    if method != GENERATE:
        if not isinstance(data.get("embedding"), dict):
            raise transient(
                Reason.BAD_RESPONSE, said(_("%(what)s: HTTP 200 without an embedding"), what=what)
            )
        return shown
    candidates = data.get("candidates")
    if not isinstance(candidates, list) and not isinstance(data.get("usageMetadata"), dict):
        raise transient(
            Reason.BAD_RESPONSE,
            said(_("%(what)s: HTTP 200 without candidates or usage"), what=what),
        )
    first = candidates[0] if isinstance(candidates, list) and candidates else {}
    finish = string(first, "finishReason") if isinstance(first, dict) else ""
    return f"{shown} ({finish})" if finish else shown


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
    rpc_status: str | Said = string(error, "status") or said(_("no status"))
    details = [d for d in _list(error.get("details")) if isinstance(d, dict)]
    if status == 400 and any(d.get("reason") == "API_KEY_INVALID" for d in details):
        return fault(
            Reason.AUTH_FAILED,
            said(_("%(what)s: the API key is not valid (HTTP 400 API_KEY_INVALID)"), what=what),
        )
    if status == 400 and rpc_status == "FAILED_PRECONDITION":
        return fault(
            Reason.MISCONFIGURED,
            said(
                _(
                    "%(what)s: HTTP 400 FAILED_PRECONDITION: billing or the country or region "
                    "prevents use of the API"
                ),
                what=what,
            ),
        )
    if status == 400:
        return fault(
            Reason.MISCONFIGURED,
            said(_("%(what)s: HTTP 400 %(status)s"), what=what, status=rpc_status),
        )
    if status == 403:
        return fault(
            Reason.AUTH_FAILED,
            said(
                _("%(what)s: the key lacks permission (HTTP 403 %(status)s)"),
                what=what,
                status=rpc_status,
            ),
        )
    if status == 404 and model:
        return fault(
            Reason.MISCONFIGURED,
            said(
                _("unknown model %(model)s (HTTP 404 %(status)s)"), model=model, status=rpc_status
            ),
        )
    if status == 404:
        return fault(
            Reason.MISCONFIGURED,
            said(_("%(what)s: HTTP 404, the base URL serves no Gemini API"), what=what),
        )
    if status == 429:
        return _exhausted(response, details, what, rpc_status)
    return unexpected(response, what)


def _exhausted(
    response: httpx.Response, details: list[dict[str, Any]], what: str, rpc_status: str | Said
) -> Exception:
    wait = _retry_delay(details)
    if wait is None:
        wait = retry_after(response)
    lasting = next(
        (quota for quota in _violated_quotas(details) if LASTING_QUOTA.search(quota)), ""
    )
    if lasting:
        # Its RetryInfo still says seconds; the quota itself comes back tomorrow, or never
        # on a project without billing.
        return fault(
            Reason.QUOTA_EXHAUSTED,
            said(
                _(
                    "%(what)s: quota %(quota)s exhausted (HTTP 429 %(status)s): a daily or "
                    "free-tier quota does not come back within the check's retries; check the "
                    "plan and billing"
                ),
                what=what,
                quota=lasting,
                status=rpc_status,
            ),
        )
    if wait is not None and wait > _retry_window():
        return fault(
            Reason.QUOTA_EXHAUSTED,
            said(
                _(
                    "%(what)s: quota exhausted for %(seconds)s s (HTTP 429 %(status)s), longer "
                    "than the check's retries wait"
                ),
                what=what,
                seconds=round(wait),
                status=rpc_status,
            ),
        )
    return transient(
        Reason.RATE_LIMITED,
        said(_("%(what)s: HTTP 429 %(status)s"), what=what, status=rpc_status),
        wait,
    )


def _retry_window() -> float:
    """The longest wait the check's remaining attempts can span: each retry waits at most
    MAX_RETRY_DELAY, however long the server asks for."""
    return float(max(1, settings.CHECKS_MAX_ATTEMPTS - 1) * MAX_RETRY_DELAY)


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _violated_quotas(details: list[dict[str, Any]]) -> list[str]:
    return [
        string(violation, "quotaId")
        for detail in details
        if string(detail, "@type").endswith("google.rpc.QuotaFailure")
        for violation in _list(detail.get("violations"))
        if isinstance(violation, dict)
    ]


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
    optional=frozenset({"models", "method", "probe", "base_url", "ca_file"}),
    run=run,
    docs_url="https://ai.google.dev/api/generate-content#method:-models.generatecontent",
    check_options=check_options,
)
