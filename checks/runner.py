"""Running checks: start a run, execute one check, hand it back for a retry, finish it.

Tasks (checks.tasks) are thin wrappers around these. A result row is claimed by a
conditional UPDATE naming the attempt it was sent for, so a task delivered twice, or one
whose attempt was already handed to another worker, returns without recording anything.
Only workers call `execute`: they alone read the credentials the checks name.
"""

from __future__ import annotations

import logging
import os
import random
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from releases import workflow
from releases.actors import Actor, CheckActor
from releases.models import CheckOutcome, CheckReason, Release

from .kinds import REGISTRY
from .kinds.base import CheckError, Context, clip
from .models import Check, CheckResult, CheckRun, ResultState

logger = logging.getLogger(__name__)

# A server may ask for a longer wait; past this we would rather try again sooner.
MAX_RETRY_DELAY = 60.0

Enqueue = Callable[[int, int, float], None]


def start_run(
    release: Release, checks: Iterable[Check], *, by: Actor, scope: str, enqueue: Enqueue
) -> CheckRun | None:
    """A run of `checks`, one queued result each, sent to the workers once committed.
    None when there is nothing to run."""
    chosen = [c for c in checks if c.retired_at is None]
    if not chosen:
        return None
    with transaction.atomic():
        run = CheckRun.objects.create(
            release=release,
            requested_by_label=by.label[:200],
            requested_by_kind=by.kind,
            scope=scope[:300],
        )
        results = CheckResult.objects.bulk_create(
            [
                CheckResult(run=run, subject=check, deadline=CheckResult.handover_deadline())
                for check in chosen
            ]
        )
        ids = [result.pk for result in results]

        def send() -> None:
            for result_id in ids:
                enqueue(result_id, 1, 0.0)

        transaction.on_commit(send)
    return run


@dataclass(frozen=True)
class Finding:
    outcome: CheckOutcome
    reason: CheckReason
    evidence: str
    latency_ms: int
    # Set when the attempt should be tried again after this many seconds.
    retry_in: float | None = None


def _scrub(text: str, secrets: Iterable[str]) -> str:
    """Evidence is built from parsed fields, never raw bodies; this is the last guard
    against a vendor echoing a credential into a field we show."""
    for secret in secrets:
        if len(secret) >= 4:
            text = text.replace(secret, "•••")
    return clip(text)


def backoff(attempt: int, retry_after: float | None) -> float:
    if retry_after is not None:
        return min(MAX_RETRY_DELAY, max(0.0, retry_after))
    base = float(settings.CHECKS_RETRY_BASE_SECONDS) * 2.0 ** (attempt - 1)
    # Jitter keeps many checks that failed together from retrying together.
    return min(MAX_RETRY_DELAY, base * random.uniform(0.5, 1.5))


def judge(check: Check, release_version: str, attempt: int) -> Finding:
    """Run one attempt of a check and say what it found."""
    kind = REGISTRY.get(check.kind)
    if kind is None:
        return Finding(
            CheckOutcome.ERROR, CheckReason.MISCONFIGURED, f"unknown kind {check.kind!r}", 0
        )
    context = Context(options=check.options, release_version=release_version, env=os.environ)
    started = time.perf_counter()
    try:
        evidence = kind.run(context)
        outcome, reason, retry_in = CheckOutcome.PASS, CheckReason.OK, None
    except CheckError as error:
        evidence, reason = error.evidence, CheckReason(error.reason)
        if error.permanent:
            outcome, retry_in = CheckOutcome.FAIL, None
        else:
            outcome = CheckOutcome.ERROR
            retry_in = (
                backoff(attempt, error.retry_after)
                if attempt < settings.CHECKS_MAX_ATTEMPTS
                else None
            )
    except Exception as error:  # a bug in a kind must not leave the result hanging
        logger.exception("check %s (%s) crashed", check.name, check.kind)
        evidence = f"the check crashed ({type(error).__name__})"
        outcome, reason, retry_in = CheckOutcome.ERROR, CheckReason.BAD_RESPONSE, None
    latency_ms = round((time.perf_counter() - started) * 1000)
    return Finding(outcome, reason, _scrub(evidence, context.secrets()), latency_ms, retry_in)


