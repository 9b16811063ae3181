"""Our templates as Django reads them: without the indentation and the lines of bare
template tags that only make their source readable.

A third of a board's bytes was that whitespace, sent to every page on every load and
live update. Only the templates' own text is touched, never what they show: a person's
note or command comes in through a variable, after this. Whitespace that means
something stays as written: inside <pre> and <textarea>, and in translated blocks,
whose text is the key of their translation.
"""

from __future__ import annotations

import re

from django.template import Origin
from django.template.loaders.filesystem import Loader as FilesystemLoader

_KEPT_AS_WRITTEN = re.compile(
    r"(<pre\b.*?</pre>|<textarea\b.*?</textarea>"
    r"|\{%-?\s*blocktrans.*?\{%-?\s*endblocktrans\w*\s*-?%\})",
    re.DOTALL,
)
_INDENT = re.compile(r"\n[ \t]+")
# Tags that print nothing. A line holding only these goes, newline and all: the newline
# that ended the line before still separates what comes before from what comes after.
_SILENT_TAGS = (
    "if|elif|else|endif|for|empty|endfor|with|endwith|load|block|endblock|extends"
    "|partialdef|endpartialdef|comment|endcomment|spaceless|endspaceless"
)
_SILENT_TAG = rf"\{{%-?\s*(?:{_SILENT_TAGS})\b(?:[^%]|%(?!\}}))*%\}}|\{{#.*?#\}}"
_SILENT_LINE = re.compile(rf"^[ \t]*((?:(?:{_SILENT_TAG})[ \t]*)+)\n[ \t]*", re.MULTILINE)


def compact(source: str) -> str:
    compacted = []
    # split() puts the kept parts at odd indexes.
    for index, part in enumerate(_KEPT_AS_WRITTEN.split(source)):
        if index % 2:
            compacted.append(part)
            continue
        # After a kept part, the first line goes on from it: it is no line of its own.
        head, newline, lines = ("", "", part) if index == 0 else part.partition("\n")
        compacted.append(head + _INDENT.sub("\n", newline + _SILENT_LINE.sub(r"\1", lines)))
    return "".join(compacted)


class Loader(FilesystemLoader):
    """Django's filesystem loader, giving each template compacted."""

    def get_contents(self, origin: Origin) -> str:
        return compact(super().get_contents(origin))
