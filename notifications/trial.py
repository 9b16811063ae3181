"""Trying a channel: a `test` event sent to it at once, by the same code as every
delivery (the URL guard, the signature, the channel's format, an e-mail channel's mail),
and what its receiver answered, said as plainly as the answer allows: a 2xx from a
Teams Workflow is not a post in the channel, and a mail server that took a mail has not
put it in anyone's inbox yet."""

from __future__ import annotations

import getpass
import socket
import time
import uuid
from dataclasses import dataclass

from django.conf import settings
from django.utils import timezone, translation
from django.utils.translation import gettext as _

from .delivery import Outcome, send
from .models import AttemptOutcome, Channel, ChannelKind, Event
from .wording import TEST


@dataclass(frozen=True)
class Trial:
    outcome: Outcome
    latency_ms: int
    confirmed: str

    @property
    def succeeded(self) -> bool:
        return self.outcome.outcome in (AttemptOutcome.DELIVERED, AttemptOutcome.ACCEPTED)


def sender() -> str:
    """Who is trying the channel, as the message names them: the account and machine
    that ran the command, since a management command has no signed-in user."""
    try:
        account = getpass.getuser()
    except (KeyError, OSError):
        account = "unknown"
    return f"{account}@{socket.gethostname()}"


def test_event(by: str) -> Event:
    """A harmless event that says it is a test. It is never saved: it tells of no
    release, and no channel's delivery log should hold it."""
    now = timezone.now()
    with translation.override(settings.LANGUAGE_CODE):
        message = _(
            "This is a test of this channel, sent from deploycheck at %(site)s by "
            "%(sender)s. Nothing happened to any release."
        ) % {"site": settings.SITE_URL, "sender": by}
    return Event(
        id=uuid.uuid4(),
        type=TEST,
        actor_label=by,
        actor_kind="system",
        created_at=now,
        data={
            "test": True,
            "message": message,
            "sender": by,
            "site": settings.SITE_URL,
            "actor": {"label": by, "kind": "system"},
            "at": now.isoformat(),
        },
    )


def accepted(kind: ChannelKind) -> str:
    """What an answer taken but not confirmed means for a channel of `kind`: a Teams
    Workflow's 202, or for a mail channel a mail console:// only printed."""
    if kind == ChannelKind.EMAIL:
        return _("printed on the server's output (EMAIL_URL is console://): nobody was sent it")
    return _("accepted by the Workflow; posting to the channel is not confirmed")


def confirmed(kind: ChannelKind, outcome: Outcome) -> str:
    """What the answer proves, and what it does not, in the active language."""
    if not outcome.sent:
        return _("not sent: %(error)s") % {"error": outcome.error_shown}
    if outcome.outcome == AttemptOutcome.ACCEPTED:
        return accepted(kind)
    if outcome.outcome != AttemptOutcome.DELIVERED:
        return _("not delivered: %(error)s") % {"error": outcome.error_shown}
    if kind == ChannelKind.EMAIL:
        return _("accepted by the mail server; arrival in the inboxes is not confirmed")
    if kind == ChannelKind.SLACK:
        if outcome.answer.strip() == "ok":
            return _("posted to the channel (Slack answered ok)")
        return _("accepted by Slack, which did not answer ok: posting is not confirmed")
    if kind == ChannelKind.TEAMS:
        return _(
            "the Workflow's flow answered HTTP %(status)s itself: posted, if its Response "
            "step comes after its post step"
        ) % {"status": outcome.http_status}
    return _("accepted by the receiver; what it does with the event is not confirmed")


def try_channel(channel: Channel, *, by: str | None = None) -> Trial:
    """Send the test; `by` names who asked (a signed-in person), or else the account
    and machine running the command."""
    started = time.perf_counter()
    outcome = send(channel, test_event(by or sender()))
    latency_ms = round((time.perf_counter() - started) * 1000)
    return Trial(outcome, latency_ms, confirmed(ChannelKind(channel.kind), outcome))
