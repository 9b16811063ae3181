"""The github kind against a stand-in GitHub REST API on 127.0.0.1 (tests/checks/vendors.py),
answering as https://docs.github.com/en/rest describes. The generic ways an answer fails
(5xx, garbage, silence, a certificate) are in test_vendor_kinds.py."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

from checks import config
from checks.kinds import github
from checks.kinds.base import CheckError, Context, Reason, as_said
from tests.checks.protocol_standins import Shared, shared_stand_in
from tests.checks.standin import Reply, StandIn, stand_in
from tests.checks.vendors import GITHUB_TOKEN, PLANTED, GitHub, Tag

GITHUB_ENV = {"GITHUB_TOKEN": GITHUB_TOKEN}
REPOSITORY = Path(__file__).resolve().parents[2]


def context(options: Mapping[str, Any], env: Mapping[str, str] | None = None) -> Context:
    return Context(options=options, release_version="v1.0.0", env=dict(env or {}))


def assert_clean(*texts: str) -> None:
    for text in texts:
        for planted in PLANTED:
            assert planted not in text


def success(ctx: Context) -> str:
    evidence = as_said(github.run(ctx)).english()
    assert_clean(evidence)
    return evidence


def failure(ctx: Context) -> CheckError:
    with pytest.raises(CheckError) as caught:
        github.run(ctx)
    error = caught.value
    assert_clean(error.evidence, str(error), repr(error.args))
    return error


def assert_permanent(error: CheckError, reason: Reason) -> None:
    assert (error.reason, error.permanent) == (reason, True), error.evidence


def github_options(url: str, *, token: bool = True, **more: Any) -> dict[str, Any]:
    options: dict[str, Any] = {"repo": "octo-org/website", "base_url": url, **more}
    if token:
        options["secret_env"] = "GITHUB_TOKEN"
    return options


@pytest.fixture(scope="module")
def shared() -> Iterator[Shared]:
    with shared_stand_in() as server:
        yield server


@pytest.fixture
def serve(shared: Shared) -> Any:
    return shared.serve


def test_it_passes_github_when_the_tag_is_on_main_and_the_changelog_names_it(serve: Any) -> None:
    server = serve(GitHub())
    evidence = success(context(github_options(server.url), GITHUB_ENV))
    assert evidence == (
        "tag v1.0.0 at 1a2b3c4 is on main; main has no commit that v1.0.0 lacks;"
        " CHANGELOG.md at v1.0.0 mentions 1.0.0"
    )
    assert [seen.path for seen in server.requests] == [
        "/repos/octo-org/website",
        "/repos/octo-org/website/git/ref/tags/v1.0.0",
        "/repos/octo-org/website/compare/v1.0.0...main",
        "/repos/octo-org/website/contents/CHANGELOG.md",
    ]
    assert server.requests[3].query == {"ref": ["v1.0.0"]}
    for seen in server.requests:
        assert seen.header("accept") == "application/vnd.github+json"
        assert seen.header("x-github-api-version") == "2022-11-28"
        assert seen.header("authorization") == f"Bearer {GITHUB_TOKEN}"


def test_it_follows_an_annotated_github_tag_to_its_commit_on_an_enterprise_base(
    serve: Any,
) -> None:
    vendor = GitHub(
        tags={"v1.0.0": Tag("9f8e7d6c5b4a", tag_object="7a7a7a7a")}, path_prefix="/api/v3"
    )
    server = serve(vendor)
    evidence = success(context(github_options(server.url + "/api/v3", prove=["tag"]), GITHUB_ENV))
    assert evidence == "tag v1.0.0 at 9f8e7d6 is on main"
    assert server.requests[2].path == "/api/v3/repos/octo-org/website/git/tags/7a7a7a7a"


def test_it_reads_a_public_github_repository_without_a_token(serve: Any) -> None:
    server = serve(GitHub())
    success(context(github_options(server.url, token=False)))
    assert {seen.header("authorization") for seen in server.requests} == {""}


def test_it_says_a_missing_github_repository_may_be_private_and_invisible(serve: Any) -> None:
    server = serve(GitHub(private=True))
    error = failure(context(github_options(server.url, token=False)))
    assert_permanent(error, Reason.MISCONFIGURED)
    assert error.evidence == (
        "repository octo-org/website not found, or private and no token is configured"
    )


def test_it_says_a_github_tag_does_not_exist(serve: Any) -> None:
    server = serve(GitHub(tags={"v0.9.0": Tag("abc")}))
    error = failure(context(github_options(server.url), GITHUB_ENV))
    assert_permanent(error, Reason.MISCONFIGURED)
    assert error.evidence == "tag v1.0.0 does not exist"


@pytest.mark.parametrize("status", ["behind", "diverged"])
def test_it_fails_a_github_tag_that_is_not_on_the_default_branch(status: str, serve: Any) -> None:
    server = serve(GitHub(compare=status, behind_by=2))
    error = failure(context(github_options(server.url), GITHUB_ENV))
    assert_permanent(error, Reason.MISCONFIGURED)
    assert error.evidence == (
        f"tag v1.0.0 is not on main (compare says {status}, 2 tagged commits not on it)"
    )


@pytest.mark.parametrize(
    "changelog",
    [
        "# Changelog\n\n## 0.9.0\n",
        "## 11.0.0\n",
        "## 1.0.0-rc1\n",
        "## 1.0.0.1\n",
    ],
)
def test_it_fails_a_changelog_that_does_not_mention_the_version(changelog: str, serve: Any) -> None:
    server = serve(GitHub(changelog=changelog))
    error = failure(context(github_options(server.url), GITHUB_ENV))
    assert_permanent(error, Reason.MISCONFIGURED)
    assert error.evidence == "CHANGELOG.md at v1.0.0 does not mention 1.0.0"


@pytest.mark.parametrize("text", ["## v1.0.0\n", "Released 1.0.0.", "## [1.0.0] - 2026-11-30"])
def test_it_finds_the_version_with_or_without_its_v(text: str) -> None:
    assert github.mentions(text, "1.0.0")


def test_it_fails_a_github_tag_without_a_changelog(serve: Any) -> None:
    server = serve(GitHub(changelog=None))
    error = failure(context(github_options(server.url), GITHUB_ENV))
    assert_permanent(error, Reason.MISCONFIGURED)
    assert error.evidence == "no CHANGELOG.md at tag v1.0.0"


def test_it_fails_github_auth_for_a_bad_token(serve: Any) -> None:
    server = serve(GitHub(token="ghp_the_real_one"))
    error = failure(context(github_options(server.url), GITHUB_ENV))
    assert_permanent(error, Reason.AUTH_FAILED)


def test_it_fails_github_auth_for_a_plain_403(serve: Any) -> None:
    server = serve(GitHub(mode="forbidden"))
    error = failure(context(github_options(server.url), GITHUB_ENV))
    assert_permanent(error, Reason.AUTH_FAILED)


@pytest.mark.parametrize(
    ("mode", "wait"),
    [("primary_limit", 30.0), ("secondary_limit", 45.0), ("secondary_quiet", 60.0)],
)
def test_it_retries_a_github_rate_limit_after_the_wait_it_names(
    mode: str, wait: float, serve: Any
) -> None:
    server = serve(GitHub(mode=mode))
    error = failure(context(github_options(server.url), GITHUB_ENV))
    assert error.reason == Reason.RATE_LIMITED and not error.permanent
    assert error.retry_after == pytest.approx(wait, abs=1.5)


@pytest.mark.parametrize("repo", ["octo-org", "octo/web/site", "octo/..", "", "octo org/web"])
def test_it_rejects_a_repo_not_of_the_owner_name_form(repo: str) -> None:
    with pytest.raises(ValueError, match="owner/name"):
        github.check_options({"repo": repo})


def test_it_accepts_a_repo_of_the_owner_name_form() -> None:
    github.check_options({"repo": "octo-org/web.site_2"})


# Renamed repositories


def test_it_follows_a_renamed_repository_on_the_same_host_with_its_token(serve: Any) -> None:
    """A renamed repository answers its old paths with 301 and a Location on the API
    host, to be followed: https://docs.github.com/en/rest/using-the-rest-api/best-practices-for-using-the-rest-api#follow-redirects"""
    server = serve(GitHub(renamed_from="octo-org/old-site"))
    options = github_options(server.url, repo="octo-org/old-site")
    evidence = success(context(options, GITHUB_ENV))
    assert evidence.endswith("(repository octo-org/old-site is now octo-org/website)")
    assert [seen.path for seen in server.requests] == [
        "/repos/octo-org/old-site",
        "/repositories/1296269",
        "/repos/octo-org/old-site/git/ref/tags/v1.0.0",
        "/repositories/1296269/git/ref/tags/v1.0.0",
        "/repos/octo-org/old-site/compare/v1.0.0...main",
        "/repositories/1296269/compare/v1.0.0...main",
        "/repos/octo-org/old-site/contents/CHANGELOG.md",
        "/repositories/1296269/contents/CHANGELOG.md",
    ]
    assert server.requests[-1].query == {"ref": ["v1.0.0"]}
    assert {seen.header("authorization") for seen in server.requests} == {f"Bearer {GITHUB_TOKEN}"}


