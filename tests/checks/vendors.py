"""Stand-in vendors for the vendor check kinds, answering as vendors.md §9 describes: the
documented success fields, each vendor's own error shapes, and the headers it sends.

Each vendor is a small dataclass; an instance is the answer function of a stand-in:

    with stand_in(OpenAI(mode="rate_limited")) as server: ...

`mode` picks how it misbehaves. Every vendor knows "ok", "down" (its own 5xx), "garbage"
(an HTML page with 200), "silent" (no answer for SILENCE seconds) and "redirect"; the
vendor-specific modes are listed on each class. Keys, tokens and row data below are
planted: tests assert that none of them reach evidence or exception text.
"""

from __future__ import annotations

import base64
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
SUPABASE_KEY = "sb_secret_planted_supabase_7c1d"
SUPABASE_JWT = "eyJhbGciOiJIUzI1NiJ9.eyJyb2xlIjoiYW5vbiJ9.planted-signature"
GITHUB_TOKEN = "ghp_planted_github_token_4a9f"
# A value in a table row: user data, which a check must never carry into evidence.
PLANTED_ROW = "planted-row-alice@example.com"

PLANTED = (
    OPENAI_KEY,
    GOOGLE_KEY,
    ELEVENLABS_KEY,
    TWILIO_TOKEN,
    SUPABASE_KEY,
    SUPABASE_JWT,
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


def openai_error(status: int, message: str, kind: str, code: str | None, **headers: str) -> Reply:
    body = {"error": {"message": message, "type": kind, "param": None, "code": code}}
    return json_reply(body, status, **{"x-request-id": "req_7f3a9c2e", **headers})


@dataclass
class OpenAI(Vendor):
    """Modes: rate_limited (429 rate_limit_exceeded with `limit_headers`), quota (429
    insufficient_quota), region (403)."""

    key: str = OPENAI_KEY
    models: tuple[str, ...] = ("gpt-4o-mini", "whisper-1", "text-embedding-3-small")
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
        if self.mode == "quota":
            return openai_error(
                429,
                "You exceeded your current quota, please check your plan and billing details.",
                "insufficient_quota",
                "insufficient_quota",
            )
        if request.path == "/v1/models":
            data = [self._model(name) for name in self.models]
            return json_reply({"object": "list", "data": data}, 200, **{"x-request-id": "req_1"})
        name = unquote(request.path.removeprefix("/v1/models/"))
        if request.path.startswith("/v1/models/") and name in self.models:
            return json_reply(self._model(name), 200, **{"x-request-id": "req_2"})
        if request.path.startswith("/v1/models/"):
            return openai_error(
                404,
                f"The model `{name}` does not exist or you do not have access to it.",
                "invalid_request_error",
                "model_not_found",
            )
        return openai_error(404, f"Invalid URL (GET {request.path})", "invalid_request_error", None)

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
    "text-embedding-004": ["embedContent"],
}