def execute(result_id: int, attempt: int, *, enqueue: Enqueue) -> None:
    """What a worker does with one (result, attempt) it was handed."""
    claimed = CheckResult.objects.filter(
        pk=result_id, state=ResultState.QUEUED, attempt=attempt
    ).update(
        state=ResultState.RUNNING,
        claimed_at=timezone.now(),
        deadline=CheckResult.handover_deadline(),
    )
    if not claimed:
        return
    result = CheckResult.objects.select_related("subject", "run__release").get(pk=result_id)
    check, release = result.subject, result.run.release
    finding = judge(check, release.version, attempt)
    if finding.retry_in is not None:
        _hand_back(result, attempt, finding, enqueue)
        return
    _finish(result, attempt, finding)


def _hand_back(result: CheckResult, attempt: int, finding: Finding, enqueue: Enqueue) -> None:
    delay = finding.retry_in or 0.0
    handed = CheckResult.objects.filter(
        pk=result.pk, state=ResultState.RUNNING, attempt=attempt
    ).update(
        state=ResultState.QUEUED,
        attempt=attempt + 1,
        deadline=CheckResult.handover_deadline(delay),
        # What the last attempt saw, shown while the next one waits.
        reason=finding.reason,
        evidence=finding.evidence,
    )
    if handed:
        logger.info(
            "check %s: %s, attempt %d of %d again in %.1f s",
            result.subject.name,
            finding.reason,
            attempt + 1,
            settings.CHECKS_MAX_ATTEMPTS,
            delay,
        )
        enqueue(result.pk, attempt + 1, delay)


def _finish(result: CheckResult, attempt: int, finding: Finding) -> None:
    check, run = result.subject, result.run
    with transaction.atomic():
        finished = CheckResult.objects.filter(
            pk=result.pk, state=ResultState.RUNNING, attempt=attempt
        ).update(
            state=ResultState.DONE,
            outcome=finding.outcome,
            reason=finding.reason,
            evidence=finding.evidence,
            latency_ms=finding.latency_ms,
            finished_at=timezone.now(),
        )
        if not finished:
            return
        if check.retired_at is not None:
            return
        actor = CheckActor(check.name, run.pk)
        # Matched here rather than by a JSON lookup, which SQLite does not offer.
        linked = [
            item_id
            for item_id, names in run.release.items.values_list("pk", "checks")
            if check.name in names
        ]
        for item_id in linked:
            workflow.record_check_result(
                item_id,
                check=actor,
                passed=finding.outcome == CheckOutcome.PASS,
                outcome=finding.outcome,
                reason=finding.reason,
                detail=finding.evidence,
                latency_ms=finding.latency_ms,
            )


def requeue_overdue(*, enqueue: Enqueue) -> int:
    """Hand results past their deadline to a worker again: a worker killed mid-check, or
    a message lost (the filesystem broker deletes on read). After the last attempt the
    result is recorded as an error, so no run waits for ever."""
    count = 0
    overdue = CheckResult.objects.filter(
        state__in=[ResultState.QUEUED, ResultState.RUNNING], deadline__lt=timezone.now()
    ).select_related("subject", "run__release")
    for result in overdue:
        if result.attempt >= settings.CHECKS_MAX_ATTEMPTS + 1:
            gave_up = CheckResult.objects.filter(
                pk=result.pk, state=result.state, attempt=result.attempt
            ).update(state=ResultState.RUNNING)
            if gave_up:
                _finish(
                    result,
                    result.attempt,
                    Finding(
                        CheckOutcome.ERROR,
                        CheckReason.TIMED_OUT,
                        "no worker finished this check in time",
                        0,
                    ),
                )
            continue
        moved = CheckResult.objects.filter(
            pk=result.pk, state=result.state, attempt=result.attempt
        ).update(
            state=ResultState.QUEUED,
            attempt=result.attempt + 1,
            deadline=CheckResult.handover_deadline(),
        )
        if moved:
            count += 1
            enqueue(result.pk, result.attempt + 1, 0.0)
    return count
