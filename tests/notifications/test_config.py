"""The notifications file: what load_notifications accepts, what it refuses and how it
says so (`path:line: what is wrong`), and what a load does to the channels."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone, translation

from notifications import config
from notifications.models import Channel
from tests.conftest import deadline, swapped_for_a_fifo

GOOD = """\
[[channel]]
name = "ops"
kind = "webhook"
url = "https://hooks.example.com/deploycheck"
secret_env = "OPS_WEBHOOK_SECRET"
events = ["*"]
releases = "*"

[[channel]]
name = "team"
kind = "slack"
url_env = "SLACK_WEBHOOK_URL"
events = ["approval.requested", "deploy.started"]
releases = "v2.*"
"""


def written(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "notifications.toml"
    path.write_text(text)
    return path


def faults(tmp_path: Path, text: str) -> list[str]:
    path = written(tmp_path, text)
    with pytest.raises(config.NotificationsFileError) as refused:
        config.read(path)
    return [line.removeprefix(f"{path}:") for line in refused.value.errors]


def channel(**keys: Any) -> str:
    table = {
        "name": "ops",
        "kind": "webhook",
        "url": "https://hooks.example.com/x",
        "secret_env": "OPS_WEBHOOK_SECRET",
        **keys,
    }
    body = "\n".join(
        f"{key} = {value}" if isinstance(value, list) else f'{key} = "{value}"'
        for key, value in table.items()
        if value is not None
    )
    return f"[[channel]]\n{body}\n"


def test_it_reads_both_kinds(tmp_path: Path) -> None:
    assert config.read(written(tmp_path, GOOD)) == [
        config.ChannelSpec(
            name="ops",
            kind="webhook",
            url="https://hooks.example.com/deploycheck",
            secret_env="OPS_WEBHOOK_SECRET",
        ),
        config.ChannelSpec(
            name="team",
            kind="slack",
            url_env="SLACK_WEBHOOK_URL",
            events=("approval.requested", "deploy.started"),
            releases="v2.*",
        ),
    ]


@pytest.mark.parametrize(
    ("keys", "fault"),
    [
        (
            {"kind": "sms"},
            "3: channel “ops”: “sms” is not a kind of channel; the kinds are email, slack, "
            "teams or webhook",
        ),
        (
            {"kind": None},
            "1: channel “ops” has no kind; the kinds are email, slack, teams or webhook",
        ),
        ({"name": "Ops Team"}, "2: this [[channel]] needs a name of lower-case letters"),
        (
            {"colour": "red"},
            "6: channel “ops”: unknown key “colour” for kind webhook; allowed: name, kind, url, "
            "url_env, secret_env, events, releases",
        ),
        (
            {"secret_env": None},
            "1: channel “ops” needs secret_env, the variable holding its whsec_… signing secret",
        ),
        (
            {"secret_env": "SECRET_KEY"},
            "5: channel “ops”: secret_env must not name SECRET_KEY, which deploycheck reads "
            "for itself",
        ),
        ({"secret_env": "DATABASE_URL"}, "must not name DATABASE_URL"),
        ({"secret_env": "REDIS_URL"}, "must not name REDIS_URL"),
        ({"secret_env": "EMAIL_URL"}, "must not name EMAIL_URL"),
        ({"secret_env": "DJANGO_SETTINGS_MODULE"}, "must not name DJANGO_SETTINGS_MODULE"),
        ({"secret_env": "DEPLOYCHECK_TOKEN"}, "must not name DEPLOYCHECK_TOKEN"),
        (
            {"secret_env": "whsec_abc"},
            "5: channel “ops”: secret_env must name an environment variable such as "
            "OPS_WEBHOOK_SECRET",
        ),
        ({"url": None}, "1: channel “ops” needs url or url_env (one of them)"),
        ({"url_env": "OPS_URL"}, "1: channel “ops” needs url or url_env (one of them)"),
        (
            {"url": "http://hooks.example.com/x"},
            "4: channel “ops”: url must be https://; http:// only to this machine",
        ),
        ({"url": "ftp://hooks.example.com/x"}, "4: channel “ops”: url must be an https:// URL"),
        (
            # TOML escapes, so the file holds the characters themselves.
            {"url": "https://hooks.example.com/x\\r\\nHost: evil"},
            "4: channel “ops”: url must not contain spaces or control characters (it holds U+000D)",
        ),
        (
            {"url": "https://hooks.example.com/a\\nb"},
            "4: channel “ops”: url must not contain spaces or control characters (it holds U+000A)",
        ),
        (
            {"url": "https://hooks.exa mple.com/a"},
            "4: channel “ops”: url must not contain spaces or control characters (it holds U+0020)",
        ),
        ({"url": "https://hooks.example.com/a\\u0085"}, "(it holds U+0085)"),
        (
            {"url": "https://u:p@hooks.example.com/x"},
            "4: this [[channel]]: url carries a credential (user:password@); name an "
            "environment variable instead",
        ),
        (
            {"url": "https://hooks.example.com/x?token=abc"},
            "4: this [[channel]]: url carries a credential (?token=…)",
        ),
        (
            {"events": ["deploy.started", "deploy.exploded"]},
            "6: channel “ops”: “deploy.exploded” is not an event type; known: approval.requested",
        ),
        (
            {"events": []},
            '6: channel “ops”: events must be a list of event types, or ["*"] for all',
        ),
        ({"releases": ""}, '6: channel “ops”: releases must be a version glob such as "v2.*"'),
        (
            {"url": "https://hooks.example.com/\u202eexe"},
            "4: this [[channel]]: url contains invisible bidirectional control characters "
            "(U+202E), which can make it read differently from what it is; remove them",
        ),
        (
            {"releases": "v2.\u2067*"},
            "6: this [[channel]]: releases contains invisible bidirectional control characters",
        ),
    ],
)
def test_it_refuses_with_the_line_and_the_reason(
    tmp_path: Path, keys: dict[str, Any], fault: str
) -> None:
    [found] = faults(tmp_path, channel(**keys))

    assert fault in found


def test_slack_refuses_a_secret_env_and_a_webhook_url_written_out(tmp_path: Path) -> None:
    found = faults(
        tmp_path,
        channel(kind="slack", url="https://hooks.slack.com/services/T000/B000/XXXX"),
    )

    assert found == [
        "4: channel “ops”: a Slack webhook URL is its own secret: keep it in an environment "
        "variable and name that with url_env",
        "5: channel “ops”: unknown key “secret_env” for kind slack; allowed: name, kind, url, "
        "url_env, events, releases",
    ]


def test_it_never_repeats_a_credential_pasted_in(tmp_path: Path) -> None:
    key = "sk-proj-" + "Ab1" * 10

    [found] = faults(tmp_path, channel(secret_env=key))

    assert key not in found
    assert "secret_env must name an environment variable" in found


def test_it_lists_every_fault_in_the_file_order(tmp_path: Path) -> None:
    text = channel(kind="sms") + channel(name="ops", secret_env=None) + "colour = 1\n"

    found = faults(tmp_path, text)

    assert found == [
        "3: channel “ops”: “sms” is not a kind of channel; the kinds are email, slack, teams "
        "or webhook",
        "6: channel “ops” needs secret_env, the variable holding its whsec_… signing secret",
        "7: channel “ops” is declared twice (first at line 1)",
        "10: channel “ops”: unknown key “colour” for kind webhook; allowed: name, kind, url, "
        "url_env, secret_env, events, releases",
    ]


def test_it_words_every_fault_in_the_active_language(tmp_path: Path) -> None:
    text = (
        "colour = 1\n"
        + channel(kind="sms")
        + channel(name="ops", secret_env=None)
        + channel(name="team", url="https://outlook.office.com/webhook/a/IncomingWebhook/b/c")
    )

    with translation.override("es"):
        found = faults(tmp_path, text + "[[channel]\n")
        found += faults(tmp_path, text)

    assert found == [
        # tomllib's own words stay English: it has no others.
        "16: TOML no válido en la columna 10 (el lector de TOML dice: «expected ']]' at the end of "
        "an array declaration»)",
        "1: clave de primer nivel desconocida “colour”; un archivo de notificaciones solo "
        "contiene tablas [[channel]]",
        "4: canal “ops”: “sms” no es un tipo de canal; los tipos son email, slack, teams o webhook",
        "7: canal “ops” necesita secret_env, la variable que guarda su secreto de firma whsec_…",
        "8: canal “ops” se declara dos veces (la primera en la línea 2)",
        # Teams names its app and the template in its own language, which may be either.
        "14: canal “team”: url es una URL de conector de Office 365, que Microsoft retiró; crea "
        'un webhook con la aplicación Flujos de trabajo (Workflows) de Teams, plantilla "Publicar '
        'en un canal cuando se recibe una solicitud de webhook" ("Post to a channel when a '
        'webhook request is received"), y usa su URL',
    ]


@pytest.mark.parametrize(
    ("text", "fault"),
    [
        ("[[channel]\n", "1: not valid TOML"),
        (
            "title = 'x'\n",
            "1: unknown top-level key “title”; a notifications file holds only [[channel]] tables",
        ),
        ("channel = 3\n", "1: channel must be [[channel]] tables"),
    ],
)
def test_it_refuses_a_file_that_is_not_channels(tmp_path: Path, text: str, fault: str) -> None:
    found = faults(tmp_path, text)

    assert any(line.startswith(fault) for line in found), found


def test_it_refuses_a_missing_file_and_a_directory(tmp_path: Path) -> None:
    with pytest.raises(config.NotificationsFileError, match="cannot be read"):
        config.read(tmp_path / "nowhere.toml")
    with pytest.raises(config.NotificationsFileError, match="is not a regular file"):
        config.read(tmp_path)


def test_a_file_swapped_for_a_fifo_after_its_check_is_refused_without_waiting(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = swapped_for_a_fifo(tmp_path / "notifications.toml", monkeypatch)

    with deadline(5), pytest.raises(config.NotificationsFileError, match="is not a regular file"):
        config.read(path)


@pytest.mark.django_db
def test_the_command_loads_the_file_and_retires_what_it_no_longer_declares(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    call_command("load_notifications", str(written(tmp_path, GOOD)))
    assert capsys.readouterr().out.strip() == "2 channels loaded (2 new, 0 updated, 0 retired)"
    team = Channel.objects.get(name="team")
    assert (team.kind, team.url, team.url_env, team.events, team.releases) == (
        "slack",
        "",
        "SLACK_WEBHOOK_URL",
        ["approval.requested", "deploy.started"],
        "v2.*",
    )

    call_command("load_notifications", str(written(tmp_path, channel(name="ops"))))

    assert capsys.readouterr().out.strip() == "1 channel loaded (0 new, 1 updated, 1 retired)"
    assert Channel.objects.get(name="team").retired_at is not None
    assert Channel.objects.get(name="ops").url == "https://hooks.example.com/x"


@pytest.mark.django_db
def test_a_new_url_enables_a_channel_whose_endpoint_was_gone(tmp_path: Path) -> None:
    config.load(written(tmp_path, channel()))
    Channel.objects.update(disabled_at=timezone.now(), disabled_reason="gone")

    config.load(written(tmp_path, channel()))
    assert Channel.objects.get().disabled_at is not None
    config.load(written(tmp_path, channel(url="https://hooks.example.com/new")))

    assert Channel.objects.get().active


@pytest.mark.django_db
def test_a_refused_file_changes_nothing(tmp_path: Path) -> None:
    config.load(written(tmp_path, GOOD))
    before = list(Channel.objects.values())

    with pytest.raises(CommandError) as refused:
        call_command("load_notifications", str(written(tmp_path, channel(kind="sms"))))

    assert "is not a kind of channel" in str(refused.value)
    assert list(Channel.objects.values()) == before


def test_the_example_file_loads() -> None:
    example = Path(__file__).resolve().parents[2] / "notifications.example.toml"

    assert [spec.name for spec in config.read(example)] == [
        "ops",
        "team",
        "room",
        "stakeholders",
        "users",
    ]
