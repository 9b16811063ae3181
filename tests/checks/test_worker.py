"""Checks through a real Celery worker, on Redis and on the filesystem broker: the
`verify` command end to end, a worker killed mid-check, and credentials kept out of
every output. Vendors are stand-ins on 127.0.0.1."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from django.conf import settings

from checks.models import Check, CheckResult, ResultState
from deploycheck import run
from releases.models import ItemState, Release
from tests.checks.standin import Reply, Seen, StandIn, json_reply, stand_in
from tests.conftest import item
from tests.servers import ServerFailed, database_url, worker

pytestmark = pytest.mark.live

PLANTED = "sk-planted-0123456789abcdef"
BROKERS = ["redis", "filesystem"]


def own_redis_database(url: str) -> str:
    """Another database of the same Redis for each test run: two runs on one machine
    must not take each other's tasks from a shared queue."""
    return urlsplit(url)._replace(path=f"/{1 + os.getpid() % 15}").geturl()


def service_env(mode: str, data_dir: Path, **extra: str) -> dict[str, str]:
    if settings.DATABASES["default"]["ENGINE"] != "django.db.backends.postgresql":
        pytest.fail("worker tests share the test database with subprocesses: run `make test`")
    if mode == "redis" and not settings.REDIS_URL:
        pytest.fail("the Redis broker needs REDIS_URL: run `make test`")
    return {
        **os.environ,
        "DATABASE_URL": database_url(
            os.environ["DATABASE_URL"], settings.DATABASES["default"]["NAME"], "checks-worker"
        ),
        "REDIS_URL": own_redis_database(settings.REDIS_URL) if mode == "redis" else "",
        "SECRET_KEY": settings.SECRET_KEY,
        "DEBUG": "0",
        "DATA_DIR": str(data_dir),
        "PLANTED_KEY": PLANTED,
        "WORKER_CONCURRENCY": "8",
        **extra,
    }


