"""What happened on a release, in words: the audit trail read as a timeline.

`human_line` turns one AuditEvent into a line a person reads in their own language
("Status: Deployed → Rolled back", never "deployed → rolled_back"). Each action may have
a formatter in FORMATTERS; an action without one (a new one, or one another version
wrote) reads as its label and a generic before → after, with the values of statuses and
states shown by their choice labels. `phase_spans` and `approval_to_deploy` read how long
the release spent in each status from the same events.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.db import models
from django.db.models import Q
from django.utils import timezone, translation
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy, gettext_noop, ngettext

from . import performs
from .actors import username_in
from .models import (
    ActorKind,
    AuditAction,
    AuditEvent,
    CheckOutcome,
    DeployResult,
    EmergencyContact,
    IncidentState,
    ItemState,
    Release,
    ReleaseStatus,
    Role,
    RollbackSeverity,
    Stakeholder,
    WindowState,
    machine_words,
    reason_text,
)
from .templatetags.moments import moment
from .workflow.rollback import ALL_STEPS_DONE, MITIGATED_BY_STEP

# What a share link's timeline leaves out: how the team is organised (people, contacts,
# links, tokens, accounts), not what happened to the release.
INTERNAL_ACTIONS = frozenset(
    {
        AuditAction.STAKEHOLDER_ASSIGNED,
        AuditAction.STAKEHOLDER_UNASSIGNED,
        AuditAction.STAKEHOLDER_CHANGED,
        AuditAction.CONTACT_UPDATED,
        AuditAction.CONTACT_ADDED,
        AuditAction.CONTACT_REMOVED,
        AuditAction.CONTACTS_EDITED,
        AuditAction.SHARE_LINK_CREATED,
        AuditAction.SHARE_LINK_REVOKED,
        AuditAction.PIPELINE_TOKEN_CREATED,
        AuditAction.PIPELINE_TOKEN_REVOKED,
        AuditAction.ACCOUNT_CHANGED,
        AuditAction.TEMPLATE_IMPORTED,
        AuditAction.TEMPLATE_REPLACED,
        AuditAction.ADMIN_EDITED,
        # How the checks are configured (hosts, options) is the team's own business.
        AuditAction.CHECKS_LINKED,
        AuditAction.CHECK_ADDED,
        AuditAction.CHECK_CHANGED,
        AuditAction.CHECK_RETIRED,
        AuditAction.PERFORMS_LINKED,
    }
)
# Events about one item, whose target is the item's text.
ITEM_ACTIONS = frozenset(
    {
        AuditAction.ITEM_DONE,
        AuditAction.ITEM_REOPENED,
        AuditAction.ITEM_NOT_APPLICABLE,
        AuditAction.ITEM_BLOCKED,
        AuditAction.ITEM_ANNOTATED,
        AuditAction.CHECK_PASSED,
        AuditAction.CHECK_FAILED,
        AuditAction.CHECK_NOT_VERIFIED,
        AuditAction.CHECK_OVERRIDDEN,
        AuditAction.CHECK_OVERRIDE_CLEARED,
        AuditAction.CHECK_UNLINKED,
        AuditAction.PIPELINE_PASSED,
        AuditAction.PIPELINE_FAILED,
        AuditAction.PERFORM_REQUESTED,
        AuditAction.PERFORM_CONFIRMED,
        AuditAction.PERFORM_AWAITING,
        AuditAction.PERFORM_UNCONFIRMED,
        AuditAction.PERFORM_FAILED,
        AuditAction.ACKNOWLEDGED,
    }
)
SIGNOFF_ACTIONS = frozenset(
    {AuditAction.SIGNOFF_SIGNED, AuditAction.SIGNOFF_WITHDRAWN, AuditAction.SIGNOFF_REOPENED}
)
# A change to an item moves a planned release in progress without a status event of its
# own (workflow.items._apply_item_change).
STARTS_WORK = ITEM_ACTIONS - {
    AuditAction.CHECK_OVERRIDDEN,
    AuditAction.CHECK_OVERRIDE_CLEARED,
    # Sending, or an end that leaves the item as it was, changes no item's state.
    AuditAction.PERFORM_REQUESTED,
    AuditAction.PERFORM_AWAITING,
    AuditAction.PERFORM_UNCONFIRMED,
}
# The events phase durations are read from.
STATUS_ACTIONS = frozenset(
    {
        AuditAction.RELEASE_CREATED,
        AuditAction.RELEASE_STATUS,
        AuditAction.RELEASE_APPROVED,
        AuditAction.APPROVAL_REVOKED,
    }
)

# Events on one page of the timeline, newest first (the page's and the API's).
PAGE_SIZE = 100

# Names of the values events keep, as a reader reads them: every key the workflow writes
# in an event's before or after has one (tests/releases/test_timeline_keys.py).
_KEY_LABELS: dict[str, Any] = {
    "text": gettext_lazy("Text"),
    "status": gettext_lazy("Status"),
    "state": gettext_lazy("State"),
    "reason": gettext_lazy("Reason"),
    "note": gettext_lazy("Note"),
    "evidence_url": gettext_lazy("Evidence link"),
    "check_failure": gettext_lazy("Failing check"),
    "failure": gettext_lazy("Failing check"),
    "message": gettext_lazy("Message"),
    "role": gettext_lazy("Role"),
    "owner": gettext_lazy("Owner"),
    "person": gettext_lazy("Person"),
    "position": gettext_lazy("Position"),
    "name": gettext_lazy("Name"),
    "phone": gettext_lazy("Phone"),
    "email": gettext_lazy("Email"),
    "other": gettext_lazy("Other contact"),
    "severity": gettext_lazy("Severity"),
    "result": gettext_lazy("Result"),
    "cause": gettext_lazy("Cause"),
    "time_zone": gettext_lazy("Time zone"),
    "start": gettext_lazy("Start"),
    "end": gettext_lazy("End"),
    "sequence": gettext_lazy("Calendar revision"),
    "contacts": gettext_lazy("Emergency contacts"),
    "intro": gettext_lazy("Introduction"),
    "steps": gettext_lazy("Steps"),
    "commands": gettext_lazy("Commands"),
    "lang": gettext_lazy("Language of the commands"),
    "approval_reminders": gettext_lazy("Approval reminders"),
    "template": gettext_lazy("Template"),
    "items": gettext_lazy("Items"),
    "summary": gettext_lazy("Summary"),
    "digest": gettext_lazy("Fingerprint of the checklist"),
    "overrides": gettext_lazy("Approved over failing checks"),
    "approved_by": gettext_lazy("Approved by"),
    "signed_by": gettext_lazy("Signed by"),
    "optional_open": gettext_lazy("Optional items left open"),
    "by": gettext_lazy("By"),
    "version": gettext_lazy("Version"),
    "title": gettext_lazy("Title"),
    "window_start": gettext_lazy("Target window start"),
    "window_end": gettext_lazy("Target window end"),
    "changelog_url": gettext_lazy("Changelog link"),
    "two_person_rule": gettext_lazy("Two-person rule"),
    "is_active": gettext_lazy("Active account"),
    "is_staff": gettext_lazy("Staff account"),
    "hides_personal": gettext_lazy("Hide personal contact details"),
    "releases": gettext_lazy("Releases"),
    "source": gettext_lazy("Declared in"),
    "kind": gettext_lazy("Kind"),
    "options": gettext_lazy("Options"),
    "created": gettext_lazy("Checks added"),
    "updated": gettext_lazy("Checks changed"),
    "retired": gettext_lazy("Retired"),
    "started_at": gettext_lazy("Started"),
    "finished_at": gettext_lazy("Finished"),
    "detected_at": gettext_lazy("Detected"),
    "closed_at": gettext_lazy("Closed"),
    "done": gettext_lazy("Done"),
    "step": gettext_lazy("Step"),
    "open_items": gettext_lazy("Open items"),
    "missing_signoff": gettext_lazy("Sign-off missing"),
    "action": gettext_lazy("Action"),
    "requested_by": gettext_lazy("Requested by"),
    "requested_at": gettext_lazy("Requested at"),
    "event": gettext_lazy("Event"),
    "recipients": gettext_lazy("Recipients"),
    "channel": gettext_lazy("Channel"),
    "message_ids": gettext_lazy("Message id"),
    "at": gettext_lazy("Time"),
    "performed": gettext_lazy("Delivery"),
    "acknowledged": gettext_lazy("Ready"),
}
# The keys whose values are moments (ISO 8601), shown as every page shows a time.
_MOMENT_KEYS = frozenset(
    {
        "start",
        "end",
        "window_start",
        "window_end",
        "started_at",
        "finished_at",
        "detected_at",
        "closed_at",
        "requested_at",
        "at",
    }
)
# Reasons the system gives, kept in the audit trail in English with their values in
# (workflow.change._in_english): read back, each reads in the reader's language.
SYSTEM_REASONS = (
    gettext_noop("a rollback was declared"),
    gettext_noop("a lead withdrew a sign-off"),
    gettext_noop("status changed to %(status)s"),
    gettext_noop("“%(text)s” changed after go-live was approved"),
    gettext_noop("“%(text)s” changed after sign-off"),
    ALL_STEPS_DONE,
    MITIGATED_BY_STEP,
)
# A performance under way keeps a state no item has (workflow.perform).
_PERFORM_STATES: dict[str, Any] = {performs.SENDING: gettext_lazy("sending")}
# Records whose keys are names people wrote (items by their text, a check's options as
# its checks file names them), read as written.
_NAMING_KEYS = frozenset({"items", "options"})
# A record's values read in the order their keys are named above.
_KEY_ORDER = {key: position for position, key in enumerate(_KEY_LABELS)}
_MISSING = object()


def duration_text(delta: timedelta) -> str:
    """A span as a person says it: "2 d 3 h", "4 h 5 min", "12 min", "under a minute"."""
    minutes = max(0, int(delta.total_seconds() // 60))
    days, minutes = divmod(minutes, 24 * 60)
    hours, minutes = divmod(minutes, 60)
    if days:
        return _("%(days)d d %(hours)d h") % {"days": days, "hours": hours}
    if hours:
        return _("%(hours)d h %(minutes)d min") % {"hours": hours, "minutes": minutes}
    if minutes:
        return _("%(minutes)d min") % {"minutes": minutes}
    return _("under a minute")


# The choices whose codes events keep under each key, read in this order: an item's,
# an incident's and a window's states share the key "state".
CODED_KEYS: dict[str, tuple[type[models.TextChoices], ...]] = {
    "status": (ReleaseStatus,),
    "state": (ItemState, IncidentState, WindowState),
    "role": (Role,),
    "owner_role": (Role,),
    "owner": (Role,),
    "severity": (RollbackSeverity,),
    "result": (DeployResult,),
    "outcome": (CheckOutcome,),
}


def code_label(key: str, value: str) -> str | None:
    """The label of a code an event keeps under `key`, or None when it is no code."""
    for choices in CODED_KEYS.get(key, ()):
        if value in choices.values:
            return str(choices(value).label)
    return None


def _reason_pattern(template: str) -> re.Pattern[str]:
    """What `template` reads as with its values in, each value caught by its name."""
    parts = re.split(r"%\((\w+)\)s", template)
    return re.compile(
        "".join(
            re.escape(part) if index % 2 == 0 else f"(?P<{part}>.+)"
            for index, part in enumerate(parts)
        )
    )


_REASON_PATTERNS = [(template, _reason_pattern(template)) for template in SYSTEM_REASONS]


def reason_shown(text: str) -> str:
    """A reason as kept in the audit trail, in the reader's language when the system gave
    it ("a rollback was declared" reads "se declaró un rollback"); a person's as typed."""
    for template, pattern in _REASON_PATTERNS:
        found = pattern.fullmatch(text)
        if found is None:
            continue
        values = found.groupdict()
        if "status" in values:
            # Kept as the English label; reason_text names a status from its code.
            with translation.override("en"):
                codes = {str(label): code for code, label in ReleaseStatus.choices}
            values["status"] = codes.get(values["status"], values["status"])
        return reason_text(template, values)
    return text


