"""Admin: templates, people and contacts are edited here; release items and the audit
trail are read-only, because every change to them goes through releases.workflow."""

from __future__ import annotations

from typing import Any

from django.contrib import admin, messages
from django.contrib.auth.admin import UserAdmin
from django.contrib.auth.forms import AdminUserCreationForm, UserChangeForm
from django.contrib.auth.models import User
from django.core.exceptions import PermissionDenied
from django.db import models
from django.db.models import QuerySet
from django.forms import BaseForm, BaseInlineFormSet, CharField, ModelForm, PasswordInput
from django.http import HttpRequest
from django.utils.translation import gettext_lazy as _

from . import workflow
from .access import person
from .actors import Person
from .forms import VisibleText
from .models import (
    AuditEvent,
    ChecklistTemplate,
    EmergencyContact,
    GoLiveApproval,
    IncidentUpdate,
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


def refuse_hidden_text(form: BaseForm) -> None:
    """Have the form refuse its texts with invisible bidirectional controls, beside each
    field. Passwords are never shown, so they may hold anything."""
    for field in form.fields.values():
        if isinstance(field, CharField) and not isinstance(field.widget, PasswordInput):
            field.validators = [*field.validators, VisibleText(field.label)]


class VisibleTextForm(ModelForm):  # type: ignore[type-arg]
    """Text typed in the admin, refused with invisible bidirectional controls while the
    page can still come back with what was typed: a template's rows are saved here
    directly, and a release's parts reach the workflow only once the form is gone."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        refuse_hidden_text(self)


class VisibleUserCreationForm(AdminUserCreationForm):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        refuse_hidden_text(self)


class VisibleUserChangeForm(UserChangeForm):  # type: ignore[type-arg]
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        refuse_hidden_text(self)


admin.site.unregister(User)


@admin.register(User)
class VisibleUserAdmin(UserAdmin):  # type: ignore[type-arg]
    """Django's own user admin, refusing invisible bidirectional controls in a username,
    a name or an address: the boards show people by name and the audit trail by username
    and name, where those characters would make them read as someone else. Django's
    username rule refuses them too, but without saying which characters it means."""

    form = VisibleUserChangeForm
    add_form = VisibleUserCreationForm


# Where a checklist entry stands and whose it is, first on a template's items and on a
# release's alike.
ENTRY_FIELDS = ("position", "phase", "section", "text", "owner_role")


class TemplateItemInline(admin.TabularInline):  # type: ignore[type-arg]
    model = TemplateItem
    form = VisibleTextForm
    extra = 0
    fields = (*ENTRY_FIELDS, "required", "checks", "perform")


class TemplateRollbackStepInline(admin.StackedInline):  # type: ignore[type-arg]
    model = TemplateRollbackStep
    form = VisibleTextForm
    extra = 0


class TemplateContactInline(admin.TabularInline):  # type: ignore[type-arg]
    model = TemplateContact
    form = VisibleTextForm
    extra = 0


@admin.register(ChecklistTemplate)
class ChecklistTemplateAdmin(admin.ModelAdmin):  # type: ignore[type-arg]
    form = VisibleTextForm
    list_display = ("name", "title", "item_count", "updated_at")
    search_fields = ("name", "title")
    inlines = (TemplateItemInline, TemplateRollbackStepInline, TemplateContactInline)

    @admin.display(description=_("items"))
    def item_count(self, obj: ChecklistTemplate) -> int:
        return obj.items.count()


class StakeholderInline(admin.TabularInline):  # type: ignore[type-arg]
    model = Stakeholder
    form = VisibleTextForm
    extra = 0
    autocomplete_fields = ("user",)


class EmergencyContactInline(admin.TabularInline):  # type: ignore[type-arg]
    model = EmergencyContact
    form = VisibleTextForm
    extra = 0


class ReleaseItemInline(ReadOnlyInline):
    model = ReleaseItem
    fields = (*ENTRY_FIELDS, "state", "reason", "changed_by_label", "changed_at")
    readonly_fields = fields


class RollbackStepInline(ReadOnlyInline):
    model = RollbackStep
    fields = ("position", "text", "commands", "owner_role")
    readonly_fields = fields


def _through_workflow(request: HttpRequest, operation: Any) -> None:
    """Run one workflow operation for an admin page; a refusal is shown as a message
    (the admin has no form error to put it on) and nothing of it is saved."""
    try:
        operation()
    except (workflow.WorkflowError, PermissionDenied) as refusal:
        setattr(request, REFUSED, True)
        messages.error(request, getattr(refusal, "message", str(refusal)))


# Set on a request whose change the workflow refused, so the admin does not also say
# it was saved.
REFUSED = "_deploycheck_refused"


class WorkflowAdmin(admin.ModelAdmin):  # type: ignore[type-arg]
    def message_user(
        self,
        request: HttpRequest,
        message: Any,
        level: int | str = messages.INFO,
        extra_tags: str = "",
        fail_silently: bool = False,
    ) -> None:
        if getattr(request, REFUSED, False) and level == messages.SUCCESS:
            return
        super().message_user(request, message, level, extra_tags, fail_silently)


@admin.register(Release)
class ReleaseAdmin(WorkflowAdmin):
    form = VisibleTextForm
    list_display = ("version", "title", "status", "window_start", "revision")
    list_filter = ("status",)
    search_fields = ("version", "title")
    # Status, gate and revision change only through the workflow's operations.
    readonly_fields = ("status", "template", "gate_position", "revision", "created_at")
    fields = (*workflow.RELEASE_FIELDS, *readonly_fields)
    # A changelog link typed without its scheme is taken as https://, as on the
    # release's own edit page (forms_manage).
    formfield_overrides = {models.URLField: {"assume_scheme": "https"}}
    inlines = (StakeholderInline, EmergencyContactInline, ReleaseItemInline, RollbackStepInline)

    def has_add_permission(self, request: HttpRequest) -> bool:
        # A release is made from a template, which the app's own form does.
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        # The audit trail keeps its releases (AuditEvent protects them anyway).
        return False

    def save_model(
        self,
        request: HttpRequest,
        obj: Release,
        form: ModelForm[Release],
        change: bool,
    ) -> None:
        # Only the fields the form changed, through the workflow: saving the whole row
        # would write back a status and revision read when the form was opened.
        changed = {name: form.cleaned_data[name] for name in form.changed_data}
        _through_workflow(
            request, lambda: workflow.edit_release(obj, fields=changed, by=person(request))
        )

    def save_formset(
        self,
        request: HttpRequest,
        form: ModelForm[Release],
        # The inlines edit several models, so the formset's is not known here.
        formset: BaseInlineFormSet[Any, Release, Any],
        change: bool,
    ) -> None:
        actor = person(request)
        release = form.instance
        formset.save(commit=False)
        for deleted in formset.deleted_objects:
            _through_workflow(request, lambda deleted=deleted: _remove(deleted, actor))
        for changed, _fields in formset.changed_objects:
            _through_workflow(request, lambda changed=changed: _save(changed, actor))
        for new in formset.new_objects:
            new.release = release
            _through_workflow(request, lambda new=new: _add(new, actor))


def _add(part: Stakeholder | EmergencyContact, actor: Person) -> None:
    if isinstance(part, Stakeholder):
        workflow.assign(part.release, role=part.role, user=part.user, by=actor)
    else:
        workflow.add_contact(part.release, fields=_contact_fields(part), by=actor)


def _save(part: Stakeholder | EmergencyContact, actor: Person) -> None:
    if isinstance(part, Stakeholder):
        workflow.reassign(part, role=part.role, user=part.user, by=actor)
    else:
        workflow.edit_contact(part, fields=_contact_fields(part), by=actor)


def _remove(part: Stakeholder | EmergencyContact, actor: Person) -> None:
    if isinstance(part, Stakeholder):
        current = Stakeholder.objects.select_related("user", "release").get(pk=part.pk)
        workflow.unassign(current.release, role=current.role, user=current.user, by=actor)
    else:
        workflow.remove_contact(part, by=actor)


def _contact_fields(contact: EmergencyContact) -> dict[str, Any]:
    return {name: getattr(contact, name) for name in workflow.CONTACT_FIELDS}


class ReleasePartAdmin(WorkflowAdmin):
    """People and contacts edited on their own admin pages: every save and delete,
    bulk deletes included, is a workflow operation, audited and pushed live."""

    form = VisibleTextForm

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> tuple[str, ...]:
        # Moving a row to another release would be two changes on two releases.
        return ("release",) if obj is not None else ()

    def save_model(self, request: HttpRequest, obj: Any, form: Any, change: bool) -> None:
        actor = person(request)
        _through_workflow(request, lambda: (_save if change else _add)(obj, actor))

    def delete_model(self, request: HttpRequest, obj: Any) -> None:
        _through_workflow(request, lambda: _remove(obj, person(request)))

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> None:
        actor = person(request)
        for part in queryset:
            _through_workflow(request, lambda part=part: _remove(part, actor))


@admin.register(Stakeholder)
class StakeholderAdmin(ReleasePartAdmin):
    list_display = ("release", "role", "user")
    list_filter = ("role",)
    autocomplete_fields = ("user",)


@admin.register(EmergencyContact)
class EmergencyContactAdmin(ReleasePartAdmin):
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
    list_display = ("release", "label", "hides_personal", "created_by", "created_at", "revoked_at")
    # What the link is first, then its history (HashedToken's fields would come first);
    # the hash stays out of sight, as the pipeline tokens' does.
    fields = list_display


@admin.register(IncidentUpdate)
class IncidentUpdateAdmin(ReadOnlyAdmin):
    list_display = ("release", "state", "posted_by_label", "posted_at")
    list_filter = ("state", "release")
