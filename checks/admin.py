"""Admin: read-only. Checks change through checks files (load_checks), runs through the
workers, tokens through their page; all of those are audited, the admin would not be."""

from __future__ import annotations

from django.contrib import admin

from releases.admin import ReadOnlyAdmin

from .models import Check, CheckResult, CheckRun, PipelineToken


@admin.register(Check)
class CheckAdmin(ReadOnlyAdmin):
    list_display = ("release", "name", "kind", "source", "retired_at")
    list_filter = ("kind", "release")
    search_fields = ("name",)


@admin.register(CheckRun)
class CheckRunAdmin(ReadOnlyAdmin):
    list_display = ("release", "created_at", "requested_by_label", "scope")
    list_filter = ("release",)


@admin.register(CheckResult)
class CheckResultAdmin(ReadOnlyAdmin):
    list_display = ("subject", "run", "state", "attempt", "outcome", "reason", "latency_ms")
    list_filter = ("state", "outcome", "reason")


@admin.register(PipelineToken)
class PipelineTokenAdmin(ReadOnlyAdmin):
    # The hash stays out of sight too: it is not a secret, but nobody needs it here.
    list_display = ("release", "label", "role", "created_by", "last_used_at", "revoked_at")
    # What the token is first, then its history (HashedToken's fields would come first).
    fields = (
        "release",
        "version_pattern",
        "role",
        "label",
        "created_by",
        "created_at",
        "last_used_at",
        "revoked_at",
    )
