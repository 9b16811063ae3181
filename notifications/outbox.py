"""The outbox: which audit events become notification events, written in the
transaction of the change that caused them.

releases.workflow's `_changing` calls `write` (registered by NotificationsConfig.ready)
with the audit events one change recorded, inside its transaction. Each event type is
one audit action read into a payload (`events_for`), except `approval.requested`, which
is a state of the release rather than an act: it is sent when a change leaves a release
approvable that was not before. What the clock brings (`approval.reminder`,
`maintenance.starting_soon`) is written by notifications.reminders through
`write_events`, under the release lock as a change is.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import QuerySet
from django.urls import reverse

from releases.actors import Actor
from releases.models import (
    AuditAction,
    GoLiveApproval,
    ItemState,
    Release,
    ReleaseItem,
    ReleaseStatus,
    blocking_reasons,
)

from . import email
from .delivery import HANDOVER_GRACE_SECONDS
from .models import Channel, Delivery, Event, Readiness
from .sending import enqueue, enqueue_email

APPROVAL_REQUESTED = "approval.requested"
# Sent by the clock, not by a change (notifications.reminders).
APPROVAL_REMINDER = "approval.reminder"
MAINTENANCE_STARTING_SOON = "maintenance.starting_soon"


def _reason(audit: Mapping[str, Any]) -> dict[str, Any]:
    return {"reason": audit["after"].get("reason", "")}


def _granted(audit: Mapping[str, Any]) -> dict[str, Any]:
    after = audit["after"]
    return {"reason": after.get("reason", ""), "overrides": after.get("overrides", [])}


def _revoked(audit: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "reason": audit["after"].get("reason", ""),
        "approved_by": audit["before"].get("approved_by", ""),
    }


def _reopened(audit: Mapping[str, Any]) -> dict[str, Any]:
    # The sign-off's target is written "role / phase"; a phase may hold " / " itself.
    role, _sep, phase = audit["target"].partition(" / ")
    return {
        "role": role,
        "phase": phase,
        "reason": audit["after"].get("reason", ""),
        "signed_by": audit["before"].get("signed_by", ""),
    }


def _blocked(audit: Mapping[str, Any]) -> dict[str, Any]:
    return {"item": audit["target"], "reason": audit["after"].get("reason", "")}


def _failing(audit: Mapping[str, Any]) -> dict[str, Any]:
    # A machine's verdict on a pending item fails the item (its reason); beside a
    # person's decision it is kept as the item's check failure.
    after = audit["after"]
    return {"item": audit["target"], "failure": after.get("check_failure") or after.get("reason")}


def _deploy_started(audit: Mapping[str, Any]) -> dict[str, Any]:
    after = audit["after"]
    return {"started_at": after.get("started_at"), "reason": after.get("reason", "")}


def _deploy_finished(audit: Mapping[str, Any]) -> dict[str, Any]:
    after = audit["after"]
    return {
        "result": after.get("result"),
        "finished_at": after.get("finished_at"),
        "reason": after.get("reason", ""),
        "status": after.get("status"),
    }


def _rollback_declared(audit: Mapping[str, Any]) -> dict[str, Any]:
    after = audit["after"]
    return {
        "severity": after.get("severity"),
        "reason": after.get("reason", ""),
        "detected_at": after.get("detected_at"),
    }


def _step_done(audit: Mapping[str, Any]) -> dict[str, Any]:
    return {"step": audit["after"].get("step"), "text": audit["target"]}


def _update_posted(audit: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "state": audit["after"].get("state"),
        "previous_state": audit["before"].get("state"),
        "message": audit["after"].get("message", ""),
    }


def _window(audit: Mapping[str, Any]) -> dict[str, Any]:
    after = audit["after"]
    return {
        "start": after.get("start"),
        "end": after.get("end"),
        "time_zone": after.get("time_zone"),
        "state": after.get("state"),
        "sequence": after.get("sequence"),
        "reason": after.get("reason", ""),
    }


def _nudged(audit: Mapping[str, Any]) -> dict[str, Any]:
    after = audit["after"]
    return {
        "role": after.get("role", audit["target"]),
        "open_items": after.get("open_items", {"count": 0, "first": []}),
        "missing_signoff": after.get("missing_signoff", False),
    }


Reader = Callable[[Mapping[str, Any]], dict[str, Any]]

# Audit action → (event type, what the event adds to the common fields).
MAPPING: dict[str, tuple[str, Reader]] = {
    AuditAction.RELEASE_APPROVED: ("approval.granted", _granted),
    AuditAction.APPROVAL_REVOKED: ("approval.revoked", _revoked),
    AuditAction.SIGNOFF_REOPENED: ("signoff.reopened", _reopened),
    AuditAction.ITEM_BLOCKED: ("item.blocked", _blocked),
    AuditAction.CHECK_FAILED: ("check.failing", _failing),
    AuditAction.PIPELINE_FAILED: ("check.failing", _failing),
    # A delivery that failed for good fails its item, as a failing check does.
    AuditAction.PERFORM_FAILED: ("check.failing", _failing),
    AuditAction.DEPLOY_STARTED: ("deploy.started", _deploy_started),
    AuditAction.DEPLOY_FINISHED: ("deploy.finished", _deploy_finished),
    AuditAction.ROLLBACK_DECLARED: ("rollback.declared", _rollback_declared),
    AuditAction.ROLLBACK_STEP_DONE: ("rollback.step_done", _step_done),
    AuditAction.ROLLBACK_RESOLVED: ("rollback.resolved", _reason),
    AuditAction.INCIDENT_UPDATE_POSTED: ("incident.update_posted", _update_posted),
    AuditAction.WINDOW_SCHEDULED: ("maintenance.scheduled", _window),
    AuditAction.WINDOW_EDITED: ("maintenance.changed", _window),
    AuditAction.WINDOW_EXTENDED: ("maintenance.changed", _window),
    AuditAction.WINDOW_CANCELLED: ("maintenance.cancelled", _window),
    AuditAction.WINDOW_STARTED: ("maintenance.started", _window),
    AuditAction.WINDOW_COMPLETED: ("maintenance.ended", _window),
    AuditAction.ROLE_NUDGED: ("role.nudged", _nudged),
}

# Every event type a channel may ask for, in the order the README lists them.
EVENT_TYPES: tuple[str, ...] = (
    APPROVAL_REQUESTED,
    APPROVAL_REMINDER,
    *dict.fromkeys(event_type for event_type, _reader in MAPPING.values()),
    MAINTENANCE_STARTING_SOON,
)

# Audit actions after which a release cannot have become approvable: the approval
# question is not asked again after them, unless the release was approvable before.
_CANNOT_READY = frozenset(
    {
        AuditAction.ITEM_REOPENED,
        AuditAction.ITEM_BLOCKED,
        AuditAction.ITEM_ANNOTATED,
        AuditAction.CHECK_FAILED,
        AuditAction.CHECK_NOT_VERIFIED,
        AuditAction.PIPELINE_FAILED,
        AuditAction.SIGNOFF_WITHDRAWN,
        AuditAction.SIGNOFF_REOPENED,
        AuditAction.RELEASE_APPROVED,
        AuditAction.INCIDENT_UPDATE_POSTED,
        AuditAction.SHARE_LINK_CREATED,
        AuditAction.SHARE_LINK_REVOKED,
        AuditAction.PIPELINE_TOKEN_CREATED,
        AuditAction.PIPELINE_TOKEN_REVOKED,
        AuditAction.ROLE_NUDGED,
        AuditAction.PERFORM_REQUESTED,
        AuditAction.PERFORM_AWAITING,
        AuditAction.PERFORM_UNCONFIRMED,
        AuditAction.PERFORM_FAILED,
        AuditAction.PERFORMS_LINKED,
        *(
            action
            for action in AuditAction
            if action.startswith(("window.", "deploy.", "rollback."))
        ),
    }
)


@dataclass(frozen=True)
class NewEvent:
    type: str
    actor: Actor
    data: dict[str, Any]


def release_link(release: Release) -> str:
    return settings.SITE_URL.rstrip("/") + reverse("releases:board", args=[release.version])


def common_fields(release: Release, actor: Actor, now: datetime) -> dict[str, Any]:
    return {
        "release": {
            "version": release.version,
            "title": release.title,
            "url": release_link(release),
        },
        "actor": {"label": actor.label, "kind": actor.kind.value},
        "at": now.isoformat(),
    }


def events_for(
    audit_events: Iterable[Mapping[str, Any]], release: Release, now: datetime
) -> list[NewEvent]:
    """The notification events one change's audit events make (`_Change.events`: each
    with its actor as `by`), plus `approval.requested` when the change left the release
    approvable and it was not before. Runs under the release lock."""
    found: list[NewEvent] = []
    actions: list[str] = []
    last_actor: Actor | None = None
    for audit in audit_events:
        actions.append(audit["action"])
        last_actor = audit["by"]
        mapped = MAPPING.get(audit["action"])
        if mapped is None:
            continue
        event_type, reader = mapped
        data = {**common_fields(release, audit["by"], now), **reader(audit)}
        found.append(NewEvent(event_type, audit["by"], data))
    if last_actor is not None and _became_approvable(release, actions):
        found.append(
            NewEvent(APPROVAL_REQUESTED, last_actor, common_fields(release, last_actor, now))
        )
    return found


def approvable(release: Release) -> bool:
    """Whether the product owner could approve go-live now: the question
    `approval.requested` asks and `approval.reminder` asks again."""
    # Cheapest first: this runs under the release's lock on every change, and while
    # any required item before the gate is open (most of a release's life) one EXISTS
    # says what the whole rule would.
    return (
        release.status in (ReleaseStatus.PLANNED, ReleaseStatus.IN_PROGRESS)
        and not _open_required(release).exists()
        and not GoLiveApproval.objects.filter(release=release, revoked_at__isnull=True).exists()
        and not blocking_reasons(release)
    )


def _became_approvable(release: Release, actions: Sequence[str]) -> bool:
    readiness = Readiness.objects.filter(release=release).first()
    was = readiness is not None and readiness.approvable
    if not was and all(action in _CANNOT_READY for action in actions):
        return False
    now = approvable(release)
    if now != was:
        Readiness.objects.update_or_create(release=release, defaults={"approvable": now})
    return now and not was


def _open_required(release: Release) -> QuerySet[ReleaseItem]:
    """Items each of which blocking_reasons names: required, before the gate, unsettled."""
    return release.items.filter(before_gate=True, required=True).exclude(
        state__in=ItemState.settled()
    )


def wants(channel: Channel, event_type: str, version: str) -> bool:
    return ("*" in channel.events or event_type in channel.events) and fnmatch.fnmatchcase(
        version, channel.releases
    )


def write(
    release: Release | None, audit_events: Sequence[Mapping[str, Any]], now: datetime
) -> None:
    """Write the events of one change, and a delivery of each to every active channel
    that wants it and by e-mail to each person who wants it; the deliveries are sent
    once the change commits."""
    if release is None:
        return
    write_events(release, events_for(audit_events, release, now), now)


def write_events(release: Release, new: Sequence[NewEvent], now: datetime) -> None:
    """Write `new` events of `release` and their deliveries, inside the caller's
    transaction; the deliveries are sent once it commits. `write` calls it for a change,
    notifications.reminders for what the clock brings."""
    if not new:
        return
    events = Event.objects.bulk_create(
        [
            Event(
                type=event.type,
                release=release,
                actor_label=event.actor.label[:200],
                actor_kind=event.actor.kind,
                created_at=now,
                data=event.data,
            )
            for event in new
        ]
    )
    # A task is sent on commit; the sweep sends another if it has not claimed it by then.
    handover = now + timedelta(seconds=HANDOVER_GRACE_SECONDS)
    channels = list(Channel.objects.filter(disabled_at__isnull=True, retired_at__isnull=True))
    deliveries = Delivery.objects.bulk_create(
        [
            Delivery(event=event, channel=channel, due_at=handover)
            for event in events
            for channel in channels
            if wants(channel, event.type, release.version)
        ]
    )
    # Robust: a broker that cannot take the tasks must not fail the change people made,
    # which has committed; Django logs the error, and beat's sweep hands the deliveries
    # out once their hand-over grace has passed.
    if deliveries:
        ids = [delivery.pk for delivery in deliveries]
        transaction.on_commit(lambda: _send(ids), robust=True)
    acted = [(row, made.actor) for row, made in zip(events, new, strict=True)]
    emails = email.queue_for(release, acted, now)
    if emails:
        transaction.on_commit(lambda: _send_emails(emails), robust=True)


def _send(ids: Sequence[int]) -> None:
    for delivery_id in ids:
        enqueue(delivery_id, 1, 0.0)


def _send_emails(ids: Sequence[int]) -> None:
    for delivery_id in ids:
        enqueue_email(delivery_id, 1, 0.0)
