"""Run a release's checks from the board: an item's, a section's, or all of them.

The run is handed to the workers; its results reach every open board through the live
stream, as ticks do. Asking again for checks still under way joins them instead of
queueing them twice, and a person may start CHECKS_RUNS_PER_MINUTE runs a minute.
"""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.template.loader import render_to_string
from django.urls import URLPattern, path, reverse
from django.utils.translation import gettext as _
from django.utils.translation import ngettext
from django.views.decorators.http import require_POST

from releases import policy
from releases.access import get_release_for_user, person
from releases.actors import who_on

from . import runner, tasks
from .forms import RunChecksForm
from .models import Check


@login_required
@require_POST
def run_checks(request: HttpRequest, version: str) -> HttpResponse:
    release = get_release_for_user(request, version)
    actor = person(request)
    if not policy.may_run_checks(who_on(actor, release)):
        raise PermissionDenied(_("Only people working on this release run its checks."))
    form = RunChecksForm(request.POST)
    status, anchor, retry_after = 200, "", 0
    if not form.is_valid():
        messages.error(request, _("Which checks to run was unclear; reload the page."))
        status = 422
    else:
        data = form.cleaned_data
        items = release.items.all()
        if data["item"]:
            items = items.filter(pk=data["item"])
            anchor = f"#item-{data['item']}"
            scope = _("an item")
        elif data["phase"] or data["section"]:
            items = items.filter(phase=data["phase"], section=data["section"])
            scope = " › ".join(part for part in (data["phase"], data["section"]) if part)
        else:
            scope = _("all checks")
        names = {name for checks in items.values_list("checks", flat=True) for name in checks}
        chosen = Check.objects.active().filter(release=release, name__in=names)
        try:
            launch = runner.start_run(
                release, chosen, by=actor, scope=str(scope), enqueue=tasks.enqueue
            )
        except runner.TooManyRuns as refusal:
            messages.warning(request, refusal.explained())
            status, retry_after = 429, refusal.retry_after
        else:
            status = _tell(request, launch)
    if request.headers.get("HX-Request"):
        html = render_to_string("base.html#messages", {"oob": True}, request=request)
        response = HttpResponse(html, status=status)
        if retry_after:
            response["Retry-After"] = str(retry_after)
        return response
    # Without JavaScript every answer, a refusal too, is the board with its message: a
    # page left at this address would post again on reload.
    return redirect(reverse("releases:board", args=[release.version]) + anchor)


def _tell(request: HttpRequest, launch: runner.Launch) -> int:
    """Say what the run did; the status of the answer."""
    if not launch.results:
        messages.warning(request, _("There are no automated checks to run here."))
        return 422
    if not launch.started:
        messages.info(request, _("Already running: results appear as they arrive."))
        return 200
    started = ngettext(
        "Running %(count)d check; its result appears here as soon as it arrives.",
        "Running %(count)d checks; their results appear here as they arrive.",
        len(launch.started),
    ) % {"count": len(launch.started)}
    if launch.joined:
        started += " " + ngettext(
            "%(count)d more was already running.",
            "%(count)d more were already running.",
            len(launch.joined),
        ) % {"count": len(launch.joined)}
    messages.success(request, started)
    return 200


routes: list[URLPattern] = [
    path("releases/<str:version>/checks/run/", run_checks, name="run"),
]
