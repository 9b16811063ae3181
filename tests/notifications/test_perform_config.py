"""`[[perform]]` in a checks file: items linked to what the app performs for them, all or
nothing with the checks, every fault as `path:line`; and the example files ship the
links of the seed's communication items and the channel they name."""

from __future__ import annotations

from pathlib import Path
from textwrap import dedent
from typing import Any

import pytest
from django.core.management import call_command

from checks import config
from checks.config import ChecksFileError
from checks.models import Check
from notifications import config as notifications_config
from releases import workflow
from releases.actors import SystemActor
from releases.models import AuditAction, AuditEvent, Release

SYSTEM = SystemActor("tests")
REPOSITORY = Path(__file__).resolve().parents[2]

GOOD = """\
[[check]]
name = "tls"
kind = "tls"
host = "app.example.com"
item = "TLS certificates installed"

[[perform]]
item = ["Screens reviewed", "Smoke tests in production"]
action = "announce:users"

[[perform]]
item = "Deploy the backend"
action = "retrospective"
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "checks.toml"
    path.write_text(dedent(text), encoding="utf-8")
    return path


def performs_of(release: Release) -> dict[str, str]:
    return {i.text: i.perform for i in release.items.order_by("position") if i.perform}


def test_it_links_the_items_it_names_and_leaves_the_others_be(
    release: Release, tmp_path: Path
) -> None:
    release.items.filter(text="Merge everything").update(perform="announce:people")

    summary = config.load(write(tmp_path, GOOD), release, by=SYSTEM)

    assert performs_of(release) == {
        "Merge everything": "announce:people",
        "Screens reviewed": "announce:users",
        "Deploy the backend": "retrospective",
        "Smoke tests in production": "announce:users",
    }
    assert summary.performing == 3
    assert str(summary).endswith("; 3 items linked to an action the app performs")
    audit = AuditEvent.objects.get(action=AuditAction.PERFORMS_LINKED)
    assert audit.target == "checks.toml"
    assert audit.after["items"]["Deploy the backend"] == {"before": "", "after": "retrospective"}


def test_loading_it_again_changes_nothing(release: Release, tmp_path: Path) -> None:
    path = write(tmp_path, GOOD)
    config.load(path, release, by=SYSTEM)
    release.refresh_from_db()
    revision = release.revision

    config.load(path, release, by=SYSTEM)

    release.refresh_from_db()
    assert release.revision == revision
    assert AuditEvent.objects.filter(action=AuditAction.PERFORMS_LINKED).count() == 1


FAULTS = {
    "unknown action": (
        '{good}[[perform]]\nitem = "Screens reviewed"\naction = "shout"\n',
        "checks.toml:7: [[perform]] of line 5: “shout” is not an action the app performs; "
        "expected announce:people, announce:stakeholders, announce:CHANNEL, "
        "acknowledge:support, retrospective",
    ),
    "missing action": (
        '{good}[[perform]]\nitem = "Screens reviewed"\n',
        "checks.toml:5: [[perform]] of line 5: action is missing; expected announce:people",
    ),
    "missing item": (
        '{good}[[perform]]\naction = "retrospective"\n',
        "checks.toml:5: [[perform]] of line 5: item is missing",
    ),
    "unknown key": (
        '{good}[[perform]]\nitem = "Screens reviewed"\naction = "retrospective"\nwhen = "now"\n',
        "checks.toml:8: [[perform]] of line 5: unknown key “when”",
    ),
    "no such item": (
        '{good}[[perform]]\nitem = "Screens reviewd"\naction = "retrospective"\n',
        "checks.toml:6: item “Screens reviewd” matches no item of v1.2.3; "
        "did you mean “Screens reviewed”?",
    ),
    "two actions": (
        '{good}[[perform]]\nitem = "Screens reviewed"\naction = "retrospective"\n\n'
        '[[perform]]\nitem = "Screens reviewed"\naction = "announce:people"\n',
        "checks.toml:9: item “Screens reviewed” is given two actions: retrospective (line 5) "
        "and announce:people",
    ),
    "not tables": (
        'perform = "retrospective"\n\n[[check]]\nname = "tls"\nkind = "tls"\n'
        'host = "app.example.com"\nitem = "TLS certificates installed"\n',
        "checks.toml:1: perform must be [[perform]] tables",
    ),
}


@pytest.mark.parametrize(("text", "expected"), FAULTS.values(), ids=FAULTS.keys())
def test_a_fault_refuses_the_whole_file_at_its_line(
    release: Release, tmp_path: Path, text: str, expected: str
) -> None:
    good = '[[perform]]\nitem = "Deploy the backend"\naction = "retrospective"\n\n'
    path = write(tmp_path, text.replace("{good}", good))
    before = performs_of(release)

    with pytest.raises(ChecksFileError) as caught:
        config.load(path, release, by=SYSTEM)

    assert any(error.startswith(f"{tmp_path}/{expected}") for error in caught.value.errors), (
        caught.value.errors
    )
    # All or nothing: the good table before the fault linked nothing either.
    assert performs_of(release) == before == {}
    assert not Check.objects.filter(release=release).exists()


def test_the_command_reports_the_links(release: Release, tmp_path: Path, capsys: Any) -> None:
    call_command("load_checks", str(write(tmp_path, GOOD)), release=release.version)

    assert "3 items linked to an action the app performs" in capsys.readouterr().out


def test_the_example_files_link_the_seeds_communication_items_to_a_declared_channel(
    db: Any,
) -> None:
    template = workflow.import_default_template(by=SYSTEM)
    seed = workflow.create_release(template, version="v1.0.0", title="x", by=SYSTEM)

    summary = config.load(REPOSITORY / "checks.example.toml", seed, by=SYSTEM)

    assert summary.performing == 6
    assert performs_of(seed) == {
        "Se ha notificado a todos los stakeholders sobre el despliegue": "announce:stakeholders",
        "El equipo de soporte está informado y preparado": "acknowledge:support",
        "Notificar a los usuarios sobre el despliegue completado": "announce:users",
        "Comunicar nuevas funcionalidades o cambios importantes": "announce:users",
        "Proporcionar canales de feedback para los usuarios": "announce:users",
        "Programar una reunión de retrospectiva del despliegue": "retrospective",
    }
    channels = notifications_config.read(REPOSITORY / "notifications.example.toml")
    assert "users" in [channel.name for channel in channels]
