"""Slack incoming webhooks (https://api.slack.com/messaging/webhooks): a JSON message
with `text`, the fallback notifications and screen readers show, and `blocks`, what the
channel shows (https://api.slack.com/reference/block-kit/blocks).

Slack reads &, < and > as control characters in text: they are escaped as its docs say
(https://api.slack.com/reference/surfaces/formatting#escaping), so text people typed
cannot turn into a link or a mention. Within its limits: at most 50 blocks, a header's
text at most 150 characters, a section's at most 3000; longer text is cut where no
escape is split.
"""

from __future__ import annotations

import json
import re
from typing import Any

from django.conf import settings
from django.utils import translation
from django.utils.translation import gettext as _

from .models import Event
from .wording import SHOWN, link_of, title_of

MAX_BLOCKS = 50
HEADER_MAX = 150
SECTION_MAX = 3000
TEXT_MAX = 3000
_CUT_ESCAPE = re.compile(r"&[a-z]{0,3}$")


def escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def clip(text: str, limit: int) -> str:
    """Escaped text cut to `limit` characters without splitting an escape."""
    if len(text) <= limit:
        return text
    return _CUT_ESCAPE.sub("", text[: limit - 1]) + "…"


def message(event: Event) -> tuple[bytes, dict[str, str]]:
    built = blocks_for(event)
    return json.dumps(built, ensure_ascii=False).encode(), {"Content-Type": "application/json"}


def blocks_for(event: Event) -> dict[str, Any]:
    """The message in the site's language (LANGUAGE_CODE): a channel is read by a team,
    not by one person whose language we know."""
    with translation.override(settings.LANGUAGE_CODE):
        return _blocks(event)


def _blocks(event: Event) -> dict[str, Any]:
    data = event.data
    release = data.get("release", {})
    title = title_of(event)
    by = _("by %(actor)s") % {"actor": data.get("actor", {}).get("label", "")}
    details = [
        f"*{escape(key)}*: {escape(str(data[key]))}"
        for key in SHOWN
        if data.get(key) not in (None, "", [])
    ]
    body = "\n".join([escape(" — ".join(filter(None, [release.get("title"), by]))), *details])
    url, label = link_of(event)
    link = f"<{escape(url)}|{escape(label)}>"
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": {"type": "plain_text", "text": clip(title, HEADER_MAX)}},
        {"type": "section", "text": {"type": "mrkdwn", "text": clip(body, SECTION_MAX)}},
        {"type": "section", "text": {"type": "mrkdwn", "text": clip(link, SECTION_MAX)}},
    ]
    return {
        "text": clip(escape(f"{title} ({by})"), TEXT_MAX),
        "blocks": blocks[:MAX_BLOCKS],
    }
