"""The vendor check kinds against stand-in vendors on 127.0.0.1: real HTTP(S), each
vendor's own answers, and nothing leaving loopback.

Every failing run goes through `failure()`, which also asserts that no planted key, token
or row value reached the evidence or the exception's text.
"""

from __future__ import annotations

import ssl
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

import pytest
import trustme
from django.utils import translation

from checks.kinds import elevenlabs, github, google_ai, openai, statuspage, supabase, twilio
from checks.kinds.base import CheckError, Context, Kind, Reason, Said
from checks.kinds.vendor_errors import api_url

from .standin import Answer, Reply, Seen, StandIn, stand_in
from .vendors import (
    ELEVENLABS_KEY,
    GITHUB_TOKEN,
    GOOGLE_KEY,
    OPENAI_KEY,
    PLANTED,
    SUPABASE_ANON_KEY,
    SUPABASE_KEY,
    TWILIO_SID,
    TWILIO_TOKEN,
    ElevenLabs,
    GitHub,
    Google,
    OpenAI,
    StatusPage,
    Supabase,
    Twilio,
    Vendor,
)

OPENAI_ENV = {"OPENAI_KEY": OPENAI_KEY}
GOOGLE_ENV = {"GEMINI_KEY": GOOGLE_KEY}
ELEVENLABS_ENV = {"ELEVENLABS_KEY": ELEVENLABS_KEY}
TWILIO_ENV = {"TWILIO_TOKEN": TWILIO_TOKEN, "TWILIO_SID": TWILIO_SID}
SUPABASE_ENV = {"SUPABASE_KEY": SUPABASE_KEY}
SUPABASE_ANON_ENV = {"SUPABASE_ANON_KEY": SUPABASE_ANON_KEY}
GITHUB_ENV = {"GITHUB_TOKEN": GITHUB_TOKEN}


def context(options: Mapping[str, Any], env: Mapping[str, str] | None = None) -> Context:
    return Context(options=options, release_version="v1.0.0", env=dict(env or {}))


def assert_clean(*texts: str) -> None:
    for text in texts:
        for planted in PLANTED:
            assert planted not in text


def success(kind: Kind, ctx: Context) -> str:
    """The evidence of a pass, in English whether the kind wrote it as a `Said` or not."""
    evidence = kind.run(ctx)
    text = evidence.english() if isinstance(evidence, Said) else evidence
    assert_clean(text)
    return text


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


def assert_not_verified_at_once(error: CheckError) -> None:
    """An answer naming a value the vendor does not document: error, never fail, and not
    asked again, since the vendor would say the same."""
    assert (error.reason, error.permanent, error.retry) == (Reason.BAD_RESPONSE, False, False)


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
    "supabase-anon": Case(
        supabase.KIND,
        Supabase,
        lambda url: {
            "secret_env": "SUPABASE_ANON_KEY",
            "base_url": url,
            "tables": ["profiles"],
            "role": "anon",
        },
        SUPABASE_ANON_ENV,
    ),
    "github": Case(
        github.KIND,
        GitHub,
        lambda url: {"repo": "octo-org/website", "secret_env": "GITHUB_TOKEN", "base_url": url},
        GITHUB_ENV,
    ),
    "statuspage": Case(statuspage.KIND, StatusPage, lambda url: {"url": url}, {}),
}
# A GitHub token is optional: public repositories are read without one.
SECRET_CASES = [name for name in CASES if name not in ("statuspage", "github")]


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


@pytest.mark.parametrize("name", CASES)
def test_it_calls_a_ca_file_that_is_no_certificate_misconfigured_and_sends_nothing(
    name: str, serve: Serve, tmp_path: Path
) -> None:
    not_pem = tmp_path / "shadow"
    not_pem.write_text("root:*:19000:0:99999:7:::\n")
    case = CASES[name]
    server = serve(case.vendor())
    options = {**case.options(server.url), "ca_file": str(not_pem)}
    error = failure(case.kind, context(options, case.env))
    assert_permanent(error, Reason.MISCONFIGURED)
    assert error.evidence == f"ca_file {not_pem} holds no PEM certificate"
    assert server.requests == []


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


@pytest.mark.parametrize("name", ["elevenlabs", "twilio", "supabase", "github"])
def test_it_names_what_answered_an_outage_in_the_readers_language(name: str, serve: Serve) -> None:
    case = CASES[name]
    server = serve(case.vendor(mode="down"))
    error = failure(case.kind, context(case.options(server.url), case.env))
    english_label = error.evidence.partition(":")[0]
    with translation.override("es"):
        assert english_label not in error.said.translated()
