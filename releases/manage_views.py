"""Release management pages: create a release, its people and contacts, its audit trail
and its share links.

Every view starts from the user (`get_release_for_user`), so a release someone cannot
see is a 404 to them, never a 403 that confirms it exists. Every change, share links
included, goes through releases.workflow, which also writes its audit event.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from asgiref.sync import sync_to_async
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.forms import Form
from django.http import (
    Http404,
    HttpRequest,
    HttpResponse,
    StreamingHttpResponse,
)
from django.shortcuts import redirect, render
from django.urls import URLPattern, path, reverse
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET, require_http_methods

from . import errors, exports, tasks, workflow
from .access import get_release_for_user, may_edit_contacts, may_manage, person, require_manager
from .forms_manage import (
    AssignForm,
    ContactForm,
    ReleaseCreateForm,
    RevokeShareLinkForm,
    ShareLinkForm,
    UnassignForm,
)
from .models import (
    AuditAction,
    AuditEvent,
    ChecklistTemplate,
    EmergencyContact,
    Release,
    Role,
    Stakeholder,
)
from .timeline import key_label, value_label

AUDIT_PAGE_SIZE = 50
# The new link's token rides to the next page in a signed cookie that only the creator's
# browser holds for a minute: the database keeps nothing but the token's hash.
NEW_LINK_COOKIE = "share_link_once"
NEW_LINK_MAX_AGE = 60


def _refused_if(*forms: Form) -> int:
    """422 when a form posted here was refused, as a workflow refusal is elsewhere."""
    return 422 if any(form.is_bound and form.errors for form in forms) else 200


# --- create ------------------------------------------------------------------------------


@login_required
@require_http_methods(["GET", "POST"])
def release_create(request: HttpRequest) -> HttpResponse:
    require_manager(request)
    form = ReleaseCreateForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        try:
            release = workflow.create_release(
                data["template"],
                version=data["version"],
                title=data["title"],
                by=person(request),
                window_start=data["window_start"],
                window_end=data["window_end"],
                changelog_url=data["changelog_url"],
                two_person_rule=data["two_person_rule"],
            )
        except workflow.WorkflowError as error:
            # The form checked everything but uniqueness, so a clash on the version is the
            # likely cause; anything else is shown above the form.
            taken = Release.objects.filter(version=data["version"]).exists()
            form.add_error("version" if taken else None, error.message)
        else:
            messages.success(
                request,
                _("Release %(version)s created with %(count)d items. Now assign its people.")
                % {"version": release.version, "count": release.items.count()},
            )
            return redirect("releases:people", version=release.version)
    context = {"form": form, "has_templates": ChecklistTemplate.objects.exists()}
    return render(request, "releases/release_form.html", context, status=_refused_if(form))


# --- people and contacts -----------------------------------------------------------------


@dataclass(frozen=True)
class RoleRow:
    label: str
    people: list[tuple[Stakeholder, UnassignForm]]


def _contact_form(contact: EmergencyContact, data: Any = None) -> ContactForm:
    return ContactForm(
        data,
        prefix=f"contact-{contact.pk}",
        initial={"name": contact.name, "phone": contact.phone, "email": contact.email},
    )


@login_required
@require_http_methods(["GET", "POST"])
def people(request: HttpRequest, version: str) -> HttpResponse:
    release = get_release_for_user(request, version)
    can_edit_contacts = may_edit_contacts(request, release)
    contacts = list(release.contacts.all())
    assign_form = AssignForm()
    contact_forms = {c.pk: _contact_form(c) for c in contacts}
    if request.method == "POST":
        action = request.POST.get("action")
        if action == "assign":
            require_manager(request)
            assign_form = AssignForm(request.POST)
            if _assign(request, release, assign_form):
                return redirect("releases:people", version=release.version)
        elif action == "unassign":
            require_manager(request)
            _unassign(request, release, UnassignForm(request.POST))
            return redirect("releases:people", version=release.version)
        elif action == "contact":
            if not can_edit_contacts:
                raise PermissionDenied(_("Only staff or the Product Owner edit contacts."))
            wanted = request.POST.get("contact")
            contact = next((c for c in contacts if str(c.pk) == wanted), None)
            if contact is None:
                raise Http404(_("No such emergency contact on this release."))
            form = _contact_form(contact, request.POST)
            contact_forms[contact.pk] = form
            if _update_contact(request, contact, form):
                return redirect("releases:people", version=release.version)
        else:
            return errors.unknown_action(request)

    stakes = list(release.stakeholders.select_related("user").order_by("user__username"))
    role_rows = []
    for role in Role:
        held = [s for s in stakes if s.role == role]
        role_rows.append(
            RoleRow(
                label=str(role.label),
                people=[
                    (s, UnassignForm(initial={"role": s.role, "user": s.user_id}, auto_id=False))
                    for s in held
                ],
            )
        )
    context = {
        "release": release,
        "role_rows": role_rows,
        "assign_form": assign_form,
        "contacts": [(c, contact_forms[c.pk]) for c in contacts],
        "placeholder_count": sum(1 for c in contacts if c.has_placeholder()),
        "can_assign": may_manage(request),
        "can_edit_contacts": can_edit_contacts,
    }
    refused = [assign_form, *contact_forms.values()]
    return render(request, "releases/people.html", context, status=_refused_if(*refused))


def _assign(request: HttpRequest, release: Release, form: AssignForm) -> bool:
    if not form.is_valid():
        return False
    role, user = form.cleaned_data["role"], form.cleaned_data["user"]
    label = Role(role).label
    if release.stakeholders.filter(role=role, user=user).exists():
        messages.info(
            request,
            _("%(user)s already holds the role %(role)s.")
            % {"user": user.get_username(), "role": label},
        )
        return True
    try:
        workflow.assign(release, role=role, user=user, by=person(request))
    except workflow.WorkflowError as error:
        form.add_error(None, error.message)
        return False
    messages.success(
        request,
        _("%(user)s now holds the role %(role)s.") % {"user": user.get_username(), "role": label},
    )
    return True


def _unassign(request: HttpRequest, release: Release, form: UnassignForm) -> None:
    if not form.is_valid():
        messages.error(request, _("That person could not be removed; reload and try again."))
        return
    role, user = form.cleaned_data["role"], form.cleaned_data["user"]
    said = {"user": user.get_username(), "role": Role(role).label}
    if workflow.unassign(release, role=role, user=user, by=person(request)):
        messages.success(request, _("%(user)s no longer holds the role %(role)s.") % said)
    else:
        messages.error(
            request, _("%(user)s does not hold the role %(role)s: nothing changed.") % said
        )


def _update_contact(request: HttpRequest, contact: EmergencyContact, form: ContactForm) -> bool:
    if not form.is_valid():
        return False
    try:
        workflow.update_contact(contact, by=person(request), **form.cleaned_data)
    except workflow.WorkflowError as error:
        form.add_error(None, error.message)
        return False
    messages.success(request, _("Emergency contact for %(role)s saved.") % {"role": contact.role})
    return True


# --- audit trail -------------------------------------------------------------------------


def _pairs(data: Any) -> list[tuple[str, str]]:
    """Before or after of an event, each value named in words as the timeline names it
    ("Rolled back", not "rolled_back"; yes or no; a moment as every page writes one)."""
    if isinstance(data, dict):
        return [(key_label(str(key)), value_label(str(key), value)) for key, value in data.items()]
    return [] if data in (None, "", []) else [("", value_label("", data))]


_MISSING = object()


def _changed_pairs(before: Any, after: Any) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    """Before and after of an event, keeping only the keys whose value changed.

    A tick reads "state: pending → done" rather than repeating every unchanged field. When
    one side is empty (or not a dict) both sides are shown whole, and so are they when no
    key differs, so the row never goes blank. The CSV export keeps the full snapshots.
    """
    if isinstance(before, dict) and isinstance(after, dict) and before and after:
        changed = {
            key
            for key in before.keys() | after.keys()
            if before.get(key, _MISSING) != after.get(key, _MISSING)
        }
        if changed:
            before = {key: value for key, value in before.items() if key in changed}
            after = {key: value for key, value in after.items() if key in changed}
    return _pairs(before), _pairs(after)


@dataclass(frozen=True)
class AuditRow:
    event: AuditEvent
    action_label: str
    before: list[tuple[str, str]]
    after: list[tuple[str, str]]


@login_required
@require_GET
def audit_trail(request: HttpRequest, version: str) -> HttpResponse:
    release = get_release_for_user(request, version)
    form, events = exports.filtered_events(release, request.GET)
    page = Paginator(events, AUDIT_PAGE_SIZE).get_page(request.GET.get("page"))
    rows = []
    for event in page.object_list:
        before, after = _changed_pairs(event.before, event.after)
        rows.append(
            AuditRow(
                event=event,
                action_label=AuditAction.label_of(event.action),
                before=before,
                after=after,
            )
        )
    context = {
        "release": release,
        "form": form,
        "page": page,
        "rows": rows,
        # Where someone acted from is personal data: staff only.
        "show_addresses": may_manage(request),
    }
    return render(request, "releases/audit.html", context)


def _start_export(request: HttpRequest, version: str) -> tuple[int, str]:
    release = get_release_for_user(request, version)
    export_id = exports.start(
        release,
        request.GET,
        by=person(request).user,
        show_addresses=may_manage(request),
        enqueue=tasks.enqueue_export,
    )
    return export_id, f"audit-{release.version}.csv"


@login_required
@require_GET
async def audit_csv(request: HttpRequest, version: str) -> HttpResponse | StreamingHttpResponse:
    """The CSV a worker writes, streamed as it comes; served on the event loop
    (deploycheck.asgi), where waiting for the worker holds no page thread."""
    try:
        export_id, file_name = await sync_to_async(_start_export)(request, version)
        first = await exports.first_part(export_id)
    except exports.ExportFailed as failure:
        messages.error(request, str(failure))
        return redirect(f"{reverse('releases:audit', args=[version])}?{request.GET.urlencode()}")
    response = StreamingHttpResponse(
        exports.stream(export_id, first), content_type="text/csv; charset=utf-8"
    )
    response["Content-Disposition"] = f'attachment; filename="{file_name}"'
    return response


# --- share links -------------------------------------------------------------------------


def _new_link_salt(release: Release) -> str:
    return f"releases.share.{release.pk}"


def _share_url(request: HttpRequest, release: Release) -> str | None:
    """The link created just before this page, once: the cookie is dropped right after."""
    token = request.get_signed_cookie(
        NEW_LINK_COOKIE, default=None, salt=_new_link_salt(release), max_age=NEW_LINK_MAX_AGE
    )
    if not token:
        return None
    return request.build_absolute_uri(reverse("releases:shared-status", args=[token]))


def _create_share_link(request: HttpRequest, release: Release, form: ShareLinkForm) -> str | None:
    """The new link's token, or None with the form saying why."""
    if not form.is_valid():
        return None
    try:
        return workflow.create_share_link(
            release,
            label=form.cleaned_data["label"],
            hides_personal=form.cleaned_data["hides_personal"],
            by=person(request),
        )
    except workflow.WorkflowError as error:
        form.add_error(None, error.message)
        return None


