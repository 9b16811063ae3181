"""The pipeline API of a release.

A deploy job asks GET /api/releases/<version>/go-no-go whether it may go; a CI job
reports POST /api/releases/<version>/evidence for the items its token's role owns. Both
send `Authorization: Bearer <token>`. The personas are the conftest's.
"""

from __future__ import annotations

import json
import time
from datetime import timedelta
from typing import Any

import pytest
from django.core.cache import cache
from django.test import Client
from django.urls import reverse
from django.utils import timezone, translation

from api import auth
from checks.models import PipelineToken
from releases import workflow
from releases.models import (
    ActorKind,
    AuditAction,
    AuditEvent,
    ItemState,
    Release,
    Role,
    blocking_reasons,
)
from tests.api.pipeline import (
    DEVOPS_ITEM,
    QA_ITEM,
    RUN_URL,
    bearer,
    evidence_url,
    fingerprint,
    go_url,
    make_token,
    other_release,
    report,
)
from tests.conftest import item

# --- go / no-go --------------------------------------------------------------------------


def test_it_answers_go_no_go_as_json_to_a_token_of_the_release(
    release: Release, ci: Client
) -> None:
    token = make_token(release, Role.DEVOPS)

    response = ci.get(go_url(release), headers=bearer(token))

    assert response.status_code == 200
    assert response["Content-Type"] == "application/json"
    assert response["Cache-Control"] == "no-store"
    body = response.json()
    assert set(body) == {"version", "status", "go", "reasons"}
    assert (body["version"], body["status"], body["go"]) == ("v1.2.3", release.status, False)
    assert body["reasons"][0] == {"code": "not-approved", "message": "Go-live is not approved."}
    assert all(set(reason) == {"code", "message"} for reason in body["reasons"])
    codes = [reason["code"] for reason in body["reasons"]]
    assert codes == ["not-approved"] + [r.code for r in blocking_reasons(release)]
    assert "item-open" in codes


def test_it_says_go_for_an_approved_release_with_nothing_blocking(
    ready_release: Release, users: dict[str, Any], ci: Client
) -> None:
    workflow.approve(ready_release, by=users["po"])
    token = make_token(ready_release, Role.DEVOPS)

    response = ci.get(go_url(ready_release), headers=bearer(token))

    assert response.status_code == 200
    assert response.json() == {
        "version": "v1.2.3",
        "status": "approved",
        "go": True,
        "reasons": [],
    }


def test_it_says_no_go_for_a_ready_release_nobody_approved(
    ready_release: Release, ci: Client
) -> None:
    token = make_token(ready_release, Role.DEVOPS)

    body = ci.get(go_url(ready_release), headers=bearer(token)).json()

    assert body["go"] is False
    assert body["reasons"] == [{"code": "not-approved", "message": "Go-live is not approved."}]


def test_it_answers_a_logged_in_stakeholder_without_a_token(release: Release, as_user: Any) -> None:
    response = as_user("support").get(go_url(release))

    assert response.status_code == 200
    assert response["Cache-Control"] == "no-store"
    assert response.json()["reasons"][0]["code"] == "not-approved"


def test_it_hides_go_no_go_from_an_outsiders_session(release: Release, as_user: Any) -> None:
    assert as_user("outsider").get(go_url(release)).status_code == 404


@pytest.mark.parametrize("header", [None, "", "Bearer ", "Basic dXNlcjpwYXNz", "token abc"])
def test_it_asks_for_a_bearer_token_when_none_is_sent(
    release: Release, ci: Client, header: str | None
) -> None:
    headers = {} if header is None else {"Authorization": header}

    asked = ci.get(go_url(release), headers=headers)
    reported = ci.post(
        evidence_url(release),
        data=json.dumps({"item": QA_ITEM, "outcome": "pass"}),
        content_type="application/json",
        headers=headers,
    )

    for response in (asked, reported):
        assert response.status_code == 401
        assert response["WWW-Authenticate"] == "Bearer"
        assert response["Cache-Control"] == "no-store"
        assert "Authorization: Bearer" in response.json()["error"]
    assert item(release, QA_ITEM).state == ItemState.PENDING


