"""Who acts on a release: a person, an automated check, a pipeline token, or the system
(a management command, which must say what it is).

Every workflow operation takes one. releases.policy decides what each may do from the
`Who` built here, and the audit trail records the kind and the label.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar

from .models import CLOSED_STATUSES, ActorKind, Release, SignOff, Stakeholder
from .policy import Who, is_read_only

if TYPE_CHECKING:
    from django.contrib.auth.models import User


@dataclass(frozen=True)
class Person:
    user: User
    ip: str | None = None
    kind: ClassVar[ActorKind] = ActorKind.PERSON

    @property
    def label(self) -> str:
        full = self.user.get_full_name()
        name = self.user.get_username()
        return f"{name} ({full})" if full else name


@dataclass(frozen=True)
class CheckActor:
    """An automated check reporting a verdict from one of its runs."""

    name: str
    run_id: int | None = None
    kind: ClassVar[ActorKind] = ActorKind.CHECK
    ip: ClassVar[None] = None

    @property
    def label(self) -> str:
        return f"check:{self.name}"


@dataclass(frozen=True)
class PipelineActor:
    """A CI job holding a pipeline token: scoped to one role, and to one release or to
    the releases a version pattern matches."""

    token_label: str
    role: str
    token_id: int
    ip: str | None = None
    kind: ClassVar[ActorKind] = ActorKind.PIPELINE

    @property
    def label(self) -> str:
        return f"ci:{self.token_label}"


@dataclass(frozen=True)
class SystemActor:
    """The server acting on its operator's behalf, e.g. "manage.py load_demo". A name in
    words is marked with gettext_noop where it is made: pages read it translated
    (models.actor_shown)."""

    what: str
    kind: ClassVar[ActorKind] = ActorKind.SYSTEM
    ip: ClassVar[None] = None

    def __post_init__(self) -> None:
        if not self.what.strip():
            raise ValueError("a system actor must say what it is")

    @property
    def label(self) -> str:
        return self.what


Actor = Person | CheckActor | PipelineActor | SystemActor
# What a username may hold (django.contrib.auth.validators.UnicodeUsernameValidator).
_USERNAME = re.compile(r"[\w.@+-]+")


def username_in(label: str) -> str | None:
    """The username a label kept for an actor starts with (Person.label); None for a
    check's, a pipeline token's or the system's, whose colon or space no username holds."""
    head = label.split(" (", 1)[0]
    return head if _USERNAME.fullmatch(head) else None


def roles_on(release: Release | int, user: User | int) -> frozenset[str]:
    release_id = release if isinstance(release, int) else release.pk
    user_id = user if isinstance(user, int) else user.pk
    return frozenset(
        Stakeholder.objects.filter(release_id=release_id, user_id=user_id).values_list(
            "role", flat=True
        )
    )


@functools.lru_cache(maxsize=4096)
def standing(user_id: int, release_id: int, revision: int) -> tuple[frozenset[str], bool]:
    """A person's roles on a release and whether they signed any of its sign-offs, as of
    one revision. Every change to either gives the release a new revision (assignments,
    sign-offs, an account deactivated or deleted), so a page request or a stream asking
    again at the same revision is answered without the two queries."""
    return (
        roles_on(release_id, user_id),
        SignOff.objects.filter(release_id=release_id, signed_by_id=user_id).exists(),
    )


def who_on(actor: Actor, release: Release) -> Who:
    closed = release.status in CLOSED_STATUSES
    if isinstance(actor, Person):
        roles = roles_on(release, actor.user)
        staff = actor.user.is_staff
        watching = is_read_only(roles, is_staff=staff)
        return Who(ActorKind.PERSON, roles, staff, read_only=watching, closed=closed)
    if isinstance(actor, CheckActor):
        return Who(ActorKind.CHECK, check=actor.name, closed=closed)
    if isinstance(actor, PipelineActor):
        return Who(ActorKind.PIPELINE, frozenset({actor.role}), closed=closed)
    return Who(ActorKind.SYSTEM, closed=closed)


def who_anywhere(actor: Actor) -> Who:
    """The actor before any release is involved (creating one, importing a template)."""
    if isinstance(actor, Person):
        return Who(actor.kind, is_staff=actor.user.is_staff)
    return Who(actor.kind)