@dataclass
class Google(Vendor):
    """Modes: rate_limited (429 RESOURCE_EXHAUSTED, RetryInfo `retry_delay` unless empty,
    and `limit_headers`), precondition (400 FAILED_PRECONDITION), denied (403)."""

    key: str = GOOGLE_KEY
    models: dict[str, list[str]] = field(default_factory=lambda: dict(GEMINI_MODELS))
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
        if self.mode == "rate_limited":
            return self._exhausted()
        if request.path == "/v1beta/models":
            size = int(request.query.get("pageSize", ["50"])[0])
            names = list(self.models)
            body: dict[str, Any] = {"models": [self._model(n) for n in names[:size]]}
            if len(names) > size:
                body["nextPageToken"] = "Chxtb2RlbHMvZ2VtaW5pLTIuNS1mbGFzaA"
            return json_reply(body)
        name = unquote(request.path.removeprefix("/v1beta/models/"))
        if request.path.startswith("/v1beta/models/") and name in self.models:
            return json_reply(self._model(name))
        return google_error(
            404,
            "NOT_FOUND",
            f"models/{name} is not found for API version v1beta, or is not supported for "
            "generateContent. Call ListModels to see the list of available models and their "
            "supported methods.",
        )

    def outage(self) -> Reply:
        return google_error(503, "UNAVAILABLE", "The model is overloaded. Please try again later.")

    def _exhausted(self) -> Reply:
        details: list[dict[str, Any]] = [
            {
                "@type": "type.googleapis.com/google.rpc.QuotaFailure",
                "violations": [
                    {
                        "quotaMetric": "generativelanguage.googleapis.com/"
                        "generate_content_free_tier_requests",
                        "quotaId": "GenerateRequestsPerMinutePerProjectPerModel-FreeTier",
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
            "thinking": True,
        }


# ElevenLabs -----------------------------------------------------------------------------


@dataclass
class ElevenLabs(Vendor):
    """Modes: busy (429 with `busy_code`), quota (401 quota_exceeded), invalid (422 with
    a FastAPI list detail). `legacy_errors` answers the older {status, message} detail;
    otherwise the documented one with type, code, status, request_id."""

    key: str = ELEVENLABS_KEY
    permissions: frozenset[str] = frozenset({"user_read", "voices_read"})
    status: str = "active"
    tier: str = "creator"
    character_limit: int = 100000
    character_count: int = 25000
    voices: dict[str, str] = field(default_factory=lambda: {"21m00Tcm4TlvDq8ikWAM": "Rachel"})
    voice_missing_status: int = 400
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
                return self._error(self.voice_missing_status, "voice_not_found", "Voice not found")
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
        return {
            "tier": self.tier,
            "character_count": self.character_count,
            "character_limit": self.character_limit,
            "can_extend_character_limit": False,
            "allowed_to_extend_character_limit": False,
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


def phone_number(phone: str, **fields: str) -> dict[str, Any]:
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


def production_number(phone: str) -> dict[str, Any]:
    return phone_number(
        phone,
        voice_url="https://api.example.com/twilio/voice",
        sms_url="https://api.example.com/twilio/sms",
        status_callback="https://api.example.com/twilio/status",
    )


@dataclass
class Twilio(Vendor):
    """Modes: rate_limited (429 20429, with `limit_headers`), no_account (404 20404 for
    the account), endless (a next page forever), foreign_page (a next_page_uri on another
    host)."""

    sid: str = TWILIO_SID
    token: str = TWILIO_TOKEN
    status: str = "active"
    account_type: str = "Full"
    numbers: list[dict[str, Any]] = field(
        default_factory=lambda: [production_number(f"+1555010000{i}") for i in range(3)]
    )
    page_size: int = 2
    limit_headers: dict[str, str] = field(default_factory=dict)

    def answer(self, request: Seen) -> Reply:
        expected = base64.b64encode(f"{self.sid}:{self.token}".encode()).decode()
        if request.header("authorization") != f"Basic {expected}":
            return twilio_error(401, 20003, "Authenticate")
        if self.mode == "rate_limited":
            return twilio_error(429, 20429, "Too Many Requests", **self.limit_headers)
        account = f"/2010-04-01/Accounts/{self.sid}"
        if request.path == f"{account}.json" and self.mode != "no_account":
            return json_reply(self._account())
        if request.path == f"{account}/IncomingPhoneNumbers.json":
            return json_reply(self._page(int(request.query.get("Page", ["0"])[0])))
        return twilio_error(404, 20404, f"The requested resource {request.path} was not found")

    def outage(self) -> Reply:
        return _html(503, "Service Unavailable")

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
            "subresource_uris": {"incoming_phone_numbers": f"{account}/IncomingPhoneNumbers.json"},
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


# Supabase -------------------------------------------------------------------------------


def postgrest_error(status: int, code: str, message: str, hint: str | None = None) -> Reply:
    body = {"code": code, "details": None, "hint": hint, "message": message}
    return json_reply(body, status)


@dataclass
class Supabase(Vendor):
    """`tables` maps a table to "ok" or "no_grant"; any other table does not exist.
    Modes: paused (540), key_stripped (a proxy in front drops the apikey header),
    jwt_rejected (401 PGRST301 from PostgREST), db_down (503 PGRST002)."""

    key: str = SUPABASE_KEY
    tables: dict[str, str] = field(default_factory=lambda: {"profiles": "ok", "orders": "ok"})

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
        if presented != self.key:
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
            return self._rest(unquote(request.path.removeprefix("/rest/v1/")))
        return json_reply({"message": "no Route matched with those values"}, 404)

    def outage(self) -> Reply:
        return json_reply(
            {"message": "An invalid response was received from the upstream server"}, 502
        )

    def _rest(self, table: str) -> Reply:
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
        if state == "no_grant":
            return postgrest_error(403, "42501", f"permission denied for table {table}")
        return json_reply([{"id": 1, "email": PLANTED_ROW}])


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
