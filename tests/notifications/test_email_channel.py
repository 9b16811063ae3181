"""E-mail channels: a list of addresses in the notifications file, refused with a clear
`path:line` when it is wrong; one mail an event through a real SMTP server on
127.0.0.1, in the channel's language, delivered at least once like every channel's
delivery (its Message-ID kept, each attempt logged); and notify_test on one."""

from __future__ import annotations

import email
import email.policy
from email.message import EmailMessage
from io import StringIO
from pathlib import Path
from typing import Any

import pytest
from django.core.management import CommandError, call_command
from django.test import Client
from django.urls import reverse

from deploycheck.settings import _email_settings
from notifications import config, delivery
from notifications.models import (
    Attempt,
    AttemptOutcome,
    Channel,
    Delivery,
    DeliveryState,
    Event,
)
from releases import workflow
from releases.models import Release

from .conftest import Sink, free_port, make_channel

Sent = list[tuple[int, int, float]]
LIST = ["release-stakeholders@example.com", "support-leads@example.com"]


@pytest.fixture(autouse=True)
def site(settings: Any) -> None:
    settings.NOTIFY_RETRY_SCHEDULE = [5.0, 300.0]
    settings.SITE_URL = "https://deploycheck.example.com"
    settings.LANGUAGE_CODE = "en"


def mailing_list(**fields: Any) -> Channel:
    values: dict[str, Any] = {
        "kind": "email",
        "url": "",
        "secret_env": "",
        "addresses": LIST,
        "events": ["rollback.declared"],
        **fields,
    }
    return make_channel("stakeholders", **values)


def rollback(release: Release, users: dict[str, Any]) -> Delivery:
    workflow.declare_rollback(release, by=users["devops"], reason="errors", severity="minor")
    return Delivery.objects.get(channel__name="stakeholders")


def deliver(delivery_id: int, attempt: int) -> Sent:
    sent: Sent = []
    delivery.deliver(delivery_id, attempt, enqueue=lambda *args: sent.append(args))
    return sent


def parsed(envelope: Any) -> EmailMessage:
    message = email.message_from_bytes(envelope.content, policy=email.policy.default)
    assert isinstance(message, EmailMessage)
    return message


def text_of(message: EmailMessage, subtype: str) -> str:
    part = message.get_body(preferencelist=(subtype,))
    assert part is not None
    return str(part.get_content())


# --- The notifications file -------------------------------------------------------------

GOOD = """\
[[channel]]
name = "stakeholders"
kind = "email"
to = ["release-stakeholders@example.com", "support-leads@example.com"]
language = "es"
events = ["rollback.declared"]
"""


