"""The services in subprocesses, for the live, worker, browser and bench runs: the
production commands (deploycheck.run's "web" and "worker"), the web server on a free
loopback port, each stopped when its block ends."""

from __future__ import annotations

import os
import socket
import subprocess
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlencode, urlsplit

import httpx

from deploycheck import run

READY_SECONDS = 30.0
STOP_SECONDS = 10.0


class ServerFailed(Exception):
    """The server exited or never answered; the message ends with its log."""


@dataclass(frozen=True)
class WebServer:
    url: str
    log: Path
    process: subprocess.Popen[bytes]
    # What it was started with: a worker beside it takes the same.
    env: Mapping[str, str]

    def log_tail(self, lines: int = 40) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])

    def cpu_seconds(self) -> float:
        fields = Path(f"/proc/{self.process.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def cookie_header(cookies: Mapping[str, str]) -> str:
    """Cookies as one Cookie header, for a client that is not told them otherwise."""
    return "; ".join(f"{name}={value}" for name, value in cookies.items())


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def database_url(base_url: str, name: str, application_name: str = "") -> str:
    """base_url pointed at another database on the same server; application_name tags
    the server's own connections so that pg_stat_activity can tell them apart."""
    query = urlencode({"application_name": application_name}) if application_name else ""
    return urlsplit(base_url)._replace(path="/" + name, query=query).geturl()


@contextmanager
def web_server(
    env: Mapping[str, str], data_dir: Path, extra_args: Sequence[str] = ()
) -> Iterator[WebServer]:
    # One process unless the caller asks for more: most runs follow one process's log.
    server_env = {"WEB_CONCURRENCY": "1", **env, "HOST": "127.0.0.1", "PORT": str(free_port())}
    log = data_dir / "server.log"
    with log.open("wb") as output:
        process = subprocess.Popen(
            [*run.service_argv("web", server_env), *extra_args],
            cwd=run.BASE_DIR,
            env=server_env,
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    server = WebServer(f"http://127.0.0.1:{server_env['PORT']}", log, process, server_env)
    try:
        _wait_until_ready(server)
        yield server
    finally:
        process.terminate()
        try:
            process.wait(timeout=STOP_SECONDS)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@contextmanager
def serving_the_test_database(
    data_dir: Path,
    extra_args: Sequence[str] = ("--no-access-log",),
    application_name: str = "",
    **env: str,
) -> Iterator[WebServer]:
    """The web service on the test database Django created for this run; `env` adds to
    or overrides what it is started with. A server that does not start fails the test
    with its log."""
    import pytest
    from django.conf import settings

    if settings.DATABASES["default"]["ENGINE"] != "django.db.backends.postgresql":
        # SQLite's test database lives in this process's memory, out of the server's reach.
        pytest.fail(
            "the server subprocess needs PostgreSQL to open the test database: run `make "
            "test` (it sets DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres and "
            "REDIS_URL=redis://127.0.0.1:6379/0)"
        )
    server_env = {
        **os.environ,
        "DATABASE_URL": database_url(
            os.environ["DATABASE_URL"], settings.DATABASES["default"]["NAME"], application_name
        ),
        "SECRET_KEY": settings.SECRET_KEY,
        "DEBUG": "0",
        "ALLOWED_HOSTS": "127.0.0.1",
        "DATA_DIR": str(data_dir),
        **env,
    }
    # The server keeps Django's async-safety checks, whatever this process lifted.
    server_env.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
    try:
        with web_server(server_env, data_dir, extra_args) as running:
            yield running
    except ServerFailed as failure:
        pytest.fail(str(failure))


def _wait_until_ready(server: WebServer) -> None:
    deadline = time.monotonic() + READY_SECONDS
    while True:
        if server.process.poll() is not None:
            raise ServerFailed(
                f"the web server exited with {server.process.returncode}:\n{server.log_tail()}"
            )
        try:
            if httpx.get(f"{server.url}/healthz", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline:
            raise ServerFailed(
                f"the web server did not answer within {READY_SECONDS:.0f} s:\n{server.log_tail()}"
            )
        time.sleep(0.1)


@dataclass(frozen=True)
class Worker:
    log: Path
    process: subprocess.Popen[bytes]

    def log_text(self) -> str:
        return self.log.read_text(errors="replace")


@contextmanager
def worker(env: Mapping[str, str], data_dir: Path) -> Iterator[Worker]:
    """A Celery worker as production runs it, ready to take tasks when the block starts;
    its log goes to `data_dir`."""
    data_dir.mkdir(parents=True, exist_ok=True)
    log = data_dir / "worker.log"
    with log.open("wb") as output:
        process = subprocess.Popen(
            run.service_argv("worker", env),
            cwd=run.BASE_DIR,
            env=run.service_env("worker", env),
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    running = Worker(log, process)
    try:
        deadline = time.monotonic() + READY_SECONDS
        # Celery says "ready." once it consumes from the broker.
        while " ready." not in running.log_text():
            if process.poll() is not None or time.monotonic() > deadline:
                raise ServerFailed(f"the worker did not start:\n{running.log_text()[-3000:]}")
            time.sleep(0.1)
        yield running
    finally:
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=STOP_SECONDS)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
