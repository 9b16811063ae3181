"""OpenAI: the key can make the calls the app makes, on every model it uses, and billing
pays for them.

API: https://developers.openai.com/api/reference/resources/chat/subresources/completions/methods/create
Responses: https://developers.openai.com/api/reference/resources/responses/methods/create
Embeddings: https://developers.openai.com/api/reference/resources/embeddings/methods/create
Models: https://developers.openai.com/api/reference/resources/models/methods/retrieve
Errors: https://developers.openai.com/api/docs/guides/error-codes

Listing models proves only the key: a key whose billing is dead keeps listing them, and
billing shows on generation alone. So each configured model gets the cheapest generation
it accepts, of the fixed prompt "ping" (never anything of the app's users), about one
token per model per run:
- a chat model: `POST /chat/completions` with `max_completion_tokens: 1`, the budget
  every chat model takes (reasoning models, the o-series and the gpt-5 family, refuse
  `max_tokens`), and no temperature, which some reasoning models refuse. A model that
  refuses `max_completion_tokens` (HTTP 400 naming it) is asked again with `max_tokens: 1`.
- a model served only by the Responses API (its 400 or 404 names v1/responses):
  `POST /responses` with `max_output_tokens: 16`, the documented minimum, and store off.
- an embedding model: `POST /embeddings` of the same word.
An answer of 200 is the proof even without text: a reasoning model spends its token
thinking and answers finish_reason `length`. Audio, image, moderation and realtime models
have no call that cheap: they are shown available (`GET /models/{id}`) while the others
prove billing, and without another model the check does not pass. `probe = false` reads
the model list alone, and the evidence says billing was not verified.

Permanent failures: the key refused (401: invalid or missing key, wrong organization or
project, an address outside the project's allowlist); the request refused by region
(403); a configured model unknown or not available to the key (404 model_not_found) or
not served by its endpoint; billing that refuses the call (429 insufficient_quota or
billing_not_active, never retried: waiting refills nothing); any error the server marks
`x-should-retry: false`; and, with probing on, no model named, or none that a generation
can probe.
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import quote

import httpx
from django.utils.translation import gettext_noop as _

from .base import Context, Kind, Reason, Said, fault, said, transient
from .client import http_client, send, unexpected
from .vendor_errors import api_url, error_body, json_object, mapping, no_models_to_probe, string

PRODUCTION = "https://api.openai.com"
VERSION = "v1"
# Harmless and the same on every run: a probe never carries the app's data.
PROMPT = "ping"
CHAT_BUDGET = "max_completion_tokens"
# The parameter max_completion_tokens replaced, for models that take only the old one.
LEGACY_CHAT_BUDGET = "max_tokens"
# The Responses API refuses a smaller max_output_tokens.
RESPONSES_MIN_OUTPUT = 16
EMBEDDING_MODEL = re.compile(r"embedding")
# Models whose cheapest call is not a short text generation: speech, transcription,
# images, video, moderation and realtime sessions.
NO_TEXT_PROBE = re.compile(r"whisper|tts|transcribe|audio|realtime|dall-e|image|sora|moderation")
# Billing answers 429 like a rate limit, but waiting never refills it.
BILLING_REFUSED = frozenset({"insufficient_quota", "billing_not_active"})


def run(context: Context) -> Said:
    key = context.secret("secret_env")
    models = context.texts("models")
    probe = context.options.get("probe", True) is not False
    if probe and not models:
        raise no_models_to_probe()
    base = api_url(context.text("base_url"), PRODUCTION, VERSION)
    headers = {"Authorization": f"Bearer {key}"}
    with http_client(base_url=base, ca_file=context.text("ca_file"), headers=headers) as client:
        if not probe:
            return _listing(client, models)
        probed: list[str] = []
        available: list[str] = []
        for model in models:
            if NO_TEXT_PROBE.search(_family(model)):
                _get(client, _model_path(model), model)
                available.append(model)
            else:
                probed.append(_probe(client, model))
    if not probed:
        raise fault(
            Reason.MISCONFIGURED,
            said(
                _(
                    "billing not verified: no text generation can probe %(models)s; add a "
                    "text or embedding model the app calls, or set probe = false"
                ),
                models=", ".join(available),
            ),
        )
    if available:
        return said(
            _(
                "key accepted; billing verified by a minimal generation on %(probed)s; "
                "available without a generation: %(available)s"
            ),
            probed="; ".join(probed),
            available=", ".join(available),
        )
    return said(
        _("key accepted; billing verified by a minimal generation on %(probed)s"),
        probed="; ".join(probed),
    )


def _family(model: str) -> str:
    # A fine-tuned model is named ft:<base>:<org>:<suffix>:<id>; its base says what it does.
    return model.removeprefix("ft:").split(":", 1)[0]


def _model_path(model: str) -> str:
    return f"/models/{quote(model, safe=':')}"


def _listing(client: httpx.Client, models: list[str]) -> Said:
    listing = _get(client, "/models")
    data = listing.get("data")
    if not isinstance(data, list):
        raise transient(
            Reason.BAD_RESPONSE,
            said(_("%(endpoint)s: HTTP 200 without a data list"), endpoint="models"),
        )
    for model in models:
        _get(client, _model_path(model), model)
    if models:
        return said(
            _(
                "key accepted; models listed: %(count)s; available: %(models)s; billing not "
                "verified (probe = false)"
            ),
            count=len(data),
            models=", ".join(models),
        )
    return said(
        _("key accepted; models listed: %(count)s; billing not verified (probe = false)"),
        count=len(data),
    )


def _get(client: httpx.Client, path: str, model: str = "") -> dict[str, Any]:
    endpoint = path.lstrip("/")
    return _answer(send(client, "GET", path), endpoint, model)


def _answer(response: httpx.Response, endpoint: str, model: str) -> dict[str, Any]:
    if response.status_code != 200:
        raise _refused(response, endpoint, model)
    return json_object(response, endpoint)


def _probe(client: httpx.Client, model: str) -> str:
    """The cheapest generation the model accepts; what it answered, in vendor words."""
    if EMBEDDING_MODEL.search(_family(model)):
        # base64 keeps the answer a few hundred bytes instead of a list of floats.
        body = {"model": model, "input": PROMPT, "encoding_format": "base64"}
        data = _answer(send(client, "POST", "/embeddings", json=body), "embeddings", model)
        _require_list(data, "data", "embeddings")
        return f"{model} (embeddings)"
    response = _chat(client, model, CHAT_BUDGET)
    if _refuses_parameter(response, CHAT_BUDGET):
        response = _chat(client, model, LEGACY_CHAT_BUDGET)
    if _only_in_responses(response):
        return _responses(client, model)
    data = _answer(response, "chat/completions", model)
    choices = _require_list(data, "choices", "chat/completions")
    first = choices[0] if choices and isinstance(choices[0], dict) else {}
    finish = string(first, "finish_reason")
    return f"{model} (chat/completions {finish})" if finish else f"{model} (chat/completions)"


def _chat(client: httpx.Client, model: str, budget: str) -> httpx.Response:
    body = {"model": model, "messages": [{"role": "user", "content": PROMPT}], budget: 1}
    return send(client, "POST", "/chat/completions", json=body)


def _responses(client: httpx.Client, model: str) -> str:
    body = {
        "model": model,
        "input": PROMPT,
        "max_output_tokens": RESPONSES_MIN_OUTPUT,
        "store": False,
    }
    data = _answer(send(client, "POST", "/responses", json=body), "responses", model)
    status = string(data, "status")
    if not status:
        raise transient(
            Reason.BAD_RESPONSE,
            said(_("%(endpoint)s: HTTP 200 without a status"), endpoint="responses"),
        )
    # "incomplete" with reason max_output_tokens is the expected answer to so small a budget.
    return f"{model} (responses {status})"


def _require_list(data: dict[str, Any], field: str, endpoint: str) -> list[Any]:
    value = data.get(field)
    if not isinstance(value, list):
        raise transient(
            Reason.BAD_RESPONSE,
            said(
                _("%(endpoint)s: HTTP 200 without a %(field)s list"), endpoint=endpoint, field=field
            ),
        )
    return value


def _error(response: httpx.Response) -> dict[str, Any]:
    return mapping(error_body(response), "error")


def _refuses_parameter(response: httpx.Response, parameter: str) -> bool:
    return response.status_code == 400 and string(_error(response), "param") == parameter


def _only_in_responses(response: httpx.Response) -> bool:
    # "This model is only supported in v1/responses and not in v1/chat/completions."
    error = _error(response)
    return (
        response.status_code in (400, 404)
        and string(error, "code") != "model_not_found"
        and "v1/responses" in string(error, "message")
    )


def _refused(response: httpx.Response, endpoint: str, model: str) -> Exception:
    status = response.status_code
    error = _error(response)
    code = string(error, "code")
    shown_code: str | Said = code or said(_("no code"))
    if status == 401:
        return fault(
            Reason.AUTH_FAILED,
            said(
                _("%(endpoint)s: the key was refused (HTTP 401 %(code)s)"),
                endpoint=endpoint,
                code=shown_code,
            ),
        )
    if status == 403:
        return fault(
            Reason.AUTH_FAILED,
            said(
                _(
                    "%(endpoint)s: HTTP 403, OpenAI refuses this key from here (unsupported "
                    "country or region)"
                ),
                endpoint=endpoint,
            ),
        )
    if status == 404 and model and code == "model_not_found":
        return fault(
            Reason.MISCONFIGURED,
            said(
                _(
                    "model %(model)s does not exist or this key has no access to it "
                    "(HTTP 404 %(code)s)"
                ),
                model=model,
                code=code,
            ),
        )
    if status == 404 and model:
        return fault(
            Reason.MISCONFIGURED,
            said(
                _("model %(model)s is not served by %(endpoint)s (HTTP 404 %(code)s)"),
                model=model,
                endpoint=endpoint,
                code=shown_code,
            ),
        )
    if status == 404:
        return fault(
            Reason.MISCONFIGURED,
            said(_("%(endpoint)s: HTTP 404, the base URL serves no OpenAI API"), endpoint=endpoint),
        )
    refusal = next((word for word in (code, string(error, "type")) if word in BILLING_REFUSED), "")
    if status == 429 and refusal:
        return fault(
            Reason.QUOTA_EXHAUSTED,
            said(
                _(
                    "%(endpoint)s: billing refused the call (HTTP 429 %(code)s): check the "
                    "plan and billing"
                ),
                endpoint=endpoint,
                code=refusal,
            ),
        )
    return unexpected(response, f"{endpoint} {model}" if model else endpoint)


KIND = Kind(
    name="openai",
    required=frozenset({"secret_env"}),
    optional=frozenset({"models", "probe", "base_url", "ca_file"}),
    run=run,
    docs_url="https://developers.openai.com/api/reference/resources/chat/subresources/completions/methods/create",
)
