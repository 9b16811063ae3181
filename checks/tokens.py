"""Making and revoking pipeline tokens, for the staff pages and `manage.py pipeline_token`
alike: the same rules, the same audit events, whoever asks."""

from __future__ import annotations

import secrets

from django.db import IntegrityError, transaction
from django.utils import timezone

from releases import workflow
from releases.actors import Actor, Person
from releases.models import AuditAction, Release

from .models import PipelineToken


def create(release: Release | None, *, role: str, label: str, pattern: str, by: Actor) -> str:
    """A new token for `role` on `release`, or with None on every release whose version
    matches `pattern`; "" when an active token of the same scope has its label. Staff
    and the system may; only the token's hash is kept."""
    token = secrets.token_urlsafe(32)
    with workflow.managing(release, by=by) as change:
        try:
            # A savepoint: the label's unique constraint decides between two people
            # creating at once, and the refusal leaves the transaction usable.
            with transaction.atomic():
                PipelineToken.objects.create(
                    release=release,
                    version_pattern=pattern,
                    role=role,
                    label=label,
                    token_hash=PipelineToken.hash_token(token),
                    created_by=by.user if isinstance(by, Person) else None,
                )
        except IntegrityError:
            return ""
        change.audit(AuditAction.PIPELINE_TOKEN_CREATED, f"ci:{label}", {}, scope(role, pattern))
    return token


def revoke(token: PipelineToken, *, by: Actor) -> bool:
    """Whether this call revoked it (False when it already was)."""
    with workflow.managing(token.release, by=by) as change:
        revoked = (
            PipelineToken.objects.active().filter(pk=token.pk).update(revoked_at=timezone.now())
        )
        if revoked:
            change.audit(
                AuditAction.PIPELINE_TOKEN_REVOKED,
                f"ci:{token.label}",
                {},
                scope(token.role, token.version_pattern),
            )
    return bool(revoked)


def scope(role: str, pattern: str) -> dict[str, str]:
    """What a token may do, as its audit events record it."""
    return {"role": role, "releases": pattern} if pattern else {"role": role}
