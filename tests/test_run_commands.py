"""The launcher: one table of production commands, and `make run` working end to end.

The end-to-end test runs `python -m deploycheck.run` as `make run` does, with no
DATABASE_URL or REDIS_URL, so it proves the embedded default (SQLite and a broker that is
a folder) on top of whatever servers the rest of the suite uses.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
import yaml

from deploycheck import run
from tests.checks.standin import Reply, Seen, json_reply, stand_in

ROOT = Path(__file__).resolve().parent.parent
SEED = ROOT / "releases" / "data" / "checklist-produccion.md"
URL_LINE = re.compile(r"deploycheck running at (http://127\.0\.0\.1:\d+/)")

# Everything settings reads, so the launcher sees a machine with nothing configured.
SETTINGS_VARIABLES = (
    "DEBUG", "DEMO_MODE", "SECRET_KEY", "DATA_DIR", "DATABASE_URL", "REDIS_URL", "PORT",
    "HOST", "ALLOWED_HOSTS", "CSRF_TRUSTED_ORIGINS", "LANGUAGE_CODE", "TIME_ZONE",
    "LOG_LEVEL", "DB_CONN_MAX_AGE", "DB_POOL_SIZE", "SECURE_COOKIES", "LIVE_POLL_SECONDS",
    "LIVE_KEEPALIVE_SECONDS", "CHECKLIST_MAX_BYTES", "CELERY_TASK_ALWAYS_EAGER", "STATIC_MANIFEST",
    "CHECKLIST_MAX_ITEMS", "CHECKS_CONNECT_TIMEOUT", "CHECKS_READ_TIMEOUT",
    "CHECKS_ATTEMPT_SECONDS", "CHECKS_INTERVAL_SECONDS", "CHECKS_MAX_AGE", "CHECKS_MAX_ATTEMPTS",
    "CHECKS_RETRY_BASE_SECONDS", "WORKER_CONCURRENCY", "PIPELINE_REQUESTS_PER_MINUTE",
    "WEB_CONCURRENCY",
)  # fmt: skip


# --- one table of commands -------------------------------------------------------------


def test_compose_runs_each_service_through_the_launcher() -> None:
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    for name in ("web", "worker", "beat"):
        assert compose["services"][name]["command"] == ["python", "-m", "deploycheck.run", name]
    assert set(run.SERVICES) == {"web", "worker", "beat"}


def test_dockerfile_default_command_is_the_web_service() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert 'CMD ["python", "-m", "deploycheck.run", "web"]' in dockerfile


def test_service_argv_is_the_production_command(tmp_path: Path) -> None:
    env = {"HOST": "0.0.0.0", "PORT": "8123", "DATA_DIR": str(tmp_path)}
    py = sys.executable
    assert run.service_argv("web", env) == [
        py, "-m", "uvicorn", "deploycheck.asgi:application", "--host", "0.0.0.0",
        "--port", "8123", "--workers", str(os.cpu_count() or 1),
        "--proxy-headers", "--timeout-graceful-shutdown", "3",
    ]  # fmt: skip
    assert run.service_argv("worker", env) == [
        py, "-m", "celery", "-A", "deploycheck", "worker", "--loglevel=INFO",
        "--pool=threads", "--concurrency=64",
    ]  # fmt: skip
    assert run.service_argv("beat", env) == [
        py, "-m", "celery", "-A", "deploycheck", "beat", "--loglevel=INFO",
        f"--schedule={tmp_path}/celerybeat-schedule",
    ]  # fmt: skip


def test_service_argv_defaults_to_loopback_port_8000() -> None:
    argv = run.service_argv("web", {})
    assert argv[argv.index("--host") + 1] == "127.0.0.1"
    assert argv[argv.index("--port") + 1] == "8000"
    assert run.service_argv("beat", {})[-1] == f"--schedule={ROOT / 'var'}/celerybeat-schedule"


@pytest.mark.parametrize("name", ["web", "worker", "beat"])
def test_launcher_execs_the_named_service(
    name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[tuple[str, list[str]]] = []
    environments: list[dict[str, str]] = []

    def execve(path: str, argv: list[str], env: dict[str, str]) -> None:
        calls.append((path, list(argv)))
        environments.append(env)

    monkeypatch.setattr(os, "execve", execve)
    monkeypatch.delenv("DB_CONN_MAX_AGE", raising=False)
    monkeypatch.delenv("DB_POOL_SIZE", raising=False)
    monkeypatch.setenv("DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("PORT", "8124")
    monkeypatch.setenv("WORKER_CONCURRENCY", "5")
    assert run.main([name]) == 0
    expected = run.service_argv(name, dict(os.environ))
    assert calls == [(sys.executable, expected)]
    assert expected[1:] == [
        part.format(
            host="127.0.0.1",
            port=8124,
            data_dir=tmp_path / "data",
            worker_concurrency=5,
            web_concurrency=run.web_concurrency({}),
        )
        for part in run.SERVICES[name]
    ]
    assert (tmp_path / "data").is_dir()
    # The worker pools its connections even where the web process is not told to.
    assert environments[0].get("DB_POOL_SIZE") == ("10" if name == "worker" else None)
    assert "DB_CONN_MAX_AGE" not in environments[0]


def test_launcher_rejects_unknown_arguments(capsys: pytest.CaptureFixture[str]) -> None:
    assert run.main(["flower"]) == 2
    assert "usage: python -m deploycheck.run [web|worker|beat]" in capsys.readouterr().err


def test_bad_worker_concurrency_is_named() -> None:
    with pytest.raises(run.LaunchError, match="WORKER_CONCURRENCY"):
        run.service_argv("worker", {"WORKER_CONCURRENCY": "many"})


def test_bad_port_is_named() -> None:
    with pytest.raises(run.LaunchError, match="PORT='http' is not a TCP port"):
        run.service_argv("web", {"PORT": "http"})


def test_a_child_that_dies_stops_the_others_and_is_named(
    capsys: pytest.CaptureFixture[str],
) -> None:
    children = run.start(
        {
            "sleeper": [sys.executable, "-c", "import time; time.sleep(60)"],
            "crasher": [sys.executable, "-c", "import time; time.sleep(0.3); raise SystemExit(3)"],
        },
        os.environ,
    )
    started = time.monotonic()
    assert run.supervise(children, run.StopRequested()) == 3
    assert time.monotonic() - started < 10
    assert children["sleeper"].poll() is not None
    assert "crasher exited unexpectedly (exit code 3)" in capsys.readouterr().err


# --- make run, end to end --------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def descendants(pid: int) -> set[int]:
    """Every live process below `pid` (children and grandchildren), read from /proc."""
    parents: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # The command name is in parentheses and may hold spaces; the ppid follows it.
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        parents.setdefault(ppid, []).append(int(entry.name))
    found: set[int] = set()
    todo = [pid]
    while todo:
        for child in parents.get(todo.pop(), []):
            found.add(child)
            todo.append(child)
    return found


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"  # a zombie has exited; only its exit status is left


def launcher_env(data_dir: Path, port: int) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in SETTINGS_VARIABLES}
    env.update(DATA_DIR=str(data_dir), PORT=str(port))
    return env


class Launcher:
    def __init__(self, env: dict[str, str], log: Path) -> None:
        self.env = env
        self.log = log
        self.output = log.open("wb")
        # Its own session, so that cleanup after a failure can reach every process it started.
        self.process = subprocess.Popen(
            [sys.executable, "-m", "deploycheck.run"],
            cwd=ROOT,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=self.output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def text(self) -> str:
        return self.log.read_text(errors="replace")

    def wait_for_url(self, timeout: float = 120) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            match = URL_LINE.search(self.text())
            if match:
                return match.group(1)
            if self.process.poll() is not None:
                pytest.fail(f"launcher exited ({self.process.returncode}):\n{self.text()[-5000:]}")
            time.sleep(0.2)
        pytest.fail(f"no URL printed within {timeout:.0f} s:\n{self.text()[-5000:]}")

    def stop(self, signum: int) -> None:
        """Signal the launcher alone and check it, and everything below it, is gone."""
        below = descendants(self.process.pid)
        assert len(below) >= 3, f"expected web, worker and beat below the launcher: {below}"
        self.process.send_signal(signum)
        try:
            code = self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            pytest.fail(f"launcher still running 15 s after {signum!r}:\n{self.text()[-5000:]}")
        assert code == 0, self.text()[-5000:]
        # Grandchildren (the worker's pool) are reaped by their own parent; allow a moment.
        deadline = time.monotonic() + 5
        while any(alive(pid) for pid in below) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not [pid for pid in below if alive(pid)], "processes outlived the launcher"

    def cleanup(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()
        self.output.close()


@pytest.fixture
def launch(tmp_path: Path) -> Iterator[Callable[[], Launcher]]:
    launchers: list[Launcher] = []
    env = launcher_env(tmp_path / "data", free_port())

    def factory() -> Launcher:
        launcher = Launcher(env, tmp_path / f"launcher-{len(launchers)}.log")
        launchers.append(launcher)
        return launcher

    yield factory
    for launcher in launchers:
        launcher.cleanup()


def log_in(client: httpx.Client, username: str, password: str) -> httpx.Response:
    page = client.get("/accounts/login/")
    assert page.status_code == 200
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text)
    assert token, "login form has no CSRF token"
    assert client.cookies.get("csrftoken")
    return client.post(
        "/accounts/login/",
        data={"username": username, "password": password, "csrfmiddlewaretoken": token.group(1)},
    )


def celery_ping(env: dict[str, str], timeout: float = 60) -> str:
    """Ask the running worker for a pong; it may still be starting, so ask again."""
    deadline = time.monotonic() + timeout
    output = ""
    while time.monotonic() < deadline:
        result = subprocess.run(
            [sys.executable, "-m", "celery", "-A", "deploycheck", "inspect", "ping",
             "--timeout", "10"],
            cwd=ROOT, env=env, capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip
        output = result.stdout + result.stderr
        if result.returncode == 0 and "pong" in result.stdout:
            return result.stdout
        time.sleep(1)
    pytest.fail(f"no worker answered ping:\n{output}")


def manage(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=90, check=False,
    )  # fmt: skip


def checks_are_loaded_and_verified_as_the_readme_says(env: dict[str, str], folder: Path) -> None:
    """After make run, the README's commands work as typed: no DEBUG or SECRET_KEY is
    set here, the development instance's own choice is used."""
    assert "DEBUG" not in env and "SECRET_KEY" not in env
    imported = manage(env, "import_checklist", str(SEED), "--name", "Go-live")
    assert imported.returncode == 0, imported.stderr
    assert "66 items" in imported.stdout

    def answer(_request: Seen) -> Reply:
        return json_reply({"status": "ok"})

    with stand_in(answer) as app:
        checks_file = folder / "checks.toml"
        checks_file.write_text(
            "[[check]]\n"
            'name = "health"\nkind = "http"\n'
            f'url = "{app.url}/health"\n'
            'conditions = ["[STATUS] == 200", "[BODY].status == ok"]\n'
            'item = "Verificar que la aplicación responde correctamente"\n'
        )
        loaded = manage(env, "load_checks", str(checks_file), "--release", "v1.0.0")
        assert loaded.returncode == 0, loaded.stderr
        verified = manage(env, "verify", "v1.0.0", "--json", "--timeout", "60")
    assert verified.returncode == 0, verified.stderr
    [row] = json.loads(verified.stdout)
    assert (row["name"], row["outcome"], row["reason"]) == ("health", "pass", "ok")


