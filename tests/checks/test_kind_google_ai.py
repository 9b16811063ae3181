"""The google_ai kind against a stand-in Gemini API on 127.0.0.1 that answers as Google
documents: each model must support the configured method, and a one-token call of it
proves the quota and billing that reading models cannot.

The generic ways an answer fails (5xx, garbage, silence, redirects, TLS) are in
test_vendor_kinds.py, with every other vendor kind.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from checks import config
from checks.kinds import google_ai
from checks.kinds.base import Reason

from . import test_vendor_kinds as shared
from .standin import Seen
from .test_vendor_kinds import (
    Serve,
    assert_permanent,
    assert_secret_only_in_headers,
    assert_transient,
    context,
    failure,
    success,
)
from .vendors import GOOGLE_KEY, Google

# The stand-in that lives for the whole module, shared with the generic scenario.
prompt_replies = shared.prompt_replies
plain_switch = shared.plain_switch
serve = shared.serve

ENV = {"GEMINI_KEY": GOOGLE_KEY}
PING = {"contents": [{"role": "user", "parts": [{"text": "ping"}]}]}


def options(url: str, models: list[str] | None = None, **more: Any) -> dict[str, Any]:
    chosen: dict[str, Any] = {"secret_env": "GEMINI_KEY", "base_url": url, **more}
    if models is not None:
        chosen["models"] = models
    return chosen


def calls(requests: list[Seen]) -> list[tuple[str, str, dict[str, Any] | None]]:
    return [
        (seen.method, seen.path, json.loads(seen.body) if seen.body else None) for seen in requests
    ]


# The probe -------------------------------------------------------------------------------


def test_it_reads_each_model_then_generates_one_token_of_a_fixed_prompt(serve: Serve) -> None:
    """models.get, then models.generateContent with generationConfig.maxOutputTokens 1;
    the key in x-goog-api-key, never in the URL.
    https://ai.google.dev/api/generate-content#method:-models.generatecontent
    """
    server = serve(Google())
    evidence = success(
        google_ai.KIND, context(options(server.url, ["models/gemini-2.0-flash"]), ENV)
    )
    assert evidence == (
        "key accepted; billing verified by a minimal generateContent on each model: "
        "gemini-2.0-flash (MAX_TOKENS)"
    )
    assert calls(server.requests) == [
        ("GET", "/v1beta/models/gemini-2.0-flash", None),
        (
            "POST",
            "/v1beta/models/gemini-2.0-flash:generateContent",
            {**PING, "generationConfig": {"maxOutputTokens": 1}},
        ),
    ]
    assert {seen.header("x-goog-api-key") for seen in server.requests} == {GOOGLE_KEY}
    assert all("key" not in seen.query for seen in server.requests)
    assert_secret_only_in_headers(server.requests, GOOGLE_KEY)


def test_it_passes_a_thinking_model_that_answers_max_tokens_with_no_parts(serve: Serve) -> None:
    """A thinking model may spend maxOutputTokens on thought: 200, finishReason
    MAX_TOKENS, content without parts. The call worked.
    https://ai.google.dev/gemini-api/docs/thinking
    """
    server = serve(Google())
    evidence = success(google_ai.KIND, context(options(server.url, ["gemini-2.5-flash"]), ENV))
    assert evidence.endswith("gemini-2.5-flash (MAX_TOKENS)")
    [_get, (_method, _path, body)] = calls(server.requests)
    assert body is not None
    assert "thinkingConfig" not in body["generationConfig"]


def test_it_fails_a_model_that_does_not_support_the_configured_method(serve: Serve) -> None:
    """supportedGenerationMethods lists what a model serves; an embedding model has no
    generateContent.
    https://ai.google.dev/api/models#method:-models.get
    """
    server = serve(Google())
    error = failure(
        google_ai.KIND,
        context(options(server.url, ["gemini-2.5-flash", "text-embedding-004"]), ENV),
    )
    assert_permanent(error, Reason.MISCONFIGURED)
    assert error.evidence == (
        "model text-embedding-004 does not support generateContent; it supports embedContent"
    )
    assert [seen.path for seen in server.requests][-1] == "/v1beta/models/text-embedding-004"


def test_it_probes_an_embedding_model_with_embed_content_when_that_is_the_method(
    serve: Serve,
) -> None:
    """https://ai.google.dev/api/embeddings#method:-models.embedcontent"""
    server = serve(Google())
    evidence = success(
        google_ai.KIND,
        context(options(server.url, ["text-embedding-004"], method="embedContent"), ENV),
    )
    assert evidence == (
        "key accepted; billing verified by a minimal embedContent on each model: text-embedding-004"
    )
    assert calls(server.requests)[1] == (
        "POST",
        "/v1beta/models/text-embedding-004:embedContent",
        {"content": {"parts": [{"text": "ping"}]}},
    )


