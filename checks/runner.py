"""Running checks: start a run, execute one check, hand it back for a retry, finish it.

Tasks (checks.tasks) are thin wrappers around these. A run is started only for checks
not already queued or running; the others join the result under way, so pressing "run"
again, however often, queues nothing twice. A result row is claimed by a conditional
UPDATE naming the attempt it was sent for, so a task delivered twice, one whose attempt
was already handed to another worker, or one whose check was retired meanwhile (its
result cancelled), returns without recording anything.
Only workers call `execute`: they alone read the credentials the checks name.
"""

from __future__ import annotations

import contextlib
import logging
import os
import random
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from django.conf import settings
from django.core.cache import cache
from django.core.exceptions import PermissionDenied
from django.db import connection, transaction
from django.db.models import QuerySet
from django.utils import timezone
from django.utils.translation import gettext_noop, ngettext

from deploycheck import limits
from releases import workflow
from releases.actors import Actor, CheckActor, Person
from releases.models import CheckOutcome, CheckReason, Release

from .kinds.base import MAX_RETRY_DELAY, CheckError, Context, Said, as_said, clip
from .models import UNFINISHED, Check, CheckResult, CheckRun, ResultState

logger = logging.getLogger(__name__)

# A finished result is recorded a moment later by its own worker; past this, by beat.
RECORDING_GRACE_SECONDS = 10.0

Enqueue = Callable[[int, int, float], None]
# The window CHECKS_RUNS_PER_MINUTE counts a person's runs in.
RUN_WINDOW_SECONDS = 60


class TooManyRuns(Exception):
    """A person already started CHECKS_RUNS_PER_MINUTE runs in this minute."""

    def __init__(self, started: int, retry_after: int) -> None:
        super().__init__(f"{started} runs started in this minute; try again in {retry_after} s")
        self.started = started
        self.retry_after = retry_after

    def explained(self) -> str:
        """What the person is told, in their language."""
        return ngettext(
            "You have started %(count)d run in the last minute; try again in %(seconds)d s.",
            "You have started %(count)d runs in the last minute; try again in %(seconds)d s.",
            self.started,
        ) % {"count": self.started, "seconds": self.retry_after}


@dataclass(frozen=True)
class Launch:
    """What asking to run some checks did: the results queued by a new run, for the
    checks that had none under way, and the unfinished results of earlier runs it
    joined for the others (ids, each check once)."""

    run: CheckRun | None
    started: tuple[int, ...] = ()
    joined: tuple[int, ...] = ()

    @property
    def results(self) -> tuple[int, ...]:
        return (*self.started, *self.joined)


def start_run(
    release: Release, checks: Iterable[Check], *, by: Actor, scope: str, enqueue: Enqueue
) -> Launch:
    """Run the active ones of `checks`: a check with a queued or running result, in any
    run of the release, joins that result; the others get a new run with one queued
    result each, sent to the workers once committed. However often a run is asked for,
    a check is queued once until it finishes.

    A person who already started CHECKS_RUNS_PER_MINUTE runs in this minute is refused
    with TooManyRuns when there is something new to queue; joining is never refused nor
    counted, and machines (beat, `verify`, pipelines) are not counted."""
    wanted = {check.pk: position for position, check in enumerate(checks)}
    if not wanted:
        return Launch(None)
    counted = ""
    try:
        with transaction.atomic():
            # Under the release lock: two requests at once must not both find a check
            # idle and both queue it. Every start on a release waits for the one before.
            Release.objects.select_for_update().filter(pk=release.pk).values_list("pk").get()
            # Read again under the lock: a reload may have retired some meanwhile. In the
            # order asked for, which is the order their results are queued in.
            chosen = sorted(
                Check.objects.active().filter(release=release, pk__in=wanted),
                key=lambda check: wanted[check.pk],
            )
            # By id, so a check with two unfinished results joins its latest.
            under_way = dict(
                CheckResult.objects.filter(subject__in=chosen, state__in=UNFINISHED)
                .order_by("pk")
                .values_list("subject_id", "pk")
            )
            joined = tuple(under_way.values())
            new = [check for check in chosen if check.pk not in under_way]
            if not new:
                launch = Launch(None, joined=joined)
            else:
                if isinstance(by, Person):
                    counted = _count_run(by.user.pk)
                launch = _queue(release, new, by=by, scope=scope, enqueue=enqueue, joined=joined)
    except BaseException:
        if counted:
            _uncount_run(counted)
        raise
    # A worker that finished while the lock was held here left its result to the
    # holder, as workers do to each other (see `record`): look, as they do.
    if _unrecorded(release.pk).exists():
        record(release.pk)
    return launch


