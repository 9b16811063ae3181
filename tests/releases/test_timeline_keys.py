"""Every event the workflow writes reads in words: each value its before and after keep
has a name in the reader's language, on the timeline and on the audit page, and its
moments, yes-or-no values and the system's reasons read as people read them.

`write_every_kind_of_event` walks the workflow through every kind of event there is, so
that a key a new operation records, or a new kind of event, cannot go unnamed unnoticed.
"""

from __future__ import annotations

import html
import re
import uuid
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone, translation
from django.utils.translation import gettext as _

from checks import config, tokens
from checks.models import PipelineToken
from releases import markdown as md
from releases import workflow
from releases.actors import CheckActor, Person, PipelineActor, SystemActor
from releases.models import AuditAction, AuditEvent, Release, ReleaseItem, Role
from releases.templatetags.moments import moment
from releases.timeline import human_line, key_label, labelled, reader_for
from releases.workflow import ContactRow
from tests.conftest import item

SYSTEM = SystemActor("tests")
# Written only by versions before this one.
NOT_WRITTEN_NOW = {AuditAction.ADMIN_EDITED}
# How a moment reads when kept as ISO 8601 ("2026-12-07T22:02:59+00:00").
ISO_MOMENT = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d")

CHECKS = """\
[[check]]
name = "tls"
kind = "tls"
host = "app.example.com"
item = "TLS certificates installed"
"""
CHECKS_CHANGED = CHECKS.replace("app.example.com", "www.example.com")


def _checks(release: Release, users: dict[str, Any], tmp_path: Path) -> None:
    """A checks file loaded, changed and emptied; results from a check and a pipeline,
    a tick over a failing check that lapses when the failure changes, and a failing check
    unlinked."""
    path = tmp_path / "checks.toml"
    for text in (CHECKS, CHECKS_CHANGED, "# none left\n"):
        path.write_text(text, encoding="utf-8")
        config.load(path, release, by=SYSTEM)
    merge, tests_pass = item(release, "Merge everything"), item(release, "Unit tests pass")
    screens = item(release, "Screens reviewed")
    workflow.link_checks(
        release,
        checks_of={entry.pk: ["ci"] for entry in (merge, tests_pass, screens)},
        summary={"source": "tests"},
        by=SYSTEM,
    )
    workflow.record_check_result(merge, check="ci", passed=True)
    workflow.record_check_result(tests_pass, check=CheckActor("ci"), passed=False, detail="red")
    workflow.tick(screens, by=users["frontend"])
    workflow.record_check_result(screens, check="ci", passed=False, outcome="error")
    workflow.tick(item(release, "Unit tests pass"), by=users["qa"], override_reason="flaky")
    workflow.record_check_result(tests_pass, check="ci", passed=False, detail="still red")
    for entry in (tests_pass, screens):
        workflow.record_check_result(entry, check="ci", passed=True)
    # A failure whose check is unlinked is taken back.
    workflow.record_check_result(merge, check="ci", passed=False, detail="conflicts")
    workflow.link_checks(release, checks_of={merge.pk: []}, summary={"source": "tests"}, by=SYSTEM)
    token = tokens.create(release, role=Role.BACKEND, label="deployer", pattern="", by=SYSTEM)
    assert token
    held = PipelineToken.objects.get(label="deployer")
    pipeline = PipelineActor("deployer", Role.BACKEND, held.pk)
    deploy = item(release, "Deploy the backend")
    workflow.record_pipeline_evidence(deploy, by=pipeline, passed=False, detail="exit 1")
    workflow.record_pipeline_evidence(deploy, by=pipeline, passed=True)
    tokens.revoke(held, by=SYSTEM)


def _items_and_signoffs(release: Release, users: dict[str, Any]) -> None:
    dashboard = item(release, "Nice-to-have dashboard")
    workflow.mark_blocked(dashboard, by=users["devops"], reason="no Grafana yet")
    workflow.mark_not_applicable(dashboard, by=users["devops"], reason="not this time")
    workflow.annotate_item(dashboard, by=users["devops"], note="next release")
    workflow.untick(dashboard, by=users["devops"])
    for entry in release.items.filter(before_gate=True, required=True):
        if entry.state != "done":
            workflow.tick(entry, by=users[entry.owner_role])
    workflow.nudge_role(release, role=Role.DEVOPS, by=users["po"])
    for role in Role.leads():
        workflow.sign_off(release, role=role, phase="Pre", by=users[role])
    workflow.withdraw_sign_off(release, role=Role.QA, phase="Pre", by=users["qa"])
    workflow.sign_off(release, role=Role.QA, phase="Pre", by=users["qa"])
    # A change to a signed-off item reopens its sign-off.
    workflow.untick(item(release, "Screens reviewed"), by=users["frontend"])
    workflow.tick(item(release, "Screens reviewed"), by=users["frontend"])
    workflow.sign_off(release, role=Role.FRONTEND, phase="Pre", by=users["frontend"])


