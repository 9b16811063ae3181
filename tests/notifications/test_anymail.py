"""Mail through an ESP's API (django-anymail), chosen by EMAIL_URL = anymail+<esp>://:
the settings it makes, the API key read from the variable it names and never quoted;
and a stand-in Postmark on 127.0.0.1 answering as Postmark documents
(https://postmarkapp.com/developer/api/email-api, /developer/api/overview#error-codes),
for an e-mail channel and a person's e-mail alike: taken, an address refused, the key
refused, the ESP down."""

from __future__ import annotations

import json
from collections.abc import Iterator
from io import StringIO
from typing import Any

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.core.management import CommandError, call_command

from deploycheck.settings import _email_settings
from notifications import delivery
from notifications import email as notify_email
from notifications.models import (
    Attempt,
    AttemptOutcome,
    Channel,
    Delivery,
    DeliveryState,
    EmailDelivery,
)
from releases import workflow
from releases.models import Release
from tests.checks.standin import Reply, Seen, StandIn, json_reply, stand_in

from .conftest import free_port, make_channel

Sent = list[tuple[int, int, float]]
TOKEN = "server-token-0f3c"
LIST = ["release-stakeholders@example.com", "support-leads@example.com"]
TAKEN = {
    "To": ", ".join(LIST),
    "SubmittedAt": "2026-12-07T06:00:00.0000000Z",
    "MessageID": "b7bc2f4a-e38e-4336-af7d-e6c392c2f817",
    "ErrorCode": 0,
    "Message": "OK",
}


@pytest.fixture(autouse=True)
def site(settings: Any) -> None:
    settings.NOTIFY_RETRY_SCHEDULE = [5.0, 300.0]
    settings.SITE_URL = "https://deploycheck.example.com"
    settings.LANGUAGE_CODE = "en"


def use_email_url(url: str, settings: Any) -> None:
    for name, value in _email_settings(url).items():
        setattr(settings, name, value)
    settings.EMAIL_ENABLED = True


class Postmark:
    """What the stand-in answers next; every request it got."""

    def __init__(self, server: StandIn) -> None:
        self.server = server
        self.reply = json_reply(TAKEN)

    @property
    def requests(self) -> list[Seen]:
        return self.server.requests

    def sent(self) -> dict[str, Any]:
        [request] = self.server.requests
        assert (request.method, request.path) == ("POST", "/email")
        assert request.header("x-postmark-server-token") == TOKEN
        found: dict[str, Any] = json.loads(request.body)
        return found


@pytest.fixture
def postmark(settings: Any, monkeypatch: pytest.MonkeyPatch) -> Iterator[Postmark]:
    monkeypatch.setenv("POSTMARK_SERVER_TOKEN", TOKEN)
    stand: list[Postmark] = []

    def answer(request: Seen) -> Reply:
        return stand[0].reply

    with stand_in(answer) as server:
        stand.append(Postmark(server))
        use_email_url(
            f"anymail+postmark://?api_key_env=POSTMARK_SERVER_TOKEN&api_url={server.url}/",
            settings,
        )
        yield stand[0]


def mailing_list(addresses: list[str] = LIST) -> Channel:
    return make_channel(
        "stakeholders",
        kind="email",
        url="",
        secret_env="",
        addresses=addresses,
        events=["rollback.declared"],
    )


def deliver(release: Release, users: dict[str, Any]) -> Sent:
    workflow.declare_rollback(release, by=users["devops"], reason="errors", severity="minor")
    sent: Sent = []
    pending = Delivery.objects.get(channel__name="stakeholders")
    delivery.deliver(pending.pk, 1, enqueue=lambda *args: sent.append(args))
    return sent