@pytest.mark.live
def test_make_run_serves_logs_in_runs_tasks_and_stops_cleanly(
    launch: Callable[[], Launcher],
) -> None:
    first = launch()
    url = first.wait_for_url()
    banner = first.text()
    for username in ("devops", "backend", "frontend", "qa", "po", "support", "admin"):
        assert re.search(rf"^\s+{username}\s+.+\s+demo$", banner, re.MULTILINE), username

    with httpx.Client(base_url=url, timeout=10) as client:
        response = log_in(client, "qa", "demo")
        assert response.status_code == 302, response.text[:2000]
        assert response.headers["location"] == "/"
        assert client.get("/").status_code == 200

    # DEBUG as the launcher set it for its children: without it settings demand a SECRET_KEY.
    assert "pong" in celery_ping({**first.env, "DEBUG": "1"})
    checks_are_loaded_and_verified_as_the_readme_says(first.env, first.log.parent)
    first.stop(signal.SIGINT)

    # A second run on the same data folder (migrate and load_demo again) is as good,
    # and SIGTERM, the signal a service manager sends, stops it as cleanly.
    second = launch()
    assert second.wait_for_url() == url
    with httpx.Client(base_url=url, timeout=10) as client:
        assert log_in(client, "qa", "demo").status_code == 302
    second.stop(signal.SIGTERM)
