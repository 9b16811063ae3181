"""People and contacts: who holds which role, the emergency contacts, the release's own
fields, share links, and account changes audited on the releases they touch.
"""

from __future__ import annotations

import hashlib
import json
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from django.core.exceptions import ValidationError
from django.db import IntegrityError, models
from django.utils import timezone
from django.utils.text import capfirst
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from .. import policy
from ..actors import Person, who_on
from ..models import (
    DEFAULT_CONTACTS_HEADING,
    AuditAction,
    EmergencyContact,
    Release,
    Role,
    ShareLink,
    Stakeholder,
    one_line,
)
from .change import (
    By,
    Conflict,
    WorkflowError,
    _changing,
    _require_manager,
    as_actor,
    visible_text,
)

if TYPE_CHECKING:
    from django.contrib.auth.models import User


def assign(
    release: Release, *, role: str, user: User, by: By, ip: str | None = None
) -> Stakeholder:
    actor = as_actor(by, ip)
    _require_manager(actor, release)
    if role not in Role.values:
        raise WorkflowError(_("Unknown role %(role)s.") % {"role": role})
    with _changing(release.pk, actor) as change:
        stake, created = Stakeholder.objects.get_or_create(release=change.on, role=role, user=user)
        if created:
            change.audit(
                AuditAction.STAKEHOLDER_ASSIGNED,
                f"{role}: {user.get_username()}",
                {},
                _holding(user, role),
            )
        return stake


def _holding(user: User, role: str) -> dict[str, str]:
    return {"person": user.get_username(), "role": role}


def reassign(
    stake: Stakeholder, *, role: str, user: User, by: By, ip: str | None = None
) -> Stakeholder:
    """Change who holds a role, or which role someone holds (the admin edits a row)."""
    actor = as_actor(by, ip)
    if role not in Role.values:
        raise WorkflowError(_("Unknown role %(role)s.") % {"role": role})
    with _changing(stake.release_id, actor) as change:
        _require_manager(actor, change.on)
        locked = Stakeholder.objects.select_related("user").get(pk=stake.pk, release=change.on)
        before = _holding(locked.user, locked.role)
        if (locked.role, locked.user_id) == (role, user.pk):
            return locked
        if Stakeholder.objects.filter(release=change.on, role=role, user=user).exists():
            raise WorkflowError(
                _("%(user)s already holds the role %(role)s.")
                % {"user": user.get_username(), "role": Role(role).label}
            )
        locked.role, locked.user = role, user
        locked.save(update_fields=["role", "user"])
        change.audit(
            AuditAction.STAKEHOLDER_CHANGED,
            f"{role}: {user.get_username()}",
            before,
            _holding(user, role),
        )
        return locked


def unassign(release: Release, *, role: str, user: User, by: By, ip: str | None = None) -> bool:
    """Whether this call removed the person from the role (False when they did not hold
    it, or no longer did: nothing changes, and nothing is audited)."""
    actor = as_actor(by, ip)
    _require_manager(actor, release)
    with _changing(release.pk, actor) as change:
        deleted, _rows = Stakeholder.objects.filter(
            release=change.on, role=role, user=user
        ).delete()
        if deleted:
            change.audit(
                AuditAction.STAKEHOLDER_UNASSIGNED,
                f"{role}: {user.get_username()}",
                _holding(user, role),
                {},
            )
    return bool(deleted)


def update_contact(
    contact: EmergencyContact, *, by: By, name: str, phone: str, email: str, ip: str | None = None
) -> EmergencyContact:
    """What the people page edits: a contact's name, phone and email."""
    fields = {"name": name.strip(), "phone": phone.strip(), "email": email.strip()}
    return edit_contact(contact, fields=fields, by=by, ip=ip)


# Every field of a contact the audit trail shows before and after.
CONTACT_FIELDS = ("position", "role", "name", "phone", "email", "other")


def _contact_values(contact: EmergencyContact) -> dict[str, Any]:
    return {name: getattr(contact, name) for name in CONTACT_FIELDS}


