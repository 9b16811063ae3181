"""A CI job's side of the pipeline API, for its tests and those of the token pages: make
a token, send it, report, and what a report could change."""

from __future__ import annotations

import json
import uuid
from typing import Any

from django.test import Client
from django.urls import reverse

from checks.models import PipelineToken
from releases import workflow
from releases.models import AuditEvent, Release
from tests.conftest import PERSONAS, build_small_template

QA_ITEM = "Unit tests pass"
DEVOPS_ITEM = "TLS certificates installed"
RUN_URL = "https://ci.example.com/run/1"
# One answer for every token that may not act on the release: a probe learns nothing.
REFUSED = {"error": "This token is unknown, revoked, or not for this release."}


def make_token(release: Release, role: str, label: str = "github-actions") -> str:
    value = f"token-{label}-{uuid.uuid4().hex}"
    PipelineToken.objects.create(
        release=release, role=role, label=label, token_hash=PipelineToken.hash_token(value)
    )
    return value


def make_project_token(pattern: str, role: str, label: str = "github-actions") -> str:
    value = f"token-{label}-{uuid.uuid4().hex}"
    PipelineToken.objects.create(
        version_pattern=pattern, role=role, label=label, token_hash=PipelineToken.hash_token(value)
    )
    return value


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def go_url(release: Release) -> str:
    return reverse("api:go-no-go", args=[release.version])


def evidence_url(release: Release) -> str:
    return reverse("api:evidence", args=[release.version])


def report(client: Client, release: Release, token: str, body: Any) -> Any:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    return client.post(
        evidence_url(release), data=raw, content_type="application/json", headers=bearer(token)
    )


def other_release(users: dict[str, Any]) -> Release:
    made = workflow.create_release(
        build_small_template("other"), version="v9.9.9", title="Other", by=users["admin"]
    )
    for persona in PERSONAS:
        workflow.assign(made, role=persona, user=users[persona], by=users["admin"])
    return made


def fingerprint(release: Release) -> dict[str, Any]:
    """Everything a report could change, to prove a refused one changed nothing."""
    release.refresh_from_db()
    return {
        "release": (release.status, release.revision),
        "items": list(
            release.items.order_by("position").values_list(
                "state",
                "reason",
                "evidence_url",
                "check_failure",
                "check_results",
                "changed_by_label",
                "changed_by_kind",
                "version",
                "revision",
            )
        ),
        "signoffs": list(release.signoffs.order_by("id").values_list("id", "reopened_at")),
        "approvals": list(release.approvals.order_by("id").values_list("id", "revoked_at")),
        "events": AuditEvent.objects.count(),
    }
