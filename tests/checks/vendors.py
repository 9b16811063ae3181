"""Stand-in vendors for the vendor check kinds, answering as each vendor's API reference
describes: the documented success fields, each vendor's own error shapes, and the headers
it sends.

Each vendor is a small dataclass; an instance is the answer function of a stand-in:

    with stand_in(OpenAI(mode="rate_limited")) as server: ...

`mode` picks how it misbehaves. Every vendor knows "ok", "down" (its own 5xx), "garbage"
(an HTML page with 200), "silent" (no answer for SILENCE seconds) and "redirect"; the
vendor-specific modes are listed on each class. Keys, tokens and row data below are
planted: tests assert that none of them reach evidence or exception text.
"""

from __future__ import annotations

import base64
import json
import re
import time
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote, urlencode

from .standin import Reply, Seen, json_reply

SILENCE = 2.0

OPENAI_KEY = "sk-planted-openai-6f1c2a9e4b7d"
GOOGLE_KEY = "AIzaPlantedGoogle-3b8e1f0c6a2d"
ELEVENLABS_KEY = "sk_planted_elevenlabs_9d4c7e1a"
TWILIO_SID = "AC" + "0123456789abcdef" * 2
TWILIO_TOKEN = "planted-twilio-auth-token-5e2b"
TWILIO_KEY_SID = "SK" + "fedcba9876543210" * 2
TWILIO_KEY_SECRET = "planted-twilio-key-secret-8a41"
SUPABASE_KEY = "sb_secret_planted_supabase_7c1d"
SUPABASE_ANON_KEY = "sb_publishable_planted_anon_3e9a"
# Legacy JWT keys; the claims are {"role":"anon"} and {"role":"service_role"}.
SUPABASE_JWT = "eyJhbGciOiJIUzI1NiJ9.eyJyb2xlIjoiYW5vbiJ9.planted-signature"
SUPABASE_SERVICE_JWT = "eyJhbGciOiJIUzI1NiJ9.eyJyb2xlIjoic2VydmljZV9yb2xlIn0.planted-service"
GITHUB_TOKEN = "ghp_planted_github_token_4a9f"
# A value in a table row: user data, which a check must never carry into evidence.
PLANTED_ROW = "planted-row-alice@example.com"

PLANTED = (
    OPENAI_KEY,
    GOOGLE_KEY,
    ELEVENLABS_KEY,
    TWILIO_TOKEN,
    TWILIO_KEY_SECRET,
    SUPABASE_KEY,
    SUPABASE_ANON_KEY,
    SUPABASE_JWT,
    SUPABASE_SERVICE_JWT,
    GITHUB_TOKEN,
    PLANTED_ROW,
)


@dataclass
class Vendor(ABC):
    mode: str = "ok"

    def __call__(self, request: Seen) -> Reply:
        if self.mode == "garbage":
            return Reply(
                200, "<html><body>502 Bad Gateway</body></html>", {"Content-Type": "text/html"}
            )
        if self.mode == "silent":
            return Reply(delay=SILENCE)
        if self.mode == "redirect":
            return Reply(301, headers={"Location": "https://login.example.invalid/"})
        if self.mode == "down":
            return self.outage()
        return self.answer(request)

    @abstractmethod
    def answer(self, request: Seen) -> Reply: ...

    @abstractmethod
    def outage(self) -> Reply: ...


def _html(status: int, text: str) -> Reply:
    return Reply(status, f"<html><body>{text}</body></html>", {"Content-Type": "text/html"})


# OpenAI ---------------------------------------------------------------------------------


def openai_error(
    status: int,
    message: str,
    kind: str,
    code: str | None,
    param: str | None = None,
    **headers: str,
) -> Reply:
    body = {"error": {"message": message, "type": kind, "param": param, "code": code}}
    return json_reply(body, status, **{"x-request-id": "req_7f3a9c2e", **headers})


# The o-series and the gpt-5 family: they refuse max_tokens and spend a small budget on
# reasoning before any text.
OPENAI_REASONING = re.compile(r"^(o\d|gpt-5)")
OPENAI_EMBEDDING = re.compile(r"embedding")
OPENAI_RESPONSES_MINIMUM = 16


