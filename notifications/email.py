"""E-mailing events to the people on a release, each in their own language.

`queue_for` writes one EmailDelivery per (event, person) in the transaction of the change
(notifications.outbox calls it); `deliver` sends one attempt, claimed by a conditional
UPDATE as notifications.delivery claims channel deliveries, retried on the same
schedule when the mail server refuses or cannot be reached; `sweep` hands out again what
a lost worker left `sending` and what is due. A delivery counts as sent once Django's
mail backend returned without error; the Message-ID it went with is kept.
"""

from __future__ import annotations

import logging
import smtplib
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from email.utils import make_msgid
from typing import Any
from urllib.parse import urlsplit

from django.conf import settings
from django.core.mail import EmailMultiAlternatives
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import timezone, translation
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _

from releases.actors import Actor, Person
from releases.models import (
    DeployResult,
    IncidentState,
    LanguagePreference,
    Release,
    ReleaseItem,
    Role,
    RollbackSeverity,
    WindowState,
)
from releases.templatetags.moments import moment

from . import performed
from .delivery import (
    COUNTDOWN_MAX_SECONDS,
    HANDOVER_GRACE_SECONDS,
    hand_out_due,
    max_attempts,
    retry_delay,
)
from .models import (
    DEFAULT_EVENTS,
    AttemptOutcome,
    DeliveryState,
    EmailDelivery,
    EmailSubscription,
    Event,
)
from .subscriptions import FOR_ROLES, ROLE_EVENTS, unsubscribe_token
from .wording import PERFORMED_TITLES, TITLES

logger = logging.getLogger(__name__)

Enqueue = Callable[[int, int, float], None]
ERROR_MAX = 500

# What of an event's data a mail shows, under which label, in this order.
DETAILS: tuple[tuple[str, Any], ...] = (
    ("item", _("Item")),
    ("step", _("Step")),
    ("phase", _("Phase")),
    ("severity", _("Severity")),
    ("result", _("Result")),
    ("state", _("State")),
    ("start", _("Starts")),
    ("end", _("Ends")),
    ("reason", _("Reason")),
    ("failure", _("Failure")),
    ("message", _("Message")),
)


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


def shown(event_type: str, key: str, value: Any) -> str:
    """A value as the reader's language names it when it is one of the app's choices
    (a severity, a result, a state), else as it was written."""
    choices: Any = {"severity": RollbackSeverity, "result": DeployResult}.get(key)
    if key == "state":
        choices = IncidentState if event_type.startswith("incident.") else WindowState
    if choices is not None and value in choices.values:
        return str(choices(value).label)
    return str(value)


def language_of(user_id: int) -> str:
    saved = LanguagePreference.objects.filter(user_id=user_id).values_list("language", flat=True)
    return saved.first() or settings.LANGUAGE_CODE


def _site(path: str) -> str:
    return settings.SITE_URL.rstrip("/") + path


def unsubscribe_url(user_id: int) -> str:
    token = unsubscribe_token(user_id)
    return _site(reverse("notifications:unsubscribe", args=[token]))


