"""A release's "Pipeline tokens" page, where staff make, list and revoke the tokens the
pipeline API takes (tests/api/). The personas are the conftest's; `admin` is staff.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any

import pytest
from django.apps import apps
from django.test import Client
from django.urls import reverse
from django.utils.html import escape

from checks import tokens
from checks.models import PipelineToken
from releases.models import AuditAction, AuditEvent, Release, Role
from tests.api.pipeline import (
    DEVOPS_ITEM,
    QA_ITEM,
    RUN_URL,
    bearer,
    go_url,
    make_token,
    other_release,
    report,
)
from tests.conftest import PERSONAS, cache_of_its_own

PLANTED = "planted-pipeline-token-Zq8w3VxK2mNp5RtY7uBc"
NEW_TOKEN = re.compile(r'<input id="new-token" class="share-url" type="text" value="([^"]+)"')


@pytest.fixture(autouse=True)
def own_cache(settings: Any) -> Iterator[None]:
    """Its rate-limit windows start empty."""
    yield from cache_of_its_own(settings, "pipeline-tokens")


@pytest.fixture
def ci() -> Client:
    """A CI job: no session, no cookies, English unless a test says otherwise."""
    return Client(headers={"Accept-Language": "en"})


def tokens_url(release: Release) -> str:
    return reverse("checks:tokens", args=[release.version])


def create_on_page(client: Client, release: Release, role: str, label: str) -> Any:
    return client.post(tokens_url(release), {"action": "create", "role": role, "label": label})


def test_it_shows_a_new_token_once_and_stores_only_its_hash(
    release: Release, users: dict[str, Any], as_user: Any
) -> None:
    client = as_user("admin")

    response = create_on_page(client, release, Role.QA, "github-actions")

    assert response.status_code == 200
    assert response["Cache-Control"] == "no-store"
    match = NEW_TOKEN.search(response.content.decode())
    assert match, "the new token is not on the page"
    token = match.group(1)
    stored = PipelineToken.objects.get(release=release)
    assert (stored.role, stored.label, stored.created_by) == (
        Role.QA,
        "github-actions",
        users["admin"],
    )
    assert stored.token_hash == hashlib.sha256(token.encode()).hexdigest()
    assert token not in stored.token_hash
    event = AuditEvent.objects.get(action=AuditAction.PIPELINE_TOKEN_CREATED)
    assert (event.release, event.actor, event.target) == (
        release,
        users["admin"],
        "ci:github-actions",
    )
    assert event.after == {"role": Role.QA}
    again = client.get(tokens_url(release))
    assert again["Cache-Control"] == "no-store"
    assert "ci:github-actions" in again.content.decode()
    assert token not in again.content.decode()
    assert not NEW_TOKEN.search(again.content.decode())


def test_it_makes_a_token_that_the_api_accepts(release: Release, as_user: Any, ci: Client) -> None:
    response = create_on_page(as_user("admin"), release, Role.QA, "gitlab")
    match = NEW_TOKEN.search(response.content.decode())
    assert match

    answer = ci.get(go_url(release), headers=bearer(match.group(1)))

    assert answer.status_code == 200
    assert answer.json()["version"] == "v1.2.3"
    assert PipelineToken.objects.get(label="gitlab").last_used_at is not None


@pytest.mark.parametrize("persona", PERSONAS)
def test_it_refuses_the_tokens_page_to_stakeholders_who_are_not_staff(
    release: Release, as_user: Any, persona: str
) -> None:
    client = as_user(persona)

    page = client.get(tokens_url(release))
    created = create_on_page(client, release, Role.QA, "sneaky")

    assert page.status_code == 403
    assert created.status_code == 403
    assert not PipelineToken.objects.exists()
    assert not AuditEvent.objects.filter(action=AuditAction.PIPELINE_TOKEN_CREATED).exists()


def test_it_hides_the_tokens_page_from_outsiders(release: Release, as_user: Any) -> None:
    client = as_user("outsider")

    assert client.get(tokens_url(release)).status_code == 404
    assert create_on_page(client, release, Role.QA, "sneaky").status_code == 404
    assert not PipelineToken.objects.exists()


def test_it_sends_anonymous_visitors_of_the_tokens_page_to_log_in(release: Release) -> None:
    response = Client().get(tokens_url(release))

    assert response.status_code == 302
    assert reverse("login") in response["Location"]


def test_it_revokes_a_token_once_and_says_so_the_second_time(
    release: Release, users: dict[str, Any], as_user: Any, ci: Client
) -> None:
    client = as_user("admin")
    token = make_token(release, Role.QA, "jenkins")
    stored = PipelineToken.objects.get(label="jenkins")

    first = client.post(tokens_url(release), {"action": "revoke", "token": stored.pk})
    first_page = client.get(first["Location"]).content.decode()
    second = client.post(tokens_url(release), {"action": "revoke", "token": stored.pk})
    second_page = client.get(second["Location"]).content.decode()

    assert first.status_code == second.status_code == 302
    assert first["Location"] == second["Location"] == tokens_url(release)
    assert "Token revoked; it no longer works." in first_page
    assert "That token is already revoked or does not exist." in second_page
    assert "Token revoked; it no longer works." not in second_page
    stored.refresh_from_db()
    assert stored.revoked_at is not None
    revoked = AuditEvent.objects.filter(action=AuditAction.PIPELINE_TOKEN_REVOKED)
    assert revoked.count() == 1
    assert (revoked[0].actor, revoked[0].target) == (users["admin"], "ci:jenkins")
    assert ci.get(go_url(release), headers=bearer(token)).status_code == 401


def test_it_lists_the_tokens_of_the_release_and_no_others(
    release: Release, users: dict[str, Any], as_user: Any
) -> None:
    client = as_user("admin")
    make_token(release, Role.QA, "unit-ci")
    make_token(release, Role.DEVOPS, "infra-ci")
    make_token(other_release(users), Role.QA, "elsewhere")
    old = PipelineToken.objects.get(label="infra-ci")
    client.post(tokens_url(release), {"action": "revoke", "token": old.pk})

    html = client.get(tokens_url(release)).content.decode()

    assert "ci:unit-ci" in html
    assert "ci:infra-ci" in html
    assert "ci:elsewhere" not in html
    assert html.count('<span class="badge badge--done">Active</span>') == 1
    assert html.count('name="action" value="revoke"') == 1
    assert "Revoked " in html


def test_it_refuses_a_second_active_token_with_the_same_label(
    release: Release, as_user: Any
) -> None:
    client = as_user("admin")
    create_on_page(client, release, Role.QA, "github-actions")
    events = AuditEvent.objects.count()

    response = create_on_page(client, release, Role.DEVOPS, "github-actions")

    html = response.content.decode()
    assert response.status_code == 422
    assert '<p class="error" role="alert">An active token already has this label.</p>' in html
    assert not NEW_TOKEN.search(html)
    assert PipelineToken.objects.filter(label="github-actions").count() == 1
    assert AuditEvent.objects.count() == events


def test_it_lets_a_revoked_tokens_label_be_used_again(release: Release, as_user: Any) -> None:
    client = as_user("admin")
    create_on_page(client, release, Role.QA, "github-actions")
    first = PipelineToken.objects.get()
    client.post(tokens_url(release), {"action": "revoke", "token": first.pk})

    response = create_on_page(client, release, Role.QA, "github-actions")

    assert NEW_TOKEN.search(response.content.decode())
    assert PipelineToken.objects.filter(label="github-actions").count() == 2
    assert PipelineToken.objects.active().filter(label="github-actions").count() == 1


@pytest.mark.parametrize("label", ["ci job; rm -rf", "bad label"])
def test_it_refuses_a_token_label_that_is_not_a_plain_name(
    release: Release, as_user: Any, label: str
) -> None:
    response = create_on_page(as_user("admin"), release, Role.QA, label)

    html = response.content.decode()
    assert response.status_code == 422
    assert "Use letters, digits, dots, dashes and underscores." in html
    assert f'value="{escape(label)}"' in html
    assert not PipelineToken.objects.exists()


def test_it_never_stores_the_token_itself(
    release: Release, as_user: Any, ci: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(tokens, "secrets", SimpleNamespace(token_urlsafe=lambda _n: PLANTED))
    admin = as_user("admin")
    shown = create_on_page(admin, release, Role.QA, "planted")
    assert PLANTED in shown.content.decode()

    ci.get(go_url(release), headers=bearer(PLANTED))
    report(ci, release, PLANTED, {"item": QA_ITEM, "outcome": "fail", "url": RUN_URL})
    report(ci, release, PLANTED, {"item": QA_ITEM, "outcome": "pass", "url": RUN_URL})
    report(ci, release, PLANTED, {"item": DEVOPS_ITEM, "outcome": "pass"})
    stored = PipelineToken.objects.get(label="planted")
    admin.post(tokens_url(release), {"action": "revoke", "token": stored.pk})

    events = list(AuditEvent.objects.values_list("target", "before", "after", "actor_label"))
    assert len(events) > 3
    for target, before, after, label in events:
        assert PLANTED not in target
        assert PLANTED not in json.dumps(before)
        assert PLANTED not in json.dumps(after)
        assert PLANTED not in label
    stored.refresh_from_db()
    assert stored.token_hash == PipelineToken.hash_token(PLANTED)
    assert stored.revoked_at is not None
    # Nowhere else either: every row of every table this test wrote to.
    for model in apps.get_models():
        for row in model._default_manager.values():
            assert PLANTED not in repr(row), f"the token is stored in {model.__name__}"
