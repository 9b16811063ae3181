"""The release day over the API: the deploy job reports the deploy's start and end,
declares a rollback and works through its steps, posts incident updates, keeps the
maintenance window, and reads the timeline.

A token acts as its role, under the rules a person of that role meets in the browser
(releases.policy, enforced by the workflow), and is audited as `ci:LABEL`.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from django.core.paginator import Paginator
from django.http import HttpRequest, JsonResponse
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import ngettext

from releases import workflow
from releases.forms_window import WindowForm
from releases.models import (
    Deployment,
    DeployResult,
    IncidentState,
    IncidentUpdate,
    MaintenanceWindow,
    Release,
    Role,
    Rollback,
    RollbackSeverity,
    RollbackStep,
    RollbackStepRecord,
)
from releases.timeline import INTERNAL_ACTIONS, PAGE_SIZE, human_line, reader_for, role_filter
from releases.workflow.rollback import NOTE_MAX, REASON_MAX
from releases.workflow.window import OPEN_STATES

from .auth import acting, authenticate
from .endpoint import (
    ApiError,
    choice_field,
    endpoint,
    json_object,
    link_field,
    quoted,
    refuse_unknown,
    text_field,
)

URL_MAX = 1000
SEPARATOR = " — "
# The deploy's reason keeps the run's link after what the job says: both must fit.
DEPLOY_REASON_MAX = REASON_MAX - URL_MAX - len(SEPARATOR)
DEPLOY_STATES = ("started", "finished")
# Read as digits only, and few enough that no page number is too long to convert.
PAGE_NUMBER = re.compile("[1-9][0-9]{0,8}")


def _utc(moment: datetime | None) -> str | None:
    return moment.astimezone(UTC).isoformat() if moment is not None else None


def _answer(body: dict[str, Any]) -> JsonResponse:
    response = JsonResponse(body)
    response["Cache-Control"] = "no-store"
    return response


def _release_answer(release: Release, **said: Any) -> JsonResponse:
    """What the call did, beside the release's status and revision as it left them."""
    release.refresh_from_db(fields=["status", "revision"])
    return _answer(
        {
            "version": release.version,
            "status": release.status,
            "revision": release.revision,
            **said,
        }
    )


# --- the deploy ----------------------------------------------------------------------------


def _deployment(deployment: Deployment) -> dict[str, Any]:
    return {
        "started_at": _utc(deployment.started_at),
        "finished_at": _utc(deployment.finished_at),
        "result": deployment.result or None,
    }


@endpoint("POST")
def deploy(request: HttpRequest, version: str) -> JsonResponse:
    """The deploy job says the deploy started, or finished with its result."""
    token, release = authenticate(request, version)
    data = json_object(request)
    refuse_unknown(data, {"state", "result", "url", "reason"})
    state = choice_field(data, "state", DEPLOY_STATES)
    if state == "started" and "result" in data:
        raise ApiError(400, _("result is sent only when the deploy has finished."))
    result = choice_field(data, "result", DeployResult.values) if state == "finished" else ""
    reason = workflow.trimmed(text_field(data, "reason", DEPLOY_REASON_MAX) or "")
    url = link_field(data, "url", URL_MAX) or ""
    # What the job says, then where to look; with neither, who said so.
    said = SEPARATOR.join(part for part in (reason, url) if part) or f"ci:{token.label}"
    with acting(token, request) as by:
        if state == "started":
            deployment = workflow.start_deploy(release, by=by, reason=said)
        else:
            deployment = workflow.finish_deploy(release, by=by, result=result, reason=said)
    return _release_answer(release, deploy=_deployment(deployment))


# --- the rollback ----------------------------------------------------------------------------


@endpoint("POST")
def rollback(request: HttpRequest, version: str) -> JsonResponse:
    """The deploy job declares a rollback, with why and how bad."""
    token, release = authenticate(request, version)
    data = json_object(request)
    refuse_unknown(data, {"reason", "severity"})
    reason = text_field(data, "reason", REASON_MAX, required=True) or ""
    severity = choice_field(data, "severity", RollbackSeverity.values)
    with acting(token, request) as by:
        declared = workflow.declare_rollback(release, by=by, reason=reason, severity=severity)
    return _release_answer(
        release,
        rollback={
            "severity": declared.severity,
            "declared_at": _utc(declared.declared_at),
            "steps": [_step(record) for record in declared.records.select_related("step")],
        },
    )