def written(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "notifications.toml"
    path.write_text(text)
    return path


def faults(tmp_path: Path, text: str) -> list[str]:
    path = written(tmp_path, text)
    with pytest.raises(config.NotificationsFileError) as refused:
        config.read(path)
    return [line.removeprefix(f"{path}:") for line in refused.value.errors]


@pytest.mark.django_db
def test_an_email_channel_is_read_and_loaded(tmp_path: Path) -> None:
    [spec] = config.read(written(tmp_path, GOOD))
    assert spec == config.ChannelSpec(
        name="stakeholders",
        kind="email",
        to=tuple(LIST),
        language="es",
        events=("rollback.declared",),
    )

    config.load(written(tmp_path, GOOD))

    channel = Channel.objects.get()
    assert (channel.kind, channel.addresses, channel.language) == ("email", LIST, "es")
    assert (channel.url, channel.url_env, channel.secret_env) == ("", "", "")


@pytest.mark.parametrize(
    ("table", "fault"),
    [
        (
            'to = ["ops@example.com", "not an address"]',
            "4: channel “stakeholders”: “not an address” is not an e-mail address (write only "
            "the address, such as ops@example.com)",
        ),
        (
            'to = [\n  "ops@example.com",\n  "Ops <ops@example.com>",\n]',
            "6: channel “stakeholders”: “Ops <ops@example.com>” is not an e-mail address",
        ),
        (
            "to = []",
            "4: channel “stakeholders” needs to, a list of 1 to 50 e-mail addresses",
        ),
        (
            'to = "ops@example.com"',
            "4: channel “stakeholders” needs to, a list of 1 to 50 e-mail addresses",
        ),
        (
            'to = ["ops@example.com", "OPS@example.com"]',
            "4: channel “stakeholders”: OPS@example.com is listed twice",
        ),
        (
            'to = ["ops@example.com"]\nurl = "https://hooks.example.com/x"',
            "5: channel “stakeholders”: an email channel has no url: it is mailed through "
            "EMAIL_URL; list its addresses in to",
        ),
        (
            'to = ["ops@example.com"]\nurl_env = "OPS_URL"',
            "5: channel “stakeholders”: an email channel has no url_env",
        ),
        (
            'to = ["ops@example.com"]\nsecret_env = "OPS_SECRET"',
            "5: channel “stakeholders”: an email channel has no secret_env",
        ),
        (
            'to = ["ops@example.com"]\nlanguage = "fr"',
            "5: channel “stakeholders”: language must be one of es, en",
        ),
    ],
)
def test_a_wrong_email_channel_is_refused_saying_where(
    tmp_path: Path, table: str, fault: str
) -> None:
    text = f'[[channel]]\nname = "stakeholders"\nkind = "email"\n{table}\n'

    [found] = faults(tmp_path, text)

    assert found.startswith(fault)


def test_no_channel_is_sent_without_addresses(tmp_path: Path) -> None:
    [found] = faults(tmp_path, '[[channel]]\nname = "stakeholders"\nkind = "email"\n')
    assert found.startswith("1: channel “stakeholders” needs to, a list of 1 to 50")


def test_more_than_fifty_addresses_are_refused(tmp_path: Path) -> None:
    many = ", ".join(f'"person{n}@example.com"' for n in range(51))

    [found] = faults(tmp_path, f'[[channel]]\nname = "all"\nkind = "email"\nto = [{many}]\n')

    assert found.startswith("4: channel “all” needs to, a list of 1 to 50 e-mail addresses")


def test_the_other_kinds_take_no_addresses(tmp_path: Path) -> None:
    text = (
        '[[channel]]\nname = "team"\nkind = "slack"\nurl_env = "SLACK_WEBHOOK_URL"\n'
        'to = ["ops@example.com"]\n'
    )

    assert faults(tmp_path, text) == [
        "5: channel “team”: unknown key “to” for kind slack; allowed: name, kind, url, "
        "url_env, events, releases"
    ]


# --- Delivering through SMTP ------------------------------------------------------------


def test_one_mail_goes_to_the_whole_list_in_the_channels_language(
    deployed: Release, users: dict[str, Any], smtp: Sink
) -> None:
    mailing_list(language="es")
    pending = rollback(deployed, users)

    assert deliver(pending.pk, 1) == []
    assert deliver(pending.pk, 1) == []  # the same task again sends nothing

    [envelope] = smtp.received
    assert sorted(envelope.rcpt_tos) == LIST
    message = parsed(envelope)
    assert message["Subject"] == "[deploycheck] v1.2.3: Rollback declarado"
    assert message["Auto-Submitted"] == "auto-generated"
    assert message["List-Unsubscribe"] is None
    text = text_of(message, "plain")
    assert "Motivo: errors" in text
    assert "Gravedad: leve: degradado, con una alternativa" in text
    assert "https://deploycheck.example.com/releases/v1.2.3/" in text
    assert "la lista del canal de notificaciones «stakeholders»" in text
    assert "Darse de baja" not in text
    html = text_of(message, "html")
    assert '<html lang="es">' in html
    assert 'href="https://deploycheck.example.com/releases/v1.2.3/">Abrir la versión</a>' in html
    sent = Delivery.objects.get()
    assert sent.state == DeliveryState.DELIVERED
    assert sent.message_id == message["Message-ID"]
    assert sent.message_id.endswith("@deploycheck.example.com>")
    [attempt] = Attempt.objects.all()
    assert (attempt.number, attempt.outcome, attempt.http_status) == (
        1,
        AttemptOutcome.DELIVERED,
        None,
    )


def test_without_a_language_the_mail_is_in_the_sites(
    deployed: Release, users: dict[str, Any], smtp: Sink
) -> None:
    mailing_list()

    deliver(rollback(deployed, users).pk, 1)

    message = parsed(smtp.received[0])
    assert message["Subject"] == "[deploycheck] v1.2.3: Rollback declared"
    assert "Reason: errors" in text_of(message, "plain")


def test_every_address_refused_fails_at_once(
    deployed: Release, users: dict[str, Any], smtp: Sink
) -> None:
    smtp.refused = set(LIST)
    mailing_list()
    pending = rollback(deployed, users)

    assert deliver(pending.pk, 1) == []

    failed = Delivery.objects.get()
    assert failed.state == DeliveryState.FAILED
    assert failed.last_error == (
        "the mail server refused every address: release-stakeholders@example.com, "
        "support-leads@example.com"
    )
    assert failed.message_id == ""
    assert Attempt.objects.get().outcome == AttemptOutcome.FAILED
    assert smtp.received == []


def test_a_mail_the_server_refuses_for_good_is_not_sent_again(
    deployed: Release, users: dict[str, Any], smtp: Sink
) -> None:
    smtp.data_reply = "554 5.7.1 message refused"
    mailing_list()

    assert deliver(rollback(deployed, users).pk, 1) == []

    failed = Delivery.objects.get()
    assert failed.state == DeliveryState.FAILED
    assert failed.last_error == "the mail server answered 554 5.7.1 message refused"


def test_a_mail_server_that_is_down_is_tried_again(
    deployed: Release, users: dict[str, Any], settings: Any
) -> None:
    for name, value in _email_settings(f"smtp://127.0.0.1:{free_port()}?timeout=2").items():
        setattr(settings, name, value)
    settings.EMAIL_ENABLED = True
    mailing_list()
    pending = rollback(deployed, users)

    [(delivery_id, attempt, delay)] = deliver(pending.pk, 1)

    assert (delivery_id, attempt) == (pending.pk, 2)
    assert 4.5 <= delay <= 5.5
    waiting = Delivery.objects.get()
    assert waiting.state == DeliveryState.PENDING
    assert "ConnectionRefusedError" in waiting.last_error
    assert Attempt.objects.get().outcome == AttemptOutcome.RETRY


def test_without_email_url_an_email_channel_fails_saying_why(
    deployed: Release, users: dict[str, Any], settings: Any
) -> None:
    settings.EMAIL_ENABLED = False
    mailing_list()

    deliver(rollback(deployed, users).pk, 1)

    failed = Delivery.objects.get()
    assert failed.state == DeliveryState.FAILED
    assert failed.last_error == "EMAIL_URL is not set: no mail can be sent"


# --- notify_test ------------------------------------------------------------------------


@pytest.mark.django_db
def test_notify_test_mails_the_list_and_says_what_the_server_took(smtp: Sink) -> None:
    mailing_list()
    out = StringIO()

    call_command("notify_test", "stakeholders", stdout=out)

    [envelope] = smtp.received
    message = parsed(envelope)
    assert message["Subject"] == "[deploycheck] Test notification"
    text = text_of(message, "plain")
    assert "This is a test of this channel, sent from deploycheck" in text
    assert "Open deploycheck: https://deploycheck.example.com" in text
    lines = out.getvalue().splitlines()
    assert lines[0] == "sending a test event to stakeholders (email)…"
    assert f"to: {', '.join(LIST)}" in lines
    assert f"Message-ID: {message['Message-ID']}" in lines
    assert lines[-1] == (
        "confirmed: accepted by the mail server; arrival in the inboxes is not confirmed"
    )
    assert not Event.objects.exists()
    assert not Delivery.objects.exists()


@pytest.mark.django_db
def test_a_test_from_the_page_says_what_the_server_took_in_the_readers_language(
    smtp: Sink, users: dict[str, Any]
) -> None:
    stakeholders = mailing_list()
    client = Client(headers={"Accept-Language": "es"})
    client.force_login(users["admin"])

    page = client.post(reverse("channels:test", args=[stakeholders.pk])).content.decode()

    assert len(smtp.received) == 1
    assert "aceptado por el servidor de correo; la llegada a los buzones no está confirmada" in page


@pytest.mark.django_db
def test_notify_test_on_an_unreachable_mail_server_fails(settings: Any) -> None:
    for name, value in _email_settings(f"smtp://127.0.0.1:{free_port()}?timeout=2").items():
        setattr(settings, name, value)
    settings.EMAIL_ENABLED = True
    mailing_list()
    out = StringIO()

    with pytest.raises(CommandError, match="the test to stakeholders was not accepted"):
        call_command("notify_test", "stakeholders", stdout=out)

    assert "Message-ID: none" in out.getvalue()
    assert "confirmed: not delivered: ConnectionRefusedError" in out.getvalue()
