"""Settings read the environment once, at start; a bad value stops the process with a
message that names the variable."""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def load_settings(tmp_path: Path, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if k not in {"DEBUG", "SECRET_KEY"}}
    clean.update(
        {"DATA_DIR": str(tmp_path), "DJANGO_SETTINGS_MODULE": "deploycheck.settings", **env}
    )
    code = (
        "import django; django.setup(); from django.conf import settings; "
        "print(settings.DATABASES['default'].get('OPTIONS', {}).get('pool'))"
    )
    return subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        env=clean,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_it_requires_a_secret_key_without_debug(tmp_path: Path) -> None:
    result = load_settings(tmp_path, DEBUG="0")
    assert result.returncode != 0
    assert "SECRET_KEY must be set when DEBUG is off" in result.stderr


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("DEBUG", "maybe", "DEBUG='maybe' is not a boolean"),
        ("DB_POOL_SIZE", "ten", "DB_POOL_SIZE='ten' is not an integer"),
    ],
)
def test_it_names_the_variable_with_a_bad_value(
    tmp_path: Path, name: str, value: str, message: str
) -> None:
    result = load_settings(tmp_path, **{"SECRET_KEY": "x", name: value})
    assert result.returncode != 0
    assert message in result.stderr


def test_it_pools_postgresql_connections_when_asked(tmp_path: Path) -> None:
    result = load_settings(
        tmp_path,
        SECRET_KEY="x",
        DB_POOL_SIZE="7",
        DATABASE_URL="postgres://postgres@127.0.0.1:5432/postgres",
    )
    assert result.returncode == 0, result.stderr
    assert "'max_size': 7" in result.stdout


def test_it_refuses_a_pool_beside_persistent_connections(tmp_path: Path) -> None:
    result = load_settings(
        tmp_path,
        SECRET_KEY="x",
        DB_POOL_SIZE="7",
        DB_CONN_MAX_AGE="60",
        DATABASE_URL="postgres://postgres@127.0.0.1:5432/postgres",
    )
    assert result.returncode != 0
    assert "DB_POOL_SIZE and DB_CONN_MAX_AGE cannot both be set" in result.stderr


