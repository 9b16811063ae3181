"""A share link that hides personal details: its page, its live updates and its timeline
name everyone by their roles only, on every panel, while an ordinary link names them.

The people here have names of their own, found nowhere else on a page: the conftest's
personas are named after their roles, which every page prints as codes.
"""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from releases import workflow
from releases.models import ActorKind, AuditAction, AuditEvent, ChecklistTemplate, Release, Role
from releases.timeline import Reader, by_role, human_line

PEOPLE = {
    Role.DEVOPS: ("dortega", "Dolores", "Ortega"),
    Role.BACKEND: ("bherrera", "Bruno", "Herrera"),
    Role.FRONTEND: ("fruiz", "Fernanda", "Ruiz"),
    Role.QA: ("qalvarez", "Quique", "Alvarez"),
    Role.PRODUCT_OWNER: ("polmedo", "Paula", "Olmedo"),
    Role.SUPPORT: ("scampos", "Sergio", "Campos"),
}
STAFF = ("rgarcia", "Ramona", "Garcia")
# The emergency contact the small template gives the release.
CONTACT = ("Dana Ops", "600 000 001", "dana@example.com", "tel:", "mailto:")


def personal_details() -> list[str]:
    details = list(CONTACT)
    for username, first, last in [*PEOPLE.values(), STAFF]:
        details += [username, f"{first} {last}", first, last, f"{username}@people.example"]
    return details


@pytest.fixture
def people(transactional_db: None) -> dict[str, Any]:
    User = get_user_model()
    made = {
        role: User.objects.create_user(
            username, f"{username}@people.example", "pw", first_name=first, last_name=last
        )
        for role, (username, first, last) in PEOPLE.items()
    }
    username, first, last = STAFF
    made["staff"] = User.objects.create_superuser(
        username, f"{username}@people.example", "pw", first_name=first, last_name=last
    )
    return made


@pytest.fixture
def day(people: dict[str, Any], small_template: ChecklistTemplate) -> Release:
    """Signed off and approved, with a lead's sign-off withdrawn after the gate, an
    incident update posted and the deploy under way."""
    release = workflow.create_release(
        small_template, version="v9.9.9", title="Autumn", by=people["staff"]
    )
    for role in Role:
        workflow.assign(release, role=role, user=people[role], by=people["staff"])
    for entry in release.items.filter(before_gate=True):
        workflow.tick(entry, by=people[entry.owner_role])
    for role in Role.leads():
        workflow.sign_off(release, role=role, phase="Pre", by=people[role])
    workflow.tick(release.items.get(text="Deploy the backend"), by=people[Role.BACKEND])
    workflow.sign_off(release, role=Role.BACKEND, phase="Deploy", by=people[Role.BACKEND])
    workflow.withdraw_sign_off(release, role=Role.BACKEND, phase="Deploy", by=people[Role.BACKEND])
    workflow.approve(release, by=people[Role.PRODUCT_OWNER])
    workflow.start_deploy(release, by=people[Role.DEVOPS], reason="window open")
    workflow.post_update(
        release, state="monitoring", message="Deploying now", by=people[Role.PRODUCT_OWNER]
    )
    release.refresh_from_db()
    return release


def rolled_back(release: Release, people: dict[str, Any]) -> None:
    """The deploy finished, then rolled back: the approval revoked, the step ticked by
    staff (who thereby mitigated and resolved it) with a note, the rollback closed."""
    workflow.finish_deploy(release, by=people[Role.DEVOPS], result="success", reason="ok")
    workflow.declare_rollback(
        release, by=people[Role.DEVOPS], reason="errors climbing", severity="critical"
    )
    step = release.rollback_steps.get()
    workflow.tick_rollback_step(step, by=people["staff"], mitigates=True)
    workflow.annotate_rollback_step(
        step, by=people["staff"], note="took 3 min", evidence_url="https://ci.example/run/9"
    )
    workflow.close_rollback(release, by=people[Role.DEVOPS], cause="a bad migration")


def share(release: Release, people: dict[str, Any], *, hides: bool) -> str:
    return workflow.create_share_link(
        release, label="customer", by=people["staff"], hides_personal=hides
    )


@pytest.fixture
def client() -> Client:
    return Client(headers={"Accept-Language": "en"})


def shared_pages(client: Client, token: str) -> dict[str, str]:
    """The link's status page, its live update from nothing, and its timeline."""
    urls = {
        "page": reverse("releases:shared-status", args=[token]),
        "live": reverse("releases:shared-live-poll", args=[token]) + "?since=0",
        "timeline": reverse("releases:shared-timeline", args=[token]),
    }
    shown = {}
    for name, url in urls.items():
        response = client.get(url)
        assert response.status_code == 200, (name, response.status_code)
        shown[name] = response.content.decode()
    return shown