def moment_shown(value: str) -> str:
    """A moment kept as ISO 8601, as every page shows a time; as kept if it is none."""
    try:
        return moment(datetime.fromisoformat(value)) or value
    except ValueError:
        return value


def _contact_label(contact: Mapping[str, Any]) -> str:
    """An emergency contact as one line: "DevOps Lead: Dana Ops, +34 600 000 001"."""
    reached = [str(contact[f]) for f in ("name", "phone", "email", "other") if contact.get(f)]
    return f"{contact.get('role') or '∅'}: {', '.join(reached) or '∅'}"


def _record_label(key: str, record: Mapping[str, Any]) -> str:
    """A record an event keeps (a delivery, an override, a step, what a nudge found open)
    in words: "Label: value, …", leaving out what it holds empty."""
    if key == "contacts":
        return _contact_label(record)
    if record.keys() == {"before", "after"}:
        return f"{value_label(key, record['before'])} → {value_label(key, record['after'])}"
    count, first = record.get("count"), record.get("first")
    if key == "open_items" and isinstance(count, int) and isinstance(first, list):
        said = ngettext("%(count)d open item", "%(count)d open items", count) % {"count": count}
        return f"{said}: {value_label(key, first)}" if first else said
    if key in _NAMING_KEYS:
        named = [f"{name}: {value_label(key, kept)}" for name, kept in record.items()]
        return "; ".join(named) or "∅"
    held = [(k, kept) for k, kept in record.items() if kept not in (None, "", [], {})]
    held.sort(key=lambda pair: _KEY_ORDER.get(pair[0], len(_KEY_ORDER)))
    return ", ".join(f"{key_label(k)}: {value_label(k, kept)}" for k, kept in held) or "∅"