@dataclass
class OpenAI(Vendor):
    """Modes: rate_limited (429 rate_limit_exceeded with `limit_headers`, on any request),
    region (403), and on generation alone, the model list answering 200 as it does for a
    key whose billing is dead: quota (429 insufficient_quota), inactive (429
    billing_not_active). `responses_only` models refuse chat/completions with a 404 that
    points at v1/responses; `legacy_budget` models refuse max_completion_tokens."""

    key: str = OPENAI_KEY
    models: tuple[str, ...] = (
        "gpt-4o-mini",
        "o3-mini",
        "o1-pro",
        "whisper-1",
        "text-embedding-3-small",
    )
    responses_only: tuple[str, ...] = ("o1-pro",)
    legacy_budget: tuple[str, ...] = ()
    limit_headers: dict[str, str] = field(default_factory=dict)

    def answer(self, request: Seen) -> Reply:
        presented = request.header("authorization").removeprefix("Bearer ")
        if presented != self.key:
            return openai_error(
                401,
                f"Incorrect API key provided: {presented[:6]}***{presented[-4:]}. You can find "
                "your API key at https://platform.openai.com/account/api-keys.",
                "invalid_request_error",
                "invalid_api_key",
            )
        if self.mode == "region":
            return openai_error(
                403,
                "Country, region, or territory not supported",
                "request_forbidden",
                "unsupported_country_region_territory",
            )
        if self.mode == "rate_limited":
            return openai_error(
                429,
                "Rate limit reached for requests in organization org-planted on requests per "
                "min (RPM): Limit 3, Used 3, Requested 1. Please try again in 20s.",
                "requests",
                "rate_limit_exceeded",
                **{
                    "x-ratelimit-limit-requests": "3",
                    "x-ratelimit-remaining-requests": "0",
                    "x-ratelimit-reset-requests": "20s",
                    **self.limit_headers,
                },
            )
        if request.method == "POST":
            return self._generation(request)
        if request.path == "/v1/models":
            data = [self._model(name) for name in self.models]
            return json_reply({"object": "list", "data": data}, 200, **{"x-request-id": "req_1"})
        name = unquote(request.path.removeprefix("/v1/models/"))
        if request.path.startswith("/v1/models/") and name in self.models:
            return json_reply(self._model(name), 200, **{"x-request-id": "req_2"})
        if request.path.startswith("/v1/models/"):
            return self._unknown(name)
        return openai_error(404, f"Invalid URL (GET {request.path})", "invalid_request_error", None)

    def _generation(self, request: Seen) -> Reply:
        body = json.loads(request.body)
        model = body.get("model", "")
        if model not in self.models:
            return self._unknown(model)
        if self.mode == "quota":
            return openai_error(
                429,
                "You exceeded your current quota, please check your plan and billing details. "
                "For more information on this error, read the docs: "
                "https://platform.openai.com/docs/guides/error-codes/api-errors.",
                "insufficient_quota",
                "insufficient_quota",
            )
        if self.mode == "inactive":
            return openai_error(
                429,
                "Your account is not active, please check your billing details on our website.",
                "billing_not_active",
                "billing_not_active",
            )
        if request.path == "/v1/chat/completions":
            return self._chat(model, body)
        if request.path == "/v1/responses":
            return self._responses(model, body)
        if request.path == "/v1/embeddings" and OPENAI_EMBEDDING.search(model):
            vector = base64.b64encode(b"\x00\x00\x80?" * 4).decode()
            data = [{"object": "embedding", "index": 0, "embedding": vector}]
            usage = {"prompt_tokens": 1, "total_tokens": 1}
            return json_reply({"object": "list", "data": data, "model": model, "usage": usage})
        return openai_error(
            404, f"Invalid URL (POST {request.path})", "invalid_request_error", None
        )

    def _chat(self, model: str, body: dict[str, Any]) -> Reply:
        if model in self.responses_only:
            return openai_error(
                404,
                "This model is only supported in v1/responses and not in v1/chat/completions.",
                "invalid_request_error",
                None,
                "model",
            )
        if OPENAI_EMBEDDING.search(model) or model == "whisper-1":
            return openai_error(
                404,
                "This is not a chat model and thus not supported in the v1/chat/completions "
                "endpoint. Did you mean to use v1/completions?",
                "invalid_request_error",
                None,
                "model",
            )
        reasoning = OPENAI_REASONING.match(model) is not None
        for refused, instead, refuses in (
            ("max_tokens", "max_completion_tokens", reasoning),
            ("max_completion_tokens", "max_tokens", model in self.legacy_budget),
        ):
            if refuses and refused in body:
                return openai_error(
                    400,
                    f"Unsupported parameter: '{refused}' is not supported with this model. "
                    f"Use '{instead}' instead.",
                    "invalid_request_error",
                    "unsupported_parameter",
                    refused,
                )
        budget = body.get("max_completion_tokens", body.get("max_tokens"))
        tokens = budget if isinstance(budget, int) and budget < 8 else 0
        # A reasoning model thinks before it writes: a budget this small ends in thought.
        content = "" if reasoning and tokens else ("Po" if tokens else "Pong!")
        cut = tokens > 0
        tokens = tokens or 3
        choice = {
            "index": 0,
            "message": {"role": "assistant", "content": content, "refusal": None},
            "finish_reason": "length" if cut else "stop",
        }
        usage = {
            "prompt_tokens": 8,
            "completion_tokens": tokens,
            "total_tokens": 8 + tokens,
            "completion_tokens_details": {"reasoning_tokens": tokens if reasoning else 0},
        }
        return json_reply(
            {
                "id": "chatcmpl-planted",
                "object": "chat.completion",
                "created": 1721172741,
                "model": model,
                "choices": [choice],
                "usage": usage,
            }
        )

    def _responses(self, model: str, body: dict[str, Any]) -> Reply:
        budget = body.get("max_output_tokens")
        if isinstance(budget, int) and budget < OPENAI_RESPONSES_MINIMUM:
            return openai_error(
                400,
                "Invalid 'max_output_tokens': integer below minimum value. Expected a value "
                f">= {OPENAI_RESPONSES_MINIMUM}, but got {budget} instead.",
                "invalid_request_error",
                "integer_below_min_value",
                "max_output_tokens",
            )
        return json_reply(
            {
                "id": "resp_planted",
                "object": "response",
                "created_at": 1721172741,
                "model": model,
                "status": "incomplete",
                "incomplete_details": {"reason": "max_output_tokens"},
                "output": [{"type": "reasoning", "id": "rs_planted", "summary": []}],
                "usage": {
                    "input_tokens": 8,
                    "output_tokens": budget,
                    "output_tokens_details": {"reasoning_tokens": budget},
                    "total_tokens": 8 + (budget or 0),
                },
            }
        )

    @staticmethod
    def _unknown(name: str) -> Reply:
        return openai_error(
            404,
            f"The model `{name}` does not exist or you do not have access to it.",
            "invalid_request_error",
            "model_not_found",
        )

    def outage(self) -> Reply:
        return openai_error(
            500,
            "The server had an error while processing your request. Sorry about that!",
            "server_error",
            None,
        )

    @staticmethod
    def _model(name: str) -> dict[str, Any]:
        return {"id": name, "object": "model", "created": 1721172741, "owned_by": "system"}


# Google AI (Gemini API) -----------------------------------------------------------------


def google_error(
    status: int, rpc_status: str, message: str, details: list[dict[str, Any]] | None = None
) -> Reply:
    error: dict[str, Any] = {"code": status, "message": message, "status": rpc_status}
    if details is not None:
        error["details"] = details
    return json_reply({"error": error}, status)


GEMINI_MODELS: dict[str, list[str]] = {
    "gemini-2.5-flash": ["generateContent", "countTokens", "createCachedContent"],
    "gemini-2.0-flash": ["generateContent", "countTokens"],
    "text-embedding-004": ["embedContent"],
}
# Models that think before they answer, within maxOutputTokens.
GEMINI_THINKING = frozenset({"gemini-2.5-flash"})
# The generation methods of tunedModels (tunedModels.generateContent and its stream).
GEMINI_TUNED_METHODS = ("generateContent", "streamGenerateContent")