def _rollback_now(rollback_now: Rollback) -> dict[str, Any]:
    return {
        "severity": rollback_now.severity,
        "declared_at": _utc(rollback_now.declared_at),
        "mitigated_at": _utc(rollback_now.mitigated_at),
        "resolved_at": _utc(rollback_now.resolved_at),
        "closed_at": _utc(rollback_now.closed_at),
    }


# What each move of a declared rollback is told, and the workflow operation it is.
ROLLBACK_MOVES: dict[str, tuple[str, Callable[..., Rollback]]] = {
    "mitigate": ("reason", workflow.mitigate_rollback),
    "resolve": ("reason", workflow.resolve_rollback),
    "close": ("cause", workflow.close_rollback),
}


@endpoint("POST")
def rollback_move(request: HttpRequest, version: str, move: str) -> JsonResponse:
    """The declared rollback marked mitigated or resolved, with why, or closed with its
    cause: the moves a person confirms in the browser."""
    token, release = authenticate(request, version)
    if move not in ROLLBACK_MOVES:
        raise ApiError(
            404,
            _("A rollback is mitigated, resolved or closed; not “%(move)s”.")
            % {"move": quoted(move, 40)},
        )
    field, operation = ROLLBACK_MOVES[move]
    data = json_object(request)
    refuse_unknown(data, {field})
    said = text_field(data, field, REASON_MAX, required=True) or ""
    with acting(token, request) as by:
        moved = operation(release, by=by, **{field: said})
    return _release_answer(release, rollback=_rollback_now(moved))


def _step(record: RollbackStepRecord) -> dict[str, Any]:
    return {
        "step": record.step.position + 1,
        "text": str(record.step),
        "owner_role": record.step.owner_role,
        "done": record.done,
        "done_at": _utc(record.done_at),
        "note": record.note,
        "url": record.evidence_url,
        "version": workflow.step_version(record),
    }


def _step_numbered(release: Release, number: str) -> RollbackStep:
    """The step as people see it numbered on the board: its position plus one. Read from
    the path as text, so that no number is too long to convert or to look up."""
    steps = {str(step.position + 1): step for step in release.rollback_steps.all()}
    found = steps.get(number)
    if found is None:
        raise ApiError(
            404,
            _("No rollback step %(n)s on %(version)s.")
            % {"n": quoted(number, 20), "version": release.version},
        )
    return found


@endpoint("POST")
def rollback_step(request: HttpRequest, version: str, number: str) -> JsonResponse:
    """A step of the declared rollback done (or not), with a note and a link: what its
    owner's token may do. With `version` (as an earlier answer gave it), a step someone
    changed since is a 409, a version the step never had a 422, and nothing is written;
    without it, the step as it is now."""
    token, release = authenticate(request, version)
    data = json_object(request)
    refuse_unknown(data, {"done", "note", "url", "version"})
    if not data.keys() - {"version"}:
        raise ApiError(400, _("Send done, note or url."))
    done = data.get("done")
    if "done" in data and not isinstance(done, bool):
        raise ApiError(400, _("%(field)s must be true or false.") % {"field": "done"})
    seen = data.get("version")
    if "version" in data and (type(seen) is not int or seen < 0):
        raise ApiError(400, _("%(field)s must be a whole number from 0.") % {"field": "version"})
    note = text_field(data, "note", NOTE_MAX)
    url = link_field(data, "url", URL_MAX)
    step = _step_numbered(release, number)
    with acting(token, request) as by:
        record = None
        try:
            # The note first: the step that resolves the rollback is then its last event.
            # The version is the step's before this request: the tick builds on the note.
            if note is not None or url is not None:
                record = workflow.annotate_rollback_step(
                    step, by=by, note=note, evidence_url=url, expected_version=seen
                )
                seen = None
            if isinstance(done, bool):
                record = workflow.tick_rollback_step(step, by=by, done=done, expected_version=seen)
        except workflow.StaleStep as stale:
            # The workflow's words are the board's, which speak of a page loaded.
            raise ApiError(
                409,
                _(
                    "Step %(n)d was changed by %(who)s since version %(version)d, the one "
                    "you sent; it is now %(state)s, at version %(current)d."
                )
                % stale.said,
            ) from None
    assert record is not None  # the body held done, note or url
    record.refresh_from_db()
    rollback_now = record.rollback
    return _release_answer(
        release,
        **_step(record),
        rollback={
            "resolved": rollback_now.resolved_at is not None,
            "closed": not rollback_now.is_open,
        },
    )


# --- incident updates ------------------------------------------------------------------------


