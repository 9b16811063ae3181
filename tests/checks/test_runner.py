"""The runner on the service layer: claims, retries, verdicts, scrubbing, the work of a
retired check cancelled, and `verify` joining a run under way. A real worker is
exercised in test_worker.py; here the queue is a list the test reads."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from datetime import timedelta
from io import StringIO
from pathlib import Path
from typing import Any

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connections
from django.utils import timezone

from checks import config, runner, tasks
from checks.models import Check, CheckResult, CheckRun, ResultState
from releases.actors import Person, SystemActor
from releases.models import AuditEvent, ItemState, Release
from tests.checks.standin import Reply, Seen, StandIn, json_reply, sequence, stand_in
from tests.conftest import item

QA_ITEM = "Unit tests pass"
PLANTED = "sk-planted-secret-value-0123456789"


class Queue:
    """Stands in for the broker: what would have been sent to the workers."""

    def __init__(self) -> None:
        self.sent: list[tuple[int, int, float]] = []

    def __call__(self, result_id: int, attempt: int, delay: float) -> None:
        self.sent.append((result_id, attempt, delay))

    def drain(self) -> None:
        """Deliver everything sent so far, as a worker would, until nothing is left."""
        while self.sent:
            result_id, attempt, _delay = self.sent.pop(0)
            runner.execute(result_id, attempt, enqueue=self)


@pytest.fixture
def queue() -> Queue:
    return Queue()


@pytest.fixture
def health() -> Iterator[StandIn]:
    answers: list[Reply] = [json_reply({"status": "ok"})]

    def answer(_request: Seen) -> Reply:
        return answers[0]

    with stand_in(answer) as server:
        server.answers = answers  # type: ignore[attr-defined]
        yield server


def add_check(release: Release, name: str, url: str, **options: Any) -> Check:
    check = Check.objects.create(
        release=release, name=name, kind="http", options={"url": url, **options}
    )
    release.items.filter(text=QA_ITEM).update(checks=[name])
    return check


def start(release: Release, queue: Queue) -> int:
    run = runner.start_run(
        release,
        Check.objects.filter(release=release),
        by=SystemActor("tests"),
        scope="all",
        enqueue=queue,
    ).run
    assert run is not None
    return run.pk


def test_it_queues_one_result_per_check_and_sends_them_once_committed(
    release: Release, queue: Queue, health: StandIn, django_capture_on_commit_callbacks: Any
) -> None:
    add_check(release, "api", health.url)

    with django_capture_on_commit_callbacks(execute=True):
        run_id = start(release, queue)

    [result] = CheckResult.objects.filter(run_id=run_id)
    assert (result.state, result.attempt) == (ResultState.QUEUED, 1)
    assert queue.sent == [(result.pk, 1, 0.0)]


def test_it_ticks_the_linked_item_when_the_check_passes(
    release: Release, queue: Queue, health: StandIn, django_capture_on_commit_callbacks: Any
) -> None:
    add_check(release, "api", health.url, conditions=["[BODY].status == ok"])
    with django_capture_on_commit_callbacks(execute=True):
        run_id = start(release, queue)

    queue.drain()

    result = CheckResult.objects.get(run_id=run_id)
    assert (result.state, result.outcome, result.reason) == (ResultState.DONE, "pass", "ok")
    entry = item(release, QA_ITEM)
    assert entry.state == ItemState.DONE
    assert entry.changed_by_label == "check:api"
    assert entry.check_results["api"]["outcome"] == "pass"
    assert release.audit_events.filter(action="check.passed", actor_kind="check").exists()


def test_it_fails_the_item_at_once_on_a_fault_without_retrying(
    release: Release, queue: Queue, health: StandIn, django_capture_on_commit_callbacks: Any
) -> None:
    health.answers[0] = json_reply({"status": "degraded"})  # type: ignore[attr-defined]
    add_check(release, "api", health.url, conditions=["[BODY].status == ok"])
    with django_capture_on_commit_callbacks(execute=True):
        run_id = start(release, queue)

    queue.drain()

    result = CheckResult.objects.get(run_id=run_id)
    assert (result.outcome, result.reason, result.attempt) == ("fail", "misconfigured", 1)
    assert len(health.requests) == 1
    entry = item(release, QA_ITEM)
    assert entry.state == ItemState.FAILED
    assert "degraded" in entry.reason


def test_it_retries_a_rate_limit_after_the_wait_the_server_asks_for(
    release: Release, queue: Queue, django_capture_on_commit_callbacks: Any, settings: Any
) -> None:
    settings.CHECKS_MAX_ATTEMPTS = 3
    answer = sequence(Reply(status=429, headers={"Retry-After": "7"}), json_reply({}))
    with stand_in(answer) as server:
        add_check(release, "api", server.url)
        with django_capture_on_commit_callbacks(execute=True):
            run_id = start(release, queue)
        result_id = queue.sent.pop(0)[0]

        runner.execute(result_id, 1, enqueue=queue)

        assert queue.sent == [(result_id, 2, 7.0)]
        waiting = CheckResult.objects.get(pk=result_id)
        assert (waiting.state, waiting.attempt, waiting.reason) == (
            ResultState.QUEUED,
            2,
            "rate_limited",
        )
        queue.drain()

    result = CheckResult.objects.get(run_id=run_id)
    assert (result.outcome, result.attempt) == ("pass", 2)
    assert item(release, QA_ITEM).state == ItemState.DONE


def test_it_caps_a_long_retry_after_at_a_minute() -> None:
    assert runner.backoff(1, 3600) == runner.MAX_RETRY_DELAY
    assert runner.backoff(1, 2.5) == 2.5
    assert 0 < runner.backoff(3, None) <= runner.MAX_RETRY_DELAY


def test_it_records_an_error_when_the_attempts_run_out(
    release: Release, queue: Queue, django_capture_on_commit_callbacks: Any, settings: Any
) -> None:
    settings.CHECKS_MAX_ATTEMPTS = 2
    settings.CHECKS_RETRY_BASE_SECONDS = 0
    with stand_in(lambda _request: Reply(status=503)) as server:
        add_check(release, "api", server.url)
        with django_capture_on_commit_callbacks(execute=True):
            run_id = start(release, queue)
        queue.drain()
        tries = len(server.requests)

    result = CheckResult.objects.get(run_id=run_id)
    assert (result.outcome, result.reason, result.attempt, tries) == ("error", "vendor_down", 2, 2)
    # Nothing was judged: the item is not failed, it waits as it was, not verified.
    entry = item(release, QA_ITEM)
    assert (entry.state, entry.reason) == (ItemState.PENDING, "")
    assert entry.checks_verdict().not_verified


def test_it_records_nothing_twice_when_a_task_is_delivered_again(
    release: Release, queue: Queue, health: StandIn, django_capture_on_commit_callbacks: Any
) -> None:
    add_check(release, "api", health.url)
    with django_capture_on_commit_callbacks(execute=True):
        start(release, queue)
    result_id = queue.sent[0][0]
    runner.execute(result_id, 1, enqueue=queue)
    events = AuditEvent.objects.count()
    revision = Release.objects.get(pk=release.pk).revision

    runner.execute(result_id, 1, enqueue=queue)

    assert len(health.requests) == 1
    assert AuditEvent.objects.count() == events
    assert Release.objects.get(pk=release.pk).revision == revision


def test_it_quietly_skips_a_result_that_is_gone(queue: Queue, db: None) -> None:
    runner.execute(987654, 1, enqueue=queue)

    assert queue.sent == []


def test_it_hands_a_result_whose_worker_died_to_another_one(
    release: Release, queue: Queue, health: StandIn, django_capture_on_commit_callbacks: Any
) -> None:
    add_check(release, "api", health.url)
    with django_capture_on_commit_callbacks(execute=True):
        run_id = start(release, queue)
    queue.sent.clear()
    # A worker claimed it, then was killed before finishing.
    CheckResult.objects.filter(run_id=run_id).update(
        state=ResultState.RUNNING, deadline=timezone.now() - timedelta(seconds=1)
    )

    assert runner.requeue_overdue(enqueue=queue) == 1
    queue.drain()

    result = CheckResult.objects.get(run_id=run_id)
    assert (result.state, result.outcome, result.attempt) == (ResultState.DONE, "pass", 2)


def test_it_gives_up_on_a_result_no_worker_ever_finishes(
    release: Release, queue: Queue, health: StandIn, settings: Any
) -> None:
    settings.CHECKS_MAX_ATTEMPTS = 2
    add_check(release, "api", health.url)
    run_id = start(release, queue)
    CheckResult.objects.filter(run_id=run_id).update(
        state=ResultState.RUNNING, attempt=3, deadline=timezone.now() - timedelta(seconds=1)
    )

    runner.requeue_overdue(enqueue=queue)

    result = CheckResult.objects.get(run_id=run_id)
    assert (result.state, result.outcome, result.reason) == (ResultState.DONE, "error", "timed_out")
    assert queue.sent == []


def test_it_keeps_a_credential_out_of_everything_it_stores(
    release: Release,
    queue: Queue,
    monkeypatch: pytest.MonkeyPatch,
    django_capture_on_commit_callbacks: Any,
) -> None:
    monkeypatch.setenv("PLANTED_KEY", PLANTED)

    # A vendor that echoes the key into a field the check reports.
    def echo(_request: Seen) -> Reply:
        return json_reply({"status": PLANTED})

    with stand_in(echo) as server:
        Check.objects.create(
            release=release,
            name="echo",
            kind="webhook",
            options={"url": server.url.replace("http:", "https:"), "secret_env": "PLANTED_KEY"},
        )
        add_check(
            release,
            "api",
            server.url,
            conditions=["[BODY].status == ok"],
            secret_env="PLANTED_KEY",
        )
        with django_capture_on_commit_callbacks(execute=True):
            start(release, queue)
        queue.drain()

    stored = [
        *CheckResult.objects.values_list("evidence", flat=True),
        str(list(Check.objects.values_list("options", flat=True))),
        str(list(release.items.values_list("reason", "check_results"))),
        str(list(AuditEvent.objects.values_list("before", "after", "target"))),
    ]
    assert all(PLANTED not in text for text in stored)


def test_it_runs_nothing_for_retired_checks(
    release: Release, queue: Queue, health: StandIn
) -> None:
    check = add_check(release, "api", health.url)
    Check.objects.filter(pk=check.pk).update(retired_at=timezone.now())

    launch = runner.start_run(
        release, Check.objects.filter(release=release), by=SystemActor("t"), scope="", enqueue=queue
    )

    assert launch == runner.Launch(None)


def finish_unrecorded(release: Release, names: list[str], outcome: str = "pass") -> list[int]:
    """Results of a run as workers leave them when they finish: done, not yet on items."""
    run = runner.start_run(
        release,
        [
            Check.objects.create(release=release, name=name, kind="http", options={})
            for name in names
        ],
        by=SystemActor("tests"),
        scope="all",
        enqueue=Queue(),
    ).run
    assert run is not None
    results = CheckResult.objects.filter(run=run)
    results.update(state=ResultState.DONE, outcome=outcome, reason="ok", finished_at=timezone.now())
    return [result.pk for result in results]


def test_results_that_finished_together_reach_their_items_in_one_revision(
    release: Release,
) -> None:
    release.items.filter(text=QA_ITEM).update(checks=["unit", "lint"])
    release.items.filter(text="TLS certificates installed").update(checks=["tls"])
    finish_unrecorded(release, ["unit", "lint", "tls"])
    revision = Release.objects.get(pk=release.pk).revision

    assert runner.record(release.pk) == 3

    assert Release.objects.get(pk=release.pk).revision == revision + 1
    assert item(release, QA_ITEM).state == ItemState.DONE
    assert item(release, "TLS certificates installed").changed_by_label == "check:tls"
    # Each verdict is audited as a check that gave it, not as one actor for the batch.
    passed = release.audit_events.filter(action="check.passed")
    assert sorted(passed.values_list("actor_label", flat=True)) == ["check:lint", "check:tls"]
    assert not CheckResult.objects.filter(recorded_at__isnull=True).exists()
    assert runner.record(release.pk) == 0


def test_a_verdict_waits_for_every_check_of_the_item_in_a_batch_too(release: Release) -> None:
    release.items.filter(text=QA_ITEM).update(checks=["unit", "lint"])
    finish_unrecorded(release, ["unit"])

    runner.record(release.pk)

    entry = item(release, QA_ITEM)
    assert entry.state == ItemState.PENDING
    assert set(entry.check_results) == {"unit"}


@pytest.mark.django_db(transaction=True)
def test_a_worker_that_finds_the_release_locked_leaves_the_results_to_the_holder(
    small_template: Any, users: dict[str, Any]
) -> None:
    from django.db import connections, transaction

    from releases import workflow

    release = workflow.create_release(
        small_template, version="v1.0.0", title="T", by=users["admin"]
    )
    release.items.filter(text=QA_ITEM).update(checks=["unit"])
    finish_unrecorded(release, ["unit"])
    holder_has_lock, holder_may_go = threading.Event(), threading.Event()
    recorded_by_holder: list[int] = []

    def holder() -> None:
        try:
            with workflow.holding(release.pk) as held:
                assert held
                holder_has_lock.set()
                holder_may_go.wait(10)
            # Let go, then look again, as a worker does after its own batch.
            recorded_by_holder.append(runner.record(release.pk))
        finally:
            connections.close_all()

    thread = threading.Thread(target=holder)
    thread.start()
    assert holder_has_lock.wait(10)
    # Another worker finished meanwhile: it does not wait for the lock.
    assert runner.record(release.pk) == 0
    assert item(release, QA_ITEM).state == ItemState.PENDING
    holder_may_go.set()
    thread.join(10)

    assert recorded_by_holder == [1]
    assert item(release, QA_ITEM).state == ItemState.DONE
    with transaction.atomic():
        assert not CheckResult.objects.filter(recorded_at__isnull=True).exists()


def test_beat_records_a_result_whose_worker_died_before_recording_it(
    release: Release, queue: Queue
) -> None:
    release.items.filter(text=QA_ITEM).update(checks=["unit"])
    [result_id] = finish_unrecorded(release, ["unit"])
    CheckResult.objects.filter(pk=result_id).update(
        finished_at=timezone.now() - timedelta(seconds=runner.RECORDING_GRACE_SECONDS + 1)
    )

    runner.requeue_overdue(enqueue=queue)

    assert CheckResult.objects.get(pk=result_id).recorded_at is not None
    assert item(release, QA_ITEM).state == ItemState.DONE


def test_results_for_a_cancelled_release_are_kept_on_their_run_only(
    release: Release, users: dict[str, Any], caplog: pytest.LogCaptureFixture
) -> None:
    from releases import workflow

    release.items.filter(text=QA_ITEM).update(checks=["unit"])
    [result_id] = finish_unrecorded(release, ["unit"], outcome="fail")
    workflow.set_status(release, status="cancelled", by=users["admin"])

    runner.record(release.pk)

    assert item(release, QA_ITEM).state == ItemState.PENDING
    assert CheckResult.objects.get(pk=result_id).recorded_at is not None
    assert "not recorded" in caplog.text


def test_it_shows_plain_text_evidence_with_a_percent_sign_as_it_was_written() -> None:
    from checks.kinds.base import as_said, said

    assert as_said("quota at 97% of the plan").english() == "quota at 97% of the plan"
    assert said("%(used)s%% used", used=97).english() == "97% used"


# --- retiring a check cancels its work ------------------------------------------------------

TLS_ITEM = "TLS certificates installed"


def checks_file(tmp_path: Path, url: str, names: list[str]) -> Path:
    """A checks file declaring `names` among "api" (on the QA item) and "tls" (on the
    TLS item), both asking `url`."""
    items = {"api": QA_ITEM, "tls": TLS_ITEM}
    path = tmp_path / f"{'-'.join(names)}.toml"
    path.write_text(
        "".join(
            f'[[check]]\nname = "{name}"\nkind = "http"\nurl = "{url}"\nitem = "{items[name]}"\n\n'
            for name in names
        ),
        encoding="utf-8",
    )
    return path


def test_retiring_a_check_cancels_its_queued_result_and_its_late_task_claims_nothing(
    release: Release,
    queue: Queue,
    health: StandIn,
    tmp_path: Path,
    django_capture_on_commit_callbacks: Any,
) -> None:
    config.load(checks_file(tmp_path, health.url, ["api", "tls"]), release, by=SystemActor("t"))
    with django_capture_on_commit_callbacks(execute=True):
        start(release, queue)

    config.load(checks_file(tmp_path, health.url, ["api"]), release, by=SystemActor("t"))
    queue.drain()

    api, tls = CheckResult.objects.order_by("subject__name")
    assert (api.state, api.outcome) == (ResultState.DONE, "pass")
    assert (tls.state, tls.outcome, tls.attempt, tls.claimed_at) == (
        ResultState.CANCELLED,
        "",
        1,
        None,
    )
    assert tls.finished_at is not None
    assert len(health.requests) == 1
    entry = item(release, TLS_ITEM)
    assert (entry.state, entry.check_results) == (ItemState.PENDING, {})
    assert not AuditEvent.objects.filter(actor_label="check:tls").exists()
    # Nothing is left for beat to hand over or record.
    assert runner.requeue_overdue(enqueue=queue) == 0
    assert queue.sent == []


def test_retiring_a_check_drops_the_finding_of_its_running_result(
    release: Release,
    queue: Queue,
    health: StandIn,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    django_capture_on_commit_callbacks: Any,
) -> None:
    config.load(checks_file(tmp_path, health.url, ["api", "tls"]), release, by=SystemActor("t"))
    with django_capture_on_commit_callbacks(execute=True):
        start(release, queue)
    judge = runner.judge

    def retired_meanwhile(check: Check, version: str, attempt: int) -> runner.Finding:
        # The file is reloaded without "tls" while its worker waits on the vendor.
        config.load(checks_file(tmp_path, health.url, ["api"]), release, by=SystemActor("t"))
        return judge(check, version, attempt)

    monkeypatch.setattr(runner, "judge", retired_meanwhile)
    tls = CheckResult.objects.get(subject__name="tls")

    runner.execute(tls.pk, 1, enqueue=queue)

    tls.refresh_from_db()
    assert (tls.state, tls.outcome, tls.recorded_at) == (ResultState.CANCELLED, "", None)
    assert len(health.requests) == 1
    assert item(release, TLS_ITEM).check_results == {}
    assert not AuditEvent.objects.filter(actor_label="check:tls").exists()


def test_a_new_run_after_a_check_was_retired_and_declared_again_queues_it_afresh(
    release: Release,
    queue: Queue,
    health: StandIn,
    tmp_path: Path,
    django_capture_on_commit_callbacks: Any,
) -> None:
    both = checks_file(tmp_path, health.url, ["api", "tls"])
    config.load(both, release, by=SystemActor("t"))
    with django_capture_on_commit_callbacks(execute=True):
        start(release, queue)
    config.load(checks_file(tmp_path, health.url, ["api"]), release, by=SystemActor("t"))
    config.load(both, release, by=SystemActor("t"))
    queue.sent.clear()

    with django_capture_on_commit_callbacks(execute=True):
        launch = runner.start_run(
            release,
            Check.objects.filter(release=release),
            by=SystemActor("tests"),
            scope="all",
            enqueue=queue,
        )

    # "api" is still queued from the first run; "tls" lost its result when retired.
    assert launch.run is not None
    assert [CheckResult.objects.get(pk=pk).subject.name for pk in launch.started] == ["tls"]
    assert [CheckResult.objects.get(pk=pk).subject.name for pk in launch.joined] == ["api"]
    queue.drain()
    assert item(release, TLS_ITEM).state == ItemState.DONE


# --- verify joins what is under way ----------------------------------------------------------


@pytest.fixture
def own_release(small_template: Any, users: dict[str, Any]) -> Release:
    """A committed release, for tests whose threads use connections of their own."""
    from releases import workflow

    return workflow.create_release(small_template, version="v1.0.0", title="T", by=users["admin"])


def verify_beside(
    release: Release, queue: Queue, monkeypatch: pytest.MonkeyPatch, meanwhile: Any
) -> tuple[str, str]:
    """Run `manage.py verify` while a thread does `meanwhile` once verify has asked for
    its run: the verify's output and error."""
    monkeypatch.setattr(tasks, "enqueue", queue)
    asked = threading.Event()
    start_run = runner.start_run

    def start_and_tell(*args: Any, **kwargs: Any) -> runner.Launch:
        launch = start_run(*args, **kwargs)
        asked.set()
        return launch

    monkeypatch.setattr(runner, "start_run", start_and_tell)

    def worker() -> None:
        try:
            if asked.wait(10):
                meanwhile()
        finally:
            connections.close_all()

    thread = threading.Thread(target=worker)
    thread.start()
    out, err = StringIO(), StringIO()
    try:
        call_command("verify", release.version, "--json", "--timeout", "10", stdout=out, stderr=err)
    finally:
        thread.join(20)
    return out.getvalue(), err.getvalue()


