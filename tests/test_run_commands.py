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
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
import yaml

from deploycheck import run
from tests.checks.standin import Reply, Seen, json_reply, stand_in
from tests.servers import worker

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
        py, "-m", "celery", "-A", "deploycheck", "--quiet", "worker", "--loglevel=INFO",
        "--pool=threads", "--concurrency=64",
    ]  # fmt: skip
    assert run.service_argv("beat", env) == [
        py, "-m", "celery", "-A", "deploycheck", "--quiet", "beat", "--loglevel=INFO",
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


@pytest.mark.parametrize(
    ("given", "site_url"),
    [
        ({"PORT": "8124"}, "http://127.0.0.1:8124"),
        ({"PORT": "8124", "HOST": "::"}, "http://[::1]:8124"),
        ({"PORT": "8124", "SITE_URL": "https://deploy.example.com"}, "https://deploy.example.com"),
    ],
)
def test_make_run_links_notifications_to_the_port_it_serves(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, given: dict[str, str], site_url: str
) -> None:
    for name in ("PORT", "HOST", "SITE_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("DATA_DIR", str(tmp_path))
    for name, value in given.items():
        monkeypatch.setenv(name, value)

    env = run.development_env()
    run.remember_development_env(env)
    recalled: dict[str, str] = {"DATA_DIR": str(tmp_path)}
    run.recall_development_env(recalled)

    assert env["SITE_URL"] == recalled["SITE_URL"] == site_url


def test_bad_port_is_named() -> None:
    with pytest.raises(run.LaunchError, match="PORT='http' is not a TCP port"):
        run.service_argv("web", {"PORT": "http"})


def test_a_web_server_that_exits_stops_the_others_and_is_named(
    capsys: pytest.CaptureFixture[str],
) -> None:
    children = run.start(
        {
            "worker": [sys.executable, "-c", "import time; time.sleep(60)"],
            "web": [sys.executable, "-c", "import time; time.sleep(0.3); raise SystemExit(3)"],
        },
        os.environ,
    )
    started = time.monotonic()
    assert run.supervise(children, run.StopRequested()) == 3
    assert time.monotonic() - started < 10
    assert children["worker"].process.poll() is not None
    assert "web exited with status 3; stopping the others" in capsys.readouterr().err


def test_a_worker_that_exits_is_restarted_with_growing_pauses_while_web_runs_on(
    capsys: pytest.CaptureFixture[str],
) -> None:
    children = run.start(
        {
            "web": [sys.executable, "-c", "import time; time.sleep(60)"],
            "worker": [sys.executable, "-c", "raise SystemExit(3)"],
        },
        os.environ,
    )
    web = children["web"].process
    stop_requested = run.StopRequested()
    # Long enough for two restarts: after 1 s, then after 2 s.
    timer = threading.Timer(5, stop_requested, args=(signal.SIGTERM, None))
    timer.start()
    try:
        assert run.supervise(children, stop_requested) == 0
    finally:
        timer.cancel()
    said = capsys.readouterr().err
    assert re.findall(r"worker exited with status 3; restarting in (\d+) s", said)[:3] == [
        "1", "2", "4",
    ]  # fmt: skip
    assert "stopping the others" not in said
    assert children["web"].process is web
    assert web.poll() is not None  # stopped with the launcher, not before


def test_the_pause_doubles_up_to_thirty_seconds_and_starts_over_after_a_healthy_minute() -> None:
    child = run.Child("worker", [sys.executable, "-c", "pass"], os.environ)
    child.process.wait()
    now = child.started
    assert [child.schedule_restart(now) for _ in range(7)] == [1, 2, 4, 8, 16, 30, 30]
    # Started again, it ran a healthy minute before it exited.
    child.started = now - run.HEALTHY_SECONDS
    assert child.schedule_restart(now) == 1
    child.started = now
    assert child.schedule_restart(now) == 2


def test_a_stop_request_is_not_mistaken_for_a_worker_to_restart(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Ctrl-C reaches the whole terminal's process group: the worker exits with the
    launcher, and is not started again while everything stops."""
    children = run.start({"worker": [sys.executable, "-c", "raise SystemExit(1)"]}, os.environ)
    children["worker"].process.wait()
    stop_requested = run.StopRequested()
    stop_requested(signal.SIGINT, None)
    assert run.tend(children, stop_requested) is None
    assert children["worker"].restart_at is None
    assert "restarting" not in capsys.readouterr().err


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


def service_pid(launcher_pid: int, word: str) -> int | None:
    """The live process below the launcher whose command line holds `word` as one of its
    arguments: "uvicorn" for web, "worker", "beat"."""
    for pid in descendants(launcher_pid):
        try:
            argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if word.encode() in argv and alive(pid):
            return pid
    return None


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
    # The logins come once the worker is ready, after its start-up lines, and Celery's
    # banners (its settings, its list of tasks) no longer push them off the screen.
    assert banner.index("ready to run") < banner.index("deploycheck running at")
    assert "[tasks]" not in banner
    assert "celery beat v" not in banner

    with httpx.Client(base_url=url, timeout=10) as client:
        response = log_in(client, "qa", "demo")
        assert response.status_code == 302, response.text[:2000]
        assert response.headers["location"] == "/"
        assert client.get("/").status_code == 200

    # DEBUG as the launcher set it for its children: without it settings demand a SECRET_KEY.
    assert "pong" in celery_ping({**first.env, "DEBUG": "1"})
    checks_are_loaded_and_verified_as_the_readme_says(first.env, first.log.parent)
    # Its notifications link to where it runs, for the commands typed afterwards too.
    site = manage(
        first.env,
        "shell",
        "--no-imports",
        "-c",
        "from django.conf import settings; print(settings.SITE_URL)",
    )
    assert site.stdout.strip() == url.rstrip("/"), site.stderr
    # Tasks ran, and beat sent its periodic ones, without a line each to push the
    # logins off the screen.
    routine = re.search(
        r"Sending due task|Task \S+\[[0-9a-f-]+\] (?:received|succeeded)", first.text()
    )
    assert routine is None, routine
    # On one machine the pages come before the worker's batch work.
    web = service_pid(first.process.pid, "uvicorn")
    worker = service_pid(first.process.pid, "worker")
    assert web and worker
    assert os.getpriority(os.PRIO_PROCESS, worker) == os.getpriority(os.PRIO_PROCESS, web) + 10
    first.stop(signal.SIGINT)

    # A second run on the same data folder (migrate and load_demo again) is as good,
    # and SIGTERM, the signal a service manager sends, stops it as cleanly.
    second = launch()
    assert second.wait_for_url() == url
    with httpx.Client(base_url=url, timeout=10) as client:
        assert log_in(client, "qa", "demo").status_code == 302
    second.stop(signal.SIGTERM)


@pytest.mark.live
def test_make_run_restarts_a_worker_that_dies_while_the_web_server_answers(
    launch: Callable[[], Launcher],
) -> None:
    launcher = launch()
    url = launcher.wait_for_url()
    web = service_pid(launcher.process.pid, "uvicorn")
    worker = service_pid(launcher.process.pid, "worker")
    assert web and worker, launcher.text()[-5000:]
    os.kill(worker, signal.SIGKILL)
    deadline = time.monotonic() + 60
    with httpx.Client(base_url=url, timeout=10) as client:
        while service_pid(launcher.process.pid, "worker") in (None, worker):
            assert client.get("/healthz").status_code == 200
            assert time.monotonic() < deadline, launcher.text()[-5000:]
            time.sleep(0.2)
        assert client.get("/healthz").status_code == 200
    assert "worker was stopped by SIGKILL; restarting in 1 s" in launcher.text()
    assert service_pid(launcher.process.pid, "uvicorn") == web
    # The new worker takes work from the same broker.
    assert "pong" in celery_ping({**launcher.env, "DEBUG": "1"})
    launcher.stop(signal.SIGINT)


@pytest.mark.live
def test_a_worker_writes_a_secret_in_its_log_redacted(tmp_path: Path) -> None:
    """A message for a task the worker does not know is logged whole, arguments and all;
    a vendor key or a bearer token among them must not reach the log."""
    env = {**launcher_env(tmp_path / "data", free_port()), "DEBUG": "1"}
    secret = "sk-planted-0123456789abcdef"
    send = (
        "from deploycheck.celery import app\n"
        "app.send_task('checks.no_such_task', args=["
        f"'https://vendor.example/v1/models?key={secret}', 'Authorization: Bearer {secret}'])\n"
    )
    with worker(env, tmp_path / "data") as running:
        sent = subprocess.run(
            [sys.executable, "-c", send],
            cwd=ROOT, env=env, capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip
        assert sent.returncode == 0, sent.stderr
        deadline = time.monotonic() + 30
        while "unregistered task" not in running.log_text():
            assert time.monotonic() < deadline, running.log_text()[-3000:]
            time.sleep(0.1)
        time.sleep(0.5)  # the rest of the entry: the body, the headers, the traceback
    logged = running.log_text()
    assert secret not in logged
    assert "?key=[redacted]" in logged
    assert "Bearer [redacted]" in logged
