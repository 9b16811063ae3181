"""Markdown checklists through the database: the management commands, the default
template, round trips through templates and releases, and the demo loader."""

from __future__ import annotations

from io import StringIO
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.core.management import CommandError, call_command
from django.test import override_settings
from django.utils import translation

from releases import checklists, workflow
from releases.actors import SystemActor
from releases.models import (
    AuditEvent,
    ChecklistTemplate,
    ItemState,
    Release,
    Role,
    Stakeholder,
    TemplateItem,
)

HERE = Path(__file__).parent / "checklists"
SEED = checklists.DEFAULT_CHECKLIST
SEED_SUMMARY = "3 phases, 13 sections, 66 items, 6 rollback steps, 5 emergency contacts"

pytestmark = pytest.mark.django_db


def run(*args: str) -> str:
    out = StringIO()
    call_command(*args, stdout=out)
    return out.getvalue()


def test_it_imports_the_seed_with_its_summary_line() -> None:
    assert run("import_checklist", str(SEED), "--name", "seed") == SEED_SUMMARY + "\n"
    template = ChecklistTemplate.objects.get(name="seed")
    assert template.title == "Checklist de Despliegue a Producción"
    assert template.items.count() == 66
    assert template.gate_position == 34
    owners = dict(template.items.values_list("text", "owner_role"))
    assert owners["Todas las pruebas unitarias pasan (backend y frontend)"] == Role.QA
    assert owners["Desplegar el frontend"] == Role.FRONTEND
    assert owners["Desplegar la base de datos (migraciones)"] == Role.BACKEND
    assert (
        owners["Se ha notificado a todos los stakeholders sobre el despliegue"]
        == Role.PRODUCT_OWNER
    )
    assert owners["Los certificados SSL están instalados y configurados"] == Role.DEVOPS


def test_it_prints_the_summary_in_english_whatever_the_language() -> None:
    with override_settings(LANGUAGE_CODE="es"):
        assert run("import_checklist", str(SEED), "--name", "seed") == SEED_SUMMARY + "\n"


def test_it_replaces_a_template_of_the_same_name_without_touching_releases(
    users: dict[str, Any],
) -> None:
    run("import_checklist", str(SEED), "--name", "seed")
    template = ChecklistTemplate.objects.get(name="seed")
    release = workflow.create_release(template, version="v2.0.0", title="t", by=users["admin"])
    assert run("import_checklist", str(HERE / "ops-runbook.md"), "--name", "seed").startswith(
        "2 phases, 3 sections, 8 items"
    )
    assert ChecklistTemplate.objects.filter(name="seed").count() == 1
    assert TemplateItem.objects.filter(template__name="seed").count() == 8
    assert release.items.count() == 66


@pytest.mark.parametrize(
    ("name", "summary"),
    [
        (
            "github-release.md",
            "3 phases, 0 sections, 10 items, 0 rollback steps, 0 emergency contacts",
        ),
        (
            "no-headings-crlf.md",
            "0 phases, 0 sections, 4 items, 0 rollback steps, 0 emergency contacts",
        ),
        (
            "deep-headings.md",
            "3 phases, 0 sections, 6 items, 0 rollback steps, 0 emergency contacts",
        ),
        ("ops-runbook.md", "2 phases, 3 sections, 8 items, 2 rollback steps, 2 emergency contacts"),
    ],
)
def test_it_imports_checklists_other_teams_write(name: str, summary: str) -> None:
    assert run("import_checklist", str(HERE / name), "--name", name) == summary + "\n"