@pytest.mark.django_db(transaction=True)
def test_verify_waits_for_the_results_of_the_run_it_joined(
    own_release: Release,
    users: dict[str, Any],
    queue: Queue,
    health: StandIn,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    add_check(own_release, "api", health.url)
    # A lead pressed "run" on the board; no worker has taken it yet.
    pressed = runner.start_run(
        own_release,
        Check.objects.filter(release=own_release),
        by=Person(users["qa"]),
        scope="all checks",
        enqueue=queue,
    )

    out, _err = verify_beside(own_release, queue, monkeypatch, queue.drain)

    assert [(r["name"], r["outcome"]) for r in json.loads(out)] == [("api", "pass")]
    assert CheckRun.objects.get() == pressed.run
    assert len(health.requests) == 1
    assert item(own_release, QA_ITEM).state == ItemState.DONE


@pytest.mark.django_db(transaction=True)
def test_verify_stops_waiting_for_a_check_retired_while_it_waited(
    own_release: Release,
    queue: Queue,
    health: StandIn,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    config.load(checks_file(tmp_path, health.url, ["tls"]), own_release, by=SystemActor("t"))

    def retire() -> None:
        config.load(checks_file(tmp_path, health.url, ["api"]), own_release, by=SystemActor("t"))

    with pytest.raises(CommandError, match="every check was retired") as refused:
        verify_beside(own_release, queue, monkeypatch, retire)

    assert refused.value.returncode == 2
    assert CheckResult.objects.get(subject__name="tls").state == ResultState.CANCELLED
