"""Project tokens: a pipeline token for one role on every release whose version matches
its pattern (`*`, `v2.*`), so CI needs no new token for each release.

Staff manage them on /tokens/; the API takes them as it takes a release's own tokens
(tests/api/test_project_tokens.py). The personas are the conftest's; `admin` is staff.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from django.db import IntegrityError, transaction
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from checks.models import PipelineToken
from releases import workflow
from releases.models import (
    ActorKind,
    AuditAction,
    AuditEvent,
    ChecklistTemplate,
    Release,
    Role,
)
from tests.api.pipeline import (
    QA_ITEM,
    REFUSED,
    bearer,
    fingerprint,
    go_url,
    make_project_token,
    report,
)
from tests.checks.test_tokens import NEW_TOKEN, tokens_url
from tests.conftest import PERSONAS, cache_of_its_own


@pytest.fixture(autouse=True)
def own_cache(settings: Any) -> Iterator[None]:
    """Its rate-limit windows start empty."""
    yield from cache_of_its_own(settings, "project-tokens")


@pytest.fixture
def ci() -> Client:
    return Client(headers={"Accept-Language": "en"})


@pytest.fixture
def v2_releases(small_template: ChecklistTemplate, users: dict[str, Any]) -> list[Release]:
    """Two releases a `v2.*` pattern matches, beside the fixture's v1.2.3."""
    return [
        workflow.create_release(small_template, version=version, title="Two", by=users["admin"])
        for version in ("v2.0.0", "v2.1.0-rc.1")
    ]


PROJECT_TOKENS_URL = "/tokens/"


def create_on_page(client: Client, pattern: str, role: str, label: str) -> Any:
    return client.post(
        PROJECT_TOKENS_URL,
        {"action": "create", "role": role, "label": label, "version_pattern": pattern},
    )


def revoke_on_page(client: Client, label: str) -> Any:
    token = PipelineToken.objects.get(label=label, release__isnull=True)
    return client.post(PROJECT_TOKENS_URL, {"action": "revoke", "token": token.pk})


# --- the staff page ----------------------------------------------------------------------


def test_it_serves_the_project_tokens_page_at_tokens() -> None:
    assert reverse("checks:project-tokens") == PROJECT_TOKENS_URL


def test_it_shows_a_new_project_token_once_and_stores_only_its_hash(
    users: dict[str, Any], as_user: Any
) -> None:
    client = as_user("admin")

    response = create_on_page(client, "v2.*", Role.QA, "github-actions")

    assert response.status_code == 200
    assert response["Cache-Control"] == "no-store"
    match = NEW_TOKEN.search(response.content.decode())
    assert match, "the new token is not on the page"
    token = match.group(1)
    stored = PipelineToken.objects.get()
    assert (stored.release, stored.version_pattern, stored.role, stored.label) == (
        None,
        "v2.*",
        Role.QA,
        "github-actions",
    )
    assert stored.created_by == users["admin"]
    assert stored.token_hash == hashlib.sha256(token.encode()).hexdigest()
    again = client.get(PROJECT_TOKENS_URL)
    html = again.content.decode()
    assert again["Cache-Control"] == "no-store"
    assert "ci:github-actions" in html
    assert "<code>v2.*</code>" in html
    assert token not in html
    assert not NEW_TOKEN.search(html)


def test_it_audits_creating_and_revoking_a_project_token_outside_any_release(
    users: dict[str, Any], as_user: Any
) -> None:
    client = as_user("admin")
    create_on_page(client, "*", Role.DEVOPS, "deployer")

    revoked = revoke_on_page(client, "deployer")

    assert revoked.status_code == 302
    assert revoked["Location"] == PROJECT_TOKENS_URL
    assert "Token revoked; it no longer works." in client.get(PROJECT_TOKENS_URL).content.decode()
    events = list(AuditEvent.objects.filter(action__startswith="pipeline_token.").order_by("id"))
    assert [(e.action, e.release, e.actor, e.actor_kind, e.target, e.after) for e in events] == [
        (
            AuditAction.PIPELINE_TOKEN_CREATED,
            None,
            users["admin"],
            ActorKind.PERSON,
            "ci:deployer",
            {"role": Role.DEVOPS, "releases": "*"},
        ),
        (
            AuditAction.PIPELINE_TOKEN_REVOKED,
            None,
            users["admin"],
            ActorKind.PERSON,
            "ci:deployer",
            {"role": Role.DEVOPS, "releases": "*"},
        ),
    ]
    assert PipelineToken.objects.get(label="deployer").revoked_at is not None