@dataclass
class Google(Vendor):
    """Modes: rate_limited (429 RESOURCE_EXHAUSTED on any request, its QuotaFailure naming
    `quota_id`, RetryInfo `retry_delay` unless empty, and `limit_headers`); quota (the same
    429 on generation alone, reading models answering 200 as it does when a quota is
    spent); precondition (400 FAILED_PRECONDITION); denied (403). `tuned` maps each tuned
    model's id to its state."""

    key: str = GOOGLE_KEY
    models: dict[str, list[str]] = field(default_factory=lambda: dict(GEMINI_MODELS))
    tuned: dict[str, str] = field(default_factory=lambda: {"support-bot-7": "ACTIVE"})
    quota_id: str = "GenerateRequestsPerMinutePerProjectPerModel"
    retry_delay: str = "57.2s"
    limit_headers: dict[str, str] = field(default_factory=dict)

    def answer(self, request: Seen) -> Reply:
        presented = request.header("x-goog-api-key") or request.query.get("key", [""])[0]
        if not presented:
            return google_error(
                403,
                "PERMISSION_DENIED",
                "Method doesn't allow unregistered callers (callers without established "
                "identity). Please use API Key or other form of API consumer identity to call "
                "this API.",
            )
        if presented != self.key:
            return google_error(
                400,
                "INVALID_ARGUMENT",
                "API key not valid. Please pass a valid API key.",
                [
                    {
                        "@type": "type.googleapis.com/google.rpc.ErrorInfo",
                        "reason": "API_KEY_INVALID",
                        "domain": "googleapis.com",
                        "metadata": {"service": "generativelanguage.googleapis.com"},
                    },
                    {
                        "@type": "type.googleapis.com/google.rpc.LocalizedMessage",
                        "locale": "en-US",
                        "message": "API key not valid. Please pass a valid API key.",
                    },
                ],
            )
        if self.mode == "denied":
            return google_error(
                403, "PERMISSION_DENIED", "Your API key doesn't have the required permissions."
            )
        if self.mode == "precondition":
            return google_error(
                400, "FAILED_PRECONDITION", "User location is not supported for the API use."
            )
        if self.mode == "rate_limited" or (self.mode == "quota" and request.method == "POST"):
            return self._exhausted()
        if request.path == "/v1beta/models":
            size = int(request.query.get("pageSize", ["50"])[0])
            names = list(self.models)
            body: dict[str, Any] = {"models": [self._model(n) for n in names[:size]]}
            if len(names) > size:
                body["nextPageToken"] = "Chxtb2RlbHMvZ2VtaW5pLTIuNS1mbGFzaA"
            return json_reply(body)
        collection, _slash, rest = request.path.removeprefix("/v1beta/").partition("/")
        name, _colon, method = unquote(rest).partition(":")
        methods = (
            list(GEMINI_TUNED_METHODS)
            if collection == "tunedModels" and name in self.tuned
            else self.models.get(name, [])
            if collection == "models"
            else []
        )
        if not methods or (method and method not in methods):
            return google_error(
                404,
                "NOT_FOUND",
                f"{collection}/{name} is not found for API version v1beta, or is not "
                f"supported for {method or 'generateContent'}. Call ListModels to see the list "
                "of available models and their supported methods.",
            )
        if request.method == "POST" and method == "embedContent":
            return json_reply({"embedding": {"values": [0.0131, -0.0082, 0.0217]}})
        if request.method == "POST":
            return self._generated(name, json.loads(request.body))
        if collection == "tunedModels":
            return json_reply(self._tuned(name))
        return json_reply(self._model(name))

    def outage(self) -> Reply:
        return google_error(503, "UNAVAILABLE", "The model is overloaded. Please try again later.")

    def _generated(self, name: str, body: dict[str, Any]) -> Reply:
        budget = body.get("generationConfig", {}).get("maxOutputTokens")
        cut = isinstance(budget, int) and budget < 8
        thoughts = budget if cut and name in GEMINI_THINKING else 0
        # A thinking model that spends its whole budget thinking answers with no parts.
        content: dict[str, Any] = (
            {"role": "model"} if thoughts else {"role": "model", "parts": [{"text": "Pong"}]}
        )
        usage: dict[str, Any] = {"promptTokenCount": 2, "totalTokenCount": 2 + (budget or 4)}
        if thoughts:
            usage["thoughtsTokenCount"] = thoughts
        else:
            usage["candidatesTokenCount"] = budget or 4
        candidate = {
            "content": content,
            "finishReason": "MAX_TOKENS" if cut else "STOP",
            "index": 0,
        }
        return json_reply(
            {
                "candidates": [candidate],
                "usageMetadata": usage,
                "modelVersion": name,
                "responseId": "Dj9LaPCjJsCvgLUPgeGuqAU",
            }
        )

    def _exhausted(self) -> Reply:
        details: list[dict[str, Any]] = [
            {
                "@type": "type.googleapis.com/google.rpc.QuotaFailure",
                "violations": [
                    {
                        "quotaMetric": "generativelanguage.googleapis.com/generate_requests",
                        "quotaId": self.quota_id,
                        "quotaDimensions": {"location": "global", "model": "gemini-2.5-flash"},
                    }
                ],
            },
            {
                "@type": "type.googleapis.com/google.rpc.Help",
                "links": [{"description": "Learn more", "url": "https://ai.google.dev/"}],
            },
        ]
        if self.retry_delay:
            details.append(
                {
                    "@type": "type.googleapis.com/google.rpc.RetryInfo",
                    "retryDelay": self.retry_delay,
                }
            )
        reply = google_error(
            429,
            "RESOURCE_EXHAUSTED",
            "You exceeded your current quota, please check your plan and billing details.",
            details,
        )
        return Reply(reply.status, reply.body, {**reply.headers, **self.limit_headers})

    def _model(self, name: str) -> dict[str, Any]:
        return {
            "name": f"models/{name}",
            "version": "001",
            "displayName": name.replace("-", " ").title(),
            "inputTokenLimit": 1048576,
            "outputTokenLimit": 65536,
            "supportedGenerationMethods": self.models[name],
            "temperature": 1,
            "topP": 0.95,
            "topK": 64,
            "maxTemperature": 2,
            "thinking": name in GEMINI_THINKING,
        }

    def _tuned(self, name: str) -> dict[str, Any]:
        return {
            "name": f"tunedModels/{name}",
            "displayName": name,
            "state": self.tuned[name],
            "baseModel": "models/gemini-1.5-flash-001-tuning",
            "createTime": "2026-07-01T09:00:00.000000Z",
            "updateTime": "2026-07-01T09:40:00.000000Z",
            "temperature": 1,
            "topP": 0.95,
            "topK": 64,
        }


