"""The openai kind against a stand-in OpenAI on 127.0.0.1 that answers as OpenAI documents:
listing models proves only the key, so each configured model gets the cheapest
generation it accepts, and billing that refuses the call fails the check.

The generic ways an answer fails (5xx, garbage, silence, redirects, TLS) are in
test_vendor_kinds.py, with every other vendor kind.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from checks import config
from checks.kinds import openai
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
from .vendors import OPENAI_KEY, OpenAI

# The stand-in that lives for the whole module, shared with the generic scenario.
prompt_replies = shared.prompt_replies
plain_switch = shared.plain_switch
serve = shared.serve

ENV = {"OPENAI_KEY": OPENAI_KEY}
CHAT = "/v1/chat/completions"


def options(url: str, models: list[str] | None = None, **more: Any) -> dict[str, Any]:
    chosen: dict[str, Any] = {"secret_env": "OPENAI_KEY", "base_url": url, **more}
    if models is not None:
        chosen["models"] = models
    return chosen


def sent(seen: Seen) -> dict[str, Any]:
    body = json.loads(seen.body)
    assert isinstance(body, dict)
    return body


def posts(requests: list[Seen]) -> list[tuple[str, dict[str, Any]]]:
    return [(seen.path, sent(seen)) for seen in requests if seen.method == "POST"]


# The probe -------------------------------------------------------------------------------


def test_it_proves_a_chat_model_with_one_completion_token_of_a_fixed_prompt(serve: Serve) -> None:
    """max_completion_tokens is the budget every chat model takes; no temperature, which
    some reasoning models refuse.
    https://developers.openai.com/api/reference/resources/chat/subresources/completions/methods/create
    """
    server = serve(OpenAI())
    evidence = success(openai.KIND, context(options(server.url, ["gpt-4o-mini"]), ENV))
    assert evidence == (
        "key accepted; billing verified by a minimal generation on "
        "gpt-4o-mini (chat/completions length)"
    )
    assert posts(server.requests) == [
        (
            CHAT,
            {
                "model": "gpt-4o-mini",
                "messages": [{"role": "user", "content": "ping"}],
                "max_completion_tokens": 1,
            },
        )
    ]
    assert {seen.header("authorization") for seen in server.requests} == {f"Bearer {OPENAI_KEY}"}
    assert_secret_only_in_headers(server.requests, OPENAI_KEY)


def test_it_passes_a_reasoning_model_that_spends_its_token_thinking_and_writes_nothing(
    serve: Serve,
) -> None:
    """max_completion_tokens bounds "visible output tokens and reasoning tokens": a 200
    with empty content and finish_reason length has shown that calls work.
    https://developers.openai.com/api/reference/resources/chat/subresources/completions/methods/create
    """
    server = serve(OpenAI())
    evidence = success(openai.KIND, context(options(server.url, ["o3-mini"]), ENV))
    assert evidence.endswith("o3-mini (chat/completions length)")
    [(_path, body)] = posts(server.requests)
    assert "max_tokens" not in body
    assert "temperature" not in body


def test_it_asks_again_with_max_tokens_when_a_model_refuses_max_completion_tokens(
    serve: Serve,
) -> None:
    """A 400 invalid_request_error, code unsupported_parameter, param naming the budget is
    answered with the documented alternative, not a failure.
    https://developers.openai.com/api/reference/resources/chat/subresources/completions/methods/create
    """
    server = serve(OpenAI(legacy_budget=("gpt-4o-mini",)))
    evidence = success(openai.KIND, context(options(server.url, ["gpt-4o-mini"]), ENV))
    assert evidence.endswith("gpt-4o-mini (chat/completions length)")
    budgets = [
        {key: body[key] for key in ("max_completion_tokens", "max_tokens") if key in body}
        for _path, body in posts(server.requests)
    ]
    assert budgets == [{"max_completion_tokens": 1}, {"max_tokens": 1}]


def test_it_probes_a_responses_only_model_with_the_documented_minimum_budget(
    serve: Serve,
) -> None:
    """max_output_tokens has a minimum of 16; store is off so nothing is kept.
    https://developers.openai.com/api/reference/resources/responses/methods/create
    """
    server = serve(OpenAI())
    evidence = success(openai.KIND, context(options(server.url, ["o1-pro"]), ENV))
    assert evidence.endswith("o1-pro (responses incomplete)")
    assert posts(server.requests)[1:] == [
        (
            "/v1/responses",
            {"model": "o1-pro", "input": "ping", "max_output_tokens": 16, "store": False},
        )
    ]


def test_it_probes_an_embedding_model_through_the_embeddings_endpoint(serve: Serve) -> None:
    """https://developers.openai.com/api/reference/resources/embeddings/methods/create"""
    server = serve(OpenAI())
    evidence = success(
        openai.KIND, context(options(server.url, ["gpt-4o-mini", "text-embedding-3-small"]), ENV)
    )
    assert evidence.endswith(
        "gpt-4o-mini (chat/completions length); text-embedding-3-small (embeddings)"
    )
    assert posts(server.requests)[1] == (
        "/v1/embeddings",
        {"model": "text-embedding-3-small", "input": "ping", "encoding_format": "base64"},
    )