def test_it_refuses_garbage_revoked_and_other_releases_tokens_alike(
    release: Release, users: dict[str, Any], ci: Client
) -> None:
    revoked = make_token(release, Role.QA, "old")
    PipelineToken.objects.filter(label="old").update(revoked_at=timezone.now())
    foreign = make_token(other_release(users), Role.QA, "foreign")
    before = fingerprint(release)

    errors = set()
    for token in ("garbage", revoked, foreign):
        asked = ci.get(go_url(release), headers=bearer(token))
        reported = report(ci, release, token, {"item": QA_ITEM, "outcome": "pass"})
        for response in (asked, reported):
            assert response.status_code == 401
            assert response["Cache-Control"] == "no-store"
            errors.add(response.json()["error"])

    # One answer for all three: a probe learns nothing about which tokens exist.
    assert errors == {"This token is unknown, revoked, or not for this release."}
    assert fingerprint(release) == before


def test_it_answers_go_no_go_in_the_callers_language(release: Release) -> None:
    token = make_token(release, Role.DEVOPS)
    with translation.override("es"):
        spanish = translation.gettext("Go-live is not approved.")

    default = Client().get(go_url(release), headers=bearer(token)).json()
    asked_es = Client(headers={"Accept-Language": "es"}).get(go_url(release), headers=bearer(token))
    asked_en = Client(headers={"Accept-Language": "en"}).get(go_url(release), headers=bearer(token))

    english = "Go-live is not approved."
    assert spanish != english
    assert default["reasons"][0] == {"code": "not-approved", "message": spanish}
    assert asked_es.json()["reasons"][0]["message"] == spanish
    assert asked_en.json()["reasons"][0]["message"] == english
    assert asked_es.json()["reasons"][0]["code"] == asked_en.json()["reasons"][0]["code"]


# --- evidence ----------------------------------------------------------------------------


def test_it_settles_an_item_from_a_pipeline_report_with_its_evidence(
    release: Release, ci: Client
) -> None:
    token = make_token(release, Role.QA, "github-actions")
    before = release.revision

    response = report(ci, release, token, {"item": QA_ITEM, "outcome": "pass", "url": RUN_URL})

    settled = item(release, QA_ITEM)
    assert response.status_code == 200
    assert response.json() == {
        "item": settled.pk,
        "text": QA_ITEM,
        "state": ItemState.DONE,
        "revision": settled.revision,
    }
    assert settled.state == ItemState.DONE
    assert settled.evidence_url == RUN_URL
    assert settled.changed_by_label == "ci:github-actions"
    assert settled.changed_by_kind == ActorKind.PIPELINE
    assert settled.changed_by is None
    release.refresh_from_db()
    assert release.revision == before + 1
    event = AuditEvent.objects.get(action=AuditAction.PIPELINE_PASSED)
    assert (event.actor_kind, event.actor_label, event.actor, event.target) == (
        ActorKind.PIPELINE,
        "ci:github-actions",
        None,
        QA_ITEM,
    )
    assert event.after["state"] == ItemState.DONE
    assert event.after["evidence_url"] == RUN_URL
    assert event.source_ip == "127.0.0.1"


def test_it_fails_an_item_with_the_reported_detail_as_its_reason(
    release: Release, ci: Client
) -> None:
    token = make_token(release, Role.QA, "github-actions")

    response = report(
        ci,
        release,
        token,
        {"item": QA_ITEM, "outcome": "fail", "url": RUN_URL, "detail": "3 tests failed"},
    )

    failed = item(release, QA_ITEM)
    assert response.status_code == 200
    assert response.json()["state"] == ItemState.FAILED
    assert (failed.state, failed.reason, failed.evidence_url) == (
        ItemState.FAILED,
        "3 tests failed",
        RUN_URL,
    )
    assert AuditEvent.objects.filter(
        action=AuditAction.PIPELINE_FAILED, actor_kind=ActorKind.PIPELINE
    ).exists()
    codes = {r.code for r in blocking_reasons(release)}
    assert "item-blocked" in codes


# A detail of invisible characters, a bidirectional control among them, says nothing.
@pytest.mark.parametrize("detail", [None, "  ", "\u200b\u2060", "\u202e"])
def test_it_fails_an_item_with_a_default_reason_when_no_detail_is_sent(
    release: Release, ci: Client, detail: str | None
) -> None:
    token = make_token(release, Role.QA)
    sent = {"detail": detail} if detail is not None else {}

    report(ci, release, token, {"item": QA_ITEM, "outcome": "fail", **sent})

    assert item(release, QA_ITEM).reason == "the pipeline reported a failure"