# ElevenLabs -----------------------------------------------------------------------------


@dataclass
class ElevenLabs(Vendor):
    """Modes: busy (429 with `busy_code`), quota (401 quota_exceeded), invalid (422 with
    a FastAPI list detail). `legacy_errors` answers the older {status, message} detail;
    otherwise the documented one with type, code, status, request_id.

    Usage-based billing, as GET /v1/user/subscription documents it: `can_extend` is the
    workspace's entitlement, `credit_extension` the admin's cap past the limit (0 off,
    "unlimited" no cap; None leaves the field out, as older answers do), and
    `allowed_to_extend` / `character_extension` the deprecated pair."""

    key: str = ELEVENLABS_KEY
    permissions: frozenset[str] = frozenset({"user_read", "voices_read"})
    status: str = "active"
    tier: str = "creator"
    character_limit: int = 100000
    character_count: int = 25000
    can_extend: bool = False
    credit_extension: int | str | None = 0
    allowed_to_extend: bool = False
    character_extension: int | None = 0
    voices: dict[str, str] = field(default_factory=lambda: {"21m00Tcm4TlvDq8ikWAM": "Rachel"})
    voice_missing_status: int = 400
    voice_missing_code: str = "voice_not_found"
    busy_code: str = "too_many_concurrent_requests"
    legacy_errors: bool = True
    limit_headers: dict[str, str] = field(default_factory=dict)

    def answer(self, request: Seen) -> Reply:
        if request.header("xi-api-key") != self.key:
            return self._error(401, "invalid_api_key", "Invalid API key")
        if self.mode == "busy":
            return self._error(
                429, self.busy_code, "Too many concurrent requests.", **self.limit_headers
            )
        if self.mode == "quota":
            return self._error(
                401, "quota_exceeded", "You have insufficient quota to complete this request"
            )
        if self.mode == "invalid":
            detail = [{"loc": ["path", "voice_id"], "msg": "field required", "type": "missing"}]
            return json_reply({"detail": detail}, 422)
        if request.path == "/v1/user/subscription":
            return self._need("user_read") or json_reply(self._subscription())
        if request.path.startswith("/v1/voices/"):
            voice_id = unquote(request.path.removeprefix("/v1/voices/"))
            missing = self._need("voices_read")
            if missing:
                return missing
            if voice_id not in self.voices:
                return self._error(
                    self.voice_missing_status,
                    self.voice_missing_code,
                    f"A voice with voice_id {voice_id} does not exist.",
                )
            return json_reply(self._voice(voice_id))
        return json_reply({"detail": "Not Found"}, 404)

    def outage(self) -> Reply:
        return self._error(500, "internal_error", "An internal server error occurred.")

    def _need(self, permission: str) -> Reply | None:
        if permission in self.permissions:
            return None
        return self._error(
            401,
            "missing_permissions",
            f"The API key you used is missing the permission {permission} to execute this "
            "operation.",
        )

    def _error(self, status: int, code: str, message: str, **headers: str) -> Reply:
        detail: dict[str, Any] = {"status": code, "message": message}
        if not self.legacy_errors:
            detail = {
                "type": "authorization_error" if status == 401 else "request_error",
                "code": code,
                "message": message,
                "status": code,
                "request_id": "3c807fc4c3a1705f9638ecc764a91c01",
                "param": None,
            }
        return json_reply({"detail": detail}, status, **headers)

    def _subscription(self) -> dict[str, Any]:
        extension = (
            {}
            if self.credit_extension is None
            else {"max_credit_limit_extension": self.credit_extension}
        )
        return {
            "tier": self.tier,
            "character_count": self.character_count,
            "character_limit": self.character_limit,
            "max_character_limit_extension": self.character_extension,
            **extension,
            "can_extend_character_limit": self.can_extend,
            "allowed_to_extend_character_limit": self.allowed_to_extend,
            "next_character_count_reset_unix": 1738356858,
            "voice_slots_used": 2,
            "voice_limit": 10,
            "professional_voice_slots_used": 1,
            "professional_voice_limit": 2,
            "can_use_instant_voice_cloning": True,
            "can_use_professional_voice_cloning": True,
            "currency": "usd",
            "current_overage": {"amount": "0", "currency": "usd"},
            "status": self.status,
            "billing_period": "monthly_period",
            "character_refresh_period": "monthly_period",
            "open_invoices": [],
            "has_open_invoices": False,
        }

    def _voice(self, voice_id: str) -> dict[str, Any]:
        return {
            "voice_id": voice_id,
            "name": self.voices[voice_id],
            "category": "premade",
            "labels": {"accent": "american"},
            "preview_url": "https://storage.example.invalid/preview.mp3",
            "available_for_tiers": [],
            "high_quality_base_model_ids": ["eleven_multilingual_v2"],
            "is_owner": False,
            "is_legacy": False,
        }


# Twilio ---------------------------------------------------------------------------------


def twilio_error(status: int, code: int, message: str, **headers: str) -> Reply:
    body = {
        "code": code,
        "message": message,
        "more_info": f"https://www.twilio.com/docs/errors/{code}",
        "status": status,
    }
    return json_reply(body, status, **{"Twilio-Request-Id": "RQ" + "0" * 32, **headers})


