from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from releases import checklists, workflow
from releases.actors import SystemActor


class Command(BaseCommand):
    help = "Create or replace a checklist template from a Markdown file."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("path", help="the Markdown checklist")
        parser.add_argument("--name", required=True, help="the template's name")

    def handle(self, *args: Any, path: str, name: str, **options: Any) -> None:
        name = name.strip()
        if not name:
            raise CommandError("--name must not be empty")
        try:
            doc = checklists.read(path)
        except checklists.ChecklistFileError as error:
            raise CommandError(str(error)) from None
        try:
            workflow.import_template(doc, name, by=SystemActor("manage.py import_checklist"))
        except workflow.WorkflowError as error:
            raise CommandError(error.message) from None
        # Always English: scripts and CI read this line whatever the UI language.
        self.stdout.write(doc.summary())
