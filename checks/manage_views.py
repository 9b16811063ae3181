"""A release's Checks page: its automated checks, what each last found and who last
changed it. Everyone on the release reads it; staff add, edit, retire and test checks
there, and download them as a checks file.

A check's form is judged by checks.config as a checks file is, with the same messages,
and saved as loading a file saves: under the release lock, audited, its items linked
through releases.workflow. A test runs through the workers like every run, since only
they read credentials; its answer reaches the page when it arrives.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.db.models import Max, Model, QuerySet
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.template.loader import render_to_string
from django.urls import URLPattern, path, reverse
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from releases import policy, workflow
from releases.access import get_release_for_user, may_manage, person, require_manager
from releases.actors import roles_on, who_on
from releases.manage_views import _refused_if
from releases.models import AuditAction, AuditEvent, Release, ReleaseItem, Role

from . import config, export, runner, tasks
from .forms import CheckForm
from .kinds.base import OPTION_TYPES, Kind, OptionType
from .kinds.registry import REGISTRY
from .models import Check, CheckResult, ResultState

# The audit events that say who last changed a check (their target is its name).
CHANGES = (AuditAction.CHECK_ADDED, AuditAction.CHECK_CHANGED, AuditAction.CHECK_RETIRED)


@dataclass(frozen=True)
class OptionShown:
    key: str
    value: str
    # The value names an environment variable: the page shows the name, never a value.
    names_variable: bool


@dataclass
class CheckRow:
    check: Check
    kind: Kind | None
    result: CheckResult | None
    options: list[OptionShown] = field(default_factory=list)
    items: list[ReleaseItem] = field(default_factory=list)
    changed: AuditEvent | None = None
    # Items whose own checklist marker names the check.
    marked: set[int] = field(default_factory=set)

    @property
    def pending(self) -> bool:
        return self.result is not None and self.result.state != ResultState.DONE


def _get_check_for_user(request: HttpRequest, version: str, check_id: int) -> Check:
    """A check of a release this person may see, or 404: another release's check, or
    one that does not exist, is no check here."""
    release = get_release_for_user(request, version)
    check = get_object_or_404(Check.objects.filter(release=release), pk=check_id)
    check.release = release
    return check


def _page_url(release: Release, check: Check | None = None) -> str:
    url = reverse("checks:checks", args=[release.version])
    return f"{url}#check-{check.pk}" if check is not None else url


def _options_shown(check: Check) -> list[OptionShown]:
    shown = []
    for key in sorted(check.options):
        value = check.options[key]
        option_type = OPTION_TYPES.get(key)
        text = value if isinstance(value, str) else export.toml_value(value)
        shown.append(OptionShown(key, text, option_type is OptionType.ENV))
    return shown


def _newest_of_each(rows: QuerySet[Model], by: str) -> QuerySet[Model, int]:
    """The pk of the newest row of each value of `by`, as a subquery. Without order_by()
    a model's default ordering would join the GROUP BY and split the groups."""
    newest: QuerySet[Model, int] = (
        rows.order_by().values(by).annotate(newest=Max("pk")).values_list("newest", flat=True)
    )
    return newest


def _rows(
    release: Release, checks: Sequence[Check], items: Sequence[ReleaseItem]
) -> list[CheckRow]:
    """Each check with its items, its latest result and its last change, in two
    queries however many checks there are."""
    latest = _newest_of_each(CheckResult.objects.filter(subject__release=release), "subject_id")
    results = {
        result.subject_id: result
        for result in CheckResult.objects.filter(pk__in=latest).select_related("run")
    }
    last = _newest_of_each(release.audit_events.filter(action__in=CHANGES), "target")
    changes = {event.target: event for event in AuditEvent.objects.filter(pk__in=last)}
    by_id = {entry.pk: entry for entry in items}
    naming: dict[str, list[ReleaseItem]] = {}
    for entry in items:
        for name in entry.checks:
            naming.setdefault(name, []).append(entry)
    rows = []
    for check in checks:
        if check.retired_at is None:
            named = naming.get(check.name, [])
        else:
            # Its items no longer name it: what it verified while it ran.
            named = [by_id[pk] for pk in check.linked_item_ids if pk in by_id]
        own = set(check.linked_item_ids)
        rows.append(
            CheckRow(
                check=check,
                kind=REGISTRY.get(check.kind),
                options=_options_shown(check),
                items=named,
                result=results.get(check.pk),
                changed=changes.get(check.name),
                marked={entry.pk for entry in named if entry.pk not in own},
            )
        )
    return rows