def phone_number(phone: str, **fields: Any) -> dict[str, Any]:
    """An IncomingPhoneNumber resource with every URL empty unless given."""
    number: dict[str, Any] = {
        "sid": "PN" + "1" * 32,
        "account_sid": TWILIO_SID,
        "phone_number": phone,
        "friendly_name": phone,
        "capabilities": {"voice": True, "sms": True, "mms": True, "fax": False},
        "status": "in-use",
        "voice_url": "",
        "voice_method": "POST",
        "voice_fallback_url": "",
        "voice_fallback_method": "POST",
        "voice_application_sid": "",
        "trunk_sid": None,
        "sms_url": "",
        "sms_method": "POST",
        "sms_fallback_url": "",
        "sms_fallback_method": "POST",
        "sms_application_sid": "",
        "status_callback": "",
        "status_callback_method": "POST",
        "emergency_status": "Inactive",
        "address_requirements": "none",
        "bundle_sid": None,
    }
    number.update(fields)
    return number


def production_number(phone: str, **fields: Any) -> dict[str, Any]:
    """A number whose voice, SMS and status-callback URLs are on api.example.com."""
    production = {
        "voice_url": "https://api.example.com/twilio/voice",
        "sms_url": "https://api.example.com/twilio/sms",
        "status_callback": "https://api.example.com/twilio/status",
    }
    return phone_number(phone, **{**production, **fields})


def application(sid: str, **fields: Any) -> dict[str, Any]:
    """An Application resource (a TwiML App) with every URL null unless given, as the
    example of https://www.twilio.com/docs/usage/api/applications lists its fields."""
    app: dict[str, Any] = {
        "account_sid": TWILIO_SID,
        "api_version": "2010-04-01",
        "date_created": "Mon, 22 Aug 2011 20:59:45 +0000",
        "date_updated": "Tue, 18 Aug 2015 16:48:57 +0000",
        "friendly_name": "Production",
        "message_status_callback": None,
        "sid": sid,
        "sms_fallback_method": "POST",
        "sms_fallback_url": None,
        "sms_method": "POST",
        "sms_status_callback": None,
        "sms_url": None,
        "status_callback": None,
        "status_callback_method": "POST",
        "uri": f"/2010-04-01/Accounts/{TWILIO_SID}/Applications/{sid}.json",
        "voice_caller_id_lookup": False,
        "voice_fallback_method": "POST",
        "voice_fallback_url": None,
        "voice_method": "POST",
        "voice_url": None,
        "public_application_connect_enabled": False,
    }
    app.update(fields)
    return app


def trunk(sid: str, **fields: Any) -> dict[str, Any]:
    """A Trunk resource of https://www.twilio.com/docs/sip-trunking/api/trunk-resource."""
    url = f"https://trunking.twilio.com/v1/Trunks/{sid}"
    resource: dict[str, Any] = {
        "sid": sid,
        "account_sid": TWILIO_SID,
        "domain_name": "prod-example.pstn.twilio.com",
        "disaster_recovery_method": "POST",
        "disaster_recovery_url": None,
        "friendly_name": "Production PBX",
        "secure": True,
        "recording": {"mode": "do-not-record", "trim": "do-not-trim"},
        "transfer_mode": "disable-all",
        "transfer_caller_id": "from-transferee",
        "cnam_lookup_enabled": False,
        "auth_type": "",
        "symmetric_rtp_enabled": False,
        "auth_type_set": [],
        "date_created": "2015-01-02T11:23:45Z",
        "date_updated": "2015-01-02T11:23:45Z",
        "url": url,
        "links": {
            "origination_urls": f"{url}/OriginationUrls",
            "credential_lists": f"{url}/CredentialLists",
            "ip_access_control_lists": f"{url}/IpAccessControlLists",
            "phone_numbers": f"{url}/PhoneNumbers",
        },
    }
    resource.update(fields)
    return resource


def origination_url(trunk_sid: str, sip_url: str, index: int = 0, **fields: Any) -> dict[str, Any]:
    """An OriginationUrl of
    https://www.twilio.com/docs/sip-trunking/api/originationurl-resource."""
    sid = f"OU{index:032x}"
    resource: dict[str, Any] = {
        "account_sid": TWILIO_SID,
        "sid": sid,
        "trunk_sid": trunk_sid,
        "weight": 10,
        "enabled": True,
        "sip_url": sip_url,
        "friendly_name": f"pbx-{index}",
        "priority": 10,
        "date_created": "2018-05-09T20:47:35Z",
        "date_updated": "2018-05-09T20:47:35Z",
        "url": f"https://trunking.twilio.com/v1/Trunks/{trunk_sid}/OriginationUrls/{sid}",
    }
    resource.update(fields)
    return resource


