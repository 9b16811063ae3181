"""The webhook kind against receivers on 127.0.0.1 that validate each vendor's signature
the way the vendor documents it."""

from __future__ import annotations

import base64
import json
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

import httpx
import pytest
import standardwebhooks

from checks import config
from checks.kinds import webhook
from checks.kinds.base import CheckError, Context, Reason, Said
from tests.checks.protocol_standins import (
    Certificates,
    Shared,
    accepts_everything,
    certificates,
    elevenlabs_accepts,
    hmac_receiver,
    receiver_of_another_shape,
    refuses_everything,
    server_context,
    shared_stand_in,
    twilio_accepts,
    webhook_receiver,
)
from tests.checks.standin import Answer, Reply, Seen, sequence

SCHEMES = ["twilio", "elevenlabs", "standard", "hmac"]
SECRETS = {
    "twilio": "twilio-auth-token-0123456789abcdef",
    "elevenlabs": "wsec_elevenlabs-secret-0123456789",
    "standard": "whsec_" + base64.b64encode(b"standard-webhooks-key-0123").decode(),
    "hmac": "github-webhook-secret-0123",
}
LABELS = {
    "twilio": "Twilio",
    "elevenlabs": "ElevenLabs",
    "standard": "Standard Webhooks",
    "hmac": "HMAC",
}
VARIABLE = "HOOK_SECRET"


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Certificates:
    return certificates(tmp_path_factory.mktemp("certificates"))


@pytest.fixture(scope="module")
def secure_server(certs: Certificates) -> Iterator[Shared]:
    with shared_stand_in(tls=server_context(certs.valid)) as shared:
        yield shared


@pytest.fixture
def impatient(settings: Any) -> None:
    settings.CHECKS_CONNECT_TIMEOUT = 0.3
    settings.CHECKS_READ_TIMEOUT = 0.3


class Endpoint:
    """The https stand-in as one test's webhook endpoint."""

    def __init__(self, shared: Shared, certs: Certificates) -> None:
        self.shared = shared
        self.certs = certs
        self.requests: list[Seen] = []

    def check(
        self,
        answer: Answer,
        scheme: str = "twilio",
        *,
        path: str = "/hooks/in",
        secret: str | None = None,
        **options: Any,
    ) -> Said | CheckError:
        server = self.shared.serve(answer)
        self.requests = server.requests
        env = {VARIABLE: SECRETS.get(scheme, "") if secret is None else secret}
        context = Context(
            options={
                "url": server.url + path,
                "scheme": scheme,
                "secret_env": VARIABLE,
                "ca_file": self.certs.ca_file,
                **options,
            },
            release_version="v1.0.0",
            env={name: value for name, value in env.items() if value},
        )
        try:
            return webhook.run(context)
        except CheckError as error:
            return error


@pytest.fixture
def endpoint(secure_server: Shared, certs: Certificates) -> Endpoint:
    return Endpoint(secure_server, certs)


def fault_of(outcome: Said | CheckError) -> CheckError:
    assert isinstance(outcome, CheckError), outcome
    assert (outcome.permanent, outcome.reason) == (True, Reason.MISCONFIGURED)
    return outcome


def passed(outcome: Said | CheckError) -> str:
    assert isinstance(outcome, Said), outcome
    return outcome.english()


# what a vendor's validation accepts


@pytest.mark.parametrize("scheme", SCHEMES)
def test_it_passes_an_endpoint_that_accepts_the_signed_delivery_and_refuses_the_forged_one(
    endpoint: Endpoint, scheme: str
) -> None:
    """Each receiver validates as the vendor documents: Twilio
    https://www.twilio.com/docs/usage/webhooks/webhooks-security, ElevenLabs
    https://elevenlabs.io/docs/eleven-agents/workflows/post-call-webhooks, Standard Webhooks
    https://github.com/standard-webhooks/standard-webhooks/blob/main/spec/standard-webhooks.md,
    GitHub https://docs.github.com/en/webhooks/using-webhooks/validating-webhook-deliveries."""
    outcome = endpoint.check(webhook_receiver(scheme, SECRETS[scheme]), scheme)

    refused = {"twilio": 403}.get(scheme, 401)
    accepted = {"standard": 204, "hmac": 204}.get(scheme, 200)
    assert passed(outcome) == (
        f"accepted a correctly signed {LABELS[scheme]} delivery (HTTP {accepted}) and refused"
        f" a wrongly signed one (HTTP {refused})"
    )
    signed, forged = endpoint.requests
    assert [(seen.method, seen.path) for seen in endpoint.requests] == [("POST", "/hooks/in")] * 2
    assert forged.header("user-agent") == signed.header("user-agent") == "deploycheck-verify/1.0"