@login_required
@require_GET
def checks_page(request: HttpRequest, version: str) -> HttpResponse:
    release = get_release_for_user(request, version)
    checks = list(Check.objects.filter(release=release).order_by("name"))
    items = list(release.items.order_by("position"))
    rows = _rows(release, checks, items)
    roles = roles_on(release, person(request).user) - {Role.SUPPORT}
    by_name = {row.check.name: row for row in rows if row.check.retired_at is None}
    context = {
        "release": release,
        "rows": [row for row in rows if row.check.retired_at is None],
        "retired": [row for row in rows if row.check.retired_at is not None],
        # A lead's own items that checks verify, each with those checks.
        "my_items": [
            (entry, [by_name[name] for name in entry.checks if name in by_name])
            for entry in items
            if entry.owner_role in roles and any(name in by_name for name in entry.checks)
        ],
        "kinds": sorted(REGISTRY.values(), key=lambda kind: kind.name),
        "can_manage": may_manage(request),
        "loader": f"manage.py load_checks {export.filename(release)} --release {release.version}",
    }
    return render(request, "checks/checks.html", context)


@login_required
@require_GET
def check_result(request: HttpRequest, version: str, id: int) -> HttpResponse:
    """The latest result of one check: the piece of the page a test keeps up to date."""
    check = _get_check_for_user(request, version, id)
    return HttpResponse(_result_html(request, check))


def _result_html(request: HttpRequest, check: Check) -> str:
    result = CheckResult.objects.filter(subject=check).select_related("run").order_by("-pk")
    row = CheckRow(check=check, kind=REGISTRY.get(check.kind), result=result.first())
    context = {"release": check.release, "row": row}
    return render_to_string("checks/checks.html#result", context, request=request)


@login_required
@require_http_methods(["GET", "POST"])
def check_add(request: HttpRequest, version: str) -> HttpResponse:
    release = get_release_for_user(request, version)
    require_manager(request)
    kind = REGISTRY.get(request.GET.get("kind", ""))
    if kind is None:
        raise Http404(_("No such kind of check."))
    items = list(release.items.order_by("position"))
    form = CheckForm(request.POST if request.method == "POST" else None, kind=kind, items=items)
    if request.method == "POST" and form.is_valid():
        saved = _save(request, release, form, new=True)
        if saved is not None:
            return redirect(_page_url(release, saved))
    context = {"release": release, "kind": kind, "form": form, "check": None}
    return render(request, "checks/check_form.html", context, status=_refused_if(form))


@login_required
@require_http_methods(["GET", "POST"])
def check_edit(request: HttpRequest, version: str, id: int) -> HttpResponse:
    check = _get_check_for_user(request, version, id)
    release = check.release
    require_manager(request)
    kind = REGISTRY.get(check.kind)
    if kind is None:
        raise Http404(_("This check's kind is no longer known; change it in a checks file."))
    items = list(release.items.order_by("position"))
    data = request.POST if request.method == "POST" else None
    form = CheckForm(data, kind=kind, items=items, check=check)
    stale = False
    if request.method == "POST" and form.is_valid():
        try:
            saved = _save(request, release, form, new=False)
        except workflow.Conflict as conflict:
            # What was typed stays; the next save goes over the change now shown.
            check.refresh_from_db()
            fresh = request.POST.copy()
            fresh["seen"] = check.updated_at.isoformat()
            form = CheckForm(fresh, kind=kind, items=items, check=check)
            form.is_valid()
            form.add_error(None, conflict.message)
            stale = True
        else:
            if saved is not None:
                return redirect(_page_url(release, saved))
    context = {"release": release, "kind": kind, "form": form, "check": check}
    # Stale: 409, as the board answers a change made over someone else's.
    status = 409 if stale else _refused_if(form)
    return render(request, "checks/check_form.html", context, status=status)


