"""The outbox and its channels.

An Event is written by releases.workflow in the same transaction as the change it tells
of, with one Delivery per channel that wants it; Celery delivers each on its own
(notifications.delivery), so a failing channel holds no other back. Nothing here holds a
secret: a channel names the environment variables of its URL and signing secret.
"""

from __future__ import annotations

import fnmatch
import uuid
from datetime import datetime, timedelta

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _

from releases.evidence import Said
from releases.models import ActorKind, Release


class Event(models.Model):
    """Something people care about that happened to a release. Its id is the delivery id
    every channel sees (Standard Webhooks' `webhook-id`), the same on every retry, so a
    receiver can drop a repeat."""

    id = models.UUIDField(_("ID"), primary_key=True, default=uuid.uuid4, editable=False)
    type = models.CharField(_("type"), max_length=60, db_index=True)
    release = models.ForeignKey(
        Release, on_delete=models.CASCADE, related_name="events", verbose_name=_("release")
    )
    actor_label = models.CharField(_("actor name"), max_length=200)
    actor_kind = models.CharField(_("kind of actor"), max_length=10, choices=ActorKind.choices)
    created_at = models.DateTimeField(_("created at"), default=timezone.now, db_index=True)
    # The payload's `data`, whole, as it was when the event happened: the release's
    # version and link, the actor, and what the event type adds.
    data = models.JSONField(_("data"), default=dict)

    class Meta:
        ordering = ["created_at"]
        verbose_name = _("event")
        verbose_name_plural = _("events")

    def __str__(self) -> str:
        return f"{self.type} {self.created_at:%Y-%m-%d %H:%M:%S} ({self.pk})"


class ChannelKind(models.TextChoices):
    # Shown in the channel form and the channels page.
    WEBHOOK = "webhook", _("Standard Webhooks")
    SLACK = "slack", _("Slack incoming webhook")
    TEAMS = "teams", _("Microsoft Teams Workflows webhook")
    EMAIL = "email", _("E-mail to a list of addresses")


class Channel(models.Model):
    """Where events go, as the notifications file declares it (load_notifications)."""

    name = models.CharField(_("name"), max_length=64, unique=True)
    kind = models.CharField(_("kind"), max_length=20, choices=ChannelKind.choices)
    # One of the two: the URL itself, or the variable holding it (a Slack webhook URL is
    # its own secret).
    url = models.URLField(_("URL"), max_length=2000, blank=True)
    url_env = models.CharField(_("URL variable"), max_length=100, blank=True)
    # Webhook channels: the variable holding the whsec_… signing secret.
    secret_env = models.CharField(_("secret variable"), max_length=100, blank=True)
    # E-mail channels: the addresses one mail goes to, and its language ("" for
    # LANGUAGE_CODE); they have no URL.
    addresses = models.JSONField(_("addresses"), default=list, blank=True)
    language = models.CharField(_("language"), max_length=10, blank=True)
    # Event types it wants; ["*"] for all.
    events = models.JSONField(_("events"), default=list)
    # A glob over release versions ("v2.*"); "*" for all.
    releases = models.CharField(_("releases"), max_length=100, default="*")
    # Set when the endpoint said it is gone (HTTP 410); loading the file again with
    # another URL enables it again.
    disabled_at = models.DateTimeField(_("disabled at"), null=True, blank=True)
    # One of our fixed messages, in English (notifications.delivery): `as_read` shows it.
    disabled_reason = models.CharField(_("reason disabled"), max_length=300, blank=True)
    # Set when a later file no longer declares it; its deliveries stay as history.
    retired_at = models.DateTimeField(_("retired at"), null=True, blank=True)
    # Paced channels (Slack): when the next message may go; each send takes the slot
    # and moves it on (notifications.delivery.take_slot).
    paced_until = models.DateTimeField(_("paced until"), null=True, blank=True)
    loaded_at = models.DateTimeField(_("loaded at"), default=timezone.now)

    class Meta:
        ordering = ["name"]
        verbose_name = _("channel")
        verbose_name_plural = _("channels")

    def __str__(self) -> str:
        return f"{self.name} ({self.kind})"

    @property
    def active(self) -> bool:
        return self.disabled_at is None and self.retired_at is None

    @property
    def disabled_reason_shown(self) -> str:
        return as_read(self.disabled_reason)


class DeliveryState(models.TextChoices):
    PENDING = "pending", "pending"
    SENDING = "sending", "sending"
    DELIVERED = "delivered", "delivered"
    # Handed over and not sent again, but nobody confirmed it reached people: a Teams
    # Workflow answers 202 before its flow posts, and a flow that fails later says so
    # only in its own run history.
    ACCEPTED = "accepted", "accepted, not confirmed"
    FAILED = "failed", "failed"


