"""Incident updates and the timeline.

The product owner and DevOps post updates for the people outside the team, through a
form that shows the update as they will read it before it is published (no
JavaScript needed). The timeline tells what happened on a release in words, to everyone
on it and to share links, without personal data when the link hides it.
"""

from __future__ import annotations

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import URLPattern, path
from django.utils.http import content_disposition_header
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.views.decorators.http import require_GET, require_http_methods

from . import checklists, workflow
from .access import get_release_for_user, person
from .board import viewer_for
from .forms import MESSAGES, NamedErrorsForm, TextLimit, TypedText
from .models import (
    AuditAction,
    AuditEvent,
    IncidentState,
    IncidentUpdate,
    Release,
    ReleaseStatus,
    Role,
    ShareLink,
)
from .timeline import (
    INTERNAL_ACTIONS,
    PAGE_SIZE,
    STARTS_WORK,
    STATUS_ACTIONS,
    approval_to_deploy,
    human_line,
    phase_spans,
    reader_for,
    role_filter,
)


class IncidentUpdateForm(NamedErrorsForm):
    state = forms.ChoiceField(
        label=gettext_lazy("State"), choices=IncidentState.choices, error_messages=MESSAGES
    )
    message = TypedText(
        label=gettext_lazy("Message"),
        # Refused when it says nothing by checked_message, in the words the API uses; the
        # browser still asks for it first.
        required=False,
        widget=forms.Textarea(
            attrs={"rows": 4, "maxlength": IncidentUpdate.MESSAGE_MAX, "required": True}
        ),
        help_text=gettext_lazy(
            "What is happening, for support and for people outside the company: "
            "no internal detail, at most 500 characters."
        ),
        error_messages=MESSAGES,
        validators=[TextLimit(IncidentUpdate.MESSAGE_MAX)],
    )

    def clean_message(self) -> str:
        # Refused before the preview, not only once the person confirms it.
        try:
            return workflow.checked_message(self.cleaned_data["message"])
        except workflow.WorkflowError as error:
            raise forms.ValidationError(error.message) from None


# --- incident updates ----------------------------------------------------------------------


@login_required
@require_http_methods(["GET", "POST"])
def updates(request: HttpRequest, version: str) -> HttpResponse:
    """GET: the form. A first POST shows the update as it will read, to confirm; the
    POST of that confirmation (`confirmed`) publishes it."""
    release = get_release_for_user(request, version)
    viewer = viewer_for(request.user, release, language=request.LANGUAGE_CODE)
    if not viewer.may_post_update:
        raise PermissionDenied(_("Only the Product Owner or DevOps post incident updates."))
    form = IncidentUpdateForm(request.POST or None)
    status, confirming = 200, False
    if request.method == "POST":
        if not form.is_valid():
            status = 422
        elif request.POST.get("confirmed") != "1":
            confirming = True
        else:
            try:
                workflow.post_update(
                    release,
                    state=form.cleaned_data["state"],
                    message=form.cleaned_data["message"],
                    by=person(request),
                )
            except workflow.WorkflowError as error:
                form.add_error(None, error.message)
                status = 422
            else:
                messages.success(request, _("Update posted: the status page leads with it."))
                return redirect("releases:status", version=release.version)
    context = {
        "release": release,
        "form": form,
        "confirming": confirming,
        "preview_state": IncidentState(form.cleaned_data["state"]).label if confirming else "",
        "incident_updates": release.incident_updates.order_by("-posted_at", "-id"),
        "viewer": viewer,
    }
    return render(request, "releases/incident_updates.html", context, status=status)


# --- timeline ------------------------------------------------------------------------------


def _status_history(release: Release, events: QuerySet[AuditEvent]) -> list[AuditEvent]:
    """The events a release's status moved with, oldest first: its status events, and
    the first change to an item each time it was planned, which started the work."""
    moves = list(events.filter(action__in=STATUS_ACTIONS).order_by("created_at", "id"))
    planned_since = [release.created_at] + [
        e.created_at
        for e in moves
        if e.action == AuditAction.RELEASE_STATUS
        and isinstance(e.after, dict)
        and e.after.get("status") == ReleaseStatus.PLANNED
    ]
    starts = [
        start
        for since in planned_since
        if (
            start := events.filter(action__in=STARTS_WORK, created_at__gte=since)
            .order_by("created_at", "id")
            .first()
        )
        is not None
    ]
    return sorted({e.pk: e for e in [*moves, *starts]}.values(), key=lambda e: (e.created_at, e.pk))


def _timeline(
    request: HttpRequest,
    release: Release,
    *,
    link: ShareLink | None = None,
    token: str = "",
) -> HttpResponse:
    role = request.GET.get("role", "")
    status, role_error = 200, ""
    if role and role not in Role.values:
        role_error = _("“%(value)s” is not a role here; choose one from the list.") % {
            "value": role[:40]
        }
        role, status = "", 400
    every = release.audit_events.all()
    if link is not None:
        every = every.exclude(action__in=INTERNAL_ACTIONS)
    shown = every.filter(role_filter(release, role)) if role else every
    page = Paginator(shown.order_by("-created_at", "-id"), PAGE_SIZE).get_page(
        request.GET.get("page")
    )
    reader = reader_for(
        release, hides_personal=link is not None and link.hides_personal, shared=link is not None
    )
    history = _status_history(release, every)
    context = {
        "release": release,
        "share_token": token,
        "lines": [human_line(event, reader) for event in page.object_list],
        "page": page,
        "roles": Role.choices,
        "role": role,
        "role_error": role_error,
        "spans": phase_spans(history, created_at=release.created_at),
        "approval_to_deploy": approval_to_deploy(history),
        "may_export": link is None,
    }
    response = render(request, "releases/timeline.html", context, status=status)
    if link is not None:
        response["Referrer-Policy"] = "no-referrer"
        response["X-Robots-Tag"] = "noindex, nofollow"
    return response


@login_required
@require_GET
def timeline(request: HttpRequest, version: str) -> HttpResponse:
    return _timeline(request, get_release_for_user(request, version))


@require_GET
def shared_timeline(request: HttpRequest, token: str) -> HttpResponse:
    link = get_object_or_404(
        ShareLink.objects.active().select_related("release"),
        token_hash=ShareLink.hash_token(token),
    )
    return _timeline(request, link.release, link=link, token=token)


@login_required
@require_GET
def export(request: HttpRequest, version: str) -> HttpResponse:
    """The release as Markdown, each item and rollback step under its record: what the
    team keeps of the day. Everyone on the release downloads it, support included, who
    read the same notes and evidence links on the board; share links do not."""
    release = get_release_for_user(request, version)
    response = HttpResponse(
        checklists.export_release(release), content_type="text/markdown; charset=utf-8"
    )
    response["Content-Disposition"] = (
        content_disposition_header(as_attachment=True, filename=f"{release.version}.md") or ""
    )
    response["Cache-Control"] = "no-store"
    return response


routes: list[URLPattern] = [
    path("releases/<str:version>/updates/", updates, name="updates"),
    path("releases/<str:version>/export.md", export, name="export"),
    path("releases/<str:version>/timeline/", timeline, name="timeline"),
    path("s/<str:token>/timeline/", shared_timeline, name="shared-timeline"),
]
