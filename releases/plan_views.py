"""The release's emergency plan, edited by staff: its emergency contacts and its rollback
plan, each saved as a whole through releases.workflow.

No JavaScript is needed: a row is added by a submit that shows the form again with one
more, and the plan is previewed by a submit too. A save based on contacts or a plan
someone else saved since is refused as stale, and the page comes back with everything
typed beside what is saved now, ready to be saved over it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse, QueryDict
from django.shortcuts import redirect, render
from django.urls import URLPattern, path, reverse
from django.utils.safestring import SafeString
from django.utils.translation import gettext as _
from django.utils.translation import ngettext
from django.views.decorators.http import require_http_methods

from . import errors, policy, workflow
from . import markdown as md
from .access import get_release_for_user, person, require_manager
from .actors import who_on
from .forms_manage import (
    BasedOnForm,
    ContactRowForm,
    ContactRowFormSet,
    RollbackPlanForm,
)
from .models import EmergencyContact, Release, ReleaseStatus, Role, RollbackStep
from .rollout import RollbackView

if TYPE_CHECKING:
    from django.forms import BaseFormSet

    ContactRows = BaseFormSet[ContactRowForm]

CONTACTS_PREFIX = "contacts"
PLAN_PREFIX = "plan"
ROW_FIELDS = ("contact_id", "role", "name", "phone", "email")


@dataclass(frozen=True)
class StepPreview:
    """A step of the plan as it would be saved, before saving it."""

    number: int
    owner_label: str
    text_html: SafeString
    commands: str
    lang: str


def preview_steps(plan: md.RollbackPlan) -> list[StepPreview]:
    shown = []
    for number, step in enumerate(plan.steps, 1):
        owner = step.owner or Role.DEVOPS
        unsaved = RollbackStep(position=number - 1, text=step.text, owner_role=owner)
        shown.append(
            StepPreview(
                number=number,
                owner_label=str(Role(owner).label),
                text_html=RollbackView(unsaved).text_html,
                commands=step.commands,
                lang=step.lang,
            )
        )
    return shown


@dataclass
class Editor:
    """What the page shows of one of its two forms."""

    # Someone else saved since this person loaded the form: what is saved now.
    stale: bool = False
    # A refusal that belongs to no one field (the workflow's, the release's state).
    errors: list[str] = field(default_factory=list)

    def went_stale(self, conflict: workflow.Conflict) -> None:
        self.stale = True
        self.errors.append(conflict.message)


# --- contacts ----------------------------------------------------------------------------


def _saved_rows(release: Release) -> list[dict[str, Any]]:
    return [
        {"contact_id": c.pk, "role": c.role, "name": c.name, "phone": c.phone, "email": c.email}
        for c in release.contacts.order_by("position", "pk")
    ]


def _fresh_contacts(
    release: Release, rows: list[dict[str, Any]] | None = None, *, blank: int = 0
) -> ContactRows:
    """The contacts form filled with `rows` (the saved contacts by default), and
    `blank` empty rows beside the one always offered."""
    formset = ContactRowFormSet(
        initial=_saved_rows(release) if rows is None else rows, prefix=CONTACTS_PREFIX
    )
    formset.extra += blank
    return formset


def _with_based_on(data: QueryDict, prefix: str, version: str) -> QueryDict:
    """The posted data as typed, now based on what is saved: saving it again replaces
    what the other person saved, knowingly."""
    renewed = data.copy()
    renewed[f"{prefix}-based_on" if prefix else "based_on"] = version
    return renewed


def _typed_rows(formset: ContactRows) -> tuple[list[dict[str, Any]], int]:
    """The rows as typed, valid or not, and how many were left blank: those come back
    as empty rows, which saving skips, rather than as rows that must be filled in."""
    rows, blank = [], 0
    for form in formset.forms:
        row = {name: form[name].value() or "" for name in ROW_FIELDS}
        if not any(row.values()):
            blank += 1
            continue
        rows.append({**row, "DELETE": bool(form["DELETE"].value())})
    return rows, blank


def _contact_rows(formset: ContactRows) -> list[workflow.ContactRow]:
    rows = []
    for form in formset.forms:
        data = form.cleaned_data
        if not data or data.get("DELETE"):
            continue
        rows.append(
            workflow.ContactRow(
                role=data["role"],
                name=data["name"],
                phone=data["phone"],
                email=data["email"],
                contact_id=data["contact_id"],
            )
        )
    return rows


def _flag_placeholders(formset: ContactRows, release: Release) -> list[tuple[ContactRowForm, bool]]:
    """Each row with whether it is a placeholder as typed, by the same rule that blocks
    go-live (EmergencyContact.has_placeholder); a checklist's cell kept beside a contact
    counts while no phone or email replaces it."""
    others = dict(release.contacts.values_list("pk", "other"))
    flagged = []
    for form in formset.forms:
        values = {name: str(form[name].value() or "").strip() for name in ROW_FIELDS[1:]}
        if not any(values.values()):
            flagged.append((form, False))
            continue
        contact_id = str(form["contact_id"].value() or "")
        other = others.get(int(contact_id), "") if contact_id.isdigit() else ""
        contact = EmergencyContact(**values, other=other)
        flagged.append((form, contact.has_placeholder()))
    return flagged


def _save_contacts(
    request: HttpRequest, release: Release, formset: ContactRows, editor: Editor
) -> tuple[ContactRows, BasedOnForm] | None:
    """None once saved; otherwise the forms to show again, with everything typed."""
    based_on = BasedOnForm(request.POST, prefix=CONTACTS_PREFIX)
    if not based_on.is_valid():
        editor.errors.append(_("The form is incomplete; reload the page and try again."))
        return formset, based_on
    if not formset.is_valid():
        return formset, based_on
    try:
        saved = workflow.edit_contacts(
            release,
            rows=_contact_rows(formset),
            based_on=based_on.cleaned_data["based_on"],
            by=person(request),
        )
    except workflow.Conflict as conflict:
        editor.went_stale(conflict)
        data = _with_based_on(request.POST, CONTACTS_PREFIX, workflow.contacts_version(release))
        return (
            ContactRowFormSet(data, prefix=CONTACTS_PREFIX),
            BasedOnForm(data, prefix=CONTACTS_PREFIX),
        )
    except workflow.WorkflowError as error:
        editor.errors.append(error.message)
        return formset, based_on
    messages.success(request, _("Emergency contacts saved."))
    placeholders = sum(1 for contact in saved if contact.has_placeholder())
    if placeholders:
        messages.warning(
            request,
            ngettext(
                "%(count)d contact still holds a placeholder: go-live cannot be approved "
                "until it is filled in.",
                "%(count)d contacts still hold placeholders: go-live cannot be approved "
                "until they are filled in.",
                placeholders,
            )
            % {"count": placeholders},
        )
    return None


# --- rollback plan -----------------------------------------------------------------------


def _fresh_plan(release: Release) -> RollbackPlanForm:
    return RollbackPlanForm(
        initial={
            "markdown": md.render_rollback_plan(workflow.rollback_plan(release)),
            "based_on": workflow.plan_version(release),
        },
        prefix=PLAN_PREFIX,
    )


def _preview_plan(form: RollbackPlanForm) -> list[StepPreview]:
    if not form.is_valid():
        return []
    try:
        plan = md.parse_rollback_plan(form.cleaned_data["markdown"])
        workflow.check_storable(plan)
    except md.ChecklistError as error:
        form.add_error("markdown", workflow.plan_error_text(error))
        return []
    except workflow.WorkflowError as error:
        form.add_error("markdown", error.message)
        return []
    return preview_steps(plan)


def _save_plan(
    request: HttpRequest, release: Release, form: RollbackPlanForm, editor: Editor
) -> RollbackPlanForm | None:
    """None once saved; otherwise the form to show again, with everything typed."""
    if not form.is_valid():
        return form
    try:
        plan = workflow.edit_rollback_plan(
            release,
            markdown=form.cleaned_data["markdown"],
            based_on=form.cleaned_data["based_on"],
            by=person(request),
        )
    except workflow.Conflict as conflict:
        editor.went_stale(conflict)
        data = _with_based_on(request.POST, PLAN_PREFIX, workflow.plan_version(release))
        return RollbackPlanForm(data, prefix=PLAN_PREFIX)
    except workflow.WorkflowError as error:
        form.add_error("markdown", error.message)
        return form
    messages.success(
        request,
        ngettext(
            "Rollback plan saved: %(count)d step.",
            "Rollback plan saved: %(count)d steps.",
            len(plan.steps),
        )
        % {"count": len(plan.steps)},
    )
    return None


# --- the page ----------------------------------------------------------------------------


@login_required
@require_http_methods(["GET", "POST"])
def release_plan(request: HttpRequest, version: str) -> HttpResponse:
    release = get_release_for_user(request, version)
    require_manager(request)
    here = reverse("releases:plan", args=[release.version])
    contacts_editor, plan_editor = Editor(), Editor()
    contacts = _fresh_contacts(release)
    contacts_based_on = BasedOnForm(
        initial={"based_on": workflow.contacts_version(release)}, prefix=CONTACTS_PREFIX
    )
    plan_form = _fresh_plan(release)
    preview: list[StepPreview] = []
    # 422 for a form sent back refused, as every other form answers one: adding a row
    # and a plan that previews are not refusals.
    status = 200
    if request.method == "POST":
        action = request.POST.get("action")
        if action == "contacts-add":
            typed = ContactRowFormSet(request.POST, prefix=CONTACTS_PREFIX)
            if typed.management_form.is_valid():
                rows, blank = _typed_rows(typed)
                contacts = _fresh_contacts(release, rows, blank=blank)
                # What was loaded stays the base: adding a row saves nothing.
                contacts_based_on = BasedOnForm(request.POST, prefix=CONTACTS_PREFIX)
            else:
                contacts_editor.errors.append(
                    _("The form is incomplete; reload the page and try again.")
                )
                status = 422
        elif action == "contacts-save":
            formset = ContactRowFormSet(request.POST, prefix=CONTACTS_PREFIX)
            shown = _save_contacts(request, release, formset, contacts_editor)
            if shown is None:
                return redirect(f"{here}#contacts-heading")
            contacts, contacts_based_on = shown
            status = 422
        elif action == "plan-preview":
            plan_form = RollbackPlanForm(request.POST, prefix=PLAN_PREFIX)
            preview = _preview_plan(plan_form)
            if plan_form.errors:
                status = 422
        elif action == "plan-save":
            shown_plan = _save_plan(
                request, release, RollbackPlanForm(request.POST, prefix=PLAN_PREFIX), plan_editor
            )
            if shown_plan is None:
                return redirect(f"{here}#plan-heading")
            plan_form = shown_plan
            status = 422
        else:
            return errors.unknown_action(request)

    who = who_on(person(request), release)
    rollback_open = False
    try:
        workflow.refuse_plan_edit_during_rollback(release)
    except workflow.WorkflowError as refusal:
        rollback_open = True
        # A save refused for it already says so beside the plan typed.
        if refusal.message not in plan_form.errors.get("markdown", []):
            plan_editor.errors.insert(0, refusal.message)
    editable = bool(policy.may_edit_release_plan(who))
    context = {
        "release": release,
        "editable": editable,
        "closed_status": str(ReleaseStatus(release.status).label).lower(),
        "contacts": _flag_placeholders(contacts, release),
        "contacts_formset": contacts,
        "contacts_based_on": contacts_based_on,
        "contacts_editor": contacts_editor,
        "saved_contacts": list(release.contacts.order_by("position", "pk")),
        "placeholder_count": sum(1 for c in release.contacts.all() if c.has_placeholder()),
        "plan_form": plan_form,
        # While a rollback is open the plan is shown, not offered for editing; a plan
        # typed before it was declared still comes back, with the refusal.
        "plan_form_shown": editable and (not rollback_open or plan_form.is_bound),
        "plan_editor": plan_editor,
        "preview": preview,
        "rollback_open": rollback_open,
        "saved_plan": md.render_rollback_plan(workflow.rollback_plan(release)),
        "saved_steps": preview_steps(workflow.rollback_plan(release)),
    }
    return render(request, "releases/release_plan.html", context, status=status)


routes: list[URLPattern] = [
    path("releases/<str:version>/plan/", release_plan, name="plan"),
]
