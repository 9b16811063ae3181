"""The one shape every change to a release takes, and the only writer of audit events.

`_changing` locks the release row inside a transaction (two people acting at once queue
rather than overwrite), hands the operation a `_Change` to record its audit events on,
then bumps the release's revision and publishes a live update once the transaction
commits. Every operation in this package runs inside it.
"""

from __future__ import annotations

import ipaddress
import re
import unicodedata
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, TypeAlias
from urllib.parse import SplitResult, urlsplit

from django.core.exceptions import PermissionDenied
from django.core.validators import URLValidator
from django.db import transaction
from django.utils import timezone, translation
from django.utils.translation import gettext as _

from .. import markdown as md
from .. import notify, policy
from ..actors import Actor, Person, who_anywhere, who_on
from ..models import (
    CLOSED_STATUSES,
    AuditAction,
    AuditEvent,
    Release,
    ReleaseItem,
    ReleaseStatus,
    reason_text,
)

if TYPE_CHECKING:
    from django.contrib.auth.models import User


class WorkflowError(Exception):
    """A rule said no; the message is meant for the person who tried."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class Conflict(WorkflowError):
    """The edit was based on a stale view of the item."""


# A person may be passed as their account; `ip` then says where they acted from.
By: TypeAlias = "Actor | User"


def as_actor(by: By, ip: str | None = None) -> Actor:
    if isinstance(by, Actor):
        return by
    return Person(by, ip)


def closed_refusal(release: Release) -> str:
    """Why a closed release refuses a change, as whoever tried reads it."""
    return _("The release is %(status)s: it accepts no change until staff reopen it.") % {
        "status": str(ReleaseStatus(release.status).label).lower()
    }


@dataclass
class _Change:
    release: Release | None
    actor: Actor
    override: bool = False
    events: list[dict[str, Any]] = field(default_factory=list)
    # A change pages show that is not worth an audit event (a check result that leaves
    # the verdict as it was): it still gets a new revision.
    shown: bool = False
    # What one transaction already looked up about the locked release and may ask again
    # for each of many items (its open approval, its open sign-offs): nobody else can
    # change them while the lock is held.
    looked_up: dict[Any, Any] = field(default_factory=dict)

    @property
    def on(self) -> Release:
        """The locked release (every operation but a template import has one)."""
        assert self.release is not None
        return self.release

    def audit(
        self,
        action: AuditAction,
        target: str = "",
        before: Any = None,
        after: Any = None,
        override: bool | None = None,
    ) -> None:
        self.events.append(
            {
                "by": self.actor,
                "action": action,
                "target": target[:500],
                "before": before or {},
                "after": after or {},
                "override": self.override if override is None else override,
            }
        )

    def require(self, access: policy.Access, refusal: str) -> None:
        """Stop unless the policy allowed it; an override is remembered for the audit."""
        if not access and self.release is not None and self.release.status in CLOSED_STATUSES:
            raise WorkflowError(closed_refusal(self.release))
        if not access:
            raise PermissionDenied(refusal)
        if access is policy.Access.OVERRIDE:
            self.override = True


# What apps built on releases write in the transaction of every change, from its audit
# events (the notifications outbox: what people are told commits with the change, or
# not at all). Each registers in its AppConfig.ready; releases knows none of them.
ChangeWriter = Callable[[Release | None, Sequence[Mapping[str, Any]], datetime], None]
_writers: list[ChangeWriter] = []


def write_with_every_change(writer: ChangeWriter) -> None:
    """Have `writer(release, audit_events, now)` called inside every change's
    transaction, after its audit events are written."""
    if writer not in _writers:
        _writers.append(writer)


@contextmanager
def _changing(release_id: int | None, actor: Actor, *, shown: bool = True) -> Iterator[_Change]:
    """The one transaction shape every operation shares, and the one writer of audit
    events. Without a release (a template import) nothing is locked or published; a
    change no page shows (a share link) is audited without a new revision."""
    with transaction.atomic():
        release = (
            Release.objects.select_for_update().get(pk=release_id)
            if release_id is not None
            else None
        )
        change = _Change(release=release, actor=actor)
        yield change
        if change.events:
            _write_audit(release, change.events)
        if release is None or not (shown and (change.events or change.shown)):
            return
        release.revision += 1
        Release.objects.filter(pk=release.pk).update(
            revision=release.revision, status=release.status
        )
        release_pk, revision = release.pk, release.revision
        transaction.on_commit(lambda: notify.publish(release_pk, revision))


@contextmanager
def holding(release_id: int) -> Iterator[bool]:
    """A transaction holding the release lock if no one else holds it (True), for a
    caller that gathers its changes under it: it sees what was committed before, and
    the operations it runs inside take the lock again at no cost and commit together.
    False, at once, when another transaction holds it: waiting would keep a database
    connection busy doing nothing."""
    with transaction.atomic():
        held = (
            Release.objects.select_for_update(skip_locked=True)
            .filter(pk=release_id)
            .values_list("pk", flat=True)
            .first()
        )
        yield held is not None


def _write_audit(release: Release | None, events: list[dict[str, Any]]) -> None:
    now = timezone.now()
    AuditEvent.objects.bulk_create([_audit_event(release, now, **event) for event in events])
    for writer in _writers:
        writer(release, events, now)


def _audit_event(release: Release | None, now: datetime, by: Actor, **fields: Any) -> AuditEvent:
    return AuditEvent(
        release=release,
        actor=by.user if isinstance(by, Person) else None,
        actor_label=by.label[:200],
        actor_kind=by.kind,
        source_ip=by.ip,
        created_at=now,
        **fields,
    )


def _require_manager(actor: Actor, release: Release | None = None) -> None:
    who = who_on(actor, release) if release is not None else who_anywhere(actor)
    if not policy.may_manage(who):
        raise PermissionDenied(_("Only staff can do this."))


# Drawn as nothing: whitespace, controls and the format characters (zero-width spaces and
# joiners, the word joiner, the byte-order mark, bidirectional controls) by category; by
# name, the rest of Unicode's default-ignorable characters, which a page draws as nothing
# (fillers, the grapheme joiner, variation selectors), and the blank Braille cell.
_UNSEEN_CATEGORIES = frozenset({"Cc", "Cf", "Zs", "Zl", "Zp"})
_UNSEEN = frozenset(
    "\u034f\u115f\u1160\u17b4\u17b5\u180b\u180c\u180d\u180f\u2800\u3164\uffa0"
    + "".join(map(chr, range(0xFE00, 0xFE10)))
    + "".join(map(chr, range(0xE0100, 0xE01F0)))
)


def says_nothing(text: str) -> bool:
    """Whether `text` shows nothing to read: a reason or a message made only of such
    characters is as blank as an empty one, though `str.strip` leaves it."""
    return all(
        char.isspace() or char in _UNSEEN or unicodedata.category(char) in _UNSEEN_CATEGORIES
        for char in text
    )


def trimmed(text: str) -> str:
    """What a person typed without the whitespace around it, or "" when it says nothing:
    a required reason is then refused as a blank one is, and an optional one kept as none."""
    text = text.strip()
    return "" if says_nothing(text) else text


def visible_text(text: str, what: str) -> str:
    """Text people type, refused when it holds invisible bidirectional controls, which
    can make it read on the page differently from what it is, or when it is made only of
    invisible characters: a title or a name that shows nothing."""
    if text.strip() and says_nothing(text):
        raise WorkflowError(
            _("%(what)s holds only invisible characters; write something that can be read.")
            % {"what": what}
        )
    hidden = md.bidi_controls(text)
    if hidden:
        raise WorkflowError(
            _(
                "%(what)s contains invisible bidirectional control characters (%(chars)s), "
                "which can make it read differently from what it is; remove them."
            )
            % {"what": what, "chars": ", ".join(hidden)}
        )
    return text


# A host name as Django's URLValidator reads one, or a single name without a domain,
# which that validator refuses: a CI server on the team's network is linked to as its
# people reach it (http://jenkins/job/1).
_HOST_NAME = re.compile(
    URLValidator.hostname_re + "(?:" + URLValidator.domain_re + URLValidator.tld_re + ")?",
    re.IGNORECASE,
)


def _is_host(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return _HOST_NAME.fullmatch(host) is not None
    return True


def _web_link(url: str) -> SplitResult | None:
    """The link's parts, or None unless it is an http:// or https:// link to a host, by
    name or address, holding no whitespace or control characters."""
    # Asked before splitting, which drops tabs and line breaks wherever they are.
    if md.blank_or_control(url) is not None:
        return None
    try:
        parts = urlsplit(url)
        # Read only when asked for: a port that is no number up to 65535 raises then.
        parts.port  # noqa: B018
    except ValueError:
        return None
    if parts.scheme not in ("http", "https") or not _is_host(parts.hostname or ""):
        return None
    return parts


def checked_link(url: str, what: str) -> str:
    """`url` without the whitespace around it ("" when there is none), refused unless it
    is an http:// or https:// link to a host, by name or address, holding no whitespace,
    control characters or credentials. `what` names the link in the refusal."""
    url = url.strip()
    if not url:
        return url
    parts = _web_link(url)
    if parts is None:
        raise WorkflowError(_("%(what)s must be an http(s) URL.") % {"what": what})
    if parts.username is not None or parts.password is not None:
        # Pages and exports show the link as it is written.
        raise WorkflowError(
            _(
                "%(what)s must not hold credentials (user:password@): everyone who reads "
                "the release sees it."
            )
            % {"what": what}
        )
    return url


def refuse_unseen_note(note: str) -> None:
    """A note of only invisible characters is refused rather than kept as empty: it
    would remove the note without anyone seeing why."""
    if note.strip() and says_nothing(note):
        raise WorkflowError(
            _(
                "The note holds only invisible characters, so it would show nothing: write "
                "something that can be read, or empty the field to remove the note."
            )
        )


class _Tried(Exception):
    """Ends a trial run of an operation, taking back all it wrote."""


def refusal_of(operation: Callable[[], object]) -> str | None:
    """Why `operation` would be refused now, or None: it is run, then rolled back, so a
    page asking "are you sure?" asks only what can be done. What it would publish or
    send waits for a commit, so goes with the rollback."""
    try:
        with transaction.atomic():
            operation()
            raise _Tried
    except _Tried:
        return None
    except WorkflowError as error:
        return error.message


def _validate_evidence(url: str) -> str:
    url = url.strip()
    limit = ReleaseItem._meta.get_field("evidence_url").max_length
    assert limit is not None  # a URLField always has one
    if len(url) > limit:
        raise WorkflowError(
            _("The evidence link is longer than %(limit)d characters.") % {"limit": limit}
        )
    # A link shows its text: "run/\u202e1gpj.exe" would read as "run/exe.jpg1".
    visible_text(url, _("The evidence link"))
    return checked_link(url, _("The evidence link"))


def _in_english(template: str, args: dict[str, Any]) -> str:
    # The audit trail reads the same whoever acted and whatever their language.
    with translation.override("en"):
        return reason_text(template, args)


@contextmanager
def managing(release: Release | None, *, by: By, ip: str | None = None) -> Iterator[_Change]:
    """A staff change to rows that apps built on releases keep about one, or with None
    about all of them (the checks app's pipeline tokens): under the release lock if there
    is one, audited through `change.audit`, and not shown on the board, so no new
    revision."""
    actor = as_actor(by, ip)
    _require_manager(actor, release)
    with _changing(release.pk if release is not None else None, actor, shown=False) as change:
        yield change
