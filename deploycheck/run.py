"""Start deploycheck: `python -m deploycheck.run [web|worker|beat]`.

With no argument (what `make run` does) it prepares a development instance and runs the
web server, the Celery worker and beat together until Ctrl-C (SIGINT) or SIGTERM. A
worker or beat that exits is started again after a pause that doubles from 1 s to 30 s
and starts over once it has run for a minute; if the web server exits, everything stops,
since what stopped it (a port taken, a setting refused) would stop it again. With a
service name it replaces itself with that one service, which is how docker-compose runs
each container, restarting being the container's business there. Both paths build their
command lines from SERVICES, so what a developer runs is what production runs.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, MutableMapping, Sequence
from pathlib import Path
from types import FrameType

from deploycheck.celery import READY_FILE_VARIABLE

BASE_DIR = Path(__file__).resolve().parent.parent

# The production commands, argv after the interpreter. Placeholders are filled from the
# environment by service_argv(); `-m` keeps every service on the interpreter (and so
# the virtualenv) that started the launcher, whatever is on PATH.
SERVICES: dict[str, tuple[str, ...]] = {
    # One process per core (WEB_CONCURRENCY): the GIL keeps a process on one core.
    "web": (
        "-m", "uvicorn", "deploycheck.asgi:application",
        "--host", "{host}", "--port", "{port}", "--workers", "{web_concurrency}",
        "--proxy-headers", "--timeout-graceful-shutdown", "3",
    ),
    # Threads: checks wait on the network, so one run's checks go side by side. --quiet
    # drops Celery's start-up banner; its log lines, "ready." among them, stay.
    "worker": (
        "-m", "celery", "-A", "deploycheck", "--quiet", "worker", "--loglevel=INFO",
        "--pool=threads", "--concurrency={worker_concurrency}",
    ),
    "beat": (
        "-m", "celery", "-A", "deploycheck", "--quiet", "beat", "--loglevel=INFO",
        "--schedule={data_dir}/celerybeat-schedule",
    ),
}  # fmt: skip

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8000
DEFAULT_WORKER_CONCURRENCY = 64
WORKER_POOL_SIZE = 10
READY_TIMEOUT = 30.0
# After the web server answers, how long the logins wait for the worker to say it is ready.
WORKER_READY_TIMEOUT = 60.0
STOP_TIMEOUT = 10.0
# The services started again when they exit, and the pause before each start.
RESTARTED = frozenset({"worker", "beat"})
RESTART_FIRST_DELAY = 1.0
RESTART_MAX_DELAY = 30.0
# A service that ran this long before exiting is restarted after the first delay again.
HEALTHY_SECONDS = 60.0

# What load_demo creates when DEMO_MODE is on; shown so a newcomer can log in at once.
DEMO_LOGINS: tuple[tuple[str, str], ...] = (
    ("devops", "DevOps Lead"),
    ("backend", "Backend Lead"),
    ("frontend", "Frontend Lead"),
    ("qa", "QA Lead"),
    ("po", "Product Owner"),
    ("support", "Support (read-only)"),
    ("admin", "Admin (staff, superuser)"),
)
DEMO_PASSWORD = "demo"


class LaunchError(Exception):
    """A problem the user can fix; main() prints it without a traceback."""


def data_dir(env: Mapping[str, str]) -> Path:
    # Same default as settings.DATA_DIR, made absolute because children may run elsewhere.
    return Path(env.get("DATA_DIR", BASE_DIR / "var")).resolve()


def port(env: Mapping[str, str]) -> int:
    raw = env.get("PORT", "").strip() or str(DEFAULT_PORT)
    if not raw.isdigit() or not 0 < int(raw) < 65536:
        raise LaunchError(f"PORT={raw!r} is not a TCP port number (1-65535)")
    return int(raw)


def host(env: Mapping[str, str]) -> str:
    return env.get("HOST", "").strip() or DEFAULT_HOST


def web_concurrency(env: Mapping[str, str]) -> int:
    raw = env.get("WEB_CONCURRENCY", "").strip() or str(os.cpu_count() or 1)
    if not raw.isdigit() or not 0 < int(raw) <= 256:
        raise LaunchError(f"WEB_CONCURRENCY={raw!r} is not a number of processes (1-256)")
    return int(raw)


def worker_concurrency(env: Mapping[str, str]) -> int:
    raw = env.get("WORKER_CONCURRENCY", "").strip() or str(DEFAULT_WORKER_CONCURRENCY)
    if not raw.isdigit() or not 0 < int(raw) <= 1000:
        raise LaunchError(f"WORKER_CONCURRENCY={raw!r} is not a number of threads (1-1000)")
    return int(raw)


def service_argv(name: str, env: Mapping[str, str]) -> list[str]:
    """The full command line of one service, as run under the given environment."""
    values = {
        "host": host(env),
        "port": port(env),
        "data_dir": data_dir(env),
        "worker_concurrency": worker_concurrency(env),
        "web_concurrency": web_concurrency(env),
    }
    return [sys.executable, *(part.format(**values) for part in SERVICES[name])]


def service_env(name: str, env: Mapping[str, str]) -> dict[str, str]:
    """The environment one service runs with. The worker pools its database connections
    like the web process: a thread holds one only while it reads or records a result,
    never while its check waits on a vendor, so a pool of ten serves all its threads."""
    chosen = dict(env)
    if name == "worker" and not (chosen.get("DB_POOL_SIZE") or chosen.get("DB_CONN_MAX_AGE")):
        chosen["DB_POOL_SIZE"] = str(WORKER_POOL_SIZE)
    return chosen


def exec_service(name: str) -> None:
    env = service_env(name, os.environ)
    # Beat keeps its schedule in DATA_DIR; settings only creates it for SQLite.
    data_dir(env).mkdir(parents=True, exist_ok=True)
    argv = service_argv(name, env)
    sys.stdout.flush()
    # exec rather than a child: the container's stop signal reaches the service itself.
    os.execve(argv[0], argv, env)


class StopRequested:
    """Turns SIGINT/SIGTERM into a flag that the supervising loop checks."""

    def __init__(self) -> None:
        self.signal: int | None = None

    def __call__(self, signum: int, frame: FrameType | None) -> None:
        self.signal = signum

    def install(self) -> None:
        signal.signal(signal.SIGINT, self)
        signal.signal(signal.SIGTERM, self)

    def __bool__(self) -> bool:
        return self.signal is not None


def local_url(env: Mapping[str, str]) -> str:
    """Where this machine reaches the server the launcher starts."""
    address = probe_address(host(env))
    return f"http://{f'[{address}]' if ':' in address else address}:{port(env)}"


def development_env() -> dict[str, str]:
    env = dict(os.environ)
    env.setdefault("DEBUG", "1")
    # The links notifications carry lead to this server, whatever PORT it was given.
    env.setdefault("SITE_URL", local_url(env))
    env.setdefault("DEMO_MODE", "1")
    # One web process is plenty for a demo, and keeps its log in one place.
    env.setdefault("WEB_CONCURRENCY", "1")
    env["DATA_DIR"] = str(data_dir(env))
    # Log lines from the children show up as they happen even when output is a file.
    env.setdefault("PYTHONUNBUFFERED", "1")
    return env


# What make run chose, kept in DATA_DIR so that manage.py commands typed afterwards
# (import_checklist, load_checks, verify) run against the same development instance.
DEVELOPMENT_ENV_FILE = "development.env"
# Where the worker make run starts notes that it is ready (deploycheck.celery).
WORKER_READY_FILE = "worker.ready"
REMEMBERED = ("DEBUG", "DEMO_MODE", "SITE_URL")


def remember_development_env(env: Mapping[str, str]) -> None:
    lines = [f"{name}={env[name]}" for name in REMEMBERED if name in env]
    (data_dir(env) / DEVELOPMENT_ENV_FILE).write_text("\n".join(lines) + "\n")


def recall_development_env(environ: MutableMapping[str, str]) -> None:
    """Defaults for manage.py from what make run chose, when it ran here; what the
    environment says wins. A production DATA_DIR never holds the file, so a server set
    up without make run still refuses to start without SECRET_KEY."""
    remembered = data_dir(environ) / DEVELOPMENT_ENV_FILE
    if not remembered.is_file():
        return
    for line in remembered.read_text().splitlines():
        name, _equals, value = line.partition("=")
        if name in REMEMBERED:
            environ.setdefault(name, value)


def prepare(env: dict[str, str], stop_requested: StopRequested) -> bool:
    """Create the data folder, migrate and load the demo; return whether DEMO_MODE is on.
    The broker makes its own folders (deploycheck.broker)."""
    # Read settings in this process too, so a bad variable fails here with its name
    # instead of in three children at once.
    os.environ.update(env)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "deploycheck.settings")
    from django.conf import settings
    from django.core.exceptions import ImproperlyConfigured

    try:
        Path(settings.DATA_DIR).mkdir(parents=True, exist_ok=True)
        demo_mode = bool(settings.DEMO_MODE)
    except ImproperlyConfigured as exc:
        raise LaunchError(str(exc)) from None
    remember_development_env(env)

    manage = [sys.executable, str(BASE_DIR / "manage.py")]
    for command in (["migrate", "--noinput"], ["load_demo"]):
        print(f"deploycheck: manage.py {' '.join(command)}", flush=True)
        result = subprocess.run([*manage, *command], env=env, cwd=BASE_DIR, check=False)
        if stop_requested:
            break
        if result.returncode != 0:
            raise LaunchError(f"manage.py {command[0]} failed (exit code {result.returncode})")
    return demo_mode


def port_answers(address: str, number: int) -> bool:
    try:
        with socket.create_connection((address, number), timeout=0.5):
            return True
    except OSError:
        return False


def probe_address(bind_host: str) -> str:
    # A wildcard bind is reachable on loopback; connecting to the wildcard itself is not portable.
    return {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}.get(bind_host, bind_host)


class Child:
    """One service under the launcher, with what it takes to start it again."""

    def __init__(self, name: str, argv: Sequence[str], env: Mapping[str, str]) -> None:
        self.name = name
        self.argv = list(argv)
        self.env = dict(env)
        self.next_delay = RESTART_FIRST_DELAY
        self.spawn()

    def spawn(self) -> None:
        self.process = subprocess.Popen(self.argv, env=self.env, cwd=BASE_DIR)
        self.started = time.monotonic()
        self.restart_at: float | None = None

    def schedule_restart(self, now: float) -> float:
        """Plan the next start of a child that exited at `now`; return the pause."""
        if now - self.started >= HEALTHY_SECONDS:
            self.next_delay = RESTART_FIRST_DELAY
        delay = self.next_delay
        self.next_delay = min(delay * 2, RESTART_MAX_DELAY)
        self.restart_at = now + delay
        return delay


def start(commands: Mapping[str, Sequence[str]], env: Mapping[str, str]) -> dict[str, Child]:
    return {name: Child(name, argv, service_env(name, env)) for name, argv in commands.items()}


def exit_reason(code: int) -> str:
    if code >= 0:
        return f"exited with status {code}"
    try:
        return f"was stopped by {signal.Signals(-code).name}"
    except ValueError:
        return f"was stopped by signal {-code}"


def stop(children: Mapping[str, Child], timeout: float = STOP_TIMEOUT) -> None:
    """Terminate every child, give them `timeout` seconds together, then kill the rest."""
    for child in children.values():
        if child.process.poll() is None:
            child.process.terminate()
    deadline = time.monotonic() + timeout
    for name, child in children.items():
        try:
            child.process.wait(timeout=max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            print(
                f"deploycheck: {name} did not stop within {timeout:.0f} s; killing it", flush=True
            )
            child.process.kill()
            child.process.wait()


def tend(children: Mapping[str, Child], stop_requested: StopRequested) -> int | None:
    """Start again the children due for it; None while all is well, or the exit status
    for the launcher when a child that is not restarted has exited."""
    now = time.monotonic()
    for child in children.values():
        if stop_requested:
            return None  # a Ctrl-C reaches every child too: their exits are expected
        if child.restart_at is not None:
            if now >= child.restart_at:
                child.spawn()
            continue
        code = child.process.poll()
        if code is None:
            continue
        if child.name not in RESTARTED:
            print(
                f"deploycheck: {child.name} {exit_reason(code)}; stopping the others",
                file=sys.stderr,
                flush=True,
            )
            # A child stopped by a signal has a negative code; the shell wants 1-255.
            return code if code > 0 else 1
        delay = child.schedule_restart(now)
        print(
            f"deploycheck: {child.name} {exit_reason(code)}; restarting in {delay:g} s",
            file=sys.stderr,
            flush=True,
        )
    return None


def web_is_up(url: str) -> bool:
    """Whether the web server answers `url` without a server error. A refusal such as
    400 for a host name left out of ALLOWED_HOSTS still shows the server is up."""
    # Here, not at the top: manage.py imports this module for its environment, and
    # every command (a deploy job's `verify` first) would start slower for it.
    import httpx

    try:
        return httpx.get(url, timeout=2, trust_env=False).status_code < 500
    except httpx.HTTPError:
        return False


def worker_is_ready(ready_file: Path, worker: Child) -> bool:
    # The process id tells this worker's note from one an earlier worker left.
    try:
        return worker.restart_at is None and ready_file.read_text() == str(worker.process.pid)
    except OSError:
        return False


class Startup:
    """Calls `on_ready` once the web server answers `health_url` and the worker has noted
    in `ready_file` that it takes tasks, so that the URL and the logins come after every
    start-up line. A worker not ready a minute after the web server is named instead of
    holding the logins back; a web server not up within READY_TIMEOUT stops everything."""

    def __init__(
        self, health_url: str, ready_file: Path, on_ready: Callable[[str | None], None]
    ) -> None:
        self.health_url = health_url
        self.ready_file = ready_file
        self.on_ready = on_ready
        self.began = time.monotonic()
        self.web_up_at: float | None = None
        self.done = False

    def poll(self, children: Mapping[str, Child]) -> int | None:
        """None while starting or started; an exit status if the web server never came up."""
        if self.done:
            return None
        now = time.monotonic()
        if self.web_up_at is None:
            if web_is_up(self.health_url):
                self.web_up_at = now
            elif now - self.began > READY_TIMEOUT:
                print(
                    f"deploycheck: web did not answer {self.health_url} within "
                    f"{READY_TIMEOUT:.0f} s; stopping",
                    file=sys.stderr,
                    flush=True,
                )
                return 1
            return None
        if worker_is_ready(self.ready_file, children["worker"]):
            self.done = True
            self.on_ready(None)
        elif now - self.web_up_at > WORKER_READY_TIMEOUT:
            self.done = True
            self.on_ready(
                f"The worker is not ready after {WORKER_READY_TIMEOUT:.0f} s (see its lines "
                "above): checks wait for it."
            )
        return None


def supervise(
    children: Mapping[str, Child],
    stop_requested: StopRequested,
    startup: Startup | None = None,
) -> int:
    """Run until a signal (exit 0) or until a child that is not restarted exits (its
    status, naming it), restarting the others; then stop every child."""
    try:
        while not stop_requested:
            code = tend(children, stop_requested)
            if code is None and startup:
                code = startup.poll(children)
            if code is not None:
                return code
            time.sleep(0.1)
        return 0
    finally:
        stop(children)


def banner(url: str, demo_mode: bool, note: str | None = None) -> None:
    lines = ["", f"deploycheck running at {url}", ""]
    if demo_mode:
        width = max(len(user) for user, _ in DEMO_LOGINS)
        lines.append(f"  {'username'.ljust(width)}  {'role'.ljust(26)}  password")
        lines += [
            f"  {user.ljust(width)}  {role.ljust(26)}  {DEMO_PASSWORD}"
            for user, role in DEMO_LOGINS
        ]
    else:
        lines.append("  DEMO_MODE is off: create a login with `python manage.py createsuperuser`.")
    if note:
        lines += ["", note]
    lines += ["", "Press Ctrl-C to stop.", ""]
    print("\n".join(lines), flush=True)


def run_all() -> int:
    stop_requested = StopRequested()
    # Installed first so that Ctrl-C during migrate ends the launcher cleanly, not with a traceback.
    stop_requested.install()
    env = development_env()
    bind_host, bind_port = host(env), port(env)
    address = probe_address(bind_host)
    # Otherwise the readiness probe could greet someone else's server and report success.
    if port_answers(address, bind_port):
        raise LaunchError(
            f"port {bind_port} on {address} is already in use; set PORT to another one"
        )
    demo_mode = prepare(env, stop_requested)
    if stop_requested:
        print("deploycheck: stopped", flush=True)
        return 0
    ready_file = data_dir(env) / WORKER_READY_FILE
    ready_file.unlink(missing_ok=True)
    env[READY_FILE_VARIABLE] = str(ready_file)
    children = start({name: service_argv(name, env) for name in SERVICES}, env)
    url = f"{local_url(env)}/"
    startup = Startup(f"{url}healthz", ready_file, lambda note: banner(url, demo_mode, note))
    code = supervise(children, stop_requested, startup)
    if stop_requested:
        print("deploycheck: stopped", flush=True)
    return code


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    try:
        if not args:
            return run_all()
        if len(args) == 1 and args[0] in SERVICES:
            exec_service(args[0])
            return 0  # only reached when execv is replaced, as in tests
        print(f"usage: python -m deploycheck.run [{'|'.join(SERVICES)}]", file=sys.stderr)
        return 2
    except LaunchError as exc:
        print(f"deploycheck: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
