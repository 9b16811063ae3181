"""The vendor check kinds against stand-in vendors on 127.0.0.1: real HTTP(S), each
vendor's own answers, and nothing leaving loopback.

Every failing run goes through `failure()`, which also asserts that no planted key, token
or row value reached the evidence or the exception's text.
"""

from __future__ import annotations

import base64
import ssl
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

import pytest
import trustme

from checks.kinds import elevenlabs, github, google_ai, openai, statuspage, supabase, twilio
from checks.kinds.base import CheckError, Context, Kind, Reason
from checks.kinds.vendor_errors import api_url

from .standin import Answer, Reply, Seen, StandIn, stand_in
from .vendors import (
    ELEVENLABS_KEY,
    GITHUB_TOKEN,
    GOOGLE_KEY,
    OPENAI_KEY,
    PLANTED,
    PLANTED_ROW,
    SUPABASE_JWT,
    SUPABASE_KEY,
    TWILIO_SID,
    TWILIO_TOKEN,
    ElevenLabs,
    GitHub,
    Google,
    OpenAI,
    StatusPage,
    Supabase,
    Tag,
    Twilio,
    Vendor,
    phone_number,
    production_number,
)

OPENAI_ENV = {"OPENAI_KEY": OPENAI_KEY}
GOOGLE_ENV = {"GEMINI_KEY": GOOGLE_KEY}
ELEVENLABS_ENV = {"ELEVENLABS_KEY": ELEVENLABS_KEY}
TWILIO_ENV = {"TWILIO_TOKEN": TWILIO_TOKEN, "TWILIO_SID": TWILIO_SID}
SUPABASE_ENV = {"SUPABASE_KEY": SUPABASE_KEY}
GITHUB_ENV = {"GITHUB_TOKEN": GITHUB_TOKEN}


def context(options: Mapping[str, Any], env: Mapping[str, str] | None = None) -> Context:
    return Context(options=options, release_version="v1.0.0", env=dict(env or {}))


def assert_clean(*texts: str) -> None:
    for text in texts:
        for planted in PLANTED:
            assert planted not in text


def success(kind: Kind, ctx: Context) -> str:
    evidence = kind.run(ctx)
    assert_clean(evidence)
    return evidence


def failure(kind: Kind, ctx: Context) -> CheckError:
    with pytest.raises(CheckError) as caught:
        kind.run(ctx)
    error = caught.value
    assert_clean(error.evidence, str(error), repr(error.args))
    return error


def assert_permanent(error: CheckError, reason: Reason) -> None:
    assert (error.reason, error.permanent) == (reason, True), error.evidence


def assert_transient(error: CheckError, reason: Reason, retry_after: float | None = None) -> None:
    assert (error.reason, error.permanent) == (reason, False), error.evidence
    assert error.retry_after == (pytest.approx(retry_after) if retry_after is not None else None)


def assert_secret_only_in_headers(requests: list[Seen], secret: str) -> None:
    assert requests
    for seen in requests:
        assert secret not in seen.path
        assert all(
            secret not in name and all(secret not in value for value in values)
            for name, values in seen.query.items()
        )


# The same scenario for every kind: the generic ways an answer fails. -------------------


@dataclass(frozen=True)
class Case:
    kind: Kind
    vendor: type[Vendor]
    options: Callable[[str], dict[str, Any]]
    env: Mapping[str, str]


CASES: dict[str, Case] = {
    "openai": Case(
        openai.KIND,
        OpenAI,
        lambda url: {"secret_env": "OPENAI_KEY", "base_url": url, "models": ["gpt-4o-mini"]},
        OPENAI_ENV,
    ),
    "google_ai": Case(
        google_ai.KIND,
        Google,
        lambda url: {"secret_env": "GEMINI_KEY", "base_url": url, "models": ["gemini-2.5-flash"]},
        GOOGLE_ENV,
    ),
    "elevenlabs": Case(
        elevenlabs.KIND,
        ElevenLabs,
        lambda url: {
            "secret_env": "ELEVENLABS_KEY",
            "base_url": url,
            "voice_id": "21m00Tcm4TlvDq8ikWAM",
        },
        ELEVENLABS_ENV,
    ),
    "twilio": Case(
        twilio.KIND,
        Twilio,
        lambda url: {
            "secret_env": "TWILIO_TOKEN",
            "account_sid_env": "TWILIO_SID",
            "base_url": url,
            "expected_host": "api.example.com",
        },
        TWILIO_ENV,
    ),
    "supabase": Case(
        supabase.KIND,
        Supabase,
        lambda url: {"secret_env": "SUPABASE_KEY", "base_url": url, "tables": ["profiles"]},
        SUPABASE_ENV,
    ),
    "github": Case(
        github.KIND,
        GitHub,
        lambda url: {"repo": "octo-org/website", "secret_env": "GITHUB_TOKEN", "base_url": url},
        GITHUB_ENV,
    ),
    "statuspage": Case(statuspage.KIND, StatusPage, lambda url: {"url": url}, {}),
}
SECRET_CASES = [name for name in CASES if name != "statuspage"]


@dataclass(frozen=True)
class Certificates:
    server: ssl.SSLContext
    ca_file: Path


@pytest.fixture(scope="module")
def certificates(tmp_path_factory: pytest.TempPathFactory) -> Certificates:
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1", "localhost")
    server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    cert.configure_cert(server)
    ca_file = tmp_path_factory.mktemp("ca") / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    return Certificates(server, ca_file)


@pytest.fixture(scope="module", autouse=True)
def isolated_trust_store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    # The checks' default trust store holds one unrelated CA: nothing the host trusts can
    # make an untrusted stand-in pass, and each client skips parsing the system bundle.
    folder = tmp_path_factory.mktemp("trust")
    trustme.CA().cert_pem.write_to_path(str(folder / "unrelated.pem"))
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("SSL_CERT_FILE", str(folder / "unrelated.pem"))
        patch.setenv("SSL_CERT_DIR", str(folder))
        yield


