"""Items and sign-offs: what leads tick, mark N/A or blocked, annotate, and sign.

A settled item that changes reopens its lane's sign-off and, before the gate, revokes an
approval whose gate it changed (releases.workflow.approval).
"""

from __future__ import annotations

from functools import partial
from typing import Any

from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_noop

from .. import policy
from ..actors import Actor, Person, who_on
from ..models import (
    AuditAction,
    ItemState,
    Release,
    ReleaseItem,
    ReleaseStatus,
    Role,
    SignOff,
    in_signoff_scope,
)
from .approval import _revoke_if_gate_changed, _revoke_if_unsigned
from .change import (
    By,
    Conflict,
    WorkflowError,
    _Change,
    _changing,
    _in_english,
    _validate_evidence,
    as_actor,
    refuse_unseen_note,
    trimmed,
    visible_text,
)


def _snapshot(item: ReleaseItem) -> dict[str, Any]:
    return {
        "state": item.state,
        "reason": item.reason,
        "note": item.note,
        "evidence_url": item.evidence_url,
    }


def _apply_item_change(
    change: _Change,
    item: ReleaseItem,
    *,
    expected_version: int | None,
    action: AuditAction,
    **fields: Any,
) -> ReleaseItem:
    _require_fresh(item, expected_version)
    before = _snapshot(item)
    for name, value in fields.items():
        setattr(item, name, value)
    after = _snapshot(item)
    if after == before:
        return item
    actor = change.actor
    item.changed_by = actor.user if isinstance(actor, Person) else None
    item.changed_by_label = actor.label[:200]
    item.changed_by_kind = actor.kind
    item.changed_at = timezone.now()
    item.version += 1
    item.revision = change.on.revision + 1
    item.save(
        update_fields=[
            *fields,
            "changed_by",
            "changed_by_label",
            "changed_by_kind",
            "changed_at",
            "version",
            "revision",
        ]
    )
    change.audit(action, item.text, before, after)
    if change.on.status == ReleaseStatus.PLANNED:
        change.on.status = ReleaseStatus.IN_PROGRESS
    settled_changed = (before["state"], before["reason"], before["evidence_url"]) != (
        after["state"],
        after["reason"],
        after["evidence_url"],
    )
    if settled_changed:
        _reopen_signoff(change, item)
        _revoke_if_gate_changed(change, item)
    return item


def _require_fresh(item: ReleaseItem, expected_version: int | None) -> None:
    if expected_version is None or item.version == expected_version:
        return
    if expected_version > item.version:
        # Versions only grow: no one changed the item, the form itself is wrong.
        raise WorkflowError(
            _(
                "The form names version %(version)d of “%(text)s”, which it has never had. "
                "Reload the page and try again."
            )
            % {"version": expected_version, "text": item.text}
        )
    who = item.changed_by_label or _("someone else")
    raise Conflict(
        _(
            "“%(text)s” was changed by %(who)s since you loaded the page; "
            "it is now %(state)s. Review it and try again."
        )
        % {"text": item.text, "who": who, "state": item.get_state_display()}
    )


def _reopen_signoff(change: _Change, item: ReleaseItem) -> None:
    if not item.before_gate and _gate_cuts(change, item.owner_role, item.phase):
        return  # past the gate in a phase it cuts: the sign-off covers only what precedes it
    signoff = _open_signoff(change, item.owner_role, item.phase)
    if signoff is None:
        return
    # Reopened once: the next item of the same lane finds nothing left to reopen.
    change.looked_up[("signoff", item.owner_role, item.phase)] = None
    signoff.reopened_at = timezone.now()
    signoff.reopened_reason = gettext_noop("“%(text)s” changed after sign-off")
    signoff.reopened_reason_args = {"text": item.text}
    signoff.save(update_fields=["reopened_at", "reopened_reason", "reopened_reason_args"])
    change.audit(
        AuditAction.SIGNOFF_REOPENED,
        f"{item.owner_role} / {item.phase}",
        {"signed_by": signoff.signed_by.get_username()},
        {"reason": _in_english(signoff.reopened_reason, signoff.reopened_reason_args)},
        override=False,
    )


