"""Microsoft Teams Workflows webhooks: the "Post to a channel when a webhook request is
received" flow (https://learn.microsoft.com/en-us/connectors/teams/#microsoft-teams-webhook),
which replaced the Office 365 connectors Microsoft retired. The body is a message
envelope holding one Adaptive Card 1.4 (https://adaptivecards.io/explorer/): TextBlocks
for the title, the release, who and when, and the event's details, and an Action.OpenUrl
to the release.

A flow answers 202 Accepted as soon as it is triggered, before it posts: that answer
says the Workflow took the message, not that the channel shows it (delivery records it
as accepted, not confirmed).

Teams refuses a message over about 28 KB, counting every part of the card
(the known limitations in https://learn.microsoft.com/en-us/connectors/teams/);
the body is kept well within that, the longest detail cut first. TextBlocks read a subset
of Markdown and HTML entities: what people typed is escaped so that it cannot turn into
a link, a mention or formatting.
"""

from __future__ import annotations

import json
import re
from typing import Any
from urllib.parse import urlsplit

from django.conf import settings
from django.utils import translation
from django.utils.translation import gettext as _
from django.utils.translation import gettext_noop

from .models import Event
from .wording import SHOWN, link_of, title_of

# Under Microsoft's ~28 KB, with room for the flow's own wrapping of the card.
MAX_BYTES = 20_000
TITLE_MAX = 200
LINE_MAX = 500
DETAIL_MAX = 3000
CARD_VERSION = "1.4"
CARD_SCHEMA = "http://adaptivecards.io/schemas/adaptive-card.json"
CONTENT_TYPE = "application/vnd.microsoft.card.adaptive"
_MARKDOWN = re.compile(r"([\\`*_\[\]~#])")

# Marked for translation: the channel form shows it in the reader's language, and a
# delivery's error keeps it in English.
LEGACY_HINT = gettext_noop(
    "an Office 365 connector URL, which Microsoft retired; create a Workflows webhook "
    '("Post to a channel when a webhook request is received") and use its URL'
)


def is_legacy_connector(url: str) -> bool:
    """Whether a URL is a retired Office 365 connector's incoming webhook, which no
    longer posts anything."""
    try:
        parts = urlsplit(url)
        host = (parts.hostname or "").lower()
    except ValueError:
        return False
    path = parts.path.lower()
    if host == "webhook.office.com" or host.endswith(".webhook.office.com"):
        return path.startswith("/webhookb2/")
    if host in ("outlook.office.com", "outlook.office365.com"):
        return path.startswith("/webhook/")
    return False


def escape(text: str) -> str:
    """Text shown as typed: no entity, tag, mention or Markdown of its own."""
    text = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return _MARKDOWN.sub(r"\\\1", text)


def clip(text: str, limit: int) -> str:
    """Cut before escaping, so that no escape is split."""
    return text if len(text) <= limit else text[: limit - 1] + "…"


def message(event: Event) -> tuple[bytes, dict[str, str]]:
    # The charset said outright: without it the endpoint has been seen to count the
    # body as UTF-16, halving the size it accepts.
    return encoded(envelope_for(event)), {"Content-Type": "application/json; charset=utf-8"}


def encoded(envelope: dict[str, Any]) -> bytes:
    return json.dumps(envelope, ensure_ascii=False, separators=(",", ":")).encode()


def envelope_for(event: Event) -> dict[str, Any]:
    """The message in the site's language (LANGUAGE_CODE), as Slack's is."""
    with translation.override(settings.LANGUAGE_CODE):
        return _envelope(event)


def _envelope(event: Event) -> dict[str, Any]:
    data = event.data
    details = [
        (key, clip(str(data[key]), DETAIL_MAX))
        for key in SHOWN
        if data.get(key) not in (None, "", [])
    ]
    built = _card(event, details, cut=False)
    while len(encoded(built)) > MAX_BYTES and any(value for _key, value in details):
        longest = max(range(len(details)), key=lambda index: len(details[index][1]))
        key, value = details[longest]
        details[longest] = (key, clip(value, len(value) // 2) if len(value) > 1 else "")
        built = _card(event, details, cut=True)
    return built


def _card(event: Event, details: list[tuple[str, str]], *, cut: bool) -> dict[str, Any]:
    data = event.data
    release = data.get("release", {})
    by = _("by %(actor)s") % {"actor": data.get("actor", {}).get("label", "")}
    url, label = link_of(event)
    body: list[dict[str, Any]] = [
        _text(clip(title_of(event), TITLE_MAX), size="Large", weight="Bolder"),
        _text(
            clip(" — ".join(filter(None, [release.get("title"), by, data.get("at")])), LINE_MAX),
            isSubtle=True,
            spacing="None",
        ),
        *(_text(f"**{escape(key)}**: {escape(value)}", escaped=True) for key, value in details),
    ]
    if cut:
        body.append(_text(_("Cut to fit the size of a Teams message."), isSubtle=True))
    return {
        "type": "message",
        "attachments": [
            {
                "contentType": CONTENT_TYPE,
                "contentUrl": None,
                "content": {
                    "$schema": CARD_SCHEMA,
                    "type": "AdaptiveCard",
                    "version": CARD_VERSION,
                    "body": body,
                    "actions": [{"type": "Action.OpenUrl", "title": label, "url": url}],
                },
            }
        ],
    }


def _text(text: str, *, escaped: bool = False, **style: Any) -> dict[str, Any]:
    return {"type": "TextBlock", "text": text if escaped else escape(text), "wrap": True, **style}
