"""Delivering one event to one channel, at least once.

A task claims a delivery for one attempt by a conditional UPDATE naming the attempt, so
a task sent twice sends once. Each attempt is logged. What the answer means:

- 2xx: delivered; but a Teams Workflow's 202 is only accepted: the flow posts later,
  and nobody tells us whether it did.
- 410 Gone: the endpoint is gone for good; the channel is disabled (Standard Webhooks).
- 429, 502, 503, 504: try again, after the server's Retry-After when it gives one.
- any other 5xx, a timeout, a connection refused: try again on NOTIFY_RETRY_SCHEDULE
  (Standard Webhooks' schedule, with jitter), then give up.
- any other 4xx, a redirect (never followed), a URL the guard refuses: failed, not
  retried: sending the same again would be refused again.

An e-mail channel has no URL: its attempt is one mail to its addresses, sent and judged
by notifications.mailing, and the Message-ID the server took it with is kept.

A worker killed mid-attempt leaves the delivery `sending` past its deadline; `sweep`
hands it out again (the receiver may have got it: the event id, the same on every
attempt, lets it drop the repeat), and sends every attempt that is due and was not sent.
"""

from __future__ import annotations

import ipaddress
import logging
import os
import random
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

import httpx
from django.conf import settings
from django.db import transaction
from django.db.models import DateTimeField, ExpressionWrapper, F, QuerySet, Value
from django.db.models.functions import Coalesce, Greatest
from django.utils import timezone
from django.utils.translation import gettext_noop as _

from checks.kinds.client import retry_after, ssl_context
from releases.evidence import Said, SaidError, said

from . import mailing, performed, slack, teams, webhook
from .models import (
    Attempt,
    AttemptOutcome,
    Channel,
    ChannelKind,
    Delivery,
    DeliveryState,
    EmailDelivery,
    Event,
)

logger = logging.getLogger(__name__)

Enqueue = Callable[[int, int, float], None]
USER_AGENT = "deploycheck-notify/1.0"
# How long a task sent for a delivery has to claim it before the sweep sends another.
HANDOVER_GRACE_SECONDS = 30.0
# A retry sooner than this is sent at once with a countdown; a later one waits for the
# sweep, so that no message sits in the broker for hours.
COUNTDOWN_MAX_SECONDS = 60.0
# Answers whose Retry-After says when to come back.
RETRY_AFTER_STATUSES = frozenset({429, 502, 503, 504})
ERROR_MAX = 500
# How much of an answer is shown to a person trying a channel, in characters; bytes
# kept for it (a UTF-8 character takes up to four).
ANSWER_SHOWN = 500
ANSWER_KEPT = 4 * ANSWER_SHOWN
# Slack asks for about one message per second per incoming webhook, and answers a burst
# with 429s: its messages are spaced this far apart.
PACES = {ChannelKind.SLACK: timedelta(seconds=1)}
# A wait for a slot longer than this hands the delivery back rather than hold a worker
# thread; a burst that long to one channel is rare.
PACE_WAIT_MAX_SECONDS = 20.0


class Refused(SaidError):
    """The delivery cannot succeed as configured; not tried again."""


class Transient(SaidError):
    """The delivery may succeed later (a name that does not resolve, a variable not set
    yet on this worker); tried again on the schedule."""


@dataclass(frozen=True)
class Outcome:
    outcome: AttemptOutcome
    http_status: int | None = None
    # In English, as the logs and the stored records keep it; `said` is the same as a
    # message and its values, for a person reading it in their language.
    error: str = ""
    # Seconds the server asked us to wait, when it did.
    wait: float | None = None
    # The endpoint said it is gone: disable the channel.
    gone: bool = False
    # The start of what the receiver answered, for a person trying the channel.
    answer: str = ""
    # An e-mail channel's mail, as the server or the ESP took it.
    message_id: str = ""
    said: Said | None = None
    # False when the attempt was refused before any request went out (a URL refused, a
    # variable not set): the receiver got nothing.
    sent: bool = True

    @property
    def error_shown(self) -> str:
        """The error in the active language; a plain one (a mail server's) as it came."""
        return self.said.translated() if self.said is not None else self.error


def _failed(outcome: AttemptOutcome, why: Said, status: int | None = None, **more: Any) -> Outcome:
    return Outcome(outcome, status, why.english(), said=why, **more)