# --- Settings ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "backend", "anymail"),
    [
        (
            "anymail+postmark://?api_key_env=ESP_KEY",
            "anymail.backends.postmark.EmailBackend",
            {"POSTMARK_SERVER_TOKEN": "k-123", "REQUESTS_TIMEOUT": 10},
        ),
        (
            "anymail+mailgun://?api_key_env=ESP_KEY&api_url=https://api.eu.mailgun.net/v3/"
            "&timeout=20",
            "anymail.backends.mailgun.EmailBackend",
            {
                "MAILGUN_API_KEY": "k-123",
                "MAILGUN_API_URL": "https://api.eu.mailgun.net/v3/",
                "REQUESTS_TIMEOUT": 20,
            },
        ),
        (
            "anymail+sendgrid://?api_key_env=ESP_KEY",
            "anymail.backends.sendgrid.EmailBackend",
            {"SENDGRID_API_KEY": "k-123", "REQUESTS_TIMEOUT": 10},
        ),
        (
            "anymail+brevo://?api_key_env=ESP_KEY",
            "anymail.backends.brevo.EmailBackend",
            {"BREVO_API_KEY": "k-123", "REQUESTS_TIMEOUT": 10},
        ),
        (
            "anymail+sendinblue://?api_key_env=ESP_KEY",
            "anymail.backends.brevo.EmailBackend",
            {"BREVO_API_KEY": "k-123", "REQUESTS_TIMEOUT": 10},
        ),
        (
            "anymail+resend://?api_key_env=ESP_KEY",
            "anymail.backends.resend.EmailBackend",
            {"RESEND_API_KEY": "k-123", "REQUESTS_TIMEOUT": 10},
        ),
        (
            "anymail+amazon-ses://?region=eu-west-1",
            "anymail.backends.amazon_ses.EmailBackend",
            {"AMAZON_SES_CLIENT_PARAMS": {"region_name": "eu-west-1"}},
        ),
        ("anymail+amazon-ses://", "anymail.backends.amazon_ses.EmailBackend", {}),
    ],
)
def test_email_url_names_an_esp_and_the_variable_holding_its_key(
    url: str, backend: str, anymail: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ESP_KEY", "k-123")

    assert _email_settings(url) == {"EMAIL_BACKEND": backend, "ANYMAIL": anymail}


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("anymail+pigeon://?api_key_env=ESP_KEY", "EMAIL_URL: unknown ESP 'pigeon' (anymail+ one"),
        (
            "anymail+postmark://k-123@?api_key_env=ESP_KEY",
            "EMAIL_URL: anymail+postmark:// takes no host or credentials; name the variable",
        ),
        ("anymail+postmark://", "EMAIL_URL: anymail+postmark:// needs api_key_env="),
        (
            "anymail+postmark://?api_key_env=unset-name",
            "EMAIL_URL: anymail+postmark:// needs api_key_env=",
        ),
        ("anymail+postmark://?api_key_env=UNSET_KEY", "EMAIL_URL: UNSET_KEY, named by api_key_env"),
        (
            "anymail+postmark://?api_key_env=ESP_KEY&api_key=k-123",
            "EMAIL_URL: unknown option 'api_key' for anymail+postmark:// (api_key_env, api_url",
        ),
        (
            "anymail+amazon-ses://?api_key_env=ESP_KEY",
            "EMAIL_URL: unknown option 'api_key_env' for anymail+amazon-ses:// (region)",
        ),
        (
            "anymail+postmark://?api_key_env=ESP_KEY&api_url=http://api.example.com/",
            "EMAIL_URL: api_url must be an https:// URL (http:// only to this machine)",
        ),
        ("anymail+postmark://?api_key_env=ESP_KEY&timeout=soon", "EMAIL_URL: the timeout must be"),
    ],
)
def test_a_wrong_esp_url_stops_the_start_without_quoting_the_key(
    url: str, message: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ESP_KEY", "k-123")

    with pytest.raises(ImproperlyConfigured) as refused:
        _email_settings(url)

    assert str(refused.value).startswith(message)
    assert "k-123" not in str(refused.value)


# --- An e-mail channel through the ESP --------------------------------------------------


def test_the_esp_takes_the_list_and_its_message_id_is_kept(
    deployed: Release, users: dict[str, Any], postmark: Postmark
) -> None:
    mailing_list()

    assert deliver(deployed, users) == []

    sent = postmark.sent()
    assert sent["To"] == ", ".join(LIST)
    assert sent["Subject"] == "[deploycheck] v1.2.3: Rollback declared"
    assert "Reason: errors" in sent["TextBody"]
    assert 'href="https://deploycheck.example.com/releases/v1.2.3/"' in sent["HtmlBody"]
    done = Delivery.objects.get()
    assert done.state == DeliveryState.DELIVERED
    assert done.message_id == TAKEN["MessageID"]
    assert Attempt.objects.get().outcome == AttemptOutcome.DELIVERED


def test_an_address_the_esp_finds_invalid_fails_with_its_reason(
    deployed: Release, users: dict[str, Any], postmark: Postmark
) -> None:
    postmark.reply = json_reply(
        {"ErrorCode": 300, "Message": "Invalid 'To' address: 'ops@example.com'."}, status=422
    )
    mailing_list(["ops@example.com"])

    assert deliver(deployed, users) == []

    failed = Delivery.objects.get()
    assert failed.state == DeliveryState.FAILED
    assert failed.last_error.startswith(
        "the ESP refused every address (ops@example.com invalid): HTTP 422: "
    )
    assert "Invalid 'To' address: 'ops@example.com'." in failed.last_error
    assert failed.message_id == ""


def test_an_address_left_out_fails_the_delivery_naming_it(
    deployed: Release, users: dict[str, Any], postmark: Postmark
) -> None:
    postmark.reply = json_reply(
        {
            **TAKEN,
            "Message": "Message OK, but will not deliver to these inactive addresses: "
            "support-leads@example.com. Inactive recipients are ones that have generated a "
            "hard bounce or a spam complaint.",
        }
    )
    mailing_list()

    assert deliver(deployed, users) == []

    failed = Delivery.objects.get()
    assert failed.state == DeliveryState.FAILED
    assert failed.last_error.startswith(
        "the ESP took 1 of 2 addresses (support-leads@example.com rejected): HTTP 200: "
    )
    assert failed.message_id == TAKEN["MessageID"]


def test_a_key_the_esp_refuses_fails_with_its_status(
    deployed: Release, users: dict[str, Any], postmark: Postmark
) -> None:
    postmark.reply = json_reply(
        {
            "ErrorCode": 10,
            "Message": "No Account or Server API tokens were supplied in the HTTP headers.",
        },
        status=401,
    )
    mailing_list()

    assert deliver(deployed, users) == []

    failed = Delivery.objects.get()
    assert failed.state == DeliveryState.FAILED
    assert failed.last_error.startswith("the ESP answered HTTP 401: ")
    assert "No Account or Server API tokens" in failed.last_error
    assert TOKEN not in failed.last_error
    attempt = Attempt.objects.get()
    assert (attempt.outcome, attempt.http_status) == (AttemptOutcome.FAILED, 401)


def test_an_esp_that_is_unavailable_is_tried_again(
    deployed: Release, users: dict[str, Any], postmark: Postmark
) -> None:
    postmark.reply = Reply(503, body="Service Unavailable")
    mailing_list()

    [(_delivery_id, attempt, _delay)] = deliver(deployed, users)

    assert attempt == 2
    waiting = Delivery.objects.get()
    assert waiting.state == DeliveryState.PENDING
    assert waiting.last_error == "the ESP answered HTTP 503: Service Unavailable"


def test_an_esp_that_cannot_be_reached_is_tried_again(
    deployed: Release, users: dict[str, Any], settings: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("POSTMARK_SERVER_TOKEN", TOKEN)
    use_email_url(
        "anymail+postmark://?api_key_env=POSTMARK_SERVER_TOKEN"
        f"&api_url=http://127.0.0.1:{free_port()}/&timeout=2",
        settings,
    )
    mailing_list()

    [(_delivery_id, attempt, _delay)] = deliver(deployed, users)

    assert attempt == 2
    assert Delivery.objects.get().last_error.startswith("could not reach the ESP (ConnectionError")


@pytest.mark.django_db
def test_notify_test_through_the_esp_shows_its_message_id(postmark: Postmark) -> None:
    mailing_list()
    out = StringIO()

    call_command("notify_test", "stakeholders", stdout=out)

    assert postmark.sent()["Subject"] == "[deploycheck] Test notification"
    assert f"Message-ID: {TAKEN['MessageID']}" in out.getvalue().splitlines()
    assert "confirmed: accepted by the mail server; arrival in the inboxes is not confirmed" in (
        out.getvalue()
    )


@pytest.mark.django_db
def test_notify_test_says_why_the_esp_refused(postmark: Postmark) -> None:
    postmark.reply = json_reply({"ErrorCode": 10, "Message": "Bad token"}, status=401)
    mailing_list()
    out = StringIO()

    with pytest.raises(CommandError, match="the test to stakeholders was not accepted"):
        call_command("notify_test", "stakeholders", stdout=out)

    assert "confirmed: not delivered: the ESP answered HTTP 401: " in out.getvalue()


# --- A person's e-mail through the ESP --------------------------------------------------


def test_a_persons_mail_goes_through_the_esp_too(
    release: Release, users: dict[str, Any], postmark: Postmark
) -> None:
    postmark.reply = json_reply({**TAKEN, "To": "outsider@example.com"})
    workflow.assign(release, role="qa", user=users["outsider"], by=users["admin"])
    workflow.mark_blocked(
        release.items.get(text="Unit tests pass"), by=users["qa"], reason="staging is down"
    )
    pending = EmailDelivery.objects.get()

    notify_email.deliver(pending.pk, 1, enqueue=lambda *args: None)

    sent = postmark.sent()
    assert sent["To"] == "outsider@example.com"
    headers = {header["Name"]: header["Value"] for header in sent["Headers"]}
    assert headers["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    done = EmailDelivery.objects.get()
    assert done.state == DeliveryState.DELIVERED
    assert done.message_id == TAKEN["MessageID"]


def test_a_persons_address_the_esp_refuses_fails_at_once(
    release: Release, users: dict[str, Any], postmark: Postmark
) -> None:
    postmark.reply = json_reply(
        {
            "ErrorCode": 406,
            "Message": "You tried to send to a recipient that has been marked as inactive.\n"
            "Found inactive addresses: outsider@example.com.\nInactive recipients are ones "
            "that have generated a hard bounce or a spam complaint.",
        },
        status=422,
    )
    workflow.assign(release, role="qa", user=users["outsider"], by=users["admin"])
    workflow.mark_blocked(
        release.items.get(text="Unit tests pass"), by=users["qa"], reason="staging is down"
    )
    sent: Sent = []

    notify_email.deliver(EmailDelivery.objects.get().pk, 1, enqueue=lambda *args: sent.append(args))

    failed = EmailDelivery.objects.get()
    assert sent == []
    assert failed.state == DeliveryState.FAILED
    assert failed.last_error.startswith(
        "the ESP refused every address (outsider@example.com rejected): HTTP 422: "
    )


def test_settings_the_esp_cannot_work_with_are_tried_again_once_fixed(
    deployed: Release, users: dict[str, Any], settings: Any
) -> None:
    settings.EMAIL_BACKEND = "anymail.backends.postmark.EmailBackend"
    settings.ANYMAIL = {}
    settings.EMAIL_ENABLED = True
    mailing_list()

    [(_delivery_id, attempt, _delay)] = deliver(deployed, users)

    assert attempt == 2
    waiting = Delivery.objects.get()
    assert waiting.state == DeliveryState.PENDING
    assert waiting.last_error.startswith("the mail settings are wrong: ")
    assert "POSTMARK_SERVER_TOKEN" in waiting.last_error