def manage(
    env: dict[str, str], *args: str, timeout: float = 90
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=run.BASE_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


@pytest.fixture
def vendor() -> Iterator[StandIn]:
    """An OpenAI stand-in: the planted key is good, any other is refused."""

    def answer(request: Seen) -> Reply:
        if request.header("authorization") != f"Bearer {PLANTED}":
            return json_reply({"error": {"code": "invalid_api_key", "message": "no"}}, 401)
        if request.path == "/v1/models/gpt-missing":
            return json_reply({"error": {"code": "model_not_found", "message": "x"}}, 404)
        if request.path.startswith("/v1/models/"):
            return json_reply({"id": request.path.rsplit("/", 1)[1], "object": "model"})
        return json_reply({"object": "list", "data": [{"id": "gpt-4o-mini"}]})

    with stand_in(answer) as server:
        yield server


def declare(release: Release, name: str, kind: str, text: str, **options: Any) -> Check:
    check = Check.objects.create(release=release, name=name, kind=kind, options=options)
    entry = item(release, text)
    entry.checks = [*entry.checks, name]
    entry.save(update_fields=["checks"])
    return check


def check_env(mode: str, tmp_path: Path) -> dict[str, str]:
    return service_env(mode, tmp_path)


@pytest.mark.parametrize("mode", BROKERS)
def test_it_verifies_a_release_through_a_worker_and_settles_its_items(
    mode: str,
    transactional_db: None,
    release: Release,
    vendor: StandIn,
    tmp_path: Path,
) -> None:
    declare(release, "openai", "openai", "Unit tests pass", base_url=vendor.url,
            secret_env="PLANTED_KEY", models=["gpt-4o-mini"], probe=False)  # fmt: skip
    declare(release, "health", "http", "Unit tests pass", url=f"{vendor.url}/v1/models",
            expect_status=401)  # fmt: skip
    env = service_env(mode, tmp_path)

    try:
        with worker(env, tmp_path) as running:
            verified = manage(env, "verify", release.version, "--json", "--timeout", "60")
            log = running.log_text()
    except ServerFailed as failure:
        pytest.fail(str(failure))

    assert verified.returncode == 0, verified.stderr + log
    rows = __import__("json").loads(verified.stdout)
    assert [(r["name"], r["kind"], r["outcome"], r["reason"]) for r in rows] == [
        ("health", "http", "pass", "ok"),
        ("openai", "openai", "pass", "ok"),
    ]
    assert all(isinstance(r["latency_ms"], int) for r in rows)
    assert item(release, "Unit tests pass").state == ItemState.DONE
    assert PLANTED not in verified.stdout + verified.stderr + log


@pytest.mark.parametrize("mode", BROKERS)
def test_it_exits_1_and_names_what_failed(
    mode: str, transactional_db: None, release: Release, vendor: StandIn, tmp_path: Path
) -> None:
    declare(release, "openai", "openai", "Unit tests pass", base_url=vendor.url,
            secret_env="PLANTED_KEY", models=["gpt-missing"], probe=False)  # fmt: skip
    env = service_env(mode, tmp_path)

    with worker(env, tmp_path) as running:
        verified = manage(env, "verify", release.version, "--timeout", "60")
        log = running.log_text()

    assert verified.returncode == 1, verified.stderr + log
    assert "openai" in verified.stdout and "misconfigured" in verified.stdout
    assert "gpt-missing" in verified.stdout
    assert item(release, "Unit tests pass").state == ItemState.FAILED
    assert PLANTED not in verified.stdout + verified.stderr + log


def test_it_exits_2_and_says_no_worker_took_the_run(
    transactional_db: None, release: Release, vendor: StandIn, tmp_path: Path
) -> None:
    declare(release, "openai", "openai", "Unit tests pass", base_url=vendor.url,
            secret_env="PLANTED_KEY")  # fmt: skip
    env = service_env("filesystem", tmp_path)

    verified = manage(env, "verify", release.version, "--timeout", "1")

    assert verified.returncode == 2
    assert "no worker took the run" in verified.stderr


def test_it_exits_2_for_a_release_without_checks(
    transactional_db: None, release: Release, tmp_path: Path
) -> None:
    verified = manage(service_env("filesystem", tmp_path), "verify", release.version)

    assert verified.returncode == 2
    assert "has no checks" in verified.stderr


@pytest.mark.parametrize("mode", BROKERS)
def test_it_finishes_a_check_whose_worker_was_killed_mid_check(
    mode: str, transactional_db: None, release: Release, tmp_path: Path
) -> None:
    first_seen = threading.Event()

    def answer(_request: Seen) -> Reply:
        if not first_seen.is_set():
            first_seen.set()
            # Long enough for the test to kill the worker that is waiting on it.
            return Reply(body="late", delay=8)
        return json_reply({"status": "ok"})

    with stand_in(answer) as server:
        declare(release, "health", "http", "Unit tests pass", url=server.url)
        env = service_env(mode, tmp_path, CHECKS_ATTEMPT_SECONDS="1", CHECKS_READ_TIMEOUT="20")
        started = subprocess.Popen(
            [sys.executable, "manage.py", "verify", release.version, "--json", "--timeout", "60"],
            cwd=run.BASE_DIR,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            with worker(env, tmp_path / "first") as doomed:
                assert first_seen.wait(30), doomed.log_text()
                doomed.process.send_signal(signal.SIGKILL)
                doomed.process.wait()
            result = CheckResult.objects.get(subject__name="health")
            assert result.state == ResultState.RUNNING
            time.sleep(1.2)  # past the attempt's deadline
            with worker(env, tmp_path / "second"):
                requeued = manage(
                    env, "shell", "-c", "from checks import tasks; print(tasks.requeue_overdue())"
                )
                assert requeued.stdout.split()[-1:] == ["1"], requeued.stderr
                _out, err = started.communicate(timeout=60)
        finally:
            if started.poll() is None:
                started.kill()

    assert started.returncode == 0, err
    result = CheckResult.objects.get(subject__name="health")
    assert (result.state, result.outcome, result.attempt) == (ResultState.DONE, "pass", 2)
    assert item(release, "Unit tests pass").state == ItemState.DONE