def _gate_cuts(change: _Change, role: str, phase: str) -> bool:
    key = ("gate", role, phase)
    if key not in change.looked_up:
        change.looked_up[key] = ReleaseItem.objects.filter(
            release=change.on, owner_role=role, phase=phase, before_gate=True
        ).exists()
    return bool(change.looked_up[key])


def _open_signoff(change: _Change, role: str, phase: str) -> SignOff | None:
    key = ("signoff", role, phase)
    if key not in change.looked_up:
        change.looked_up[key] = SignOff.objects.filter(
            release=change.on, role=role, phase=phase, reopened_at__isnull=True
        ).first()
    return change.looked_up[key]  # type: ignore[no-any-return]


def _locked_item(change: _Change, item_id: int) -> ReleaseItem:
    item = ReleaseItem.objects.select_related("release").get(pk=item_id, release=change.on)
    _require_may_change(change, change.actor, item)
    return item


def _require_may_change(change: _Change, actor: Actor, item: ReleaseItem) -> None:
    change.require(
        policy.may_change_item(
            who_on(actor, change.on), owner_role=item.owner_role, checks=item.checks
        ),
        _("Only the %(role)s may change “%(text)s”.")
        % {"role": item.get_owner_role_display(), "text": item.text},
    )


def _release_id_of(item: ReleaseItem | int) -> tuple[int, int]:
    if isinstance(item, ReleaseItem):
        return item.release_id, item.pk
    release_id = ReleaseItem.objects.values_list("release_id", flat=True).get(pk=item)
    return release_id, item


_STATE_ACTIONS = {
    ItemState.DONE: AuditAction.ITEM_DONE,
    ItemState.PENDING: AuditAction.ITEM_REOPENED,
    ItemState.NOT_APPLICABLE: AuditAction.ITEM_NOT_APPLICABLE,
    ItemState.BLOCKED: AuditAction.ITEM_BLOCKED,
}


def set_item_state(
    item: ReleaseItem | int,
    *,
    by: By,
    state: str,
    reason: str = "",
    override_reason: str = "",
    expected_version: int | None = None,
    ip: str | None = None,
) -> ReleaseItem:
    """Tick, untick, mark not applicable or blocked. N/A and blocked need a reason, and
    so does a tick over a failing automated check (`override_reason`)."""
    if state == ItemState.FAILED:
        raise WorkflowError(_("Only an automated check can mark an item as failed."))
    if state not in ItemState.values:
        raise WorkflowError(_("Unknown state %(state)s.") % {"state": state})
    reason = visible_text(trimmed(reason), _("The reason"))
    if state in ItemState.needing_reason() and not reason:
        raise WorkflowError(
            _("Say why the item is %(state)s.") % {"state": ItemState(state).label.lower()}
        )
    if state not in ItemState.needing_reason():
        reason = ""
    override_reason = _override_reason(override_reason)
    if override_reason and state != ItemState.DONE:
        raise WorkflowError(_("Only a tick can be given over a failing automated check."))
    release_id, item_id = _release_id_of(item)
    with _changing(release_id, as_actor(by, ip)) as change:
        locked = _locked_item(change, item_id)
        if state == ItemState.DONE and (locked.failing_check or override_reason):
            return _tick_over_failure(change, locked, override_reason, expected_version)
        fields: dict[str, Any] = {"state": state, "reason": reason}
        standing = _override_of(locked)
        if state != ItemState.DONE:
            fields.update(check_failure="", **_NO_OVERRIDE)
        changed = _apply_item_change(
            change,
            locked,
            expected_version=expected_version,
            action=_STATE_ACTIONS[ItemState(state)],
            **fields,
        )
        if standing and not changed.override_reason:
            change.audit(AuditAction.CHECK_OVERRIDE_CLEARED, changed.text, standing, {})
        return changed