def test_it_probes_a_tuned_model_at_its_own_path(serve: Serve) -> None:
    """tunedModels.get and tunedModels.generateContent, on tunedModels/{id}.
    https://ai.google.dev/api/tuning
    """
    server = serve(Google())
    evidence = success(
        google_ai.KIND, context(options(server.url, ["tunedModels/support-bot-7"]), ENV)
    )
    assert evidence.endswith("tunedModels/support-bot-7 (MAX_TOKENS)")
    assert [(seen.method, seen.path) for seen in server.requests] == [
        ("GET", "/v1beta/tunedModels/support-bot-7"),
        ("POST", "/v1beta/tunedModels/support-bot-7:generateContent"),
    ]


@pytest.mark.parametrize("state", ["CREATING", "FAILED"])
def test_it_fails_a_tuned_model_that_is_not_active(state: str, serve: Serve) -> None:
    """State ACTIVE: "The model is ready to be used."
    https://ai.google.dev/api/tuning
    """
    server = serve(Google(tuned={"support-bot-7": state}))
    error = failure(
        google_ai.KIND, context(options(server.url, ["tunedModels/support-bot-7"]), ENV)
    )
    assert_permanent(error, Reason.MISCONFIGURED)
    assert error.evidence == f"tuned model tunedModels/support-bot-7 is {state}, not ACTIVE"
    assert all(seen.method == "GET" for seen in server.requests)


def test_it_asks_for_the_models_to_probe_when_none_are_named(serve: Serve) -> None:
    """https://ai.google.dev/api/models#method:-models.list"""
    server = serve(Google())
    error = failure(google_ai.KIND, context(options(server.url), ENV))
    assert_permanent(error, Reason.MISCONFIGURED)
    assert "name the models the app calls" in error.evidence
    assert server.requests == []


# Quota -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("quota_id", "delay"),
    [
        ("GenerateRequestsPerDayPerProjectPerModel-FreeTier", "47s"),
        ("GenerateRequestsPerDayPerProjectPerModel", "12s"),
        ("GenerateRequestsPerMinutePerProjectPerModel-FreeTier", "38s"),
    ],
)
def test_it_fails_for_good_on_a_daily_or_free_tier_quota_though_models_still_read(
    quota_id: str, delay: str, serve: Serve
) -> None:
    """429 RESOURCE_EXHAUSTED whose QuotaFailure names the quota: a daily one resets at
    midnight whatever its RetryInfo says, a free-tier one means no billing.
    https://ai.google.dev/gemini-api/docs/rate-limits
    """
    server = serve(Google(mode="quota", quota_id=quota_id, retry_delay=delay))
    error = failure(google_ai.KIND, context(options(server.url, ["gemini-2.0-flash"]), ENV))
    assert_permanent(error, Reason.QUOTA_EXHAUSTED)
    assert f"quota {quota_id} exhausted" in error.evidence
    assert [seen.method for seen in server.requests] == ["GET", "POST"]


def test_it_fails_for_good_when_the_retry_delay_outlasts_the_checks_retries(
    serve: Serve,
) -> None:
    """RetryInfo.retryDelay says when the quota comes back.
    https://ai.google.dev/gemini-api/docs/troubleshooting
    """
    server = serve(Google(mode="quota", retry_delay="3600s"))
    error = failure(google_ai.KIND, context(options(server.url, ["gemini-2.0-flash"]), ENV))
    assert_permanent(error, Reason.QUOTA_EXHAUSTED)
    assert "quota exhausted for 3600 s" in error.evidence