def edit_contact(
    contact: EmergencyContact, *, fields: Mapping[str, Any], by: By, ip: str | None = None
) -> EmergencyContact:
    """Change any of a contact's fields (the people page, the admin); only what differs
    is saved and audited."""
    actor = as_actor(by, ip)
    with _changing(contact.release_id, actor) as change:
        change.require(
            policy.may_edit_contacts(who_on(actor, change.on)), _("Only staff can do this.")
        )
        locked = EmergencyContact.objects.get(pk=contact.pk, release=change.on)
        before = _contact_values(locked)
        for name, value in _shown_fields(EmergencyContact, fields, CONTACT_FIELDS).items():
            setattr(locked, name, value)
        if locked.phone or locked.email:
            # A placeholder cell stops counting once a real way to reach them is there.
            locked.other = "" if "other" not in fields else locked.other
        after = _contact_values(locked)
        if after == before:
            return locked
        try:
            locked.full_clean()
        except ValidationError as error:
            raise WorkflowError(" ".join(error.messages)) from None
        locked.save()
        changed = [name for name in CONTACT_FIELDS if before[name] != after[name]]
        change.audit(
            AuditAction.CONTACT_UPDATED,
            locked.role,
            {name: before[name] for name in changed},
            {name: after[name] for name in changed},
        )
        return locked


def add_contact(
    release: Release, *, fields: Mapping[str, Any], by: By, ip: str | None = None
) -> EmergencyContact:
    actor = as_actor(by, ip)
    with _changing(release.pk, actor) as change:
        change.require(
            policy.may_edit_contacts(who_on(actor, change.on)), _("Only staff can do this.")
        )
        contact = EmergencyContact(
            release=change.on, **_shown_fields(EmergencyContact, fields, CONTACT_FIELDS)
        )
        try:
            contact.full_clean()
        except ValidationError as error:
            raise WorkflowError(" ".join(error.messages)) from None
        contact.save()
        change.audit(AuditAction.CONTACT_ADDED, contact.role, {}, _contact_values(contact))
        return contact


def _shown_fields(
    model: type[models.Model], fields: Mapping[str, Any], known: Sequence[str]
) -> dict[str, Any]:
    """The `known` ones of `fields`, whose text is refused with invisible bidirectional
    controls, as the rest of what people type is; named as the model names them."""
    return {
        name: visible_text(value, _column_name(model, name)) if isinstance(value, str) else value
        for name, value in fields.items()
        if name in known
    }


def _column_name(model: type[models.Model], name: str) -> str:
    column = model._meta.get_field(name)
    assert isinstance(column, models.Field)  # the fields people type in are columns
    return str(capfirst(column.verbose_name))


def remove_contact(contact: EmergencyContact, *, by: By, ip: str | None = None) -> None:
    actor = as_actor(by, ip)
    with _changing(contact.release_id, actor) as change:
        change.require(
            policy.may_edit_contacts(who_on(actor, change.on)), _("Only staff can do this.")
        )
        locked = EmergencyContact.objects.filter(pk=contact.pk, release=change.on).first()
        if locked is None:
            return
        before = _contact_values(locked)
        locked.delete()
        change.audit(AuditAction.CONTACT_REMOVED, before["role"], before, {})


@dataclass(frozen=True)
class ContactRow:
    """One row of the contacts editor. `contact_id` names the contact it edits; None is
    a new one."""

    role: str
    name: str
    phone: str = ""
    email: str = ""
    contact_id: int | None = None


# What a contact is as the editor's audit event lists it (its position is its place in
# the list).
EDITED_FIELDS = ("role", "name", "phone", "email", "other")


def contacts_version(release: Release) -> str:
    """A fingerprint of the release's contacts as an editor loaded them: a save based
    on another one is stale. Only the contacts count, so a tick elsewhere on the release
    does not make the editor's work stale."""
    rows = release.contacts.order_by("position", "pk").values_list("pk", *CONTACT_FIELDS)
    return hashlib.sha256(json.dumps(list(rows), ensure_ascii=False).encode()).hexdigest()


def _listed(contact: EmergencyContact) -> dict[str, str]:
    return {name: getattr(contact, name) for name in EDITED_FIELDS}