class Switch:
    """The answer of a stand-in that lives for the whole module and answers as whichever
    vendor the current test plugs in: stopping a stand-in waits out its serve loop's
    half-second poll, too long to pay in every test."""

    def __init__(self) -> None:
        self.answer: Answer = lambda _request: Reply(503)
        self.server: StandIn | None = None

    def __call__(self, request: Seen) -> Reply:
        return self.answer(request)

    def plug(self, vendor: Answer) -> StandIn:
        assert self.server is not None
        self.answer = vendor
        self.server.requests.clear()
        return self.server


Serve = Callable[[Answer], StandIn]


@pytest.fixture(scope="module")
def prompt_replies() -> Iterator[None]:
    # The stand-in writes headers and body in two sends; with Nagle's algorithm on, the
    # body waits for the client's delayed ACK, 40 ms per request on Linux.
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(BaseHTTPRequestHandler, "disable_nagle_algorithm", True)
        yield


@pytest.fixture(scope="module")
def plain_switch(prompt_replies: None) -> Iterator[Switch]:
    switch = Switch()
    with stand_in(switch) as server:
        switch.server = server
        yield switch


@pytest.fixture(scope="module")
def tls_switch(prompt_replies: None, certificates: Certificates) -> Iterator[Switch]:
    switch = Switch()
    with stand_in(switch, tls=certificates.server) as server:
        switch.server = server
        yield switch


@pytest.fixture
def serve(plain_switch: Switch) -> Serve:
    return plain_switch.plug


@pytest.fixture
def serve_tls(tls_switch: Switch) -> Serve:
    return tls_switch.plug


@pytest.fixture
def short_timeouts(settings: Any) -> None:
    settings.CHECKS_READ_TIMEOUT = 0.5
    settings.CHECKS_CONNECT_TIMEOUT = 0.5


@pytest.mark.parametrize("name", CASES)
def test_it_passes_each_kind_against_its_healthy_vendor(name: str, serve: Serve) -> None:
    case = CASES[name]
    server = serve(case.vendor())
    assert success(case.kind, context(case.options(server.url), case.env))


@pytest.mark.parametrize("name", CASES)
def test_it_calls_a_vendor_5xx_an_outage_worth_retrying(name: str, serve: Serve) -> None:
    case = CASES[name]
    server = serve(case.vendor(mode="down"))
    error = failure(case.kind, context(case.options(server.url), case.env))
    assert_transient(error, Reason.VENDOR_DOWN)


@pytest.mark.parametrize("name", CASES)
def test_it_calls_a_garbage_body_a_bad_response_worth_retrying(name: str, serve: Serve) -> None:
    case = CASES[name]
    server = serve(case.vendor(mode="garbage"))
    error = failure(case.kind, context(case.options(server.url), case.env))
    assert_transient(error, Reason.BAD_RESPONSE)


@pytest.mark.parametrize("name", CASES)
def test_it_calls_silence_past_the_read_timeout_a_timeout(
    name: str, short_timeouts: None, serve: Serve
) -> None:
    case = CASES[name]
    server = serve(case.vendor(mode="silent"))
    error = failure(case.kind, context(case.options(server.url), case.env))
    assert_transient(error, Reason.TIMED_OUT)


@pytest.mark.parametrize("name", CASES)
def test_it_refuses_to_follow_a_redirect(name: str, serve: Serve) -> None:
    case = CASES[name]
    server = serve(case.vendor(mode="redirect"))
    error = failure(case.kind, context(case.options(server.url), case.env))
    assert_permanent(error, Reason.MISCONFIGURED)
    assert "redirect" in error.evidence


@pytest.mark.parametrize("name", CASES)
def test_it_fails_a_certificate_from_a_ca_it_was_not_given(name: str, serve_tls: Serve) -> None:
    case = CASES[name]
    server = serve_tls(case.vendor())
    error = failure(case.kind, context(case.options(server.url), case.env))
    assert_permanent(error, Reason.MISCONFIGURED)
    assert "TLS certificate not accepted" in error.evidence
    assert server.requests == []


@pytest.mark.parametrize("name", CASES)
def test_it_trusts_a_private_ca_given_as_ca_file(
    name: str, certificates: Certificates, serve_tls: Serve
) -> None:
    case = CASES[name]
    server = serve_tls(case.vendor())
    options = {**case.options(server.url), "ca_file": str(certificates.ca_file)}
    assert success(case.kind, context(options, case.env))
    assert server.url.startswith("https://")


@pytest.mark.parametrize("name", SECRET_CASES)
def test_it_fails_before_any_request_when_the_key_variable_is_unset(
    name: str, serve: Serve
) -> None:
    case = CASES[name]
    server = serve(case.vendor())
    error = failure(case.kind, context(case.options(server.url), {}))
    assert_permanent(error, Reason.MISCONFIGURED)
    assert "is not set" in error.evidence
    assert server.requests == []


@pytest.mark.parametrize(
    ("base", "expected"),
    [
        ("", "https://api.openai.com/v1"),
        ("http://127.0.0.1:8000", "http://127.0.0.1:8000/v1"),
        ("http://127.0.0.1:8000/", "http://127.0.0.1:8000/v1"),
        ("https://proxy.example/openai/v1", "https://proxy.example/openai/v1"),
        ("https://proxy.example/openai/v1/", "https://proxy.example/openai/v1"),
        ("https://proxy.example/apiv1", "https://proxy.example/apiv1/v1"),
    ],
)
def test_it_joins_the_version_segment_exactly_once(base: str, expected: str) -> None:
    assert api_url(base, "https://api.openai.com", "v1") == expected


# OpenAI ---------------------------------------------------------------------------------


def openai_options(url: str, models: list[str] | None = None) -> dict[str, Any]:
    options: dict[str, Any] = {"secret_env": "OPENAI_KEY", "base_url": url}
    if models is not None:
        options["models"] = models
    return options


def test_it_passes_openai_when_the_key_lists_models_and_each_configured_model_exists(
    serve: Serve,
) -> None:
    server = serve(OpenAI())
    evidence = success(
        openai.KIND,
        context(openai_options(server.url, ["gpt-4o-mini", "whisper-1"]), OPENAI_ENV),
    )
    assert evidence == "key accepted; 3 models listed; models gpt-4o-mini, whisper-1 available"
    assert [seen.path for seen in server.requests] == [
        "/v1/models",
        "/v1/models/gpt-4o-mini",
        "/v1/models/whisper-1",
    ]
    assert {seen.header("authorization") for seen in server.requests} == {f"Bearer {OPENAI_KEY}"}
    assert_secret_only_in_headers(server.requests, OPENAI_KEY)


