"""Performing an item: what would be sent and to whom (`audience_of`, which the
confirmation page shows), and sending it (`perform`) once the person who pressed
confirms.

The event goes only to the audience the item names: the release's people by e-mail, or
one channel; never to the channels and people that subscribe to events. It is written,
with its deliveries, in the transaction of the workflow's change (releases.workflow's
`performing`), and notifications.performed settles the item once they are final.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from releases import performs, workflow
from releases.actors import Person
from releases.models import Release, ReleaseItem, Role

from .delivery import HANDOVER_GRACE_SECONDS
from .models import Channel, Delivery, EmailDelivery, EmailSubscription, Event, Performance
from .outbox import common_fields
from .performed import EVENT_OF
from .sending import enqueue, enqueue_email

if TYPE_CHECKING:
    from django.contrib.auth.models import User

MESSAGE_MAX = 2000
# A retrospective lasts at least this long and at most this long.
MEETING_MINUTES = (15, 8 * 60)


@dataclass(frozen=True)
class Recipient:
    user_id: int
    name: str
    address: str


@dataclass(frozen=True)
class Audience:
    """Who an item's action reaches: people by e-mail, or a channel. `problem` says why
    it cannot be sent now ("" when it can); `left_out` names the people it will not
    reach (no address, unsubscribed)."""

    perform: performs.Perform
    people: tuple[Recipient, ...] = ()
    channel: Channel | None = None
    problem: str = ""
    left_out: tuple[str, ...] = ()

    def as_kept(self, event_id: uuid.UUID) -> dict[str, Any]:
        """As the item and the audit trail keep it."""
        return {
            "event": str(event_id),
            "recipients": [p.address for p in self.people]
            if self.channel is None
            else [self.channel.name],
            "channel": self.channel.name if self.channel is not None else "e-mail",
        }


def audience_of(item: ReleaseItem) -> Audience:
    perform = performs.parse(item.perform)
    if perform is None:
        return Audience(
            performs.Perform(""),
            problem=_("“%(text)s” is not linked to anything the app performs.")
            % {"text": item.text},
        )
    if not perform.to_people:
        return _channel_audience(perform)
    roles: set[str] | None = (
        {Role.SUPPORT.value} if perform.action == performs.ACKNOWLEDGE else None
    )
    people, left_out = _people(item.release, roles)
    problem = ""
    if not people:
        problem = (
            _("Nobody in the release's support role has an e-mail address to send it to.")
            if roles
            else _("Nobody on the release has an e-mail address to send it to.")
        )
    return Audience(perform, people, problem=problem, left_out=left_out)


def _channel_audience(perform: performs.Perform) -> Audience:
    channel = Channel.objects.filter(name=perform.channel).first()
    if channel is None:
        return Audience(
            perform,
            problem=_(
                "No notifications channel is named “%(name)s”: declare it in the "
                "notifications file (manage.py load_notifications) and press again."
            )
            % {"name": perform.channel},
        )
    if not channel.active:
        why = channel.disabled_reason if channel.disabled_at else _("retired from the file")
        return Audience(
            perform,
            channel=channel,
            problem=_("The channel “%(name)s” is off: %(why)s.")
            % {"name": channel.name, "why": why},
        )
    return Audience(perform, channel=channel)


def _people(
    release: Release, roles: set[str] | None
) -> tuple[tuple[Recipient, ...], tuple[str, ...]]:
    found: dict[int, Recipient] = {}
    left_out: dict[int, str] = {}
    rows = release.stakeholders.select_related("user").order_by("role", "user__username")
    unsubscribed = set(
        EmailSubscription.objects.filter(unsubscribed_at__isnull=False).values_list(
            "user_id", flat=True
        )
    )
    for stakeholder in rows:
        user = stakeholder.user
        if (roles is not None and stakeholder.role not in roles) or not user.is_active:
            continue
        name = user.get_full_name() or user.get_username()
        if not user.email:
            left_out[user.pk] = _("%(name)s (no e-mail address)") % {"name": name}
        elif user.pk in unsubscribed:
            left_out[user.pk] = _("%(name)s (unsubscribed)") % {"name": name}
        else:
            found.setdefault(user.pk, Recipient(user.pk, name, user.email))
    return tuple(found.values()), tuple(v for k, v in left_out.items() if k not in found)


def default_message(item: ReleaseItem) -> str:
    """What the message starts as, in the active language: the person edits it."""
    release = item.release
    values = {"version": release.version, "title": release.title}
    perform = performs.parse(item.perform)
    if perform is not None and perform.action == performs.ACKNOWLEDGE:
        return (
            _(
                "Release %(version)s (%(title)s) goes to production soon. Please confirm "
                "that you are informed and ready: open the link in this mail and press "
                "“I'm ready”."
            )
            % values
        )
    if perform is not None and perform.action == performs.RETROSPECTIVE:
        return (
            _(
                "Retrospective of the deploy of release %(version)s (%(title)s): what went "
                "well, what did not, and what we change next time."
            )
            % values
        )
    if release.changelog_url:
        return _("Release %(version)s (%(title)s): what changes is at %(link)s.") % {
            **values,
            "link": release.changelog_url,
        }
    return _("Release %(version)s (%(title)s) goes to production.") % values


@dataclass(frozen=True)
class MeetingTime:
    start: datetime
    end: datetime
    time_zone: str


def perform(
    item: ReleaseItem,
    *,
    by: User,
    message: str,
    meeting: MeetingTime | None = None,
    ip: str | None = None,
) -> Performance:
    """Send what the item names to its audience, as `by` confirmed it; WorkflowError when
    it cannot be sent (no one to send it to, a channel off, one in flight already)."""
    audience = audience_of(item)
    if audience.problem:
        raise workflow.WorkflowError(audience.problem)
    message = workflow.visible_text(workflow.trimmed(message)[:MESSAGE_MAX], _("The message"))
    if not message:
        raise workflow.WorkflowError(_("Write the message to send."))
    action = audience.perform.action
    if action == performs.RETROSPECTIVE and meeting is None:
        raise workflow.WorkflowError(_("Choose when the retrospective is."))
    event_id = uuid.uuid4()
    actor = Person(by, ip)
    with workflow.performing(item, by=actor, audience=audience.as_kept(event_id)) as (
        release,
        locked,
    ):
        now = timezone.now()
        data = {
            **common_fields(release, actor, now),
            "item": locked.text,
            "message": message,
            "action": locked.perform,
        }
        if meeting is not None and action == performs.RETROSPECTIVE:
            data["meeting"] = {
                "start": meeting.start.isoformat(),
                "end": meeting.end.isoformat(),
                "time_zone": meeting.time_zone,
                "sequence": Performance.objects.filter(
                    item__release=release, action=performs.RETROSPECTIVE
                ).count(),
            }
            data["attendees"] = [[p.name, p.address] for p in audience.people]
        event = Event.objects.create(
            id=event_id,
            type=EVENT_OF[action],
            release=release,
            actor_label=actor.label[:200],
            actor_kind=actor.kind,
            created_at=now,
            data=data,
        )
        performance = Performance.objects.create(
            item=locked, event=event, action=locked.perform, requested_by=by, requested_at=now
        )
        _queue(event, audience, now)
    return performance


def _queue(event: Event, audience: Audience, now: datetime) -> None:
    handover = now + timedelta(seconds=HANDOVER_GRACE_SECONDS)
    if audience.channel is not None:
        delivery = Delivery.objects.create(event=event, channel=audience.channel, due_at=handover)
        transaction.on_commit(lambda: enqueue(delivery.pk, 1, 0.0))
        return
    emails = EmailDelivery.objects.bulk_create(
        [
            EmailDelivery(event=event, user_id=p.user_id, address=p.address, due_at=handover)
            for p in audience.people
        ]
    )
    ids = [row.pk for row in emails]
    transaction.on_commit(lambda: _send_emails(ids))


def _send_emails(ids: Sequence[int]) -> None:
    for delivery_id in ids:
        enqueue_email(delivery_id, 1, 0.0)
