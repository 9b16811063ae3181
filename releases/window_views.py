"""The maintenance window: its management page, and its calendar file for the people on
the release and for share links.

Like every release page, each starts from who may see the release (an outsider gets a
404), and every change goes through releases.workflow.window. Extending, completing
early and cancelling ask for confirmation on a page of their own, without JavaScript.
"""

from __future__ import annotations

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.contrib.auth.views import redirect_to_login
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import URLPattern, path, reverse
from django.utils import timezone
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET, require_http_methods

from . import errors, policy, workflow
from .access import get_release_for_user, person
from .actors import who_on
from .forms_window import (
    CancelForm,
    CompleteForm,
    ExtendForm,
    WindowForm,
    suggested_end,
    zone_choices,
)
from .ics import window_calendar
from .models import MaintenanceWindow, Release, ShareLink
from .plan_views import Editor, _with_based_on

# The actions that end or stretch a window people rely on: each is confirmed first.
CONFIRMED_ACTIONS = ("extend", "complete", "cancel")
# The extend and cancel forms share a page and a field name; their ids must differ.
CANCEL_IDS = "cancel_%s"


def _require_window_manager(request: HttpRequest, release: Release) -> None:
    who = who_on(person(request), release)
    if who.closed:
        raise PermissionDenied(workflow.closed_refusal(release))
    if not policy.may_manage_window(who):
        raise PermissionDenied(
            _("Only DevOps, the Product Owner or staff manage the maintenance window.")
        )


def _window_form(window: MaintenanceWindow | None, release: Release) -> WindowForm:
    """Offered filled in with the window as it stands, or with the release's target
    window in the site's zone when there is none yet."""
    if window is not None:
        initial = {
            "start": window.local_start.replace(tzinfo=None),
            "end": window.local_end.replace(tzinfo=None),
            "time_zone": window.time_zone,
            "based_on": window.sequence,
        }
    else:
        zone = timezone.get_current_timezone()
        initial = {
            "start": release.window_start.astimezone(zone).replace(tzinfo=None)
            if release.window_start
            else None,
            "end": release.window_end.astimezone(zone).replace(tzinfo=None)
            if release.window_end
            else None,
            "time_zone": timezone.get_current_timezone_name(),
        }
    return WindowForm(initial=initial)


@login_required
@require_http_methods(["GET", "POST"])
def window_page(request: HttpRequest, version: str) -> HttpResponse:
    release = get_release_for_user(request, version)
    _require_window_manager(request, release)
    window = MaintenanceWindow.objects.filter(release=release).first()
    state = window.state_at(timezone.now()) if window is not None else None
    window_form = _window_form(window, release)
    extend_form = cancel_form = None
    if window is not None:
        extend_form = ExtendForm(
            zone=window.zone, initial={"end": suggested_end(window.ends_at, window.zone)}
        )
        cancel_form = CancelForm(auto_id=CANCEL_IDS)
    status = 200
    editor = Editor()
    if request.method == "POST":
        action = request.POST.get("action", "")
        if action in ("schedule", "edit"):
            shown = _schedule(request, release, WindowForm(request.POST), action, editor)
            done = shown is None
            if shown is not None:
                window_form = shown
        elif action in CONFIRMED_ACTIONS:
            if window is None:
                messages.error(request, _("This release has no maintenance window."))
                return redirect("releases:window", version=release.version)
            form: forms.Form
            if action == "extend":
                form = extend_form = ExtendForm(request.POST, zone=window.zone)
            elif action == "cancel":
                form = cancel_form = CancelForm(request.POST, auto_id=CANCEL_IDS)
            else:
                form = CompleteForm(request.POST)
            if form.is_valid() and not form.cleaned_data["confirmed"]:
                # Asked only what can be done: a refusal is told before the question.
                refused = workflow.refusal_of(lambda: _decided(request, release, action, form))
                if refused is None:
                    return _confirm(request, release, window, action, form)
                messages.error(request, refused)
                done = False
            else:
                done = form.is_valid() and _decide(request, release, action, form)
        else:
            return errors.unknown_action(request)
        if done:
            return redirect("releases:window", version=release.version)
        status = 422
    context = {
        "release": release,
        "window": window,
        "state": state,
        "window_form": window_form,
        "window_editor": editor,
        "extend_form": extend_form,
        "cancel_form": cancel_form,
        "zones": zone_choices(),
        "calendar_url": reverse("releases:calendar", args=[release.version]),
    }
    return render(request, "releases/window.html", context, status=status)