def test_it_proves_an_openai_key_with_the_model_list_alone_when_no_models_are_named(
    serve: Serve,
) -> None:
    server = serve(OpenAI())
    evidence = success(openai.KIND, context(openai_options(server.url), OPENAI_ENV))
    assert evidence == "key accepted; 3 models listed"
    assert [seen.path for seen in server.requests] == ["/v1/models"]


def test_it_does_not_append_v1_twice_to_an_openai_base_url_ending_in_v1(serve: Serve) -> None:
    server = serve(OpenAI())
    success(openai.KIND, context(openai_options(server.url + "/v1", ["whisper-1"]), OPENAI_ENV))
    assert [seen.path for seen in server.requests] == ["/v1/models", "/v1/models/whisper-1"]


def test_it_fails_openai_auth_for_a_refused_key_without_quoting_its_masked_form(
    serve: Serve,
) -> None:
    server = serve(OpenAI(key="sk-the-real-one"))
    error = failure(openai.KIND, context(openai_options(server.url), OPENAI_ENV))
    assert_permanent(error, Reason.AUTH_FAILED)
    assert "invalid_api_key" in error.evidence
    assert OPENAI_KEY[:6] not in error.evidence


def test_it_fails_openai_auth_when_the_region_is_refused(serve: Serve) -> None:
    server = serve(OpenAI(mode="region"))
    error = failure(openai.KIND, context(openai_options(server.url), OPENAI_ENV))
    assert_permanent(error, Reason.AUTH_FAILED)
    assert "403" in error.evidence


def test_it_names_an_unknown_openai_model_as_misconfigured(serve: Serve) -> None:
    server = serve(OpenAI())
    error = failure(
        openai.KIND, context(openai_options(server.url, ["gpt-4o-mini", "gpt-foo"]), OPENAI_ENV)
    )
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
def test_it_retries_an_openai_rate_limit_after_the_wait_it_names(
    headers: dict[str, str], wait: float | None, serve: Serve
) -> None:
    server = serve(OpenAI(mode="rate_limited", limit_headers=headers))
    error = failure(openai.KIND, context(openai_options(server.url), OPENAI_ENV))
    assert_transient(error, Reason.RATE_LIMITED, wait)


def test_it_does_not_retry_an_openai_rate_limit_marked_x_should_retry_false(serve: Serve) -> None:
    vendor = OpenAI(mode="rate_limited", limit_headers={"x-should-retry": "false"})
    server = serve(vendor)
    error = failure(openai.KIND, context(openai_options(server.url), OPENAI_ENV))
    # Not retried, and not a failure either: a rate limit judges nothing of the key.
    assert (error.reason, error.permanent, error.retry) == (Reason.RATE_LIMITED, False, False)


def test_it_fails_for_good_when_the_openai_quota_is_exhausted(serve: Serve) -> None:
    server = serve(OpenAI(mode="quota", limit_headers={"retry-after": "1"}))
    error = failure(openai.KIND, context(openai_options(server.url), OPENAI_ENV))
    assert_permanent(error, Reason.QUOTA_EXHAUSTED)
    assert "insufficient_quota" in error.evidence


# Google AI ------------------------------------------------------------------------------


def google_options(url: str, models: list[str] | None = None) -> dict[str, Any]:
    options: dict[str, Any] = {"secret_env": "GEMINI_KEY", "base_url": url}
    if models is not None:
        options["models"] = models
    return options


def test_it_passes_google_with_each_model_resolved_through_the_key_header(serve: Serve) -> None:
    server = serve(Google())
    evidence = success(
        google_ai.KIND,
        context(
            google_options(server.url, ["gemini-2.5-flash", "models/text-embedding-004"]),
            GOOGLE_ENV,
        ),
    )
    assert evidence == (
        "key accepted; models gemini-2.5-flash, text-embedding-004 available; "
        "generateContent not supported by text-embedding-004"
    )
    assert [seen.path for seen in server.requests] == [
        "/v1beta/models/gemini-2.5-flash",
        "/v1beta/models/text-embedding-004",
    ]
    assert {seen.header("x-goog-api-key") for seen in server.requests} == {GOOGLE_KEY}
    assert all("key" not in seen.query for seen in server.requests)
    assert_secret_only_in_headers(server.requests, GOOGLE_KEY)


def test_it_says_when_every_google_model_supports_generate_content(serve: Serve) -> None:
    server = serve(Google())
    evidence = success(
        google_ai.KIND, context(google_options(server.url, ["gemini-2.5-flash"]), GOOGLE_ENV)
    )
    assert evidence == "key accepted; models gemini-2.5-flash available, all with generateContent"


def test_it_lists_one_google_model_when_none_are_named(serve: Serve) -> None:
    server = serve(Google())
    evidence = success(google_ai.KIND, context(google_options(server.url + "/v1beta"), GOOGLE_ENV))
    assert evidence == "key accepted; model list readable"
    [seen] = server.requests
    assert (seen.path, seen.query) == ("/v1beta/models", {"pageSize": ["1"]})


def test_it_fails_google_auth_for_a_bad_key_even_though_google_answers_400(serve: Serve) -> None:
    server = serve(Google(key="AIza-the-real-one"))
    error = failure(google_ai.KIND, context(google_options(server.url), GOOGLE_ENV))
    assert_permanent(error, Reason.AUTH_FAILED)
    assert "API_KEY_INVALID" in error.evidence


def test_it_fails_google_auth_when_the_key_lacks_permission(serve: Serve) -> None:
    server = serve(Google(mode="denied"))
    error = failure(google_ai.KIND, context(google_options(server.url), GOOGLE_ENV))
    assert_permanent(error, Reason.AUTH_FAILED)
    assert "PERMISSION_DENIED" in error.evidence