def _queue(
    release: Release,
    checks: list[Check],
    *,
    by: Actor,
    scope: str,
    enqueue: Enqueue,
    joined: tuple[int, ...],
) -> Launch:
    run = CheckRun.objects.create(
        release=release,
        requested_by_label=by.label[:200],
        requested_by_kind=by.kind,
        scope=scope[:300],
    )
    results = CheckResult.objects.bulk_create(
        [
            CheckResult(run=run, subject=check, deadline=CheckResult.handover_deadline())
            for check in checks
        ]
    )
    ids = tuple(result.pk for result in results)

    def send() -> None:
        for result_id in ids:
            enqueue(result_id, 1, 0.0)

    transaction.on_commit(send)
    return Launch(run, started=ids, joined=joined)


def _count_run(user_id: int) -> str:
    """Count a run a person starts, across web processes; its key, to take it back if
    the run is not committed after all."""
    counted = limits.count(f"check-runs:{user_id}", RUN_WINDOW_SECONDS)
    limit = settings.CHECKS_RUNS_PER_MINUTE
    if counted.count > limit:
        _uncount_run(counted.key)
        raise TooManyRuns(limit, counted.retry_after)
    return counted.key


def _uncount_run(key: str) -> None:
    with contextlib.suppress(ValueError):  # the window is over: nothing left to take back
        cache.decr(key)


@dataclass(frozen=True)
class Finding:
    outcome: CheckOutcome
    reason: CheckReason
    said: Said
    latency_ms: int
    # Set when the attempt should be tried again after this many seconds.
    retry_in: float | None = None

    @property
    def evidence(self) -> str:
        return self.said.english()


def _scrub(evidence: Said, secrets: Iterable[str]) -> Said:
    """Evidence is built from parsed fields, never raw bodies; this is the last guard
    against a vendor echoing a credential into a field we show."""
    return evidence.scrubbed(list(secrets))


def backoff(attempt: int, retry_after: float | None) -> float:
    if retry_after is not None:
        return min(MAX_RETRY_DELAY, max(0.0, retry_after))
    base = float(settings.CHECKS_RETRY_BASE_SECONDS) * 2.0 ** (attempt - 1)
    # Jitter keeps many checks that failed together from retrying together.
    return min(MAX_RETRY_DELAY, base * random.uniform(0.5, 1.5))


def get_ready() -> None:
    """What a worker does before it takes tasks. A run's checks start together: done by
    the first of them instead, the others waited for the kinds to import, for the trust
    store to load, for httpx to import its transport (on a first client, not on import)
    and for the database pool to open its connections one by one."""
    from .kinds.client import http_client
    from .kinds.registry import REGISTRY

    http_client().close()
    logger.info("ready to run %d kinds of check", len(REGISTRY))
    pool = getattr(connection, "pool", None)
    if pool is not None:
        pool.open(wait=True, timeout=30)


def judge(check: Check, release_version: str, attempt: int) -> Finding:
    """Run one attempt of a check and say what it found."""
    # Here, not at the top: the kinds' clients (TLS, DNS, HTTP) are the workers' alone,
    # and `manage.py verify`, which only enqueues, starts faster without them.
    from .kinds import client
    from .kinds.registry import REGISTRY

    kind = REGISTRY.get(check.kind)
    if kind is None:
        return Finding(
            CheckOutcome.ERROR,
            CheckReason.MISCONFIGURED,
            Said(gettext_noop("unknown kind %(kind)s"), {"kind": clip(check.kind, 30)}),
            0,
        )
    context = Context(options=check.options, release_version=release_version, env=os.environ)
    started = time.perf_counter()
    with client.attempt(float(settings.CHECKS_ATTEMPT_SECONDS)) as current:
        try:
            evidence = as_said(kind.run(context))
            outcome, reason, retry_in = CheckOutcome.PASS, CheckReason.OK, None
        except CheckError as raised:
            # The server's x-should-retry on the answer the kind judged has the last word
            # on trying again, whatever the kind made of that answer.
            error = client.heeding_server(raised, current.server_says_retry)
            outcome, reason, evidence, retry_in = _not_passed(error, attempt)
        except Exception as error:  # a bug in a kind must not leave the result hanging
            logger.exception("check %s (%s) crashed", check.name, check.kind)
            evidence = Said(
                gettext_noop("the check crashed (%(error)s)"), {"error": type(error).__name__}
            )
            outcome, reason, retry_in = CheckOutcome.ERROR, CheckReason.BAD_RESPONSE, None
    latency_ms = round((time.perf_counter() - started) * 1000)
    return Finding(outcome, reason, _scrub(evidence, context.secrets()), latency_ms, retry_in)