@pytest.mark.parametrize(
    ("delay", "headers", "wait"),
    [("57.2s", {}, 57.2), ("38s", {"Retry-After": "5"}, 38.0), ("", {"Retry-After": "5"}, 5.0)],
)
def test_it_retries_a_per_minute_quota_after_its_retry_info_delay(
    delay: str, headers: dict[str, str], wait: float, serve: Serve
) -> None:
    """https://ai.google.dev/gemini-api/docs/rate-limits"""
    server = serve(Google(mode="rate_limited", retry_delay=delay, limit_headers=headers))
    error = failure(google_ai.KIND, context(options(server.url, ["gemini-2.0-flash"]), ENV))
    assert_transient(error, Reason.RATE_LIMITED, wait)
    assert "RESOURCE_EXHAUSTED" in error.evidence


# Without probing -------------------------------------------------------------------------


def test_it_reads_the_models_alone_with_probe_false_and_says_billing_was_not_verified(
    serve: Serve,
) -> None:
    """https://ai.google.dev/api/models#method:-models.get"""
    server = serve(Google(mode="quota"))
    evidence = success(
        google_ai.KIND,
        context(
            options(server.url, ["gemini-2.5-flash", "models/gemini-2.0-flash"], probe=False), ENV
        ),
    )
    assert evidence == (
        "key accepted; models gemini-2.5-flash, gemini-2.0-flash available with "
        "generateContent; billing not verified (probe = false)"
    )
    assert all(seen.method == "GET" for seen in server.requests)


def test_it_lists_one_model_when_probing_is_off_and_none_are_named(serve: Serve) -> None:
    """https://ai.google.dev/api/models#method:-models.list"""
    server = serve(Google())
    evidence = success(google_ai.KIND, context(options(server.url + "/v1beta", probe=False), ENV))
    assert evidence == "key accepted; model list readable; billing not verified (probe = false)"
    [seen] = server.requests
    assert (seen.path, seen.query) == ("/v1beta/models", {"pageSize": ["1"]})


def test_it_refuses_a_method_it_cannot_probe_when_the_checks_file_is_read(
    tmp_path: Path,
) -> None:
    path = tmp_path / "checks.toml"
    head = '[[check]]\nname = "gemini"\nkind = "google_ai"\nsecret_env = "GEMINI_API_KEY"\n'
    path.write_text(head + 'method = "countTokens"\n')
    with pytest.raises(config.ChecksFileError) as refused:
        config.read(path)
    [fault] = refused.value.errors
    assert fault.startswith(f"{path}:5: check “gemini”: method countTokens cannot be probed")
    path.write_text(head + 'method = "countTokens"\nprobe = false\n')
    [spec] = config.read(path)
    assert spec.options == {"secret_env": "GEMINI_API_KEY", "method": "countTokens", "probe": False}


# Refusals --------------------------------------------------------------------------------


def test_it_fails_auth_for_a_bad_key_even_though_google_answers_400(serve: Serve) -> None:
    """https://ai.google.dev/gemini-api/docs/troubleshooting"""
    server = serve(Google(key="AIza-the-real-one"))
    error = failure(google_ai.KIND, context(options(server.url, ["gemini-2.0-flash"]), ENV))
    assert_permanent(error, Reason.AUTH_FAILED)
    assert "API_KEY_INVALID" in error.evidence


def test_it_fails_auth_when_the_key_lacks_permission(serve: Serve) -> None:
    """https://ai.google.dev/gemini-api/docs/troubleshooting"""
    server = serve(Google(mode="denied"))
    error = failure(google_ai.KIND, context(options(server.url, ["gemini-2.0-flash"]), ENV))
    assert_permanent(error, Reason.AUTH_FAILED)
    assert "PERMISSION_DENIED" in error.evidence


def test_it_calls_a_failed_precondition_misconfigured(serve: Serve) -> None:
    """https://ai.google.dev/gemini-api/docs/troubleshooting"""
    server = serve(Google(mode="precondition"))
    error = failure(google_ai.KIND, context(options(server.url, ["gemini-2.0-flash"]), ENV))
    assert_permanent(error, Reason.MISCONFIGURED)
    assert "FAILED_PRECONDITION" in error.evidence


def test_it_names_an_unknown_model(serve: Serve) -> None:
    """https://ai.google.dev/gemini-api/docs/troubleshooting"""
    server = serve(Google())
    error = failure(google_ai.KIND, context(options(server.url, ["models/gemini-9-ultra"]), ENV))
    assert_permanent(error, Reason.MISCONFIGURED)
    assert "unknown model gemini-9-ultra" in error.evidence
