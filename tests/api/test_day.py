"""The release day over the pipeline API.

A deploy job reports the deploy (POST /api/releases/<version>/deploy), declares a
rollback (…/rollback) and works through its steps (…/rollback/steps/<n>), posts
incident updates (…/updates), keeps the maintenance window (PUT …/window) and reads the
timeline (GET …/timeline). A token acts as its role under the rules people meet in the
browser, and is audited as ci:LABEL. The personas are the conftest's.
"""

from __future__ import annotations

import calendar
import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone, translation

from checks.models import PipelineToken
from releases import checklists, workflow
from releases.actors import SystemActor
from releases.models import (
    ActorKind,
    AuditAction,
    AuditEvent,
    Deployment,
    DeployResult,
    IncidentUpdate,
    MaintenanceWindow,
    Release,
    ReleaseStatus,
    Role,
    Rollback,
    RollbackStep,
    RollbackStepRecord,
    WindowState,
)
from releases.templatetags.moments import moment
from tests.api.pipeline import QA_ITEM, REFUSED, RUN_URL, bearer, make_token
from tests.conftest import PERSONAS

MADRID = "Europe/Madrid"


@pytest.fixture
def deploying(approved: Release, users: dict[str, Any]) -> Release:
    workflow.start_deploy(approved, by=users["devops"], reason="window open")
    approved.refresh_from_db()
    return approved


@pytest.fixture
def rolling_back(deploying: Release, users: dict[str, Any]) -> Release:
    """A rollback declared, with a QA step beside the small template's DevOps one."""
    RollbackStep.objects.create(
        release=deploying, position=1, text="Check the site", owner_role=Role.QA
    )
    workflow.declare_rollback(
        deploying, by=users["devops"], reason="errors climbing", severity="critical"
    )
    deploying.refresh_from_db()
    return deploying


def url(name: str, release: Release, *args: Any) -> str:
    return reverse(f"api:{name}", args=[release.version, *args])


def send(client: Client, path: str, token: str, body: Any, method: str = "post") -> Any:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    call = getattr(client, method)
    return call(path, data=raw, content_type="application/json", headers=bearer(token))


def day_fingerprint(release: Release) -> dict[str, Any]:
    """Everything a release-day request could change, to prove a refused one changed
    nothing."""
    release.refresh_from_db()
    return {
        "release": (release.status, release.revision),
        "deployments": list(
            Deployment.objects.filter(release=release)
            .order_by("pk")
            .values_list("pk", "finished_at", "result", "start_reason", "finish_reason")
        ),
        "rollbacks": list(
            Rollback.objects.filter(release=release)
            .order_by("pk")
            .values_list("pk", "mitigated_at", "resolved_at", "closed_at")
        ),
        "steps": list(
            RollbackStepRecord.objects.filter(rollback__release=release)
            .order_by("pk")
            .values_list("pk", "done_at", "note", "evidence_url", "changed_at")
        ),
        "updates": list(IncidentUpdate.objects.filter(release=release).values_list("pk")),
        "window": list(
            MaintenanceWindow.objects.filter(release=release).values_list(
                "starts_at", "ends_at", "time_zone", "state", "sequence"
            )
        ),
        "approvals": list(release.approvals.order_by("pk").values_list("pk", "revoked_at")),
        "items": list(release.items.order_by("position").values_list("state", "note")),
        "events": AuditEvent.objects.count(),
    }


def only_event(action: AuditAction) -> AuditEvent:
    return AuditEvent.objects.get(action=action)


