"""GitHub: what a release's items claim of its repository, each a proof a check may make.

API: https://docs.github.com/en/rest/git/refs,
https://docs.github.com/en/rest/commits/commits#compare-two-commits and
https://docs.github.com/en/rest/repos/contents#get-repository-content

The tag is the release's version; the proofs a check makes are `prove` (all three when
left out), so that each item can link the check that proves what it claims:

- tag: the tag exists and is on the default branch (comparing the tag with the branch,
  the branch holds every tagged commit: `status` identical or ahead).
- merged: every change on the default branch is in the tag. The comparison is
  `git log tag..branch` (`compare/{tag}...{branch}`), so its `ahead_by` counts the
  commits on the branch that the tag lacks, and it must be 0.
- changelog: the file `changelog` (CHANGELOG.md when left out) at the tag mentions the
  version.

A token is optional: without one only public repositories are visible (and GitHub allows
60 requests an hour per address). When `secret_env` names a variable that is not set,
the check runs without a token, and a "not found" says so.

GitHub answers a renamed or moved repository with a redirect
(https://docs.github.com/en/rest/using-the-rest-api/best-practices-for-using-the-rest-api#follow-redirects),
e.g. 301 to /repositories/<id>: it is followed at most MAX_REDIRECTS times and only on the
API's own scheme, host and port, so the token never leaves that host; a redirect anywhere
else is not followed. The evidence names the repository's new name.

Permanent failures: the token refused (401) or denied (403 without a rate limit); the
repository not found (404: missing, or private and not visible to the token); the tag
missing; the tag not on the default branch (compare says behind or diverged); commits on
the default branch the tag lacks; the changelog missing at the tag or not mentioning the
version; a redirect to another host or too many of them. A primary rate limit (403/429
with x-ratelimit-remaining: 0) or a secondary one (retry-after, or its message) is
transient.
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
from django.utils.translation import gettext_noop as _

from .base import (
    Context,
    Kind,
    OptionError,
    Reason,
    Said,
    fault,
    invalid_option,
    joined,
    said,
    texts,
    transient,
)
from .client import http_client, retry_after, send, unexpected
from .vendor_errors import error_body, integer, json_object, mapping, string

PRODUCTION = "https://api.github.com"
REPO = re.compile(r"[A-Za-z0-9-]+/[A-Za-z0-9._-]+")
PROOFS = ("tag", "merged", "changelog")
DEFAULT_CHANGELOG = "CHANGELOG.md"
ON_BRANCH = frozenset({"identical", "ahead"})
OFF_BRANCH = frozenset({"behind", "diverged"})
# The redirects GitHub's REST API documents (301 permanent, 302 and 307 temporary), and
# 308, the permanent one that keeps the method.
REDIRECTS = frozenset({301, 302, 307, 308})
# A rename is one hop; a loop must not go on.
MAX_REDIRECTS = 3
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
        raise OptionError(said(_("repo must be owner/name, for example octo-org/website")))
    proofs = texts(options.get("prove", list(PROOFS)))
    unknown = [proof for proof in proofs if proof not in PROOFS]
    if not proofs or unknown:
        raise OptionError(
            said(_("prove must list one or more of %(proofs)s"), proofs=", ".join(PROOFS))
        )
    path = str(options.get("changelog", DEFAULT_CHANGELOG))
    parts = path.split("/")
    if not path or path.startswith("/") or any(part in ("", ".", "..") for part in parts):
        raise OptionError(
            said(_("changelog must be a file's path in the repository, e.g. docs/CHANGELOG.md"))
        )


def run(context: Context) -> Said:
    try:
        check_options(context.options)
    except ValueError as error:
        raise invalid_option(error) from None
    repo = context.text("repo")
    tag = context.release_version
    proofs = texts(context.options.get("prove", list(PROOFS)))
    path = context.text("changelog", DEFAULT_CHANGELOG)
    variable = context.text("secret_env")
    token = context.secret("secret_env", required=False)
    headers = {"Accept": "application/vnd.github+json", "X-GitHub-Api-Version": "2022-11-28"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    base = context.text("base_url") or PRODUCTION
    if token:
        unseen = said(_("the token cannot see it"))
    elif variable:
        unseen = said(_("%(variable)s is not set"), variable=variable)
    else:
        unseen = said(_("no token is configured"))
    with http_client(base_url=base, ca_file=context.text("ca_file"), headers=headers) as client:
        repository = _get(
            client,
            f"/repos/{repo}",
            said(_("repository %(repo)s"), repo=repo),
            said(
                _("repository %(repo)s not found, or private and %(unseen)s"),
                repo=repo,
                unseen=unseen,
            ),
        )
        branch = string(repository, "default_branch")
        if not branch:
            raise transient(
                Reason.BAD_RESPONSE, said(_("repository: HTTP 200 without default_branch"))
            )
        sha = _tagged_commit(client, repo, tag)
        proved: list[Said] = []
        if "tag" in proofs or "merged" in proofs:
            comparison = _comparison(client, repo, tag, branch)
            if "tag" in proofs:
                proved.append(_on_branch(comparison, tag, sha, branch))
            if "merged" in proofs:
                proved.append(_merged(comparison, tag, branch))
        if "changelog" in proofs:
            proved.append(_changelog(client, repo, tag, path))
    evidence = joined(*proved)
    now_named = string(repository, "full_name")
    if now_named and now_named.lower() != repo.lower():
        return said(
            _("%(evidence)s (repository %(repo)s is now %(now)s)"),
            evidence=evidence,
            repo=repo,
            now=now_named,
        )
    return evidence


def _tagged_commit(client: httpx.Client, repo: str, tag: str) -> str:
    ref = _get(
        client,
        f"/repos/{repo}/git/ref/tags/{quote(tag)}",
        said(_("tag %(tag)s"), tag=tag),
        said(_("tag %(tag)s does not exist"), tag=tag),
    )
    target = mapping(ref, "object")
    for _hop in range(MAX_TAG_HOPS):
        if string(target, "type") != "tag":
            break
        annotated = _get(
            client,
            f"/repos/{repo}/git/tags/{quote(string(target, 'sha'), safe='')}",
            said(_("annotated tag %(tag)s"), tag=tag),
            said(_("the object of annotated tag %(tag)s does not exist"), tag=tag),
        )
        target = mapping(annotated, "object")
    kind, sha = string(target, "type"), string(target, "sha")
    if not kind or not sha:
        raise transient(
            Reason.BAD_RESPONSE,
            said(_("tag %(tag)s: HTTP 200 without an object type and sha"), tag=tag),
        )
    if kind != "commit":
        raise fault(
            Reason.MISCONFIGURED,
            said(_("tag %(tag)s points at a %(kind)s, not a commit"), tag=tag, kind=kind),
        )
    return sha


def _comparison(client: httpx.Client, repo: str, tag: str, branch: str) -> dict[str, Any]:
    return _get(
        client,
        f"/repos/{repo}/compare/{quote(tag)}...{quote(branch)}",
        said(_("comparison of %(tag)s with %(branch)s"), tag=tag, branch=branch),
        said(_("tag %(tag)s and branch %(branch)s cannot be compared"), tag=tag, branch=branch),
        # Only the status and counts are read: one commit per page keeps a long history
        # off the wire.
        params={"per_page": "1"},
    )


def _on_branch(comparison: dict[str, Any], tag: str, sha: str, branch: str) -> Said:
    status = string(comparison, "status")
    if status in OFF_BRANCH:
        behind = integer(comparison, "behind_by")
        if behind is None:
            raise fault(
                Reason.MISCONFIGURED,
                said(
                    _("tag %(tag)s is not on %(branch)s (compare says %(status)s)"),
                    tag=tag,
                    branch=branch,
                    status=status,
                ),
            )
        raise fault(
            Reason.MISCONFIGURED,
            said(
                _(
                    "tag %(tag)s is not on %(branch)s"
                    " (compare says %(status)s, %(commits)s not on it)"
                ),
                tag=tag,
                branch=branch,
                status=status,
                commits=(
                    said(_("1 tagged commit"))
                    if behind == 1
                    else said(_("%(count)s tagged commits"), count=behind)
                ),
            ),
        )
    if status not in ON_BRANCH:
        raise transient(
            Reason.BAD_RESPONSE,
            said(
                _("comparison of %(tag)s with %(branch)s: unknown status %(status)s"),
                tag=tag,
                branch=branch,
                status=repr(status),
            ),
        )
    return said(_("tag %(tag)s at %(sha)s is on %(branch)s"), tag=tag, sha=sha[:7], branch=branch)


def _merged(comparison: dict[str, Any], tag: str, branch: str) -> Said:
    ahead = integer(comparison, "ahead_by")
    if ahead is None:
        raise transient(
            Reason.BAD_RESPONSE,
            said(
                _("comparison of %(tag)s with %(branch)s: HTTP 200 without ahead_by"),
                tag=tag,
                branch=branch,
            ),
        )
    if ahead:
        raise fault(
            Reason.MISCONFIGURED,
            said(
                _("%(branch)s has %(commits)s that tag %(tag)s lacks"),
                branch=branch,
                commits=(
                    said(_("1 commit")) if ahead == 1 else said(_("%(count)s commits"), count=ahead)
                ),
                tag=tag,
            ),
        )
    return said(_("%(branch)s has no commit that %(tag)s lacks"), branch=branch, tag=tag)


def _changelog(client: httpx.Client, repo: str, tag: str, path: str) -> Said:
    where = said(_("%(path)s at %(tag)s"), path=path, tag=tag)
    changelog = _get(
        client,
        f"/repos/{repo}/contents/{quote(path)}",
        where,
        said(_("no %(path)s at tag %(tag)s"), path=path, tag=tag),
        params={"ref": tag},
    )
    if string(changelog, "encoding") != "base64":
        raise transient(
            Reason.BAD_RESPONSE, said(_("%(where)s: content not given as base64"), where=where)
        )
    try:
        text = base64.b64decode(string(changelog, "content")).decode("utf-8", errors="replace")
    except (binascii.Error, ValueError):
        raise transient(
            Reason.BAD_RESPONSE, said(_("%(where)s: content is not base64"), where=where)
        ) from None
    version = tag[1:] if tag[:1] in ("v", "V") else tag
    if not mentions(text, version):
        raise fault(
            Reason.MISCONFIGURED,
            said(_("%(where)s does not mention %(version)s"), where=where, version=version),
        )
    return said(_("%(where)s mentions %(version)s"), where=where, version=version)


def mentions(text: str, version: str) -> bool:
    """Whether the text names this version, with or without a leading v: "11.0.0",
    "1.0.0.1" and the pre-release "1.0.0-rc1" are other versions."""
    pattern = rf"(?<![\w.])[vV]?{re.escape(version)}(?!\.?\w|-\w)"
    return re.search(pattern, text) is not None


def _get(
    client: httpx.Client,
    path: str,
    what: Said,
    missing: Said,
    params: dict[str, str] | None = None,
) -> dict[str, Any]:
    url = path
    for _hop in range(MAX_REDIRECTS + 1):
        response = send(client, "GET", url, params=params)
        if response.status_code not in REDIRECTS:
            if response.status_code != 200:
                raise _refused(response, what, missing)
            return json_object(response, what)
        url = str(_followed(client, response, what))
    raise fault(
        Reason.MISCONFIGURED,
        said(_("%(what)s: more than %(count)s redirects"), what=what, count=MAX_REDIRECTS),
    )


def _followed(client: httpx.Client, response: httpx.Response, what: Said) -> httpx.URL:
    """Where a redirect leads, when it stays on the API's scheme, host and port."""
    location = response.headers.get("location")
    if location is None:
        raise unexpected(response, what)
    target = response.url.join(location)
    api = client.base_url
    if (target.scheme, target.host, target.port) != (api.scheme, api.host, api.port):
        # Only the host: the Location's path or query may carry a token.
        raise fault(
            Reason.MISCONFIGURED,
            said(
                _("%(what)s: HTTP %(status)s redirect to %(host)s, another host: not followed"),
                what=what,
                status=response.status_code,
                host=target.netloc.decode("ascii", errors="replace") or "?",
            ),
        )
    return target


