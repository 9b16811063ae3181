from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from notifications import config


class Command(BaseCommand):
    help = "Make the notification channels what a notifications file (TOML) declares."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("path", help="the notifications file, e.g. notifications.toml")

    def handle(self, *args: Any, path: str, **options: Any) -> None:
        try:
            summary = config.load(path)
        except config.NotificationsFileError as error:
            # One fault a line, so an editor or CI can jump to each.
            raise CommandError(str(error)) from None
        self.stdout.write(str(summary))
