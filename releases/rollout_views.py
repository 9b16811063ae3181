"""Actions that matter, each asked first: approving go-live, the deploy's start and
finish, a rollback declared, mitigated, resolved and closed, cancelling and reopening.

Without JavaScript: the board links to a confirmation page (GET), whose form says what
will happen and asks why; posting it acts, and the reason lands in the audit trail. A
refused confirmation comes back with its message and what was typed, never lost. The
rollback's steps are ticked and annotated from the board's rollout panel.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from datetime import datetime
from functools import partial
from typing import Any

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import URLPattern, path, reverse
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.views.decorators.http import require_http_methods, require_POST

from . import policy, workflow
from .access import get_release_for_user, person
from .actors import who_on
from .forms import MESSAGES, NamedErrorsForm, _choice, _text
from .models import (
    DeployResult,
    Release,
    ReleaseStatus,
    RollbackSeverity,
    RollbackStep,
    validate_year,
)
from .views import HtmxHttpRequest, Kept, Unchanged, _act, _valid_data


class ReasonForm(NamedErrorsForm):
    reason = _text(gettext_lazy("The reason"), 2000)


# The result and the severity are chosen on the page: the workflow says which are
# allowed, in words that ask for a choice rather than a reload.
class DeployFinishForm(ReasonForm):
    result = _text(gettext_lazy("The result"), 20)


class DeclareForm(ReasonForm):
    severity = _text(gettext_lazy("The severity"), 20)
    detected_at = forms.DateTimeField(
        label=gettext_lazy("When it was detected"),
        required=False,
        input_formats=["%Y-%m-%dT%H:%M", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M"],
        validators=[validate_year],
        error_messages={
            **MESSAGES,
            "invalid": gettext_lazy("%(field)s is not a date and time such as 2026-12-07 01:30."),
            "year": gettext_lazy("%(field)s must be in a year between %(first)d and %(last)d."),
        },
    )


class CloseForm(NamedErrorsForm):
    cause = _text(gettext_lazy("The cause"), 2000)


@dataclass(frozen=True)
class Confirmation:
    title: str
    explanation: str
    button: str
    form: type[NamedErrorsForm]
    # Runs the operation with the form's data; answers the message to show.
    act: Callable[[HttpRequest, Release, dict[str, Any]], str]
    # The rule the operation enforces, and its refusal (untranslated): the page itself
    # is refused to whoever the operation would refuse.
    may: Callable[[policy.Who], policy.Access]
    refusal: str
    warn: bool = False
    # The form's text field; what to ask for in it.
    text_field: str = "reason"
    text_label: str = ""


def _required(value: str, missing: str) -> str:
    # The operations that take a reason for the record only (approve, a status move)
    # accept none; asked here, they need one, and one saying nothing is none.
    if workflow.says_nothing(value):
        raise workflow.WorkflowError(missing)
    return value


def _approve(request: HttpRequest, release: Release, data: dict[str, Any]) -> str:
    reason = _required(data["reason"], _("Say why go-live is approved now."))
    workflow.approve(release, by=person(request), reason=reason)
    return _("Go-live approved.")


def _start(request: HttpRequest, release: Release, data: dict[str, Any]) -> str:
    workflow.start_deploy(release, by=person(request), reason=data["reason"])
    return _("The deploy is recorded as started.")


def _finish(request: HttpRequest, release: Release, data: dict[str, Any]) -> str:
    workflow.finish_deploy(
        release, by=person(request), result=data["result"], reason=data["reason"]
    )
    return _("The deploy is recorded as finished: %(result)s.") % {
        "result": DeployResult(data["result"]).label
    }


def _declare(request: HttpRequest, release: Release, data: dict[str, Any]) -> str:
    detected: datetime | None = data.get("detected_at")
    workflow.declare_rollback(
        release,
        by=person(request),
        reason=data["reason"],
        severity=data["severity"],
        detected_at=detected,
    )
    return _("Rollback declared: tick the steps of the plan as they are done.")


def _mitigate(request: HttpRequest, release: Release, data: dict[str, Any]) -> str:
    workflow.mitigate_rollback(release, by=person(request), reason=data["reason"])
    return _("The rollback is marked mitigated.")


def _resolve(request: HttpRequest, release: Release, data: dict[str, Any]) -> str:
    workflow.resolve_rollback(release, by=person(request), reason=data["reason"])
    return _("The rollback is declared resolved.")


def _close(request: HttpRequest, release: Release, data: dict[str, Any]) -> str:
    workflow.close_rollback(release, by=person(request), cause=data["cause"])
    return _("The rollback is closed, with its cause.")


def _move(status: str) -> Callable[[HttpRequest, Release, dict[str, Any]], str]:
    def act(request: HttpRequest, release: Release, data: dict[str, Any]) -> str:
        reason = _required(data["reason"], _("Say why the release moves."))
        workflow.set_status(release, status=status, by=person(request), reason=reason)
        return _("The release is now: %(status)s.") % {"status": ReleaseStatus(status).label}

    return act


def _confirmations(release: Release) -> dict[str, Confirmation]:
    reopening = release.status in (ReleaseStatus.CANCELLED, ReleaseStatus.ROLLED_BACK)
    return {
        "approve": Confirmation(
            _("Approve go-live"),
            _(
                "Go-live is approved over the checklist as it stands now; a change to a "
                "required item before the gate revokes it."
            ),
            _("Approve go-live"),
            ReasonForm,
            _approve,
            policy.may_approve,
            workflow.APPROVE_REFUSAL,
        ),
        "deploy-start": Confirmation(
            _("Record the deploy started"),
            _("The board and the status page show a clock from now until it finishes."),
            _("Record the start"),
            ReasonForm,
            _start,
            policy.may_record_deploy,
            workflow.DEPLOY_REFUSAL,
        ),
        "deploy-finish": Confirmation(
            _("Record the deploy finished"),
            _(
                "With success the release becomes Deployed. With failure it stays approved: "
                "declare a rollback, or start the deploy again."
            ),
            _("Record the end"),
            DeployFinishForm,
            _finish,
            policy.may_record_deploy,
            workflow.DEPLOY_REFUSAL,
        ),
        "rollback": Confirmation(
            _("Declare a rollback"),
            _(
                "The release becomes Rolled back and its go-live approval ends. The rollback "
                "plan becomes a checklist: each step is ticked by its owner."
            ),
            _("Declare the rollback"),
            DeclareForm,
            _declare,
            policy.may_declare_rollback,
            workflow.DECLARE_REFUSAL,
            warn=True,
        ),
        "mitigate": Confirmation(
            _("Mark the impact mitigated"),
            _("Say what mitigated it; the rollback goes on until it is resolved."),
            _("Mark mitigated"),
            ReasonForm,
            _mitigate,
            policy.may_declare_rollback,
            workflow.MITIGATE_REFUSAL,
        ),
        "resolve": Confirmation(
            _("Declare the rollback resolved"),
            _(
                "A rollback is resolved by itself when every step is done; declare it "
                "resolved only with a reason for the steps left."
            ),
            _("Declare resolved"),
            ReasonForm,
            _resolve,
            policy.may_declare_rollback,
            workflow.RESOLVE_REFUSAL,
            warn=True,
        ),
        "close": Confirmation(
            _("Close the rollback"),
            _(
                "Closing is final: the rollback takes no more changes, and the release stays "
                "Rolled back until someone moves it back in progress for a new attempt."
            ),
            _("Close the rollback"),
            CloseForm,
            _close,
            policy.may_declare_rollback,
            workflow.CLOSE_REFUSAL,
            text_field="cause",
            text_label=_("Cause of the rollback"),
        ),
        "status-" + ReleaseStatus.CANCELLED: Confirmation(
            _("Cancel the release"),
            _("A cancelled release accepts no change until staff reopen it."),
            _("Cancel the release"),
            ReasonForm,
            _move(ReleaseStatus.CANCELLED),
            partial(policy.may_set_status, status=ReleaseStatus.CANCELLED),
            workflow.STATUS_REFUSAL,
            warn=True,
        ),
        "status-" + ReleaseStatus.IN_PROGRESS: Confirmation(
            _("Reopen the release") if reopening else _("Move the release back in progress"),
            _("A new go-live needs a new approval."),
            _("Reopen") if reopening else _("Move it"),
            ReasonForm,
            _move(ReleaseStatus.IN_PROGRESS),
            partial(policy.may_set_status, status=ReleaseStatus.IN_PROGRESS),
            workflow.STATUS_REFUSAL,
        ),
        "status-" + ReleaseStatus.PLANNED: Confirmation(
            _("Move the release back to planned"),
            _("Nothing on the checklist changes."),
            _("Move it"),
            ReasonForm,
            _move(ReleaseStatus.PLANNED),
            partial(policy.may_set_status, status=ReleaseStatus.PLANNED),
            workflow.STATUS_REFUSAL,
        ),
    }


def _refuse_unless_allowed(
    request: HttpRequest, release: Release, confirmation: Confirmation
) -> None:
    """The page of an operation its reader may not perform is refused as the operation
    refuses it, rather than offering a form whose every post is refused."""
    who = who_on(person(request), release)
    if confirmation.may(who):
        return
    if who.closed:
        raise PermissionDenied(workflow.closed_refusal(release))
    raise PermissionDenied(_(confirmation.refusal))


@login_required
@require_http_methods(["GET", "POST"])
def confirm(request: HtmxHttpRequest, version: str, action: str) -> HttpResponse:
    release = get_release_for_user(request, version)
    confirmation = _confirmations(release).get(action)
    if confirmation is None:
        raise Http404(_("No such action."))
    if request.method == "GET":
        _refuse_unless_allowed(request, release, confirmation)
    form = confirmation.form(request.POST if request.method == "POST" else None)
    status = 200
    if request.method == "POST":
        try:
            text = confirmation.act(request, release, _valid_data(form))
        except PermissionDenied as error:
            messages.error(request, str(error) or _("You are not allowed to do that."))
            status = 403
        except workflow.WorkflowError as error:
            messages.error(request, error.message)
            status = 422
        else:
            messages.success(request, text)
            return redirect(reverse("releases:board", args=[release.version]) + "#rollout-panel")
    context = {
        "release": release,
        "action": action,
        "confirmation": confirmation,
        "form": form,
        "severities": RollbackSeverity.choices,
        "results": DeployResult.choices,
        "zone": timezone.get_current_timezone_name(),
    }
    return render(request, "releases/confirm.html", context, status=status)


class StepForm(NamedErrorsForm):
    action = _choice(
        gettext_lazy("The action"), [(a, a) for a in ("tick", "untick", "note", "evidence")]
    )
    # The step's version the form was rendered with (workflow.step_version): a stale
    # one is a conflict.
    version = forms.IntegerField(
        label=gettext_lazy("The step version"), min_value=0, error_messages=MESSAGES
    )
    mitigates = forms.BooleanField(required=False)
    note = _text(gettext_lazy("The note"), 5000)
    evidence_url = _text(gettext_lazy("The evidence link"), 1000)


def _typed_in_step(step: RollbackStep) -> Callable[[dict[str, Any], Mapping[str, str]], None]:
    """Puts what was typed for `step` back in its form on the rollout panel."""

    def put_back(context: dict[str, Any], typed: Mapping[str, str]) -> None:
        rollout = context["rollout"]
        rollout.steps = [
            replace(shown, typed=dict(typed)) if shown.step.pk == step.pk else shown
            for shown in rollout.steps
        ]

    return put_back


# The field of each step form that holds text, kept when the form is refused.
_STEP_TEXT = {"note": ("note",), "evidence": ("evidence_url",)}
# What saving each of them says: saved, removed, or nothing there to remove.
_STEP_ANNOTATIONS = {
    "note": (
        gettext_lazy("Saved the note on step %(n)d."),
        gettext_lazy("Removed the note on step %(n)d."),
        gettext_lazy("Step %(n)d has no note to remove: nothing changed."),
    ),
    "evidence_url": (
        gettext_lazy("Saved the evidence link on step %(n)d."),
        gettext_lazy("Removed the evidence link on step %(n)d."),
        gettext_lazy("Step %(n)d has no evidence link to remove: nothing changed."),
    ),
}


@login_required
@require_POST
def rollback_step(request: HtmxHttpRequest, version: str, step_id: int) -> HttpResponse:
    release = get_release_for_user(request, version)
    step = get_object_or_404(release.rollback_steps, pk=step_id)
    form = StepForm(request.POST)

    def operation() -> str:
        data = _valid_data(form)
        names = {"n": step.position + 1}
        by, seen = person(request), data["version"]
        if data["action"] in ("tick", "untick"):
            done = data["action"] == "tick"
            workflow.tick_rollback_step(
                step, by=by, done=done, mitigates=data["mitigates"], expected_version=seen
            )
            if done:
                return _("Step %(n)d of the rollback is done.") % names
            return _("Step %(n)d of the rollback is reopened.") % names
        field = _STEP_TEXT[data["action"]][0]
        record = workflow.annotate_rollback_step(
            step, by=by, **{field: data[field]}, expected_version=seen
        )
        saved, removed, absent = _STEP_ANNOTATIONS[field]
        if getattr(record, field):
            return saved % names
        # The step's version moves only when something changed.
        return (
            Unchanged(absent % names) if workflow.step_version(record) == seen else removed % names
        )

    kept = Kept(_STEP_TEXT.get(request.POST.get("action", ""), ()), _typed_in_step(step))
    return _act(request, release, operation, anchor=f"#rollback-step-{step.pk}", kept=kept)


routes: list[URLPattern] = [
    path("releases/<str:version>/confirm/<slug:action>/", confirm, name="confirm"),
    path(
        "releases/<str:version>/rollback/steps/<int:step_id>/",
        rollback_step,
        name="rollback-step",
    ),
]