def assert_by_role_only(shown: dict[str, str]) -> None:
    for name, html in shown.items():
        found = [detail for detail in personal_details() if detail in html]
        assert not found, (name, found)


def test_a_hiding_link_names_nobody_while_the_deploy_runs(
    people: dict[str, Any], day: Release, client: Client
) -> None:
    hidden, ordinary = share(day, people, hides=True), share(day, people, hides=False)

    shown = shared_pages(client, hidden)

    assert_by_role_only(shown)
    page = shown["page"]
    assert "Go-live approved" in page and "Deploy started" in page
    # Whoever acted is there by their role.
    rollout = page[page.index('id="rollout-panel"') :]
    assert "DevOps Lead" in rollout.split("</dl>")[0]
    assert "withdrawn by Backend Lead" in page
    named = shared_pages(client, ordinary)["page"]
    for detail in ("Paula Olmedo", "dortega (Dolores Ortega)", "Bruno Herrera", "Dana Ops"):
        assert detail in named


def test_a_hiding_link_names_nobody_once_rolled_back(
    people: dict[str, Any], day: Release, client: Client
) -> None:
    hidden, ordinary = share(day, people, hides=True), share(day, people, hides=False)
    rolled_back(day, people)

    shown = shared_pages(client, hidden)

    assert_by_role_only(shown)
    page = shown["page"]
    assert "Go-live approval was revoked." in page and "Rollback closed" in page
    for html in (page, shown["live"]):
        rollout = html[html.index('id="rollout-panel"') :]
        assert "DevOps Lead" in rollout and "Staff" in rollout
        # The step's note and evidence are the team's words.
        assert "took 3 min" not in rollout and "ci.example" not in rollout
    named = shared_pages(client, ordinary)
    for detail in ("dortega (Dolores Ortega)", "rgarcia (Ramona Garcia)"):
        assert detail in named["page"] and detail in named["live"]
    assert "Paula Olmedo" in named["page"]
    # Any link leaves the team's notes and evidence out, on the page as on its timeline.
    for html in named.values():
        assert "took 3 min" not in html and "ci.example" not in html
    # Support, on the team, reads them on the same status page.
    support = Client(headers={"Accept-Language": "en"})
    support.force_login(people[Role.SUPPORT])
    team = support.get(reverse("releases:status", args=[day.version])).content.decode()
    assert "took 3 min" in team and "https://ci.example/run/9" in team


def test_it_names_each_kind_of_actor_as_a_hiding_link_does() -> None:
    roles = {"dortega": {Role.DEVOPS, Role.PRODUCT_OWNER}}

    assert by_role("dortega (Dolores Ortega)", roles) == "DevOps Lead, Product Owner"
    assert by_role("dortega", roles) == "DevOps Lead, Product Owner"
    # Staff, or someone since removed from the release.
    assert by_role("rgarcia (Ramona Garcia)", roles) == "Staff"
    # A token's label is staff's free text: "ci:jane-laptop" would name Jane.
    assert by_role("ci:jane-laptop", roles) == "Pipeline token"
    assert by_role("check:tls", roles) == "Automated check tls"
    assert by_role("manage.py load_demo", roles) == "manage.py load_demo"


def test_a_hiding_links_timeline_names_a_pipeline_token_as_one() -> None:
    deployed = AuditEvent(
        action=AuditAction.DEPLOY_STARTED,
        actor_id=3,
        actor_label="ci:jane-laptop",
        actor_kind=ActorKind.PIPELINE,
        created_at=timezone.now(),
    )

    assert human_line(deployed, Reader(hides_personal=True, shared=True)).who == "Pipeline token"
    assert human_line(deployed, Reader(shared=True)).who == "ci:jane-laptop"
    # The API's timeline, read by the team's own pipelines.
    assert human_line(deployed, Reader(hides_personal=True)).who == "ci:jane-laptop"


def test_a_hiding_links_timeline_names_whoever_said_ready_by_role() -> None:
    label = "scampos (Sergio Campos)"
    ready = AuditEvent(
        action=AuditAction.ACKNOWLEDGED,
        actor_id=7,
        actor_label=label,
        actor_kind=ActorKind.PERSON,
        target="Tell support",
        after={"acknowledged": {"by": label, "at": "2026-12-07T10:00:00+00:00"}},
        created_at=timezone.now(),
    )
    hiding = Reader(roles_by_user={7: frozenset({Role.SUPPORT})}, hides_personal=True)

    line = human_line(ready, hiding)

    assert (line.who, "Ready: Support" in line.details) == ("Support", True)
    assert label not in str(line.details)
    assert f"Ready: {label}" in human_line(ready, Reader()).details
