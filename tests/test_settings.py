"""Settings read the environment once, at start; a bad value stops the process with a
message that names the variable."""

from __future__ import annotations

import os
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