class HandedOut(models.Model):
    """What every delivery keeps, to a channel or to a person: its state, the attempts
    handed out, when the next is due, and what came of the last. A worker claims one for
    an attempt by a conditional UPDATE naming that attempt, so a task sent twice sends
    once; one killed mid-attempt leaves it `sending` past its deadline, and the sweep
    hands it out again."""

    state = models.CharField(
        _("state"), max_length=10, choices=DeliveryState.choices, default=DeliveryState.PENDING
    )
    # Attempts handed out so far; the task for attempt n claims it at n - 1.
    attempts = models.PositiveIntegerField(_("attempts"), default=0)
    # Pending: when the next attempt is due (the sweep sends it then if no task has).
    # Sending: when the attempt under way is given up for lost.
    due_at = models.DateTimeField(_("due at"), default=timezone.now)
    last_error = models.CharField(_("last error"), max_length=500, blank=True)
    delivered_at = models.DateTimeField(_("delivered at"), null=True, blank=True)
    # The Message-ID of the mail the server took (an ESP's own id when mail goes through
    # one), to find it in the server's logs; empty for an HTTP channel.
    message_id = models.CharField(_("message ID"), max_length=300, blank=True)
    # Who last handed it out again from the delivery log (notifications.replay), and when.
    replayed_by = models.CharField(_("replayed by"), max_length=150, blank=True)
    replayed_at = models.DateTimeField(_("replayed at"), null=True, blank=True)

    class Meta:
        abstract = True

    @property
    def last_error_shown(self) -> str:
        return as_read(self.last_error)

    @staticmethod
    def sending_deadline() -> datetime:
        return timezone.now() + timedelta(seconds=settings.NOTIFY_ATTEMPT_SECONDS)


def _unfinished_by_due(*, name: str) -> models.Index:
    """What the sweep reads: the deliveries still pending or sending whose time has come."""
    return models.Index(fields=["due_at"], condition=Q(state__in=["pending", "sending"]), name=name)


class Delivery(HandedOut):
    """One event to one channel, delivered at least once."""

    event = models.ForeignKey(
        Event, on_delete=models.CASCADE, related_name="deliveries", verbose_name=_("event")
    )
    channel = models.ForeignKey(
        Channel, on_delete=models.CASCADE, related_name="deliveries", verbose_name=_("channel")
    )

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["event", "channel"], name="one_delivery_per_channel")
        ]
        indexes = [_unfinished_by_due(name="delivery_unfinished_due")]
        verbose_name = _("delivery")
        verbose_name_plural = _("deliveries")

    def __str__(self) -> str:
        return f"{self.event.type} → {self.channel.name}: {self.state}"


class AttemptOutcome(models.TextChoices):
    DELIVERED = "delivered", "delivered"
    ACCEPTED = "accepted", "accepted by the Workflow; posting to the channel is not confirmed"
    RETRY = "retry", "will retry"
    FAILED = "failed", "failed"


class Attempt(models.Model):
    """One try at a delivery, kept whatever came of it."""

    delivery = models.ForeignKey(
        Delivery, on_delete=models.CASCADE, related_name="log", verbose_name=_("delivery")
    )
    number = models.PositiveIntegerField(_("number"))
    at = models.DateTimeField(_("at"), default=timezone.now)
    outcome = models.CharField(_("outcome"), max_length=10, choices=AttemptOutcome.choices)
    http_status = models.PositiveIntegerField(_("HTTP status"), null=True, blank=True)
    latency_ms = models.PositiveIntegerField(_("latency (ms)"), null=True, blank=True)
    # In English, for the logs and the records exported; `said` is the same error as a
    # message and its values (releases.evidence.Said), which the log shows translated.
    # Rows older than it, and a mail server's own words, have {}.
    error = models.CharField(_("error"), max_length=500, blank=True)
    said = models.JSONField(_("error, as said"), default=dict, blank=True)

    class Meta:
        ordering = ["delivery", "number", "at"]
        verbose_name = _("delivery attempt")
        verbose_name_plural = _("delivery attempts")

    def __str__(self) -> str:
        return f"{self.delivery_id} #{self.number}: {self.outcome}"

    @property
    def error_shown(self) -> str:
        """The error in the reader's language; without `said`, as stored (translated
        when it is one of our fixed messages)."""
        said = Said.from_json(self.said)
        return said.translated() if said is not None else as_read(self.error)


class Readiness(models.Model):
    """Whether a release could be approved after its latest change, so that
    `approval.requested` is sent when it becomes so, not at every change after."""

    release = models.OneToOneField(
        Release,
        on_delete=models.CASCADE,
        primary_key=True,
        related_name="+",
        verbose_name=_("release"),
    )
    approvable = models.BooleanField(_("approvable"), default=False)

    class Meta:
        verbose_name = _("approval readiness")
        verbose_name_plural = _("approval readiness")

    def __str__(self) -> str:
        return f"{self.release_id}: {'approvable' if self.approvable else 'not approvable'}"


