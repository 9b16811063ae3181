"""Admin: templates, people and contacts are edited here; release items and the audit
trail are read-only, because every change to them goes through releases.workflow."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.forms import BaseInlineFormSet, ModelForm
from django.http import HttpRequest

from . import workflow
from .access import person
from .models import (
    AuditEvent,
    ChecklistTemplate,
    EmergencyContact,
    GoLiveApproval,
    Release,
    ReleaseItem,
    RollbackStep,
    ShareLink,
    SignOff,
    Stakeholder,
    TemplateContact,
    TemplateItem,
    TemplateRollbackStep,
)


class ReadOnlyInline(admin.TabularInline):  # type: ignore[type-arg]
    extra = 0
    can_delete = False
    show_change_link = False

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class ReadOnlyAdmin(admin.ModelAdmin):  # type: ignore[type-arg]
    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class TemplateItemInline(admin.TabularInline):  # type: ignore[type-arg]
    model = TemplateItem
    extra = 0
    fields = ("position", "phase", "section", "text", "owner_role", "required", "checks")


class TemplateRollbackStepInline(admin.StackedInline):  # type: ignore[type-arg]
    model = TemplateRollbackStep
    extra = 0


class TemplateContactInline(admin.TabularInline):  # type: ignore[type-arg]
    model = TemplateContact
    extra = 0


@admin.register(ChecklistTemplate)
class ChecklistTemplateAdmin(admin.ModelAdmin):  # type: ignore[type-arg]
    list_display = ("name", "title", "item_count", "updated_at")
    search_fields = ("name", "title")
    inlines = (TemplateItemInline, TemplateRollbackStepInline, TemplateContactInline)

    @admin.display(description="items")
    def item_count(self, obj: ChecklistTemplate) -> int:
        return obj.items.count()


class StakeholderInline(admin.TabularInline):  # type: ignore[type-arg]
    model = Stakeholder
    extra = 0
    autocomplete_fields = ("user",)


class EmergencyContactInline(admin.TabularInline):  # type: ignore[type-arg]
    model = EmergencyContact
    extra = 0


class ReleaseItemInline(ReadOnlyInline):
    model = ReleaseItem
    fields = (
        "position",
        "phase",
        "section",
        "text",
        "owner_role",
        "state",
        "reason",
        "changed_by_label",
        "changed_at",
    )
    readonly_fields = fields


class RollbackStepInline(ReadOnlyInline):
    model = RollbackStep
    fields = ("position", "text", "commands")
    readonly_fields = fields


@admin.register(Release)
class ReleaseAdmin(admin.ModelAdmin):  # type: ignore[type-arg]
    list_display = ("version", "title", "status", "window_start", "revision")
    list_filter = ("status",)
    search_fields = ("version", "title")
    # Status, gate and revision change only through the workflow's operations.
    readonly_fields = ("status", "template", "gate_position", "revision", "created_at")
    fields = (
        "version",
        "title",
        "window_start",
        "window_end",
        "changelog_url",
        "two_person_rule",
        *readonly_fields,
    )
    inlines = (StakeholderInline, EmergencyContactInline, ReleaseItemInline, RollbackStepInline)

    def has_add_permission(self, request: HttpRequest) -> bool:
        # A release is made from a template, which the app's own form does.
        return False

    def save_model(
        self,
        request: HttpRequest,
        obj: Release,
        form: ModelForm[Release],
        change: bool,
    ) -> None:
        super().save_model(request, obj, form, change)
        if form.changed_data:
            _audit_admin_edit(request, obj.pk, "release: " + ", ".join(form.changed_data))

    def save_formset(
        self,
        request: HttpRequest,
        form: ModelForm[Release],
        # The inlines edit several models, so the formset's is not known here.
        formset: BaseInlineFormSet[Any, Release, Any],
        change: bool,
    ) -> None:
        super().save_formset(request, form, formset, change)
        if formset.has_changed():
            _audit_admin_edit(request, form.instance.pk, formset.model._meta.verbose_name_plural)


def _audit_admin_edit(request: HttpRequest, release_id: int, target: str) -> None:
    workflow.record_admin_edit(release_id, by=person(request), target=str(target))


class AuditedReleasePartAdmin(admin.ModelAdmin):  # type: ignore[type-arg]
    def save_model(
        self,
        request: HttpRequest,
        obj: Any,
        form: ModelForm,  # type: ignore[type-arg]
        change: bool,
    ) -> None:
        super().save_model(request, obj, form, change)
        _audit_admin_edit(request, obj.release_id, f"{obj._meta.verbose_name}: {obj}")

    def delete_model(self, request: HttpRequest, obj: Any) -> None:
        release_id, label = obj.release_id, f"{obj._meta.verbose_name} removed: {obj}"
        super().delete_model(request, obj)
        _audit_admin_edit(request, release_id, label)


@admin.register(Stakeholder)
class StakeholderAdmin(AuditedReleasePartAdmin):
    list_display = ("release", "role", "user")
    list_filter = ("role",)
    autocomplete_fields = ("user",)


@admin.register(EmergencyContact)
class EmergencyContactAdmin(AuditedReleasePartAdmin):
    list_display = ("release", "role", "name", "phone", "email")
    list_filter = ("release",)


@admin.register(ReleaseItem)
class ReleaseItemAdmin(ReadOnlyAdmin):
    list_display = ("release", "position", "text", "owner_role", "state", "changed_by_label")
    list_filter = ("release", "state", "owner_role")
    search_fields = ("text",)


@admin.register(SignOff)
class SignOffAdmin(ReadOnlyAdmin):
    list_display = ("release", "role", "phase", "signed_by", "signed_at", "reopened_at")


@admin.register(GoLiveApproval)
class GoLiveApprovalAdmin(ReadOnlyAdmin):
    list_display = ("release", "approved_by", "approved_at", "revoked_at")


@admin.register(AuditEvent)
class AuditEventAdmin(ReadOnlyAdmin):
    list_display = ("created_at", "release", "actor_label", "action", "target", "override")
    list_filter = ("action", "override", "release")
    search_fields = ("actor_label", "target")


@admin.register(ShareLink)
class ShareLinkAdmin(ReadOnlyAdmin):
    list_display = ("release", "label", "created_by", "created_at", "revoked_at")