def test_it_revokes_a_project_token_once_and_says_so_the_second_time(as_user: Any) -> None:
    client = as_user("admin")
    make_project_token("*", Role.QA, "jenkins")
    revoke_on_page(client, "jenkins")

    second = revoke_on_page(client, "jenkins")

    page = client.get(second["Location"]).content.decode()
    assert "That token is already revoked or does not exist." in page
    assert AuditEvent.objects.filter(action=AuditAction.PIPELINE_TOKEN_REVOKED).count() == 1


def test_it_revokes_on_the_project_page_only_project_tokens(release: Release, as_user: Any) -> None:
    make_project_token("*", Role.QA, "project-ci")
    own = PipelineToken.objects.create(
        release=release, role=Role.QA, label="release-ci", token_hash="0" * 64
    )

    response = as_user("admin").post(PROJECT_TOKENS_URL, {"action": "revoke", "token": own.pk})

    assert response.status_code == 302
    own.refresh_from_db()
    assert own.revoked_at is None
    assert not AuditEvent.objects.filter(action=AuditAction.PIPELINE_TOKEN_REVOKED).exists()


def test_it_lists_project_tokens_and_no_release_tokens_on_the_project_page(
    release: Release, as_user: Any
) -> None:
    make_project_token("*", Role.QA, "project-ci")
    PipelineToken.objects.create(
        release=release, role=Role.QA, label="release-ci", token_hash="0" * 64
    )

    html = as_user("admin").get(PROJECT_TOKENS_URL).content.decode()

    assert "ci:project-ci" in html
    assert "ci:release-ci" not in html
    assert html.count('name="action" value="revoke"') == 1


def test_it_refuses_a_second_active_project_token_with_the_same_label(as_user: Any) -> None:
    client = as_user("admin")
    create_on_page(client, "v1.*", Role.QA, "github-actions")
    events = AuditEvent.objects.count()

    response = create_on_page(client, "v2.*", Role.DEVOPS, "github-actions")

    html = response.content.decode()
    assert response.status_code == 422
    assert '<p class="error" role="alert">An active token already has this label.</p>' in html
    assert not NEW_TOKEN.search(html)
    assert PipelineToken.objects.filter(label="github-actions").count() == 1
    assert AuditEvent.objects.count() == events


@pytest.mark.parametrize(
    ("pattern", "error"),
    [
        ("v2 *", "Use printable ASCII characters without spaces, e.g. * or v2.*."),
        ("v2.\u2217", "Use printable ASCII characters without spaces, e.g. * or v2.*."),
        ("v2.\t*", "Use printable ASCII characters without spaces, e.g. * or v2.*."),
        ("v" + "*" * 64, "Ensure this value has at most 64 characters (it has 65)."),
        ("", "This field is required."),
    ],
)
def test_it_refuses_a_pattern_that_no_version_could_be_read_against(
    as_user: Any, pattern: str, error: str
) -> None:
    response = create_on_page(as_user("admin"), pattern, Role.QA, "github-actions")

    assert response.status_code == 422
    assert error in response.content.decode()
    assert not PipelineToken.objects.exists()
    assert not AuditEvent.objects.exists()


def test_it_refuses_a_project_token_label_that_is_not_a_plain_name(as_user: Any) -> None:
    response = create_on_page(as_user("admin"), "v2.*", Role.QA, "bad label")

    html = response.content.decode()
    assert response.status_code == 422
    assert "Use letters, digits, dots, dashes and underscores." in html
    assert 'value="bad label"' in html
    assert 'value="v2.*"' in html
    assert not PipelineToken.objects.exists()


@pytest.mark.parametrize("persona", [*PERSONAS, "outsider"])
def test_it_refuses_the_project_tokens_page_to_everyone_but_staff(
    release: Release, as_user: Any, persona: str
) -> None:
    client = as_user(persona)
    make_project_token("*", Role.QA, "existing")

    page = client.get(PROJECT_TOKENS_URL)
    created = create_on_page(client, "*", Role.QA, "sneaky")
    revoked = revoke_on_page(client, "existing")

    assert page.status_code == created.status_code == revoked.status_code == 403
    assert list(PipelineToken.objects.values_list("label", "revoked_at")) == [("existing", None)]
    assert not AuditEvent.objects.filter(action__startswith="pipeline_token.").exists()