def value_label(key: str, value: Any) -> str:
    """A value an event keeps, as its reader reads it: statuses, states, roles and the
    other codes by their labels, moments in the reader's format, a reason the system gave
    in the reader's language, yes or no, lists and records in words (never as JSON),
    anything else as written."""
    if isinstance(value, bool):
        return _("yes") if value else _("no")
    if isinstance(value, str):
        if key in _MOMENT_KEYS and value:
            return moment_shown(value)
        if key == "reason":
            return reason_shown(value) or "∅"
        if key == "state" and value in _PERFORM_STATES:
            return str(_PERFORM_STATES[value])
        return code_label(key, value) or value or "∅"
    if value is None:
        return "∅"
    if isinstance(value, Mapping):
        return _record_label(key, value)
    if isinstance(value, list):
        # Records are written with commas of their own.
        joiner = "; " if any(isinstance(entry, Mapping) for entry in value) else ", "
        return joiner.join(value_label(key, entry) for entry in value) or "∅"
    return str(value)


def labelled(key: str) -> bool:
    """Whether the timeline and the audit page name `key` in words."""
    return key in _KEY_LABELS


def key_label(key: str) -> str:
    return str(_KEY_LABELS.get(key, key))


def changes(before: Any, after: Any) -> list[str]:
    """ "Key: before → after" for each value that differs; a side that is not a mapping
    reads whole."""
    old = before if isinstance(before, Mapping) else {}
    new = after if isinstance(after, Mapping) else {}
    lines = []
    for key in [*old, *(k for k in new if k not in old)]:
        was, now = old.get(key, _MISSING), new.get(key, _MISSING)
        if was == now:
            continue
        if was is _MISSING:
            lines.append(f"{key_label(key)}: {value_label(key, now)}")
        elif now is _MISSING:
            lines.append(f"{key_label(key)}: {value_label(key, was)} → ∅")
        else:
            lines.append(f"{key_label(key)}: {value_label(key, was)} → {value_label(key, now)}")
    for side in (before, after):
        if side not in (None, "", [], {}) and not isinstance(side, Mapping):
            lines.append(value_label("", side))
    return lines


