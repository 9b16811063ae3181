"""`manage.py notify_test CHANNEL`: a test event sent to one channel at once, by the code
every delivery uses, and the receiver's real answer told as it is: what it proves and
what it does not, with an exit status a script can use."""

from __future__ import annotations

import base64
import json
from io import StringIO
from typing import Any

import pytest
import standardwebhooks
from django.core.management import CommandError, call_command

from notifications.models import Attempt, Delivery, Event
from tests.checks.standin import Reply, Seen, stand_in

from .conftest import make_channel

SECRET = "whsec_" + base64.b64encode(b"a secret of thirty-two bytes ok!").decode()


@pytest.fixture(autouse=True)
def on_this_machine(settings: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    settings.NOTIFY_ALLOW_PRIVATE = True
    settings.LANGUAGE_CODE = "en"
    monkeypatch.setenv("OPS_WEBHOOK_SECRET", SECRET)


def tried(name: str) -> str:
    out = StringIO()
    call_command("notify_test", name, stdout=out)
    return out.getvalue()


def refused(name: str) -> tuple[str, CommandError]:
    out = StringIO()
    with pytest.raises(CommandError) as error:
        call_command("notify_test", name, stdout=out)
    return out.getvalue(), error.value


def lines_of(output: str) -> dict[str, str]:
    return dict(line.split(": ", 1) for line in output.splitlines() if ": " in line)


@pytest.mark.django_db
def test_a_webhook_gets_a_signed_test_event_and_the_answer_is_shown() -> None:
    with stand_in(lambda request: Reply(200, body="thanks")) as server:
        make_channel(url=f"{server.url}/hook")
        output = tried("ops")

    [request] = server.requests
    assert request.header("accept-encoding") == "identity"
    headers = {
        name: request.header(name)
        for name in ("webhook-id", "webhook-timestamp", "webhook-signature")
    }
    sent = standardwebhooks.Webhook(SECRET).verify(request.body, headers)
    assert sent["type"] == "test"
    assert sent["data"]["test"] is True
    sender = sent["data"]["sender"]
    assert "@" in sender
    assert sent["data"]["message"] == (
        f"This is a test of this channel, sent from deploycheck at http://127.0.0.1:8000 by "
        f"{sender}. Nothing happened to any release."
    )
    shown = lines_of(output)
    assert shown["HTTP status"] == "200"
    assert shown["answer"] == "thanks"
    assert shown["latency"].endswith(" ms")
    assert shown["confirmed"] == (
        "accepted by the receiver; what it does with the event is not confirmed"
    )
    # Sent at once, not through the outbox: nothing is queued or logged as a delivery.
    assert (Event.objects.count(), Delivery.objects.count(), Attempt.objects.count()) == (0, 0, 0)


@pytest.mark.django_db
def test_slack_answering_ok_is_posted(monkeypatch: pytest.MonkeyPatch) -> None:
    with stand_in(lambda request: Reply(200, body="ok")) as server:
        monkeypatch.setenv("SLACK_WEBHOOK_URL", f"{server.url}/services/T0/B0/x")
        make_channel("team", kind="slack", url="", url_env="SLACK_WEBHOOK_URL", secret_env="")
        output = tried("team")

    [request] = server.requests
    message = json.loads(request.body)
    assert message["blocks"][0]["text"]["text"] == "Test notification"
    assert "Nothing happened to any release." in message["blocks"][1]["text"]["text"]
    assert lines_of(output)["confirmed"] == "posted to the channel (Slack answered ok)"


@pytest.mark.django_db
def test_slack_answering_anything_but_ok_is_not_confirmed_as_posted() -> None:
    with stand_in(lambda request: Reply(200, body="queued")) as server:
        make_channel("team", kind="slack", url=server.url, secret_env="")
        output = tried("team")

    assert lines_of(output)["confirmed"] == (
        "accepted by Slack, which did not answer ok: posting is not confirmed"
    )


@pytest.mark.django_db
def test_a_teams_flow_answering_200_itself_says_what_that_proves() -> None:
    with stand_in(lambda request: Reply(200)) as server:
        make_channel("room", kind="teams", url=server.url, secret_env="")
        output = tried("room")

    assert lines_of(output)["confirmed"] == (
        "the Workflow's flow answered HTTP 200 itself: posted, if its Response step comes "
        "after its post step"
    )


@pytest.mark.django_db
def test_a_teams_202_is_accepted_and_posting_is_not_confirmed() -> None:
    with stand_in(lambda request: Reply(202)) as server:
        make_channel("room", kind="teams", url=server.url, secret_env="")
        output = tried("room")

    [request] = server.requests
    card = json.loads(request.body)["attachments"][0]["content"]
    assert card["body"][0]["text"] == "Test notification"
    assert card["actions"] == [
        {"type": "Action.OpenUrl", "title": "Open deploycheck", "url": "http://127.0.0.1:8000"}
    ]
    shown = lines_of(output)
    assert (shown["HTTP status"], shown["answer"]) == ("202", "(empty)")
    assert shown["confirmed"] == (
        "accepted by the Workflow; posting to the channel is not confirmed"
    )


@pytest.mark.django_db
@pytest.mark.parametrize(("kind", "status"), [("webhook", 500), ("slack", 400), ("teams", 404)])
def test_an_answer_that_is_not_2xx_is_shown_and_exits_1(kind: str, status: int) -> None:
    answer = "no_such_flow " + "x" * 600

    def reply(request: Seen) -> Reply:
        return Reply(status, body=answer)

    with stand_in(reply) as server:
        secret_env = "OPS_WEBHOOK_SECRET" if kind == "webhook" else ""
        make_channel("chan", kind=kind, url=server.url, secret_env=secret_env)
        output, error = refused("chan")

    assert error.returncode == 1
    assert str(error) == "the test to chan was not accepted"
    shown = lines_of(output)
    assert shown["HTTP status"] == str(status)
    assert shown["answer"] == answer[:500]
    assert shown["confirmed"].startswith("not delivered: HTTP")
    # Tried once and told at once: a test is not retried behind the operator's back.
    assert len(server.requests) == 1


@pytest.mark.django_db
def test_a_url_the_guard_refuses_is_not_sent_and_says_why(settings: Any) -> None:
    settings.NOTIFY_ALLOW_PRIVATE = False
    with stand_in(lambda request: Reply(200)) as server:
        make_channel(url=server.url)
        output, error = refused("ops")

    assert server.requests == []
    assert error.returncode == 1
    shown = lines_of(output)
    assert shown["HTTP status"] == "none"
    assert "answer" not in shown
    assert shown["confirmed"] == (
        "not sent: 127.0.0.1 resolves to 127.0.0.1, a private, loopback or link-local "
        "address; set NOTIFY_ALLOW_PRIVATE=1 to allow notifications inside your network"
    )


@pytest.mark.django_db
def test_a_control_character_in_the_answer_is_shown_not_obeyed() -> None:
    with stand_in(lambda request: Reply(200, body="ok\x1b[2J")) as server:
        make_channel(url=server.url)
        output = tried("ops")

    assert "\x1b" not in output
    assert lines_of(output)["answer"] == "ok\\x1b[2J"


@pytest.mark.django_db
def test_an_unknown_channel_is_refused_with_the_names_there_are() -> None:
    make_channel("ops")
    make_channel("team", kind="slack", secret_env="")

    _output, error = refused("nope")

    assert str(error) == (
        "no channel is named “nope”; the channels are: ops, team "
        "(load_notifications FILE declares them)"
    )