def _people(release: Release, users: dict[str, Any]) -> None:
    workflow.unassign(release, role=Role.SUPPORT, user=users["support"], by=users["admin"])
    stake = workflow.assign(release, role=Role.SUPPORT, user=users["outsider"], by=users["admin"])
    workflow.reassign(stake, role=Role.SUPPORT, user=users["support"], by=users["admin"])
    contact = release.contacts.get()
    workflow.update_contact(
        contact, by=users["admin"], name="Dana Ops", phone="+34 600 000 002", email=""
    )
    added = workflow.add_contact(
        release, fields={"role": "QA Lead", "name": "Quique"}, by=users["admin"]
    )
    workflow.remove_contact(added, by=users["admin"])
    workflow.edit_contacts(
        release,
        rows=[ContactRow("DevOps Lead", "Dana Ops", "+34 600 000 003", contact_id=contact.pk)],
        based_on=workflow.contacts_version(release),
        by=users["admin"],
    )
    workflow.edit_release(
        release,
        fields={"title": "Autumn", "window_start": timezone.now(), "two_person_rule": False},
        by=users["admin"],
    )
    workflow.record_account_change(
        release,
        user=users["outsider"],
        before={"is_active": True, "is_staff": False},
        after={"is_active": False, "is_staff": False},
        by=SYSTEM,
    )
    token = workflow.create_share_link(
        release, label="customer", by=users["admin"], hides_personal=True
    )
    workflow.revoke_share_link(release, release.share_links.get(), by=users["admin"])
    assert token


def _performs(release: Release, users: dict[str, Any]) -> None:
    """Each way a performance ends, and support saying they are ready."""
    entries = list(release.items.filter(before_gate=False).order_by("position"))
    entries += [ReleaseItem.objects.create(
        release=release, position=90 + n, phase="Deploy", section="Say", text=f"Say {n}",
        owner_role=Role.BACKEND, before_gate=False,
    ) for n in range(3)]  # fmt: skip
    endings = ["done", "failed", "unconfirmed", "awaiting", "awaiting"]
    workflow.link_performs(
        release,
        perform_of={
            entry.pk: "acknowledge:support" if ending == "awaiting" else "announce:people"
            for entry, ending in zip(entries, endings, strict=True)
        },
        source="tests",
        by=SYSTEM,
    )
    for entry, ending in zip(entries, endings, strict=True):
        event = str(uuid.uuid4())
        audience = {"event": event, "recipients": ["qa@example.com"], "channel": "e-mail"}
        with workflow.performing(entry, by=users["po"], audience=audience):
            pass
        evidence = {
            "recipients": ["qa@example.com"],
            "channel": "e-mail",
            "message_ids": ["<1@example.com>"],
            "at": timezone.now().isoformat(),
        }
        reason = "the mail server refused it" if ending == "failed" else ""
        workflow.settle_performance(
            entry.pk, event=event, state=ending, evidence=evidence, reason=reason
        )
    workflow.acknowledge(entries[-1].pk, by=Person(users["support"]))


def _window(release: Release, users: dict[str, Any], other: Release) -> None:
    now = timezone.now()
    workflow.schedule_window(
        release,
        start=now - timedelta(minutes=1),
        end=now + timedelta(hours=1),
        time_zone="Europe/Madrid",
        by=users["devops"],
    )
    workflow.advance_windows()
    workflow.extend_window(
        release, end=now + timedelta(hours=2), reason="slow migration", by=users["devops"]
    )
    workflow.complete_window(release, by=users["devops"])
    later = now + timedelta(days=1)
    workflow.schedule_window(
        other, start=later, end=later + timedelta(hours=1), time_zone="UTC", by=users["admin"]
    )
    workflow.edit_window(
        other,
        start=later + timedelta(hours=1),
        end=later + timedelta(hours=2),
        time_zone="UTC",
        by=users["admin"],
    )
    workflow.cancel_window(other, reason="moved to next week", by=users["admin"])


def _release_day(release: Release, users: dict[str, Any]) -> None:
    # Go-live given over a check failing after its tick names the failure it was given over.
    failing = item(release, "Unit tests pass")
    workflow.record_check_result(failing, check="ci", passed=False, detail="red again")
    workflow.tick(item(release, "Unit tests pass"), by=users["qa"], override_reason="known flake")
    workflow.approve(release, by=users["po"], reason="all green")
    workflow.revoke_approval(release, by=users["po"], reason="one more look")
    workflow.approve(release, by=users["po"])
    workflow.post_update(release, state="investigating", message="Slow", by=users["po"])
    workflow.start_deploy(release, by=users["devops"], reason="window open")
    workflow.finish_deploy(release, by=users["devops"], result="failure", reason="smoke red")
    workflow.declare_rollback(
        release,
        by=users["devops"],
        reason="errors climbing",
        severity="critical",
        detected_at=timezone.now() - timedelta(minutes=5),
    )
    step = release.rollback_steps.get()
    workflow.tick_rollback_step(step, by=users["devops"], mitigates=True)
    workflow.tick_rollback_step(step, by=users["devops"], done=False)
    workflow.annotate_rollback_step(step, by=users["devops"], note="took 3 min")
    workflow.tick_rollback_step(step, by=users["devops"])
    workflow.close_rollback(release, by=users["devops"], cause="a bad migration")
    workflow.set_status(release, status="in_progress", by=users["admin"], reason="try again")
    workflow.edit_rollback_plan(
        release,
        markdown="1. Roll back <!-- deploycheck: owner=backend -->\n",
        based_on=workflow.plan_version(release),
        by=users["admin"],
    )


