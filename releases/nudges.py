"""What each role still owes before go-live may be approved, and when a role may be
nudged about it.

Read the way models.blocking_reasons reads the release: required items before the gate
not done or N/A, and leads' phases before the gate without a sign-off. The go/no-go panel
lists it with a nudge beside each role (releases.board), and workflow.nudge_role sends
the same, so the panel never offers a nudge the server refuses for want of work.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from .models import ItemState, ReleaseItem, Role, SignOff

# A role is nudged at most once in this long: the people of a role have work to do, and
# a second mail a minute later only teaches them to ignore the first.
NUDGE_INTERVAL = timedelta(minutes=10)
# The open items a nudge names; the rest are counted.
NUDGE_ITEMS_NAMED = 5

_ROLE_ORDER = {role: index for index, role in enumerate(Role.values)}


@dataclass
class RoleWork:
    role: str
    # Texts of the role's open required items before the gate, in checklist order.
    open_items: list[str] = field(default_factory=list)
    # Phases whose sign-off by this role go-live still waits for.
    unsigned_phases: list[str] = field(default_factory=list)

    @property
    def missing_signoff(self) -> bool:
        return bool(self.unsigned_phases)

    @property
    def label(self) -> str:
        return str(Role(self.role).label)

    def payload(self) -> dict[str, object]:
        """What a nudge records and tells: `open_items` counted, the first few named."""
        return {
            "role": self.role,
            "open_items": {
                "count": len(self.open_items),
                "first": self.open_items[:NUDGE_ITEMS_NAMED],
            },
            "missing_signoff": self.missing_signoff,
        }


def work_by_role(items: Iterable[ReleaseItem], signoffs: Iterable[SignOff]) -> list[RoleWork]:
    """Every role with work left before the gate, in Role order. `items`: all the
    release's items in checklist order; `signoffs`: its sign-offs, reopened ones too."""
    signed = {(s.role, s.phase) for s in signoffs if s.reopened_at is None}
    settled = ItemState.settled()
    work: dict[str, RoleWork] = {}
    needed: dict[tuple[str, str], None] = {}
    for entry in items:
        if not entry.before_gate:
            continue
        if entry.required and entry.state not in settled:
            work.setdefault(entry.owner_role, RoleWork(entry.owner_role)).open_items.append(
                entry.text
            )
        if entry.owner_role in Role.leads():
            needed.setdefault((entry.owner_role, entry.phase), None)
    for role, phase in needed:
        if (role, phase) not in signed:
            work.setdefault(role, RoleWork(role)).unsigned_phases.append(phase)
    return sorted(work.values(), key=lambda found: _ROLE_ORDER[found.role])


def next_nudge_at(last_nudged_at: datetime | None) -> datetime | None:
    """When a role last nudged at `last_nudged_at` may be nudged again."""
    return None if last_nudged_at is None else last_nudged_at + NUDGE_INTERVAL