def test_it_calls_a_google_failed_precondition_misconfigured(serve: Serve) -> None:
    server = serve(Google(mode="precondition"))
    error = failure(google_ai.KIND, context(google_options(server.url), GOOGLE_ENV))
    assert_permanent(error, Reason.MISCONFIGURED)
    assert "FAILED_PRECONDITION" in error.evidence


def test_it_names_an_unknown_google_model(serve: Serve) -> None:
    server = serve(Google())
    error = failure(
        google_ai.KIND,
        context(google_options(server.url, ["models/gemini-9-ultra"]), GOOGLE_ENV),
    )
    assert_permanent(error, Reason.MISCONFIGURED)
    assert "unknown model gemini-9-ultra" in error.evidence


@pytest.mark.parametrize(
    ("delay", "headers", "wait"),
    [("57.2s", {}, 57.2), ("38s", {"Retry-After": "5"}, 38.0), ("", {"Retry-After": "5"}, 5.0)],
)
def test_it_retries_a_google_rate_limit_after_its_retry_info_delay(
    delay: str, headers: dict[str, str], wait: float, serve: Serve
) -> None:
    server = serve(Google(mode="rate_limited", retry_delay=delay, limit_headers=headers))
    error = failure(google_ai.KIND, context(google_options(server.url), GOOGLE_ENV))
    assert_transient(error, Reason.RATE_LIMITED, wait)
    assert "RESOURCE_EXHAUSTED" in error.evidence


# ElevenLabs -----------------------------------------------------------------------------


def elevenlabs_options(url: str, **more: Any) -> dict[str, Any]:
    return {"secret_env": "ELEVENLABS_KEY", "base_url": url, **more}


def test_it_passes_elevenlabs_with_an_active_subscription_and_the_voice_found(serve: Serve) -> None:
    server = serve(ElevenLabs())
    evidence = success(
        elevenlabs.KIND,
        context(
            elevenlabs_options(server.url, voice_id="21m00Tcm4TlvDq8ikWAM", min_characters=5000),
            ELEVENLABS_ENV,
        ),
    )
    assert evidence == (
        "key accepted; creator subscription active; 75000 of 100000 characters left; "
        "voice 21m00Tcm4TlvDq8ikWAM (Rachel)"
    )
    assert [seen.path for seen in server.requests] == [
        "/v1/user/subscription",
        "/v1/voices/21m00Tcm4TlvDq8ikWAM",
    ]
    assert {seen.header("xi-api-key") for seen in server.requests} == {ELEVENLABS_KEY}
    assert_secret_only_in_headers(server.requests, ELEVENLABS_KEY)


def test_it_accepts_a_trialing_elevenlabs_subscription_without_a_voice(serve: Serve) -> None:
    server = serve(ElevenLabs(status="trialing", tier="free"))
    evidence = success(elevenlabs.KIND, context(elevenlabs_options(server.url), ELEVENLABS_ENV))
    assert evidence == "key accepted; free subscription trialing; 75000 of 100000 characters left"


@pytest.mark.parametrize("legacy", [True, False])
def test_it_fails_elevenlabs_auth_for_a_refused_key_in_either_error_shape(
    legacy: bool, serve: Serve
) -> None:
    server = serve(ElevenLabs(key="sk_the_real_one", legacy_errors=legacy))
    error = failure(elevenlabs.KIND, context(elevenlabs_options(server.url), ELEVENLABS_ENV))
    assert_permanent(error, Reason.AUTH_FAILED)
    assert "invalid_api_key" in error.evidence


@pytest.mark.parametrize(
    ("granted", "missing"), [({"voices_read"}, "user_read"), ({"user_read"}, "voices_read")]
)
def test_it_says_a_scoped_elevenlabs_key_is_valid_but_lacks_a_permission(
    granted: set[str], missing: str, serve: Serve
) -> None:
    server = serve(ElevenLabs(permissions=frozenset(granted), legacy_errors=False))
    error = failure(
        elevenlabs.KIND,
        context(elevenlabs_options(server.url, voice_id="21m00Tcm4TlvDq8ikWAM"), ELEVENLABS_ENV),
    )
    assert_permanent(error, Reason.AUTH_FAILED)
    assert f"the key is valid but lacks the permission {missing}" in error.evidence


@pytest.mark.parametrize("status", ["past_due", "free_disabled", "incomplete"])
def test_it_names_an_elevenlabs_subscription_that_is_neither_active_nor_trialing(
    status: str, serve: Serve
) -> None:
    server = serve(ElevenLabs(status=status))
    error = failure(elevenlabs.KIND, context(elevenlabs_options(server.url), ELEVENLABS_ENV))
    assert_permanent(error, Reason.MISCONFIGURED)
    assert f"subscription status is {status}" in error.evidence


def test_it_fails_elevenlabs_quota_below_the_minimum_with_both_numbers(serve: Serve) -> None:
    server = serve(ElevenLabs(character_count=99000))
    error = failure(
        elevenlabs.KIND,
        context(elevenlabs_options(server.url, min_characters=5000), ELEVENLABS_ENV),
    )
    assert_permanent(error, Reason.QUOTA_EXHAUSTED)
    assert error.evidence == "1000 of 100000 characters left, below the minimum of 5000"


def test_it_fails_an_exhausted_elevenlabs_quota_even_without_a_minimum(serve: Serve) -> None:
    server = serve(ElevenLabs(character_count=100000))
    error = failure(elevenlabs.KIND, context(elevenlabs_options(server.url), ELEVENLABS_ENV))
    assert_permanent(error, Reason.QUOTA_EXHAUSTED)


def test_it_fails_elevenlabs_quota_exceeded_answers_for_good(serve: Serve) -> None:
    server = serve(ElevenLabs(mode="quota"))
    error = failure(elevenlabs.KIND, context(elevenlabs_options(server.url), ELEVENLABS_ENV))
    assert_permanent(error, Reason.QUOTA_EXHAUSTED)
    assert "quota_exceeded" in error.evidence


@pytest.mark.parametrize("status", [400, 404])
def test_it_names_an_unknown_elevenlabs_voice(status: int, serve: Serve) -> None:
    server = serve(ElevenLabs(voice_missing_status=status))
    error = failure(
        elevenlabs.KIND,
        context(elevenlabs_options(server.url, voice_id="nope"), ELEVENLABS_ENV),
    )
    assert_permanent(error, Reason.MISCONFIGURED)
    assert error.evidence.startswith("voice nope not found")


