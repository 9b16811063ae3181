"""`manage.py verify VERSION`: run a release's checks through the workers and report.

The command only enqueues and reads the database: the workers alone read credentials,
so it runs the same on a laptop pointed at production and in a deploy job.
"""

from __future__ import annotations

import gc
import json
import time
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db.models import Q

from releases.actors import SystemActor
from releases.models import CheckOutcome, Release

from ... import runner, tasks
from ...models import Check, CheckResult, ResultState

POLL_SECONDS = 0.05
# Exit codes a deploy job can branch on.
ALL_PASSED, SOME_FAILED, NOT_JUDGED = 0, 1, 2


class Command(BaseCommand):
    # A deploy job waits on this command: it skips the project-wide system checks that
    # every other command runs first, which take longer than a quick run itself.
    requires_system_checks: list[str] = []
    help = (
        "Run every active check of a release through the workers and wait for the results "
        "(a check already queued or running is waited for, not run again). Exit 0 when all "
        "pass, 1 when any fails or errs, 2 when there is nothing to run or the run did not "
        "finish in time."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("version", help="the release, e.g. v1.0.0")
        parser.add_argument("--json", action="store_true", help="print a JSON list")
        parser.add_argument(
            "--timeout", type=float, default=120.0, help="seconds to wait (default 120)"
        )

    def handle(self, *args: Any, version: str, json: bool, timeout: float, **options: Any) -> None:
        release = Release.objects.filter(version=version).first()
        if release is None:
            raise CommandError(f"no release {version}", returncode=NOT_JUDGED)
        checks = list(Check.objects.active().filter(release=release))
        # Checks already queued or running (a press on the board, beat) are joined, not
        # run again: their results are the ones waited for.
        launch = runner.start_run(
            release,
            checks,
            by=SystemActor("manage.py verify"),
            scope="all checks",
            enqueue=tasks.enqueue,
        )
        if not launch.results:
            raise CommandError(
                f"{version} has no checks: load some with manage.py load_checks",
                returncode=NOT_JUDGED,
            )
        results = self._wait(launch.results, timeout)
        # What is left is a report and the exit, which a deploy job waits for: the
        # collector's passes at exit over the objects of Django, Celery and their
        # libraries (0.2 s) would outlast the report. None of them needs collecting.
        gc.freeze()
        rows = [
            {
                "name": r.subject.name,
                "kind": r.subject.kind,
                "outcome": r.outcome or None,
                "reason": r.reason or None,
                "latency_ms": r.latency_ms,
            }
            for r in results
        ]
        if json:
            self.stdout.write(_json_dump(rows))
        else:
            self.stdout.write(_table(results))
        unfinished = [r for r in results if not _settled(r)]
        if unfinished:
            untouched = all(r.claimed_at is None and r.attempt == 1 for r in unfinished)
            hint = (
                "no worker took the run: is `python -m deploycheck.run worker` running "
                "against the same broker?"
                if untouched
                else f"{len(unfinished)} of {len(results)} checks did not finish"
            )
            raise CommandError(
                f"checks not finished after {timeout:g} s: {hint}", returncode=NOT_JUDGED
            )
        # A check retired while it waited is no longer the release's: it judges nothing.
        judged = [r for r in results if r.state != ResultState.CANCELLED]
        if not judged:
            raise CommandError("every check was retired before it finished", returncode=NOT_JUDGED)
        if any(r.outcome != CheckOutcome.PASS for r in judged):
            raise CommandError("some checks did not pass", returncode=SOME_FAILED)

    def _wait(self, result_ids: tuple[int, ...], timeout: float) -> list[CheckResult]:
        # Polled as one count, the rows read once at the end: on a small machine this
        # command shares the cores with the worker whose results it waits for.
        deadline = time.monotonic() + timeout
        results = CheckResult.objects.filter(pk__in=result_ids)
        while results.exclude(_SETTLED).exists() and time.monotonic() <= deadline:
            time.sleep(POLL_SECONDS)
        return list(results.select_related("subject").order_by("subject__name"))


# Recorded, not only finished: a deploy job that asks go-no-go next sees its items.
# A cancelled result reaches no item: there is nothing more to wait for.
_SETTLED = Q(state=ResultState.DONE, recorded_at__isnull=False) | Q(state=ResultState.CANCELLED)


def _settled(result: CheckResult) -> bool:
    done = result.state == ResultState.DONE and result.recorded_at is not None
    return done or result.state == ResultState.CANCELLED


def _json_dump(rows: list[dict[str, Any]]) -> str:
    return json.dumps(rows, indent=2, ensure_ascii=False)


def _table(results: list[CheckResult]) -> str:
    header = ("check", "kind", "outcome", "reason", "ms", "evidence")
    lines = [
        (
            r.subject.name,
            r.subject.kind,
            r.outcome or r.state,
            r.reason,
            "" if r.latency_ms is None else str(r.latency_ms),
            r.evidence,
        )
        for r in results
    ]
    widths = [max(len(row[i]) for row in [header, *lines]) for i in range(5)]
    return "\n".join(
        "  ".join(cell.ljust(width) for cell, width in zip(row[:5], widths, strict=True))
        + "  "
        + row[5]
        for row in [header, *lines]
    )
