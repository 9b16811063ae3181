"""Items the app performs: who may press "perform", what is sent and to whom (only the
audience the item names), and how the item settles: ticked on confirmed delivery with
its evidence, failed with the reason when a delivery fails for good, left open when a
Teams Workflow only accepted it, and a second press refused while one is in flight."""

from __future__ import annotations

import base64
import email
import email.policy
from datetime import timedelta
from typing import Any

import pytest
from django.test import Client
from django.utils import timezone

from deploycheck.settings import _email_settings
from notifications import delivery
from notifications import email as notify_email
from notifications.models import (
    Delivery,
    DeliveryState,
    EmailDelivery,
    Event,
    Performance,
    PerformanceState,
)
from notifications.perform import perform
from releases import checklists, workflow
from releases.markdown import parse_checklist, render_checklist
from releases.models import (
    ActorKind,
    AuditAction,
    AuditEvent,
    ItemState,
    Release,
    ReleaseItem,
    ReleaseStatus,
)
from tests.checks.standin import Reply, stand_in

from .conftest import Sink, free_port, make_channel

SECRET = "whsec_" + base64.b64encode(b"a secret of thirty-two bytes ok!").decode()
TLS = "TLS certificates installed"  # a DevOps item of the small template


@pytest.fixture(autouse=True)
def on_this_machine(settings: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    settings.NOTIFY_ALLOW_PRIVATE = True
    settings.NOTIFY_RETRY_SCHEDULE = [5.0, 300.0]
    settings.SITE_URL = "https://deploycheck.example.com"
    monkeypatch.setenv("OPS_WEBHOOK_SECRET", SECRET)


def linked(release: Release, action: str, text: str = TLS) -> ReleaseItem:
    ReleaseItem.objects.filter(release=release, text=text).update(perform=action)
    return release.items.select_related("release").get(text=text)


def send_emails(attempt: int = 1) -> None:
    for pk in EmailDelivery.objects.values_list("pk", flat=True):
        notify_email.deliver(pk, attempt, enqueue=lambda *args: None)


def send_channel(attempt: int = 1) -> None:
    for pk in Delivery.objects.values_list("pk", flat=True):
        delivery.deliver(pk, attempt, enqueue=lambda *args: None)


def login(user: Any) -> Client:
    client = Client(HTTP_ACCEPT_LANGUAGE="en")
    client.force_login(user)
    return client


def page(release: Release, entry: ReleaseItem) -> str:
    return f"/releases/{release.version}/items/{entry.pk}/perform/"


# --- Who may press ----------------------------------------------------------------------


@pytest.mark.parametrize("persona", ["devops", "po", "admin"])
def test_the_owner_role_the_product_owner_and_staff_see_what_will_be_sent(
    release: Release, users: dict[str, Any], persona: str
) -> None:
    entry = linked(release, "announce:people")

    answer = login(users[persona]).get(page(release, entry))

    assert answer.status_code == 200
    text = answer.content.decode()
    assert "qa@example.com" in text and "support@example.com" in text
    assert "Spring" in text  # the message starts as the default, naming the release


@pytest.mark.parametrize("persona", ["qa", "support"])
def test_another_lead_and_support_are_refused_with_403_and_nothing_is_sent(
    release: Release, users: dict[str, Any], persona: str
) -> None:
    entry = linked(release, "announce:people")
    client = login(users[persona])

    assert client.get(page(release, entry)).status_code == 403
    assert client.post(page(release, entry), {"message": "hi"}).status_code == 403
    assert not Event.objects.filter(type="announcement").exists()
    entry.refresh_from_db()
    assert entry.performed == {}


def test_an_outsider_gets_404_and_an_item_that_performs_nothing_too(
    release: Release, users: dict[str, Any]
) -> None:
    entry = linked(release, "announce:people")
    plain = release.items.get(text="Unit tests pass")

    assert login(users["outsider"]).get(page(release, entry)).status_code == 404
    assert login(users["po"]).get(page(release, plain)).status_code == 404


def test_the_board_offers_perform_to_the_owner_and_not_to_another_lead(
    release: Release, users: dict[str, Any]
) -> None:
    entry = linked(release, "announce:people")
    link = page(release, entry)

    assert link in login(users["devops"]).get(f"/releases/{release.version}/").content.decode()
    assert link not in login(users["qa"]).get(f"/releases/{release.version}/").content.decode()


def test_a_message_with_invisible_bidirectional_controls_is_refused_and_kept(
    release: Release, users: dict[str, Any]
) -> None:
    entry = linked(release, "announce:people")

    answer = login(users["devops"]).post(page(release, entry), {"message": "Down \u202e01:00"})

    assert answer.status_code == 422
    text = answer.content.decode()
    assert "The message contains invisible bidirectional control characters (U+202E)" in text
    assert "Down \u202e01:00</textarea>" in text
    assert not Event.objects.filter(type="announcement").exists()
    with pytest.raises(workflow.WorkflowError, match="U\\+202E"):
        perform(entry, by=users["devops"], message="Down \u202e01:00")
    entry.refresh_from_db()
    assert entry.performed == {}


@pytest.mark.parametrize(
    ("typed", "said"),
    [
        ("", "Write the message to send."),
        ("   ", "Write the message to send."),
        ("\u200b\u2060", "The message holds only invisible characters"),
        ("\u3000\u00a0", "Write the message to send."),
    ],
)
def test_a_message_that_says_nothing_is_refused_and_nothing_is_sent(
    release: Release, users: dict[str, Any], typed: str, said: str
) -> None:
    entry = linked(release, "announce:people")

    answer = login(users["devops"]).post(page(release, entry), {"message": typed})

    assert answer.status_code == 422
    assert said in answer.content.decode()
    assert not Event.objects.filter(type="announcement").exists()
    with pytest.raises(workflow.WorkflowError, match="Write the message to send"):
        perform(entry, by=users["devops"], message=typed)


# --- E-mail to the release's people -------------------------------------------------------


def test_an_announcement_to_the_people_is_ticked_once_the_mail_server_took_every_mail(
    release: Release, users: dict[str, Any], smtp: Sink
) -> None:
    entry = linked(release, "announce:stakeholders")
    answer = login(users["devops"]).post(page(release, entry), {"message": "We deploy at 10."})
    assert answer.status_code == 302

    sending = ReleaseItem.objects.get(pk=entry.pk)
    assert sending.state == ItemState.PENDING
    assert sending.performed["state"] == "sending"
    send_emails()

    done = ReleaseItem.objects.get(pk=entry.pk)
    assert done.state == ItemState.DONE
    assert done.changed_by_kind == ActorKind.SYSTEM
    assert done.changed_by_label == "perform:announce:stakeholders"
    mailed = sorted(
        f"{name}@example.com" for name in ("backend", "devops", "frontend", "po", "qa", "support")
    )
    assert sorted(done.performed["recipients"]) == mailed
    assert done.performed["channel"] == "e-mail"
    ids = sorted(EmailDelivery.objects.values_list("message_id", flat=True))
    assert sorted(done.performed["message_ids"]) == ids and all(ids)
    assert done.performed["at"]
    assert sorted(rcpt for envelope in smtp.received for rcpt in envelope.rcpt_tos) == mailed
    body = email.message_from_bytes(smtp.received[0].content, policy=email.policy.default)
    assert "We deploy at 10." in body.get_body(("plain",)).get_content()
    audit = AuditEvent.objects.get(action=AuditAction.PERFORM_CONFIRMED)
    assert audit.after["state"] == ItemState.DONE
    assert sorted(audit.after["performed"]["recipients"]) == mailed
    assert Performance.objects.get().state == PerformanceState.DONE


def test_a_mail_server_that_cannot_be_reached_fails_the_item_with_the_reason(
    release: Release, users: dict[str, Any], settings: Any
) -> None:
    for name, value in _email_settings(f"smtp://127.0.0.1:{free_port()}?timeout=2").items():
        setattr(settings, name, value)
    settings.EMAIL_ENABLED = True
    entry = linked(release, "announce:people")
    perform(entry, by=users["po"], message="hello")

    for attempt in (1, 2, 3):
        send_emails(attempt)

    failed = ReleaseItem.objects.get(pk=entry.pk)
    assert failed.state == ItemState.FAILED
    assert "ConnectionRefusedError" in failed.reason
    assert "gave up after 3 attempts" in failed.reason
    assert failed.performed["state"] == "failed"
    assert AuditEvent.objects.filter(action=AuditAction.PERFORM_FAILED).exists()


# --- A channel ----------------------------------------------------------------------------


def test_an_announcement_to_a_channel_goes_to_that_channel_only_and_2xx_ticks_it(
    release: Release, users: dict[str, Any]
) -> None:
    with stand_in(lambda request: Reply(204)) as server:
        make_channel("users", url=f"{server.url}/users", events=["incident.update_posted"])
        make_channel("ops", url=f"{server.url}/ops", events=["*"])
        entry = linked(release, "announce:users")
        perform(entry, by=users["devops"], message="v1.2.3 is live")
        send_channel()

    [request] = server.requests
    assert request.path == "/users"
    assert not EmailDelivery.objects.exists()
    done = ReleaseItem.objects.get(pk=entry.pk)
    assert done.state == ItemState.DONE
    event = Event.objects.get(type="announcement")
    assert done.performed["recipients"] == ["users"]
    assert done.performed["message_ids"] == [str(event.pk)]
    assert request.header("webhook-id") == str(event.pk)


def test_an_announcement_to_an_email_channel_ticks_with_its_list_and_message_id(
    release: Release, users: dict[str, Any], smtp: Sink
) -> None:
    make_channel("users", kind="email", url="", secret_env="", events=[],
                 addresses=["users@example.com", "beta@example.org"])  # fmt: skip
    entry = linked(release, "announce:users")
    perform(entry, by=users["devops"], message="v1.2.3 is live")
    send_channel()

    [envelope] = smtp.received
    assert sorted(envelope.rcpt_tos) == ["beta@example.org", "users@example.com"]
    mail = email.message_from_bytes(envelope.content, policy=email.policy.default)
    done = ReleaseItem.objects.get(pk=entry.pk)
    assert done.state == ItemState.DONE
    assert done.performed["recipients"] == ["users@example.com", "beta@example.org"]
    assert done.performed["message_ids"] == [mail["Message-ID"]]


def test_a_channel_that_answers_500_until_the_retries_end_fails_the_item(
    release: Release, users: dict[str, Any]
) -> None:
    with stand_in(lambda request: Reply(500)) as server:
        make_channel("users", url=server.url)
        entry = linked(release, "announce:users")
        perform(entry, by=users["devops"], message="live")
        for attempt in (1, 2, 3):
            send_channel(attempt)
            pending = ReleaseItem.objects.get(pk=entry.pk)
            if attempt < 3:
                assert pending.state == ItemState.PENDING
                assert pending.performed["state"] == "sending"

    failed = ReleaseItem.objects.get(pk=entry.pk)
    assert failed.state == ItemState.FAILED
    assert failed.reason == "users: HTTP 500; gave up after 3 attempts"


def test_a_teams_202_is_accepted_not_confirmed_and_leaves_the_item_open(
    release: Release, users: dict[str, Any]
) -> None:
    with stand_in(lambda request: Reply(202)) as server:
        make_channel("users", kind="teams", url=server.url, secret_env="")
        entry = linked(release, "announce:users")
        perform(entry, by=users["devops"], message="live")
        send_channel()

    left = ReleaseItem.objects.get(pk=entry.pk)
    assert left.state == ItemState.PENDING
    assert left.performed["state"] == "unconfirmed"
    assert "202" in left.performed["reason"]
    assert AuditEvent.objects.filter(action=AuditAction.PERFORM_UNCONFIRMED).exists()
    board = login(users["devops"]).get(f"/releases/{release.version}/").content.decode()
    assert "not confirmed" in board


def test_mail_only_printed_on_the_console_leaves_the_item_open_saying_so(
    release: Release, users: dict[str, Any], settings: Any
) -> None:
    settings.EMAIL_BACKEND = "deploycheck.logs.ConsoleEmailBackend"
    settings.EMAIL_ENABLED = True
    entry = linked(release, "announce:people")
    perform(entry, by=users["devops"], message="live")
    send_emails()

    left = ReleaseItem.objects.get(pk=entry.pk)
    assert left.state == ItemState.PENDING
    assert left.performed["state"] == "unconfirmed"
    assert "no mail server took it" in left.performed["reason"]
    assert set(EmailDelivery.objects.values_list("state", flat=True)) == {DeliveryState.ACCEPTED}


def test_a_channel_not_declared_or_off_is_refused_clearly(
    release: Release, users: dict[str, Any]
) -> None:
    entry = linked(release, "announce:users")
    client = login(users["devops"])

    shown = client.get(page(release, entry)).content.decode()
    refused = client.post(page(release, entry), {"message": "live"})

    assert "No notifications channel is named “users”" in shown
    assert refused.status_code == 409
    assert "No notifications channel is named “users”" in refused.content.decode()
    make_channel("users", retired_at="2026-12-01T00:00:00Z")
    with pytest.raises(workflow.WorkflowError, match="The channel “users” is off"):
        perform(entry, by=users["devops"], message="live")
    assert not Event.objects.filter(type="announcement").exists()


def test_a_second_press_while_one_is_in_flight_is_refused(
    release: Release, users: dict[str, Any]
) -> None:
    entry = linked(release, "announce:people")
    perform(entry, by=users["devops"], message="one")

    again = login(users["po"]).post(page(release, entry), {"message": "two"})

    assert again.status_code == 409
    assert "is being sent already" in again.content.decode()
    board = login(users["devops"]).get(f"/releases/{release.version}/")
    assert "Sending…" in board.content.decode()
    assert Event.objects.filter(type="announcement").count() == 1
    with pytest.raises(workflow.WorkflowError, match="is being sent already"):
        perform(entry, by=users["devops"], message="three")


def test_a_release_cancelled_while_sending_keeps_how_it_ended_and_ticks_nothing(
    release: Release, users: dict[str, Any], smtp: Sink
) -> None:
    entry = linked(release, "announce:people")
    perform(entry, by=users["devops"], message="We deploy at 10.")
    workflow.set_status(release, status=ReleaseStatus.CANCELLED, by=users["po"], reason="dropped")

    send_emails()

    settled = ReleaseItem.objects.get(pk=entry.pk)
    assert settled.performed["state"] == "done"
    assert settled.performed["message_ids"]
    assert settled.state == ItemState.PENDING
    assert AuditEvent.objects.filter(action=AuditAction.PERFORM_CONFIRMED).exists()
    board = login(users["devops"]).get(f"/releases/{release.version}/").content.decode()
    assert "Sending…" not in board
    # Reopened, the item may be performed again.
    workflow.set_status(release, status=ReleaseStatus.IN_PROGRESS, by=users["admin"])
    perform(entry, by=users["devops"], message="We deploy at 11.")
    assert ReleaseItem.objects.get(pk=entry.pk).performed["state"] == "sending"


def test_the_timeline_says_what_was_sent_to_whom_and_how_it_ended(
    release: Release, users: dict[str, Any]
) -> None:
    with stand_in(lambda request: Reply(200)) as server:
        make_channel("users", url=server.url)
        entry = linked(release, "announce:users")
        perform(entry, by=users["devops"], message="live")
        send_channel()

    timeline = login(users["po"]).get(f"/releases/{release.version}/timeline/").content.decode()

    assert "Item performance requested" in timeline
    assert "Delivery of an item confirmed" in timeline
    assert "Channel: users" in timeline
    assert "Message id: " in timeline


def test_a_failed_delivery_tells_the_items_role_as_a_failing_check_does(
    release: Release, users: dict[str, Any]
) -> None:
    with stand_in(lambda request: Reply(404)) as server:
        make_channel("users", url=server.url, events=["incident.update_posted"])
        make_channel("ops", url=f"{server.url}/ops", events=["check.failing"])
        entry = linked(release, "announce:users")
        perform(entry, by=users["devops"], message="live")
        send_channel()

    event = Event.objects.get(type="check.failing")
    assert event.data["item"] == TLS
    assert event.data["failure"] == "users: HTTP 404, not retried"
    assert ReleaseItem.objects.get(pk=entry.pk).state == ItemState.FAILED


def test_a_release_with_a_performed_item_exports_and_imports_back(
    release: Release, users: dict[str, Any], smtp: Sink
) -> None:
    entry = linked(release, "announce:people")
    perform(entry, by=users["devops"], message="hello")
    send_emails()

    exported = checklists.export_release(release)

    assert "perform=announce:people" in exported
    assert "done by perform:announce:people" in exported
    assert render_checklist(parse_checklist(exported)) == exported


def test_a_mail_whose_worker_was_lost_on_its_last_attempt_fails_the_item_at_the_sweep(
    release: Release, users: dict[str, Any]
) -> None:
    entry = linked(release, "announce:people")
    perform(entry, by=users["po"], message="hello")
    gone = timezone.now() - timedelta(minutes=5)
    EmailDelivery.objects.update(state="sending", attempts=3, due_at=gone)

    notify_email.sweep(enqueue=lambda *args: None)

    failed = ReleaseItem.objects.get(pk=entry.pk)
    assert failed.state == ItemState.FAILED
    assert "stopped before recording an answer; gave up" in failed.reason