@endpoint("POST")
def updates(request: HttpRequest, version: str) -> JsonResponse:
    """An incident update for the people outside the team, posted as the token's role."""
    token, release = authenticate(request, version)
    data = json_object(request)
    refuse_unknown(data, {"state", "message"})
    state = choice_field(data, "state", IncidentState.values)
    message = text_field(data, "message", IncidentUpdate.MESSAGE_MAX, required=True) or ""
    with acting(token, request) as by:
        posted = workflow.post_update(release, state=state, message=message, by=by)
    return _answer(
        {
            "version": release.version,
            "state": posted.state,
            "message": posted.message,
            "posted_as": posted.posted_as,
            "posted_at": _utc(posted.posted_at),
        }
    )


# --- the maintenance window ------------------------------------------------------------------


def _window_times(data: dict[str, Any]) -> dict[str, Any]:
    """Start and end as the wall clock reads them in the zone, made exact by the browser
    form's own rules: a time the zone skips or repeats is refused, never guessed."""
    sent = {name: text_field(data, name, 64, required=True) for name in ("start", "end")}
    sent["time_zone"] = text_field(data, "time_zone", 64, required=True, shown=False)
    form = WindowForm(data=sent)
    if not form.is_valid():
        problems = [
            str(message) if field == "__all__" else f"{field}: {message}"
            for field, messages in form.errors.items()
            for message in messages
        ]
        raise ApiError(400, " ".join(problems))
    return form.cleaned_data


def _window(window: MaintenanceWindow) -> dict[str, Any]:
    return {
        "start": window.local_start.isoformat(),
        "end": window.local_end.isoformat(),
        "time_zone": window.time_zone,
        "start_utc": _utc(window.starts_at),
        "end_utc": _utc(window.ends_at),
        "state": str(window.state_at(timezone.now())),
        "sequence": window.sequence,
    }


@endpoint("PUT")
def window(request: HttpRequest, version: str) -> JsonResponse:
    """The maintenance window as the job wants it: scheduled when the release has none
    open, moved when it has one that has not started."""
    token, release = authenticate(request, version)
    data = json_object(request)
    refuse_unknown(data, {"start", "end", "time_zone"})
    times = _window_times(data)
    current = MaintenanceWindow.objects.filter(release=release).first()
    # The workflow asks again under the release lock, and refuses if this went stale.
    moving = current is not None and current.state_at(timezone.now()) in OPEN_STATES
    operation = workflow.edit_window if moving else workflow.schedule_window
    with acting(token, request) as by:
        kept = operation(
            release,
            start=times["start"],
            end=times["end"],
            time_zone=times["time_zone"],
            by=by,
        )
    return _answer({"version": release.version, "window": _window(kept)})


# --- the timeline --------------------------------------------------------------------------


@endpoint("GET")
def timeline(request: HttpRequest, version: str) -> JsonResponse:
    """What happened on the release, newest first, a page at a time, as the timeline
    page tells it in the request's language. Without how the team is organised
    (people, contacts, tokens: what a share link leaves out too), and people named by
    their roles: what a pipeline reads ends up in build logs."""
    _token, release = authenticate(request, version)
    events = release.audit_events.exclude(action__in=INTERNAL_ACTIONS).order_by(
        "-created_at", "-id"
    )
    role = request.GET.get("role", "")
    if role:
        if role not in Role.values:
            raise ApiError(
                400,
                _("role must be one of: %(roles)s.") % {"roles": ", ".join(Role.values)},
            )
        events = events.filter(role_filter(release, role))
    wanted = request.GET.get("page", "1")
    if not PAGE_NUMBER.fullmatch(wanted):
        raise ApiError(400, _("page must be a whole number from 1."))
    paginator = Paginator(events, PAGE_SIZE)
    if int(wanted) > paginator.num_pages:
        raise ApiError(
            404,
            ngettext("There is %(count)d page.", "There are %(count)d pages.", paginator.num_pages)
            % {"count": paginator.num_pages},
        )
    page = paginator.page(int(wanted))
    reader = reader_for(release, hides_personal=True)
    lines = [human_line(event, reader) for event in page.object_list]
    return _answer(
        {
            "version": release.version,
            "page": page.number,
            "pages": paginator.num_pages,
            "events": [
                {
                    "id": line.event.pk,
                    "time": _utc(line.at),
                    "actor": line.who,
                    "actor_kind": line.event.actor_kind,
                    "action": line.event.action,
                    "label": line.title,
                    "details": list(line.details),
                }
                for line in lines
            ],
        }
    )