def test_it_shows_an_audio_model_available_while_a_text_model_proves_billing(
    serve: Serve,
) -> None:
    """Transcription takes an audio file, not a token: whisper-1 is read with
    GET /models/{model}.
    https://developers.openai.com/api/reference/resources/models/methods/retrieve
    """
    server = serve(OpenAI())
    evidence = success(openai.KIND, context(options(server.url, ["whisper-1", "gpt-4o-mini"]), ENV))
    assert evidence == (
        "key accepted; billing verified by a minimal generation on gpt-4o-mini "
        "(chat/completions length); available without a generation: whisper-1"
    )
    assert [(seen.method, seen.path) for seen in server.requests] == [
        ("GET", "/v1/models/whisper-1"),
        ("POST", CHAT),
    ]


def test_it_does_not_pass_when_no_configured_model_can_be_probed(serve: Serve) -> None:
    """Without a generation nothing shows billing: availability alone is not proof.
    https://developers.openai.com/api/docs/guides/error-codes
    """
    server = serve(OpenAI())
    error = failure(openai.KIND, context(options(server.url, ["whisper-1"]), ENV))
    assert_permanent(error, Reason.MISCONFIGURED)
    assert error.evidence.startswith("billing not verified")


def test_it_asks_for_the_models_to_probe_when_none_are_named(serve: Serve) -> None:
    """https://developers.openai.com/api/reference/resources/models/methods/list"""
    server = serve(OpenAI())
    error = failure(openai.KIND, context(options(server.url), ENV))
    assert_permanent(error, Reason.MISCONFIGURED)
    assert "name the models the app calls" in error.evidence
    assert server.requests == []


# Billing ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("mode", "code"), [("quota", "insufficient_quota"), ("inactive", "billing_not_active")]
)
def test_it_fails_for_good_when_billing_refuses_a_generation_though_models_still_list(
    mode: str, code: str, serve: Serve
) -> None:
    """429 insufficient_quota: "You exceeded your current quota, please check your plan and
    billing details"; never retried, as waiting refills nothing.
    https://developers.openai.com/api/docs/guides/error-codes
    """
    server = serve(OpenAI(mode=mode, limit_headers={"retry-after": "1"}))
    assert success(openai.KIND, context(options(server.url, ["gpt-4o-mini"], probe=False), ENV))
    server.requests.clear()
    error = failure(openai.KIND, context(options(server.url, ["gpt-4o-mini"]), ENV))
    assert_permanent(error, Reason.QUOTA_EXHAUSTED)
    assert code in error.evidence
    assert len(server.requests) == 1


# Without probing -------------------------------------------------------------------------


def test_it_reads_only_the_listing_with_probe_false_and_says_billing_was_not_verified(
    serve: Serve,
) -> None:
    """https://developers.openai.com/api/reference/resources/models/methods/retrieve"""
    server = serve(OpenAI())
    evidence = success(
        openai.KIND,
        context(options(server.url, ["gpt-4o-mini", "whisper-1"], probe=False), ENV),
    )
    assert evidence == (
        "key accepted; models listed: 5; available: gpt-4o-mini, whisper-1; "
        "billing not verified (probe = false)"
    )
    assert [seen.path for seen in server.requests] == [
        "/v1/models",
        "/v1/models/gpt-4o-mini",
        "/v1/models/whisper-1",
    ]