def test_it_collects_hashed_compressed_static_files_as_the_image_does(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k not in {"DEBUG", "SECRET_KEY"}}
    env.update(
        {
            "DATA_DIR": str(tmp_path),
            "SECRET_KEY": "collectstatic-only",
            "DEBUG": "0",
            "STATIC_MANIFEST": "1",
        }
    )
    collected = subprocess.run(
        [sys.executable, "manage.py", "collectstatic", "--noinput"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert collected.returncode == 0, collected.stderr
    static = tmp_path / "staticfiles"
    assert (static / "staticfiles.json").exists()
    assert list(static.glob("js/live.*.js.gz")), "no hashed, compressed copy of live.js"

    # Once collected, the manifest is what serves, with nothing more to set.
    del env["STATIC_MANIFEST"]
    env["DJANGO_SETTINGS_MODULE"] = "deploycheck.settings"
    loaded = subprocess.run(
        [
            sys.executable,
            "-c",
            "import django; django.setup(); from django.conf import settings; "
            "print(settings.STATIC_MANIFEST, settings.STORAGES['staticfiles']['BACKEND'])",
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert loaded.stdout.split() == [
        "True",
        "whitenoise.storage.CompressedManifestStaticFilesStorage",
    ], loaded.stderr


# --- logins, secrets and production settings ----------------------------------------------

# Variables these tests set themselves, so that the environment running the suite (the
# suite's own SSL_REDIRECT=0, a developer's EMAIL_URL) does not decide their defaults.
SECURITY_VARIABLES = {
    "DEBUG", "SECRET_KEY", "SECURE_COOKIES", "SSL_REDIRECT", "HSTS_SECONDS",
    "HSTS_INCLUDE_SUBDOMAINS", "HSTS_PRELOAD", "EMAIL_URL", "EMAIL_FROM",
    "AXES_FAILURE_LIMIT", "AXES_COOLOFF_MINUTES",
}  # fmt: skip


def setting_values(tmp_path: Path, names: str, **env: str) -> subprocess.CompletedProcess[str]:
    """Print the named settings (space-separated), one per line, as loaded under `env`."""
    clean = {k: v for k, v in os.environ.items() if k not in SECURITY_VARIABLES}
    clean.update(
        {"DATA_DIR": str(tmp_path), "DJANGO_SETTINGS_MODULE": "deploycheck.settings", **env}
    )
    code = (
        "import django; django.setup(); from django.conf import settings; "
        f"[print(repr(getattr(settings, name))) for name in {names.split()!r}]"
    )
    return subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        env=clean,
        capture_output=True,
        text=True,
        timeout=60,
    )


def values(tmp_path: Path, names: str, **env: str) -> list[str]:
    result = setting_values(tmp_path, names, **env)
    assert result.returncode == 0, result.stderr
    return result.stdout.splitlines()


def test_login_throttling_defaults_to_five_failures_and_fifteen_minutes(tmp_path: Path) -> None:
    assert values(
        tmp_path,
        "AXES_FAILURE_LIMIT AXES_COOLOFF_TIME AXES_LOCKOUT_PARAMETERS AXES_RESET_ON_SUCCESS",
        SECRET_KEY="x",
    ) == ["5", "datetime.timedelta(seconds=900)", "['username', 'ip_address']", "True"]


def test_login_throttling_reads_its_limits(tmp_path: Path) -> None:
    assert values(
        tmp_path,
        "AXES_FAILURE_LIMIT AXES_COOLOFF_TIME",
        SECRET_KEY="x",
        AXES_FAILURE_LIMIT="3",
        AXES_COOLOFF_MINUTES="60",
    ) == ["3", "datetime.timedelta(seconds=3600)"]


def test_sessions_are_read_through_redis_and_never_through_one_process_memory(
    tmp_path: Path,
) -> None:
    # Another web process's memory would still hold a session logged out here.
    assert values(tmp_path, "SESSION_ENGINE", SECRET_KEY="x", REDIS_URL="") == [
        "'django.contrib.sessions.backends.db'"
    ]
    assert values(
        tmp_path, "SESSION_ENGINE", SECRET_KEY="x", REDIS_URL="redis://127.0.0.1:6379/9"
    ) == ["'django.contrib.sessions.backends.cached_db'"]


def test_a_web_process_serves_pages_on_eight_threads_unless_told(tmp_path: Path) -> None:
    assert values(tmp_path, "WEB_THREADS", SECRET_KEY="x") == ["2"]
    assert values(tmp_path, "WEB_THREADS", SECRET_KEY="x", WEB_THREADS="3") == ["3"]
    result = setting_values(tmp_path, "WEB_THREADS", SECRET_KEY="x", WEB_THREADS="0")
    assert "WEB_THREADS=0 must be a positive integer" in result.stderr


@pytest.mark.parametrize("name", ["AXES_FAILURE_LIMIT", "AXES_COOLOFF_MINUTES"])
def test_login_throttling_refuses_a_limit_that_is_not_positive(tmp_path: Path, name: str) -> None:
    result = setting_values(tmp_path, "DEBUG", SECRET_KEY="x", **{name: "0"})
    assert result.returncode != 0
    assert f"{name}=0 must be a positive integer" in result.stderr


def test_a_person_may_start_ten_runs_of_checks_a_minute_unless_told_otherwise(
    tmp_path: Path,
) -> None:
    assert values(tmp_path, "CHECKS_RUNS_PER_MINUTE", SECRET_KEY="x") == ["10"]
    assert values(
        tmp_path, "CHECKS_RUNS_PER_MINUTE", SECRET_KEY="x", CHECKS_RUNS_PER_MINUTE="3"
    ) == ["3"]
    refused = setting_values(tmp_path, "DEBUG", SECRET_KEY="x", CHECKS_RUNS_PER_MINUTE="0")
    assert refused.returncode != 0
    assert "CHECKS_RUNS_PER_MINUTE=0 must be a positive integer" in refused.stderr


HTTPS = (
    "SECURE_SSL_REDIRECT SECURE_HSTS_SECONDS SECURE_HSTS_INCLUDE_SUBDOMAINS SESSION_COOKIE_SECURE"
)


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({"DEBUG": "0"}, ["True", "31536000", "True", "True"]),
        ({"DEBUG": "1"}, ["False", "0", "True", "False"]),
        # Served over plain HTTP on purpose: no redirect to an HTTPS that is not there.
        ({"DEBUG": "0", "SECURE_COOKIES": "0"}, ["False", "0", "True", "False"]),
        (
            {"DEBUG": "0", "SSL_REDIRECT": "0", "HSTS_SECONDS": "300"},
            ["False", "300", "True", "True"],
        ),
        ({"DEBUG": "0", "HSTS_INCLUDE_SUBDOMAINS": "0"}, ["True", "31536000", "False", "True"]),
    ],
)
def test_https_follows_debug_unless_told(
    tmp_path: Path, env: dict[str, str], expected: list[str]
) -> None:
    assert values(tmp_path, HTTPS, SECRET_KEY="x", **env) == expected


def test_the_health_check_is_exempt_from_the_https_redirect(tmp_path: Path) -> None:
    assert values(tmp_path, "SECURE_REDIRECT_EXEMPT", SECRET_KEY="x") == ["['^healthz$']"]


EMAIL = (
    "EMAIL_ENABLED EMAIL_BACKEND EMAIL_HOST EMAIL_PORT EMAIL_HOST_USER EMAIL_HOST_PASSWORD "
    "EMAIL_USE_TLS EMAIL_USE_SSL"
)


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        (
            {"EMAIL_URL": "smtp://mailer%40example.com:p%40ss@mail.example.com:587?tls=1"},
            ["True", "'django.core.mail.backends.smtp.EmailBackend'", "'mail.example.com'",
             "587", "'mailer@example.com'", "'p@ss'", "True", "False"],
        ),
        (
            {"EMAIL_URL": "smtps://mail.example.com"},
            ["True", "'django.core.mail.backends.smtp.EmailBackend'", "'mail.example.com'",
             "465", "''", "''", "False", "True"],
        ),
        (
            {"EMAIL_URL": "console://"},
            ["True", "'deploycheck.logs.ConsoleEmailBackend'", "'localhost'", "25",
             "''", "''", "False", "False"],
        ),
        (
            {"DEBUG": "1"},
            ["True", "'deploycheck.logs.ConsoleEmailBackend'", "'localhost'", "25",
             "''", "''", "False", "False"],
        ),
        (
            {"DEBUG": "0"},
            ["False", "'django.core.mail.backends.dummy.EmailBackend'", "'localhost'", "25",
             "''", "''", "False", "False"],
        ),
    ],
)  # fmt: skip
def test_email_comes_from_email_url(
    tmp_path: Path, env: dict[str, str], expected: list[str]
) -> None:
    assert values(tmp_path, EMAIL, SECRET_KEY="x", **env) == expected


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("ftp://user:hunter2@mail.example.com", "EMAIL_URL: unknown scheme 'ftp'"),
        ("smtp://user:hunter2@mail.example.com?tls=maybe", "EMAIL_URL: tls='maybe' is not a"),
        ("smtp://user:hunter2@mail.example.com?starttls=1", "EMAIL_URL: unknown option 'starttls'"),
        ("smtps://user:hunter2@mail.example.com?tls=1", "EMAIL_URL: tls and ssl (smtps) exclude"),
        ("smtp://user:hunter2@mail.example.com:twentyfive", "EMAIL_URL: the port and timeout"),
        ("smtp://", "EMAIL_URL: no mail server host"),
    ],
)
def test_a_bad_email_url_stops_the_start_without_showing_the_password(
    tmp_path: Path, url: str, message: str
) -> None:
    result = setting_values(tmp_path, "EMAIL_BACKEND", SECRET_KEY="x", EMAIL_URL=url)
    assert result.returncode != 0
    assert message in result.stderr
    assert "hunter2" not in result.stderr