def test_it_keeps_annotations_from_the_file() -> None:
    run("import_checklist", str(HERE / "ops-runbook.md"), "--name", "ops")
    template = ChecklistTemplate.objects.get(name="ops")
    items = {i.text: i for i in template.items.all()}
    assert items["Migrations reviewed"].owner_role == Role.BACKEND
    assert items["Replica lag under 1 s"].owner_role == Role.DEVOPS
    assert items["Pen-test findings triaged"].required is False
    assert items["Smoke tests green"].checks == ["http-health"]
    assert template.gate_position == 6


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (b"# Only a title\n\nNo tasks here.\n", "no task items found"),
        (b"", "no task items found"),
        (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", "bad.md"),
        (b"- [ ] ok\n- [ ] caf\xe9\n", "bad.md:2:"),
        (b"- [ ] Deploy <!-- deploycheck: owner=ceo -->\n", "bad.md:1: unknown owner 'ceo'"),
    ],
)
def test_it_refuses_bad_files_clearly_and_writes_nothing(
    tmp_path: Path, content: bytes, expected: str
) -> None:
    path = tmp_path / "bad.md"
    path.write_bytes(content)
    events = AuditEvent.objects.count()
    with pytest.raises(CommandError) as refused:
        run("import_checklist", str(path), "--name", "bad")
    assert str(refused.value).startswith(str(path))
    assert expected in str(refused.value)
    assert not ChecklistTemplate.objects.exists()
    assert AuditEvent.objects.count() == events


def test_it_refuses_an_oversized_file(tmp_path: Path) -> None:
    path = tmp_path / "huge.md"
    path.write_bytes(b"- [ ] item\n" * 200_000)
    with pytest.raises(CommandError, match="too large"):
        run("import_checklist", str(path), "--name", "huge")
    assert not ChecklistTemplate.objects.exists()


def test_it_refuses_a_missing_file(tmp_path: Path) -> None:
    with pytest.raises(CommandError, match="cannot read"):
        run("import_checklist", str(tmp_path / "nope.md"), "--name", "x")


def test_it_round_trips_a_template_byte_for_byte(tmp_path: Path) -> None:
    run("import_checklist", str(SEED), "--name", "seed")
    first = run("export_checklist", "--template", "seed")
    exported = tmp_path / "seed.md"
    exported.write_text(first, encoding="utf-8")
    run("import_checklist", str(exported), "--name", "again")
    assert run("export_checklist", "--template", "again") == first
    assert "<!-- deploycheck: gate -->" in first
    assert "<!-- deploycheck: owner=qa -->" in first


def test_it_exports_a_release_as_a_signed_record_that_imports_to_its_template(
    users: dict[str, Any], tmp_path: Path
) -> None:
    template = workflow.import_default_template(by=SystemActor("tests"))
    release = workflow.create_release(template, version="v1.0.0", title="t", by=users["admin"])
    workflow.assign(release, role=Role.QA, user=users["qa"], by=users["admin"])
    workflow.assign(release, role=Role.DEVOPS, user=users["devops"], by=users["admin"])
    unit = release.items.get(text="Todas las pruebas unitarias pasan (backend y frontend)")
    workflow.tick(unit, by=users["qa"])
    workflow.annotate_item(
        unit, by=users["qa"], evidence_url="https://ci.example.com/run/1", note="green — on main"
    )
    balancers = release.items.get(text__startswith="Los balanceadores de carga")
    workflow.mark_not_applicable(balancers, by=users["devops"], reason="single node")
    firewall = release.items.get(text__startswith="Las reglas de firewall")
    workflow.mark_blocked(firewall, by=users["devops"], reason="waiting for the network team")

    record = run("export_checklist", "--release", "v1.0.0")
    assert "- [x] Todas las pruebas unitarias pasan (backend y frontend)" in record
    assert "done by qa (QA)" in record
    assert "evidence: https://ci.example.com/run/1" in record
    assert "not applicable by devops (DEVOPS)" in record and "reason: single node" in record
    assert "blocked by devops (DEVOPS)" in record
    assert "- [ ] Las reglas de firewall" in record

    exported = tmp_path / "release.md"
    exported.write_text(record, encoding="utf-8")
    run("import_checklist", str(exported), "--name", "from-release")
    assert run("export_checklist", "--template", "from-release") == run(
        "export_checklist", "--template", template.name
    )


def test_it_names_what_export_cannot_find() -> None:
    with pytest.raises(CommandError, match="no template named 'nope'"):
        run("export_checklist", "--template", "nope")
    with pytest.raises(CommandError, match=r"no release 'v9\.9\.9'"):
        run("export_checklist", "--release", "v9.9.9")