def test_it_never_follows_a_redirect_to_another_host_nor_sends_it_the_token(serve: Any) -> None:
    """Only the API host's redirects are GitHub's own
    (https://docs.github.com/en/rest/using-the-rest-api/best-practices-for-using-the-rest-api#follow-redirects);
    a Location elsewhere (here another port) is not followed."""
    with stand_in(lambda _: Reply(200)) as elsewhere:
        moved_to = f"http://127.0.0.1:{elsewhere.port}"
        server = serve(GitHub(renamed_from="octo-org/old-site", moved_to=moved_to))
        error = failure(context(github_options(server.url, repo="octo-org/old-site"), GITHUB_ENV))
    assert_permanent(error, Reason.MISCONFIGURED)
    assert error.evidence == (
        f"repository octo-org/old-site: HTTP 301 redirect to 127.0.0.1:{elsewhere.port},"
        " another host: not followed"
    )
    assert elsewhere.requests == []
    assert len(server.requests) == 1


def test_it_stops_following_redirects_after_a_few(serve: Any) -> None:
    """GitHub's redirects lead to the resource
    (https://docs.github.com/en/rest/using-the-rest-api/best-practices-for-using-the-rest-api#follow-redirects);
    a loop is cut short."""
    server = serve(GitHub(mode="redirect_loop"))
    error = failure(context(github_options(server.url), GITHUB_ENV))
    assert_permanent(error, Reason.MISCONFIGURED)
    assert error.evidence == "repository octo-org/website: more than 3 redirects"
    assert len(server.requests) == github.MAX_REDIRECTS + 1


