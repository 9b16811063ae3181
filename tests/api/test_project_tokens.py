"""The pipeline API with a project token: one role on every release whose version
matches its pattern (`*`, `v2.*`), taken as a release's own token is
(test_releases.py), with the same refusal for a release the pattern does not match.
Staff make them on /tokens/ (tests/checks/test_project_tokens.py).
"""

from __future__ import annotations

import time
from typing import Any

import pytest
from django.test import Client
from django.utils import timezone

from api import auth
from api import releases as endpoints
from checks.models import PipelineToken
from releases import workflow
from releases.models import (
    ActorKind,
    AuditAction,
    AuditEvent,
    ChecklistTemplate,
    ItemState,
    Release,
    Role,
)
from tests.api.pipeline import (
    DEVOPS_ITEM,
    QA_ITEM,
    REFUSED,
    RUN_URL,
    bearer,
    fingerprint,
    go_url,
    make_project_token,
    report,
)
from tests.conftest import item


@pytest.fixture
def v2_releases(small_template: ChecklistTemplate, users: dict[str, Any]) -> list[Release]:
    """Two releases a `v2.*` pattern matches, beside the fixture's v1.2.3."""
    return [
        workflow.create_release(small_template, version=version, title="Two", by=users["admin"])
        for version in ("v2.0.0", "v2.1.0-rc.1")
    ]


def test_it_accepts_a_project_token_on_every_release_its_pattern_matches(
    v2_releases: list[Release], ci: Client
) -> None:
    token = make_project_token("v2.*", Role.QA, "github-actions")

    for release in v2_releases:
        asked = ci.get(go_url(release), headers=bearer(token))
        reported = report(ci, release, token, {"item": QA_ITEM, "outcome": "pass", "url": RUN_URL})

        assert asked.status_code == 200
        assert asked.json()["version"] == release.version
        assert reported.status_code == 200
        settled = item(release, QA_ITEM)
        assert (settled.state, settled.evidence_url) == (ItemState.DONE, RUN_URL)
        assert (settled.changed_by_label, settled.changed_by_kind) == (
            "ci:github-actions",
            ActorKind.PIPELINE,
        )
        event = AuditEvent.objects.get(action=AuditAction.PIPELINE_PASSED, release=release)
        assert (event.actor_kind, event.actor_label, event.target) == (
            ActorKind.PIPELINE,
            "ci:github-actions",
            QA_ITEM,
        )
    assert PipelineToken.objects.get().last_used_at is not None


def test_it_accepts_a_star_token_on_any_release(release: Release, ci: Client) -> None:
    token = make_project_token("*", Role.DEVOPS, "deployer")

    response = ci.get(go_url(release), headers=bearer(token))

    assert response.status_code == 200
    assert response.json()["version"] == "v1.2.3"


@pytest.mark.parametrize("pattern", ["v2.*", "V1.*", "v1.2", "v1.2.?-*"])
def test_it_refuses_a_project_token_on_a_release_its_pattern_does_not_match(
    release: Release, ci: Client, pattern: str
) -> None:
    token = make_project_token(pattern, Role.QA)
    before = fingerprint(release)

    asked = ci.get(go_url(release), headers=bearer(token))
    reported = report(ci, release, token, {"item": QA_ITEM, "outcome": "pass"})

    for response in (asked, reported):
        assert response.status_code == 401
        assert response.json() == REFUSED
    assert fingerprint(release) == before
    assert PipelineToken.objects.get().last_used_at is None


def test_it_refuses_unknown_revoked_and_unmatched_tokens_and_missing_releases_alike(
    release: Release, ci: Client
) -> None:
    revoked = make_project_token("*", Role.QA, "old")
    PipelineToken.objects.filter(label="old").update(revoked_at=timezone.now())
    unmatched = make_project_token("v2.*", Role.QA, "v2-ci")
    everywhere = make_project_token("*", Role.QA, "everywhere")
    before = fingerprint(release)

    answers = []
    for version, token in (
        (release.version, "garbage"),
        (release.version, revoked),
        (release.version, unmatched),
        # Matched by the pattern, but there is no such release: a probe learns nothing.
        ("v9.9.9", everywhere),
    ):
        answers.append(ci.get(f"/api/releases/{version}/go-no-go", headers=bearer(token)))
        answers.append(
            ci.post(
                f"/api/releases/{version}/evidence",
                data={"item": QA_ITEM, "outcome": "pass"},
                content_type="application/json",
                headers=bearer(token),
            )
        )

    assert {a.status_code for a in answers} == {401}
    assert all(a.json() == REFUSED for a in answers)
    assert all(a["Cache-Control"] == "no-store" for a in answers)
    assert fingerprint(release) == before


def test_it_lets_a_project_token_settle_only_its_roles_items(
    v2_releases: list[Release], ci: Client
) -> None:
    release = v2_releases[0]
    token = make_project_token("v2.*", Role.DEVOPS, "infra")
    allowed = report(ci, release, token, {"item": DEVOPS_ITEM, "outcome": "pass"})
    before = fingerprint(release)

    refused = report(ci, release, token, {"item": QA_ITEM, "outcome": "pass"})

    assert allowed.status_code == 200
    assert refused.status_code == 403
    assert QA_ITEM in refused.json()["error"]
    assert fingerprint(release) == before
    assert item(release, QA_ITEM).state == ItemState.PENDING


def test_it_limits_a_project_token_across_all_its_releases_together(
    v2_releases: list[Release], settings: Any, ci: Client
) -> None:
    settings.PIPELINE_REQUESTS_PER_MINUTE = 2
    token = make_project_token("v2.*", Role.QA, "busy")
    other = make_project_token("v2.*", Role.QA, "calm")
    first_release, second_release = v2_releases
    # All three requests must fall in one fixed window of the limiter.
    left = auth.RATE_WINDOW_SECONDS - time.time() % auth.RATE_WINDOW_SECONDS
    if left < 3:
        time.sleep(left + 0.1)

    first = ci.get(go_url(first_release), headers=bearer(token))
    second = ci.get(go_url(second_release), headers=bearer(token))
    before = fingerprint(second_release)
    third = report(ci, second_release, token, {"item": QA_ITEM, "outcome": "pass"})

    assert first.status_code == second.status_code == 200
    assert third.status_code == 429
    assert 1 <= int(third["Retry-After"]) <= auth.RATE_WINDOW_SECONDS
    assert fingerprint(second_release) == before
    assert ci.get(go_url(first_release), headers=bearer(other)).status_code == 200


def test_it_drops_a_report_whose_project_token_was_revoked_while_it_was_being_handled(
    v2_releases: list[Release], users: dict[str, Any], ci: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    release = v2_releases[0]
    token = make_project_token("v2.*", Role.QA, "github-actions")
    read_body = endpoints._evidence_request

    def revoked_meanwhile(request: Any) -> dict[str, Any]:
        # Staff revoke the token after it was checked, before the report is recorded.
        PipelineToken.objects.update(revoked_at=timezone.now())
        return read_body(request)

    monkeypatch.setattr(endpoints, "_evidence_request", revoked_meanwhile)
    before = fingerprint(release)

    response = report(ci, release, token, {"item": QA_ITEM, "outcome": "pass"})

    assert response.status_code == 401
    assert response.json() == REFUSED
    assert fingerprint(release) == before