def wall(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M")


def tomorrow_at(hour: int) -> datetime:
    day = timezone.now().astimezone(ZoneInfo(MADRID)).date() + timedelta(days=1)
    return datetime(day.year, day.month, day.day, hour)


def last_sunday(year: int, month: int) -> int:
    return max(week[calendar.SUNDAY] for week in calendar.monthcalendar(year, month))


# --- the deploy --------------------------------------------------------------------------


def test_a_devops_token_records_the_deploy_started_with_the_runs_link(
    approved: Release, ci: Client
) -> None:
    token = make_token(approved, Role.DEVOPS, "deploys")
    before = approved.revision

    response = send(ci, url("deploy", approved), token, {"state": "started", "url": RUN_URL})

    assert response.status_code == 200
    assert response["Cache-Control"] == "no-store"
    deployment = Deployment.objects.get(release=approved)
    body = response.json()
    assert body["status"] == ReleaseStatus.APPROVED
    assert body["revision"] == before + 1
    assert body["deploy"]["finished_at"] is None
    assert body["deploy"]["result"] is None
    assert body["deploy"]["started_at"] == deployment.started_at.isoformat()
    assert (deployment.started_by_label, deployment.start_reason) == ("ci:deploys", RUN_URL)
    event = only_event(AuditAction.DEPLOY_STARTED)
    assert (event.actor_label, event.actor_kind, event.actor) == (
        "ci:deploys",
        ActorKind.PIPELINE,
        None,
    )
    assert event.after["reason"] == RUN_URL


def test_a_deploy_finished_with_success_makes_the_release_deployed(
    deploying: Release, ci: Client
) -> None:
    token = make_token(deploying, Role.DEVOPS, "deploys")

    response = send(
        ci,
        url("deploy", deploying),
        token,
        {"state": "finished", "result": "success", "reason": "smoke green", "url": RUN_URL},
    )

    assert response.status_code == 200
    assert response.json()["status"] == ReleaseStatus.DEPLOYED
    deploying.refresh_from_db()
    assert deploying.status == ReleaseStatus.DEPLOYED
    deployment = Deployment.objects.get(release=deploying)
    assert deployment.result == DeployResult.SUCCESS
    assert deployment.finished_by_label == "ci:deploys"
    assert deployment.finish_reason == f"smoke green — {RUN_URL}"
    assert only_event(AuditAction.DEPLOY_FINISHED).actor_label == "ci:deploys"


def test_a_deploy_finished_with_failure_leaves_the_release_approved(
    deploying: Release, ci: Client
) -> None:
    token = make_token(deploying, Role.PRODUCT_OWNER, "po-bot")

    response = send(ci, url("deploy", deploying), token, {"state": "finished", "result": "failure"})

    assert response.status_code == 200
    body = response.json()
    assert (body["status"], body["deploy"]["result"]) == (ReleaseStatus.APPROVED, "failure")
    deployment = Deployment.objects.get(release=deploying)
    # Neither a reason nor a link: the record names who said so.
    assert (deployment.result, deployment.finish_reason) == (DeployResult.FAILURE, "ci:po-bot")


def test_a_deploy_reason_that_says_nothing_is_no_reason(deploying: Release, ci: Client) -> None:
    token = make_token(deploying, Role.PRODUCT_OWNER, "po-bot")

    response = send(
        ci,
        url("deploy", deploying),
        token,
        {"state": "finished", "result": "failure", "reason": "\u200b\u3000\u2066"},
    )

    assert response.status_code == 200
    deployment = Deployment.objects.get(release=deploying)
    assert deployment.finish_reason == "ci:po-bot"


@pytest.mark.parametrize(
    ("body", "error"),
    [
        (b"{not json", "The body must be a JSON object."),
        (b"[]", "The body must be a JSON object."),
        ({"state": "started", "by": "me"}, "Unknown fields: by."),
        ({}, "state must be one of: started, finished."),
        ({"state": "running"}, "state must be one of: started, finished."),
        ({"state": 1}, "state must be one of: started, finished."),
        (
            {"state": "started", "result": "success"},
            "result is sent only when the deploy has finished.",
        ),
        ({"state": "finished"}, "result must be one of: success, failure."),
        ({"state": "finished", "result": "ok"}, "result must be one of: success, failure."),
        ({"state": "started", "url": 5}, "url must be a string."),
        ({"state": "started", "url": "https://ci.example.com/" + "a" * 1000},
         "url is longer than 1000 characters."),
        ({"state": "started", "reason": ["x"]}, "reason must be a string."),
        ({"state": "started", "reason": "x" * 998}, "reason is longer than 997 characters."),
        (
            {"state": "started", "reason": "go\x00"},
            "reason must not contain NUL or unpaired surrogate characters.",
        ),
    ],
)  # fmt: skip
def test_it_refuses_a_malformed_deploy_report_and_writes_nothing(
    approved: Release, ci: Client, body: Any, error: str
) -> None:
    token = make_token(approved, Role.DEVOPS)
    before = day_fingerprint(approved)

    response = send(ci, url("deploy", approved), token, body)

    assert response.status_code == 400
    assert response.json() == {"error": error}
    assert day_fingerprint(approved) == before


@pytest.mark.parametrize(
    "said", [{"reason": "ok\u202e"}, {"url": "https://ci.example/run/\u202e1gpj.exe"}]
)
def test_it_refuses_hidden_bidirectional_controls_in_a_reason_or_a_link(
    approved: Release, ci: Client, said: dict[str, str]
) -> None:
    token = make_token(approved, Role.DEVOPS)
    before = day_fingerprint(approved)

    response = send(ci, url("deploy", approved), token, {"state": "started", **said})

    assert response.status_code == 400
    [field] = said
    assert response.json()["error"].startswith(f"{field} contains invisible bidirectional")
    assert "U+202E" in response.json()["error"]
    assert day_fingerprint(approved) == before


@pytest.mark.parametrize(
    ("fixture", "body", "error"),
    [
        ("release", {"state": "started"}, "The deploy starts only once go-live is approved."),
        (
            "approved",
            {"state": "finished", "result": "success"},
            "No deploy is under way: record its start first.",
        ),
        ("deploying", {"state": "started"}, "The deploy has already started."),
    ],
)
def test_it_answers_a_deploy_report_out_of_turn_with_422_and_writes_nothing(
    request: pytest.FixtureRequest, ci: Client, fixture: str, body: Any, error: str
) -> None:
    release: Release = request.getfixturevalue(fixture)
    token = make_token(release, Role.DEVOPS)
    before = day_fingerprint(release)

    response = send(ci, url("deploy", release), token, body)

    assert response.status_code == 422
    assert response.json() == {"error": error}
    assert day_fingerprint(release) == before


@pytest.mark.parametrize("role", [Role.QA, Role.BACKEND, Role.SUPPORT])
def test_a_token_of_another_role_may_not_record_the_deploy(
    approved: Release, ci: Client, role: str
) -> None:
    token = make_token(approved, role)
    before = day_fingerprint(approved)

    response = send(ci, url("deploy", approved), token, {"state": "started"})

    assert response.status_code == 403
    assert response.json() == {"error": "Only DevOps or the Product Owner record the deploy."}
    assert day_fingerprint(approved) == before


# --- links, on every endpoint that takes one -------------------------------------------------


@dataclass(frozen=True)
class LinkTaker:
    """An endpoint taking a link: the release it acts on (a fixture), the role acting,
    its path, a body that would be taken with the link, and where the link is kept."""

    fixture: str
    role: str
    path: Callable[[Release], str]
    body: dict[str, Any]
    kept: Callable[[Release], str]


LINK_TAKERS = {
    "evidence": LinkTaker(
        "release",
        Role.QA,
        lambda release: url("evidence", release),
        {"item": QA_ITEM, "outcome": "pass"},
        lambda release: release.items.get(text=QA_ITEM).evidence_url,
    ),
    "deploy": LinkTaker(
        "approved",
        Role.DEVOPS,
        lambda release: url("deploy", release),
        {"state": "started"},
        lambda release: Deployment.objects.get(release=release).start_reason,
    ),
    "rollback step": LinkTaker(
        "rolling_back",
        Role.DEVOPS,
        lambda release: url("rollback-step", release, 1),
        {"done": True},
        lambda release: RollbackStepRecord.objects.get(step__position=0).evidence_url,
    ),
}


@pytest.mark.parametrize("taker", LINK_TAKERS.values(), ids=LINK_TAKERS.keys())
@pytest.mark.parametrize(
    ("link", "error"),
    [
        ("javascript:alert(1)", "url must be an http(s) URL."),
        ("not a url", "url must be an http(s) URL."),
        ("ftp://ci.example.com/run/1", "url must be an http(s) URL."),
        ("https://ci.example.com/run 1", "url must be an http(s) URL."),
        ("https://ci.example.com/run/\x07", "url must be an http(s) URL."),
        (
            "https://bot:secret@ci.example.com/run/1",
            "url must not hold credentials (user:password@): everyone who reads the release "
            "sees it.",
        ),
    ],
)
def test_every_endpoint_refuses_a_bad_link_alike_and_writes_nothing(
    request: pytest.FixtureRequest, ci: Client, taker: LinkTaker, link: str, error: str
) -> None:
    release = request.getfixturevalue(taker.fixture)
    token = make_token(release, taker.role)
    before = day_fingerprint(release)

    response = send(ci, taker.path(release), token, {**taker.body, "url": link})

    assert response.status_code == 422
    assert response.json() == {"error": error}
    assert day_fingerprint(release) == before


@pytest.mark.parametrize("taker", LINK_TAKERS.values(), ids=LINK_TAKERS.keys())
@pytest.mark.parametrize("link", ["https://ci/x", "http://jenkins:8080/job/1/console"])
def test_every_endpoint_takes_a_link_to_a_ci_host_named_without_a_domain(
    request: pytest.FixtureRequest, ci: Client, taker: LinkTaker, link: str
) -> None:
    release = request.getfixturevalue(taker.fixture)
    token = make_token(release, taker.role)

    response = send(ci, taker.path(release), token, {**taker.body, "url": f" {link} "})

    assert response.status_code == 200
    assert taker.kept(release).endswith(link)


def test_a_bad_link_is_refused_in_the_callers_language(approved: Release) -> None:
    token = make_token(approved, Role.DEVOPS)
    spanish = Client(headers={"Accept-Language": "es"})

    response = send(spanish, url("deploy", approved), token, {"state": "started", "url": "x"})

    assert response.status_code == 422
    assert response.json() == {"error": "url debe ser una URL http(s)."}


# --- the rollback --------------------------------------------------------------------------


def test_a_devops_token_declares_a_rollback_on_a_deploy_under_way(
    deploying: Release, ci: Client
) -> None:
    token = make_token(deploying, Role.DEVOPS, "deploys")

    response = send(
        ci, url("rollback", deploying), token, {"reason": "5xx on checkout", "severity": "major"}
    )

    assert response.status_code == 200
    body = response.json()
    assert body["status"] == ReleaseStatus.ROLLED_BACK
    assert body["rollback"]["severity"] == "major"
    assert body["rollback"]["steps"] == [
        {
            "step": 1,
            "text": "Roll back",
            "owner_role": Role.DEVOPS,
            "done": False,
            "done_at": None,
            "note": "",
            "url": "",
            "version": 0,
        }
    ]
    deploying.refresh_from_db()
    assert deploying.status == ReleaseStatus.ROLLED_BACK
    assert deploying.active_approval() is None
    declared = Rollback.objects.get(release=deploying)
    assert (declared.reason, declared.severity, declared.declared_by_label) == (
        "5xx on checkout",
        "major",
        "ci:deploys",
    )
    # The deploy under way ends with it, as failed.
    assert Deployment.objects.get(release=deploying).result == DeployResult.FAILURE
    event = only_event(AuditAction.ROLLBACK_DECLARED)
    assert (event.actor_label, event.actor_kind) == ("ci:deploys", ActorKind.PIPELINE)


@pytest.mark.parametrize(
    ("body", "error"),
    [
        ({"severity": "critical"}, "reason is required."),
        ({"reason": None, "severity": "critical"}, "reason must be a string."),
        ({"reason": "x" * 2001, "severity": "critical"}, "reason is longer than 2000 characters."),
        ({"reason": "down"}, "severity must be one of: critical, major, minor."),
        ({"reason": "down", "severity": "high"},
         "severity must be one of: critical, major, minor."),
        ({"reason": "down", "severity": "minor", "detected": "now"}, "Unknown fields: detected."),
        (
            {"reason": "down\x00", "severity": "minor"},
            "reason must not contain NUL or unpaired surrogate characters.",
        ),
    ],
)  # fmt: skip
def test_it_refuses_a_malformed_rollback_and_writes_nothing(
    deploying: Release, ci: Client, body: Any, error: str
) -> None:
    token = make_token(deploying, Role.DEVOPS)
    before = day_fingerprint(deploying)

    response = send(ci, url("rollback", deploying), token, body)

    assert response.status_code == 400
    assert response.json() == {"error": error}
    assert day_fingerprint(deploying) == before


def test_it_refuses_a_second_rollback(rolling_back: Release, ci: Client) -> None:
    token = make_token(rolling_back, Role.DEVOPS)
    before = day_fingerprint(rolling_back)

    again = send(ci, url("rollback", rolling_back), token, {"reason": "x", "severity": "minor"})

    assert again.status_code == 422
    assert again.json() == {"error": "A rollback is already declared on this release."}
    assert day_fingerprint(rolling_back) == before


# Invisible characters, bidirectional controls among them, say nothing as spaces do.
@pytest.mark.parametrize("reason", ["  ", "\u200b\u2060", "\ufeff\u00a0", "\u202e"])
def test_it_refuses_a_blank_reason_for_a_rollback(
    deploying: Release, ci: Client, reason: str
) -> None:
    token = make_token(deploying, Role.DEVOPS)
    before = day_fingerprint(deploying)

    blank = send(ci, url("rollback", deploying), token, {"reason": reason, "severity": "minor"})

    assert blank.status_code == 422
    assert blank.json() == {"error": "Say why the release is rolled back."}
    assert day_fingerprint(deploying) == before


def test_a_rollback_needs_a_deploy_first(approved: Release, ci: Client) -> None:
    token = make_token(approved, Role.DEVOPS)
    before = day_fingerprint(approved)

    response = send(ci, url("rollback", approved), token, {"reason": "x", "severity": "minor"})

    assert response.status_code == 422
    assert "deployed release" in response.json()["error"]
    assert day_fingerprint(approved) == before


def test_a_qa_token_may_not_declare_a_rollback(deploying: Release, ci: Client) -> None:
    token = make_token(deploying, Role.QA)
    before = day_fingerprint(deploying)

    response = send(ci, url("rollback", deploying), token, {"reason": "x", "severity": "minor"})

    assert response.status_code == 403
    assert response.json() == {"error": "Only DevOps or the Product Owner declare a rollback."}
    assert day_fingerprint(deploying) == before


def test_a_devops_token_mitigates_resolves_and_closes_the_rollback(
    rolling_back: Release, ci: Client
) -> None:
    token = make_token(rolling_back, Role.DEVOPS)

    mitigated = send(ci, url("rollback-move", rolling_back, "mitigate"), token, {"reason": "off"})
    resolved = send(ci, url("rollback-move", rolling_back, "resolve"), token, {"reason": "back"})
    closed = send(ci, url("rollback-move", rolling_back, "close"), token, {"cause": "a migration"})

    assert [r.status_code for r in (mitigated, resolved, closed)] == [200, 200, 200]
    rollback_now = Rollback.objects.get(release=rolling_back)
    assert rollback_now.mitigated_at and rollback_now.resolved_at and rollback_now.closed_at
    assert rollback_now.cause == "a migration"
    assert closed.json()["rollback"]["closed_at"] == rollback_now.closed_at.isoformat()
    assert AuditEvent.objects.get(action=AuditAction.ROLLBACK_CLOSED).actor_label.startswith("ci:")


@pytest.mark.parametrize(
    ("move", "body", "status"),
    [
        ("close", {}, 400),
        ("close", {"cause": "   "}, 422),
        ("close", {"cause": "\u200b\u2060"}, 422),
        ("mitigate", {"reason": "\ufeff"}, 422),
        ("resolve", {"reason": "\u3000\u200d"}, 422),
        ("close", {"reason": "the wrong field"}, 400),
        ("close", {"cause": 7}, 400),
        ("close", {"cause": "x" * 2001}, 400),
        ("mitigate", {"reason": "a\u0000b"}, 400),
        ("abandon", {"reason": "no such move"}, 404),
    ],
)
def test_it_refuses_a_malformed_rollback_move_and_writes_nothing(
    move: str, body: dict[str, Any], status: int, rolling_back: Release, ci: Client
) -> None:
    token = make_token(rolling_back, Role.DEVOPS)
    before = day_fingerprint(rolling_back)

    response = send(ci, url("rollback-move", rolling_back, move), token, body)

    assert response.status_code == status
    assert response.json()["error"]
    assert day_fingerprint(rolling_back) == before


def test_a_qa_token_may_not_close_a_rollback(rolling_back: Release, ci: Client) -> None:
    token = make_token(rolling_back, Role.QA)
    before = day_fingerprint(rolling_back)

    response = send(ci, url("rollback-move", rolling_back, "close"), token, {"cause": "x"})

    assert response.status_code == 403
    assert day_fingerprint(rolling_back) == before


def test_a_rollback_is_closed_once(rolling_back: Release, ci: Client) -> None:
    token = make_token(rolling_back, Role.DEVOPS)
    send(ci, url("rollback-move", rolling_back, "resolve"), token, {"reason": "back"})
    send(ci, url("rollback-move", rolling_back, "close"), token, {"cause": "first"})

    again = send(ci, url("rollback-move", rolling_back, "close"), token, {"cause": "second"})

    assert again.status_code == 422
    assert Rollback.objects.get(release=rolling_back).cause == "first"


# --- the rollback's steps ------------------------------------------------------------------


def test_a_devops_token_ticks_its_step_with_a_note_and_a_link(
    rolling_back: Release, ci: Client
) -> None:
    token = make_token(rolling_back, Role.DEVOPS, "deploys")

    response = send(
        ci,
        url("rollback-step", rolling_back, 1),
        token,
        {"done": True, "note": "previous image live", "url": RUN_URL},
    )

    assert response.status_code == 200
    body = response.json()
    assert (body["step"], body["text"], body["done"], body["note"], body["url"]) == (
        1,
        "Roll back",
        True,
        "previous image live",
        RUN_URL,
    )
    # The QA step is still open.
    assert body["rollback"] == {"resolved": False, "closed": False}
    record = RollbackStepRecord.objects.get(step__position=0)
    assert record.done
    assert (record.done_by_label, record.note, record.evidence_url) == (
        "ci:deploys",
        "previous image live",
        RUN_URL,
    )
    for action in (AuditAction.ROLLBACK_STEP_DONE, AuditAction.ROLLBACK_STEP_ANNOTATED):
        event = only_event(action)
        assert (event.actor_label, event.actor_kind) == ("ci:deploys", ActorKind.PIPELINE)
    assert only_event(AuditAction.ROLLBACK_STEP_DONE).after["step"] == 1


def test_the_last_step_done_resolves_the_rollback_and_reopening_a_step_takes_it_back(
    rolling_back: Release, ci: Client
) -> None:
    devops = make_token(rolling_back, Role.DEVOPS, "deploys")
    qa = make_token(rolling_back, Role.QA, "e2e")

    send(ci, url("rollback-step", rolling_back, 1), devops, {"done": True})
    last = send(ci, url("rollback-step", rolling_back, 2), qa, {"done": True})
    reopened = send(ci, url("rollback-step", rolling_back, 2), qa, {"done": False})

    assert last.status_code == reopened.status_code == 200
    assert last.json()["rollback"] == {"resolved": True, "closed": False}
    assert reopened.json()["done"] is False
    assert reopened.json()["rollback"] == {"resolved": False, "closed": False}
    assert not RollbackStepRecord.objects.get(step__position=1).done
    assert only_event(AuditAction.ROLLBACK_RESOLVED).actor_label == "ci:e2e"
    assert only_event(AuditAction.ROLLBACK_STEP_REOPENED).actor_label == "ci:e2e"
    assert only_event(AuditAction.ROLLBACK_UNRESOLVED).actor_label == "ci:e2e"


def test_a_step_change_based_on_an_older_version_is_a_conflict(
    rolling_back: Release, ci: Client
) -> None:
    token = make_token(rolling_back, Role.DEVOPS, "deploys")
    step = url("rollback-step", rolling_back, 1)
    seen = send(ci, step, token, {"note": "rolling back"}).json()["version"]
    now = send(ci, step, token, {"note": "image swapped", "version": seen}).json()["version"]
    before = day_fingerprint(rolling_back)

    stale = send(ci, step, token, {"done": True, "note": "old news", "version": seen})

    assert stale.status_code == 409
    assert stale.json() == {
        "error": f"Step 1 was changed by ci:deploys since version {seen}, the one you sent; "
        f"it is now pending, at version {now}."
    }
    assert day_fingerprint(rolling_back) == before
    # The version it was told last, or none at all: the change lands.
    fresh = send(ci, step, token, {"done": True, "note": "done", "version": now})
    unversioned = send(ci, step, token, {"note": "checked"})
    assert (fresh.status_code, unversioned.status_code) == (200, 200)
    assert fresh.json()["done"] is True
    assert RollbackStepRecord.objects.get(step__position=0).note == "checked"


def test_a_stale_step_change_is_told_in_spanish_from_a_capital_letter(
    rolling_back: Release,
) -> None:
    token = make_token(rolling_back, Role.DEVOPS, "deploys")
    spanish = Client(headers={"Accept-Language": "es"})
    step = url("rollback-step", rolling_back, 1)
    seen = send(spanish, step, token, {"note": "rolling back"}).json()["version"]
    now = send(spanish, step, token, {"note": "image swapped"}).json()["version"]

    stale = send(spanish, step, token, {"done": True, "version": seen})

    assert stale.status_code == 409
    assert stale.json() == {
        "error": f"El paso 1 lo cambió ci:deploys después de la versión {seen}, la que "
        f"enviaste; ahora está pendiente, en la versión {now}."
    }


@pytest.mark.parametrize("body", [{"done": True}, {"note": "restored"}])
def test_a_version_the_step_never_had_is_refused_as_such(
    rolling_back: Release, ci: Client, body: dict[str, Any]
) -> None:
    token = make_token(rolling_back, Role.DEVOPS, "deploys")
    step = url("rollback-step", rolling_back, 1)
    current = send(ci, step, token, {"note": "rolling back"}).json()["version"]
    before = day_fingerprint(rolling_back)

    response = send(ci, step, token, {**body, "version": current + 1})

    assert response.status_code == 422
    assert response.json() == {
        "error": f"Step 1 has never had version {current + 1}; its version is {current}."
    }
    assert day_fingerprint(rolling_back) == before


def test_a_step_never_changed_has_had_no_version_but_0(rolling_back: Release, ci: Client) -> None:
    token = make_token(rolling_back, Role.DEVOPS, "deploys")

    response = send(
        ci, url("rollback-step", rolling_back, 1), token, {"done": True, "version": 999}
    )

    assert response.status_code == 422
    assert response.json() == {"error": "Step 1 has never had version 999; its version is 0."}


def test_only_the_steps_owner_role_may_tick_it(rolling_back: Release, ci: Client) -> None:
    devops = make_token(rolling_back, Role.DEVOPS, "deploys")
    qa = make_token(rolling_back, Role.QA, "e2e")
    before = day_fingerprint(rolling_back)

    refused = [
        send(ci, url("rollback-step", rolling_back, 2), devops, {"done": True}),
        send(ci, url("rollback-step", rolling_back, 1), qa, {"note": "mine now"}),
    ]

    for response in refused:
        assert response.status_code == 403
        assert response.json() == {"error": "Only the step's owner ticks it."}
    assert day_fingerprint(rolling_back) == before


@pytest.mark.parametrize("number", ["0", "3", "01", "x", "9" * 5000])
def test_it_answers_404_for_a_step_the_plan_does_not_have(
    rolling_back: Release, ci: Client, number: str
) -> None:
    token = make_token(rolling_back, Role.DEVOPS)
    before = day_fingerprint(rolling_back)

    response = send(ci, url("rollback-step", rolling_back, number), token, {"done": True})

    assert response.status_code == 404
    assert response["Content-Type"] == "application/json"
    assert response.json()["error"].startswith("No rollback step ")
    assert day_fingerprint(rolling_back) == before


# A number quoted back is quoted whole, or marked as cut: never a shorter number.
@pytest.mark.parametrize(
    ("number", "quoted"),
    [
        ("3", "3"),
        ("9" * 20, "9" * 20),
        ("1" + "0" * 20, "1" + "0" * 18 + "…"),
        ("9" * 5000, "9" * 19 + "…"),
    ],
)
def test_it_quotes_a_missing_steps_number_as_asked_or_marked_as_cut(
    rolling_back: Release, ci: Client, number: str, quoted: str
) -> None:
    token = make_token(rolling_back, Role.DEVOPS)

    response = send(ci, url("rollback-step", rolling_back, number), token, {"done": True})

    assert response.status_code == 404
    assert response.json() == {"error": f"No rollback step {quoted} on {rolling_back.version}."}


def test_it_quotes_an_unknown_rollback_move_as_asked_or_marked_as_cut(
    rolling_back: Release, ci: Client
) -> None:
    token = make_token(rolling_back, Role.DEVOPS)
    move = "m" * 41

    response = send(ci, url("rollback-move", rolling_back, move), token, {"reason": "x"})

    assert response.status_code == 404
    assert response.json() == {
        "error": f"A rollback is mitigated, resolved or closed; not “{'m' * 39}…”."
    }


@pytest.mark.parametrize(
    ("body", "status", "error"),
    [
        ({}, 400, "Send done, note or url."),
        ({"done": "yes"}, 400, "done must be true or false."),
        ({"done": 1}, 400, "done must be true or false."),
        ({"version": 0}, 400, "Send done, note or url."),
        ({"note": "x", "version": "3"}, 400, "version must be a whole number from 0."),
        ({"note": "x", "version": -1}, 400, "version must be a whole number from 0."),
        ({"note": "x", "version": True}, 400, "version must be a whole number from 0."),
        ({"done": True, "mitigates": True}, 400, "Unknown fields: mitigates."),
        ({"note": 3}, 400, "note must be a string."),
        ({"note": "x" * 5001}, 400, "note is longer than 5000 characters."),
        ({"note": "a\x00b"}, 400, "note must not contain NUL or unpaired surrogate characters."),
        ({"url": "javascript:alert(1)"}, 422, "url must be an http(s) URL."),
        (
            {"url": "https://ci.example/run/\u202e1gpj.exe"},
            400,
            "url contains invisible bidirectional control characters (U+202E), which can "
            "make it read differently from what it is; remove them.",
        ),
    ],
)
def test_it_refuses_a_malformed_step_report_and_writes_nothing(
    rolling_back: Release, ci: Client, body: Any, status: int, error: str
) -> None:
    token = make_token(rolling_back, Role.DEVOPS)
    before = day_fingerprint(rolling_back)

    response = send(ci, url("rollback-step", rolling_back, 1), token, body)

    assert response.status_code == status
    assert response.json() == {"error": error}
    assert day_fingerprint(rolling_back) == before


def test_a_step_done_and_a_bad_link_in_one_request_write_nothing(
    rolling_back: Release, ci: Client
) -> None:
    token = make_token(rolling_back, Role.DEVOPS)
    before = day_fingerprint(rolling_back)

    response = send(
        ci, url("rollback-step", rolling_back, 1), token, {"done": True, "url": "ftp://x/y"}
    )

    assert response.status_code == 422
    assert day_fingerprint(rolling_back) == before


def test_a_step_is_ticked_only_while_a_rollback_is_open(deploying: Release, ci: Client) -> None:
    token = make_token(deploying, Role.DEVOPS)
    before = day_fingerprint(deploying)

    response = send(ci, url("rollback-step", deploying, 1), token, {"done": True})

    assert response.status_code == 422
    assert response.json() == {"error": "No rollback is declared on this release."}
    assert day_fingerprint(deploying) == before


# --- incident updates ----------------------------------------------------------------------


def test_a_devops_token_posts_an_incident_update_as_its_role(
    rolling_back: Release, ci: Client
) -> None:
    token = make_token(rolling_back, Role.DEVOPS, "deploys")

    response = send(
        ci,
        url("updates", rolling_back),
        token,
        {"state": "identified", "message": "Checkout errors: rolling back."},
    )

    assert response.status_code == 200
    body = response.json()
    assert (body["state"], body["message"], body["posted_as"]) == (
        "identified",
        "Checkout errors: rolling back.",
        Role.DEVOPS,
    )
    update = IncidentUpdate.objects.get(release=rolling_back)
    assert (update.posted_by, update.posted_by_label, update.posted_as) == (
        None,
        "ci:deploys",
        Role.DEVOPS,
    )
    event = only_event(AuditAction.INCIDENT_UPDATE_POSTED)
    assert (event.actor_label, event.actor_kind) == ("ci:deploys", ActorKind.PIPELINE)


@pytest.mark.parametrize(
    ("body", "status", "error"),
    [
        ({"message": "hi"}, 400,
         "state must be one of: investigating, identified, monitoring, resolved."),
        ({"state": "fixed", "message": "hi"}, 400,
         "state must be one of: investigating, identified, monitoring, resolved."),
        ({"state": "resolved"}, 400, "message is required."),
        ({"state": "resolved", "message": ["hi"]}, 400, "message must be a string."),
        ({"state": "resolved", "message": "x" * 501}, 400,
         "message is longer than 500 characters."),
        ({"state": "resolved", "message": "ok", "to": "all"}, 400, "Unknown fields: to."),
        ({"state": "resolved", "message": "\x00"}, 400,
         "message must not contain NUL or unpaired surrogate characters."),
        ({"state": "resolved", "message": "   "}, 422,
         "Write what is happening for the people outside the team."),
        ({"state": "monitoring", "message": "\u200b\ufeff"}, 422,
         "Write what is happening for the people outside the team."),
        ({"state": "monitoring", "message": "\u3000\u00a0\u2060"}, 422,
         "Write what is happening for the people outside the team."),
        ({"state": "monitoring", "message": "\u200f"}, 422,
         "Write what is happening for the people outside the team."),
    ],
)  # fmt: skip
def test_it_refuses_a_malformed_update_and_writes_nothing(
    rolling_back: Release, ci: Client, body: Any, status: int, error: str
) -> None:
    token = make_token(rolling_back, Role.DEVOPS)
    before = day_fingerprint(rolling_back)

    response = send(ci, url("updates", rolling_back), token, body)

    assert response.status_code == status
    assert response.json() == {"error": error}
    assert day_fingerprint(rolling_back) == before


def test_a_pipeline_retrying_an_update_posts_it_once(rolling_back: Release, ci: Client) -> None:
    token = make_token(rolling_back, Role.DEVOPS)
    body = {"state": "identified", "message": "Checkout errors: rolling back."}
    assert send(ci, url("updates", rolling_back), token, body).status_code == 200

    again = send(ci, url("updates", rolling_back), token, body)

    assert again.status_code == 422
    assert again.json() == {
        "error": "This same update (the same state and message) was posted less than a minute "
        "ago and already leads the status page, so it was not posted again."
    }
    assert IncidentUpdate.objects.filter(release=rolling_back).count() == 1


def test_a_qa_token_may_not_post_an_incident_update(rolling_back: Release, ci: Client) -> None:
    token = make_token(rolling_back, Role.QA)
    before = day_fingerprint(rolling_back)

    response = send(ci, url("updates", rolling_back), token, {"state": "resolved", "message": "ok"})

    assert response.status_code == 403
    assert response.json() == {"error": "Only the Product Owner or DevOps post incident updates."}
    assert day_fingerprint(rolling_back) == before


# --- the maintenance window ----------------------------------------------------------------


def window_body(start: datetime, end: datetime, zone: str = MADRID) -> dict[str, str]:
    return {"start": wall(start), "end": wall(end), "time_zone": zone}


def test_a_devops_token_schedules_the_window_then_moves_it(release: Release, ci: Client) -> None:
    token = make_token(release, Role.DEVOPS, "deploys")
    start, end = tomorrow_at(22), tomorrow_at(23)

    scheduled = send(ci, url("window", release), token, window_body(start, end), "put")
    moved = send(
        ci,
        url("window", release),
        token,
        window_body(start + timedelta(minutes=30), end + timedelta(minutes=30)),
        "put",
    )

    assert scheduled.status_code == moved.status_code == 200
    first = scheduled.json()["window"]
    zone = ZoneInfo(MADRID)
    assert first["start"] == start.replace(tzinfo=zone).isoformat()
    assert first["start_utc"] == start.replace(tzinfo=zone).astimezone(ZoneInfo("UTC")).isoformat()
    assert (first["time_zone"], first["state"], first["sequence"]) == (
        MADRID,
        WindowState.SCHEDULED,
        0,
    )
    kept = MaintenanceWindow.objects.get(release=release)
    assert kept.local_start.replace(tzinfo=None) == start + timedelta(minutes=30)
    assert kept.sequence == moved.json()["window"]["sequence"] == 1
    for action in (AuditAction.WINDOW_SCHEDULED, AuditAction.WINDOW_EDITED):
        event = only_event(action)
        assert (event.actor_label, event.actor_kind) == ("ci:deploys", ActorKind.PIPELINE)


def test_it_schedules_a_new_window_after_a_cancelled_one(
    release: Release, users: dict[str, Any], ci: Client
) -> None:
    start, end = tomorrow_at(20), tomorrow_at(21)
    workflow.schedule_window(
        release,
        start=start.replace(tzinfo=ZoneInfo(MADRID)),
        end=end.replace(tzinfo=ZoneInfo(MADRID)),
        time_zone=MADRID,
        by=users["devops"],
    )
    workflow.cancel_window(release, reason="moved to next week", by=users["devops"])
    token = make_token(release, Role.PRODUCT_OWNER, "po-bot")

    response = send(ci, url("window", release), token, window_body(start, end), "put")

    assert response.status_code == 200
    assert response.json()["window"]["state"] == WindowState.SCHEDULED
    assert AuditEvent.objects.filter(action=AuditAction.WINDOW_SCHEDULED).count() == 2
    assert only_event(AuditAction.WINDOW_CANCELLED).actor_label == "devops (DEVOPS)"
    rescheduled = AuditEvent.objects.filter(action=AuditAction.WINDOW_SCHEDULED).latest("pk")
    assert rescheduled.actor_label == "ci:po-bot"


def dst_times() -> tuple[str, str]:
    """A wall time Madrid skips (clocks forward) and one it shows twice (clocks back),
    in the coming year."""
    year = timezone.now().year + 1
    skipped = f"{year}-03-{last_sunday(year, 3):02d}T02:30"
    repeated = f"{year}-10-{last_sunday(year, 10):02d}T02:30"
    return skipped, repeated


@pytest.mark.parametrize(
    ("body", "error"),
    [
        ({"start": "2099-01-01T10:00", "end": "2099-01-01T11:00"}, "time_zone is required."),
        ({"start": "2099-01-01T10:00", "time_zone": MADRID}, "end is required."),
        ({"start": 10, "end": "2099-01-01T11:00", "time_zone": MADRID}, "start must be a string."),
        (
            {"start": "2099-01-01T10:00", "end": "2099-01-01T11:00", "time_zone": "Mars/Olympus"},
            "time_zone: “Mars/Olympus” is not a time zone we know; use an IANA name such as "
            "Europe/Madrid.",
        ),
        (
            {"start": "2099-01-01T11:00", "end": "2099-01-01T10:00", "time_zone": MADRID},
            "end: The window must end after it starts.",
        ),
        (
            {"start": "tomorrow", "end": "2099-01-01T10:00", "time_zone": MADRID},
            "start: Enter a date and time such as 2026-10-25 01:30.",
        ),
        (
            {"start": "2099-01-01T10:00+01:00", "end": "2099-01-01T11:00", "time_zone": MADRID},
            "start: Enter a date and time such as 2026-10-25 01:30.",
        ),
        (
            {"start": "2099-01-01T10:00", "end": "2099-01-01T11:00", "time_zone": MADRID, "x": 1},
            "Unknown fields: x.",
        ),
        (
            {"start": "2099-01-01T10:00", "end": "2099-01-01T11:00", "time_zone": "UTC\x00"},
            "time_zone must not contain NUL or unpaired surrogate characters.",
        ),
    ],
)
def test_it_refuses_a_malformed_window_and_writes_nothing(
    release: Release, ci: Client, body: Any, error: str
) -> None:
    token = make_token(release, Role.DEVOPS)
    before = day_fingerprint(release)

    response = send(ci, url("window", release), token, body, "put")

    assert response.status_code == 400
    assert response.json() == {"error": error}
    assert day_fingerprint(release) == before


def test_it_refuses_wall_times_the_zone_skips_or_repeats_as_the_form_does(
    release: Release, ci: Client
) -> None:
    token = make_token(release, Role.DEVOPS)
    skipped, repeated = dst_times()
    before = day_fingerprint(release)

    gap = send(
        ci,
        url("window", release),
        token,
        {"start": skipped, "end": skipped[:-5] + "05:00", "time_zone": MADRID},
        "put",
    )
    fold = send(
        ci,
        url("window", release),
        token,
        {"start": repeated[:-5] + "01:00", "end": repeated, "time_zone": MADRID},
        "put",
    )

    assert gap.status_code == fold.status_code == 400
    assert gap.json()["error"].startswith("start: ")
    assert "does not exist in Europe/Madrid" in gap.json()["error"]
    assert fold.json()["error"].startswith("end: ")
    assert "happens twice in Europe/Madrid" in fold.json()["error"]
    assert day_fingerprint(release) == before


def test_a_window_in_the_past_is_refused_by_the_workflow(release: Release, ci: Client) -> None:
    token = make_token(release, Role.DEVOPS)
    past = window_body(datetime(2020, 1, 1, 10), datetime(2020, 1, 1, 11))
    before = day_fingerprint(release)

    response = send(ci, url("window", release), token, past, "put")

    assert response.status_code == 422
    assert response.json() == {"error": "The window must end in the future."}
    assert day_fingerprint(release) == before


def test_a_ten_year_window_is_refused_and_writes_nothing(release: Release, ci: Client) -> None:
    token = make_token(release, Role.DEVOPS)
    before = day_fingerprint(release)

    response = send(
        ci,
        url("window", release),
        token,
        {"start": "2027-01-01T22:00", "end": "2037-01-01T22:00", "time_zone": MADRID},
        "put",
    )

    assert response.status_code == 400
    assert response.json() == {
        "error": "end: A maintenance window may last at most 168 hours "
        "(MAINTENANCE_WINDOW_MAX_HOURS); check the start and the end."
    }
    assert day_fingerprint(release) == before


@pytest.mark.parametrize("role", [Role.QA, Role.FRONTEND, Role.SUPPORT])
def test_a_token_of_another_role_may_not_keep_the_window(
    release: Release, ci: Client, role: str
) -> None:
    token = make_token(release, role)
    before = day_fingerprint(release)

    response = send(
        ci, url("window", release), token, window_body(tomorrow_at(22), tomorrow_at(23)), "put"
    )

    assert response.status_code == 403
    assert "maintenance window" in response.json()["error"]
    assert day_fingerprint(release) == before


def test_the_window_takes_only_a_put(release: Release, ci: Client) -> None:
    token = make_token(release, Role.DEVOPS)

    response = send(
        ci, url("window", release), token, window_body(tomorrow_at(22), tomorrow_at(23))
    )

    assert response.status_code == 405
    assert response["Allow"] == "PUT"
    assert not MaintenanceWindow.objects.exists()


# --- the timeline --------------------------------------------------------------------------


def test_the_timeline_reads_as_the_page_in_the_callers_language_without_personal_data(
    approved: Release, users: dict[str, Any]
) -> None:
    contact = approved.contacts.get()
    workflow.update_contact(
        contact, by=users["admin"], name="Dana Ops", phone="+34 600 111 222", email="d@ops.example"
    )
    token = make_token(approved, Role.QA)
    deploys = make_token(approved, Role.DEVOPS, "deploys")
    send(Client(), url("deploy", approved), deploys, {"state": "started", "url": RUN_URL})

    english = Client(headers={"Accept-Language": "en"}).get(
        url("timeline", approved), headers=bearer(token)
    )
    spanish = Client(headers={"Accept-Language": "es"}).get(
        url("timeline", approved), headers=bearer(token)
    )

    assert english.status_code == spanish.status_code == 200
    assert english["Cache-Control"] == "no-store"
    body = english.json()
    assert (body["version"], body["page"], body["pages"]) == (approved.version, 1, 1)
    newest = body["events"][0]
    event = only_event(AuditAction.DEPLOY_STARTED)
    assert newest == {
        "id": event.pk,
        "time": event.created_at.astimezone(ZoneInfo("UTC")).isoformat(),
        "actor": "ci:deploys",
        "actor_kind": ActorKind.PIPELINE,
        "action": AuditAction.DEPLOY_STARTED,
        "label": "Deploy started",
        "details": newest["details"],
    }
    # Stored as JSON, whose keys come back in no promised order.
    with translation.override("en"):
        started = moment(datetime.fromisoformat(event.after["started_at"]))
    assert sorted(newest["details"]) == sorted(
        [approved.version, f"Started: {started}", f"Reason: {RUN_URL}"]
    )
    with translation.override("es"):
        spanish_label = str(AuditAction.DEPLOY_STARTED.label)
    assert spanish_label != "Deploy started"
    assert spanish.json()["events"][0]["label"] == spanish_label
    assert spanish.json()["events"][0]["action"] == AuditAction.DEPLOY_STARTED
    # Newest first, every event once.
    ids = [line["id"] for line in body["events"]]
    assert ids == sorted(ids, reverse=True)
    approval = next(e for e in body["events"] if e["action"] == AuditAction.RELEASE_APPROVED)
    # People are named by their roles; contacts, people and tokens stay out.
    assert approval["actor"] == "Product Owner"
    assert not any(e["action"].startswith(("contact.", "stakeholder.")) for e in body["events"])
    text = english.content.decode()
    for personal in ("600 111 222", "d@ops.example", "@example.com", "Dana Ops", "(PO)"):
        assert personal not in text


def test_the_timeline_pages_and_refuses_a_page_it_does_not_have(
    approved: Release, ci: Client
) -> None:
    token = make_token(approved, Role.QA)
    path = url("timeline", approved)

    assert ci.get(path, {"page": "1"}, headers=bearer(token)).status_code == 200
    for page in ("0", "-1", "x", "1.5", "9" * 5000):
        response = ci.get(path, {"page": page}, headers=bearer(token))
        assert response.status_code == 400
        assert response.json() == {"error": "page must be a whole number from 1."}
    beyond = ci.get(path, {"page": "2"}, headers=bearer(token))
    assert beyond.status_code == 404
    assert beyond.json() == {"error": "There is 1 page."}


def test_the_timeline_keeps_to_one_role_as_the_page_does(
    approved: Release, users: dict[str, Any], ci: Client
) -> None:
    token = make_token(approved, Role.DEVOPS)

    qa = ci.get(url("timeline", approved), {"role": "qa"}, headers=bearer(token))
    everything = ci.get(url("timeline", approved), headers=bearer(token))

    assert qa.status_code == 200
    shown = {event["id"] for event in qa.json()["events"]}
    assert shown and shown < {event["id"] for event in everything.json()["events"]}
    assert all(event["action"] != AuditAction.RELEASE_APPROVED for event in qa.json()["events"])


def test_the_timeline_refuses_a_role_it_does_not_know(approved: Release, ci: Client) -> None:
    token = make_token(approved, Role.DEVOPS)

    response = ci.get(url("timeline", approved), {"role": "ops"}, headers=bearer(token))

    assert response.status_code == 400
    assert response.json()["error"].startswith("role must be one of: devops")


def test_the_timeline_takes_only_a_get(approved: Release, ci: Client) -> None:
    token = make_token(approved, Role.QA)

    response = send(ci, url("timeline", approved), token, {})

    assert response.status_code == 405
    assert response["Allow"] == "GET"
    assert response.json() == {"error": "This endpoint takes GET requests only."}


# --- tokens --------------------------------------------------------------------------------

DAY_REQUESTS = [
    ("deploy", (), "post", {"state": "started"}),
    ("rollback", (), "post", {"reason": "down", "severity": "critical"}),
    ("rollback-step", (1,), "post", {"done": True}),
    ("updates", (), "post", {"state": "investigating", "message": "Looking."}),
    ("window", (), "put", {"start": "2099-01-01T10:00", "end": "2099-01-01T11:00",
                           "time_zone": MADRID}),
    ("timeline", (), "get", None),
]  # fmt: skip


@pytest.mark.parametrize(("name", "args", "method", "body"), DAY_REQUESTS)
def test_a_revoked_token_is_refused_everywhere_and_writes_nothing(
    deploying: Release, ci: Client, name: str, args: tuple[Any, ...], method: str, body: Any
) -> None:
    token = make_token(deploying, Role.DEVOPS, "old")
    PipelineToken.objects.filter(label="old").update(revoked_at=timezone.now())
    before = day_fingerprint(deploying)

    if method == "get":
        response = ci.get(url(name, deploying, *args), headers=bearer(token))
    else:
        response = send(ci, url(name, deploying, *args), token, body, method)

    assert response.status_code == 401
    assert response.json() == REFUSED
    assert day_fingerprint(deploying) == before


@pytest.mark.parametrize(("name", "args", "method", "body"), DAY_REQUESTS)
def test_an_unknown_release_gets_the_same_401(
    deploying: Release, ci: Client, name: str, args: tuple[Any, ...], method: str, body: Any
) -> None:
    token = make_token(deploying, Role.DEVOPS)
    path = reverse(f"api:{name}", args=["v0.0.0-nope", *args])
    before = day_fingerprint(deploying)

    if method == "get":
        response = ci.get(path, headers=bearer(token))
    else:
        response = send(ci, path, token, body, method)

    assert response.status_code == 401
    assert response.json() == REFUSED
    assert day_fingerprint(deploying) == before


@pytest.mark.parametrize(("name", "args", "method", "body"), DAY_REQUESTS)
def test_no_token_asks_for_one(
    deploying: Release, ci: Client, name: str, args: tuple[Any, ...], method: str, body: Any
) -> None:
    response = getattr(ci, method)(
        url(name, deploying, *args),
        data=json.dumps(body) if body is not None else None,
        content_type="application/json",
    )

    assert response.status_code == 401
    assert response["WWW-Authenticate"] == "Bearer"


def test_it_answers_a_refusal_in_the_callers_language(approved: Release) -> None:
    token = make_token(approved, Role.DEVOPS)
    spanish = Client(headers={"Accept-Language": "es"})

    response = send(spanish, url("deploy", approved), token, {"state": "running"})

    assert response.status_code == 400
    assert response.json() == {"error": "state debe ser uno de: started, finished."}


# --- the seed release's day, over the API -----------------------------------------------------


@pytest.fixture
def seed_release(users: dict[str, Any]) -> Release:
    """v1.0.0 from the built-in checklist, one person per role, contacts filled in,
    approved through the workflow (the API has no approval)."""
    template = workflow.import_default_template(by=SystemActor("tests"))
    release = workflow.create_release(
        template, version="v1.0.0", title="Go-live", by=users["admin"]
    )
    for persona in PERSONAS:
        workflow.assign(release, role=persona, user=users[persona], by=users["admin"])
    for number, contact in enumerate(release.contacts.order_by("position")):
        workflow.update_contact(
            contact,
            by=users["admin"],
            name=f"On call {number}",
            phone=f"+34 600 000 {number:03d}",
            email=f"oncall{number}@example.com",
        )
    for entry in release.items.filter(before_gate=True):
        workflow.tick(entry, by=users[entry.owner_role])
    for role in Role.leads():
        gated = release.items.filter(owner_role=role, before_gate=True)
        for phase in set(gated.values_list("phase", flat=True)):
            workflow.sign_off(release, role=role, phase=phase, by=users[role])
    workflow.approve(release, by=users["po"], reason="all green")
    release.refresh_from_db()
    assert release.status == ReleaseStatus.APPROVED
    return release


def test_the_seed_release_day_walked_over_the_api(
    seed_release: Release, users: dict[str, Any], ci: Client
) -> None:
    release = seed_release
    devops = make_token(release, Role.DEVOPS, "deploys")
    steps = list(release.rollback_steps.order_by("position"))
    assert steps and all(step.owner_role == Role.DEVOPS for step in steps)

    def ok(response: Any) -> dict[str, Any]:
        assert response.status_code == 200, response.content
        body: dict[str, Any] = response.json()
        return body

    def post(name: str, body: dict[str, Any], *args: Any) -> dict[str, Any]:
        return ok(send(ci, url(name, release, *args), devops, body))

    post("deploy", {"state": "started", "url": RUN_URL})
    failed = post("deploy", {"state": "finished", "result": "failure", "reason": "red"})
    assert failed["status"] == ReleaseStatus.APPROVED
    declared = post("rollback", {"reason": "health check red", "severity": "critical"})
    assert declared["status"] == ReleaseStatus.ROLLED_BACK
    assert [s["step"] for s in declared["rollback"]["steps"]] == list(range(1, len(steps) + 1))
    post("updates", {"state": "identified", "message": "The deploy failed; rolling back."})
    for number in range(1, len(steps) + 1):
        done = post("rollback-step", {"done": True, "note": f"step {number} ok"}, number)
    assert done["rollback"] == {"resolved": True, "closed": False}
    post("updates", {"state": "resolved", "message": "Back on the previous version."})
    closed = post("rollback-move", {"cause": "a missing migration"}, "close")
    assert closed["rollback"]["closed_at"] is not None
    exported = checklists.export_release(release)
    plan = exported[exported.index(release.rollback_heading) :].split("\n## ", 1)[0]
    assert plan.count("<!-- deploycheck: record --> done by ci:deploys") == len(steps)

    release.refresh_from_db()
    assert release.status == ReleaseStatus.ROLLED_BACK
    assert release.active_approval() is None
    rollback_done = Rollback.objects.get(release=release)
    assert rollback_done.resolved_at is not None and rollback_done.closed_at is not None
    assert not rollback_done.records.filter(done_at__isnull=True).exists()
    assert list(release.incident_updates.order_by("posted_at").values_list("state", flat=True)) == [
        "identified",
        "resolved",
    ]

    events: list[dict[str, Any]] = []
    page, pages = 1, 1
    while page <= pages:
        body = ok(ci.get(url("timeline", release), {"page": page}, headers=bearer(devops)))
        events.extend(body["events"])
        page, pages = page + 1, body["pages"]
    oldest_first = list(reversed(events))
    approval = (AuditAction.RELEASE_APPROVED, AuditAction.APPROVAL_REVOKED)
    day = [
        e["action"]
        for e in oldest_first
        if e["action"] in approval or e["action"].startswith(("deploy.", "rollback.", "incident."))
    ]
    assert day == [
        AuditAction.RELEASE_APPROVED,
        AuditAction.DEPLOY_STARTED,
        AuditAction.DEPLOY_FINISHED,
        AuditAction.APPROVAL_REVOKED,
        AuditAction.ROLLBACK_DECLARED,
        AuditAction.INCIDENT_UPDATE_POSTED,
        *[AuditAction.ROLLBACK_STEP_ANNOTATED, AuditAction.ROLLBACK_STEP_DONE] * len(steps),
        AuditAction.ROLLBACK_RESOLVED,
        AuditAction.INCIDENT_UPDATE_POSTED,
        AuditAction.ROLLBACK_CLOSED,
    ]
    by_api = [e for e in oldest_first if e["action"] in day[1:]]
    assert {e["actor"] for e in by_api} == {"ci:deploys"}
    assert AuditEvent.objects.filter(release=release, actor_label="ci:deploys").count() == len(
        by_api
    )