def edit_contacts(
    release: Release,
    *,
    rows: Sequence[ContactRow],
    based_on: str,
    by: By,
    ip: str | None = None,
) -> list[EmergencyContact]:
    """Rewrite the emergency contacts as the editor lists them, in its order: a row
    naming a contact changes it, a new row adds one, a contact left out is removed. One
    audit event holds the whole list before and after. `based_on`: contacts_version as
    the editor loaded it; Conflict when someone saved the contacts since.

    A placeholder ("[Nombre]", or no phone and no email) is saved as typed: it blocks
    go-live (models.blocking_reasons), which says so where it matters. The checklist's
    own cell for a contact (`other`) stays until a phone or an email replaces it."""
    actor = as_actor(by, ip)
    with _changing(release.pk, actor) as change:
        change.require(
            policy.may_edit_release_plan(who_on(actor, change.on)), _("Only staff can do this.")
        )
        if contacts_version(change.on) != based_on:
            raise Conflict(
                _("Someone else saved the emergency contacts while you were editing them.")
            )
        existing = {c.pk: c for c in change.on.contacts.order_by("position", "pk")}
        _refuse_a_contact_edited_twice(rows)
        before = [_listed(c) for c in existing.values()]
        kept = [
            _contact_from_row(change.on, existing, number, row)
            for number, row in enumerate(rows, 1)
        ]
        for position, contact in enumerate(kept):
            contact.position = position
        after = [_listed(c) for c in kept]
        removed = [c for c in existing.values() if c not in kept]
        moved = [c.pk for c in kept] != list(existing)
        if before == after and not removed and not moved:
            return kept
        for contact in removed:
            contact.delete()
        for contact in kept:
            contact.save()
        if not change.on.contacts_heading:
            # Export writes contacts under their heading; a release made from a template
            # without contacts had none.
            change.on.contacts_heading = DEFAULT_CONTACTS_HEADING
            Release.objects.filter(pk=change.on.pk).update(
                contacts_heading=change.on.contacts_heading
            )
        change.audit(
            AuditAction.CONTACTS_EDITED,
            change.on.version,
            {"contacts": before},
            {"contacts": after},
        )
        return kept


_CONTACT_LABELS = {
    "role": gettext_lazy("role"),
    "name": gettext_lazy("name"),
    "phone": gettext_lazy("phone"),
    "email": gettext_lazy("email"),
}


def _refuse_a_contact_edited_twice(rows: Sequence[ContactRow]) -> None:
    """Two rows naming one contact would have the second's values win and the first's
    vanish without a word."""
    first_row: dict[int, int] = {}
    for number, row in enumerate(rows, 1):
        if row.contact_id is None:
            continue
        if row.contact_id in first_row:
            raise WorkflowError(
                _("Rows %(first)d and %(second)d edit the same contact; reload the page.")
                % {"first": first_row[row.contact_id], "second": number}
            )
        first_row[row.contact_id] = number


def _contact_from_row(
    release: Release, existing: dict[int, EmergencyContact], number: int, row: ContactRow
) -> EmergencyContact:
    if row.contact_id is None:
        contact = EmergencyContact(release=release)
    elif row.contact_id in existing:
        contact = existing[row.contact_id]
    else:
        raise WorkflowError(
            _("Row %(number)d names a contact this release does not have; reload the page.")
            % {"number": number}
        )
    fields = {"role": row.role, "name": row.name, "phone": row.phone, "email": row.email}
    for name, value in fields.items():
        setattr(
            contact, name, visible_text(value.strip(), _("Row %(number)d") % {"number": number})
        )
    if contact.phone or contact.email:
        contact.other = ""
    try:
        one_line(contact, *fields)
        contact.full_clean(exclude=["release"])
    except ValidationError as error:
        problems = [
            f"{_CONTACT_LABELS.get(name, name)}: {' '.join(messages)}"
            for name, messages in error.message_dict.items()
        ]
        raise WorkflowError(
            _("Row %(number)d: %(problems)s") % {"number": number, "problems": "; ".join(problems)}
        ) from None
    return contact