@pytest.mark.parametrize(
    "code",
    [
        "too_many_concurrent_requests",
        "system_busy",
        "rate_limit_exceeded",
        "concurrent_limit_exceeded",
    ],
)
def test_it_retries_a_busy_elevenlabs(code: str, serve: Serve) -> None:
    vendor = ElevenLabs(mode="busy", busy_code=code, limit_headers={"Retry-After": "3"})
    server = serve(vendor)
    error = failure(elevenlabs.KIND, context(elevenlabs_options(server.url), ELEVENLABS_ENV))
    assert_transient(error, Reason.RATE_LIMITED, 3.0)
    assert code in error.evidence


def test_it_reads_an_elevenlabs_validation_error_whose_detail_is_a_list(serve: Serve) -> None:
    server = serve(ElevenLabs(mode="invalid"))
    error = failure(elevenlabs.KIND, context(elevenlabs_options(server.url), ELEVENLABS_ENV))
    assert_transient(error, Reason.BAD_RESPONSE)
    assert "422" in error.evidence


# Twilio ---------------------------------------------------------------------------------


def twilio_options(url: str, **more: Any) -> dict[str, Any]:
    return {"secret_env": "TWILIO_TOKEN", "account_sid_env": "TWILIO_SID", "base_url": url, **more}


def test_it_passes_twilio_with_a_full_account_and_every_webhook_on_the_host(serve: Serve) -> None:
    server = serve(Twilio())
    evidence = success(
        twilio.KIND,
        context(twilio_options(server.url, expected_host="API.example.com"), TWILIO_ENV),
    )
    assert evidence == "account active, Full; 3 numbers, all webhooks https on api.example.com"
    numbers = f"/2010-04-01/Accounts/{TWILIO_SID}/IncomingPhoneNumbers.json"
    assert [seen.path for seen in server.requests] == [
        f"/2010-04-01/Accounts/{TWILIO_SID}.json",
        numbers,
        numbers,
    ]
    assert server.requests[2].query["Page"] == ["1"]
    basic = base64.b64encode(f"{TWILIO_SID}:{TWILIO_TOKEN}".encode()).decode()
    assert {seen.header("authorization") for seen in server.requests} == {f"Basic {basic}"}
    assert_secret_only_in_headers(server.requests, TWILIO_TOKEN)


def test_it_does_not_append_the_twilio_version_twice(serve: Serve) -> None:
    server = serve(Twilio())
    evidence = success(twilio.KIND, context(twilio_options(server.url + "/2010-04-01"), TWILIO_ENV))
    assert evidence == "account active, Full; 3 numbers, all webhooks https"
    assert server.requests[0].path == f"/2010-04-01/Accounts/{TWILIO_SID}.json"


@pytest.mark.parametrize(
    ("status", "account_type", "said"),
    [
        ("active", "Trial", "account type is Trial, not Full"),
        ("suspended", "Full", "account status is suspended, not active"),
        ("closed", "Full", "account status is closed, not active"),
    ],
)
def test_it_fails_a_twilio_account_that_is_not_active_and_full(
    status: str, account_type: str, said: str, serve: Serve
) -> None:
    server = serve(Twilio(status=status, account_type=account_type))
    error = failure(twilio.KIND, context(twilio_options(server.url), TWILIO_ENV))
    assert_permanent(error, Reason.MISCONFIGURED)
    assert said in error.evidence


def test_it_names_the_number_and_field_of_a_plain_http_webhook_without_its_query(
    serve: Serve,
) -> None:
    numbers = [
        production_number("+15550100001"),
        phone_number(
            "+15550100002",
            sms_url="http://staging.example.com/sms?token=planted-query-token",
        ),
    ]
    server = serve(Twilio(numbers=numbers))
    error = failure(twilio.KIND, context(twilio_options(server.url), TWILIO_ENV))
    assert_permanent(error, Reason.MISCONFIGURED)
    assert error.evidence == (
        "1 webhook problem: +15550100002 sms_url is not https (http on staging.example.com)"
    )
    assert "planted-query-token" not in error.evidence


def test_it_names_a_twilio_webhook_on_another_host(serve: Serve) -> None:
    numbers = [
        phone_number("+15550100003", status_callback="https://abc123.ngrok.io/status"),
        phone_number("+15550100004", voice_fallback_url="https://localhost/fallback"),
    ]
    server = serve(Twilio(numbers=numbers))
    error = failure(
        twilio.KIND,
        context(twilio_options(server.url, expected_host="api.example.com"), TWILIO_ENV),
    )
    assert_permanent(error, Reason.MISCONFIGURED)
    assert error.evidence == (
        "2 webhook problems: +15550100003 status_callback points at abc123.ngrok.io, not "
        "api.example.com; +15550100004 voice_fallback_url points at localhost, not api.example.com"
    )


def test_it_skips_twilio_urls_that_an_application_or_trunk_handles_and_says_so(
    serve: Serve,
) -> None:
    numbers = [
        phone_number(
            "+15550100005",
            voice_application_sid="AP" + "2" * 32,
            voice_url="http://ignored.example/voice",
            sms_url="https://api.example.com/sms",
        ),
        phone_number("+15550100006", trunk_sid="TK" + "3" * 32, voice_url="http://ignored.example"),
        phone_number(
            "+15550100007", sms_application_sid="AP" + "4" * 32, sms_url="http://ignored.example"
        ),
    ]
    server = serve(Twilio(numbers=numbers))
    evidence = success(
        twilio.KIND,
        context(twilio_options(server.url, expected_host="api.example.com"), TWILIO_ENV),
    )
    assert evidence == (
        "account active, Full; 3 numbers, all webhooks https on api.example.com; "
        "voice URLs of 2 numbers not checked (an application or trunk handles them); "
        "sms URLs of 1 number not checked (an application handles them)"
    )


