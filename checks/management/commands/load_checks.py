from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from checks import config
from releases.actors import SystemActor
from releases.models import Release


class Command(BaseCommand):
    help = "Declare a release's automated checks from a checks file (TOML) and link them."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("path", help="the checks file, e.g. checks.example.toml")
        parser.add_argument("--release", required=True, help="the release's version")

    def handle(self, *args: Any, path: str, release: str, **options: Any) -> None:
        version = release.strip()
        target = Release.objects.filter(version=version).first()
        if target is None:
            raise CommandError(f"no release {version}")
        try:
            summary = config.load(path, target, by=SystemActor("manage.py load_checks"))
        except config.ChecksFileError as error:
            # One fault a line, so an editor or CI can jump to each.
            raise CommandError(str(error)) from None
        self.stdout.write(str(summary))
