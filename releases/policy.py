"""Who may do what: every permission rule of a release, as pure functions.

The workflow calls these to enforce a rule; the pages call the very same functions
(through board.Viewer) to decide which controls to enable, so the interface cannot
promise what the server refuses. A new rule is one function here and one row in the
table of tests/releases/test_policy.py.

Rules answer with an Access: DENIED, ALLOWED, or OVERRIDE (staff going past a rule
written for someone else, which the audit trail marks as such). A machine passes only
the rules written for it: a check settles only the items that name it, a pipeline token
only the items its role owns and the release day's rules of its role (the deploy, the
rollback, incident updates, the window), and the system (a management command) may set a release
up but never decide on one.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from enum import Enum

from django.utils.translation import gettext as _

from .models import ActorKind, ReleaseStatus, Role


class Access(Enum):
    DENIED = "denied"
    ALLOWED = "allowed"
    OVERRIDE = "override"

    def __bool__(self) -> bool:
        return self is not Access.DENIED


@dataclass(frozen=True)
class Who:
    """The acting party as the rules see it on one release."""

    kind: ActorKind
    roles: frozenset[str] = frozenset()
    is_staff: bool = False
    # Watching only: a support-only person, a share link, anyone on the status page.
    read_only: bool = False
    # A check's own name: the items naming it are the only ones it may settle.
    check: str = ""
    # The release is closed (cancelled): nobody changes it until staff reopen it.
    closed: bool = False

    @property
    def is_person(self) -> bool:
        return self.kind == ActorKind.PERSON


def is_read_only(roles: Collection[str], *, is_staff: bool) -> bool:
    """Support sees everything and changes nothing."""
    return not is_staff and set(roles) <= {Role.SUPPORT}


def _staff_override(who: Who) -> Access:
    return (
        Access.OVERRIDE if who.is_person and who.is_staff and not who.read_only else Access.DENIED
    )


def may_change_item(who: Who, *, owner_role: str, checks: Collection[str] = ()) -> Access:
    """Tick, untick, N/A, block, note, evidence, or a check's verdict."""
    if who.read_only or who.closed:
        return Access.DENIED
    if who.kind == ActorKind.CHECK:
        return Access.ALLOWED if who.check and who.check in checks else Access.DENIED
    if who.kind in (ActorKind.PERSON, ActorKind.PIPELINE) and (
        owner_role in who.roles and owner_role != Role.SUPPORT
    ):
        return Access.ALLOWED
    return _staff_override(who)


def may_perform(who: Who, *, owner_role: str) -> Access:
    """Press "perform" on an item the app performs (announce, ask support, invite to the
    retrospective): its owner role's people or the product owner, who speaks for the
    release; staff may for any item. Nothing is ever sent that no person pressed for."""
    if who.read_only or who.closed or not who.is_person:
        return Access.DENIED
    if (owner_role in who.roles and owner_role != Role.SUPPORT) or Role.PRODUCT_OWNER in who.roles:
        return Access.ALLOWED
    return _staff_override(who)


def may_settle_performance(who: Who, *, sending: bool) -> Access:
    """Record how the delivery of a performed item ended: the system alone, and only
    while the item is being sent (the deliveries' worker). On a cancelled release too:
    what was sent went out all the same, and the item must not read "sending" for ever
    (it takes no verdict there: workflow.settle_performance)."""
    if who.kind != ActorKind.SYSTEM:
        return Access.DENIED
    return Access.ALLOWED if sending else Access.DENIED


def may_acknowledge(who: Who) -> Access:
    """Say "I'm ready" when asked to acknowledge a release: a person in its support
    role, the one thing support does on a board they otherwise only watch."""
    if who.closed or not who.is_person:
        return Access.DENIED
    return Access.ALLOWED if Role.SUPPORT in who.roles else Access.DENIED


def may_override_check(who: Who, *, owner_role: str) -> Access:
    """Tick an item over its failing automated check, with a reason: a person's call,
    the owner's (staff may for any role). No machine overrides a machine."""
    if who.read_only or who.closed or not who.is_person:
        return Access.DENIED
    if owner_role in who.roles and owner_role != Role.SUPPORT:
        return Access.ALLOWED
    return _staff_override(who)


def may_sign_off(who: Who, *, role: str) -> Access:
    """A lead signs off their own role's items; staff may for any lead."""
    if role not in Role.leads() or who.read_only or who.closed or not who.is_person:
        return Access.DENIED
    return Access.ALLOWED if role in who.roles else _staff_override(who)


def may_withdraw(who: Who, *, signed_it: bool) -> Access:
    """Only whoever signed withdraws a sign-off; staff may for anyone."""
    if who.read_only or who.closed or not who.is_person:
        return Access.DENIED
    return Access.ALLOWED if signed_it else _staff_override(who)


def may_approve(who: Who) -> Access:
    """Approve go-live, or revoke the approval: the product owner's decision."""
    if who.read_only or who.closed or not who.is_person:
        return Access.DENIED
    return Access.ALLOWED if Role.PRODUCT_OWNER in who.roles else _staff_override(who)


