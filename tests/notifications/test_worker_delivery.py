"""Delivery through real Celery workers on Redis, to receivers on 127.0.0.1: a worker
killed mid-delivery loses no event (a receiver verifying Standard Webhooks signatures,
and an SMTP sink), and a channel that hangs holds no other back."""

from __future__ import annotations

import base64
import signal
import threading
import time
from pathlib import Path
from typing import Any

import pytest
import standardwebhooks
from aiosmtpd.controller import Controller

from notifications.models import Delivery, DeliveryState, EmailDelivery, Event
from releases.models import Release
from tests.checks.standin import Reply, Seen, stand_in
from tests.checks.test_worker import manage, service_env
from tests.servers import worker

from .conftest import Sink, free_port, make_channel

pytestmark = pytest.mark.live

SECRET = "whsec_" + base64.b64encode(b"thirty-two bytes of a key, ok!!!").decode()
# The items blocked, one event each; the first delivery is the one the kill interrupts.
BLOCK_ALL = """
from django.contrib.auth import get_user_model
from releases import workflow
from releases.models import Release
admin = get_user_model().objects.get(username="admin")
release = Release.objects.get(version="v1.2.3")
for entry in release.items.order_by("position"):
    workflow.mark_blocked(entry, by=admin, reason="staging is down")
"""
SWEEP = "from notifications.tasks import _sweep; print(_sweep())"


def settled(seconds: float) -> bool:
    """Whether every delivery, to the channel and by e-mail, has finished."""
    deadline = time.monotonic() + seconds
    unfinished = [DeliveryState.PENDING, DeliveryState.SENDING]
    while time.monotonic() < deadline:
        if not (
            Delivery.objects.filter(state__in=unfinished).exists()
            or EmailDelivery.objects.filter(state__in=unfinished).exists()
        ):
            return True
        time.sleep(0.2)
    return False


def test_a_killed_worker_loses_no_event_and_a_deduplicating_receiver_sees_each_once(
    transactional_db: None, release: Release, users: dict[str, Any], tmp_path: Path
) -> None:
    verifier = standardwebhooks.Webhook(SECRET)
    first_seen = threading.Event()
    processed: list[str] = []
    received_ids: list[str] = []
    lock = threading.Lock()

    def receiver(request: Seen) -> Reply:
        # Verified before anything else: an unsigned or tampered request is refused.
        headers = {name: request.header(name) for name in
                   ("webhook-id", "webhook-timestamp", "webhook-signature")}  # fmt: skip
        try:
            verifier.verify(request.body, headers)
        except standardwebhooks.webhooks.WebhookVerificationError:
            return Reply(status=401)
        if not first_seen.is_set():
            first_seen.set()
            # Long enough for the test to kill the worker waiting on the answer.
            return Reply(status=204, delay=8)
        with lock:
            received_ids.append(headers["webhook-id"])
            if headers["webhook-id"] not in processed:
                processed.append(headers["webhook-id"])
        return Reply(status=204)

    sink = Sink()
    smtp_port = free_port()
    mail_server = Controller(sink, hostname="127.0.0.1", port=smtp_port)
    mail_server.start()
    try:
        with stand_in(receiver) as hooks:
            make_channel(url=hooks.url, secret_env="OPS_SECRET")
            env = service_env(
                "redis",
                tmp_path,
                OPS_SECRET=SECRET,
                NOTIFY_ALLOW_PRIVATE="1",
                NOTIFY_ATTEMPT_SECONDS="1",
                NOTIFY_READ_TIMEOUT="20",
                EMAIL_URL=f"smtp://127.0.0.1:{smtp_port}",
            )
            with worker(env, tmp_path / "first") as doomed:
                blocked = manage(env, "shell", "-c", BLOCK_ALL)
                assert blocked.returncode == 0, blocked.stderr
                assert first_seen.wait(30), doomed.log_text()
                doomed.process.send_signal(signal.SIGKILL)
                doomed.process.wait()
            interrupted = Delivery.objects.filter(state=DeliveryState.SENDING)
            assert interrupted.count() == 1
            time.sleep(1.2)  # past the attempt's deadline
            with worker(env, tmp_path / "second") as survivor:
                swept = manage(env, "shell", "-c", SWEEP)
                assert swept.returncode == 0, swept.stderr
                assert settled(60), survivor.log_text()
    finally:
        mail_server.stop()

    events = set(Event.objects.filter(type="item.blocked").values_list("id", flat=True).iterator())
    assert len(events) == release.items.count()
    assert {str(event_id) for event_id in events} == set(processed)
    assert len(processed) == len(events)
    assert set(Delivery.objects.values_list("state", flat=True)) == {DeliveryState.DELIVERED}
    # The one whose worker died was sent again by the sweep as its second attempt.
    assert sorted(Delivery.objects.values_list("attempts", flat=True)) == [1] * (
        len(events) - 1
    ) + [2]
    mails = EmailDelivery.objects.all()
    assert mails.exists()
    assert set(mails.values_list("state", flat=True)) == {DeliveryState.DELIVERED}
    mailed = {tuple(envelope.rcpt_tos) for envelope in sink.received}
    assert mailed == {(address,) for address in mails.values_list("address", flat=True)}


def test_a_channel_that_hangs_holds_no_other_back(
    transactional_db: None, release: Release, users: dict[str, Any], tmp_path: Path
) -> None:
    hung = threading.Event()
    released = threading.Event()

    def hanging(_request: Seen) -> Reply:
        hung.set()
        released.wait(30)
        return Reply(status=204)

    try:
        with stand_in(hanging) as slow, stand_in(lambda _request: Reply(204)) as fast:
            make_channel("slow", url=slow.url, secret_env="OPS_SECRET")
            make_channel("fast", url=fast.url, secret_env="OPS_SECRET")
            env = service_env(
                "redis", tmp_path, OPS_SECRET=SECRET, NOTIFY_ALLOW_PRIVATE="1",
                NOTIFY_READ_TIMEOUT="30", EMAIL_URL="",
            )  # fmt: skip
            with worker(env, tmp_path / "worker") as running:
                blocked = manage(env, "shell", "-c", BLOCK_ALL)
                assert blocked.returncode == 0, blocked.stderr
                assert hung.wait(30), running.log_text()
                fast_ones = Delivery.objects.filter(channel__name="fast")
                deadline = time.monotonic() + 60
                while fast_ones.exclude(state=DeliveryState.DELIVERED).exists():
                    assert time.monotonic() < deadline, running.log_text()
                    time.sleep(0.2)
                # Every fast delivery is done while the slow channel still holds its own.
                still_waiting = Delivery.objects.filter(
                    channel__name="slow", state=DeliveryState.SENDING
                )
                assert still_waiting.exists()
                assert fast_ones.count() == release.items.count() == len(fast.requests)
                released.set()
    finally:
        released.set()