# What the admin may change on a release itself; status, gate and revision change only
# through their own operations.
RELEASE_FIELDS = (
    "version",
    "title",
    "window_start",
    "window_end",
    "changelog_url",
    "two_person_rule",
    "approval_reminders",
)


def edit_release(
    release: Release, *, fields: Mapping[str, Any], by: By, ip: str | None = None
) -> Release:
    """Change a release's own fields (the admin): only those that differ, on the locked
    row, so a concurrent approval or status change is never overwritten."""
    actor = as_actor(by, ip)
    unknown = set(fields) - set(RELEASE_FIELDS)
    if unknown:
        raise WorkflowError(
            _("These fields cannot be changed here: %(fields)s.")
            % {"fields": ", ".join(sorted(unknown))}
        )
    try:
        with _changing(release.pk, actor) as change:
            _require_manager(actor, change.on)
            locked = change.on
            before = {name: getattr(locked, name) for name in fields}
            stripped = {
                name: value.strip() if isinstance(value, str) else value
                for name, value in fields.items()
            }
            for name, value in _shown_fields(Release, stripped, RELEASE_FIELDS).items():
                setattr(locked, name, value)
            after = {name: getattr(locked, name) for name in fields}
            changed = [name for name in fields if before[name] != after[name]]
            if not changed:
                return locked
            try:
                locked.full_clean(validate_unique=False)
            except ValidationError as error:
                raise WorkflowError(" ".join(error.messages)) from None
            Release.objects.filter(pk=locked.pk).update(**{name: after[name] for name in changed})
            change.audit(
                AuditAction.RELEASE_EDITED,
                locked.version,
                {name: _plain(before[name]) for name in changed},
                {name: _plain(after[name]) for name in changed},
            )
            return locked
    except IntegrityError:
        raise WorkflowError(
            _("A release %(version)s already exists.") % {"version": fields.get("version", "")}
        ) from None


def _plain(value: Any) -> Any:
    """A value as the audit trail's JSON keeps it."""
    return value.isoformat() if isinstance(value, datetime) else value


def record_account_change(
    release: Release,
    *,
    user: User,
    before: Mapping[str, Any],
    after: Mapping[str, Any],
    by: By,
) -> None:
    """An account lost what let it follow this release (deactivated, no longer staff):
    audited here, and a new revision, at which open pages re-check who may follow."""
    actor = as_actor(by)
    _require_manager(actor, release)
    with _changing(release.pk, actor) as change:
        change.audit(AuditAction.ACCOUNT_CHANGED, user.get_username(), dict(before), dict(after))


def create_share_link(
    release: Release,
    *,
    label: str,
    by: By,
    ip: str | None = None,
    hides_personal: bool = False,
) -> str:
    """A new read-only link to the status page; the token is returned once and only its
    hash is kept. `hides_personal`: for people outside the company, contacts by role
    only."""
    actor = as_actor(by, ip)
    _require_manager(actor, release)
    label = visible_text(label, _("The link's label"))
    token = secrets.token_urlsafe(32)
    with _changing(release.pk, actor, shown=False) as change:
        ShareLink.objects.create(
            release=change.on,
            token_hash=ShareLink.hash_token(token),
            label=label,
            created_by=actor.user if isinstance(actor, Person) else None,
            hides_personal=hides_personal,
        )
        change.audit(
            AuditAction.SHARE_LINK_CREATED,
            label,
            {},
            {"hides_personal": True} if hides_personal else {},
        )
    return token


def revoke_share_link(release: Release, link: ShareLink, *, by: By, ip: str | None = None) -> bool:
    """Whether this call revoked the link (False when it was already revoked)."""
    actor = as_actor(by, ip)
    _require_manager(actor, release)
    # A new revision, although no page shows links: it is what makes every web process
    # re-check who may follow, and end the streams this link opened.
    with _changing(release.pk, actor) as change:
        # Only the request that flips revoked_at writes the audit event.
        revoked = ShareLink.objects.filter(
            pk=link.pk, release=change.on, revoked_at__isnull=True
        ).update(revoked_at=timezone.now())
        if revoked:
            change.audit(AuditAction.SHARE_LINK_REVOKED, link.label)
    return bool(revoked)