def test_it_fails_twilio_auth_for_a_refused_token(
    serve: Serve,
) -> None:
    server = serve(Twilio(token="the-real-token"))
    error = failure(twilio.KIND, context(twilio_options(server.url), TWILIO_ENV))
    assert_permanent(error, Reason.AUTH_FAILED)
    assert "code 20003" in error.evidence


def test_it_fails_twilio_auth_when_the_sid_belongs_to_another_token(serve: Serve) -> None:
    other = "AC" + "f" * 32
    server = serve(Twilio())
    error = failure(
        twilio.KIND, context(twilio_options(server.url), {**TWILIO_ENV, "TWILIO_SID": other})
    )
    assert_permanent(error, Reason.AUTH_FAILED)
    assert "code 20003" in error.evidence


def test_it_fails_twilio_auth_when_no_account_is_found_for_the_credentials(serve: Serve) -> None:
    server = serve(Twilio(mode="no_account"))
    error = failure(twilio.KIND, context(twilio_options(server.url), TWILIO_ENV))
    assert_permanent(error, Reason.AUTH_FAILED)
    assert error.evidence == "account not found for these credentials (HTTP 404 code 20404)"


def test_it_rejects_an_account_sid_that_is_not_ac_and_32_hex_digits(serve: Serve) -> None:
    server = serve(Twilio())
    error = failure(
        twilio.KIND, context(twilio_options(server.url), {**TWILIO_ENV, "TWILIO_SID": "SK123"})
    )
    assert_permanent(error, Reason.MISCONFIGURED)
    assert server.requests == []


def test_it_retries_a_twilio_rate_limit_after_its_retry_after(serve: Serve) -> None:
    server = serve(Twilio(mode="rate_limited", limit_headers={"Retry-After": "2"}))
    error = failure(twilio.KIND, context(twilio_options(server.url), TWILIO_ENV))
    assert_transient(error, Reason.RATE_LIMITED, 2.0)
    assert "code 20429" in error.evidence


def test_it_never_follows_a_twilio_next_page_to_another_host(serve: Serve) -> None:
    server = serve(Twilio(mode="foreign_page"))
    error = failure(twilio.KIND, context(twilio_options(server.url), TWILIO_ENV))
    assert_transient(error, Reason.BAD_RESPONSE)
    assert len(server.requests) == 2


def test_it_stops_after_twenty_pages_of_twilio_numbers(serve: Serve) -> None:
    server = serve(Twilio(mode="endless"))
    error = failure(twilio.KIND, context(twilio_options(server.url), TWILIO_ENV))
    assert_transient(error, Reason.BAD_RESPONSE)
    assert "more than 20 pages" in error.evidence
    assert len(server.requests) == 21


# Supabase -------------------------------------------------------------------------------


def supabase_options(url: str, tables: list[str] | None = None) -> dict[str, Any]:
    options: dict[str, Any] = {"secret_env": "SUPABASE_KEY", "base_url": url}
    if tables is not None:
        options["tables"] = tables
    return options


def test_it_passes_supabase_with_a_new_key_in_apikey_only(serve: Serve) -> None:
    server = serve(Supabase())
    evidence = success(
        supabase.KIND,
        context(supabase_options(server.url, ["profiles", "orders"]), SUPABASE_ENV),
    )
    assert (
        evidence == "key accepted; auth GoTrue v2.170.0 healthy; tables profiles, orders readable"
    )
    assert [(seen.path, seen.query) for seen in server.requests] == [
        ("/auth/v1/health", {}),
        ("/rest/v1/profiles", {"select": ["*"], "limit": ["1"]}),
        ("/rest/v1/orders", {"select": ["*"], "limit": ["1"]}),
    ]
    assert {seen.header("apikey") for seen in server.requests} == {SUPABASE_KEY}
    assert {seen.header("authorization") for seen in server.requests} == {""}
    assert_secret_only_in_headers(server.requests, SUPABASE_KEY)


def test_it_sends_a_legacy_supabase_jwt_as_bearer_too(serve: Serve) -> None:
    server = serve(Supabase(key=SUPABASE_JWT))
    success(
        supabase.KIND,
        context(supabase_options(server.url, ["profiles"]), {"SUPABASE_KEY": SUPABASE_JWT}),
    )
    assert {seen.header("authorization") for seen in server.requests} == {f"Bearer {SUPABASE_JWT}"}


def test_it_url_quotes_a_supabase_table_name(serve: Serve) -> None:
    server = serve(Supabase(tables={"order items": "ok"}))
    success(supabase.KIND, context(supabase_options(server.url, ["order items"]), SUPABASE_ENV))
    assert server.requests[1].path == "/rest/v1/order%20items"


def test_it_fails_supabase_auth_when_the_gateway_refuses_the_key(serve: Serve) -> None:
    server = serve(Supabase(key="sb_secret_the_real_one"))
    error = failure(supabase.KIND, context(supabase_options(server.url), SUPABASE_ENV))
    assert_permanent(error, Reason.AUTH_FAILED)
    assert "gateway refused the API key" in error.evidence


def test_it_fails_supabase_auth_when_no_key_reaches_the_gateway(serve: Serve) -> None:
    server = serve(Supabase(mode="key_stripped"))
    error = failure(supabase.KIND, context(supabase_options(server.url), SUPABASE_ENV))
    assert_permanent(error, Reason.AUTH_FAILED)
    assert error.evidence == "auth health: no API key reached the gateway (HTTP 401)"


def test_it_names_a_missing_supabase_table(serve: Serve) -> None:
    server = serve(Supabase())
    error = failure(supabase.KIND, context(supabase_options(server.url, ["profile"]), SUPABASE_ENV))
    assert_permanent(error, Reason.MISCONFIGURED)
    assert error.evidence == "table profile not found (HTTP 404 PGRST205)"


def test_it_names_a_supabase_table_without_a_grant(serve: Serve) -> None:
    server = serve(Supabase(tables={"profiles": "no_grant"}))
    error = failure(
        supabase.KIND, context(supabase_options(server.url, ["profiles"]), SUPABASE_ENV)
    )
    assert_permanent(error, Reason.MISCONFIGURED)
    assert error.evidence == "permission denied on profiles: missing GRANT (HTTP 403 42501)"


