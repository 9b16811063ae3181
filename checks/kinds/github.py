"""GitHub: the release's tag exists, sits on the default branch, and its CHANGELOG.md
mentions the version.

API: https://docs.github.com/en/rest/git/refs
and https://docs.github.com/en/rest/commits/commits#compare-two-commits

The tag is the release's version. Without a token only public repositories are visible;
when secret_env is configured its variable must be set, so that a lost token does not
turn into a misleading "not found".

Permanent failures: the token refused (401) or denied (403 without a rate limit); the
repository not found (404: missing, or private and not visible to the token); the tag
missing; the tag not on the default branch (compare says behind or diverged); and
CHANGELOG.md missing at the tag or not mentioning the version. A primary rate limit
(403/429 with x-ratelimit-remaining: 0) or a secondary one (retry-after, or its message)
is transient.
"""

from __future__ import annotations

import base64
import binascii
import re
import time
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote

import httpx

from .base import Context, Kind, Reason, fault, transient
from .client import http_client, retry_after, send, unexpected
from .vendor_errors import error_body, integer, json_object, mapping, plural, string

PRODUCTION = "https://api.github.com"
REPO = re.compile(r"[A-Za-z0-9-]+/[A-Za-z0-9._-]+")
ON_BRANCH = frozenset({"identical", "ahead"})
OFF_BRANCH = frozenset({"behind", "diverged"})
# An annotated tag may point at another tag; real chains are one or two long.
MAX_TAG_HOPS = 3
# GitHub's advice for a secondary limit that names no wait: at least a minute.
SECONDARY_WAIT = 60.0


def check_options(options: Mapping[str, Any]) -> None:
    repo = options.get("repo")
    if (
        not isinstance(repo, str)
        or not REPO.fullmatch(repo)
        or repo.partition("/")[2] in (".", "..")
    ):
        raise ValueError("repo must be owner/name, for example octo-org/website")