def test_it_sends_twilio_a_form_body_shaped_like_a_status_callback(endpoint: Endpoint) -> None:
    """Status callback parameters:
    https://www.twilio.com/docs/voice/api/call-resource#statuscallback; the signature:
    https://www.twilio.com/docs/usage/webhooks/webhooks-security."""
    endpoint.check(webhook_receiver("twilio", SECRETS["twilio"]))

    signed, forged = endpoint.requests
    assert signed.header("content-type") == "application/x-www-form-urlencoded"
    params = dict(parse_qsl(signed.body.decode()))
    assert params["AccountSid"] == "AC" + "0" * 32
    assert params["CallSid"] == "CA" + "0" * 32
    assert (params["CallStatus"], params["From"], params["To"]) == (
        "completed",
        "+15005550006",
        "+15005550006",
    )
    assert params["ApiVersion"] == "2010-04-01"
    url = f"https://{signed.header('host')}/hooks/in"
    token = SECRETS["twilio"]
    assert twilio_accepts(url, params, signed.header("x-twilio-signature"), token)
    forged_params = dict(parse_qsl(forged.body.decode()))
    assert not twilio_accepts(url, forged_params, forged.header("x-twilio-signature"), token)
    assert re.fullmatch(r"[A-Za-z0-9+/]{27}=", forged.header("x-twilio-signature"))


def test_it_signs_twilio_over_the_url_with_its_query_as_sent(endpoint: Endpoint) -> None:
    """Twilio signs the full URL, its query string included:
    https://www.twilio.com/docs/usage/webhooks/webhooks-security."""
    outcome = endpoint.check(
        webhook_receiver("twilio", SECRETS["twilio"]), path="/hooks/voice?tenant=acme&b=2"
    )

    assert passed(outcome).startswith("accepted a correctly signed Twilio delivery")
    assert endpoint.requests[0].query == {"tenant": ["acme"], "b": ["2"]}