@dataclass(frozen=True)
class Line:
    """One event as the timeline shows it."""

    event: AuditEvent
    who: str
    title: str
    details: tuple[str, ...] = ()

    @property
    def at(self) -> datetime:
        return self.event.created_at


@dataclass(frozen=True)
class Reader:
    """What a line depends on besides its event: who holds which roles on the release
    (to name roles instead of people) and which role owns each item."""

    roles_by_user: Mapping[int, frozenset[str]] = field(default_factory=dict)
    owners: Mapping[str, str] = field(default_factory=dict)
    hides_personal: bool = False
    # Through a share link: the team's notes and evidence links stay with the team.
    shared: bool = False


def reader_for(release: Release, *, hides_personal: bool = False, shared: bool = False) -> Reader:
    """The reader of one release's timeline, with its people's roles and its items'
    owners as they are now."""
    roles_by_user: dict[int, set[str]] = {}
    for user_id, held in Stakeholder.objects.filter(release=release).values_list("user_id", "role"):
        roles_by_user.setdefault(user_id, set()).add(held)
    return Reader(
        roles_by_user={user: frozenset(held) for user, held in roles_by_user.items()},
        owners=dict(release.items.values_list("text", "owner_role")),
        hides_personal=hides_personal,
        shared=shared,
    )