def max_attempts() -> int:
    return 1 + len(settings.NOTIFY_RETRY_SCHEDULE)


def retry_delay(attempt: int, asked: float | None) -> float:
    """Seconds until the attempt after `attempt`: what the server asked, or the
    schedule's step with jitter, so that deliveries that failed together do not all
    come back together."""
    if asked is not None:
        return min(max(asked, 0.0), float(max(settings.NOTIFY_RETRY_SCHEDULE)))
    step = float(settings.NOTIFY_RETRY_SCHEDULE[attempt - 1])
    return step * random.uniform(0.9, 1.1)


def guard(url: str) -> str:
    """The address to send to, once the URL passes: Refused for anything but https, and
    for a host that resolves to a private, loopback, link-local or otherwise non-public
    address (this server's own network), unless NOTIFY_ALLOW_PRIVATE allows those; then
    plain http is allowed to them too (a stand-in or a relay inside the network)."""
    try:
        parts = urlsplit(url)
        host, port = parts.hostname, parts.port
    except ValueError:
        raise Refused(said(_("the URL is not valid"))) from None
    if parts.scheme not in ("https", "http") or not host:
        raise Refused(said(_("the URL must be https:// with a host")))
    if parts.username is not None or parts.password is not None:
        raise Refused(said(_("the URL must not hold credentials (user:password@)")))
    try:
        found = socket.getaddrinfo(host, port or 443, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError) as error:
        raise Transient(
            said(_("cannot resolve %(host)s: %(error)s"), host=host, error=str(error))
        ) from None
    addresses = list(dict.fromkeys(str(info[4][0]).split("%")[0] for info in found))
    private = sorted(address for address in addresses if not _is_public(address))
    if private and not settings.NOTIFY_ALLOW_PRIVATE:
        raise Refused(
            said(
                _(
                    "%(host)s resolves to %(address)s, a private, loopback or link-local "
                    "address; set NOTIFY_ALLOW_PRIVATE=1 to allow notifications inside your "
                    "network"
                ),
                host=host,
                address=private[0],
            )
        )
    if parts.scheme != "https" and (
        not settings.NOTIFY_ALLOW_PRIVATE or len(private) < len(addresses)
    ):
        raise Refused(said(_("the URL must be https://; plain http only to a private address")))
    return addresses[0]


def _is_public(address: str) -> bool:
    ip = ipaddress.ip_address(address)
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_global and not ip.is_multicast


def _variable(name: str, what: Said) -> str:
    value = os.environ.get(name, "").strip()
    if not value:
        raise Transient(
            said(
                _("%(name)s, which holds the %(what)s, is not set on this worker"),
                name=name,
                what=what,
            )
        )
    return value


def channel_url(channel: Channel) -> str:
    return channel.url or _variable(channel.url_env, said(_("channel's URL")))


def request_for(channel: Channel, event: Event) -> tuple[bytes, dict[str, str]]:
    """The body and headers this channel is sent for this event."""
    if channel.kind == ChannelKind.WEBHOOK:
        secret = _variable(channel.secret_env, said(_("signing secret")))
        try:
            return webhook.signed(event, secret, datetime.now(tz=UTC))
        except webhook.BadSecret:
            raise Refused(
                said(_("the signing secret is not a Standard Webhooks secret (whsec_ and base64)"))
            ) from None
    if channel.kind == ChannelKind.TEAMS:
        return teams.message(event)
    return slack.message(event)


def _client() -> httpx.Client:
    connect = float(settings.NOTIFY_CONNECT_TIMEOUT)
    read = float(settings.NOTIFY_READ_TIMEOUT)
    return httpx.Client(
        timeout=httpx.Timeout(connect=connect, read=read, write=read, pool=connect),
        follow_redirects=False,
        # The system's trust store, as the checks use it, and no proxy from the
        # environment.
        verify=ssl_context(),
        trust_env=False,
        # The answer is read raw, under a byte cap: compressed, it could not be shown to
        # a person trying the channel, and a small one could inflate without bound.
        headers={"User-Agent": USER_AGENT, "Accept-Encoding": "identity"},
    )


def send(channel: Channel, event: Event) -> Outcome:
    """One attempt, whatever happens: never raises."""
    try:
        return _attempt(channel, event)
    except Exception as error:  # a bug must not leave the delivery half-done
        logger.exception("notification %s to %s crashed", event.pk, channel.name)
        return _failed(
            AttemptOutcome.RETRY,
            said(_("the delivery crashed (%(error)s)"), error=type(error).__name__),
        )