def test_it_fails_supabase_auth_when_postgrest_rejects_the_jwt(serve: Serve) -> None:
    server = serve(Supabase(mode="jwt_rejected"))
    error = failure(
        supabase.KIND, context(supabase_options(server.url, ["profiles"]), SUPABASE_ENV)
    )
    assert_permanent(error, Reason.AUTH_FAILED)
    assert "PGRST301" in error.evidence


def test_it_retries_when_the_supabase_database_is_unreachable(serve: Serve) -> None:
    server = serve(Supabase(mode="db_down"))
    error = failure(
        supabase.KIND, context(supabase_options(server.url, ["profiles"]), SUPABASE_ENV)
    )
    assert_transient(error, Reason.VENDOR_DOWN)
    assert "PGRST002" in error.evidence


def test_it_fails_a_paused_supabase_project_for_good(serve: Serve) -> None:
    server = serve(Supabase(mode="paused"))
    error = failure(supabase.KIND, context(supabase_options(server.url), SUPABASE_ENV))
    assert_permanent(error, Reason.MISCONFIGURED)
    assert "paused" in error.evidence


def test_it_never_keeps_supabase_row_contents(serve: Serve) -> None:
    server = serve(Supabase())
    evidence = success(
        supabase.KIND, context(supabase_options(server.url, ["profiles"]), SUPABASE_ENV)
    )
    assert PLANTED_ROW not in evidence


# GitHub ---------------------------------------------------------------------------------


def github_options(url: str, *, token: bool = True) -> dict[str, Any]:
    options: dict[str, Any] = {"repo": "octo-org/website", "base_url": url}
    if token:
        options["secret_env"] = "GITHUB_TOKEN"
    return options


def test_it_passes_github_when_the_tag_is_on_main_and_the_changelog_names_it(serve: Serve) -> None:
    server = serve(GitHub())
    evidence = success(github.KIND, context(github_options(server.url), GITHUB_ENV))
    assert evidence == "tag v1.0.0 at 1a2b3c4 is on main; CHANGELOG.md mentions 1.0.0"
    assert [seen.path for seen in server.requests] == [
        "/repos/octo-org/website",
        "/repos/octo-org/website/git/ref/tags/v1.0.0",
        "/repos/octo-org/website/compare/v1.0.0...main",
        "/repos/octo-org/website/contents/CHANGELOG.md",
    ]
    assert server.requests[3].query == {"ref": ["v1.0.0"]}
    for seen in server.requests:
        assert seen.header("accept") == "application/vnd.github+json"
        assert seen.header("x-github-api-version") == "2022-11-28"
        assert seen.header("authorization") == f"Bearer {GITHUB_TOKEN}"
    assert_secret_only_in_headers(server.requests, GITHUB_TOKEN)


def test_it_follows_an_annotated_github_tag_to_its_commit_on_an_enterprise_base(
    serve: Serve,
) -> None:
    vendor = GitHub(
        tags={"v1.0.0": Tag("9f8e7d6c5b4a", tag_object="7a7a7a7a")}, path_prefix="/api/v3"
    )
    server = serve(vendor)
    evidence = success(github.KIND, context(github_options(server.url + "/api/v3"), GITHUB_ENV))
    assert evidence == "tag v1.0.0 at 9f8e7d6 is on main; CHANGELOG.md mentions 1.0.0"
    assert server.requests[2].path == "/api/v3/repos/octo-org/website/git/tags/7a7a7a7a"


def test_it_reads_a_public_github_repository_without_a_token(serve: Serve) -> None:
    server = serve(GitHub(compare="identical"))
    success(github.KIND, context(github_options(server.url, token=False)))
    assert {seen.header("authorization") for seen in server.requests} == {""}


def test_it_says_a_missing_github_repository_may_be_private_and_invisible(serve: Serve) -> None:
    server = serve(GitHub(private=True))
    error = failure(github.KIND, context(github_options(server.url, token=False)))
    assert_permanent(error, Reason.MISCONFIGURED)
    assert error.evidence == (
        "repository octo-org/website not found, or private and no token is configured"
    )


def test_it_says_a_github_tag_does_not_exist(serve: Serve) -> None:
    server = serve(GitHub(tags={"v0.9.0": Tag("abc")}))
    error = failure(github.KIND, context(github_options(server.url), GITHUB_ENV))
    assert_permanent(error, Reason.MISCONFIGURED)
    assert error.evidence == "tag v1.0.0 does not exist"


@pytest.mark.parametrize("status", ["behind", "diverged"])
def test_it_fails_a_github_tag_that_is_not_on_the_default_branch(status: str, serve: Serve) -> None:
    server = serve(GitHub(compare=status, behind_by=2))
    error = failure(github.KIND, context(github_options(server.url), GITHUB_ENV))
    assert_permanent(error, Reason.MISCONFIGURED)
    assert error.evidence == (
        f"tag v1.0.0 is not on main (compare says {status}, 2 tagged commits not on it)"
    )


@pytest.mark.parametrize(
    "changelog",
    [
        "# Changelog\n\n## 0.9.0\n",
        "## 11.0.0\n",
        "## 1.0.0-rc1\n",
        "## 1.0.0.1\n",
    ],
)
def test_it_fails_a_changelog_that_does_not_mention_the_version(
    changelog: str, serve: Serve
) -> None:
    server = serve(GitHub(changelog=changelog))
    error = failure(github.KIND, context(github_options(server.url), GITHUB_ENV))
    assert_permanent(error, Reason.MISCONFIGURED)
    assert error.evidence == "CHANGELOG.md at v1.0.0 does not mention 1.0.0"


@pytest.mark.parametrize("text", ["## v1.0.0\n", "Released 1.0.0.", "## [1.0.0] - 2026-11-30"])
def test_it_finds_the_version_with_or_without_its_v(text: str) -> None:
    assert github.mentions(text, "1.0.0")


def test_it_fails_a_github_tag_without_a_changelog(serve: Serve) -> None:
    server = serve(GitHub(changelog=None))
    error = failure(github.KIND, context(github_options(server.url), GITHUB_ENV))
    assert_permanent(error, Reason.MISCONFIGURED)
    assert error.evidence == "no CHANGELOG.md at tag v1.0.0"