# The proofs a check makes


def test_it_fails_merged_when_the_default_branch_has_commits_the_tag_lacks(serve: Any) -> None:
    """`compare/{base}...{head}` answers like `git log base..head`, `ahead_by` counting the
    head's commits the base lacks: https://docs.github.com/en/rest/commits/commits#compare-two-commits"""
    server = serve(GitHub(compare="ahead", ahead_by=3))
    error = failure(context(github_options(server.url, prove="merged"), GITHUB_ENV))
    assert_permanent(error, Reason.MISCONFIGURED)
    assert error.evidence == "main has 3 commits that tag v1.0.0 lacks"
    assert server.requests[-1].path == "/repos/octo-org/website/compare/v1.0.0...main"


def test_it_passes_merged_when_the_tag_has_everything_on_the_default_branch(serve: Any) -> None:
    """`ahead_by` 0 comparing the tag with the branch: nothing on the branch is missing
    from the tag, https://docs.github.com/en/rest/commits/commits#compare-two-commits"""
    server = serve(GitHub(compare="identical"))
    evidence = success(context(github_options(server.url, prove=["merged"]), GITHUB_ENV))
    assert evidence == "main has no commit that v1.0.0 lacks"


def test_it_passes_the_tag_proof_alone_when_the_branch_moved_on(serve: Any) -> None:
    """`status` ahead: the branch holds the tag and more,
    https://docs.github.com/en/rest/commits/commits#compare-two-commits"""
    server = serve(GitHub(compare="ahead", ahead_by=2))
    evidence = success(context(github_options(server.url, prove=["tag"]), GITHUB_ENV))
    assert evidence == "tag v1.0.0 at 1a2b3c4 is on main"
    assert not [seen for seen in server.requests if "/contents/" in seen.path]


