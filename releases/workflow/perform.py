"""Items the app performs: an announcement, support's acknowledgement, the
retrospective's invitation. What is sent, and how, belongs to the notifications app;
here is what it does to the item, under the release lock like every change.

A person presses "perform" (`performing`): the item reads "sending" until every
delivery is final, and may not be pressed again meanwhile. Then `settle_performance`,
called by the system once the deliveries are final, ticks the item on confirmed
delivery or fails it with the reason, as a check's verdict would (a person's decision is
never undone). An item asking support to acknowledge is ticked by the first support
person who says "I'm ready" (`acknowledge`), never by the delivery alone.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from django.utils import timezone
from django.utils.translation import gettext as _

from .. import performs, policy
from ..actors import Person, SystemActor, who_on
from ..models import AuditAction, ItemState, Release, ReleaseItem
from .change import By, WorkflowError, _Change, _changing, _require_manager, as_actor
from .items import _apply_item_change, _release_id_of
from .results import _machine_verdict

SENDING, AWAITING, UNCONFIRMED = performs.SENDING, performs.AWAITING, performs.UNCONFIRMED
DONE, FAILED = performs.DONE, performs.FAILED
SETTLED_STATES = (AWAITING, UNCONFIRMED, DONE, FAILED)

_ACTIONS = {
    DONE: AuditAction.PERFORM_CONFIRMED,
    FAILED: AuditAction.PERFORM_FAILED,
    AWAITING: AuditAction.PERFORM_AWAITING,
    UNCONFIRMED: AuditAction.PERFORM_UNCONFIRMED,
}


def performer(item: ReleaseItem) -> SystemActor:
    """Who settles a performed item: the app, naming what it performed."""
    return SystemActor(f"perform:{item.perform}")


def _keep(change: _Change, item: ReleaseItem, performed: dict[str, Any]) -> None:
    item.performed = performed
    item.version += 1
    item.revision = change.on.revision + 1
    item.save(update_fields=["performed", "version", "revision"])


def _audit_beside(
    change: _Change, item: ReleaseItem, action: AuditAction, extra: dict[str, Any], *, since: int
) -> None:
    """Add `extra` to what the event settling the item wrote under `action` (the first of
    the change's events from `since` on) holds after, so that one event tells the whole
    of it; when settling wrote no such event, `extra` is an event of its own."""
    made = change.events[since:]
    if made and made[0]["action"] == action:
        made[0]["after"] = {**made[0]["after"], **extra}
    else:
        change.audit(action, item.text, {}, extra)


@contextmanager
def performing(
    item: ReleaseItem | int,
    *,
    by: By,
    audience: Mapping[str, Any],
    ip: str | None = None,
) -> Iterator[tuple[Release, ReleaseItem]]:
    """A person presses "perform" on an item: inside, under the release lock, the caller
    writes what is sent (its event and deliveries, which commit with this change or not
    at all). `audience` is what the page showed them, as the item and the audit trail
    keep it: {"event": the id of the event that will carry it, "recipients": [...],
    "channel": "…"}. Refused while the item is being
    sent already."""
    actor = as_actor(by, ip)
    release_id, item_id = _release_id_of(item)
    with _changing(release_id, actor) as change:
        locked = ReleaseItem.objects.select_related("release").get(pk=item_id, release=change.on)
        if not locked.perform or performs.parse(locked.perform) is None:
            raise WorkflowError(
                _("“%(text)s” is not linked to anything the app performs.") % {"text": locked.text}
            )
        change.require(
            policy.may_perform(who_on(actor, change.on), owner_role=locked.owner_role),
            _("Only the %(role)s or the Product Owner may perform “%(text)s”.")
            % {"role": locked.get_owner_role_display(), "text": locked.text},
        )
        if locked.performed.get("state") == SENDING:
            raise WorkflowError(
                _(
                    "“%(text)s” is being sent already, as %(who)s asked; wait until its "
                    "delivery is settled before pressing again."
                )
                % {"text": locked.text, "who": locked.performed.get("requested_by", "")}
            )
        before = {"state": locked.performed.get("state", "")}
        performed = {
            "state": SENDING,
            "action": locked.perform,
            "requested_by": actor.label,
            "requested_at": timezone.now().isoformat(),
            **audience,
        }
        _keep(change, locked, performed)
        change.audit(AuditAction.PERFORM_REQUESTED, locked.text, before, performed)
        yield change.on, locked


def settle_performance(
    item_id: int, *, event: str, state: str, evidence: Mapping[str, Any], reason: str = ""
) -> ReleaseItem | None:
    """How the deliveries of the item's performance `event` ended, all of them final:
    done (every one confirmed) ticks the item; failed fails it with `reason`, as a
    failing check does; awaiting (support has yet to say "I'm ready") and unconfirmed (a
    Teams Workflow accepted it, which says nothing of the post) leave it as it is, saying
    so. On a cancelled release the item only keeps how it ended, ticked or failed by
    nobody. `evidence` ({"recipients", "channel", "message_ids", "at"}) is kept on the item
    and in the audit trail. None when the item is not sending this event any more."""
    if state not in SETTLED_STATES:
        raise ValueError(f"not a settled state: {state!r}")
    release_id = ReleaseItem.objects.values_list("release_id", flat=True).get(pk=item_id)
    probe = ReleaseItem.objects.only("perform").get(pk=item_id)
    actor = performer(probe)
    with _changing(release_id, actor) as change:
        locked = ReleaseItem.objects.select_related("release").get(pk=item_id, release=change.on)
        current = locked.performed
        if current.get("event") != event or current.get("state") != SENDING:
            return None
        who = who_on(actor, change.on)
        change.require(
            policy.may_settle_performance(who, sending=True),
            _("Only the app records how a delivery ended."),
        )
        performed = {**current, **evidence, "state": state, "reason": reason[:2000]}
        _keep(change, locked, performed)
        action = _ACTIONS[state]
        said = {key: performed.get(key) for key in ("recipients", "channel", "message_ids", "at")}
        if reason:
            said["reason"] = reason
        count = len(change.events)
        if state in (DONE, FAILED) and not who.closed:
            _machine_verdict(
                change,
                locked,
                state=ItemState.DONE if state == DONE else ItemState.FAILED,
                failure=reason if state == FAILED else "",
                evidence=locked.evidence_url,
                action=action,
            )
        _audit_beside(change, locked, action, {"performed": said}, since=count)
        return locked


def acknowledge(item_id: int, *, by: Person) -> bool:
    """A support person says "I'm ready": kept with who and when; the first one ticks
    the item (unless a person settled it otherwise). False when this person had said so
    already, which changes nothing."""
    release_id = ReleaseItem.objects.values_list("release_id", flat=True).get(pk=item_id)
    with _changing(release_id, by) as change:
        locked = ReleaseItem.objects.select_related("release").get(pk=item_id, release=change.on)
        change.require(
            policy.may_acknowledge(who_on(by, change.on)),
            _("Only the release's support people confirm they are ready."),
        )
        acknowledged = list(locked.performed.get("acknowledged", []))
        if any(entry.get("user") == by.user.pk for entry in acknowledged):
            return False
        now = timezone.now().isoformat()
        acknowledged.append({"user": by.user.pk, "by": by.label, "at": now})
        performed = {**locked.performed, "acknowledged": acknowledged}
        if locked.state in (ItemState.PENDING, ItemState.FAILED):
            performed["state"] = DONE
            performed["reason"] = ""
        _keep(change, locked, performed)
        said = {"by": by.label, "at": now}
        count = len(change.events)
        if locked.state in (ItemState.PENDING, ItemState.FAILED):
            _apply_item_change(
                change,
                locked,
                expected_version=None,
                action=AuditAction.ACKNOWLEDGED,
                state=ItemState.DONE,
                reason="",
                check_failure="",
            )
        _audit_beside(change, locked, AuditAction.ACKNOWLEDGED, {"acknowledged": said}, since=count)
        return True


def link_performs(
    release: Release,
    *,
    perform_of: Mapping[int, str],
    source: str,
    by: By,
    ip: str | None = None,
) -> int:
    """Set the action each item (by id) is linked to, as a checks file's `[[perform]]`
    tables say; items not named keep theirs. How many changed."""
    actor = as_actor(by, ip)
    _require_manager(actor, release)
    with _changing(release.pk, actor) as change:
        changed: dict[str, dict[str, str]] = {}
        for entry in change.on.items.filter(pk__in=list(perform_of)):
            wanted = perform_of[entry.pk]
            if wanted == entry.perform:
                continue
            changed[entry.text[:80]] = {"before": entry.perform, "after": wanted}
            entry.perform = wanted
            entry.revision = change.on.revision + 1
            entry.save(update_fields=["perform", "revision"])
        if changed:
            change.audit(AuditAction.PERFORMS_LINKED, source[:500], {}, {"items": changed})
        return len(changed)
