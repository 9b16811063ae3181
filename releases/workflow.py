"""Every change to a release, as one named operation.

Each operation: checks permission, locks the release row inside a transaction (so two
people acting at once queue rather than overwrite), applies the change, appends an audit
event, bumps the release's revision, and publishes a live update once the transaction
commits. Views and tasks call these; they never save release models themselves.
"""

from __future__ import annotations

from collections.abc import Collection, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from django.core.exceptions import PermissionDenied, ValidationError
from django.core.validators import URLValidator
from django.db import IntegrityError, transaction
from django.utils import timezone, translation
from django.utils.translation import gettext as _
from django.utils.translation import gettext_noop

from . import live
from .models import (
    PLACEHOLDER,
    STATUS_TRANSITIONS,
    AuditEvent,
    ChecklistTemplate,
    EmergencyContact,
    GoLiveApproval,
    ItemState,
    Release,
    ReleaseItem,
    ReleaseStatus,
    Role,
    RollbackStep,
    SignOff,
    Stakeholder,
    blocking_reasons,
    reason_text,
)

if TYPE_CHECKING:
    from django.contrib.auth.models import AnonymousUser, User

    # request.user under the default AUTH_USER_MODEL.
    AnyUser = User | AnonymousUser


class WorkflowError(Exception):
    """A rule said no; the message is meant for the person who tried."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class Conflict(WorkflowError):
    """The edit was based on a stale view of the item."""


@dataclass(frozen=True)
class Actor:
    """Who acts, and from where. user=None is the system (an automated check)."""

    user: Any
    ip: str | None = None
    label: str = ""

    @property
    def name(self) -> str:
        if self.user is None:
            return self.label or "system"
        full = self.user.get_full_name() if hasattr(self.user, "get_full_name") else ""
        return f"{self.user.get_username()} ({full})" if full else self.user.get_username()


def as_actor(by: Any, ip: str | None = None) -> Actor:
    return by if isinstance(by, Actor) else Actor(user=by, ip=ip)


@dataclass
class _Change:
    release: Release
    actor: Actor
    override: bool = False
    events: list[dict[str, Any]] = field(default_factory=list)

    def audit(
        self,
        action: str,
        target: str = "",
        before: Any = None,
        after: Any = None,
        override: bool | None = None,
    ) -> None:
        self.events.append(
            {
                "action": action,
                "target": target[:500],
                "before": before or {},
                "after": after or {},
                "override": self.override if override is None else override,
            }
        )


@contextmanager
def _changing(release_id: int, actor: Actor) -> Iterator[_Change]:
    """The one transaction shape every operation shares."""
    with transaction.atomic():
        release = Release.objects.select_for_update().get(pk=release_id)
        change = _Change(release=release, actor=actor)
        yield change
        if not change.events:
            return
        release.revision += 1
        Release.objects.filter(pk=release.pk).update(
            revision=release.revision, status=release.status
        )
        now = timezone.now()
        user = actor.user if actor.user is not None and actor.user.is_authenticated else None
        AuditEvent.objects.bulk_create(
            [
                AuditEvent(
                    release=release,
                    actor=user,
                    actor_label=actor.name,
                    source_ip=actor.ip,
                    created_at=now,
                    **event,
                )
                for event in change.events
            ]
        )
        revision = release.revision
        transaction.on_commit(lambda: live.publish(release.pk, revision))


# --- permissions -----------------------------------------------------------------------


def roles_on(release: Release, user: AnyUser) -> set[str]:
    if user is None or not user.is_authenticated:
        return set()
    return set(
        Stakeholder.objects.filter(release=release, user=user).values_list("role", flat=True)
    )


def may_change(owner_role: str, roles: Collection[str], *, is_staff: bool) -> bool:
    """Who may change an item: its owner role (never support), or staff as an override.
    Pages use it to enable controls; _authorize_item enforces it."""
    return is_staff or (owner_role in roles and owner_role != Role.SUPPORT)


def can_change_item(user: AnyUser, item: ReleaseItem, roles: set[str] | None = None) -> bool:
    if user is None or not user.is_authenticated:
        return False
    held = roles if roles is not None else roles_on(item.release, user)
    return may_change(item.owner_role, held, is_staff=user.is_staff)


def _authorize_item(change: _Change, item: ReleaseItem) -> None:
    user = change.actor.user
    if user is None:
        return
    if may_change(item.owner_role, roles_on(change.release, user), is_staff=False):
        return
    if user.is_authenticated and user.is_staff:
        change.override = True
        return
    raise PermissionDenied(
        _("Only the %(role)s may change “%(text)s”.")
        % {"role": item.get_owner_role_display(), "text": item.text}
    )


# --- items -------------------------------------------------------------------------------


def _snapshot(item: ReleaseItem) -> dict[str, Any]:
    return {
        "state": item.state,
        "reason": item.reason,
        "note": item.note,
        "evidence_url": item.evidence_url,
    }


def _validate_evidence(url: str) -> str:
    url = url.strip()
    limit = ReleaseItem._meta.get_field("evidence_url").max_length
    assert limit is not None  # a URLField always has one
    if len(url) > limit:
        raise WorkflowError(
            _("The evidence link is longer than %(limit)d characters.") % {"limit": limit}
        )
    if url:
        try:
            URLValidator(schemes=["http", "https"])(url)
        except ValidationError:
            raise WorkflowError(_("The evidence link must be an http(s) URL.")) from None
    return url


def _apply_item_change(
    change: _Change, item: ReleaseItem, *, expected_version: int | None, action: str, **fields: Any
) -> ReleaseItem:
    if expected_version is not None and item.version != expected_version:
        who = item.changed_by_label or _("someone else")
        raise Conflict(
            _(
                "“%(text)s” was changed by %(who)s since you loaded the page; "
                "it is now %(state)s. Review it and try again."
            )
            % {"text": item.text, "who": who, "state": item.get_state_display()}
        )
    before = _snapshot(item)
    for name, value in fields.items():
        setattr(item, name, value)
    after = _snapshot(item)
    if after == before:
        return item
    now = timezone.now()
    user = change.actor.user
    item.changed_by = user if user is not None and user.is_authenticated else None
    item.changed_by_label = change.actor.name
    item.changed_at = now
    item.version += 1
    item.revision = change.release.revision + 1
    item.save(
        update_fields=[
            *fields,
            "changed_by",
            "changed_by_label",
            "changed_at",
            "version",
            "revision",
        ]
    )
    change.audit(action, item.text, before, after)
    if change.release.status == ReleaseStatus.PLANNED:
        change.release.status = ReleaseStatus.IN_PROGRESS
    settled_changed = (before["state"], before["reason"], before["evidence_url"]) != (
        after["state"],
        after["reason"],
        after["evidence_url"],
    )
    if settled_changed:
        _reopen_signoff(change, item)
        _revoke_if_gate_changed(change, item)
    return item


def _in_english(template: str, args: dict[str, Any]) -> str:
    # The audit trail reads the same whoever acted and whatever their language.
    with translation.override("en"):
        return reason_text(template, args)


def _reopen_signoff(change: _Change, item: ReleaseItem) -> None:
    signoff = SignOff.objects.filter(
        release=change.release, role=item.owner_role, phase=item.phase, reopened_at__isnull=True
    ).first()
    if signoff is None:
        return
    signoff.reopened_at = timezone.now()
    signoff.reopened_reason = gettext_noop("“%(text)s” changed after sign-off")
    signoff.reopened_reason_args = {"text": item.text}
    signoff.save(update_fields=["reopened_at", "reopened_reason", "reopened_reason_args"])
    change.audit(
        "signoff.reopened",
        f"{item.owner_role} / {item.phase}",
        {"signed_by": signoff.signed_by.get_username()},
        {"reason": _in_english(signoff.reopened_reason, signoff.reopened_reason_args)},
        override=False,
    )


def _revoke_if_gate_changed(change: _Change, item: ReleaseItem) -> None:
    if not (item.before_gate and item.required):
        return
    approval = GoLiveApproval.objects.filter(
        release=change.release, revoked_at__isnull=True
    ).first()
    if approval is None or change.release.gate_digest() == approval.digest:
        return
    _revoke(
        change,
        approval,
        gettext_noop("“%(text)s” changed after go-live was approved"),
        {"text": item.text},
    )


def _locked_item(change: _Change, item_id: int) -> ReleaseItem:
    item = ReleaseItem.objects.select_related("release").get(pk=item_id, release=change.release)
    _authorize_item(change, item)
    return item


def _release_id_of(item: ReleaseItem | int) -> tuple[int, int]:
    if isinstance(item, ReleaseItem):
        return item.release_id, item.pk
    release_id = ReleaseItem.objects.values_list("release_id", flat=True).get(pk=item)
    return release_id, item


def set_item_state(
    item: ReleaseItem | int,
    *,
    by: Any,
    state: str,
    reason: str = "",
    expected_version: int | None = None,
    ip: str | None = None,
) -> ReleaseItem:
    """Tick, untick, mark not applicable or blocked. N/A and blocked need a reason."""
    if state == ItemState.FAILED:
        raise WorkflowError(_("Only an automated check can mark an item as failed."))
    if state not in ItemState.values:
        raise WorkflowError(_("Unknown state %(state)s.") % {"state": state})
    reason = reason.strip()
    if state in ItemState.needing_reason() and not reason:
        raise WorkflowError(
            _("Say why the item is %(state)s.") % {"state": ItemState(state).label.lower()}
        )
    if state not in ItemState.needing_reason():
        reason = ""
    release_id, item_id = _release_id_of(item)
    actor = as_actor(by, ip)
    with _changing(release_id, actor) as change:
        locked = _locked_item(change, item_id)
        action = {
            ItemState.DONE: "item.done",
            ItemState.PENDING: "item.reopened",
            ItemState.NOT_APPLICABLE: "item.not_applicable",
            ItemState.BLOCKED: "item.blocked",
        }[ItemState(state)]
        fields: dict[str, Any] = {"state": state, "reason": reason}
        if state != ItemState.DONE:
            fields["check_failure"] = ""
        return _apply_item_change(
            change, locked, expected_version=expected_version, action=action, **fields
        )


def tick(
    item: ReleaseItem | int, *, by: Any, expected_version: int | None = None, ip: str | None = None
) -> ReleaseItem:
    return set_item_state(
        item, by=by, state=ItemState.DONE, expected_version=expected_version, ip=ip
    )


def untick(
    item: ReleaseItem | int, *, by: Any, expected_version: int | None = None, ip: str | None = None
) -> ReleaseItem:
    return set_item_state(
        item, by=by, state=ItemState.PENDING, expected_version=expected_version, ip=ip
    )


def mark_not_applicable(
    item: ReleaseItem | int,
    *,
    by: Any,
    reason: str,
    expected_version: int | None = None,
    ip: str | None = None,
) -> ReleaseItem:
    return set_item_state(
        item,
        by=by,
        state=ItemState.NOT_APPLICABLE,
        reason=reason,
        expected_version=expected_version,
        ip=ip,
    )


def mark_blocked(
    item: ReleaseItem | int,
    *,
    by: Any,
    reason: str,
    expected_version: int | None = None,
    ip: str | None = None,
) -> ReleaseItem:
    return set_item_state(
        item,
        by=by,
        state=ItemState.BLOCKED,
        reason=reason,
        expected_version=expected_version,
        ip=ip,
    )


def annotate_item(
    item: ReleaseItem | int,
    *,
    by: Any,
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
            fields["note"] = note.strip()[:5000]
        if evidence_url is not None:
            fields["evidence_url"] = _validate_evidence(evidence_url)
        return _apply_item_change(
            change, locked, expected_version=expected_version, action="item.annotated", **fields
        )


def record_check_result(
    item: ReleaseItem | int, *, check: str, passed: bool, detail: str = "", evidence_url: str = ""
) -> ReleaseItem:
    """An automated check's verdict. It ticks a pending item on success and fails it
    otherwise, but never undoes a person's decision: on an item a person settled, a
    failure is kept beside it as a blocking reason instead."""
    release_id, item_id = _release_id_of(item)
    actor = Actor(user=None, label=f"check:{check}")
    with _changing(release_id, actor) as change:
        locked = _locked_item(change, item_id)
        evidence = _validate_evidence(evidence_url) if evidence_url else locked.evidence_url
        # Done, N/A or blocked by a person: the machine's verdict goes beside it.
        decided_by_person = (
            locked.state not in (ItemState.PENDING, ItemState.FAILED)
            and locked.changed_by_id is not None
        )
        if decided_by_person:
            failure = "" if passed else (detail or _("check failed"))
            if failure == locked.check_failure:
                return locked
            # Kept beside the person's decision: changed_by stays theirs, so the next
            # verdict still finds the item settled by a person.
            before = {"check_failure": locked.check_failure}
            locked.check_failure = failure
            locked.version += 1
            locked.revision = change.release.revision + 1
            locked.save(update_fields=["check_failure", "version", "revision"])
            change.audit(
                "check.failed" if failure else "check.passed",
                locked.text,
                before,
                {"check_failure": failure},
            )
            _revoke_if_gate_changed(change, locked)
            return locked
        if passed:
            return _apply_item_change(
                change,
                locked,
                expected_version=None,
                action="check.passed",
                state=ItemState.DONE,
                reason="",
                evidence_url=evidence,
                check_failure="",
            )
        return _apply_item_change(
            change,
            locked,
            expected_version=None,
            action="check.failed",
            state=ItemState.FAILED,
            reason=detail or _("check failed"),
            evidence_url=evidence,
            check_failure="",
        )


# --- sign-off and approval -------------------------------------------------------------


def sign_off(release: Release, *, role: str, phase: str, by: Any, ip: str | None = None) -> SignOff:
    actor = as_actor(by, ip)
    if role not in Role.leads():
        raise WorkflowError(_("Only leads sign off their items."))
    with _changing(release.pk, actor) as change:
        user = actor.user
        held = roles_on(change.release, user)
        if role not in held:
            if not user.is_staff:
                raise PermissionDenied(
                    _("Only the %(role)s signs off these items.") % {"role": Role(role).label}
                )
            change.override = True
        items = list(
            ReleaseItem.objects.filter(release=change.release, owner_role=role, phase=phase)
        )
        if not items:
            raise WorkflowError(
                _("The %(role)s owns no items in “%(phase)s”.")
                % {"role": Role(role).label, "phase": phase}
            )
        open_items = [i for i in items if i.state not in ItemState.settled()]
        if open_items:
            raise WorkflowError(
                _(
                    "%(count)d item(s) of yours in “%(phase)s” are not done or N/A yet, "
                    "e.g. “%(text)s”."
                )
                % {"count": len(open_items), "phase": phase, "text": open_items[0].text}
            )
        if SignOff.objects.filter(
            release=change.release, role=role, phase=phase, reopened_at__isnull=True
        ).exists():
            raise WorkflowError(_("Already signed off."))
        signoff = SignOff.objects.create(
            release=change.release, role=role, phase=phase, signed_by=user
        )
        change.audit(
            "signoff.signed",
            f"{role} / {phase}",
            {},
            {"items": len(items), "signed_by": user.get_username()},
        )
        return signoff


def withdraw_sign_off(
    release: Release, *, role: str, phase: str, by: Any, ip: str | None = None
) -> None:
    actor = as_actor(by, ip)
    with _changing(release.pk, actor) as change:
        signoff = SignOff.objects.filter(
            release=change.release, role=role, phase=phase, reopened_at__isnull=True
        ).first()
        if signoff is None:
            raise WorkflowError(_("There is no sign-off to withdraw."))
        if signoff.signed_by_id != actor.user.pk:
            if not actor.user.is_staff:
                raise PermissionDenied(_("Only whoever signed can withdraw the sign-off."))
            change.override = True
        signoff.reopened_at = timezone.now()
        signoff.reopened_reason = gettext_noop("withdrawn by %(who)s")
        signoff.reopened_reason_args = {"who": actor.name}
        signoff.save(update_fields=["reopened_at", "reopened_reason", "reopened_reason_args"])
        change.audit("signoff.withdrawn", f"{role} / {phase}")
        _revoke_if_unsigned(change)


def _revoke_if_unsigned(change: _Change) -> None:
    approval = GoLiveApproval.objects.filter(
        release=change.release, revoked_at__isnull=True
    ).first()
    if approval is not None:
        _revoke(change, approval, gettext_noop("a lead withdrew a sign-off"))


def personal_obstacles(
    reasons: list[str],
    *,
    already_approved: bool,
    may_approve: bool,
    signed_off: bool,
    two_person_rule: bool,
) -> list[str]:
    """The release's blocking reasons plus what stops one person in particular. Takes
    flags rather than a user so live pages can render it once per kind of viewer."""
    obstacles = list(reasons)
    if already_approved:
        obstacles.insert(0, _("Go-live is already approved."))
    if not may_approve:
        obstacles.insert(0, _("Only the Product Owner approves go-live."))
    if two_person_rule and signed_off:
        obstacles.insert(
            0,
            _(
                "Two-person rule: you signed off as a lead on this release, "
                "so someone else must approve go-live."
            ),
        )
    return obstacles


def approval_obstacles(release: Release, user: AnyUser) -> list[str]:
    """Everything that stops this person approving go-live right now."""
    reasons = [r.message for r in blocking_reasons(release)]
    account = user if user is not None and user.is_authenticated else None
    return personal_obstacles(
        reasons,
        already_approved=release.active_approval() is not None,
        may_approve=account is not None
        and (Role.PRODUCT_OWNER in roles_on(release, account) or account.is_staff),
        signed_off=account is not None
        and SignOff.objects.filter(release=release, signed_by=account).exists(),
        two_person_rule=release.two_person_rule,
    )


def approve(release: Release, *, by: Any, ip: str | None = None) -> GoLiveApproval:
    actor = as_actor(by, ip)
    with _changing(release.pk, actor) as change:
        user = actor.user
        held = roles_on(change.release, user)
        if Role.PRODUCT_OWNER not in held:
            if not user.is_staff:
                raise PermissionDenied(_("Only the Product Owner approves go-live."))
            change.override = True
        obstacles = approval_obstacles(change.release, user)
        if obstacles:
            raise WorkflowError(
                _("Go-live cannot be approved yet: %(reasons)s") % {"reasons": "; ".join(obstacles)}
            )
        approval = GoLiveApproval.objects.create(
            release=change.release, approved_by=user, digest=change.release.gate_digest()
        )
        change.release.status = ReleaseStatus.APPROVED
        change.audit("release.approved", change.release.version, {}, {"digest": approval.digest})
        return approval


def _revoke(
    change: _Change,
    approval: GoLiveApproval,
    reason: str,
    reason_args: dict[str, str] | None = None,
    *,
    override: bool = False,
) -> None:
    approval.revoked_at = timezone.now()
    approval.revoked_reason = reason
    approval.revoked_reason_args = reason_args or {}
    approval.save(update_fields=["revoked_at", "revoked_reason", "revoked_reason_args"])
    reason = _in_english(reason, reason_args or {})
    if change.release.status == ReleaseStatus.APPROVED:
        change.release.status = ReleaseStatus.IN_PROGRESS
    change.audit(
        "release.approval_revoked",
        change.release.version,
        {"approved_by": approval.approved_by.get_username()},
        {"reason": reason},
        override=override,
    )


def revoke_approval(release: Release, *, by: Any, reason: str, ip: str | None = None) -> None:
    actor = as_actor(by, ip)
    reason = reason.strip()
    with _changing(release.pk, actor) as change:
        user = actor.user
        if Role.PRODUCT_OWNER not in roles_on(change.release, user):
            if not user.is_staff:
                raise PermissionDenied(_("Only the Product Owner revokes go-live approval."))
            change.override = True
        if not reason:
            raise WorkflowError(_("Say why go-live approval is revoked."))
        approval = GoLiveApproval.objects.filter(
            release=change.release, revoked_at__isnull=True
        ).first()
        if approval is None:
            raise WorkflowError(_("Go-live is not approved."))
        _revoke(change, approval, reason, override=change.override)


# --- releases, people, contacts --------------------------------------------------------


def _require_staff(actor: Actor) -> None:
    if actor.user is None or not actor.user.is_authenticated or not actor.user.is_staff:
        raise PermissionDenied(_("Only staff can do this."))


def create_release(
    template: ChecklistTemplate,
    *,
    version: str,
    title: str,
    by: Any,
    window_start: datetime | None = None,
    window_end: datetime | None = None,
    changelog_url: str = "",
    two_person_rule: bool = True,
    ip: str | None = None,
) -> Release:
    """A release's checklist is a copy of its template, so later template edits never
    rewrite a release in progress."""
    actor = as_actor(by, ip)
    if actor.user is not None:
        _require_staff(actor)
    release = Release(
        version=version.strip(),
        title=title.strip(),
        template=template,
        window_start=window_start,
        window_end=window_end,
        changelog_url=changelog_url.strip(),
        two_person_rule=two_person_rule,
    )
    try:
        # Uniqueness is left to the insert, which answers races and the plain case alike.
        release.full_clean(validate_unique=False)
    except ValidationError as error:
        raise WorkflowError(" ".join(error.messages)) from None
    template_items = list(template.items.order_by("position"))
    gate = template.gate_position if template.gate_position is not None else len(template_items)
    try:
        with transaction.atomic():
            release.template_name = template.name
            release.template_title = template.title
            release.template_description = template.description
            release.rollback_heading = template.rollback_heading
            release.rollback_intro = template.rollback_intro
            release.contacts_heading = template.contacts_heading
            release.contacts_header = template.contacts_header
            release.gate_position = template.gate_position
            release.save()
            ReleaseItem.objects.bulk_create(
                [
                    ReleaseItem(
                        release=release,
                        position=index,
                        phase=t.phase,
                        section=t.section,
                        text=t.text,
                        owner_role=t.owner_role,
                        required=t.required,
                        checks=t.checks,
                        before_gate=index < gate,
                    )
                    for index, t in enumerate(template_items)
                ]
            )
            RollbackStep.objects.bulk_create(
                [
                    RollbackStep(
                        release=release,
                        position=s.position,
                        text=s.text,
                        commands=s.commands,
                        lang=s.lang,
                    )
                    for s in template.rollback_steps.all()
                ]
            )
            EmergencyContact.objects.bulk_create(
                [
                    contact_from_cell(release, c.position, c.role, c.name, c.contact)
                    for c in template.contacts.all()
                ]
            )
            with _changing(release.pk, actor) as change:
                change.audit(
                    "release.created",
                    release.version,
                    {},
                    {"template": template.name, "items": len(template_items)},
                )
    except IntegrityError:
        raise WorkflowError(
            _("A release %(version)s already exists.") % {"version": release.version}
        ) from None
    return release


def contact_from_cell(
    release: Release, position: int, role: str, name: str, cell: str
) -> EmergencyContact:
    """Split a contacts-table cell such as "+34 600 000 000 / ana@example.com"."""
    if PLACEHOLDER.match(cell):
        return EmergencyContact(
            release=release, position=position, role=role, name=name, other=cell.strip()
        )
    phone = email = ""
    other: list[str] = []
    for part in (p.strip() for p in cell.replace(",", "/").split("/")):
        if not part:
            continue
        if "@" in part and not email and " " not in part:
            email = part
        elif (
            not phone
            and sum(ch.isdigit() for ch in part) >= 6
            and all(ch.isdigit() or ch in "+ -().#x" for ch in part)
        ):
            phone = part
        else:
            other.append(part)
    return EmergencyContact(
        release=release,
        position=position,
        role=role,
        name=name,
        phone=phone,
        email=email,
        other=" / ".join(other),
    )


def assign(
    release: Release, *, role: str, user: Any, by: Any, ip: str | None = None
) -> Stakeholder:
    actor = as_actor(by, ip)
    _require_staff(actor)
    if role not in Role.values:
        raise WorkflowError(_("Unknown role %(role)s.") % {"role": role})
    with _changing(release.pk, actor) as change:
        stake, created = Stakeholder.objects.get_or_create(
            release=change.release, role=role, user=user
        )
        if created:
            change.audit("stakeholder.assigned", f"{role}: {user.get_username()}")
        return stake


def unassign(release: Release, *, role: str, user: Any, by: Any, ip: str | None = None) -> None:
    actor = as_actor(by, ip)
    _require_staff(actor)
    with _changing(release.pk, actor) as change:
        deleted, _rows = Stakeholder.objects.filter(
            release=change.release, role=role, user=user
        ).delete()
        if deleted:
            change.audit("stakeholder.unassigned", f"{role}: {user.get_username()}")


def update_contact(
    contact: EmergencyContact, *, by: Any, name: str, phone: str, email: str, ip: str | None = None
) -> EmergencyContact:
    actor = as_actor(by, ip)
    held_po = Role.PRODUCT_OWNER in roles_on(contact.release, actor.user)
    if not held_po:
        _require_staff(actor)
    with _changing(contact.release_id, actor) as change:
        change.override = not held_po
        locked = EmergencyContact.objects.get(pk=contact.pk, release=change.release)
        before = {"name": locked.name, "phone": locked.phone, "email": locked.email}
        after = {"name": name.strip(), "phone": phone.strip(), "email": email.strip()}
        if after == before:
            return locked
        locked.name, locked.phone, locked.email = after["name"], after["phone"], after["email"]
        if locked.phone or locked.email:
            locked.other = ""
        try:
            locked.full_clean()
        except ValidationError as error:
            raise WorkflowError(" ".join(error.messages)) from None
        locked.save()
        change.audit("contact.updated", locked.role, before, after)
        return locked


def may_set_status(status: str, roles: Collection[str], *, is_staff: bool) -> bool:
    """The product owner moves a release along; DevOps may also record that it was
    deployed or rolled back; staff may do anything, as an override."""
    return (
        is_staff
        or Role.PRODUCT_OWNER in roles
        or (Role.DEVOPS in roles and status in (ReleaseStatus.DEPLOYED, ReleaseStatus.ROLLED_BACK))
    )


def status_moves(current: str) -> list[str]:
    """Where a release may go from `current`, in the statuses' own order. Approval is
    not among them: it has its own operation."""
    allowed = STATUS_TRANSITIONS.get(current, frozenset())
    return [s for s in ReleaseStatus.values if s in allowed and s != ReleaseStatus.APPROVED]


def set_status(release: Release, *, status: str, by: Any, ip: str | None = None) -> Release:
    actor = as_actor(by, ip)
    if status not in ReleaseStatus.values:
        raise WorkflowError(_("Unknown status %(status)s.") % {"status": status})
    with _changing(release.pk, actor) as change:
        if not may_set_status(status, roles_on(change.release, actor.user), is_staff=False):
            _require_staff(actor)
            change.override = True
        current = change.release.status
        if status == current:
            return change.release
        if status not in STATUS_TRANSITIONS.get(current, frozenset()):
            raise WorkflowError(
                _("A release cannot go from %(a)s to %(b)s.")
                % {"a": ReleaseStatus(current).label, "b": ReleaseStatus(status).label}
            )
        if status == ReleaseStatus.APPROVED:
            raise WorkflowError(_("Go-live is approved through the approval, not a status."))
        if current == ReleaseStatus.APPROVED:
            approval = change.release.active_approval()
            if approval is not None and status != ReleaseStatus.DEPLOYED:
                _revoke(
                    change,
                    approval,
                    gettext_noop("status changed to %(status)s"),
                    {"status": status},
                )
        change.release.status = status
        change.audit(
            "release.status", change.release.version, {"status": current}, {"status": status}
        )
        return change.release


def record_admin_edit(release_id: int, *, by: Any, target: str, ip: str | None = None) -> None:
    """People and contacts edited in the Django admin: audited and pushed live like any
    other change, and marked as an override since they skip the app's own rules."""
    with _changing(release_id, as_actor(by, ip)) as change:
        change.override = True
        change.audit("admin.edited", target)