def _attempt(channel: Channel, event: Event) -> Outcome:
    if channel.kind == ChannelKind.EMAIL:
        mailed = mailing.to_channel(channel, event)
        return Outcome(
            mailed.outcome,
            mailed.http_status,
            mailed.error,
            message_id=mailed.message_id,
            sent=mailed.sent,
        )
    try:
        raw_url = channel_url(channel)
        if teams.is_legacy_connector(raw_url):
            raise Refused(said(_("the channel's URL is %(hint)s"), hint=said(teams.LEGACY_HINT)))
        url = _parsed(raw_url)
        address = guard(str(url))
        body, headers = request_for(channel, event)
    except Refused as error:
        return _failed(AttemptOutcome.FAILED, error.why, sent=False)
    except Transient as error:
        return _failed(AttemptOutcome.RETRY, error.why, sent=False)
    try:
        with (
            _client() as client,
            client.stream(
                "POST",
                # To the address the guard judged: resolving the name again could give
                # another (a DNS answer changed in between). The certificate is still
                # checked against the name, which TLS is told (SNI) as the Host header is.
                url.copy_with(host=address),
                content=body,
                headers={**headers, "Host": url.netloc.decode("ascii")},
                extensions={"sni_hostname": url.raw_host.decode("ascii")},
            ) as answer,
        ):
            read = _read_capped(answer)
    except httpx.TimeoutException as error:
        return _failed(
            AttemptOutcome.RETRY, said(_("timed out (%(error)s)"), error=type(error).__name__)
        )
    except httpx.HTTPError as error:
        return _failed(
            AttemptOutcome.RETRY,
            said(_("could not connect (%(error)s)"), error=str(error) or type(error).__name__),
        )
    return replace(
        judged(answer, ChannelKind(channel.kind)),
        answer=read.decode("utf-8", errors="replace")[:ANSWER_SHOWN],
    )


def _parsed(url: str) -> httpx.URL:
    try:
        return httpx.URL(url)
    except httpx.InvalidURL:
        raise Refused(said(_("the URL is not valid"))) from None


def _read_capped(answer: httpx.Response) -> bytes:
    """The start of the answer. It is read to end the exchange cleanly and to show a
    person trying a channel what came back; a receiver that sends a lot, or drips it,
    is cut off rather than read to the end: its status is all a delivery uses."""
    limit = int(settings.NOTIFY_MAX_RESPONSE_BYTES)
    until = time.monotonic() + float(settings.NOTIFY_READ_TIMEOUT)
    seen = 0
    start = b""
    for chunk in answer.iter_raw():
        if len(start) < ANSWER_KEPT:
            start += chunk[: ANSWER_KEPT - len(start)]
        seen += len(chunk)
        if seen > limit or time.monotonic() > until:
            break
    return start


def judged(answer: httpx.Response, kind: ChannelKind) -> Outcome:
    status = answer.status_code
    if status == 202 and kind == ChannelKind.TEAMS:
        return Outcome(AttemptOutcome.ACCEPTED, status)
    if 200 <= status < 300:
        return Outcome(AttemptOutcome.DELIVERED, status)
    if status == 410:
        return _failed(
            AttemptOutcome.FAILED, said(_("the endpoint is gone (HTTP 410)")), status, gone=True
        )
    if 300 <= status < 400:
        where = answer.headers.get("location", "")[:200]
        if where:
            moved = said(_("redirect to %(where)s not followed"), where=where)
        else:
            moved = said(_("redirect to elsewhere not followed"))
        return _failed(AttemptOutcome.FAILED, moved, status)
    if status in RETRY_AFTER_STATUSES:
        return _failed(
            AttemptOutcome.RETRY,
            said(_("HTTP %(status)s"), status=status),
            status,
            wait=retry_after(answer),
        )
    if status >= 500:
        return _failed(AttemptOutcome.RETRY, said(_("HTTP %(status)s"), status=status), status)
    return _failed(
        AttemptOutcome.FAILED, said(_("HTTP %(status)s, not retried"), status=status), status
    )


