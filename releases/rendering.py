"""Markdown written by people (rollback steps, item text) as HTML for a page.

Raw HTML is escaped and markdown-it refuses javascript:/data: links, so what these
return is safe to put in a page.
"""

from __future__ import annotations

import html

from django.utils.html import strip_tags
from django.utils.safestring import SafeString
from markdown_it import MarkdownIt

_MARKDOWN = MarkdownIt("commonmark", {"html": False})


def block_html(text: str) -> SafeString:
    """``text`` as Markdown blocks: paragraphs, lists, code blocks."""
    return SafeString(_MARKDOWN.render(text))


def inline_html(text: str) -> SafeString:
    """One line of ``text`` as inline Markdown (code spans, emphasis, links), with no
    paragraph around it."""
    return SafeString(_MARKDOWN.renderInline(text))


def plain_text(text: str) -> str:
    """One line of ``text`` as its reader sees it, without the marks of its Markdown: for
    a sentence that quotes it where Markdown is not rendered, such as a reason."""
    return html.unescape(strip_tags(inline_html(text)))