def test_it_fails_github_auth_for_a_bad_token(serve: Serve) -> None:
    server = serve(GitHub(token="ghp_the_real_one"))
    error = failure(github.KIND, context(github_options(server.url), GITHUB_ENV))
    assert_permanent(error, Reason.AUTH_FAILED)


def test_it_fails_github_auth_for_a_plain_403(serve: Serve) -> None:
    server = serve(GitHub(mode="forbidden"))
    error = failure(github.KIND, context(github_options(server.url), GITHUB_ENV))
    assert_permanent(error, Reason.AUTH_FAILED)


@pytest.mark.parametrize(
    ("mode", "wait"),
    [("primary_limit", 30.0), ("secondary_limit", 45.0), ("secondary_quiet", 60.0)],
)
def test_it_retries_a_github_rate_limit_after_the_wait_it_names(
    mode: str, wait: float, serve: Serve
) -> None:
    server = serve(GitHub(mode=mode))
    error = failure(github.KIND, context(github_options(server.url), GITHUB_ENV))
    assert error.reason == Reason.RATE_LIMITED and not error.permanent
    assert error.retry_after == pytest.approx(wait, abs=1.5)


@pytest.mark.parametrize("repo", ["octo-org", "octo/web/site", "octo/..", "", "octo org/web"])
def test_it_rejects_a_repo_not_of_the_owner_name_form(repo: str) -> None:
    with pytest.raises(ValueError, match="owner/name"):
        github.check_options({"repo": repo})


def test_it_accepts_a_repo_of_the_owner_name_form() -> None:
    github.check_options({"repo": "octo-org/web.site_2"})


# Status pages ---------------------------------------------------------------------------


def test_it_passes_a_status_page_reporting_none_from_its_base_url(serve: Serve) -> None:
    server = serve(StatusPage())
    evidence = success(statuspage.KIND, context({"url": server.url + "/"}))
    assert evidence == "page reports All Systems Operational (indicator none)"
    assert [seen.path for seen in server.requests] == ["/api/v2/summary.json"]


def test_it_uses_a_json_status_url_as_given(serve: Serve) -> None:
    server = serve(StatusPage())
    success(statuspage.KIND, context({"url": server.url + "/api/v2/summary.json"}))
    assert [seen.path for seen in server.requests] == ["/api/v2/summary.json"]


def test_it_puts_a_base_url_in_place_of_the_status_page_host(serve: Serve) -> None:
    server = serve(StatusPage())
    success(statuspage.KIND, context({"url": "https://status.openai.com", "base_url": server.url}))
    assert [seen.path for seen in server.requests] == ["/api/v2/summary.json"]


def test_it_passes_a_minor_status_page_but_notes_it(serve: Serve) -> None:
    server = serve(StatusPage(indicator="minor", description="Partially Degraded Service"))
    evidence = success(statuspage.KIND, context({"url": server.url}))
    assert evidence == "page reports Partially Degraded Service (indicator minor, noted)"


@pytest.mark.parametrize("indicator", ["major", "critical"])
def test_it_fails_a_status_page_reporting_a_major_outage(indicator: str, serve: Serve) -> None:
    server = serve(StatusPage(indicator=indicator, description="Major Service Outage"))
    error = failure(statuspage.KIND, context({"url": server.url}))
    assert_permanent(error, Reason.VENDOR_DOWN)
    assert error.evidence == f"page reports Major Service Outage (indicator {indicator})"


@pytest.mark.parametrize("indicator", ["maintenance", ""])
def test_it_never_takes_an_unknown_indicator_for_ok(indicator: str, serve: Serve) -> None:
    server = serve(StatusPage(indicator=indicator))
    error = failure(statuspage.KIND, context({"url": server.url}))
    assert_transient(error, Reason.BAD_RESPONSE)


def test_it_matches_components_by_name_ignoring_case_and_notes_degradation(serve: Serve) -> None:
    components = [
        ("API", "operational"),
        ("SMS", "degraded_performance"),
        ("Voice", "major_outage"),
    ]
    server = serve(StatusPage(indicator="major", components=components))
    evidence = success(statuspage.KIND, context({"url": server.url, "components": ["api", "Sms"]}))
    assert evidence == "API operational; SMS degraded_performance (noted)"


@pytest.mark.parametrize("status", ["partial_outage", "major_outage", "under_maintenance"])
def test_it_fails_a_named_component_that_is_down(status: str, serve: Serve) -> None:
    server = serve(StatusPage(components=[("API", "operational"), ("SMS", status)]))
    error = failure(statuspage.KIND, context({"url": server.url, "components": ["SMS", "API"]}))
    assert_permanent(error, Reason.VENDOR_DOWN)
    assert error.evidence == f"components down: SMS {status}"


def test_it_lists_up_to_five_available_names_for_a_component_not_on_the_page(serve: Serve) -> None:
    components = [(f"Region {i}", "operational") for i in range(7)]
    server = serve(StatusPage(components=components))
    error = failure(
        statuspage.KIND,
        # An id is never matched: incident.io pages changed them all.
        context({"url": server.url, "components": ["01JMXBRMFE6N2NNT7DG6XZQ6P0"]}),
    )
    assert_permanent(error, Reason.MISCONFIGURED)
    assert error.evidence == (
        "component 01JMXBRMFE6N2NNT7DG6XZQ6P0 is not on the page; available: "
        "Region 0, Region 1, Region 2, Region 3, Region 4"
    )


def test_it_never_takes_an_unknown_component_status_for_ok(serve: Serve) -> None:
    server = serve(StatusPage(components=[("API", "investigating")]))
    error = failure(statuspage.KIND, context({"url": server.url, "components": ["API"]}))
    assert_transient(error, Reason.BAD_RESPONSE)
    assert "API investigating" in error.evidence


def test_it_fails_a_status_url_with_no_summary(serve: Serve) -> None:
    server = serve(StatusPage())
    error = failure(statuspage.KIND, context({"url": server.url + "/nope.json"}))
    assert_permanent(error, Reason.MISCONFIGURED)
    assert error.evidence == "no status summary at /nope.json (HTTP 404)"