def deliver(delivery_id: int, attempt: int, *, enqueue: Enqueue) -> None:
    """What a worker does with one (delivery, attempt) it was handed."""
    claimed = Delivery.objects.filter(
        pk=delivery_id, state=DeliveryState.PENDING, attempts=attempt - 1
    ).update(state=DeliveryState.SENDING, attempts=attempt, due_at=Delivery.sending_deadline())
    if not claimed:
        return
    delivery = Delivery.objects.select_related("event", "channel").get(pk=delivery_id)
    channel = delivery.channel
    pace = PACES.get(ChannelKind(channel.kind))
    if pace is not None and channel.active:
        wait = (take_slot(channel, pace) - timezone.now()).total_seconds()
        if wait > PACE_WAIT_MAX_SECONDS:
            _hand_back(delivery, attempt, wait, enqueue)
            return
        if wait > 0:
            time.sleep(wait)
    started = time.perf_counter()
    if channel.active:
        outcome = send(channel, delivery.event)
    else:
        # A disabled channel's reason is English, stored; a message of ours, so the
        # catalogue has it.
        why = said(channel.disabled_reason if channel.disabled_at else _("retired from the file"))
        outcome = _failed(
            AttemptOutcome.FAILED,
            said(_("channel %(name)s is off: %(why)s"), name=channel.name, why=why),
        )
    latency_ms = round((time.perf_counter() - started) * 1000)
    if outcome.outcome == AttemptOutcome.RETRY and attempt >= max_attempts():
        outcome = _failed(
            AttemptOutcome.FAILED,
            said(
                _("%(error)s; gave up after %(count)s attempts"),
                error=outcome.said or outcome.error,
                count=attempt,
            ),
            outcome.http_status,
        )
    _log(delivery, attempt, outcome, latency_ms)
    if outcome.gone:
        Channel.objects.filter(pk=channel.pk, disabled_at__isnull=True).update(
            disabled_at=timezone.now(), disabled_reason=outcome.error
        )
    settle(
        Delivery.objects.all(),
        delivery.pk,
        attempt,
        outcome.outcome,
        outcome.error,
        wait=outcome.wait,
        message_id=outcome.message_id,
        enqueue=enqueue,
    )
    performed.settle(delivery.event_id)


def take_slot(channel: Channel, pace: timedelta) -> datetime:
    """When this message may go: the channel's next free slot, taken. The update and the
    read share a transaction, so the row stays locked (PostgreSQL) or the database
    reserved (SQLite) in between and two workers never take one slot."""
    now = timezone.now()
    following = ExpressionWrapper(
        Greatest(Coalesce(F("paced_until"), Value(now)), Value(now)) + pace,
        output_field=DateTimeField(),
    )
    with transaction.atomic():
        Channel.objects.filter(pk=channel.pk).update(paced_until=following)
        taken = Channel.objects.values_list("paced_until", flat=True).get(pk=channel.pk)
    assert taken is not None
    return taken - pace


def _hand_back(delivery: Delivery, attempt: int, wait: float, enqueue: Enqueue) -> None:
    """Give the claim up unsent, the attempt not spent, to be sent when its slot comes."""
    soon = wait <= COUNTDOWN_MAX_SECONDS
    due = timezone.now() + timedelta(seconds=wait + (HANDOVER_GRACE_SECONDS if soon else 0.0))
    handed = Delivery.objects.filter(
        pk=delivery.pk, state=DeliveryState.SENDING, attempts=attempt
    ).update(state=DeliveryState.PENDING, attempts=attempt - 1, due_at=due)
    if handed and soon:
        enqueue(delivery.pk, attempt, wait)


def _log(delivery: Delivery, attempt: int, outcome: Outcome, latency_ms: int | None) -> None:
    Attempt.objects.create(
        delivery=delivery,
        number=attempt,
        outcome=outcome.outcome,
        http_status=outcome.http_status,
        latency_ms=latency_ms,
        error=outcome.error[:ERROR_MAX],
        said=outcome.said.as_json() if outcome.said is not None else {},
    )
    done = (AttemptOutcome.DELIVERED, AttemptOutcome.ACCEPTED)
    log = logger.info if outcome.outcome in done else logger.warning
    log(
        "notification %s to %s, attempt %d: %s %s",
        delivery.event_id,
        delivery.channel.name,
        attempt,
        outcome.outcome,
        outcome.error or outcome.http_status,
    )