def message(delivery: EmailDelivery) -> EmailMultiAlternatives:
    """The mail for one delivery, in its recipient's language, text and HTML."""
    event = delivery.event
    data = event.data
    version = data.get("release", {}).get("version", "")
    unsubscribe = unsubscribe_url(delivery.user_id)
    with translation.override(language_of(delivery.user_id)):
        title = str(TITLES.get(event.type) or PERFORMED_TITLES.get(event.type) or event.type)
        role = data.get("role")
        details = [
            (str(label), shown(event.type, key, data[key]))
            for key, label in DETAILS
            if data.get(key) not in (None, "")
        ]
        context = {
            "title": title,
            "version": version,
            "release_title": data.get("release", {}).get("title", ""),
            "role": str(Role(role).label) if role in Role.values else "",
            "details": details,
            "actor": event.actor_label,
            "when": moment(event.created_at),
            "link": data.get("release", {}).get("url", ""),
            "unsubscribe": unsubscribe,
            "preferences": _site(reverse("notifications:preferences")),
        }
        extras = performed.mail_extras(event, delivery.user_id, settings.SITE_URL)
        if extras is not None:
            context["details"] = [*details, *extras.details]
            context["action_link"], context["action_label"] = extras.link, extras.link_label
        subject = gettext("[deploycheck] %(version)s: %(title)s") % {
            "version": version,
            "title": title,
        }
        text = render_to_string("notifications/email.txt", context)
        html = render_to_string("notifications/email.html", context)
    domain = urlsplit(settings.SITE_URL).hostname or "localhost"
    mail = EmailMultiAlternatives(
        subject=subject,
        body=text,
        to=[delivery.address],
        headers={"Message-ID": make_msgid(domain=domain), "List-Unsubscribe": f"<{unsubscribe}>"},
    )
    # RFC 8058 allows the one-click POST to an https:// link only.
    if unsubscribe.startswith("https://"):
        mail.extra_headers["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
    mail.attach_alternative(html, "text/html")
    if extras is not None and extras.calendar is not None:
        # As calendars look for it: an alternative of the body, and an attachment for the
        # mail readers that only offer those.
        mail.attach_alternative(extras.calendar.decode(), "text/calendar; method=REQUEST")
        mail.attach("invite.ics", extras.calendar, "application/ics")
    return mail


def _send(delivery: EmailDelivery) -> tuple[AttemptOutcome, str, str]:
    """(outcome, error, Message-ID) of one attempt; never raises."""
    subscription = EmailSubscription.objects.filter(user_id=delivery.user_id).first()
    if subscription is not None and subscription.unsubscribed_at is not None:
        return AttemptOutcome.FAILED, "the person unsubscribed before it was sent", ""
    if not settings.EMAIL_ENABLED:
        return AttemptOutcome.FAILED, "EMAIL_URL is not set: no mail can be sent", ""
    try:
        mail = message(delivery)
        mail.send()
    except smtplib.SMTPRecipientsRefused as error:
        return AttemptOutcome.FAILED, f"the mail server refused the address: {error.recipients}", ""
    except (smtplib.SMTPException, OSError) as error:
        return AttemptOutcome.RETRY, f"{type(error).__name__}: {error}", ""
    except Exception as error:  # a bug must not leave the delivery half-done
        logger.exception("e-mail delivery %s crashed", delivery.pk)
        return AttemptOutcome.RETRY, f"the delivery crashed ({type(error).__name__})", ""
    return AttemptOutcome.DELIVERED, "", str(mail.extra_headers["Message-ID"])


def deliver(delivery_id: int, attempt: int, *, enqueue: Enqueue) -> None:
    """What a worker does with one (delivery, attempt) it was handed."""
    claimed = EmailDelivery.objects.filter(
        pk=delivery_id, state=DeliveryState.PENDING, attempts=attempt - 1
    ).update(
        state=DeliveryState.SENDING,
        attempts=attempt,
        due_at=timezone.now() + timedelta(seconds=settings.NOTIFY_ATTEMPT_SECONDS),
    )
    if not claimed:
        return
    delivery = EmailDelivery.objects.select_related("event").get(pk=delivery_id)
    outcome, error, message_id = _send(delivery)
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
    mine = EmailDelivery.objects.filter(
        pk=delivery_id, state=DeliveryState.SENDING, attempts=attempt
    )
    now = timezone.now()
    if outcome == AttemptOutcome.DELIVERED:
        mine.update(
            state=DeliveryState.DELIVERED, delivered_at=now, last_error="", message_id=message_id
        )
        performed.settle(delivery.event_id)
        return
    if outcome == AttemptOutcome.FAILED:
        mine.update(state=DeliveryState.FAILED, last_error=error[:ERROR_MAX])
        performed.settle(delivery.event_id)
        return
    delay = retry_delay(attempt, None)
    soon = delay <= COUNTDOWN_MAX_SECONDS
    due = now + timedelta(seconds=delay + (HANDOVER_GRACE_SECONDS if soon else 0.0))
    handed = mine.update(state=DeliveryState.PENDING, due_at=due, last_error=error[:ERROR_MAX])
    if handed and soon:
        enqueue(delivery_id, attempt + 1, delay)


def sweep(*, enqueue: Enqueue, now: datetime | None = None) -> int:
    """Send again what no task is sending: attempts whose worker was lost mid-way (the
    person may get the mail twice, which beats not at all), and attempts due whose task
    never came. How many were handed out."""
    now = now or timezone.now()
    lost = "the worker sending it stopped before recording an answer"
    stuck = EmailDelivery.objects.filter(state=DeliveryState.SENDING, due_at__lt=now)
    for delivery_id, attempts, event_id in stuck.values_list("pk", "attempts", "event_id"):
        gave_up = attempts >= max_attempts()
        EmailDelivery.objects.filter(
            pk=delivery_id, state=DeliveryState.SENDING, attempts=attempts
        ).update(
            state=DeliveryState.FAILED if gave_up else DeliveryState.PENDING,
            due_at=now,
            last_error=f"{lost}; gave up" if gave_up else lost,
        )
        if gave_up:
            performed.settle(event_id)
    return hand_out_due(EmailDelivery.objects.all(), enqueue=enqueue, now=now)