def _refused(response: httpx.Response, what: Said, missing: Said) -> Exception:
    status = response.status_code
    if status == 404:
        return fault(Reason.MISCONFIGURED, missing)
    if status == 401:
        return fault(
            Reason.AUTH_FAILED, said(_("%(what)s: the token was refused (HTTP 401)"), what=what)
        )
    if status in (403, 429):
        limited = _rate_limit(response)
        if limited is not None:
            limit, wait = limited
            return transient(
                Reason.RATE_LIMITED,
                said(
                    _("%(what)s: %(limit)s (HTTP %(status)s)"),
                    what=what,
                    limit=limit,
                    status=status,
                ),
                wait,
            )
        if status == 403:
            return fault(
                Reason.AUTH_FAILED,
                said(_("%(what)s: access denied to the token (HTTP 403)"), what=what),
            )
        return transient(
            Reason.RATE_LIMITED, said(_("%(what)s: HTTP 429"), what=what), SECONDARY_WAIT
        )
    return unexpected(response, what)


def _rate_limit(response: httpx.Response) -> tuple[Said, float] | None:
    """What limit was hit and how long to wait, or None for a plain refusal."""
    headers = response.headers
    if headers.get("x-ratelimit-remaining") == "0":
        try:
            wait = max(0.0, float(headers.get("x-ratelimit-reset", "")) - time.time())
        except ValueError:
            wait = SECONDARY_WAIT
        return said(_("primary rate limit exhausted")), wait
    wait_for = retry_after(response)
    if wait_for is not None:
        return said(_("secondary rate limit")), wait_for
    # A secondary limit may come without retry-after; only its message tells it from a
    # refusal. The message is read to classify, never copied into evidence.
    if "secondary rate limit" in string(error_body(response), "message").lower():
        return said(_("secondary rate limit")), SECONDARY_WAIT
    return None


KIND = Kind(
    name="github",
    required=frozenset({"repo"}),
    optional=frozenset({"secret_env", "base_url", "ca_file", "prove", "changelog"}),
    run=run,
    docs_url="https://docs.github.com/en/rest/commits/commits#compare-two-commits",
    check_options=check_options,
)