def settle(
    deliveries: QuerySet[Delivery] | QuerySet[EmailDelivery],
    pk: int,
    attempt: int,
    outcome: AttemptOutcome,
    error: str,
    *,
    wait: float | None,
    message_id: str,
    enqueue: Enqueue,
) -> None:
    """Record what came of an attempt, to a channel or to a person alike, if the delivery
    is still held for it (`sending`, this attempt); a retry soon is enqueued at once, a
    later one left to the sweep. `wait`: how long the receiver asked us to wait."""
    mine = deliveries.filter(pk=pk, state=DeliveryState.SENDING, attempts=attempt)
    now = timezone.now()
    kept = {"message_id": message_id} if message_id else {}
    if outcome == AttemptOutcome.DELIVERED:
        mine.update(state=DeliveryState.DELIVERED, delivered_at=now, last_error="", **kept)
        return
    if outcome == AttemptOutcome.ACCEPTED:
        mine.update(
            state=DeliveryState.ACCEPTED, delivered_at=now, last_error=error[:ERROR_MAX], **kept
        )
        return
    if outcome == AttemptOutcome.FAILED:
        mine.update(state=DeliveryState.FAILED, last_error=error[:ERROR_MAX], **kept)
        return
    delay = retry_delay(attempt, wait)
    soon = delay <= COUNTDOWN_MAX_SECONDS
    due = now + timedelta(seconds=delay + (HANDOVER_GRACE_SECONDS if soon else 0.0))
    handed = mine.update(
        state=DeliveryState.PENDING, due_at=due, last_error=error[:ERROR_MAX], **kept
    )
    if handed and soon:
        enqueue(pk, attempt + 1, delay)


def sweep(*, enqueue: Enqueue, now: datetime | None = None) -> int:
    """Send again what no task is sending: attempts whose worker was lost mid-way, and
    attempts due whose task never came (a lost message, a retry left to the sweep).
    How many were handed out."""
    now = now or timezone.now()
    for lost in release_lost(Delivery.objects.all(), now):
        delivery = Delivery.objects.select_related("channel").get(pk=lost.pk)
        outcome = AttemptOutcome.FAILED if lost.gave_up else AttemptOutcome.RETRY
        _log(delivery, lost.attempt, _failed(outcome, lost.error), None)
        performed.settle(lost.event_id)
    return hand_out_due(Delivery.objects.all(), enqueue=enqueue, now=now)


@dataclass(frozen=True)
class Lost:
    pk: int
    attempt: int
    event_id: Any
    gave_up: bool
    error: Said


LOST = _("the worker sending it stopped before recording an answer")


def release_lost(
    deliveries: QuerySet[Delivery] | QuerySet[EmailDelivery], now: datetime
) -> list[Lost]:
    """Give back the attempts whose worker was lost mid-way (still `sending` past their
    deadline): pending again and due now, or failed when it was the last attempt. The
    receiver may have got it: the same id on the next attempt lets it drop the repeat.
    Those this sweep took, each by a conditional update, so two sweeps never both do."""
    released = []
    stuck = deliveries.filter(state=DeliveryState.SENDING, due_at__lt=now)
    for pk, attempts, event_id in stuck.values_list("pk", "attempts", "event_id"):
        gave_up = attempts >= max_attempts()
        error = said(_("%(error)s; gave up"), error=said(LOST)) if gave_up else said(LOST)
        taken = deliveries.filter(pk=pk, state=DeliveryState.SENDING, attempts=attempts).update(
            state=DeliveryState.FAILED if gave_up else DeliveryState.PENDING,
            due_at=now,
            last_error=error.english(),
        )
        if taken:
            released.append(Lost(pk, attempts, event_id, gave_up, error))
    return released


def hand_out_due(
    deliveries: QuerySet[Delivery] | QuerySet[EmailDelivery], *, enqueue: Enqueue, now: datetime
) -> int:
    """Enqueue the next attempt of each pending delivery that is due, each taken by a
    conditional update so that two sweeps never send one twice; how many were handed."""
    handed = 0
    due = deliveries.filter(state=DeliveryState.PENDING, due_at__lte=now)
    for delivery_id, attempts in due.values_list("pk", "attempts"):
        taken = deliveries.filter(
            pk=delivery_id, state=DeliveryState.PENDING, attempts=attempts, due_at__lte=now
        ).update(due_at=now + timedelta(seconds=HANDOVER_GRACE_SECONDS))
        if taken:
            handed += 1
            enqueue(delivery_id, attempts + 1, 0.0)
    return handed