Formatter = Callable[[AuditEvent, Reader], list[str]]


def _get(data: Any, key: str) -> Any:
    return data.get(key) if isinstance(data, Mapping) else None


def _item_subject(event: AuditEvent, reader: Reader) -> str:
    owner = reader.owners.get(event.target)
    if owner in Role.values:
        return f"“{event.target}” ({Role(owner).label})"
    return f"“{event.target}”"


def _item(event: AuditEvent, reader: Reader) -> list[str]:
    lines = [
        _item_subject(event, reader),
        *changes(_only(event.before, "state"), _only(event.after, "state")),
    ]
    reason = _get(event.after, "reason")
    if reason and _get(event.after, "state") in ItemState.needing_reason():
        lines.append(f"{key_label('reason')}: {machine_words(str(reason))}")
    failure = _get(event.after, "check_failure")
    if failure:
        lines.append(f"{key_label('check_failure')}: {machine_words(str(failure))}")
    return lines


def _performed(event: AuditEvent, reader: Reader) -> list[str]:
    """What the app sent for an item and how it ended; to whom and the message ids stay
    with the team."""
    requested = event.action == AuditAction.PERFORM_REQUESTED
    lines = [_item_subject(event, reader)] if requested else _item(event, reader)
    said = event.after if requested else _get(event.after, "performed")
    if isinstance(said, Mapping):
        if said.get("channel"):
            lines.append(_("Channel: %(channel)s") % {"channel": said["channel"]})
        if said.get("recipients") and not reader.shared:
            lines.append(
                _("To: %(recipients)s")
                % {"recipients": ", ".join(str(r) for r in said["recipients"])}
            )
        if said.get("message_ids") and not reader.shared:
            lines.append(
                _("Message id: %(ids)s") % {"ids": ", ".join(str(i) for i in said["message_ids"])}
            )
        if said.get("reason") and event.action != AuditAction.PERFORM_FAILED:
            lines.append(f"{key_label('reason')}: {said['reason']}")
    acknowledged = _get(event.after, "acknowledged")
    if isinstance(acknowledged, Mapping) and acknowledged.get("by"):
        # Whoever said so is the event's actor, named as the line names them.
        who = _who(event, reader) if reader.hides_personal else acknowledged["by"]
        lines.append(_("Ready: %(who)s") % {"who": who})
    return lines


def _only(data: Any, *keys: str) -> dict[str, Any]:
    return {k: data[k] for k in keys if isinstance(data, Mapping) and k in data}


def _annotated(event: AuditEvent, reader: Reader) -> list[str]:
    return [_item_subject(event, reader), *_notes(event, reader)]


def _step_annotated(event: AuditEvent, reader: Reader) -> list[str]:
    return [event.target, *_notes(event, reader)]


def _notes(event: AuditEvent, reader: Reader) -> list[str]:
    """How a note or an evidence link changed: the team's, kept from a share link."""
    if reader.shared:
        return []
    return changes(
        _only(event.before, "note", "evidence_url"), _only(event.after, "note", "evidence_url")
    )


def _overridden(event: AuditEvent, reader: Reader) -> list[str]:
    lines = [_item_subject(event, reader)]
    failure, reason = _get(event.after, "check_failure"), _get(event.after, "reason")
    if failure:
        lines.append(f"{key_label('check_failure')}: {failure}")
    if reason:
        lines.append(f"{key_label('reason')}: {reason}")
    return lines


def _override_cleared(event: AuditEvent, reader: Reader) -> list[str]:
    return [_item_subject(event, reader)]


def _status(event: AuditEvent, reader: Reader) -> list[str]:
    return changes(_only(event.before, "status"), _only(event.after, "status"))


def _created(event: AuditEvent, reader: Reader) -> list[str]:
    template, items = _get(event.after, "template"), _get(event.after, "items")
    if template and isinstance(items, int):
        return [
            ngettext(
                "From the template “%(template)s”, %(count)d item",
                "From the template “%(template)s”, %(count)d items",
                items,
            )
            % {"template": template, "count": items}
        ]
    return []


