from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from notifications.models import Channel, ChannelKind
from notifications.trial import try_channel


def printable(text: str) -> str:
    """A receiver's words as text: a control character it sent cannot move the cursor or
    recolour the operator's terminal."""
    return "".join(
        char if char.isprintable() or char in "\n\t" else f"\\x{ord(char):02x}" for char in text
    )


class Command(BaseCommand):
    help = (
        "Send a test event to one notification channel now, the way every event is sent, "
        "and show what its receiver answered."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("channel", help="the channel's name, as the notifications file has it")

    def handle(self, *args: Any, channel: str, **options: Any) -> None:
        found = Channel.objects.filter(name=channel).first()
        if found is None:
            names = ", ".join(Channel.objects.values_list("name", flat=True)) or "none"
            raise CommandError(
                f"no channel is named “{channel[:64]}”; the channels are: {names} "
                "(load_notifications FILE declares them)"
            )
        if not found.active:
            why = found.disabled_reason if found.disabled_at else "retired from the file"
            self.stdout.write(f"note: {found.name} is off ({why}); testing it all the same")
        self.stdout.write(f"sending a test event to {found.name} ({found.kind})…")
        trial = try_channel(found)
        outcome = trial.outcome
        status = "none" if outcome.http_status is None else str(outcome.http_status)
        mail = found.kind == ChannelKind.EMAIL
        if mail:
            # A mail server's or an ESP's refusal is told in "confirmed" below.
            self.stdout.write(f"to: {', '.join(found.addresses)}")
            self.stdout.write(f"Message-ID: {outcome.message_id or 'none'}")
        else:
            self.stdout.write(f"HTTP status: {status}")
        self.stdout.write(f"latency: {trial.latency_ms} ms")
        if not mail and outcome.http_status is not None:
            self.stdout.write(f"answer: {printable(outcome.answer) or '(empty)'}")
        self.stdout.write(f"confirmed: {printable(trial.confirmed)}")
        if not trial.succeeded:
            # A refusal, a timeout or a non-2xx answer: the exit status tells a script.
            raise CommandError(f"the test to {found.name} was not accepted")