# What an item holds of an override, and what it holds without one.
_NO_OVERRIDE: dict[str, Any] = {
    "override_reason": "",
    "override_failure": "",
    "overridden_by_label": "",
    "overridden_at": None,
}


OVERRIDE_REASON_MAX = 2000


def _override_reason(text: str) -> str:
    text = visible_text(trimmed(text), _("The override reason"))
    if len(text) > OVERRIDE_REASON_MAX:
        raise WorkflowError(
            _("The override reason is longer than %(limit)d characters.")
            % {"limit": OVERRIDE_REASON_MAX}
        )
    return text


def _override_of(item: ReleaseItem) -> dict[str, str]:
    """The override an item holds, as the audit trail shows it ({} when none)."""
    if not item.override_reason:
        return {}
    return {
        "reason": item.override_reason,
        "check_failure": item.override_failure,
        "by": item.overridden_by_label,
    }


def _tick_over_failure(
    change: _Change, item: ReleaseItem, reason: str, expected_version: int | None
) -> ReleaseItem:
    """A person ticks an item whose automated check fails, or gives the reason for a tick
    a check has failed since: allowed only with that reason, which stands beside the
    failure until the check passes or fails differently, and which the approval names."""
    _require_fresh(item, expected_version)
    failure = item.failing_check
    if not failure:
        raise WorkflowError(
            _("“%(text)s” has no failing automated check to override.") % {"text": item.text}
        )
    if not reason:
        if item.overridden:
            return item  # ticked over this very failure already
        raise WorkflowError(
            _(
                "The automated check of “%(text)s” is failing (%(failure)s): say why you "
                "tick it anyway, or fix what fails. Go-live approval will name your reason."
            )
            % {"text": item.text, "failure": failure}
        )
    change.require(
        policy.may_override_check(who_on(change.actor, change.on), owner_role=item.owner_role),
        _("Only the %(role)s may tick “%(text)s” over its failing check.")
        % {"role": item.get_owner_role_display(), "text": item.text},
    )
    if item.overridden and item.override_reason == reason:
        return item
    standing = _override_of(item)
    was_done = item.state == ItemState.DONE
    item = _apply_item_change(
        change,
        item,
        expected_version=None,
        action=AuditAction.ITEM_DONE,
        state=ItemState.DONE,
        reason="",
        check_failure=failure,
    )
    item.override_reason = reason
    item.override_failure = failure
    item.overridden_by_label = change.actor.label[:200]
    item.overridden_at = timezone.now()
    saved = [*_NO_OVERRIDE, "check_failure"]
    if was_done:
        # Nothing else changed, so the tick did not move the item on: the override does.
        item.version += 1
        item.revision = change.on.revision + 1
        saved += ["version", "revision"]
    item.save(update_fields=saved)
    change.audit(
        AuditAction.CHECK_OVERRIDDEN,
        item.text,
        standing,
        {"reason": reason, "check_failure": failure},
    )
    _revoke_if_gate_changed(change, item)
    return item


def tick(
    item: ReleaseItem | int,
    *,
    by: By,
    override_reason: str = "",
    expected_version: int | None = None,
    ip: str | None = None,
) -> ReleaseItem:
    """Mark an item done; over a failing automated check only with `override_reason`."""
    return set_item_state(
        item,
        by=by,
        state=ItemState.DONE,
        override_reason=override_reason,
        expected_version=expected_version,
        ip=ip,
    )


def untick(
    item: ReleaseItem | int, *, by: By, expected_version: int | None = None, ip: str | None = None
) -> ReleaseItem:
    return set_item_state(
        item, by=by, state=ItemState.PENDING, expected_version=expected_version, ip=ip
    )


# States that need a reason (ItemState.needing_reason): set_item_state refuses them without one.
mark_not_applicable = partial(set_item_state, state=ItemState.NOT_APPLICABLE)
mark_blocked = partial(set_item_state, state=ItemState.BLOCKED)


