from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from releases import checklists
from releases.models import ChecklistTemplate, Release


class Command(BaseCommand):
    help = "Print a template, or a release's signed record, as Markdown."

    def add_arguments(self, parser: CommandParser) -> None:
        which = parser.add_mutually_exclusive_group(required=True)
        which.add_argument("--template", metavar="NAME")
        which.add_argument("--release", metavar="VERSION")

    def handle(self, *args: Any, template: str | None, release: str | None, **options: Any) -> None:
        if template is not None:
            try:
                found = ChecklistTemplate.objects.get(name=template)
            except ChecklistTemplate.DoesNotExist:
                known = ", ".join(ChecklistTemplate.objects.values_list("name", flat=True))
                raise CommandError(
                    f"no template named {template!r} (known: {known or 'none'})"
                ) from None
            text = checklists.export_template(found)
        else:
            try:
                text = checklists.export_release(Release.objects.get(version=release))
            except Release.DoesNotExist:
                raise CommandError(f"no release {release!r}") from None
        self.stdout.write(text, ending="")