def test_it_sends_anonymous_visitors_of_the_project_tokens_page_to_log_in(db: Any) -> None:
    response = Client().get(PROJECT_TOKENS_URL)

    assert response.status_code == 302
    assert reverse("login") in response["Location"]


def test_it_links_the_project_tokens_page_from_the_release_list_for_staff(
    release: Release, as_user: Any
) -> None:
    link = f'href="{PROJECT_TOKENS_URL}"'

    assert link in as_user("admin").get(reverse("releases:list")).content.decode()
    assert link not in as_user("qa").get(reverse("releases:list")).content.decode()


def test_it_takes_a_made_token_from_the_project_page(
    v2_releases: list[Release], as_user: Any, ci: Client
) -> None:
    response = create_on_page(as_user("admin"), "v2.*", Role.QA, "gitlab")
    match = NEW_TOKEN.search(response.content.decode())
    assert match

    answers = [ci.get(go_url(r), headers=bearer(match.group(1))) for r in v2_releases]

    assert [a.status_code for a in answers] == [200, 200]


def test_it_ends_a_revoked_project_tokens_use_on_every_release_at_once(
    v2_releases: list[Release], as_user: Any, ci: Client
) -> None:
    token = make_project_token("v2.*", Role.QA, "github-actions")
    assert all(ci.get(go_url(r), headers=bearer(token)).status_code == 200 for r in v2_releases)

    revoke_on_page(as_user("admin"), "github-actions")

    for release in v2_releases:
        before = fingerprint(release)
        asked = ci.get(go_url(release), headers=bearer(token))
        reported = report(ci, release, token, {"item": QA_ITEM, "outcome": "pass"})
        assert asked.status_code == reported.status_code == 401
        assert asked.json() == reported.json() == REFUSED
        assert fingerprint(release) == before


# --- the release's own page --------------------------------------------------------------


def test_it_lists_the_project_tokens_that_work_for_a_release_on_its_page_read_only(
    release: Release, as_user: Any
) -> None:
    make_project_token("*", Role.QA, "every-release")
    make_project_token("v1.*", Role.DEVOPS, "v1-deployer")
    make_project_token("v2.*", Role.QA, "v2-only")
    make_project_token("v1.2.?", Role.QA, "retired")
    PipelineToken.objects.filter(label="retired").update(revoked_at=timezone.now())

    html = as_user("admin").get(tokens_url(release)).content.decode()

    assert "Project tokens that work here" in html
    assert "ci:every-release" in html
    assert "<code>*</code>" in html
    assert "ci:v1-deployer" in html
    assert "<code>v1.*</code>" in html
    assert "ci:v2-only" not in html
    assert "ci:retired" not in html
    assert f'href="{PROJECT_TOKENS_URL}"' in html
    # Read-only here: revoking them is the project page's.
    assert 'name="action" value="revoke"' not in html


def test_it_says_so_when_no_project_token_works_for_a_release(
    release: Release, as_user: Any
) -> None:
    make_project_token("v2.*", Role.QA, "v2-only")

    html = as_user("admin").get(tokens_url(release)).content.decode()

    assert "No project token works for this release." in html
    assert "ci:v2-only" not in html


# --- the database ------------------------------------------------------------------------


def test_it_keeps_a_token_to_either_one_release_or_a_pattern_in_the_database(
    release: Release,
) -> None:
    for scope in ({"release": release, "version_pattern": "v1.*"}, {}):
        with pytest.raises(IntegrityError), transaction.atomic():
            PipelineToken.objects.create(
                role=Role.QA, label="both-or-neither", token_hash=uuid.uuid4().hex, **scope
            )
    assert not PipelineToken.objects.exists()


def test_it_keeps_active_project_token_labels_unique_in_the_database(db: Any) -> None:
    make_project_token("v1.*", Role.QA, "github-actions")

    with pytest.raises(IntegrityError), transaction.atomic():
        make_project_token("v2.*", Role.DEVOPS, "github-actions")

    PipelineToken.objects.update(revoked_at=timezone.now())
    make_project_token("v2.*", Role.DEVOPS, "github-actions")
    assert PipelineToken.objects.active().get().version_pattern == "v2.*"
