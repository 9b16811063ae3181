"""How a performed item's deliveries end, and what its mails carry besides the event.

notifications.delivery and notifications.email call `settle` each time they record a
final answer for one delivery; once every delivery of a performance is final, the item
is settled through releases.workflow: ticked when every one was confirmed (the mail
server took the mail, the channel answered 2xx), failed with the reason when one failed
for good, and left as it is when a Teams Workflow only accepted it (202: nobody confirms
the post) or when support has yet to say "I'm ready". Nothing here imports the delivery
modules: they import this.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from django.conf import settings
from django.core import signing
from django.core.exceptions import PermissionDenied
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext as _

from releases import ics, performs, workflow

from .links import read_link
from .models import (
    Delivery,
    DeliveryState,
    EmailDelivery,
    Event,
    Performance,
    PerformanceState,
)
from .wording import ACKNOWLEDGE_REQUESTED, ANNOUNCEMENT, RETROSPECTIVE_INVITED

logger = logging.getLogger(__name__)

EVENT_OF = {
    performs.ANNOUNCE: ANNOUNCEMENT,
    performs.ACKNOWLEDGE: ACKNOWLEDGE_REQUESTED,
    performs.RETROSPECTIVE: RETROSPECTIVE_INVITED,
}

ACKNOWLEDGE_SALT = "notifications.acknowledge"
# An "I'm ready" link works this long: a release day is hours, a late one days.
ACKNOWLEDGE_MAX_AGE = timedelta(days=7)

_FINAL = (DeliveryState.DELIVERED, DeliveryState.ACCEPTED, DeliveryState.FAILED)


def settle(event_id: Any) -> None:
    """Called after a delivery of `event_id` is recorded final; settles its performance
    once every delivery is. Two workers finishing the last two deliveries at once both
    see them final, and the conditional UPDATE lets one of them settle."""
    performance = (
        Performance.objects.filter(event_id=event_id, state=PerformanceState.SENDING)
        .select_related("item")
        .first()
    )
    if performance is None:
        return
    channels = list(Delivery.objects.filter(event_id=event_id).select_related("channel"))
    emails = list(EmailDelivery.objects.filter(event_id=event_id))
    rows: list[Delivery | EmailDelivery] = [*channels, *emails]
    if not rows or any(row.state not in _FINAL for row in rows):
        return
    failed = [row for row in rows if row.state == DeliveryState.FAILED]
    accepted = [row for row in rows if row.state == DeliveryState.ACCEPTED]
    reason = ""
    if failed:
        state = performs.FAILED
        reason = "; ".join(f"{_to(row)}: {row.last_error}" for row in failed)
    elif accepted:
        state = performs.UNCONFIRMED
        # A Teams Workflow's 202 says nothing more; a mail printed by console:// says so.
        reason = "; ".join(
            f"{_to(row)}: {row.last_error}"
            if row.last_error
            else f"{_to(row)}: the Teams Workflow accepted it (HTTP 202), which does not "
            "confirm that it was posted to the channel"
            for row in accepted
        )
    elif performance.action == f"{performs.ACKNOWLEDGE}:{performs.SUPPORT}":
        state = performs.AWAITING
    else:
        state = performs.DONE
    claimed = Performance.objects.filter(pk=performance.pk, state=PerformanceState.SENDING).update(
        state=state, settled_at=timezone.now(), reason=reason[:2000]
    )
    if not claimed:
        return
    delivered_at = [row.delivered_at for row in rows if row.delivered_at is not None]
    last: datetime = max(delivered_at) if delivered_at else timezone.now()
    evidence = {
        "recipients": [address for row in rows for address in _recipients(row)],
        "channel": channels[0].channel.name if channels else "e-mail",
        "message_ids": [_message_id(row) for row in rows if row.state != DeliveryState.FAILED],
        "at": last.isoformat(),
    }
    try:
        workflow.settle_performance(
            performance.item_id, event=str(event_id), state=state, evidence=evidence, reason=reason
        )
    except (workflow.WorkflowError, PermissionDenied) as error:
        # Refused by a rule of the workflow: the performance keeps its end all the same.
        logger.warning("performance %s not recorded on its item: %s", performance.pk, error)


def _to(row: Delivery | EmailDelivery) -> str:
    return row.channel.name if isinstance(row, Delivery) else row.address


def _recipients(row: Delivery | EmailDelivery) -> list[str]:
    """Who it went to: a person's address, an e-mail channel's list, or the channel."""
    if isinstance(row, Delivery) and row.channel.addresses:
        return list(row.channel.addresses)
    return [_to(row)]


def _message_id(row: Delivery | EmailDelivery) -> str:
    # A mail has its own Message-ID (an e-mail channel's too); an HTTP channel is sent
    # the event's id (Standard Webhooks' webhook-id), the same on every attempt.
    return row.message_id or str(row.event_id)


def acknowledge_token(event_id: Any, user_id: int) -> str:
    """The "I'm ready" link of one support person for one request, signed (with
    SECRET_KEY) so nothing is stored: it names both and proves the server made it."""
    return signing.dumps({"e": str(event_id), "u": user_id}, salt=ACKNOWLEDGE_SALT)


def read_acknowledge_token(token: str) -> tuple[str, int]:
    """(event id, user id) of an "I'm ready" link; BadToken with a reason people read."""
    payload = read_link(
        token,
        salt=ACKNOWLEDGE_SALT,
        max_age=ACKNOWLEDGE_MAX_AGE,
        fields={"e": str, "u": int},
        expired=_("This link has expired; ask for a new one."),
        invalid=_("This link is not valid."),
    )
    return payload["e"], int(payload["u"])


@dataclass(frozen=True)
class MailExtras:
    """What a performed item's mail adds: lines under its details, a link to act on, and
    for a retrospective its calendar invitation."""

    details: list[tuple[str, str]]
    link: str = ""
    link_label: str = ""
    calendar: bytes | None = None


def acknowledge_url(site: str, event_id: Any, user_id: int) -> str:
    token = acknowledge_token(event_id, user_id)
    return site.rstrip("/") + reverse("notifications:acknowledge", args=[token])


def mail_extras(event: Event, user_id: int, site: str) -> MailExtras | None:
    """What the mail of a performed item adds for one recipient, in the active language;
    None for every other event."""
    if event.type == ACKNOWLEDGE_REQUESTED:
        return MailExtras([], acknowledge_url(site, event.pk, user_id), _("I'm ready"))
    if event.type != RETROSPECTIVE_INVITED:
        return None
    meeting = event.data["meeting"]
    zone = ZoneInfo(meeting["time_zone"])
    start = datetime.fromisoformat(meeting["start"]).astimezone(zone)
    end = datetime.fromisoformat(meeting["end"]).astimezone(zone)
    release = event.release
    invitation = ics.Meeting(
        start=start,
        end=end,
        sequence=int(meeting["sequence"]),
        summary=_("Deploy retrospective: %(version)s %(title)s")
        % {"version": release.version, "title": release.title},
        description=str(event.data.get("message", "")),
        url=str(event.data.get("release", {}).get("url", "")),
    )
    calendar = ics.meeting_request(
        release,
        invitation,
        organizer=settings.DEFAULT_FROM_EMAIL,
        attendees=[(str(name), str(address)) for name, address in event.data["attendees"]],
    )
    when = _("%(start)s to %(end)s (%(zone)s)") % {
        "start": f"{start:%Y-%m-%d %H:%M}",
        "end": f"{end:%H:%M}" if end.date() == start.date() else f"{end:%Y-%m-%d %H:%M}",
        "zone": zone.key,
    }
    return MailExtras([(_("When"), when)], calendar=calendar)