def _approved(event: AuditEvent, reader: Reader) -> list[str]:
    overrides = _get(event.after, "overrides")
    if isinstance(overrides, list) and overrides:
        return [
            ngettext(
                "Approved over %(count)d failing check",
                "Approved over %(count)d failing checks",
                len(overrides),
            )
            % {"count": len(overrides)}
        ]
    return []


def _reason(event: AuditEvent, reader: Reader) -> list[str]:
    reason = _get(event.after, "reason")
    return [f"{key_label('reason')}: {value_label('reason', reason)}"] if reason else []


def _signoff(event: AuditEvent, reader: Reader) -> list[str]:
    role, _sep, phase = event.target.partition(" / ")
    subject = value_label("role", role) + (f" · {phase}" if phase else "")
    return [subject, *_reason(event, reader)]


def _check_config(event: AuditEvent, reader: Reader) -> list[str]:
    """A check added, changed or retired: its name, and which of its settings changed
    (their values are configuration, read on the Checks page)."""
    old = event.before if isinstance(event.before, Mapping) else {}
    new = event.after if isinstance(event.after, Mapping) else {}
    changed = sorted(k for k in old.keys() & new.keys() if old[k] != new[k] and k != "retired")
    if event.action != AuditAction.CHECK_CHANGED or not changed:
        return [event.target]
    return [event.target, _("Changed: %(fields)s") % {"fields": ", ".join(changed)}]


def _checks_linked(event: AuditEvent, reader: Reader) -> list[str]:
    items = _get(event.after, "items")
    if isinstance(items, Mapping) and items:
        return [
            event.target,
            ngettext(
                "Checks of %(count)d item changed", "Checks of %(count)d items changed", len(items)
            )
            % {"count": len(items)},
        ]
    return [event.target]


def _incident(event: AuditEvent, reader: Reader) -> list[str]:
    state = changes(_only(event.before, "state"), _only(event.after, "state"))
    message = _get(event.after, "message")
    return [*state, *([message] if message else [])]


def _entries(data: Any, key: str) -> list[Mapping[str, Any]]:
    listed = _get(data, key)
    if not isinstance(listed, list):
        return []
    return [entry for entry in listed if isinstance(entry, Mapping)]


def _contact_text(contact: Mapping[str, Any]) -> str:
    return f"{contact.get('role', '')}: {contact.get('name', '')}"


def _contacts_edited(event: AuditEvent, reader: Reader) -> list[str]:
    """Who was added, changed or removed, by role, and how many placeholders are left."""
    old, new = _entries(event.before, "contacts"), _entries(event.after, "contacts")
    gone = [c for c in old if c not in new]
    came = [c for c in new if c not in old]
    changed_roles = {c.get("role") for c in gone} & {c.get("role") for c in came}
    lines = [
        *(_("Added: %(contact)s") % {"contact": _contact_text(c)}
          for c in came if c.get("role") not in changed_roles),
        *(_("Changed: %(contact)s") % {"contact": _contact_text(c)}
          for c in came if c.get("role") in changed_roles),
        *(_("Removed: %(contact)s") % {"contact": _contact_text(c)}
          for c in gone if c.get("role") not in changed_roles),
    ]  # fmt: skip
    fields = ("role", "name", "phone", "email", "other")
    placeholders = sum(
        1
        for c in new
        if EmergencyContact(**{f: str(c.get(f) or "") for f in fields}).has_placeholder()
    )
    if placeholders:
        lines.append(
            ngettext(
                "%(count)d contact still holds a placeholder, which blocks go-live",
                "%(count)d contacts still hold placeholders, which block go-live",
                placeholders,
            )
            % {"count": placeholders}
        )
    return lines


def _plan_edited(event: AuditEvent, reader: Reader) -> list[str]:
    """How many steps, and each new or rewritten step's first line with its owner."""
    old, new = _entries(event.before, "steps"), _entries(event.after, "steps")
    lines = []
    if len(old) != len(new):
        lines.append(_("Steps: %(before)d → %(after)d") % {"before": len(old), "after": len(new)})
    for number, step in enumerate(new, 1):
        if number <= len(old) and old[number - 1] == step:
            continue
        first_line = str(step.get("text") or step.get("commands") or "").split("\n")[0]
        shown = {
            "number": number,
            "text": first_line,
            "owner": value_label("owner_role", step.get("owner")),
        }
        lines.append(_("Step %(number)d: %(text)s (%(owner)s)") % shown)
    if _get(event.before, "intro") != _get(event.after, "intro"):
        lines.append(_("The introduction changed"))
    return lines