def _schedule(
    request: HttpRequest, release: Release, form: WindowForm, action: str, editor: Editor
) -> WindowForm | None:
    """None once saved; otherwise the form to show again, with everything typed."""
    if not form.is_valid():
        return form
    data = form.cleaned_data
    edit = action == "edit"
    try:
        if not edit:
            workflow.schedule_window(
                release,
                start=data["start"],
                end=data["end"],
                time_zone=data["time_zone"],
                by=person(request),
            )
        elif data["based_on"] is None:
            raise workflow.WorkflowError(
                _("The form is incomplete; reload the page and try again.")
            )
        else:
            workflow.edit_window(
                release,
                start=data["start"],
                end=data["end"],
                time_zone=data["time_zone"],
                based_on=data["based_on"],
                by=person(request),
            )
    except workflow.Conflict as conflict:
        editor.went_stale(conflict)
        saved = MaintenanceWindow.objects.get(release=release)
        return WindowForm(_with_based_on(request.POST, "", str(saved.sequence)))
    except workflow.WorkflowError as error:
        # Above the page, where it is seen whichever of its forms is shown now.
        messages.error(request, error.message)
        return form
    messages.success(
        request,
        _("Maintenance window changed.") if edit else _("Maintenance window scheduled."),
    )
    return None


def _decided(request: HttpRequest, release: Release, action: str, form: forms.Form) -> str:
    """What the confirmed action did, said to the person; WorkflowError if refused."""
    data = form.cleaned_data
    if action == "extend":
        workflow.extend_window(release, end=data["end"], reason=data["reason"], by=person(request))
        return _("Maintenance window extended.")
    if action == "cancel":
        workflow.cancel_window(release, reason=data["reason"], by=person(request))
        return _("Maintenance window cancelled.")
    workflow.complete_window(release, by=person(request))
    return _("Maintenance window completed.")


def _decide(request: HttpRequest, release: Release, action: str, form: forms.Form) -> bool:
    try:
        text = _decided(request, release, action, form)
    except workflow.WorkflowError as error:
        messages.error(request, error.message)
        return False
    messages.success(request, text)
    return True


def _confirm(
    request: HttpRequest,
    release: Release,
    window: MaintenanceWindow,
    action: str,
    form: forms.Form,
) -> HttpResponse:
    """The same form again, every value in hidden fields, to be posted once more."""
    data = form.cleaned_data
    hidden = [
        (name, field.prepare_value(data[name]))
        for name, field in form.fields.items()
        if name != "confirmed"
    ]
    context = {
        "release": release,
        "window": window,
        "action": action,
        "hidden": hidden,
        "new_end": data.get("end"),
        "reason": data.get("reason", ""),
    }
    return render(request, "releases/window_confirm.html", context)


# --- the calendar file --------------------------------------------------------------------


def _calendar_response(request: HttpRequest, release: Release, status_url: str) -> HttpResponse:
    window = MaintenanceWindow.objects.filter(release=release).first()
    if window is None:
        return render(request, "releases/no_window.html", {"release": release}, status=404)
    response = HttpResponse(
        window_calendar(release, window, request.build_absolute_uri(status_url)),
        content_type="text/calendar; charset=utf-8",
    )
    name = f"{release.version}-maintenance-window.ics"
    response["Content-Disposition"] = f'attachment; filename="{name}"'
    # Calendars ask again for changes; each must see the window as it is now.
    response["Cache-Control"] = "no-cache"
    return response


@require_GET
def calendar_file(request: HttpRequest, version: str) -> HttpResponse:
    """For the people on the release (and staff)."""
    if not request.user.is_authenticated:
        return redirect_to_login(request.get_full_path())
    release = get_release_for_user(request, version)
    return _calendar_response(request, release, reverse("releases:status", args=[version]))


@require_GET
def shared_calendar_file(request: HttpRequest, token: str) -> HttpResponse:
    """For whoever holds a share link, as long as it is not revoked."""
    link = get_object_or_404(
        ShareLink.objects.active().select_related("release"),
        token_hash=ShareLink.hash_token(token),
    )
    response = _calendar_response(
        request, link.release, reverse("releases:shared-status", args=[token])
    )
    response["Referrer-Policy"] = "no-referrer"
    response["X-Robots-Tag"] = "noindex, nofollow"
    return response


routes: list[URLPattern] = [
    path("releases/<str:version>/window/", window_page, name="window"),
    path("releases/<str:version>/calendar.ics", calendar_file, name="calendar"),
    path("s/<str:token>/calendar.ics", shared_calendar_file, name="shared-calendar"),
]