def annotate_item(
    item: ReleaseItem | int,
    *,
    by: By,
    note: str | None = None,
    evidence_url: str | None = None,
    expected_version: int | None = None,
    ip: str | None = None,
) -> ReleaseItem:
    """Change an item's note and/or evidence link."""
    release_id, item_id = _release_id_of(item)
    with _changing(release_id, as_actor(by, ip)) as change:
        locked = _locked_item(change, item_id)
        fields: dict[str, Any] = {}
        if note is not None:
            fields["note"] = _note(note)
        if evidence_url is not None:
            fields["evidence_url"] = _validate_evidence(evidence_url)
        return _apply_item_change(
            change,
            locked,
            expected_version=expected_version,
            action=AuditAction.ITEM_ANNOTATED,
            **fields,
        )


def _note(typed: str) -> str:
    """The note to keep: an empty one removes the note. One of only invisible characters
    is refused rather than kept as empty, since it would remove the note unseen."""
    note = typed.strip()
    refuse_unseen_note(note)
    return visible_text(note[:5000], _("The note"))


def sign_off(release: Release, *, role: str, phase: str, by: By, ip: str | None = None) -> SignOff:
    actor = as_actor(by, ip)
    if role not in Role.leads():
        raise WorkflowError(_("Only leads sign off their items."))
    with _changing(release.pk, actor) as change:
        change.require(
            policy.may_sign_off(who_on(actor, change.on), role=role),
            _("Only the %(role)s signs off these items.") % {"role": Role(role).label},
        )
        assert isinstance(actor, Person)  # the policy lets only people sign
        items = in_signoff_scope(
            ReleaseItem.objects.filter(release=change.on, owner_role=role, phase=phase)
        )
        if not items:
            raise WorkflowError(
                _("The %(role)s owns no items in “%(phase)s”.")
                % {"role": Role(role).label, "phase": phase}
            )
        settled = ItemState.settled()
        open_items = [i for i in items if i.required and i.state not in settled]
        if open_items:
            raise WorkflowError(
                _(
                    "%(count)d required item(s) of yours in “%(phase)s” are not done or "
                    "N/A yet, e.g. “%(text)s”."
                )
                % {"count": len(open_items), "phase": phase, "text": open_items[0].text}
            )
        optional_open = [i.text for i in items if not i.required and i.state not in settled]
        if SignOff.objects.filter(
            release=change.on, role=role, phase=phase, reopened_at__isnull=True
        ).exists():
            raise WorkflowError(_("Already signed off."))
        signoff = SignOff.objects.create(
            release=change.on,
            role=role,
            phase=phase,
            signed_by=actor.user,
            optional_open=optional_open,
        )
        signed = {"items": len(items), "signed_by": actor.user.get_username()}
        change.audit(
            AuditAction.SIGNOFF_SIGNED,
            f"{role} / {phase}",
            {},
            {**signed, "optional_open": optional_open} if optional_open else signed,
        )
        return signoff


def withdraw_sign_off(
    release: Release, *, role: str, phase: str, by: By, ip: str | None = None
) -> None:
    actor = as_actor(by, ip)
    with _changing(release.pk, actor) as change:
        signoff = SignOff.objects.filter(
            release=change.on, role=role, phase=phase, reopened_at__isnull=True
        ).first()
        if signoff is None:
            raise WorkflowError(_("There is no sign-off to withdraw."))
        signed_it = isinstance(actor, Person) and signoff.signed_by_id == actor.user.pk
        change.require(
            policy.may_withdraw(who_on(actor, change.on), signed_it=signed_it),
            _("Only whoever signed can withdraw the sign-off."),
        )
        signoff.reopened_at = timezone.now()
        signoff.reopened_reason = gettext_noop("withdrawn by %(who)s")
        signoff.reopened_reason_args = {"who": actor.label}
        signoff.save(update_fields=["reopened_at", "reopened_reason", "reopened_reason_args"])
        change.audit(AuditAction.SIGNOFF_WITHDRAWN, f"{role} / {phase}")
        _revoke_if_unsigned(change)