def test_it_reads_only_the_changelog_when_that_is_the_proof_asked_for(serve: Any) -> None:
    """Get repository content at a ref:
    https://docs.github.com/en/rest/repos/contents#get-repository-content"""
    server = serve(GitHub(compare="diverged"))
    evidence = success(context(github_options(server.url, prove=["changelog"]), GITHUB_ENV))
    assert evidence == "CHANGELOG.md at v1.0.0 mentions 1.0.0"
    assert not [seen for seen in server.requests if "/compare/" in seen.path]


def test_it_reads_the_changelog_at_the_path_configured(serve: Any) -> None:
    """The content API takes any path in the repository:
    https://docs.github.com/en/rest/repos/contents#get-repository-content"""
    server = serve(GitHub(changelog_path="docs/CHANGES.md"))
    options = github_options(server.url, changelog="docs/CHANGES.md", prove="changelog")
    evidence = success(context(options, GITHUB_ENV))
    assert evidence == "docs/CHANGES.md at v1.0.0 mentions 1.0.0"
    assert server.requests[-1].path == "/repos/octo-org/website/contents/docs/CHANGES.md"


@pytest.mark.parametrize(
    ("options", "problem"),
    [
        ({"prove": ["tag", "released"]}, "prove must list one or more of tag, merged, changelog"),
        ({"prove": []}, "prove must list one or more of"),
        ({"changelog": "/CHANGELOG.md"}, "changelog must be a file's path"),
        ({"changelog": "../CHANGELOG.md"}, "changelog must be a file's path"),
        ({"changelog": ""}, "changelog must be a file's path"),
    ],
)
def test_it_refuses_proofs_and_changelog_paths_that_cannot_work(
    options: dict[str, Any], problem: str
) -> None:
    with pytest.raises(ValueError, match=problem):
        github.check_options({"repo": "octo-org/website", **options})


# A token is optional


def test_it_reads_a_public_repository_when_the_token_variable_is_unset(serve: Any) -> None:
    """Public repositories are readable without authentication (60 requests an hour):
    https://docs.github.com/en/rest/using-the-rest-api/rate-limits-for-the-rest-api"""
    server = serve(GitHub())
    assert success(context(github_options(server.url), {}))
    assert {seen.header("authorization") for seen in server.requests} == {""}


def test_it_names_the_unset_token_variable_when_a_repository_is_not_found(serve: Any) -> None:
    """A private repository is a 404 to whoever cannot see it:
    https://docs.github.com/en/rest/using-the-rest-api/troubleshooting-the-rest-api#404-not-found-for-an-existing-resource"""
    server = serve(GitHub(private=True))
    error = failure(context(github_options(server.url), {}))
    assert_permanent(error, Reason.MISCONFIGURED)
    assert error.evidence == (
        "repository octo-org/website not found, or private and GITHUB_TOKEN is not set"
    )


def test_the_example_files_github_checks_pass_without_a_token(serve: Any) -> None:
    """checks.example.toml must work as shipped on a public repository, which GitHub
    serves without a token: https://docs.github.com/en/rest/using-the-rest-api/rate-limits-for-the-rest-api"""
    specs = [s for s in config.read(REPOSITORY / "checks.example.toml") if s.kind == "github"]
    repo = specs[0].options["repo"]
    server: StandIn = serve(GitHub(repo=repo))
    proved: list[str] = []
    for spec in specs:
        options = {**spec.options, "base_url": server.url}
        success(context(options, {}))
        proved += spec.options["prove"]
    assert sorted(proved) == sorted(github.PROOFS)
    assert all(len(spec.items) == 1 for spec in specs)