def test_a_release_copies_its_template(users: dict[str, Any]) -> None:
    template = workflow.import_default_template(by=SystemActor("tests"))
    release = workflow.create_release(template, version="v1.0.0", title="t", by=users["admin"])
    TemplateItem.objects.filter(template=template).update(text="changed")
    assert not release.items.filter(text="changed").exists()
    assert release.items.filter(before_gate=True).count() == 34
    assert release.rollback_steps.count() == 6
    assert release.contacts.count() == 5
    assert all(c.has_placeholder() for c in release.contacts.all())


@override_settings(DEBUG=True, DEMO_MODE=True)
def test_it_loads_the_demo_twice_without_harm() -> None:
    run("load_demo")
    run("load_demo")
    release = Release.objects.get(version="v1.0.0")
    assert release.items.count() == 66
    assert ChecklistTemplate.objects.count() == 1
    User = get_user_model()
    for username in ("devops", "backend", "frontend", "qa", "po", "support", "admin"):
        assert User.objects.get(username=username).check_password("demo")
    assert User.objects.get(username="admin").is_staff
    assert set(Stakeholder.objects.filter(release=release).values_list("role", flat=True)) == set(
        Role.values
    )
    assert Stakeholder.objects.filter(release=release).count() == 6
    assert not any(c.has_placeholder() for c in release.contacts.all())
    assert release.items.filter(state=ItemState.PENDING).count() == 66


@override_settings(DEBUG=True, DEMO_MODE=True)
def test_it_seeds_the_demo_once_and_leaves_what_staff_changed() -> None:
    run("load_demo")
    release = Release.objects.get(version="v1.0.0")
    qa = get_user_model().objects.get(username="qa")
    workflow.unassign(
        release, role=Role.QA, user=qa, by=get_user_model().objects.get(username="admin")
    )
    events = release.audit_events.count()

    out = run("load_demo")

    assert "already there" in out
    assert not Stakeholder.objects.filter(release=release, user=qa).exists()
    assert release.audit_events.count() == events
    seeded = release.audit_events.filter(action="stakeholder.assigned")
    assert set(seeded.values_list("actor_label", "actor_kind")) == {
        ("manage.py load_demo", "system")
    }


@override_settings(DEBUG=False, DEMO_MODE=False)
def test_it_never_creates_demo_accounts_outside_demo_mode() -> None:
    out = run("load_demo")
    assert "skipped" in out
    assert Release.objects.filter(version="v1.0.0").exists()
    assert not get_user_model().objects.exists()


def test_it_translates_each_problem_and_the_messages_inside_it() -> None:
    source = (
        "## Pre\n\n- [ ] one\n\n## Rollback\n\n1. undo\n\n- [ ] late\n\n"
        "## Contacts\n\n| R |\n|---|\n"
    )

    with translation.override("es"), pytest.raises(checklists.ChecklistFileError) as caught:
        checklists.parse_text(source, "plan.md")

    assert caught.value.lines() == [
        "plan.md:9: ítem de tarea bajo 'Rollback', donde los pasos son una lista numerada; "
        "muévelo bajo un encabezado de fase o cambia el nombre del encabezado",
        "plan.md:13: la tabla de contactos tiene 1 columna; necesita rol | nombre | contacto",
    ]


@pytest.mark.parametrize(
    ("language", "summary"),
    [
        ("en", "1 phase, 0 sections, 1 item, 1 rollback step, 0 emergency contacts"),
        ("es", "1 fase, 0 secciones, 1 ítem, 1 paso de rollback, 0 contactos de emergencia"),
    ],
)
def test_it_counts_what_a_checklist_holds_in_the_person_s_language(
    language: str, summary: str
) -> None:
    doc = checklists.parse_text("## Pre\n\n- [ ] one\n\n## Rollback\n\n1. undo\n", "plan.md")

    with translation.override(language):
        assert checklists.summary(doc) == summary
