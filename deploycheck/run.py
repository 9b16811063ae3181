"""Start deploycheck: `python -m deploycheck.run [web|worker|beat]`.

With no argument (what `make run` does) it prepares a development instance and runs the
web server, the Celery worker and beat together until Ctrl-C. With a service name it
replaces itself with that one service, which is how docker-compose runs each container.
Both paths build their command lines from SERVICES, so what a developer runs is what
production runs.
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
    # Threads: checks wait on the network, so one run's checks go side by side.
    "worker": (
        "-m", "celery", "-A", "deploycheck", "worker", "--loglevel=INFO",
        "--pool=threads", "--concurrency={worker_concurrency}",
    ),
    "beat": (
        "-m", "celery", "-A", "deploycheck", "beat", "--loglevel=INFO",
        "--schedule={data_dir}/celerybeat-schedule",
    ),
}  # fmt: skip

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8000
DEFAULT_WORKER_CONCURRENCY = 64
WORKER_POOL_SIZE = 10
READY_TIMEOUT = 30.0
STOP_TIMEOUT = 10.0

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


def development_env() -> dict[str, str]:
    env = dict(os.environ)
    env.setdefault("DEBUG", "1")
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
REMEMBERED = ("DEBUG", "DEMO_MODE")


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
    """Create the data folders, migrate and load the demo; return whether DEMO_MODE is on."""
    # Read settings in this process too, so a bad variable fails here with its name
    # instead of in three children at once.
    os.environ.update(env)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "deploycheck.settings")
    from django.conf import settings
    from django.core.exceptions import ImproperlyConfigured

    try:
        folders = [Path(settings.DATA_DIR)]
        options = settings.CELERY_BROKER_TRANSPORT_OPTIONS
        demo_mode = bool(settings.DEMO_MODE)
    except ImproperlyConfigured as exc:
        raise LaunchError(str(exc)) from None
    folders += [
        Path(str(options[key]))
        for key in ("data_folder_in", "processed_folder", "control_folder")
        if key in options
    ]
    for folder in folders:
        folder.mkdir(parents=True, exist_ok=True)
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


def start(
    commands: Mapping[str, Sequence[str]], env: Mapping[str, str]
) -> dict[str, subprocess.Popen[bytes]]:
    children: dict[str, subprocess.Popen[bytes]] = {}
    for name, argv in commands.items():
        children[name] = subprocess.Popen(list(argv), env=service_env(name, env), cwd=BASE_DIR)
    return children


def first_exited(children: Mapping[str, subprocess.Popen[bytes]]) -> tuple[str, int] | None:
    for name, child in children.items():
        code = child.poll()
        if code is not None:
            return name, code
    return None


def stop(children: Mapping[str, subprocess.Popen[bytes]], timeout: float = STOP_TIMEOUT) -> None:
    """Terminate every child, give them `timeout` seconds together, then kill the rest."""
    for child in children.values():
        if child.poll() is None:
            child.terminate()
    deadline = time.monotonic() + timeout
    for name, child in children.items():
        try:
            child.wait(timeout=max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            print(
                f"deploycheck: {name} did not stop within {timeout:.0f} s; killing it", flush=True
            )
            child.kill()
            child.wait()


def supervise(
    children: Mapping[str, subprocess.Popen[bytes]],
    stop_requested: StopRequested,
    ready: tuple[str, int] | None = None,
    ready_timeout: float = READY_TIMEOUT,
    on_ready: Callable[[], None] | None = None,
) -> int:
    """Run until a signal (exit 0) or until any child exits (exit non-zero, naming it).

    With `ready` (address, port), first wait for that port to accept connections and
    call `on_ready`; a child that dies meanwhile, or a port that stays closed, is an error.
    """
    waiting_since = time.monotonic() if ready else None
    try:
        while not stop_requested:
            exited = first_exited(children)
            if exited:
                name, code = exited
                phase = "while starting" if waiting_since is not None else "unexpectedly"
                print(
                    f"deploycheck: {name} exited {phase} (exit code {code}); stopping the others",
                    file=sys.stderr,
                    flush=True,
                )
                # A child killed by a signal has a negative code; the shell wants 1-255.
                return code if code > 0 else 1
            if ready and waiting_since is not None:
                if port_answers(*ready):
                    waiting_since = None
                    if on_ready:
                        on_ready()
                elif time.monotonic() - waiting_since > ready_timeout:
                    print(
                        f"deploycheck: web did not accept connections on {ready[0]}:{ready[1]} "
                        f"within {ready_timeout:.0f} s; stopping",
                        file=sys.stderr,
                        flush=True,
                    )
                    return 1
            time.sleep(0.1)
        return 0
    finally:
        stop(children)


def banner(url: str, demo_mode: bool) -> None:
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
    children = start({name: service_argv(name, env) for name in SERVICES}, env)
    url = f"http://{f'[{address}]' if ':' in address else address}:{bind_port}/"
    code = supervise(
        children,
        stop_requested,
        ready=(address, bind_port),
        on_ready=lambda: banner(url, demo_mode),
    )
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