def test_the_production_settings_pass_the_deployment_checks(tmp_path: Path) -> None:
    """`manage.py check --deploy` under the environment docker-compose.yml gives web, and
    nothing else: its warnings are either fixed or, when they do not apply to
    deploycheck, silenced with the reason beside them in settings."""
    env = {
        "PATH": os.environ.get("PATH", ""),
        "DATA_DIR": str(tmp_path),
        "DEBUG": "0",
        "SECRET_KEY": secrets.token_urlsafe(50),
        "DATABASE_URL": "postgres://deploycheck:deploycheck@postgres:5432/deploycheck",
        "REDIS_URL": "redis://redis:6379/0",
        "ALLOWED_HOSTS": "127.0.0.1,deploycheck.example.com",
        "CSRF_TRUSTED_ORIGINS": "https://deploycheck.example.com",
        "SECURE_COOKIES": "1",
        "FORWARDED_ALLOW_IPS": "127.0.0.1",
        "LANGUAGE_CODE": "es",
        "TIME_ZONE": "UTC",
        "LOG_LEVEL": "INFO",
        "DB_POOL_SIZE": "10",
    }
    checked = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    output = checked.stdout + checked.stderr
    assert checked.returncode == 0, output
    assert "WARNINGS" not in output
    assert "?:" not in output
    assert "System check identified no issues" in output
