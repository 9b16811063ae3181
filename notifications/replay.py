"""Handing a delivery out again, from the delivery log: the same event to the same
channel or person, so a receiver still drops a repeat by its id (`webhook-id`).

It is the next attempt of the same delivery, claimed by the worker as every attempt is
(notifications.delivery), so the attempt numbers go on and a replay sent twice sends
once. Only a delivery no worker is sending can be replayed: one under way would be
handed out twice.
"""

from __future__ import annotations

from datetime import timedelta

from django.db.models import QuerySet
from django.utils import timezone
from django.utils.translation import gettext as _

from .delivery import HANDOVER_GRACE_SECONDS, Enqueue
from .models import Delivery, DeliveryState, EmailDelivery


class NotReplayed(Exception):
    """Why the delivery was not handed out again, said to the person who asked."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def replay(delivery: Delivery, *, by: str, enqueue: Enqueue) -> int:
    """Hand a channel's delivery out again; the attempt it was handed out as."""
    channel = delivery.channel
    if channel.retired_at is not None:
        raise NotReplayed(
            _("Channel %(name)s is retired: its deliveries stay as history and are not sent.")
            % {"name": channel.name}
        )
    if channel.disabled_at is not None:
        raise NotReplayed(
            _("Channel %(name)s is off (%(reason)s): give it a new URL to enable it, then replay.")
            % {"name": channel.name, "reason": channel.disabled_reason}
        )
    return _hand_out(Delivery.objects.filter(pk=delivery.pk), by=by, enqueue=enqueue)


def replay_email(delivery: EmailDelivery, *, by: str, enqueue: Enqueue) -> int:
    """Hand an e-mail out again; the attempt it was handed out as."""
    return _hand_out(EmailDelivery.objects.filter(pk=delivery.pk), by=by, enqueue=enqueue)


def _hand_out(
    found: QuerySet[Delivery] | QuerySet[EmailDelivery], *, by: str, enqueue: Enqueue
) -> int:
    attempts = found.values_list("attempts", flat=True).first()
    if attempts is None:
        raise NotReplayed(_("That delivery no longer exists."))
    now = timezone.now()
    # Due after the grace the sweep gives every handed-out attempt: the task enqueued
    # below sends it now, and the sweep sends it only if that task is lost.
    handed = (
        found.filter(attempts=attempts)
        .exclude(state=DeliveryState.SENDING)
        .update(
            state=DeliveryState.PENDING,
            due_at=now + timedelta(seconds=HANDOVER_GRACE_SECONDS),
            last_error="",
            delivered_at=None,
            replayed_by=by,
            replayed_at=now,
        )
    )
    if not handed:
        raise NotReplayed(
            _("It is being sent right now; replay it when this attempt has an answer.")
        )
    enqueue(found.get().pk, attempts + 1, 0.0)
    return attempts + 1
