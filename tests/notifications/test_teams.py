"""Teams Workflows channels: the card a flow receives, within Teams' size, what people
typed kept as typed, a 202 recorded as accepted and not as posted, and the retired
Office 365 connector URLs refused at load."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from django.utils import timezone

from notifications import config, delivery, teams
from notifications.models import Attempt, Channel, Delivery, DeliveryState, Event
from releases import workflow
from releases.models import Release
from tests.checks.standin import Reply, stand_in

from .conftest import make_channel

WORKFLOWS_URL = (
    "https://prod-23.westus.logic.azure.com:443/workflows/0a1b2c/triggers/manual/paths/"
    "invoke?api-version=2016-06-01"
)
LEGACY_URLS = [
    "https://contoso.webhook.office.com/webhookb2/1f2e@9a8b/IncomingWebhook/77aa/3c4d",
    "https://outlook.office.com/webhook/1f2e@9a8b/IncomingWebhook/77aa/3c4d",
]


@pytest.fixture(autouse=True)
def on_this_machine(settings: Any) -> None:
    settings.NOTIFY_ALLOW_PRIVATE = True
    settings.NOTIFY_RETRY_SCHEDULE = [5.0, 300.0]
    settings.LANGUAGE_CODE = "en"


def teams_channel(url: str, **fields: Any) -> Channel:
    return make_channel("room", kind="teams", url=url, secret_env="", **fields)


def posted(approved: Release, users: dict[str, Any], message: str = "API errors") -> Event:
    workflow.post_update(approved, state="investigating", message=message, by=users["po"])
    return Event.objects.get(type="incident.update_posted")


def deliver(delivery_id: int, attempt: int = 1) -> list[tuple[int, int, float]]:
    sent: list[tuple[int, int, float]] = []
    delivery.deliver(delivery_id, attempt, enqueue=lambda *args: sent.append(args))
    return sent


def card_of(body: bytes) -> dict[str, Any]:
    envelope = json.loads(body)
    [attachment] = envelope["attachments"]
    content: dict[str, Any] = attachment["content"]
    return content


def test_a_workflow_gets_the_documented_envelope_with_one_adaptive_card(
    approved: Release, users: dict[str, Any]
) -> None:
    with stand_in(lambda request: Reply(202)) as server:
        teams_channel(f"{server.url}/workflows/abc/triggers/manual/paths/invoke")
        event = posted(approved, users)
        deliver(Delivery.objects.get().pk)

    [request] = server.requests
    assert request.path == "/workflows/abc/triggers/manual/paths/invoke"
    assert request.header("content-type") == "application/json; charset=utf-8"
    assert "webhook-signature" not in request.headers
    envelope = json.loads(request.body)
    assert envelope == {
        "type": "message",
        "attachments": [
            {
                "contentType": "application/vnd.microsoft.card.adaptive",
                "contentUrl": None,
                "content": {
                    "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
                    "type": "AdaptiveCard",
                    "version": "1.4",
                    "body": [
                        {
                            "type": "TextBlock",
                            "text": "v1.2.3: Incident update posted",
                            "wrap": True,
                            "size": "Large",
                            "weight": "Bolder",
                        },
                        {
                            "type": "TextBlock",
                            "text": (f"{approved.title} — by po (PO) — {event.data['at']}"),
                            "wrap": True,
                            "isSubtle": True,
                            "spacing": "None",
                        },
                        {
                            "type": "TextBlock",
                            "text": "**state**: investigating",
                            "wrap": True,
                        },
                        {
                            "type": "TextBlock",
                            "text": "**message**: API errors",
                            "wrap": True,
                        },
                    ],
                    "actions": [
                        {
                            "type": "Action.OpenUrl",
                            "title": "Open the release",
                            "url": "http://127.0.0.1:8000/releases/v1.2.3/",
                        }
                    ],
                },
            }
        ],
    }


def test_what_people_typed_cannot_become_a_link_a_mention_or_formatting(
    approved: Release, users: dict[str, Any]
) -> None:
    event = posted(approved, users, message="[click](https://evil.example) <at>all</at> **now**")

    body = teams.message(event)[0]

    [*_, message] = card_of(body)["body"]
    assert message["text"] == (
        r"**message**: \[click\](https://evil.example) &lt;at&gt;all&lt;/at&gt; \*\*now\*\*"
    )


def test_the_card_stays_within_teams_size_cutting_the_longest_detail_first() -> None:
    event = Event(
        type="item.blocked",
        data={
            "release": {"version": "v1.0.0", "title": "T", "url": "https://x.example/"},
            "actor": {"label": "qa", "kind": "person"},
            "at": "2026-12-07T04:00:00+00:00",
            "item": "Unit tests pass",
            **{key: "ü<" * 20_000 for key in ("failure", "reason", "message")},
        },
    )

    body, _headers = teams.message(event)

    assert len(body) <= teams.MAX_BYTES
    texts = [block["text"] for block in card_of(body)["body"]]
    assert "**item**: Unit tests pass" in texts
    for key in ("failure", "reason", "message"):
        [detail] = [text for text in texts if text.startswith(f"**{key}**: ")]
        assert detail.startswith(f"**{key}**: ü&lt;ü&lt;")
        assert detail.endswith("…")
    assert texts[-1] == "Cut to fit the size of a Teams message."


def test_a_short_event_is_not_marked_as_cut(approved: Release, users: dict[str, Any]) -> None:
    body = teams.message(posted(approved, users))[0]

    assert "Cut to fit" not in body.decode()


def test_202_is_recorded_as_accepted_by_the_workflow_not_as_posted(
    approved: Release, users: dict[str, Any]
) -> None:
    with stand_in(lambda request: Reply(202)) as server:
        teams_channel(server.url)
        posted(approved, users)
        assert deliver(Delivery.objects.get().pk) == []

    accepted = Delivery.objects.get()
    assert accepted.state == DeliveryState.ACCEPTED
    assert accepted.state != DeliveryState.DELIVERED
    attempt = Attempt.objects.get()
    assert (attempt.outcome, attempt.http_status) == ("accepted", 202)
    assert attempt.get_outcome_display() == (
        "accepted by the Workflow; posting to the channel is not confirmed"
    )


@pytest.mark.parametrize("status", [200, 201, 204])
def test_another_2xx_comes_from_the_flow_itself_and_is_delivered(
    approved: Release, users: dict[str, Any], status: int
) -> None:
    with stand_in(lambda request: Reply(status)) as server:
        teams_channel(server.url)
        posted(approved, users)
        deliver(Delivery.objects.get().pk)

    assert Delivery.objects.get().state == DeliveryState.DELIVERED
    assert Attempt.objects.get().outcome == "delivered"


def test_429_waits_as_long_as_retry_after_says(approved: Release, users: dict[str, Any]) -> None:
    with stand_in(lambda request: Reply(429, headers={"Retry-After": "120"})) as server:
        teams_channel(server.url)
        posted(approved, users)
        before = timezone.now()
        assert deliver(Delivery.objects.get().pk) == []

    waiting = Delivery.objects.get()
    assert waiting.state == DeliveryState.PENDING
    assert waiting.due_at >= before + timedelta(seconds=119)
    assert Attempt.objects.get().outcome == "retry"


def test_410_disables_the_channel(approved: Release, users: dict[str, Any]) -> None:
    with stand_in(lambda request: Reply(410)) as server:
        channel = teams_channel(server.url)
        posted(approved, users)
        deliver(Delivery.objects.get().pk)

    channel.refresh_from_db()
    assert channel.disabled_reason == "the endpoint is gone (HTTP 410)"
    assert Delivery.objects.get().state == DeliveryState.FAILED


@pytest.mark.parametrize("legacy", LEGACY_URLS)
def test_a_legacy_connector_url_in_a_variable_fails_without_being_sent(
    approved: Release, users: dict[str, Any], monkeypatch: pytest.MonkeyPatch, legacy: str
) -> None:
    monkeypatch.setenv("TEAMS_WEBHOOK_URL", legacy)
    teams_channel("", url_env="TEAMS_WEBHOOK_URL")
    posted(approved, users)

    deliver(Delivery.objects.get().pk)

    failed = Delivery.objects.get()
    assert failed.state == DeliveryState.FAILED
    assert failed.last_error.startswith(
        "the channel's URL is an Office 365 connector URL, which Microsoft retired; create a "
        "Workflows webhook"
    )


# --- the notifications file ------------------------------------------------------------


def written(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "notifications.toml"
    path.write_text(text)
    return path


@pytest.mark.parametrize("legacy", LEGACY_URLS)
def test_the_file_refuses_a_legacy_connector_url_with_its_line_and_a_hint(
    tmp_path: Path, legacy: str
) -> None:
    path = written(tmp_path, f'[[channel]]\nname = "room"\nkind = "teams"\nurl = "{legacy}"\n')

    with pytest.raises(config.NotificationsFileError) as refused:
        config.read(path)

    assert refused.value.errors == [
        f"{path}:4: channel “room”: url is an Office 365 connector URL, which Microsoft "
        'retired; create a Workflows webhook ("Post to a channel when a webhook request is '
        'received") and use its URL'
    ]


@pytest.mark.parametrize(
    "url",
    [
        WORKFLOWS_URL,
        "https://default0a1b.2c.environment.api.powerplatform.com:443/powerautomate/"
        "automations/direct/workflows/9f8e/triggers/manual/paths/invoke?api-version=1",
        "https://relay.example.com/teams",
    ],
)
def test_the_file_accepts_a_workflows_url_or_any_https_url(tmp_path: Path, url: str) -> None:
    text = f'[[channel]]\nname = "room"\nkind = "teams"\nurl = "{url}"\nevents = ["*"]\n'

    assert config.read(written(tmp_path, text)) == [
        config.ChannelSpec(name="room", kind="teams", url=url)
    ]


def test_the_file_refuses_a_workflows_url_written_with_its_signature(tmp_path: Path) -> None:
    signed = f"{WORKFLOWS_URL}&sp=%2Ftriggers%2Fmanual%2Frun&sv=1.0&sig=AbCdEf0123456789"
    path = written(tmp_path, f'[[channel]]\nname = "room"\nkind = "teams"\nurl = "{signed}"\n')

    with pytest.raises(config.NotificationsFileError) as refused:
        config.read(path)

    [fault] = refused.value.errors
    assert fault.startswith(f"{path}:4: this [[channel]]: url carries a credential (?sig=…)")
    assert "AbCdEf0123456789" not in fault


def test_a_teams_channel_takes_no_signing_secret(tmp_path: Path) -> None:
    text = (
        '[[channel]]\nname = "room"\nkind = "teams"\nurl_env = "TEAMS_WEBHOOK_URL"\n'
        'secret_env = "OPS_WEBHOOK_SECRET"\n'
    )
    path = written(tmp_path, text)

    with pytest.raises(config.NotificationsFileError) as refused:
        config.read(path)

    assert refused.value.errors == [
        f"{path}:5: channel “room”: unknown key “secret_env” for kind teams; allowed: name, "
        "kind, url, url_env, events, releases"
    ]


@pytest.mark.django_db
def test_a_teams_channel_loads_by_its_variable(tmp_path: Path) -> None:
    text = '[[channel]]\nname = "room"\nkind = "teams"\nurl_env = "TEAMS_WEBHOOK_URL"\n'

    config.load(written(tmp_path, text))

    room = Channel.objects.get()
    assert (room.kind, room.url, room.url_env) == ("teams", "", "TEAMS_WEBHOOK_URL")