@dataclass
class Twilio(Vendor):
    """The REST API (api.twilio.com/2010-04-01) and the trunking API
    (trunking.twilio.com/v1) on one stand-in: their paths do not overlap.

    Credentials: the account SID with `token`, or a key of `api_keys` (SID → secret and
    type) with its secret. Only a Main key may read the Account resource; a Standard or
    Restricted key gets `key_refused_status` there (the code Twilio answers with is
    not documented).

    Modes: rate_limited (429 20429, with `limit_headers`), no_account (404 20404 for
    the account), endless (a next page of numbers forever), foreign_page (a
    next_page_uri on another host), foreign_trunk_page (a trunk's next_page_url on
    another host). A trunk's next_page_url is absolute, built from the Host header over
    plain http."""

    sid: str = TWILIO_SID
    token: str = TWILIO_TOKEN
    api_keys: dict[str, tuple[str, str]] = field(
        default_factory=lambda: {TWILIO_KEY_SID: (TWILIO_KEY_SECRET, "main")}
    )
    key_refused_status: int = 401
    status: str = "active"
    account_type: str = "Full"
    # A string, as Twilio sends it; None as for a subaccount, which has no balance.
    balance: Any = "112.50"
    currency: str = "USD"
    numbers: list[dict[str, Any]] = field(
        default_factory=lambda: [production_number(f"+1555010000{i}") for i in range(3)]
    )
    page_size: int = 2
    applications: dict[str, dict[str, Any]] = field(default_factory=dict)
    trunks: dict[str, dict[str, Any]] = field(default_factory=dict)
    origination_urls: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    origination_page_size: int = 50
    limit_headers: dict[str, str] = field(default_factory=dict)

    def answer(self, request: Seen) -> Reply:
        key_type = self._caller(request.header("authorization"))
        if key_type is None:
            return twilio_error(401, 20003, "Authenticate")
        if self.mode == "rate_limited":
            return twilio_error(429, 20429, "Too Many Requests", **self.limit_headers)
        account = f"/2010-04-01/Accounts/{self.sid}"
        path = request.path
        page = int(request.query.get("Page", ["0"])[0])
        if path == f"{account}.json" and key_type in ("standard", "restricted"):
            return twilio_error(self.key_refused_status, 20003, "Authenticate")
        if path == f"{account}.json" and self.mode != "no_account":
            return json_reply(self._account())
        if path == f"{account}/Balance.json":
            return json_reply(
                {"account_sid": self.sid, "balance": self.balance, "currency": self.currency}
            )
        if path == f"{account}/IncomingPhoneNumbers.json":
            return json_reply(self._page(page))
        if path.startswith(f"{account}/Applications/") and path.endswith(".json"):
            found = self.applications.get(path.rpartition("/")[2].removesuffix(".json"))
            if found is not None:
                return json_reply(found)
        if path.startswith("/v1/Trunks/"):
            sid, _, rest = path.removeprefix("/v1/Trunks/").partition("/")
            if sid in self.trunks and not rest:
                return json_reply(self.trunks[sid])
            if sid in self.trunks and rest == "OriginationUrls":
                return json_reply(self._origination_page(sid, page, request.header("host")))
            return twilio_error(404, 20404, f"The requested resource {path[3:]} was not found")
        return twilio_error(404, 20404, f"The requested resource {path} was not found")

    def outage(self) -> Reply:
        return _html(503, "Service Unavailable")

    def _caller(self, authorization: str) -> str | None:
        """Who is calling: "account" for the SID and token, a key's type for one of
        `api_keys`, None for credentials Twilio would refuse."""
        scheme, _, encoded = authorization.partition(" ")
        if scheme != "Basic":
            return None
        try:
            username, _, password = base64.b64decode(encoded).decode().partition(":")
        except ValueError:
            return None
        if (username, password) == (self.sid, self.token):
            return "account"
        secret, key_type = self.api_keys.get(username, ("", ""))
        return key_type if secret and password == secret else None

    def _account(self) -> dict[str, Any]:
        account = f"/2010-04-01/Accounts/{self.sid}"
        return {
            "auth_token": self.token,
            "date_created": "Thu, 30 Jul 2015 20:00:00 +0000",
            "date_updated": "Thu, 30 Jul 2015 20:00:00 +0000",
            "friendly_name": "Prod",
            "owner_account_sid": self.sid,
            "sid": self.sid,
            "status": self.status,
            "type": self.account_type,
            "subresource_uris": {
                "applications": f"{account}/Applications.json",
                "balance": f"{account}/Balance.json",
                "incoming_phone_numbers": f"{account}/IncomingPhoneNumbers.json",
            },
            "uri": f"{account}.json",
        }

    def _page(self, page: int) -> dict[str, Any]:
        uri = f"/2010-04-01/Accounts/{self.sid}/IncomingPhoneNumbers.json"
        start = page * self.page_size
        items = self.numbers[start : start + self.page_size]
        more = start + self.page_size < len(self.numbers) or self.mode == "endless"
        next_uri = f"{uri}?PageSize={self.page_size}&Page={page + 1}&PageToken=PA{page + 1}"
        if self.mode == "foreign_page":
            next_uri = f"https://elsewhere.example.invalid{uri}?Page=1"
            more = True
        return {
            "incoming_phone_numbers": items,
            "first_page_uri": f"{uri}?PageSize={self.page_size}&Page=0",
            "next_page_uri": next_uri if more else None,
            "previous_page_uri": None,
            "page": page,
            "page_size": self.page_size,
            "start": start,
            "end": start + max(len(items) - 1, 0),
            "uri": f"{uri}?PageSize={self.page_size}&Page={page}",
        }

    def _origination_page(self, sid: str, page: int, host: str) -> dict[str, Any]:
        # The trunking API's list envelope: the items under their key, paging in `meta`
        # with absolute URLs.
        size = self.origination_page_size
        everything = self.origination_urls.get(sid, [])
        items = everything[page * size : (page + 1) * size]
        url = f"http://{host}/v1/Trunks/{sid}/OriginationUrls"
        more = (page + 1) * size < len(everything)
        next_url = f"{url}?PageSize={size}&Page={page + 1}&PageToken=PA{page + 1}"
        if self.mode == "foreign_trunk_page":
            next_url = f"https://elsewhere.example.invalid/v1/Trunks/{sid}/OriginationUrls?Page=1"
            more = True
        return {
            "origination_urls": items,
            "meta": {
                "first_page_url": f"{url}?PageSize={size}&Page=0",
                "key": "origination_urls",
                "next_page_url": next_url if more else None,
                "page": page,
                "page_size": size,
                "previous_page_url": None,
                "url": f"{url}?PageSize={size}&Page={page}",
            },
        }


# Supabase -------------------------------------------------------------------------------


def postgrest_error(status: int, code: str, message: str, hint: str | None = None) -> Reply:
    body = {"code": code, "details": None, "hint": hint, "message": message}
    return json_reply(body, status)


# The role each planted key stands for, as the gateway maps it.
SUPABASE_ROLES = {
    SUPABASE_KEY: "service_role",
    SUPABASE_SERVICE_JWT: "service_role",
    SUPABASE_ANON_KEY: "anon",
    SUPABASE_JWT: "anon",
}
SUPABASE_ROWS = 3


