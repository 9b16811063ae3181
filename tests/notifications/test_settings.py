"""The notification settings: their defaults, and a bad value stopping the start with a
message naming the variable."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.test_settings import setting_values, values


def test_the_retry_schedule_is_standard_webhooks_unless_told(tmp_path: Path) -> None:
    assert values(
        tmp_path, "NOTIFY_RETRY_SCHEDULE SITE_URL NOTIFY_ALLOW_PRIVATE", SECRET_KEY="x"
    ) == [
        "[5.0, 300.0, 1800.0, 7200.0, 18000.0, 36000.0, 36000.0]",
        "'http://127.0.0.1:8000'",
        "False",
    ]
    assert values(
        tmp_path, "NOTIFY_RETRY_SCHEDULE", SECRET_KEY="x", NOTIFY_RETRY_SCHEDULE="1, 2"
    ) == ["[1.0, 2.0]"]


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        (
            "NOTIFY_RETRY_SCHEDULE",
            "5,soon",
            "NOTIFY_RETRY_SCHEDULE='5,soon' must be seconds separated by commas",
        ),
        (
            "NOTIFY_RETRY_SCHEDULE",
            "5,-1",
            "NOTIFY_RETRY_SCHEDULE='5,-1' must not hold a negative number",
        ),
        (
            "SITE_URL",
            "deploycheck.example.com",
            "SITE_URL='deploycheck.example.com' must be an http(s):// URL with a host",
        ),
        ("NOTIFY_ALLOW_PRIVATE", "perhaps", "NOTIFY_ALLOW_PRIVATE='perhaps' is not a boolean"),
    ],
)
def test_a_bad_value_stops_the_start(tmp_path: Path, name: str, value: str, message: str) -> None:
    result = setting_values(tmp_path, "DEBUG", SECRET_KEY="x", **{name: value})

    assert result.returncode != 0
    assert message in result.stderr