def test_it_proves_a_key_with_the_model_list_alone_when_probing_is_off_and_no_models_are_named(
    serve: Serve,
) -> None:
    """https://developers.openai.com/api/reference/resources/models/methods/list"""
    server = serve(OpenAI())
    evidence = success(openai.KIND, context(options(server.url, probe=False), ENV))
    assert evidence == "key accepted; models listed: 5; billing not verified (probe = false)"
    assert [seen.path for seen in server.requests] == ["/v1/models"]


def test_it_does_not_append_v1_twice_to_a_base_url_ending_in_v1(serve: Serve) -> None:
    server = serve(OpenAI())
    success(openai.KIND, context(options(server.url + "/v1", ["whisper-1"], probe=False), ENV))
    assert [seen.path for seen in server.requests] == ["/v1/models", "/v1/models/whisper-1"]


def test_it_takes_probe_as_a_boolean_in_a_checks_file(tmp_path: Path) -> None:
    path = tmp_path / "checks.toml"
    head = '[[check]]\nname = "openai"\nkind = "openai"\nsecret_env = "OPENAI_API_KEY"\n'
    path.write_text(head + "probe = false\n")
    [spec] = config.read(path)
    assert spec.options["probe"] is False
    path.write_text(head + 'probe = "no"\n')
    with pytest.raises(config.ChecksFileError) as refused:
        config.read(path)
    assert refused.value.errors == [f"{path}:5: check “openai”: probe must be true or false"]


# Refusals --------------------------------------------------------------------------------


def test_it_fails_auth_for_a_refused_key_without_quoting_its_masked_form(serve: Serve) -> None:
    """https://developers.openai.com/api/docs/guides/error-codes"""
    server = serve(OpenAI(key="sk-the-real-one"))
    error = failure(openai.KIND, context(options(server.url, ["gpt-4o-mini"]), ENV))
    assert_permanent(error, Reason.AUTH_FAILED)
    assert "invalid_api_key" in error.evidence
    assert OPENAI_KEY[:6] not in error.evidence


def test_it_fails_auth_when_the_region_is_refused(serve: Serve) -> None:
    """https://developers.openai.com/api/docs/guides/error-codes"""
    server = serve(OpenAI(mode="region"))
    error = failure(openai.KIND, context(options(server.url, ["gpt-4o-mini"]), ENV))
    assert_permanent(error, Reason.AUTH_FAILED)
    assert "403" in error.evidence


def test_it_names_an_unknown_model_as_misconfigured(serve: Serve) -> None:
    """https://developers.openai.com/api/docs/guides/error-codes"""
    server = serve(OpenAI())
    error = failure(openai.KIND, context(options(server.url, ["gpt-4o-mini", "gpt-foo"]), ENV))
    assert_permanent(error, Reason.MISCONFIGURED)
    assert "model gpt-foo does not exist" in error.evidence
    assert "model_not_found" in error.evidence


@pytest.mark.parametrize(
    ("headers", "wait"),
    [
        ({"retry-after-ms": "1500", "retry-after": "9"}, 1.5),
        ({"retry-after": "7"}, 7.0),
        ({}, None),
    ],
)
def test_it_retries_a_rate_limit_after_the_wait_it_names(
    headers: dict[str, str], wait: float | None, serve: Serve
) -> None:
    """https://developers.openai.com/api/docs/guides/error-codes"""
    server = serve(OpenAI(mode="rate_limited", limit_headers=headers))
    error = failure(openai.KIND, context(options(server.url, ["gpt-4o-mini"]), ENV))
    assert_transient(error, Reason.RATE_LIMITED, wait)


def test_it_does_not_retry_a_rate_limit_marked_x_should_retry_false(serve: Serve) -> None:
    """https://developers.openai.com/api/docs/guides/error-codes"""
    server = serve(OpenAI(mode="rate_limited", limit_headers={"x-should-retry": "false"}))
    error = failure(openai.KIND, context(options(server.url, ["gpt-4o-mini"]), ENV))
    # Not retried, and not a failure either: a rate limit judges nothing of the key.
    assert (error.reason, error.permanent, error.retry) == (Reason.RATE_LIMITED, False, False)