@dataclass
class Supabase(Vendor):
    """`keys` maps each key the gateway accepts to its role. `tables` maps a table to its
    state; any other table does not exist:
    - "rls": row-level security on and no policy for anon, which sees no rows;
    - "open": anon reads every row (row-level security off);
    - "revoked": anon holds no GRANT (42501), the service role does;
    - "no_grant": no role holds a GRANT.
    Every existing table has SUPABASE_ROWS rows, each carrying PLANTED_ROW. Rows and
    Content-Range answer limit and `Prefer: count=exact` as PostgREST does.
    Modes: paused (540), key_stripped (a proxy in front drops the apikey header),
    prefer_stripped (a proxy in front drops the Prefer header), jwt_rejected (401 PGRST301
    from PostgREST), db_down (503 PGRST002)."""

    keys: dict[str, str] = field(default_factory=lambda: dict(SUPABASE_ROLES))
    tables: dict[str, str] = field(default_factory=lambda: {"profiles": "rls", "orders": "rls"})

    def answer(self, request: Seen) -> Reply:
        if self.mode == "paused":
            return _html(540, "Project paused")
        presented = "" if self.mode == "key_stripped" else request.header("apikey")
        if not presented:
            return json_reply(
                {
                    "message": "No API key found in request",
                    "hint": "No `apikey` request header or url param was found.",
                },
                401,
            )
        role = self.keys.get(presented)
        if role is None:
            return json_reply(
                {
                    "message": "Invalid API key",
                    "hint": "Double check your Supabase `anon` or `service_role` API key.",
                },
                401,
            )
        bearer = request.header("authorization").removeprefix("Bearer ")
        if request.path == "/auth/v1/health":
            return json_reply(
                {
                    "version": "v2.170.0",
                    "name": "GoTrue",
                    "description": "GoTrue is a user registration and authentication API",
                }
            )
        if request.path.startswith("/rest/v1/"):
            # An sb_ key is no JWT: sent as a bearer, PostgREST cannot decode it.
            if bearer and (bearer != presented or not bearer.startswith("eyJ")):
                return postgrest_error(401, "PGRST301", "No suitable key or wrong key type")
            return self._rest(request, unquote(request.path.removeprefix("/rest/v1/")), role)
        return json_reply({"message": "no Route matched with those values"}, 404)

    def outage(self) -> Reply:
        return json_reply(
            {"message": "An invalid response was received from the upstream server"}, 502
        )

    def _rest(self, request: Seen, table: str, role: str) -> Reply:
        if self.mode == "jwt_rejected":
            return postgrest_error(401, "PGRST301", "JWT expired")
        if self.mode == "db_down":
            return postgrest_error(
                503, "PGRST002", "Could not query the database for the schema cache. Retrying."
            )
        state = self.tables.get(table)
        if state is None:
            return postgrest_error(
                404,
                "PGRST205",
                f"Could not find the table 'public.{table}' in the schema cache",
            )
        anon = role == "anon"
        if state == "no_grant" or (state == "revoked" and anon):
            # 42501 is 401 for the anonymous role and 403 for an authenticated one.
            return postgrest_error(
                401 if anon else 403, "42501", f"permission denied for table {table}"
            )
        visible = 0 if anon and state == "rls" else SUPABASE_ROWS
        return _postgrest_rows(request, visible, counted=self.mode != "prefer_stripped")


def _postgrest_rows(request: Seen, total: int, *, counted: bool) -> Reply:
    """The rows and range headers PostgREST answers a read with (RangeQuery.hs): the range
    is "*" when no row is sent, the total "*" unless a count was asked for, and 206 when a
    counted result holds fewer rows than the total."""
    limit = request.query.get("limit", [""])[0]
    shown = total if not limit else min(total, int(limit))
    counted = counted and "count=exact" in request.header("prefer")
    upper = shown - 1
    sent = f"0-{upper}" if upper >= 0 and (total != 0 or not counted) else "*"
    headers = {"Content-Range": f"{sent}/{total if counted else '*'}"}
    if counted:
        headers["Preference-Applied"] = "count=exact"
    rows = [{"id": n + 1, "email": PLANTED_ROW} for n in range(shown)]
    return Reply(206 if counted and shown < total else 200, rows, headers)


# GitHub ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Tag:
    commit: str
    # Set for an annotated tag: the sha of its tag object, which points at the commit.
    tag_object: str = ""


def github_error(status: int, message: str, **headers: str) -> Reply:
    body = {
        "message": message,
        "documentation_url": "https://docs.github.com/rest",
        "status": str(status),
    }
    return json_reply(body, status, **{"x-github-request-id": "C0DE:1234:5678", **headers})


