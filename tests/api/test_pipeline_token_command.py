"""`manage.py pipeline_token`: an operator makes, lists and revokes tokens from a shell,
under the staff page's rules, and the token it prints is the one the API takes."""

from __future__ import annotations

from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.test import Client

from checks.models import PipelineToken
from releases.models import AuditAction, AuditEvent, Release
from tests.api.pipeline import bearer, go_url

pytestmark = pytest.mark.django_db


def run(*args: str) -> str:
    out = StringIO()
    call_command("pipeline_token", *args, stdout=out)
    return out.getvalue()


def create(release: Release, role: str = "qa", label: str = "github-actions") -> str:
    return run("create", "--release", release.version, "--role", role, "--label", label)


def test_create_prints_the_token_alone_and_the_api_takes_it(release: Release) -> None:
    printed = create(release)
    token = printed.strip()
    assert printed == token + "\n" and len(token) >= 40 and " " not in token
    assert Client().get(go_url(release), headers=bearer(token)).status_code == 200
    stored = PipelineToken.objects.get(release=release)
    assert (stored.role, stored.label, stored.created_by) == ("qa", "github-actions", None)
    assert stored.token_hash == PipelineToken.hash_token(token) != token


def test_create_is_audited_as_the_command(release: Release) -> None:
    create(release)
    event = AuditEvent.objects.get(action=AuditAction.PIPELINE_TOKEN_CREATED)
    assert (event.release, event.actor_label, event.target) == (
        release,
        "manage.py pipeline_token",
        "ci:github-actions",
    )
    assert event.after == {"role": "qa"}


def test_a_project_token_works_on_every_release_its_pattern_takes(release: Release) -> None:
    token = run("create", "--pattern", "v*", "--role", "qa", "--label", "ci").strip()
    assert PipelineToken.objects.get(version_pattern="v*").release is None
    assert release.version.startswith("v")
    assert Client().get(go_url(release), headers=bearer(token)).status_code == 200


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--role", "support", "--label", "ci"), "--role"),
        (("--role", "wizard", "--label", "ci"), "--role"),
        (("--role", "qa", "--label", "has space"), "letters, digits"),
        (("--role", "qa", "--label", "ci/job"), "letters, digits"),
    ],
)
def test_create_refuses_what_the_page_refuses(
    release: Release, args: tuple[str, ...], message: str
) -> None:
    with pytest.raises(CommandError, match=message):
        run("create", "--release", release.version, *args)
    assert not PipelineToken.objects.exists()
    assert not AuditEvent.objects.filter(action=AuditAction.PIPELINE_TOKEN_CREATED).exists()


def test_create_refuses_a_bad_pattern_and_an_unknown_release(release: Release) -> None:
    with pytest.raises(CommandError, match="--pattern: Use printable ASCII"):
        run("create", "--pattern", "v 2", "--role", "qa", "--label", "ci")
    with pytest.raises(CommandError, match=r"no release v9\.9\.9"):
        run("create", "--release", "v9.9.9", "--role", "qa", "--label", "ci")
    assert not PipelineToken.objects.exists()


def test_create_refuses_a_label_an_active_token_has(release: Release) -> None:
    create(release)
    with pytest.raises(CommandError, match="already has the label 'github-actions'"):
        create(release, role="devops")
    assert PipelineToken.objects.count() == 1


def test_create_needs_a_scope(release: Release) -> None:
    with pytest.raises(CommandError):
        run("create", "--role", "qa", "--label", "ci")


def test_list_shows_tokens_but_never_their_values(release: Release) -> None:
    token = create(release).strip()
    run("create", "--pattern", "v2.*", "--role", "devops", "--label", "deploys")
    listed = run("list")
    assert "ci:github-actions" in listed and "ci:deploys" in listed and "v2.*" in listed
    assert token not in listed
    assert PipelineToken.objects.get(label="deploys").token_hash not in listed
    only_release = run("list", "--release", release.version)
    assert "ci:github-actions" in only_release and "ci:deploys" not in only_release


def test_revoke_ends_the_token_once(release: Release) -> None:
    token = create(release).strip()
    assert run("revoke", "--release", release.version, "--label", "github-actions") == (
        "revoked ci:github-actions\n"
    )
    assert Client().get(go_url(release), headers=bearer(token)).status_code == 401
    assert AuditEvent.objects.filter(
        action=AuditAction.PIPELINE_TOKEN_REVOKED, actor_label="manage.py pipeline_token"
    ).exists()
    with pytest.raises(CommandError, match="no active token labelled 'github-actions'"):
        run("revoke", "--release", release.version, "--label", "github-actions")
    # Its label is free again, as on the page.
    assert create(release).strip() != token
