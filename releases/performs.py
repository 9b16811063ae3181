"""What an item may ask the app to do for it: the words of `perform=` in a checklist and
of `action =` in a checks file's `[[perform]]` table. No Django here: the Markdown reader
validates with it too.

    announce:people          e-mail everyone on the release (also announce:stakeholders)
    announce:CHANNEL         post to the notifications channel of that name
    acknowledge:support      e-mail each support person a link to say "I'm ready"
    retrospective            e-mail everyone on the release a calendar invitation
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final

ANNOUNCE: Final = "announce"
ACKNOWLEDGE: Final = "acknowledge"
RETROSPECTIVE: Final = "retrospective"
# Audiences of `announce:` that are the release's people rather than a channel's name.
PEOPLE: Final = ("people", "stakeholders")
SUPPORT: Final = "support"
# A channel's name, as the notifications file allows it.
_CHANNEL_RE: Final = re.compile(r"[a-z0-9][a-z0-9._-]{0,63}")
# Where the app's latest performance of an item stands (ReleaseItem.performed["state"]):
# its deliveries under way; all delivered and support yet to say "I'm ready"; accepted by
# a Teams Workflow, which confirms nothing; confirmed; failed for good.
SENDING: Final = "sending"
AWAITING: Final = "awaiting"
UNCONFIRMED: Final = "unconfirmed"
DONE: Final = "done"
FAILED: Final = "failed"
# The actions as they are written, in no language: quoted inside sentences of any.
EXPECTED: Final = (
    "announce:people, announce:stakeholders, announce:CHANNEL, acknowledge:support, retrospective"
)


@dataclass(frozen=True)
class Perform:
    action: str
    # "people", a channel's name, "support", or "" for a retrospective.
    audience: str = ""

    @property
    def to_people(self) -> bool:
        """Sent by e-mail to persons, not posted to a channel."""
        return self.action != ANNOUNCE or self.audience in PEOPLE

    @property
    def channel(self) -> str:
        return "" if self.to_people else self.audience


def parse(word: str) -> Perform | None:
    """The action `word` names; None when it names none (the caller says what is wrong,
    with EXPECTED)."""
    action, colon, audience = word.partition(":")
    if action == RETROSPECTIVE and not colon:
        return Perform(RETROSPECTIVE)
    if action == ACKNOWLEDGE and audience == SUPPORT:
        return Perform(ACKNOWLEDGE, SUPPORT)
    if action == ANNOUNCE and audience in PEOPLE:
        return Perform(ANNOUNCE, "people")
    if action == ANNOUNCE and _CHANNEL_RE.fullmatch(audience):
        return Perform(ANNOUNCE, audience)
    return None