def _not_passed(
    error: CheckError, attempt: int
) -> tuple[CheckOutcome, CheckReason, Said, float | None]:
    """What a check that did not pass found, and in how many seconds to try it again
    (None: not again)."""
    reason = CheckReason(error.reason)
    if error.permanent:
        return CheckOutcome.FAIL, reason, error.said, None
    wait = error.retry_after
    if error.retry and wait is not None and wait > MAX_RETRY_DELAY:
        # Trying again sooner than the vendor asked would only be refused again.
        return CheckOutcome.ERROR, CheckReason.RATE_LIMITED, _wait_asked(error.said, wait), None
    if error.retry and attempt < settings.CHECKS_MAX_ATTEMPTS:
        return CheckOutcome.ERROR, reason, error.said, backoff(attempt, wait)
    return CheckOutcome.ERROR, reason, error.said, None


def _wait_asked(evidence: Said, seconds: float) -> Said:
    """The evidence of an answer whose vendor asks for a longer wait than a retry
    waits, with the time it names."""
    after = datetime.now(UTC) + timedelta(seconds=seconds)
    # Up to the next minute: "after 22:15" must not be a moment too soon.
    after = (after + timedelta(minutes=1)).replace(second=0, microsecond=0)
    shown = f"{after:%H:%M}" if seconds < 24 * 3600 else f"{after:%Y-%m-%d %H:%M}"
    return Said(
        gettext_noop(
            "%(evidence)s; the vendor asks to wait %(seconds)s s; try again after %(at)s UTC"
        ),
        {"evidence": evidence, "seconds": round(seconds), "at": shown},
    )


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
    _give_back_connection()
    finding = judge(check, release.version, attempt)
    if finding.retry_in is not None:
        _hand_back(result, attempt, finding, enqueue)
        return
    _finish(result, attempt, finding)


def _give_back_connection() -> None:
    """A check may wait seconds on its vendor; a pooled connection goes back meanwhile,
    so the pool, not the thread count, bounds the database's connections. A plain one is
    kept: reopening it would cost more than the wait saves."""
    if getattr(connection, "pool", None) is not None and not connection.in_atomic_block:
        connection.close()


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
        said=finding.said.as_json(),
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
    finished = CheckResult.objects.filter(
        pk=result.pk, state=ResultState.RUNNING, attempt=attempt
    ).update(
        state=ResultState.DONE,
        outcome=finding.outcome,
        reason=finding.reason,
        evidence=finding.evidence,
        said=finding.said.as_json(),
        latency_ms=finding.latency_ms,
        finished_at=timezone.now(),
    )
    if finished:
        record(result.run.release_id)


def record(release_id: int) -> int:
    """Carry every finished, unrecorded result of a release to the items that name its
    check, in one transaction under the release lock; how many there were.

    A worker that finds the lock taken leaves at once: whoever holds it looks again
    after letting go, and a result committed before the lock was found taken is seen
    then. So no result is left behind, nobody waits holding a connection, and a run's
    results settle in a few batches instead of one by one."""
    recorded = 0
    while True:
        with workflow.holding(release_id) as held:
            if not held:
                return recorded
            recorded += _record_pending(release_id)
        if not _unrecorded(release_id).exists():
            return recorded


def _unrecorded(release_id: int) -> QuerySet[CheckResult]:
    return CheckResult.objects.filter(
        run__release_id=release_id, state=ResultState.DONE, recorded_at__isnull=True
    )


def _record_pending(release_id: int) -> int:
    pending = list(
        _unrecorded(release_id)
        .select_related("subject")
        # A check's later result lands last, when two runs finish together.
        .order_by("finished_at")
    )
    if not pending:
        return 0
    findings = [
        workflow.CheckFinding(
            CheckActor(result.subject.name, result.run_id),
            result.outcome,
            result.reason,
            result.evidence,
            result.latency_ms,
            said=result.said or None,
        )
        for result in pending
        if result.subject.retired_at is None
    ]
    try:
        workflow.record_check_results(release_id, findings)
    except (workflow.WorkflowError, PermissionDenied) as refusal:
        # A cancelled release takes no verdicts; the results stay on their run.
        logger.warning("check results of release %s not recorded: %s", release_id, refusal)
    CheckResult.objects.filter(pk__in=[result.pk for result in pending]).update(
        recorded_at=timezone.now()
    )
    return len(pending)


def requeue_overdue(*, enqueue: Enqueue) -> int:
    """Hand results past their deadline to a worker again: a worker killed mid-check, or
    a message lost (the filesystem broker deletes on read). After the last attempt the
    result is recorded as an error, so no run waits for ever. A result that finished but
    never reached its items (its worker died in between) is recorded here too."""
    stranded = (
        CheckResult.objects.filter(
            state=ResultState.DONE,
            recorded_at__isnull=True,
            finished_at__lt=timezone.now() - timedelta(seconds=RECORDING_GRACE_SECONDS),
        )
        .values_list("run__release_id", flat=True)
        .distinct()
    )
    for release_id in stranded:
        record(release_id)
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
                        Said(gettext_noop("no worker finished this check in time")),
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