def test_the_default_failure_reads_in_each_readers_language_whoever_reported_it(
    release: Release, users: dict[str, Any]
) -> None:
    token = make_token(release, Role.QA)
    # Reported by a pipeline asking in Spanish, the default language.
    report(Client(), release, token, {"item": QA_ITEM, "outcome": "fail"})

    english = Client(headers={"Accept-Language": "en"}).get(go_url(release), headers=bearer(token))
    spanish = Client(headers={"Accept-Language": "es"}).get(go_url(release), headers=bearer(token))

    in_english, in_spanish = str(english.json()), str(spanish.json())
    assert "the pipeline reported a failure" in in_english
    assert "el pipeline notificó un fallo" in in_spanish
    assert "el pipeline notificó un fallo" not in in_english
    assert "the pipeline reported a failure" not in in_spanish
    support = Client(headers={"Accept-Language": "en"})
    support.force_login(users["support"])
    timeline = support.get(reverse("releases:timeline", args=[release.version]))
    assert "the pipeline reported a failure" in timeline.content.decode()


def test_it_accepts_the_item_by_its_id(release: Release, ci: Client) -> None:
    token = make_token(release, Role.QA)
    entry = item(release, QA_ITEM)

    response = report(ci, release, token, {"item": entry.pk, "outcome": "pass"})

    assert response.status_code == 200
    assert response.json()["item"] == entry.pk
    assert item(release, QA_ITEM).state == ItemState.DONE


def test_it_refuses_an_item_the_tokens_role_does_not_own_and_writes_nothing(
    release: Release, ci: Client
) -> None:
    token = make_token(release, Role.QA)
    before = fingerprint(release)

    response = report(ci, release, token, {"item": DEVOPS_ITEM, "outcome": "pass"})

    assert response.status_code == 403
    assert DEVOPS_ITEM in response.json()["error"]
    assert fingerprint(release) == before


def test_it_answers_404_for_an_item_the_release_does_not_have(
    release: Release, users: dict[str, Any], ci: Client
) -> None:
    token = make_token(release, Role.QA)
    elsewhere = item(other_release(users), QA_ITEM)
    before = fingerprint(release)

    by_text = report(ci, release, token, {"item": "No such item", "outcome": "pass"})
    by_foreign_id = report(ci, release, token, {"item": elsewhere.pk, "outcome": "pass"})

    assert by_text.status_code == 404
    assert "No such item" in by_text.json()["error"]
    assert by_foreign_id.status_code == 404
    assert fingerprint(release) == before
    assert item(elsewhere.release, QA_ITEM).state == ItemState.PENDING


def test_it_answers_409_when_the_item_text_names_two_items(release: Release, ci: Client) -> None:
    release.items.filter(text="Smoke tests in production").update(text=QA_ITEM)
    token = make_token(release, Role.QA)
    before = fingerprint(release)

    response = report(ci, release, token, {"item": QA_ITEM, "outcome": "pass"})

    assert response.status_code == 409
    assert "names 2 items" in response.json()["error"]
    assert fingerprint(release) == before


@pytest.mark.parametrize(
    ("body", "status", "error"),
    [
        (b"{not json", 400, "The body must be a JSON object."),
        (b"", 400, "The body must be a JSON object."),
        (b"\xff\xfe", 400, "The body must be a JSON object."),
        ([QA_ITEM, "pass"], 400, "The body must be a JSON object."),
        ("pass", 400, "The body must be a JSON object."),
        ({"item": QA_ITEM, "outcome": "pass", "state": "done"}, 400, "Unknown fields: state."),
        ({"item": QA_ITEM, "outcome": "ok"}, 400, 'outcome must be "pass" or "fail".'),
        ({"item": QA_ITEM}, 400, 'outcome must be "pass" or "fail".'),
        ({"outcome": "pass"}, 400, "item must be the item's text or its id."),
        ({"item": True, "outcome": "pass"}, 400, "item must be the item's text or its id."),
        ({"item": [1], "outcome": "pass"}, 400, "item must be the item's text or its id."),
        ({"item": QA_ITEM, "outcome": "pass", "url": 5}, 400, "url must be a string."),
        ({"item": QA_ITEM, "outcome": "fail", "detail": None}, 400, "detail must be a string."),
        (
            {"item": QA_ITEM, "outcome": "fail", "detail": "x" * 2001},
            400,
            "detail is longer than 2000 characters.",
        ),
        (
            {"item": QA_ITEM, "outcome": "pass", "url": "https://ci.example.com/" + "a" * 1000},
            400,
            "url is longer than 1000 characters.",
        ),
        (
            {"item": QA_ITEM, "outcome": "pass", "url": "ftp://ci.example.com/run/1"},
            422,
            "url must be an http(s) URL.",
        ),
        (
            {"item": QA_ITEM, "outcome": "pass", "url": "javascript:alert(1)"},
            422,
            "url must be an http(s) URL.",
        ),
    ],
)
def test_it_refuses_a_malformed_report_with_a_clear_error_and_writes_nothing(
    release: Release, ci: Client, body: Any, status: int, error: str
) -> None:
    token = make_token(release, Role.QA)
    before = fingerprint(release)

    response = report(ci, release, token, body)

    assert response.status_code == status
    assert response.json() == {"error": error}
    assert response["Cache-Control"] == "no-store"
    assert fingerprint(release) == before