def _nudged(event: AuditEvent, reader: Reader) -> list[str]:
    """Whom, and what go-live waited on from them then."""
    lines = [value_label("role", event.target)]
    open_items = _get(event.after, "open_items")
    count = _get(open_items, "count")
    if isinstance(count, int) and count:
        lines.append(
            ngettext("%(count)d open item", "%(count)d open items", count) % {"count": count}
        )
    if _get(event.after, "missing_signoff"):
        lines.append(_("Sign-off missing"))
    return lines


FORMATTERS: dict[str, Formatter] = {
    AuditAction.RELEASE_CREATED: _created,
    AuditAction.RELEASE_STATUS: _status,
    AuditAction.RELEASE_APPROVED: _approved,
    AuditAction.APPROVAL_REVOKED: _reason,
    AuditAction.ITEM_DONE: _item,
    AuditAction.ITEM_REOPENED: _item,
    AuditAction.ITEM_NOT_APPLICABLE: _item,
    AuditAction.ITEM_BLOCKED: _item,
    AuditAction.ITEM_ANNOTATED: _annotated,
    AuditAction.CHECK_PASSED: _item,
    AuditAction.CHECK_FAILED: _item,
    AuditAction.CHECK_NOT_VERIFIED: _item,
    AuditAction.CHECK_OVERRIDDEN: _overridden,
    AuditAction.CHECK_OVERRIDE_CLEARED: _override_cleared,
    AuditAction.CHECK_UNLINKED: _item,
    AuditAction.CHECKS_LINKED: _checks_linked,
    AuditAction.CHECK_ADDED: _check_config,
    AuditAction.CHECK_CHANGED: _check_config,
    AuditAction.CHECK_RETIRED: _check_config,
    AuditAction.PIPELINE_PASSED: _item,
    AuditAction.PIPELINE_FAILED: _item,
    AuditAction.SIGNOFF_SIGNED: _signoff,
    AuditAction.SIGNOFF_WITHDRAWN: _signoff,
    AuditAction.SIGNOFF_REOPENED: _signoff,
    AuditAction.INCIDENT_UPDATE_POSTED: _incident,
    AuditAction.CONTACTS_EDITED: _contacts_edited,
    AuditAction.ROLLBACK_STEP_ANNOTATED: _step_annotated,
    AuditAction.ROLLBACK_PLAN_EDITED: _plan_edited,
    AuditAction.ROLE_NUDGED: _nudged,
    AuditAction.PERFORM_REQUESTED: _performed,
    AuditAction.PERFORM_CONFIRMED: _performed,
    AuditAction.PERFORM_AWAITING: _performed,
    AuditAction.PERFORM_UNCONFIRMED: _performed,
    AuditAction.PERFORM_FAILED: _performed,
    AuditAction.ACKNOWLEDGED: _performed,
}


def _default(event: AuditEvent, reader: Reader) -> list[str]:
    """Any other action: its target and whatever changed, before → after."""
    return [*([event.target] if event.target else []), *changes(event.before, event.after)]


def roles_named(roles: Collection[str]) -> str:
    """A person as a link hiding personal details names them: by their roles on the
    release, or as staff when they hold none."""
    named = [str(role.label) for role in Role if role in roles]
    return ", ".join(named) if named else _("Staff")


def _check_named(label: str) -> str:
    return _("Automated check %(name)s") % {"name": label.removeprefix("check:")}


def by_role(label: str, roles_by_username: Mapping[str, Collection[str]]) -> str:
    """Whoever an actor's label names (actors.Person.label and the others), as a link
    hiding personal details shows them: a person by their roles on the release, a check
    or the system by its own name, a pipeline token as one."""
    username = username_in(label)
    if username is not None:
        return roles_named(roles_by_username.get(username, ()))
    if label.startswith("check:"):
        return _check_named(label)
    # A token's label is whatever staff called it, which may be someone's name.
    return _("Pipeline token") if label.startswith("ci:") else label


