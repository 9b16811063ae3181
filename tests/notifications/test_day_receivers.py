"""The day as the receivers see it: a notifications file loaded as people load it, a
release walked from "approval requested" to a resolved rollback, and every delivery
sent by the real delivery code to receivers on 127.0.0.1. Each receiver gets exactly
the events its channel asks for, once each, in order, signed where the channel signs,
in the site's language; and the people get theirs by e-mail."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest
import standardwebhooks
from django.core.management import call_command
from django.utils import translation

from notifications import delivery, email
from notifications.models import Delivery, DeliveryState, EmailDelivery, Event
from notifications.wording import TITLES
from releases import workflow
from releases.models import Release, Role
from tests.checks.standin import Reply, Seen, stand_in

from .conftest import Sink

SECRET = "whsec_" + base64.b64encode(b"the day's receivers' secret, 32!").decode()
TEAM_EVENTS = ["approval.requested", "deploy.started", "deploy.finished", "rollback.declared"]
ROOM_EVENTS = ["rollback.declared", "rollback.resolved", "incident.update_posted"]


def walk_the_day(release: Release, users: dict[str, Any]) -> None:
    for entry in release.items.filter(before_gate=True):
        workflow.tick(entry, by=users[entry.owner_role])
    for role in Role.leads():
        workflow.sign_off(release, role=role, phase="Pre", by=users[role])
    workflow.approve(release, by=users["po"], reason="everything green")
    workflow.start_deploy(release, by=users["devops"], reason="window open")
    workflow.finish_deploy(release, by=users["devops"], result="success", reason="smoke ok")
    workflow.declare_rollback(
        release, by=users["devops"], reason="errors climbing", severity="critical"
    )
    workflow.post_update(
        release, state="identified", message="the new cache <b>leaks</b>", by=users["devops"]
    )
    workflow.tick_rollback_step(release.rollback_steps.get(), by=users["devops"])


def test_each_receiver_gets_exactly_its_events_once_in_order(
    release: Release,
    users: dict[str, Any],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    settings: Any,
    smtp: Sink,
) -> None:
    settings.NOTIFY_ALLOW_PRIVATE = True
    # Slack's one-a-second pacing is tested on its own; here it would only wait.
    monkeypatch.setattr(delivery.time, "sleep", lambda _seconds: None)
    with stand_in(lambda request: Reply(200, body="ok")) as receivers:
        monkeypatch.setenv("OPS_WEBHOOK_SECRET", SECRET)
        monkeypatch.setenv("SLACK_WEBHOOK_URL", f"{receivers.url}/slack/T0/B0/x")
        monkeypatch.setenv("TEAMS_WORKFLOW_URL", f"{receivers.url}/teams/workflows/1")
        channels = tmp_path / "notifications.toml"
        channels.write_text(
            f"""
[[channel]]
name = "ops"
kind = "webhook"
url = "{receivers.url}/ops"
secret_env = "OPS_WEBHOOK_SECRET"
events = ["*"]

[[channel]]
name = "team"
kind = "slack"
url_env = "SLACK_WEBHOOK_URL"
events = {json.dumps(TEAM_EVENTS)}

[[channel]]
name = "room"
kind = "teams"
url_env = "TEAMS_WORKFLOW_URL"
events = {json.dumps(ROOM_EVENTS)}
releases = "v1.*"
"""
        )
        call_command("load_notifications", str(channels), verbosity=0)
        walk_the_day(release, users)
        # As the workers would, one attempt each, and the same again: a task sent twice
        # sends once.
        for attempt in Delivery.objects.order_by("event__created_at", "pk"):
            for _twice in range(2):
                delivery.deliver(attempt.pk, 1, enqueue=lambda *args: None)
        for mail in EmailDelivery.objects.order_by("pk"):
            email.deliver(mail.pk, 1, enqueue=lambda *args: None)

    happened = list(Event.objects.order_by("created_at").values_list("id", "type"))
    types = [event_type for _id, event_type in happened]
    for promised in ["approval.requested", "approval.granted", "deploy.started",
                     "deploy.finished", "rollback.declared", "incident.update_posted",
                     "rollback.step_done", "rollback.resolved"]:  # fmt: skip
        assert types.count(promised) == 1, types

    by_path: dict[str, list[Seen]] = {}
    for request in receivers.requests:
        by_path.setdefault(request.path.split("/")[1], []).append(request)

    verifier = standardwebhooks.Webhook(SECRET)
    signed = ("webhook-id", "webhook-timestamp", "webhook-signature")
    ops = [
        verifier.verify(request.body, {name: request.header(name) for name in signed})["type"]
        for request in by_path["ops"]
    ]
    assert ops == types
    assert [request.header("webhook-id") for request in by_path["ops"]] == [
        str(event_id) for event_id, _type in happened
    ]

    team = [json.loads(request.body) for request in by_path["slack"]]
    assert len(team) == len([t for t in types if t in TEAM_EVENTS])
    # In the site's language (Spanish here), which the test's own English is not.
    with translation.override("es"):
        in_spanish = [str(TITLES[event_type]) for event_type in TEAM_EVENTS]
    assert in_spanish != [str(TITLES[event_type]) for event_type in TEAM_EVENTS]
    assert [message["text"].split(": ", 1)[1].split(" (")[0] for message in team] == in_spanish

    room = [json.loads(request.body) for request in by_path["teams"]]
    assert len(room) == len([t for t in types if t in ROOM_EVENTS])
    shown = json.dumps(room, ensure_ascii=False)
    assert "<b>" not in shown

    assert set(Delivery.objects.values_list("state", flat=True)) == {DeliveryState.DELIVERED}
    mailed = {(mail.event.type, mail.address) for mail in EmailDelivery.objects.all()}
    assert ("approval.requested", "po@example.com") in mailed
    assert {address for event_type, address in mailed if event_type == "rollback.declared"} == {
        f"{role}@example.com" for role in ("backend", "frontend", "qa", "po", "support")
    }
    assert len(smtp.received) == len(mailed)