@pytest.mark.parametrize(
    "body",
    [
        {"item": "Unit\x00tests pass", "outcome": "pass"},
        {"item": QA_ITEM, "outcome": "fail", "detail": "red\x00"},
        {"item": QA_ITEM, "outcome": "pass", "url": "https://ci.example.com/\x00"},
    ],
)
def test_it_refuses_a_nul_character_as_a_clear_error_rather_than_a_server_error(
    release: Release, ci: Client, body: dict[str, Any]
) -> None:
    # PostgreSQL text cannot hold NUL; the forms refuse it, the JSON API must too.
    token = make_token(release, Role.QA)
    before = fingerprint(release)

    response = report(ci, release, token, body)

    assert response.status_code == 400
    assert "NUL" in response.json()["error"]
    assert fingerprint(release) == before


@pytest.mark.parametrize(
    "content_type",
    [
        "multipart/form-data; boundary=zz",
        "multipart/form-data",
        "application/x-www-form-urlencoded",
    ],
)
def test_it_reads_the_body_as_json_whatever_content_type_it_is_labelled_with(
    release: Release, ci: Client, content_type: str
) -> None:
    token = make_token(release, Role.QA)
    body = json.dumps({"item": QA_ITEM, "outcome": "pass"}).encode()

    response = ci.post(
        evidence_url(release), data=body, content_type=content_type, headers=bearer(token)
    )

    assert response.status_code == 200, response.content
    assert response["Content-Type"] == "application/json"
    assert item(release, QA_ITEM).state == ItemState.DONE


def test_it_takes_reports_only_as_a_post(release: Release, ci: Client) -> None:
    token = make_token(release, Role.QA)

    response = ci.get(evidence_url(release), headers=bearer(token))
    spanish = Client(headers={"Accept-Language": "es"}).put(go_url(release), headers=bearer(token))

    assert response.status_code == 405
    assert response["Allow"] == "POST"
    assert response["Content-Type"] == "application/json"
    assert response["Cache-Control"] == "no-store"
    assert response.json() == {"error": "This endpoint takes POST requests only."}
    assert item(release, QA_ITEM).state == ItemState.PENDING
    assert (spanish.status_code, spanish["Allow"]) == (405, "GET")
    assert spanish.json() == {"error": "Este endpoint solo acepta solicitudes GET."}


def test_it_takes_reports_without_a_csrf_token(release: Release, users: dict[str, Any]) -> None:
    token = make_token(release, Role.QA)
    client = Client(enforce_csrf_checks=True)
    # Even beside a session cookie the bearer token, not the cookie, authenticates.
    client.force_login(users["backend"])

    response = report(client, release, token, {"item": QA_ITEM, "outcome": "pass"})

    assert response.status_code == 200
    settled = item(release, QA_ITEM)
    assert settled.state == ItemState.DONE
    assert settled.changed_by_kind == ActorKind.PIPELINE


def test_it_keeps_a_persons_tick_when_the_pipeline_reports_a_failure(
    release: Release, users: dict[str, Any], ci: Client
) -> None:
    workflow.tick(item(release, QA_ITEM), by=users["qa"])
    token = make_token(release, Role.QA, "nightly")

    response = report(
        ci, release, token, {"item": QA_ITEM, "outcome": "fail", "detail": "flaky suite red"}
    )

    kept = item(release, QA_ITEM)
    assert response.status_code == 200
    assert response.json()["state"] == ItemState.DONE
    assert kept.state == ItemState.DONE
    assert kept.changed_by == users["qa"]
    assert kept.changed_by_kind == ActorKind.PERSON
    assert kept.check_failure == "flaky suite red"
    event = AuditEvent.objects.get(action=AuditAction.PIPELINE_FAILED)
    assert event.actor_label == "ci:nightly"
    assert event.after == {"check_failure": "flaky suite red"}
    reasons = [r for r in blocking_reasons(release) if r.code == "check-failed"]
    assert len(reasons) == 1
    assert "flaky suite red" in reasons[0].message


