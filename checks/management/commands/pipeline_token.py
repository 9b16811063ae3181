"""`manage.py pipeline_token create|list|revoke`: pipeline tokens from a shell, for an
operator setting up CI without the browser. The rules are the staff page's: the same
forms validate, the same operations audit (as "manage.py pipeline_token")."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils import translation

from releases.actors import SystemActor
from releases.models import Release

from ... import tokens
from ...forms import PipelineTokenForm, ProjectTokenForm
from ...models import PipelineToken

ACTOR = SystemActor("manage.py pipeline_token")


class Command(BaseCommand):
    help = (
        "Create, list or revoke pipeline tokens. `create` prints the new token alone on "
        "stdout, once; only its hash is kept."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        actions = parser.add_subparsers(dest="action", required=True)
        for name, says in (
            ("create", "make a token for one role"),
            ("list", "list tokens (never their values)"),
            ("revoke", "revoke the active token with this label"),
        ):
            action = actions.add_parser(name, help=says)
            scope = action.add_mutually_exclusive_group(required=name != "list")
            scope.add_argument("--release", help="one release's version, e.g. v1.0.0")
            scope.add_argument(
                "--pattern",
                help="a project token for every release whose version matches, e.g. 'v2.*'",
            )
            if name == "create":
                action.add_argument(
                    "--role", required=True, help="devops, backend, frontend, qa, po"
                )
            if name != "list":
                action.add_argument("--label", required=True, help="shown as ci:LABEL")

    def handle(self, *args: Any, action: str, **options: Any) -> None:
        # Messages from the forms and the rules, in the operator's shell language: English.
        with translation.override("en"):
            if action == "create":
                self._create(options)
            elif action == "list":
                self._list(options)
            else:
                self._revoke(options)

    def _create(self, options: dict[str, Any]) -> None:
        release = _release(options["release"])
        data = {"role": options["role"], "label": options["label"]}
        form: PipelineTokenForm
        if release is None:
            form = ProjectTokenForm({**data, "version_pattern": options["pattern"]})
        else:
            form = PipelineTokenForm(data)
        if not form.is_valid():
            raise CommandError(
                "; ".join(
                    f"--{field.replace('version_pattern', 'pattern')}: {' '.join(map(str, errors))}"
                    for field, errors in form.errors.items()
                )
            )
        token = tokens.create(
            release,
            role=form.cleaned_data["role"],
            label=form.cleaned_data["label"],
            pattern=form.cleaned_data.get("version_pattern", ""),
            by=ACTOR,
        )
        if not token:
            raise CommandError(f"an active token already has the label {data['label']!r}")
        # Alone on stdout, so that `TOKEN=$(manage.py pipeline_token create …)` works.
        self.stdout.write(token)

    def _list(self, options: dict[str, Any]) -> None:
        shown = PipelineToken.objects.select_related("release")
        if options["release"]:
            shown = shown.filter(release=_release(options["release"]))
        elif options["pattern"]:
            shown = shown.of_project().filter(version_pattern=options["pattern"])
        rows = [("scope", "label", "role", "created", "last used", "revoked")] + [
            (
                token.release.version if token.release is not None else token.version_pattern,
                f"ci:{token.label}",
                token.role,
                _when(token.created_at),
                _when(token.last_used_at),
                _when(token.revoked_at),
            )
            for token in shown
        ]
        widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
        for row in rows:
            self.stdout.write(
                "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True))
            )

    def _revoke(self, options: dict[str, Any]) -> None:
        release = _release(options["release"])
        active = PipelineToken.objects.active().filter(label=options["label"])
        if release is None:
            active = active.of_project().filter(version_pattern=options["pattern"])
        else:
            active = active.filter(release=release)
        token = active.first()
        if token is None or not tokens.revoke(token, by=ACTOR):
            raise CommandError(f"no active token labelled {options['label']!r} there")
        self.stdout.write(f"revoked ci:{token.label}")


def _release(version: str | None) -> Release | None:
    if version is None:
        return None
    release = Release.objects.filter(version=version.strip()).first()
    if release is None:
        raise CommandError(f"no release {version}")
    return release


def _when(moment: Any) -> str:
    return moment.strftime("%Y-%m-%d %H:%M UTC") if moment is not None else "-"