@dataclass
class GitHub(Vendor):
    """Modes: primary_limit (403, x-ratelimit-remaining 0, reset in `reset_in` s),
    secondary_limit (429 with retry-after 45), secondary_quiet (403, only the message),
    forbidden (403 for a token without access), redirect_loop (every request answered
    with a 301 to itself).

    A repository `renamed_from` another name answers the old name's paths with a 301 to
    /repositories/<id> and the same rest of the path and query, as GitHub does
    (https://docs.github.com/en/rest/using-the-rest-api/best-practices-for-using-the-rest-api#follow-redirects);
    `moved_to` puts another scheme://host:port in that Location."""

    token: str = GITHUB_TOKEN
    repo: str = "octo-org/website"
    repository_id: int = 1296269
    renamed_from: str = ""
    moved_to: str = ""
    private: bool = False
    default_branch: str = "main"
    tags: dict[str, Tag] = field(default_factory=lambda: {"v1.0.0": Tag("1a2b3c4d5e6f7a8b")})
    # `compare/{tag}...{branch}`: "ahead" when the branch has commits the tag lacks.
    compare: str = "identical"
    ahead_by: int | None = None
    behind_by: int = 0
    changelog: str | None = "# Changelog\n\n## [1.0.0] - 2026-11-30\n\n- First release.\n"
    changelog_path: str = "CHANGELOG.md"
    path_prefix: str = ""
    reset_in: int = 30

    def answer(self, request: Seen) -> Reply:
        auth = request.header("authorization")
        if auth and auth != f"Bearer {self.token}":
            return github_error(401, "Bad credentials")
        if self.mode == "primary_limit":
            return github_error(
                403,
                "API rate limit exceeded for 127.0.0.1.",
                **{
                    "x-ratelimit-limit": "60",
                    "x-ratelimit-remaining": "0",
                    "x-ratelimit-reset": str(int(time.time()) + self.reset_in),
                },
            )
        if self.mode == "secondary_limit":
            return github_error(
                429, "You have exceeded a secondary rate limit.", **{"retry-after": "45"}
            )
        if self.mode == "secondary_quiet":
            return github_error(403, "You have exceeded a secondary rate limit.")
        if self.mode == "forbidden":
            return github_error(403, "Resource not accessible by personal access token")
        if self.mode == "redirect_loop":
            return self._moved(request, request.path)
        by_id = f"{self.path_prefix}/repositories/{self.repository_id}"
        if self.renamed_from:
            old = f"{self.path_prefix}/repos/{self.renamed_from}"
            if _under(request.path, old):
                return self._moved(request, by_id + request.path.removeprefix(old))
        for repository in (f"{self.path_prefix}/repos/{self.repo}", by_id):
            if _under(request.path, repository) and not (self.private and not auth):
                return self._resource(request, unquote(request.path.removeprefix(repository)))
        return github_error(404, "Not Found")

    def _moved(self, request: Seen, path: str) -> Reply:
        origin = self.moved_to or f"http://{request.header('host')}"
        query = urlencode(request.query, doseq=True)
        location = f"{origin}{path}" + (f"?{query}" if query else "")
        body = {
            "message": "Moved Permanently",
            "url": location,
            "documentation_url": "https://docs.github.com/v3/#http-redirects",
        }
        return json_reply(body, 301, Location=location)

    def outage(self) -> Reply:
        return _html(503, "No server is currently available to service your request.")

    def _resource(self, request: Seen, rest: str) -> Reply:
        if rest == "":
            return json_reply(
                {
                    "id": 1296269,
                    "full_name": self.repo,
                    "private": self.private,
                    "default_branch": self.default_branch,
                }
            )
        if rest.startswith("/git/ref/tags/"):
            return self._ref(rest.removeprefix("/git/ref/tags/"))
        if rest.startswith("/git/tags/"):
            return self._tag_object(rest.removeprefix("/git/tags/"))
        if rest.startswith("/compare/"):
            return self._compare(rest.removeprefix("/compare/"))
        if rest == f"/contents/{self.changelog_path}":
            return self._changelog(request.query.get("ref", [""])[0])
        return github_error(404, "Not Found")

    def _ref(self, name: str) -> Reply:
        tag = self.tags.get(name)
        if tag is None:
            return github_error(404, "Not Found")
        target = (
            {"type": "tag", "sha": tag.tag_object}
            if tag.tag_object
            else {"type": "commit", "sha": tag.commit}
        )
        return json_reply({"ref": f"refs/tags/{name}", "node_id": "REF_1", "object": target})

    def _tag_object(self, sha: str) -> Reply:
        for name, tag in self.tags.items():
            if tag.tag_object and tag.tag_object == sha:
                return json_reply(
                    {
                        "sha": sha,
                        "tag": name,
                        "message": f"Release {name}",
                        "object": {"type": "commit", "sha": tag.commit},
                    }
                )
        return github_error(404, "Not Found")

    def _compare(self, spec: str) -> Reply:
        base, _, head = spec.partition("...")
        if base not in self.tags or head != self.default_branch:
            return github_error(404, "Not Found")
        ahead_by = 0 if self.compare in ("identical", "behind") else 4
        return json_reply(
            {
                "status": self.compare,
                "ahead_by": ahead_by if self.ahead_by is None else self.ahead_by,
                "behind_by": self.behind_by,
                "total_commits": 0,
                "commits": [],
                "files": [],
            }
        )

    def _changelog(self, ref: str) -> Reply:
        if self.changelog is None or ref not in self.tags:
            return github_error(404, "Not Found")
        encoded = base64.b64encode(self.changelog.encode()).decode()
        # GitHub wraps the base64 content in lines of 60 characters.
        wrapped = "\n".join(encoded[i : i + 60] for i in range(0, len(encoded), 60)) + "\n"
        return json_reply(
            {
                "type": "file",
                "name": self.changelog_path.rpartition("/")[2],
                "path": self.changelog_path,
                "sha": "3d21ec53a331a6f037a91c368710b99387d012c1",
                "size": len(self.changelog),
                "encoding": "base64",
                "content": wrapped,
            }
        )


def _under(path: str, root: str) -> bool:
    return path == root or path.startswith(root + "/")


# Status pages ---------------------------------------------------------------------------


@dataclass
class StatusPage(Vendor):
    indicator: str = "none"
    description: str = "All Systems Operational"
    components: list[tuple[str, str]] = field(
        default_factory=lambda: [("API", "operational"), ("SMS", "operational")]
    )

    def answer(self, request: Seen) -> Reply:
        status = {"indicator": self.indicator, "description": self.description}
        page = {
            "id": "gpkpyklzq55q",
            "name": "Stand-in",
            "url": "https://status.example.invalid",
            "updated_at": "2026-11-30T10:00:00Z",
        }
        if request.path == "/api/v2/summary.json":
            components = [
                {
                    "id": f"01JMXBRMFE6N2NNT7DG6XZQ6P{i}",
                    "name": name,
                    "status": state,
                    "created_at": "2014-05-03T01:22:07.274Z",
                    "updated_at": "2026-11-30T10:00:00Z",
                    "position": i,
                    "description": None,
                    "page_id": page["id"],
                }
                for i, (name, state) in enumerate(self.components)
            ]
            return json_reply(
                {
                    "page": page,
                    "status": status,
                    "components": components,
                    "incidents": [],
                    "scheduled_maintenances": [],
                }
            )
        return _html(404, "Not Found")

    def outage(self) -> Reply:
        return _html(503, "Service Unavailable")