def test_it_limits_each_token_to_its_requests_per_minute(
    release: Release, settings: Any, ci: Client
) -> None:
    settings.PIPELINE_REQUESTS_PER_MINUTE = 2
    cache.clear()
    token = make_token(release, Role.QA, "busy")
    other = make_token(release, Role.QA, "calm")
    # All three requests must fall in one fixed window of the limiter.
    left = auth.RATE_WINDOW_SECONDS - time.time() % auth.RATE_WINDOW_SECONDS
    if left < 3:
        time.sleep(left + 0.1)

    first = ci.get(go_url(release), headers=bearer(token))
    second = ci.get(go_url(release), headers=bearer(token))
    before = fingerprint(release)
    third = report(ci, release, token, {"item": QA_ITEM, "outcome": "pass"})

    assert first.status_code == second.status_code == 200
    assert third.status_code == 429
    assert 1 <= int(third["Retry-After"]) <= auth.RATE_WINDOW_SECONDS
    assert "Too many requests" in third.json()["error"]
    assert fingerprint(release) == before
    # The limit is per token: another one of the same release still gets through.
    assert ci.get(go_url(release), headers=bearer(other)).status_code == 200


def test_it_records_when_a_token_was_last_used(release: Release, ci: Client) -> None:
    token = make_token(release, Role.QA, "used")
    started = timezone.now() - timedelta(seconds=1)
    assert PipelineToken.objects.get(label="used").last_used_at is None

    ci.get(go_url(release), headers=bearer(token))

    used = PipelineToken.objects.get(label="used").last_used_at
    assert used is not None
    assert used >= started


def test_it_reports_for_the_role_of_the_token_not_of_whoever_made_it(
    release: Release, ci: Client
) -> None:
    token = make_token(release, Role.DEVOPS, "infra")

    allowed = report(ci, release, token, {"item": DEVOPS_ITEM, "outcome": "pass"})
    refused = report(ci, release, token, {"item": QA_ITEM, "outcome": "pass"})

    assert allowed.status_code == 200
    assert refused.status_code == 403
    assert item(release, DEVOPS_ITEM).state == ItemState.DONE
    assert item(release, QA_ITEM).state == ItemState.PENDING


# --- bodies no report could be ---------------------------------------------------------


@pytest.mark.parametrize("item_id", ["9" * 5000, "9" * 30, "-1", "0"])
def test_it_answers_an_item_id_no_item_can_have_with_json_not_a_server_error(
    release: Release, ci: Client, item_id: str
) -> None:
    token = make_token(release, Role.QA)
    before = fingerprint(release)
    raw = ('{"item": ' + item_id + ', "outcome": "pass"}').encode()

    response = report(ci, release, token, raw)

    assert response.status_code in (400, 404)
    assert response["Content-Type"] == "application/json"
    assert "item" in response.json()["error"]
    assert fingerprint(release) == before


def test_it_answers_an_oversized_body_with_a_json_413(
    release: Release, ci: Client, settings: Any
) -> None:
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 10_000
    token = make_token(release, Role.QA)
    before = fingerprint(release)
    raw = json.dumps({"item": QA_ITEM, "outcome": "fail", "detail": "x" * 20_000}).encode()

    response = report(ci, release, token, raw)

    assert response.status_code == 413
    assert response["Content-Type"] == "application/json"
    assert "10000" in response.json()["error"]
    assert fingerprint(release) == before


@pytest.mark.parametrize(
    "said", [{"detail": "all\u202e green"}, {"url": "https://ci.example/run/\u202e1gpj.exe"}]
)
def test_it_refuses_invisible_bidirectional_controls_as_peoples_reasons_are(
    release: Release, ci: Client, said: dict[str, str]
) -> None:
    token = make_token(release, Role.QA)
    before = fingerprint(release)
    body = {"item": QA_ITEM, "outcome": "fail", **said}

    response = report(ci, release, token, body)

    assert response.status_code == 400
    [field] = said
    assert response.json()["error"].startswith(f"{field} contains invisible bidirectional")
    assert "U+202E" in response.json()["error"]
    assert fingerprint(release) == before