def _who(event: AuditEvent, reader: Reader) -> str:
    if event.actor_kind == ActorKind.PERSON and reader.hides_personal:
        return roles_named(reader.roles_by_user.get(event.actor_id or 0, frozenset()))
    # The API's own timeline, read by the team's pipelines, keeps the labels staff gave
    # their tokens; people outside the team read a token as one.
    if event.actor_kind == ActorKind.PIPELINE and reader.hides_personal and reader.shared:
        return by_role(event.actor_label, {})
    if event.actor_kind == ActorKind.CHECK:
        return _check_named(event.actor_label)
    return event.actor_shown


def human_line(event: AuditEvent, reader: Reader | None = None) -> Line:
    """One event as a line in the current language. Never fails on what an event holds:
    an event another version wrote may hold anything."""
    reader = reader or Reader()
    formatter = FORMATTERS.get(event.action, _default)
    try:
        details = formatter(event, reader)
    except (TypeError, ValueError, AttributeError):
        details = _default(event, reader)
    return Line(
        event=event,
        who=_who(event, reader),
        title=AuditAction.label_of(event.action),
        details=tuple(d for d in details if d),
    )


# --- how long each status lasted ---------------------------------------------------------


@dataclass(frozen=True)
class PhaseSpan:
    """The total time a release spent in one status."""

    status: str
    lasted: timedelta
    current: bool

    @property
    def label(self) -> str:
        return str(ReleaseStatus(self.status).label)

    @property
    def lasted_text(self) -> str:
        return duration_text(self.lasted)


def _status_after(event: AuditEvent, status: str) -> str | None:
    """The status `event` moved the release to from `status`, or None."""
    if event.action == AuditAction.RELEASE_STATUS:
        moved = _get(event.after, "status")
        return moved if moved in ReleaseStatus.values else None
    if event.action == AuditAction.RELEASE_APPROVED:
        return ReleaseStatus.APPROVED
    if event.action == AuditAction.APPROVAL_REVOKED and status == ReleaseStatus.APPROVED:
        return ReleaseStatus.IN_PROGRESS
    if event.action in STARTS_WORK and status == ReleaseStatus.PLANNED:
        return ReleaseStatus.IN_PROGRESS
    return None


def phase_spans(
    events: Iterable[AuditEvent], *, created_at: datetime, now: datetime | None = None
) -> list[PhaseSpan]:
    """Time spent in each status, in the order the release first reached them, from its
    events oldest first; the status it is in now counts until `now`."""
    now = now or timezone.now()
    status, since = str(ReleaseStatus.PLANNED), created_at
    totals: dict[str, timedelta] = {}
    for event in events:
        moved = _status_after(event, status)
        if moved is None or moved == status:
            continue
        totals[status] = totals.get(status, timedelta()) + (event.created_at - since)
        status, since = moved, event.created_at
    totals[status] = totals.get(status, timedelta()) + max(timedelta(), now - since)
    return [PhaseSpan(name, lasted, name == status) for name, lasted in totals.items()]


@dataclass(frozen=True)
class ApprovalToDeploy:
    approved_at: datetime
    deployed_at: datetime

    @property
    def lasted_text(self) -> str:
        return duration_text(self.deployed_at - self.approved_at)


def approval_to_deploy(events: Iterable[AuditEvent]) -> ApprovalToDeploy | None:
    """From the approval to the latest deploy it led to, from events oldest first."""
    approved: datetime | None = None
    found: ApprovalToDeploy | None = None
    for event in events:
        if event.action == AuditAction.RELEASE_APPROVED:
            approved = event.created_at
        elif (
            event.action == AuditAction.RELEASE_STATUS
            and _get(event.after, "status") == ReleaseStatus.DEPLOYED
            and approved is not None
        ):
            found = ApprovalToDeploy(approved, event.created_at)
    return found


def role_filter(release: Release, role: str) -> Q:
    """What concerns one role: what its people did, and what happened to its items and
    its sign-offs."""
    people = Stakeholder.objects.filter(release=release, role=role).values("user_id")
    texts = release.items.filter(owner_role=role).values("text")
    return (
        Q(actor_kind=ActorKind.PERSON, actor_id__in=people)
        | Q(action__in=ITEM_ACTIONS, target__in=texts)
        | Q(action__in=SIGNOFF_ACTIONS, target__startswith=f"{role} / ")
    )
