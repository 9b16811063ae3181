"""Celery tasks: thin, taking ids; the work is in checks.runner."""

from __future__ import annotations

from celery import signals
from django.utils import timezone
from django.utils.translation import gettext_noop

from deploycheck.celery import app
from releases.actors import SystemActor
from releases.models import Release, ReleaseStatus

from . import runner
from .models import Check

# Releases whose evidence must stay fresh: beat re-verifies them.
WATCHED = (ReleaseStatus.IN_PROGRESS, ReleaseStatus.APPROVED, ReleaseStatus.DEPLOYED)


def enqueue(result_id: int, attempt: int, delay: float) -> None:
    run_check.apply_async((result_id, attempt), countdown=delay or None)


def _run_check(result_id: int, attempt: int) -> None:
    runner.execute(result_id, attempt, enqueue=enqueue)


def _requeue_overdue() -> int:
    return runner.requeue_overdue(enqueue=enqueue)


def _reverify() -> int:
    started = 0
    scheduler = SystemActor(gettext_noop("scheduled re-verification"))
    for release in Release.objects.filter(status__in=WATCHED):
        checks = list(Check.objects.active().filter(release=release))
        launch = runner.start_run(
            release,
            checks,
            by=scheduler,
            scope=f"scheduled at {timezone.now():%Y-%m-%d %H:%M} UTC",
            enqueue=enqueue,
        )
        started += launch.run is not None
    return started


def _get_ready(**kwargs: object) -> None:
    runner.get_ready()


# Registered by a call, not as decorators: Celery ships no type hints, and an untyped
# decorator would leave the functions unchecked.
run_check = app.task(name="checks.run_check", ignore_result=True)(_run_check)
requeue_overdue = app.task(name="checks.requeue_overdue", ignore_result=True)(_requeue_overdue)
reverify = app.task(name="checks.reverify", ignore_result=True)(_reverify)
signals.worker_ready.connect(_get_ready, weak=False)