def run(context: Context) -> str:
    try:
        check_options(context.options)
    except ValueError as error:
        raise fault(Reason.MISCONFIGURED, str(error)) from None
    repo = context.text("repo")
    token = context.secret("secret_env") if context.text("secret_env") else ""
    tag = context.release_version
    headers = {"Accept": "application/vnd.github+json", "X-GitHub-Api-Version": "2022-11-28"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    base = context.text("base_url") or PRODUCTION
    unseen = "and the token cannot see it" if token else "and no token is configured"
    with http_client(base_url=base, ca_file=context.text("ca_file"), headers=headers) as client:
        repository = _get(
            client,
            f"/repos/{repo}",
            "repository",
            f"repository {repo} not found, or private {unseen}",
        )
        branch = string(repository, "default_branch")
        if not branch:
            raise transient(Reason.BAD_RESPONSE, "repository: HTTP 200 without default_branch")
        sha = _tagged_commit(client, repo, tag)
        _check_on_branch(client, repo, tag, branch)
        version = _changelog_version(client, repo, tag)
    return f"tag {tag} at {sha[:7]} is on {branch}; CHANGELOG.md mentions {version}"


def _tagged_commit(client: httpx.Client, repo: str, tag: str) -> str:
    ref = _get(
        client,
        f"/repos/{repo}/git/ref/tags/{quote(tag)}",
        f"tag {tag}",
        f"tag {tag} does not exist",
    )
    target = mapping(ref, "object")
    for _ in range(MAX_TAG_HOPS):
        if string(target, "type") != "tag":
            break
        annotated = _get(
            client,
            f"/repos/{repo}/git/tags/{quote(string(target, 'sha'), safe='')}",
            f"annotated tag {tag}",
            f"the object of annotated tag {tag} does not exist",
        )
        target = mapping(annotated, "object")
    kind, sha = string(target, "type"), string(target, "sha")
    if not kind or not sha:
        raise transient(Reason.BAD_RESPONSE, f"tag {tag}: HTTP 200 without an object type and sha")
    if kind != "commit":
        raise fault(Reason.MISCONFIGURED, f"tag {tag} points at a {kind}, not a commit")
    return sha


def _check_on_branch(client: httpx.Client, repo: str, tag: str, branch: str) -> None:
    comparison = _get(
        client,
        f"/repos/{repo}/compare/{quote(tag)}...{quote(branch)}",
        f"comparison of {tag} with {branch}",
        f"tag {tag} and branch {branch} cannot be compared",
        # Only the status is read: one commit per page keeps a long history off the wire.
        params={"per_page": "1"},
    )
    status = string(comparison, "status")
    if status in OFF_BRANCH:
        behind = integer(comparison, "behind_by")
        counted = f", {plural(behind, 'tagged commit')} not on it" if behind is not None else ""
        raise fault(
            Reason.MISCONFIGURED, f"tag {tag} is not on {branch} (compare says {status}{counted})"
        )
    if status not in ON_BRANCH:
        raise transient(
            Reason.BAD_RESPONSE, f"comparison of {tag} with {branch}: unknown status {status!r}"
        )


def _changelog_version(client: httpx.Client, repo: str, tag: str) -> str:
    changelog = _get(
        client,
        f"/repos/{repo}/contents/CHANGELOG.md",
        f"CHANGELOG.md at {tag}",
        f"no CHANGELOG.md at tag {tag}",
        params={"ref": tag},
    )
    if string(changelog, "encoding") != "base64":
        raise transient(Reason.BAD_RESPONSE, f"CHANGELOG.md at {tag}: content not given as base64")
    try:
        text = base64.b64decode(string(changelog, "content")).decode("utf-8", errors="replace")
    except (binascii.Error, ValueError):
        raise transient(
            Reason.BAD_RESPONSE, f"CHANGELOG.md at {tag}: content is not base64"
        ) from None
    version = tag[1:] if tag[:1] in ("v", "V") else tag
    if not mentions(text, version):
        raise fault(Reason.MISCONFIGURED, f"CHANGELOG.md at {tag} does not mention {version}")
    return version


def mentions(text: str, version: str) -> bool:
    """Whether the text names this version, with or without a leading v: "11.0.0",
    "1.0.0.1" and the pre-release "1.0.0-rc1" are other versions."""
    pattern = rf"(?<![\w.])[vV]?{re.escape(version)}(?!\.?\w|-\w)"
    return re.search(pattern, text) is not None


def _get(
    client: httpx.Client,
    path: str,
    what: str,
    missing: str,
    params: dict[str, str] | None = None,
) -> dict[str, Any]:
    response = send(client, "GET", path, params=params)
    if response.status_code != 200:
        raise _refused(response, what, missing)
    return json_object(response, what)


def _refused(response: httpx.Response, what: str, missing: str) -> Exception:
    status = response.status_code
    if status == 404:
        return fault(Reason.MISCONFIGURED, missing)
    if status == 401:
        return fault(Reason.AUTH_FAILED, f"{what}: the token was refused (HTTP 401)")
    if status in (403, 429):
        limited = _rate_limit(response)
        if limited is not None:
            evidence, wait = limited
            return transient(Reason.RATE_LIMITED, f"{what}: {evidence} (HTTP {status})", wait)
        if status == 403:
            return fault(Reason.AUTH_FAILED, f"{what}: access denied to the token (HTTP 403)")
        return transient(Reason.RATE_LIMITED, f"{what}: HTTP 429", SECONDARY_WAIT)
    return unexpected(response, what)


def _rate_limit(response: httpx.Response) -> tuple[str, float] | None:
    """What limit was hit and how long to wait, or None for a plain refusal."""
    headers = response.headers
    if headers.get("x-ratelimit-remaining") == "0":
        try:
            wait = max(0.0, float(headers.get("x-ratelimit-reset", "")) - time.time())
        except ValueError:
            wait = SECONDARY_WAIT
        return "primary rate limit exhausted", wait
    wait_for = retry_after(response)
    if wait_for is not None:
        return "secondary rate limit", wait_for
    # A secondary limit may come without retry-after; only its message tells it from a
    # refusal. The message is read to classify, never copied into evidence.
    if "secondary rate limit" in string(error_body(response), "message").lower():
        return "secondary rate limit", SECONDARY_WAIT
    return None


KIND = Kind(
    name="github",
    required=frozenset({"repo"}),
    optional=frozenset({"secret_env", "base_url", "ca_file"}),
    run=run,
    docs_url="https://docs.github.com/en/rest/git/refs",
    check_options=check_options,
)