def test_it_signs_twilio_over_the_url_a_server_sees_when_given_the_default_port(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Twilio's validator accepts a signature over the URL with or without :443
    (twilio-python request_validator.py; https://www.twilio.com/docs/usage/webhooks/webhooks-security).
    No network: httpx's own mock transport plays the endpoint."""
    token = SECRETS["twilio"]
    hosts: list[str] = []

    def endpoint(request: httpx.Request) -> httpx.Response:
        hosts.append(request.headers["host"])
        url = f"https://{request.headers['host']}{request.url.raw_path.decode()}"
        params = dict(parse_qsl(request.content.decode()))
        valid = twilio_accepts(url, params, request.headers["x-twilio-signature"], token)
        return httpx.Response(200 if valid else 403)

    monkeypatch.setattr(
        webhook,
        "http_client",
        lambda **_: httpx.Client(transport=httpx.MockTransport(endpoint)),
    )
    context = Context(
        options={
            "url": "https://api.example.test:443/hooks/voice",
            "scheme": "twilio",
            "secret_env": VARIABLE,
        },
        release_version="v1.0.0",
        env={VARIABLE: token},
    )

    evidence = webhook.run(context).english()

    assert evidence.startswith("accepted a correctly signed Twilio delivery (HTTP 200)")
    assert hosts == ["api.example.test", "api.example.test"]


def test_it_sends_elevenlabs_a_post_call_transcription_event(endpoint: Endpoint) -> None:
    """Payload and ElevenLabs-Signature as in
    https://elevenlabs.io/docs/eleven-agents/workflows/post-call-webhooks."""
    endpoint.check(webhook_receiver("elevenlabs", SECRETS["elevenlabs"]), "elevenlabs")

    signed, forged = endpoint.requests
    event = json.loads(signed.body)
    assert signed.header("content-type") == "application/json"
    assert event["type"] == "post_call_transcription"
    assert abs(event["event_timestamp"] - time.time()) < 60
    assert event["data"]["conversation_id"] == "conv_" + "0" * 26
    assert event["data"]["agent_id"] == "agent_" + "0" * 26
    assert event["data"]["status"] == "done"
    header = re.fullmatch(r"t=(\d+),v0=([0-9a-f]{64})", signed.header("elevenlabs-signature"))
    assert header is not None
    assert int(header[1]) == event["event_timestamp"]
    secret = SECRETS["elevenlabs"]
    assert elevenlabs_accepts(signed.body, signed.header("elevenlabs-signature"), secret)
    assert not elevenlabs_accepts(forged.body, forged.header("elevenlabs-signature"), secret)


def test_it_sends_standard_webhooks_headers_the_reference_library_verifies(
    endpoint: Endpoint,
) -> None:
    """Headers and signature as in the Standard Webhooks spec:
    https://github.com/standard-webhooks/standard-webhooks/blob/main/spec/standard-webhooks.md."""
    endpoint.check(webhook_receiver("standard", SECRETS["standard"]), "standard")

    signed, forged = endpoint.requests
    assert re.fullmatch(r"msg_[0-9a-f]{32}", signed.header("webhook-id"))
    assert signed.header("webhook-id") != forged.header("webhook-id")
    assert abs(int(signed.header("webhook-timestamp")) - time.time()) < 60
    assert re.fullmatch(r"v1,[A-Za-z0-9+/]{43}=", forged.header("webhook-signature"))
    library = standardwebhooks.Webhook(SECRETS["standard"])
    assert library.verify(signed.body, dict(signed.headers))["type"] == "deploycheck.test"
    with pytest.raises(standardwebhooks.WebhookVerificationError):
        library.verify(forged.body, dict(forged.headers))


def test_it_sends_a_github_ping_with_the_default_hmac_header(endpoint: Endpoint) -> None:
    """GitHub's X-Hub-Signature-256 and ping event:
    https://docs.github.com/en/webhooks/using-webhooks/validating-webhook-deliveries and
    https://docs.github.com/en/webhooks/webhook-events-and-payloads#ping."""
    endpoint.check(webhook_receiver("hmac", SECRETS["hmac"]), "hmac")

    signed, _ = endpoint.requests
    assert signed.header("x-github-event") == "ping"
    assert re.fullmatch(r"sha256=[0-9a-f]{64}", signed.header("x-hub-signature-256"))
    assert json.loads(signed.body)["hook_id"] == 0


def test_it_puts_an_hmac_in_the_header_and_prefix_configured(endpoint: Endpoint) -> None:
    """A plain HMAC receiver of another name and no prefix (GitHub's scheme otherwise:
    https://docs.github.com/en/webhooks/using-webhooks/validating-webhook-deliveries)."""
    receiver = hmac_receiver(SECRETS["hmac"], header="X-Signature", prefix="")

    outcome = endpoint.check(receiver, "hmac", signature_header="X-Signature", signature_prefix="")

    assert passed(outcome).startswith("accepted a correctly signed HMAC delivery (HTTP 204)")
    assert re.fullmatch(r"[0-9a-f]{64}", endpoint.requests[0].header("x-signature"))
    assert not endpoint.requests[0].header("x-hub-signature-256")


SIGNATURE_HEADERS = {
    "twilio": "x-twilio-signature",
    "elevenlabs": "elevenlabs-signature",
    "standard": "webhook-signature",
    "hmac": "x-hub-signature-256",
}


@pytest.mark.parametrize("scheme", SCHEMES)
def test_it_signs_each_delivery_without_sending_the_secret_itself(
    endpoint: Endpoint, scheme: str
) -> None:
    endpoint.check(webhook_receiver(scheme, SECRETS[scheme]), scheme)

    signed, forged = (seen.header(SIGNATURE_HEADERS[scheme]) for seen in endpoint.requests)
    assert signed and forged and signed != forged
    for seen in endpoint.requests:
        sent = seen.body.decode() + " ".join(seen.headers.values())
        assert SECRETS[scheme] not in sent
        assert SECRETS[scheme].removeprefix("whsec_") not in sent


# what fails


def test_it_fails_an_endpoint_that_refuses_everything(endpoint: Endpoint) -> None:
    """A refusal of the forged delivery proves nothing when the signed one is refused too
    (https://www.twilio.com/docs/usage/webhooks/webhooks-security)."""
    outcome = endpoint.check(refuses_everything)

    error = fault_of(outcome)
    assert error.evidence == (
        "the endpoint refused a correctly signed request: wrong secret or validation of"
        " another shape (Twilio, HTTP 403)"
    )
    assert len(endpoint.requests) == 2


def test_it_fails_an_endpoint_that_accepts_everything(endpoint: Endpoint) -> None:
    outcome = endpoint.check(accepts_everything, "elevenlabs")

    error = fault_of(outcome)
    assert error.evidence == (
        "the endpoint accepted a request with a wrong signature: validation is off"
        " (ElevenLabs, HTTP 200)"
    )


@pytest.mark.parametrize("scheme", SCHEMES)
def test_it_fails_an_endpoint_that_validates_another_shape(endpoint: Endpoint, scheme: str) -> None:
    """Twilio signs a form body over the URL and its parameters, a JSON one over the URL
    only (https://www.twilio.com/docs/usage/webhooks/webhooks-security); re-serialised JSON
    no longer matches its signature (Standard Webhooks spec, "Signature scheme")."""
    outcome = endpoint.check(receiver_of_another_shape(scheme, SECRETS[scheme]), scheme)

    error = fault_of(outcome)
    assert error.evidence.startswith("the endpoint refused a correctly signed request")
    assert f"({LABELS[scheme]}, HTTP 40" in error.evidence


def test_it_fails_an_endpoint_that_holds_another_secret(endpoint: Endpoint) -> None:
    outcome = endpoint.check(webhook_receiver("hmac", "the-secret-of-another-environment"), "hmac")

    assert "wrong secret or validation of another shape (HMAC, HTTP 401)" in (
        fault_of(outcome).evidence
    )


def test_it_fails_a_webhook_url_where_nothing_answers(endpoint: Endpoint) -> None:
    outcome = endpoint.check(lambda _: Reply(status=404))

    error = fault_of(outcome)
    assert error.said.message == "no webhook endpoint answers at this URL (HTTP %(status)s)"
    assert error.said.values == {"status": 404}
    assert len(endpoint.requests) == 2


def test_it_fails_a_redirect_without_following_it(endpoint: Endpoint) -> None:
    """Senders post to the URL as given (Standard Webhooks spec, "Delivery success and
    failure": a 3xx is a failure)."""
    redirect = Reply(status=308, headers={"Location": "https://new.example.test/hook"})

    outcome = endpoint.check(lambda _: redirect)

    error = fault_of(outcome)
    assert (
        error.evidence == "HTTP 308 redirect to new.example.test: senders post to the URL as given"
    )
    [seen] = endpoint.requests
    assert seen.header("x-twilio-signature")


@pytest.mark.parametrize(
    ("reply", "reason", "evidence", "wait"),
    [
        (Reply(status=502), Reason.VENDOR_DOWN, "the correctly signed delivery: HTTP 502", None),
        (
            Reply(status=429, headers={"Retry-After": "7"}),
            Reason.RATE_LIMITED,
            "the correctly signed delivery: HTTP 429",
            7.0,
        ),
    ],
)
def test_it_retries_an_endpoint_that_cannot_take_a_delivery_now(
    endpoint: Endpoint, reply: Reply, reason: Reason, evidence: str, wait: float | None
) -> None:
    outcome = endpoint.check(lambda _: reply)

    assert isinstance(outcome, CheckError)
    assert (outcome.permanent, outcome.reason, outcome.evidence) == (False, reason, evidence)
    assert outcome.retry_after == wait


def test_it_retries_when_the_forged_delivery_times_out(impatient: None, endpoint: Endpoint) -> None:
    outcome = endpoint.check(sequence(Reply(), Reply(delay=1.0)))

    assert isinstance(outcome, CheckError)
    assert (outcome.permanent, outcome.reason) == (False, Reason.TIMED_OUT)
    assert len(endpoint.requests) == 2


# what cannot run


def test_it_is_misconfigured_without_the_secret_and_sends_nothing(endpoint: Endpoint) -> None:
    outcome = endpoint.check(accepts_everything, secret="")

    assert fault_of(outcome).evidence == f"environment variable {VARIABLE} is not set"
    assert endpoint.requests == []


def test_it_refuses_a_standard_webhooks_secret_that_is_not_whsec_and_base64(
    endpoint: Endpoint,
) -> None:
    """Secrets are `whsec_` and base64 (Standard Webhooks spec, "Signature scheme")."""
    outcome = endpoint.check(accepts_everything, "standard", secret="plain-text-secret!")

    assert "not a Standard Webhooks secret (whsec_ and base64)" in fault_of(outcome).evidence
    assert endpoint.requests == []


def test_it_is_misconfigured_without_a_scheme(endpoint: Endpoint) -> None:
    outcome = endpoint.check(accepts_everything, scheme="", secret="a-secret")

    assert fault_of(outcome).evidence == (
        "no signature scheme is configured: set scheme to one of twilio, elevenlabs, standard, hmac"
    )
    assert endpoint.requests == []


@pytest.mark.parametrize(
    ("options", "problem"),
    [
        ({"url": "https://api.example.test/hook", "scheme": "svix"}, "scheme must be one of"),
        (
            {"url": "https://api.example.test/hook", "scheme": "twilio", "signature_prefix": ""},
            "signature_prefix applies only to scheme hmac",
        ),
        (
            {"url": "https://api.example.test/hook", "scheme": "hmac", "signature_header": "X Sig"},
            "signature_header must be an HTTP header name",
        ),
        (
            {"url": "https://api.example.test/hook", "scheme": "hmac", "signature_prefix": "a\nb"},
            "signature_prefix must be printable ASCII",
        ),
    ],
)
def test_it_refuses_webhook_options_that_cannot_work(options: dict[str, Any], problem: str) -> None:
    assert webhook.KIND.check_options is not None
    with pytest.raises(ValueError, match=re.escape(problem)):
        webhook.KIND.check_options(options)


def test_it_refuses_a_webhook_url_that_is_not_https() -> None:
    assert webhook.KIND.check_options is not None
    with pytest.raises(ValueError, match="must start with https://"):
        webhook.KIND.check_options({"url": "http://api.example.test/hook"})
    context = Context(
        options={"url": "http://api.example.test/hook"}, release_version="v1.0.0", env={}
    )
    with pytest.raises(CheckError, match="https://"):
        webhook.run(context)


def test_a_checks_file_may_set_the_hmac_header_and_prefix(tmp_path: Path) -> None:
    path = tmp_path / "checks.toml"
    path.write_text(
        '[[check]]\nname = "hook"\nkind = "webhook"\nurl = "https://a.example/h"\n'
        'scheme = "hmac"\nsecret_env = "HOOK_SECRET"\nsignature_header = "X-Signature"\n'
        'signature_prefix = ""\n'
    )

    [spec] = config.read(path)

    assert spec.options["signature_header"] == "X-Signature"
    assert spec.options["signature_prefix"] == ""


def test_a_checks_file_must_name_the_scheme_and_the_secret(tmp_path: Path) -> None:
    path = tmp_path / "checks.toml"
    path.write_text('[[check]]\nname = "hook"\nkind = "webhook"\nurl = "https://a.example/h"\n')

    with pytest.raises(config.ChecksFileError) as refused:
        config.read(path)

    assert refused.value.errors == [
        f"{path}:1: check “hook”: kind webhook needs scheme",
        f"{path}:1: check “hook”: kind webhook needs secret_env",
    ]
