"""Delivering events: Standard Webhooks to a real stand-in server on 127.0.0.1, signed
and verified with the standardwebhooks library; retries, Retry-After, 410, redirects,
the URL guard, Slack's message, and the sweep after a worker is lost."""

from __future__ import annotations

import base64
import json
import socket
import ssl
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import httpx
import pytest
import standardwebhooks
import trustme
from django.utils import timezone

from notifications import delivery, slack, webhook
from notifications.models import (
    Attempt,
    Channel,
    Delivery,
    DeliveryState,
    Event,
)
from releases import workflow
from releases.models import Release
from tests.checks.standin import Reply, Seen, sequence, stand_in

from .conftest import make_channel

SECRET = "whsec_" + base64.b64encode(b"a secret of thirty-two bytes ok!").decode()

Sent = list[tuple[int, int, float]]


@pytest.fixture(autouse=True)
def on_this_machine(settings: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    settings.NOTIFY_ALLOW_PRIVATE = True
    settings.NOTIFY_RETRY_SCHEDULE = [5.0, 300.0]
    monkeypatch.setenv("OPS_WEBHOOK_SECRET", SECRET)


def blocked(release: Release, users: dict[str, Any]) -> Event:
    workflow.mark_blocked(
        release.items.get(text="Unit tests pass"), by=users["qa"], reason="staging is down"
    )
    return Event.objects.get(type="item.blocked")


def deliver(delivery_id: int, attempt: int) -> Sent:
    sent: Sent = []
    delivery.deliver(delivery_id, attempt, enqueue=lambda *args: sent.append(args))
    return sent


def verified(request: Seen) -> Any:
    headers = {
        name: request.header(name)
        for name in ("webhook-id", "webhook-timestamp", "webhook-signature")
    }
    return standardwebhooks.Webhook(SECRET).verify(request.body, headers)


def test_it_delivers_a_signed_standard_webhook(release: Release, users: dict[str, Any]) -> None:
    with stand_in(lambda request: Reply(204)) as server:
        make_channel(url=f"{server.url}/hook")
        event = blocked(release, users)
        sent = deliver(Delivery.objects.get().pk, 1)

    assert sent == []
    [request] = server.requests
    assert request.method == "POST"
    assert request.path == "/hook"
    assert request.header("content-type") == "application/json"
    assert request.header("webhook-id") == str(event.pk)
    assert verified(request) == {
        "type": "item.blocked",
        "timestamp": event.created_at.isoformat(),
        "data": event.data,
    }
    done = Delivery.objects.get()
    assert (done.state, done.attempts) == (DeliveryState.DELIVERED, 1)
    attempt = Attempt.objects.get()
    assert (attempt.outcome, attempt.http_status, attempt.error) == ("delivered", 204, "")
    assert attempt.latency_ms is not None


def test_a_signature_made_with_another_secret_does_not_verify(
    release: Release, users: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPS_WEBHOOK_SECRET", "whsec_" + base64.b64encode(b"x" * 32).decode())
    with stand_in(lambda request: Reply(200)) as server:
        make_channel(url=server.url)
        blocked(release, users)
        deliver(Delivery.objects.get().pk, 1)

    with pytest.raises(standardwebhooks.WebhookVerificationError):
        verified(server.requests[0])


def test_a_retry_carries_the_same_id_and_a_repeated_task_sends_nothing(
    release: Release, users: dict[str, Any]
) -> None:
    with stand_in(sequence(Reply(500), Reply(200))) as server:
        make_channel(url=server.url)
        event = blocked(release, users)
        pk = Delivery.objects.get().pk

        [(again, attempt, delay)] = deliver(pk, 1)
        assert Delivery.objects.get().state == DeliveryState.PENDING
        assert deliver(pk, 1) == []
        deliver(again, attempt)
        deliver(again, attempt)

    assert (again, attempt) == (pk, 2)
    assert 4.5 <= delay <= 5.5
    assert [r.header("webhook-id") for r in server.requests] == [str(event.pk)] * 2
    assert all(verified(r)["type"] == "item.blocked" for r in server.requests)
    assert Delivery.objects.get().state == DeliveryState.DELIVERED
    assert list(Attempt.objects.values_list("number", "outcome", "http_status")) == [
        (1, "retry", 500),
        (2, "delivered", 200),
    ]


def test_it_gives_up_after_the_schedule(
    release: Release, users: dict[str, Any], settings: Any
) -> None:
    settings.NOTIFY_RETRY_SCHEDULE = [0.0]
    with stand_in(lambda request: Reply(503)) as server:
        make_channel(url=server.url)
        blocked(release, users)
        pk = Delivery.objects.get().pk
        deliver(pk, 1)
        assert deliver(pk, 2) == []

    gave_up = Delivery.objects.get()
    assert gave_up.state == DeliveryState.FAILED
    assert gave_up.last_error == "HTTP 503; gave up after 2 attempts"


def test_410_disables_the_channel_and_its_other_deliveries_are_not_sent(
    release: Release, users: dict[str, Any]
) -> None:
    with stand_in(lambda request: Reply(410)) as server:
        channel = make_channel(url=server.url, events=["item.blocked"])
        blocked(release, users)
        workflow.mark_blocked(
            release.items.get(text="Merge everything"), by=users["backend"], reason="review"
        )
        first, second = Delivery.objects.order_by("pk")
        deliver(first.pk, 1)
        deliver(second.pk, 1)

    assert len(server.requests) == 1
    channel.refresh_from_db()
    assert channel.disabled_at is not None
    assert channel.disabled_reason == "the endpoint is gone (HTTP 410)"
    assert [d.state for d in Delivery.objects.order_by("pk")] == ["failed", "failed"]
    assert Delivery.objects.get(pk=second.pk).last_error.startswith("channel ops is off")


def test_a_gone_channel_holds_no_other_back(release: Release, users: dict[str, Any]) -> None:
    with stand_in(lambda request: Reply(410)) as gone, stand_in(lambda request: Reply(200)) as ok:
        make_channel("gone", url=gone.url)
        make_channel("fine", url=ok.url)
        blocked(release, users)
        for each in Delivery.objects.all():
            deliver(each.pk, 1)

    states = dict(Delivery.objects.values_list("channel__name", "state"))
    assert states == {"gone": "failed", "fine": "delivered"}


@pytest.mark.parametrize("status", [429, 502, 503, 504])
def test_it_waits_as_long_as_retry_after_says(
    release: Release, users: dict[str, Any], status: int
) -> None:
    with stand_in(lambda request: Reply(status, headers={"Retry-After": "120"})) as server:
        make_channel(url=server.url)
        blocked(release, users)
        before = timezone.now()
        sent = deliver(Delivery.objects.get().pk, 1)

    # Longer than a countdown is kept for: the sweep sends it when it is due.
    assert sent == []
    waiting = Delivery.objects.get()
    assert waiting.state == DeliveryState.PENDING
    assert (
        before + timedelta(seconds=119) <= waiting.due_at <= timezone.now() + timedelta(seconds=121)
    )
    assert delivery.sweep(enqueue=lambda *args: None) == 0
    assert delivery.sweep(enqueue=lambda *args: None, now=waiting.due_at) == 1


def test_a_short_retry_after_is_sent_with_a_countdown(
    release: Release, users: dict[str, Any]
) -> None:
    with stand_in(lambda request: Reply(429, headers={"Retry-After": "2"})) as server:
        make_channel(url=server.url)
        blocked(release, users)
        pk = Delivery.objects.get().pk
        assert deliver(pk, 1) == [(pk, 2, 2.0)]


def test_it_does_not_follow_a_redirect(release: Release, users: dict[str, Any]) -> None:
    with stand_in(
        lambda request: Reply(302, headers={"Location": "http://127.0.0.1:9/x"})
    ) as server:
        make_channel(url=server.url)
        blocked(release, users)
        assert deliver(Delivery.objects.get().pk, 1) == []

    assert len(server.requests) == 1
    failed = Delivery.objects.get()
    assert failed.state == DeliveryState.FAILED
    assert failed.last_error == "redirect to http://127.0.0.1:9/x not followed"


def test_a_client_error_fails_without_a_retry(release: Release, users: dict[str, Any]) -> None:
    with stand_in(lambda request: Reply(400)) as server:
        make_channel(url=server.url)
        blocked(release, users)
        assert deliver(Delivery.objects.get().pk, 1) == []

    assert Delivery.objects.get().last_error == "HTTP 400, not retried"


def test_a_slow_receiver_times_out_and_is_retried(
    release: Release, users: dict[str, Any], settings: Any
) -> None:
    settings.NOTIFY_READ_TIMEOUT = 0.2
    with stand_in(lambda request: Reply(200, delay=1.0)) as server:
        make_channel(url=server.url)
        blocked(release, users)
        assert len(deliver(Delivery.objects.get().pk, 1)) == 1

    assert Delivery.objects.get().last_error == "timed out (ReadTimeout)"


def test_it_refuses_a_private_address_unless_allowed(
    release: Release, users: dict[str, Any], settings: Any
) -> None:
    settings.NOTIFY_ALLOW_PRIVATE = False
    with stand_in(lambda request: Reply(200)) as server:
        make_channel(url=server.url)
        blocked(release, users)
        assert deliver(Delivery.objects.get().pk, 1) == []

    assert server.requests == []
    failed = Delivery.objects.get()
    assert failed.state == DeliveryState.FAILED
    assert failed.last_error == (
        "127.0.0.1 resolves to 127.0.0.1, a private, loopback or link-local address; "
        "set NOTIFY_ALLOW_PRIVATE=1 to allow notifications inside your network"
    )


@pytest.mark.parametrize(
    ("url", "refusal"),
    [
        (
            "http://93.184.215.14/hook",
            "the URL must be https://; plain http only to a private address",
        ),
        ("https://169.254.169.254/latest", "169.254.169.254 resolves to 169.254.169.254"),
        ("https://10.0.0.8/hook", "10.0.0.8 resolves to 10.0.0.8"),
        ("https://[::1]/hook", "::1 resolves to ::1"),
        ("https://[::ffff:127.0.0.1]/hook", "resolves to ::ffff:127.0.0.1"),
        ("ftp://example.com/hook", "the URL must be https:// with a host"),
        ("https://user:pw@93.184.215.14/", "the URL must not hold credentials (user:password@)"),
    ],
)
def test_the_guard_refuses(url: str, refusal: str, settings: Any) -> None:
    settings.NOTIFY_ALLOW_PRIVATE = False

    with pytest.raises(delivery.Refused) as refused:
        delivery.guard(url)

    assert refusal in str(refused.value)


def test_the_guard_lets_a_public_https_address_through(settings: Any) -> None:
    settings.NOTIFY_ALLOW_PRIVATE = False

    delivery.guard("https://93.184.215.14/hook")


def test_a_variable_not_set_is_retried_with_a_clear_reason(
    release: Release, users: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("OPS_WEBHOOK_SECRET")
    make_channel(url="https://127.0.0.1:9/")
    blocked(release, users)

    assert len(deliver(Delivery.objects.get().pk, 1)) == 1

    assert Delivery.objects.get().last_error == (
        "OPS_WEBHOOK_SECRET, which holds the signing secret, is not set on this worker"
    )


def test_a_secret_that_is_not_whsec_fails(
    release: Release, users: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPS_WEBHOOK_SECRET", "not a secret")
    make_channel(url="https://127.0.0.1:9/")
    blocked(release, users)

    deliver(Delivery.objects.get().pk, 1)

    assert Delivery.objects.get().last_error == (
        "the signing secret is not a Standard Webhooks secret (whsec_ and base64)"
    )


def test_the_sweep_sends_again_what_a_killed_worker_left(
    release: Release, users: dict[str, Any]
) -> None:
    with stand_in(lambda request: Reply(200)) as server:
        make_channel(url=server.url)
        event = blocked(release, users)
        pk = Delivery.objects.get().pk
        # A worker claimed attempt 1 and was killed before it recorded anything.
        Delivery.objects.filter(pk=pk).update(state=DeliveryState.SENDING, attempts=1)
        later = Delivery.sending_deadline() + timedelta(seconds=1)
        sent: Sent = []

        assert delivery.sweep(enqueue=lambda *args: sent.append(args), now=later) == 1
        assert sent == [(pk, 2, 0.0)]
        assert deliver(pk, 2) == []

    assert [r.header("webhook-id") for r in server.requests] == [str(event.pk)]
    assert Delivery.objects.get().state == DeliveryState.DELIVERED
    assert list(Attempt.objects.values_list("number", "outcome", "error")) == [
        (1, "retry", "the worker sending it stopped before recording an answer"),
        (2, "delivered", ""),
    ]


def test_the_sweep_sends_a_delivery_whose_task_was_lost_once(
    release: Release, users: dict[str, Any]
) -> None:
    make_channel()
    blocked(release, users)
    pk = Delivery.objects.get().pk
    later = timezone.now() + timedelta(seconds=delivery.HANDOVER_GRACE_SECONDS + 1)
    sent: Sent = []

    assert delivery.sweep(enqueue=lambda *args: sent.append(args)) == 0
    assert delivery.sweep(enqueue=lambda *args: sent.append(args), now=later) == 1
    assert delivery.sweep(enqueue=lambda *args: sent.append(args), now=later) == 0

    assert sent == [(pk, 1, 0.0)]


def test_a_change_is_delivered_by_the_task_once_it_commits(
    release: Release,
    users: dict[str, Any],
    settings: Any,
    django_capture_on_commit_callbacks: Any,
) -> None:
    from deploycheck.celery import app

    with stand_in(lambda request: Reply(200)) as server:
        make_channel(url=server.url)
        app.conf.task_always_eager = True
        try:
            with django_capture_on_commit_callbacks(execute=True):
                blocked(release, users)
        finally:
            app.conf.task_always_eager = False

    assert len(server.requests) == 1
    assert Delivery.objects.get().state == DeliveryState.DELIVERED


def test_a_broker_that_cannot_take_the_task_fails_neither_the_change_nor_the_delivery(
    release: Release,
    users: dict[str, Any],
    monkeypatch: pytest.MonkeyPatch,
    django_capture_on_commit_callbacks: Any,
    caplog: pytest.LogCaptureFixture,
) -> None:
    from kombu.exceptions import OperationalError

    from notifications import sending

    def broker_down(*_args: Any, **_kwargs: Any) -> None:
        raise OperationalError("Error 111 connecting to 127.0.0.1:6379. Connection refused.")

    monkeypatch.setattr(sending.deliver, "apply_async", broker_down)
    make_channel(url="https://hooks.example.com/deploycheck")
    with django_capture_on_commit_callbacks(execute=True):
        event = blocked(release, users)

    assert release.items.get(text="Unit tests pass").state == "blocked"
    pending = Delivery.objects.get(event=event)
    assert (pending.state, pending.attempts) == (DeliveryState.PENDING, 0)
    assert "Connection refused" in caplog.text
    sent: Sent = []
    later = timezone.now() + timedelta(seconds=delivery.HANDOVER_GRACE_SECONDS + 1)
    assert delivery.sweep(enqueue=lambda *args: sent.append(args), now=later) == 1
    assert sent == [(pending.pk, 1, 0.0)]


# --- Slack ------------------------------------------------------------------------------


def test_slack_gets_text_and_blocks_with_what_people_typed_escaped(
    approved: Release, users: dict[str, Any], monkeypatch: pytest.MonkeyPatch, settings: Any
) -> None:
    settings.LANGUAGE_CODE = "en"
    with stand_in(lambda request: Reply(200, body="ok")) as server:
        monkeypatch.setenv("SLACK_WEBHOOK_URL", f"{server.url}/services/T0/B0/x")
        make_channel("team", kind="slack", url="", url_env="SLACK_WEBHOOK_URL", secret_env="")
        workflow.post_update(
            approved, state="investigating", message="Errors <@here> & <b>up</b>", by=users["po"]
        )
        deliver(Delivery.objects.get().pk, 1)

    [request] = server.requests
    assert request.path == "/services/T0/B0/x"
    assert "webhook-signature" not in request.headers
    sent = json.loads(request.body)
    header, details, link = sent["blocks"]
    assert header == {
        "type": "header",
        "text": {"type": "plain_text", "text": "v1.2.3: Incident update posted"},
    }
    assert details["type"] == "section"
    assert details["text"]["type"] == "mrkdwn"
    assert "*message*: Errors &lt;@here&gt; &amp; &lt;b&gt;up&lt;/b&gt;" in details["text"]["text"]
    assert "<@here>" not in request.body.decode()
    assert link["text"]["text"] == "<http://127.0.0.1:8000/releases/v1.2.3/|Open the release>"
    assert sent["text"] == "v1.2.3: Incident update posted (by po (PO))"


def test_slack_messages_to_one_webhook_are_spaced_a_second_apart_in_order(
    approved: Release, users: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    waits: list[float] = []
    monkeypatch.setattr(delivery.time, "sleep", waits.append)
    with stand_in(lambda request: Reply(200, body="ok")) as server:
        monkeypatch.setenv("SLACK_WEBHOOK_URL", f"{server.url}/services/T0/B0/x")
        channel = make_channel("team", kind="slack", url="", url_env="SLACK_WEBHOOK_URL",
                               secret_env="")  # fmt: skip
        for message in ("first", "second", "third"):
            workflow.post_update(approved, state="investigating", message=message, by=users["po"])
        for pending in Delivery.objects.order_by("event__created_at"):
            deliver(pending.pk, 1)

    # The first goes at once; each next one waits for the slot a second after the last.
    assert len(waits) == 2
    assert 0 < waits[0] <= 1 and 1 < waits[1] <= 2
    assert [json.loads(request.body)["blocks"][1]["text"]["text"].count(word)
            for request, word in zip(server.requests, ("first", "second", "third"),
                                     strict=True)] == [1, 1, 1]  # fmt: skip
    channel.refresh_from_db()
    assert channel.paced_until is not None


def test_a_slack_message_far_behind_its_slot_is_handed_back_unsent(
    approved: Release, users: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SLACK_WEBHOOK_URL", "https://hooks.slack.com/services/T0/B0/x")
    channel = make_channel("team", kind="slack", url="", url_env="SLACK_WEBHOOK_URL",
                           secret_env="")  # fmt: skip
    workflow.post_update(approved, state="investigating", message="x", by=users["po"])
    slot = timezone.now() + timedelta(seconds=delivery.PACE_WAIT_MAX_SECONDS + 10)
    Channel.objects.filter(pk=channel.pk).update(paced_until=slot)
    pending = Delivery.objects.get()

    sent = deliver(pending.pk, 1)

    pending.refresh_from_db()
    assert (pending.state, pending.attempts) == (DeliveryState.PENDING, 0)
    assert not Attempt.objects.exists()
    [(handed_id, attempt, wait)] = sent
    assert (handed_id, attempt) == (pending.pk, 1)
    assert delivery.PACE_WAIT_MAX_SECONDS < wait <= delivery.PACE_WAIT_MAX_SECONDS + 10
    assert pending.due_at > slot


def test_two_takers_never_get_one_slot(release: Release) -> None:
    channel = make_channel("team", kind="slack")
    pace = timedelta(seconds=1)

    slots = [delivery.take_slot(channel, pace) for _ in range(3)]

    assert slots[1] - slots[0] == pace and slots[2] - slots[1] == pace


def test_slack_speaks_the_site_language(approved: Release, users: dict[str, Any]) -> None:
    workflow.post_update(approved, state="investigating", message="x", by=users["po"])

    built = slack.blocks_for(Event.objects.get(type="incident.update_posted"))

    assert built["blocks"][0]["text"]["text"] == "v1.2.3: Actualización del incidente publicada"


def test_slack_text_stays_within_its_limits_without_splitting_an_escape() -> None:
    event = Event(
        type="item.blocked",
        data={
            "release": {"version": "v1.0.0", "title": "T", "url": "https://x.example/"},
            "actor": {"label": "qa", "kind": "person"},
            "item": "&" * 5000,
            "reason": "<" * 5000,
        },
    )

    built = slack.blocks_for(event)

    assert len(built["blocks"]) <= slack.MAX_BLOCKS
    section = built["blocks"][1]["text"]["text"]
    assert len(section) <= slack.SECTION_MAX
    assert section.endswith("&amp;…")


def test_a_crash_while_sending_is_an_attempt_to_retry_not_a_dead_task(
    release: Release, users: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    make_channel(url="https://127.0.0.1:9/")
    blocked(release, users)

    def broken(event: Event) -> Any:
        raise KeyError("data")

    monkeypatch.setattr(webhook, "payload", broken)
    sent = deliver(Delivery.objects.get().pk, 1)

    assert len(sent) == 1
    assert Delivery.objects.get().last_error == "the delivery crashed (KeyError)"


def test_a_long_answer_is_read_no_further_than_the_cap(settings: Any) -> None:
    settings.NOTIFY_MAX_RESPONSE_BYTES = 4096
    pulled: list[int] = []

    def endless() -> Iterator[bytes]:
        while True:
            pulled.append(1024)
            yield b"x" * 1024

    delivery._read_capped(httpx.Response(200, content=endless()))

    assert sum(pulled) == 5 * 1024


def test_it_sends_to_the_address_the_guard_judged_under_the_channel_host_name(
    release: Release, users: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    resolved: list[str] = []
    real = socket.getaddrinfo

    def hooks_on_this_machine(host: str, *args: Any, **kwargs: Any) -> Any:
        resolved.append(host)
        return real("127.0.0.1" if host == "hooks.test" else host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", hooks_on_this_machine)
    with stand_in(lambda request: Reply(200)) as server:
        make_channel(url=f"http://hooks.test:{server.port}/hook")
        blocked(release, users)
        deliver(Delivery.objects.get().pk, 1)

    # The name is resolved once, by the guard: the request went to the address it judged.
    assert resolved.count("hooks.test") == 1
    [request] = server.requests
    assert request.header("host") == f"hooks.test:{server.port}"
    assert Delivery.objects.get().state == DeliveryState.DELIVERED


@pytest.mark.parametrize(("certified", "delivered"), [("hooks.test", True), ("other.test", False)])
def test_the_certificate_is_checked_against_the_channel_host_name(
    release: Release,
    users: dict[str, Any],
    monkeypatch: pytest.MonkeyPatch,
    certified: str,
    delivered: bool,
) -> None:
    authority = trustme.CA()
    served = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    authority.issue_cert(certified).configure_cert(served)
    trusted = ssl.create_default_context()
    authority.configure_trust(trusted)
    real_lookup = socket.getaddrinfo
    monkeypatch.setattr(delivery, "ssl_context", lambda: trusted)
    monkeypatch.setattr(
        socket,
        "getaddrinfo",
        lambda host, *a, **k: real_lookup("127.0.0.1" if host == "hooks.test" else host, *a, **k),
    )
    with stand_in(lambda request: Reply(200), tls=served) as server:
        make_channel(url=f"https://hooks.test:{server.port}/hook")
        blocked(release, users)
        deliver(Delivery.objects.get().pk, 1)

    assert (Delivery.objects.get().state == DeliveryState.DELIVERED) is delivered
    if not delivered:
        assert "CERTIFICATE_VERIFY_FAILED" in Delivery.objects.get().last_error