def may_nudge(who: Who) -> Access:
    """Remind a role's people, by e-mail and the channels, that go-live waits on them:
    the product owner, who waits on every role, and staff. Leads work side by side and
    may not chase each other; support and machines only watch."""
    if who.read_only or who.closed or not who.is_person:
        return Access.DENIED
    if Role.PRODUCT_OWNER in who.roles or who.is_staff:
        return Access.ALLOWED
    return Access.DENIED


def may_edit_contacts(who: Who) -> Access:
    """The product owner keeps the emergency contacts; the system may fill them in when
    it sets a release up (the demo)."""
    if who.closed:
        return Access.DENIED
    if who.kind == ActorKind.SYSTEM:
        return Access.ALLOWED
    if who.read_only or not who.is_person:
        return Access.DENIED
    return Access.ALLOWED if Role.PRODUCT_OWNER in who.roles else _staff_override(who)


def may_edit_release_plan(who: Who) -> Access:
    """Rewrite the emergency contacts or the rollback plan as a whole (their editor):
    staff, who set a release up, as they would in the admin. A closed release takes no
    change until reopened."""
    if who.closed or who.read_only or not who.is_person:
        return Access.DENIED
    return Access.ALLOWED if who.is_staff else Access.DENIED


def may_set_status(who: Who, *, status: str) -> Access:
    """The product owner moves a release along; DevOps may also record that it was
    deployed or rolled back. A closed release only staff reopen."""
    if who.read_only or not who.is_person:
        return Access.DENIED
    if who.closed:
        return _staff_override(who) if status == ReleaseStatus.IN_PROGRESS else Access.DENIED
    if Role.PRODUCT_OWNER in who.roles or (
        Role.DEVOPS in who.roles and status in (ReleaseStatus.DEPLOYED, ReleaseStatus.ROLLED_BACK)
    ):
        return Access.ALLOWED
    return _staff_override(who)


def may_post_update(who: Who) -> Access:
    """Tell people outside the team where an incident stands: the product owner, who
    speaks for the release, and DevOps, who run the deploy and a rollback; a pipeline
    token of either role speaks for its role."""
    if who.read_only or who.closed or not _person_or_pipeline(who):
        return Access.DENIED
    if Role.PRODUCT_OWNER in who.roles or Role.DEVOPS in who.roles:
        return Access.ALLOWED
    return _staff_override(who)


def may_run_checks(who: Who) -> Access:
    """Ask the workers to verify now: anyone working on the release. A run changes
    nothing by itself; the checks settle only the items that name them."""
    if who.read_only or who.closed or not who.is_person:
        return Access.DENIED
    return Access.ALLOWED if who.roles else _staff_override(who)


def may_manage(who: Who) -> Access:
    """Create releases, assign people, make share links, import checklists: staff, and
    the system (a management command, run by whoever operates the server)."""
    if who.kind == ActorKind.SYSTEM:
        return Access.ALLOWED
    return Access.ALLOWED if who.is_person and who.is_staff else Access.DENIED


def may_manage_window(who: Who) -> Access:
    """Schedule, change, extend, complete or cancel the maintenance window: DevOps runs
    the deploy inside it and the product owner answers for the release day to the
    business, so either may, in person or through a pipeline token of their role; staff
    as any release field. The other leads, support and checks follow it (beat records
    the start and the end, outside any rule)."""
    if who.read_only or who.closed or not _person_or_pipeline(who):
        return Access.DENIED
    if who.is_staff or Role.DEVOPS in who.roles or Role.PRODUCT_OWNER in who.roles:
        return Access.ALLOWED
    return Access.DENIED


def personal_obstacles(
    reasons: list[str],
    *,
    already_approved: bool,
    may_approve: bool,
    signed_off: bool,
    two_person_rule: bool,
) -> list[str]:
    """The release's blocking reasons plus what stops one person in particular. Takes
    flags rather than a person so live pages can render it once per kind of viewer."""
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


def _person_or_pipeline(who: Who) -> bool:
    """The release day's rules are written for roles, and a pipeline token holds one: a
    deploy job acts as the role it was made for. Checks and the system hold none."""
    return who.kind in (ActorKind.PERSON, ActorKind.PIPELINE)


def _devops_or_po(who: Who) -> Access:
    if who.read_only or not _person_or_pipeline(who):
        return Access.DENIED
    if Role.DEVOPS in who.roles or Role.PRODUCT_OWNER in who.roles:
        return Access.ALLOWED
    return _staff_override(who)


def may_record_deploy(who: Who) -> Access:
    """Record that the deploy started or finished: DevOps runs it, the product owner
    may say so too, and so may a pipeline token of either role (the deploy job)."""
    if who.closed:
        return Access.DENIED
    return _devops_or_po(who)


def may_declare_rollback(who: Who) -> Access:
    """Declare a rollback, mark it mitigated or resolved, close it with its cause:
    DevOps and the product owner, or a pipeline token of either role. Not bound to
    `closed`: a rolled-back release takes no checklist change, but its rollback is
    worked on until closed (the workflow checks the rollback's own state)."""
    return _devops_or_po(who)


def may_tick_rollback_step(who: Who, *, owner_role: str) -> Access:
    """Tick a step of a declared rollback, or note on it: the step's owner role, in
    person or through a pipeline token of that role."""
    if who.read_only or not _person_or_pipeline(who):
        return Access.DENIED
    if owner_role in who.roles and owner_role != Role.SUPPORT:
        return Access.ALLOWED
    return _staff_override(who)