@login_required
@require_http_methods(["GET", "POST"])
def share_links(request: HttpRequest, version: str) -> HttpResponse:
    release = get_release_for_user(request, version)
    require_manager(request)
    here = reverse("releases:share", args=[release.version])
    form = ShareLinkForm()
    if request.method == "POST":
        if request.POST.get("action") == "revoke":
            revoke_form = RevokeShareLinkForm(request.POST, release=release)
            if revoke_form.is_valid() and workflow.revoke_share_link(
                release, revoke_form.cleaned_data["link"], by=person(request)
            ):
                messages.success(
                    request,
                    _("Link “%(label)s” revoked; it no longer opens.")
                    % {"label": revoke_form.cleaned_data["link"].label},
                )
            else:
                messages.error(request, _("That link is already revoked or does not exist."))
            return redirect(here)
        form = ShareLinkForm(request.POST)
        token = _create_share_link(request, release, form)
        if token is not None:
            messages.success(
                request, _("Link “%(label)s” created.") % {"label": form.cleaned_data["label"]}
            )
            response: HttpResponse = redirect(here)
            response.set_signed_cookie(
                NEW_LINK_COOKIE,
                token,
                salt=_new_link_salt(release),
                max_age=NEW_LINK_MAX_AGE,
                path=here,
                secure=request.is_secure(),
                httponly=True,
                samesite="Strict",
            )
            return response

    new_url = _share_url(request, release)
    links = release.share_links.select_related("created_by")
    context = {
        "release": release,
        "form": form,
        "new_url": new_url,
        "links": [
            (link, RevokeShareLinkForm(initial={"link": link.pk}, release=release, auto_id=False))
            for link in links
        ],
    }
    response = render(request, "releases/share_links.html", context, status=_refused_if(form))
    if new_url is not None:
        response.delete_cookie(NEW_LINK_COOKIE, path=here, samesite="Strict")
        # A page carrying a working link must not linger in a shared cache or history.
        response["Cache-Control"] = "no-store"
    return response


routes: list[URLPattern] = [
    path("releases/new/", release_create, name="create"),
    path("releases/<str:version>/people/", people, name="people"),
    path("releases/<str:version>/audit/", audit_trail, name="audit"),
    path("releases/<str:version>/audit.csv", audit_csv, name="audit-csv"),
    path("releases/<str:version>/share/", share_links, name="share"),
]