def write_every_kind_of_event(
    release: Release, users: dict[str, Any], other: Release, tmp_path: Path
) -> list[AuditEvent]:
    _checks(release, users, tmp_path)
    _items_and_signoffs(release, users)
    _people(release, users)
    _performs(release, users)
    _window(release, users, other)
    _release_day(release, users)
    template = md.parse_checklist("# T\n\n## P\n\n- [ ] Item\n")
    workflow.import_template(template, "tests", by=SYSTEM)
    workflow.import_template(template, "tests", by=SYSTEM)
    return list(AuditEvent.objects.order_by("pk"))


@pytest.fixture
def other(release: Release, users: dict[str, Any]) -> Release:
    assert release.template is not None
    return workflow.create_release(
        release.template, version="v2.0.0", title="Winter", by=users["admin"]
    )


@pytest.fixture
def events(
    release: Release, users: dict[str, Any], other: Release, tmp_path: Path
) -> list[AuditEvent]:
    return write_every_kind_of_event(release, users, other, tmp_path)


def test_every_kind_of_event_names_each_value_it_keeps_in_either_language(
    events: list[AuditEvent], release: Release
) -> None:
    assert set(AuditAction.values) - NOT_WRITTEN_NOW - {e.action for e in events} == set()
    kept = [
        (event, key)
        for event in events
        for side in (event.before, event.after)
        if isinstance(side, dict)
        for key in side
    ]
    assert {(event.action, key) for event, key in kept if not labelled(key)} == set()
    reader = reader_for(release)
    for language in ("en", "es"):
        with translation.override(language):
            for event in events:
                keys = [key for shown, key in kept if shown is event and "_" in key]
                for detail in human_line(event, reader).details:
                    assert not any(detail.startswith(f"{key}:") for key in keys), detail
                    assert not ISO_MOMENT.search(detail), (event.action, detail)


def test_the_audit_page_names_every_key_in_spanish(
    events: list[AuditEvent], release: Release, users: dict[str, Any]
) -> None:
    client = Client(headers={"Accept-Language": "es"})
    client.force_login(users["admin"])
    url = reverse("releases:audit", args=[release.version])

    pages = [client.get(url, {"page": n}).content.decode() for n in (1, 2, 3)]

    raw = [key for html in pages for key in re.findall(r"<dt>([a-z_]+)</dt>", html)]
    assert raw == []
    with translation.override("es"):
        assert f"<dt>{key_label('approved_by')}</dt>" in "".join(pages)


# What a value kept as stored reads as: a moment in ISO 8601, a JSON yes or no, a JSON
# list of records or a record.
STORED_FORM = re.compile(r"T\d\d:\d\d:\d\d|\btrue\b|\bfalse\b|\[\{|\{\"")


def _audit_rows(client: Client, release: Release) -> str:
    """The text of every row of a release's audit page, page after page, each run of
    markup and spaces read as one space."""
    url = reverse("releases:audit", args=[release.version])
    numbers = client.get(url).context["page"].paginator.page_range
    pages = [client.get(url, {"page": n}).content.decode() for n in numbers]
    bodies = [re.search(r"<tbody>(.*)</tbody>", page, re.S) for page in pages]
    text = " ".join(re.sub(r"<[^>]+>", " ", body.group(1)) for body in bodies if body)
    return " ".join(html.unescape(text).split())


def test_the_audit_page_writes_every_value_in_words_in_either_language(
    events: list[AuditEvent], release: Release, other: Release, users: dict[str, Any]
) -> None:
    deployed = next(e for e in events if e.action == AuditAction.DEPLOY_STARTED)
    for language in ("es", "en"):
        client = Client(headers={"Accept-Language": language})
        client.force_login(users["admin"])

        text = _audit_rows(client, release) + _audit_rows(client, other)

        assert STORED_FORM.findall(text) == [], language
        with translation.override(language):
            started = moment(datetime.fromisoformat(deployed.after["started_at"]))
            assert started in text
            assert f"{key_label('hides_personal')} {_('yes')}" in text
            assert f"{key_label('done')} {_('no')}" in text
        assert "DevOps Lead: Dana Ops, +34 600 000 003" in text