def _save(request: HttpRequest, release: Release, form: CheckForm, *, new: bool) -> Check | None:
    """Declare the form's check; its faults go beside their fields and None comes back.
    A stale edit raises workflow.Conflict, for the view to show what changed."""
    spec = form.spec
    assert spec is not None  # the form is valid
    was = Check.objects.filter(release=release, name=spec.name).first()
    seen = form.cleaned_data.get("seen") if not new else None
    try:
        summary = config.save(release, spec, by=person(request), new=new, seen=seen or None)
    except config.ChecksFileError as refused:
        form.show_faults(refused.faults)
        return None
    names = {"name": spec.name}
    if was is not None and was.retired_at is not None:
        messages.success(request, _("Check %(name)s is back.") % names)
    elif summary.created:
        messages.success(request, _("Check %(name)s added.") % names)
    elif summary.updated:
        messages.success(request, _("Check %(name)s saved.") % names)
    else:
        messages.info(request, _("Nothing changed in check %(name)s.") % names)
    return Check.objects.get(release=release, name=spec.name)


@login_required
@require_POST
def check_retire(request: HttpRequest, version: str, id: int) -> HttpResponse:
    check = _get_check_for_user(request, version, id)
    require_manager(request)
    try:
        retired = config.retire(check.release, check, by=person(request))
    except workflow.WorkflowError as refused:
        messages.error(request, refused.message)
        return redirect(_page_url(check.release, check))
    if retired:
        messages.success(
            request,
            _("Check %(name)s retired: its items no longer name it. Add it again to bring it back.")
            % {"name": check.name},
        )
    else:
        messages.info(request, _("Check %(name)s was retired already.") % {"name": check.name})
    return redirect(_page_url(check.release))


@login_required
@require_POST
def check_test(request: HttpRequest, version: str, id: int) -> HttpResponse:
    """Run one check now. The workers run it, as every run, since only they read
    credentials: the page shows its answer when it arrives."""
    check = _get_check_for_user(request, version, id)
    require_manager(request)
    actor = person(request)
    status, retry_after = 200, 0
    if not policy.may_run_checks(who_on(actor, check.release)):
        messages.error(
            request, _("This release is closed: its checks do not run until it is reopened.")
        )
        status = 422
    else:
        try:
            launch = runner.start_run(
                check.release,
                [check],
                by=actor,
                scope=_("test of %(name)s") % {"name": check.name},
                enqueue=tasks.enqueue,
            )
        except runner.TooManyRuns as refusal:
            messages.warning(request, refusal.explained())
            status, retry_after = 429, refusal.retry_after
        else:
            if not launch.results:
                messages.error(request, _("A retired check does not run; add it again first."))
                status = 422
            elif not launch.started:
                messages.info(
                    request,
                    _("%(name)s is already running: its answer shows here when it arrives.")
                    % {"name": check.name},
                )
            else:
                messages.success(
                    request,
                    _("Testing %(name)s: its answer shows here as soon as a worker has it.")
                    % {"name": check.name},
                )
    if request.headers.get("HX-Request"):
        html = _result_html(request, check) + render_to_string(
            "base.html#messages", {"oob": True}, request=request
        )
        response = HttpResponse(html, status=status)
        if retry_after:
            response["Retry-After"] = str(retry_after)
        return response
    return redirect(_page_url(check.release, check))


@login_required
@require_GET
def checks_download(request: HttpRequest, version: str) -> HttpResponse:
    release = get_release_for_user(request, version)
    require_manager(request)
    response = HttpResponse(
        export.checks_file(release), content_type="application/toml; charset=utf-8"
    )
    response["Content-Disposition"] = f'attachment; filename="{export.filename(release)}"'
    return response


routes: list[URLPattern] = [
    path("releases/<str:version>/checks/", checks_page, name="checks"),
    path("releases/<str:version>/checks.toml", checks_download, name="download"),
    path("releases/<str:version>/checks/new/", check_add, name="add"),
    path("releases/<str:version>/checks/<int:id>/", check_edit, name="edit"),
    path("releases/<str:version>/checks/<int:id>/retire/", check_retire, name="retire"),
    path("releases/<str:version>/checks/<int:id>/test/", check_test, name="test"),
    path("releases/<str:version>/checks/<int:id>/result/", check_result, name="result"),
]
