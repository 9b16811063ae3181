"""E-mailing events to the people on a release, each in their own language.

`queue_for` writes one EmailDelivery per (event, person) in the transaction of the change
(notifications.outbox calls it); `deliver` sends one attempt, claimed by a conditional
UPDATE as notifications.delivery claims channel deliveries, retried on the same
schedule when the mail server or the ESP cannot be reached or answers with a temporary
error; `sweep` hands out again what a lost worker left `sending` and what is due. The
mail is written and sent, and its outcome judged, by notifications.mailing, as an
e-mail channel's is; the Message-ID it went with is kept.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta

from django.conf import settings
from django.core.mail import EmailMultiAlternatives
from django.urls import reverse
from django.utils import timezone

from releases.actors import Actor, Person
from releases.models import LanguagePreference, Release, ReleaseItem

from . import performed
from .delivery import HANDOVER_GRACE_SECONDS, hand_out_due, max_attempts, release_lost, settle
from .mailing import Mailed, compose, post
from .models import (
    DEFAULT_EVENTS,
    AttemptOutcome,
    DeliveryState,
    EmailDelivery,
    EmailSubscription,
    Event,
)
from .subscriptions import FOR_ROLES, ROLE_EVENTS, unsubscribe_token

logger = logging.getLogger(__name__)

Enqueue = Callable[[int, int, float], None]
ERROR_MAX = 500


def roles_of(event: Event, release: Release) -> set[str] | None:
    """The roles an event is for, or None when it is for everyone on the release. A
    sign-off names its role; an item's role is the item's owner."""
    if event.type in FOR_ROLES:
        return set(FOR_ROLES[event.type])
    if event.type not in ROLE_EVENTS:
        return None
    if event.data.get("role"):
        return {str(event.data["role"])}
    return set(
        ReleaseItem.objects.filter(release=release, text=event.data.get("item", "")).values_list(
            "owner_role", flat=True
        )
    )


def recipients(event: Event, release: Release, actor: Actor) -> list[tuple[int, str]]:
    """(user id, address) of each person told of `event`: on the release, in a role it
    is for, wanting it, with an address, and not the person who acted."""
    roles = roles_of(event, release)
    held: dict[int, set[str]] = {}
    addresses: dict[int, str] = {}
    for role, user_id, address, active in release.stakeholders.values_list(
        "role", "user_id", "user__email", "user__is_active"
    ):
        if active and address:
            held.setdefault(user_id, set()).add(role)
            addresses[user_id] = address
    acting = actor.user.pk if isinstance(actor, Person) else None
    subscriptions = EmailSubscription.objects.in_bulk(list(held), field_name="user_id")
    found = []
    for user_id, their_roles in held.items():
        if user_id == acting or (roles is not None and not roles & their_roles):
            continue
        subscription = subscriptions.get(user_id)
        wanted = (
            subscription.wants(event.type, release.version)
            if subscription is not None
            else event.type in DEFAULT_EVENTS
        )
        if wanted:
            found.append((user_id, addresses[user_id]))
    return found


def queue_for(release: Release, events: Sequence[tuple[Event, Actor]], now: datetime) -> list[int]:
    """Write the e-mail deliveries of one change's events, inside its transaction; the
    ids of those to send once it commits."""
    handover = now + timedelta(seconds=HANDOVER_GRACE_SECONDS)
    made = EmailDelivery.objects.bulk_create(
        [
            EmailDelivery(event=event, user_id=user_id, address=address, due_at=handover)
            for event, actor in events
            for user_id, address in recipients(event, release, actor)
        ]
    )
    return [delivery.pk for delivery in made]


def language_of(user_id: int) -> str:
    saved = LanguagePreference.objects.filter(user_id=user_id).values_list("language", flat=True)
    return saved.first() or settings.LANGUAGE_CODE


def _site(path: str) -> str:
    return settings.SITE_URL.rstrip("/") + path


def unsubscribe_url(user_id: int) -> str:
    token = unsubscribe_token(user_id)
    return _site(reverse("notifications:unsubscribe", args=[token]))


def message(delivery: EmailDelivery) -> EmailMultiAlternatives:
    """The mail for one delivery, in its recipient's language, text and HTML, with the
    person's unsubscribe link in it and in its headers."""
    unsubscribe = unsubscribe_url(delivery.user_id)
    mail = compose(
        delivery.event,
        [delivery.address],
        language_of(delivery.user_id),
        {"unsubscribe": unsubscribe, "preferences": _site(reverse("notifications:preferences"))},
        person=delivery.user_id,
    )
    mail.extra_headers["List-Unsubscribe"] = f"<{unsubscribe}>"
    # RFC 8058 allows the one-click POST to an https:// link only.
    if unsubscribe.startswith("https://"):
        mail.extra_headers["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
    return mail


def _send(delivery: EmailDelivery) -> Mailed:
    """What came of one attempt; never raises."""
    subscription = EmailSubscription.objects.filter(user_id=delivery.user_id).first()
    if subscription is not None and subscription.unsubscribed_at is not None:
        return Mailed(
            AttemptOutcome.FAILED, "the person unsubscribed before it was sent", sent=False
        )
    if not settings.EMAIL_ENABLED:
        return Mailed(
            AttemptOutcome.FAILED, "EMAIL_URL is not set: no mail can be sent", sent=False
        )
    try:
        mail = message(delivery)
    except Exception as error:  # a bug must not leave the delivery half-done
        logger.exception("e-mail delivery %s crashed", delivery.pk)
        return Mailed(AttemptOutcome.RETRY, f"the delivery crashed ({type(error).__name__})")
    return post(mail)


def deliver(delivery_id: int, attempt: int, *, enqueue: Enqueue) -> None:
    """What a worker does with one (delivery, attempt) it was handed."""
    claimed = EmailDelivery.objects.filter(
        pk=delivery_id, state=DeliveryState.PENDING, attempts=attempt - 1
    ).update(
        state=DeliveryState.SENDING,
        attempts=attempt,
        due_at=EmailDelivery.sending_deadline(),
    )
    if not claimed:
        return
    delivery = EmailDelivery.objects.select_related("event").get(pk=delivery_id)
    mailed = _send(delivery)
    outcome, error, message_id = mailed.outcome, mailed.error, mailed.message_id
    if outcome == AttemptOutcome.RETRY and attempt >= max_attempts():
        outcome, error = AttemptOutcome.FAILED, f"{error}; gave up after {attempt} attempts"
    log = logger.info if outcome == AttemptOutcome.DELIVERED else logger.warning
    log(
        "e-mail %s to user %s, attempt %d: %s %s",
        delivery.event_id,
        delivery.user_id,
        attempt,
        outcome,
        error,
    )
    settle(
        EmailDelivery.objects.all(),
        delivery_id,
        attempt,
        outcome,
        error,
        wait=None,
        message_id=message_id,
        enqueue=enqueue,
    )
    if outcome != AttemptOutcome.RETRY:
        performed.settle(delivery.event_id)


def sweep(*, enqueue: Enqueue, now: datetime | None = None) -> int:
    """Send again what no task is sending: attempts whose worker was lost mid-way (the
    person may get the mail twice, which beats not at all), and attempts due whose task
    never came. How many were handed out."""
    now = now or timezone.now()
    for lost in release_lost(EmailDelivery.objects.all(), now):
        if lost.gave_up:
            performed.settle(lost.event_id)
    return hand_out_due(EmailDelivery.objects.all(), enqueue=enqueue, now=now)