# What a person is e-mailed about until they choose (notifications.subscriptions).
DEFAULT_EVENTS: tuple[str, ...] = (
    "approval.requested",
    "approval.reminder",
    "role.nudged",
    "signoff.reopened",
    "item.blocked",
    "check.failing",
    "rollback.declared",
    "rollback.resolved",
    "maintenance.scheduled",
    "maintenance.changed",
    "maintenance.cancelled",
    "maintenance.starting_soon",
)


def default_events() -> list[str]:
    return list(DEFAULT_EVENTS)


class EmailSubscription(models.Model):
    """What one person wants to be e-mailed about. Without one, DEFAULT_EVENTS on every
    release; unsubscribing keeps the row with `unsubscribed_at` set."""

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL,
        on_delete=models.CASCADE,
        related_name="email_subscription",
        verbose_name=_("user"),
    )
    releases = models.CharField(_("releases"), max_length=100, default="*")
    events = models.JSONField(_("events"), default=default_events)
    # The event types the person was shown when they last chose. A default event that
    # came later is one they never had the chance to turn off: they get it, as everyone
    # who never chose does, until they choose again.
    offered = models.JSONField(_("events offered"), default=list, blank=True)
    unsubscribed_at = models.DateTimeField(_("unsubscribed at"), null=True, blank=True)

    class Meta:
        verbose_name = _("e-mail subscription")
        verbose_name_plural = _("e-mail subscriptions")

    def __str__(self) -> str:
        return f"{self.user}: {self.releases} {self.events}"

    def chosen(self, event_type: str) -> bool:
        """Whether the person's choice takes in `event_type`, whatever the release."""
        return event_type in self.events or (
            event_type in DEFAULT_EVENTS and event_type not in self.offered
        )

    def wants(self, event_type: str, version: str) -> bool:
        return (
            self.unsubscribed_at is None
            and self.chosen(event_type)
            and fnmatch.fnmatchcase(version, self.releases)
        )


class EmailDelivery(HandedOut):
    """One event e-mailed to one person, sent at least once."""

    event = models.ForeignKey(
        Event, on_delete=models.CASCADE, related_name="emails", verbose_name=_("event")
    )
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+", verbose_name=_("user")
    )
    address = models.EmailField(_("address"), max_length=254)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["event", "user"], name="one_email_per_person")
        ]
        indexes = [_unfinished_by_due(name="email_unfinished_due")]
        verbose_name = _("e-mail delivery")
        verbose_name_plural = _("e-mail deliveries")

    def __str__(self) -> str:
        return f"{self.event.type} → {self.address}: {self.state}"


class PerformanceState(models.TextChoices):
    SENDING = "sending", "sending"
    # acknowledge:support: every link delivered; the item waits for "I'm ready".
    AWAITING = "awaiting", "delivered, waiting for acknowledgement"
    # A Teams Workflow accepted it: nobody confirms it was posted.
    UNCONFIRMED = "unconfirmed", "accepted, not confirmed"
    DONE = "done", "confirmed"
    FAILED = "failed", "failed"


class Performance(models.Model):
    """A checklist item the app performed because a person pressed for it: the event
    that carries it, delivered only to the audience chosen (notifications.perform), and
    how it ended once every delivery was final (notifications.performed)."""

    item = models.ForeignKey(
        "releases.ReleaseItem",
        on_delete=models.CASCADE,
        related_name="performances",
        verbose_name=_("item"),
    )
    event = models.OneToOneField(
        Event, on_delete=models.CASCADE, related_name="performance", verbose_name=_("event")
    )
    action = models.CharField(_("action"), max_length=80)
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        related_name="+",
        verbose_name=_("requested by"),
    )
    requested_at = models.DateTimeField(_("requested at"), default=timezone.now)
    state = models.CharField(
        _("state"),
        max_length=12,
        choices=PerformanceState.choices,
        default=PerformanceState.SENDING,
    )
    settled_at = models.DateTimeField(_("settled at"), null=True, blank=True)
    reason = models.TextField(_("reason"), blank=True)

    class Meta:
        ordering = ["requested_at"]
        verbose_name = _("performed action")
        verbose_name_plural = _("performed actions")

    def __str__(self) -> str:
        return f"{self.action} for item {self.item_id}: {self.state}"


def as_read(stored: str) -> str:
    """An error kept as plain English text, as a person reads it: one of our fixed
    messages is in the catalogue and reads translated; anything else (a mail server's
    own words, an older row's message with values in it) reads as it was stored."""
    return gettext(stored) if stored else ""
