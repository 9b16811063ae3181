"""The `data-live-part` contract between the panels and the live update.

A live update sends a panel's changed rows alone when nothing else in it changed: each
is an `<li id=… data-live-part>` holding no list, found by one pattern and put in place
by its id (htmx's out-of-band swap). A row written any other way would be missed by the
pattern and left stale on every open page; these tests hold every panel, for every kind
of viewer, to the form the pattern reads, and check that putting the rows sent in place
gives the panel as rendered afresh.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings
from django.utils import translation

from releases import workflow
from releases.board import (
    _PART,
    _changed_parts,
    board_context,
    render_panels,
    status_context,
    viewer_for,
)
from releases.models import Release
from tests.conftest import item

pytestmark = pytest.mark.django_db

MARKER = "data-live-part"
OOB = ' hx-swap-oob="true"'
# What the pattern needs of the tag: an <li> whose first attribute is its id.
MARKED_TAG = re.compile(r'<li id="[^"]+" data-live-part[ >]')


def _panels(release: Release, user: Any, page: str) -> dict[str, str]:
    release.refresh_from_db()
    read_only = page == "status"
    viewer = viewer_for(user, release, language="en", read_only=read_only)
    build = board_context if page == "board" else status_context
    with translation.override("en"):
        return render_panels(build(release, viewer), page)


def _put_in_place(panel: str, parts: list[str]) -> str:
    """What htmx does with the rows sent: each replaces the element of its id."""
    by_id = {match.group(1): match.group(0).replace(OOB, "", 1) for match in _PART.finditer(
        "\n".join(parts)
    )}  # fmt: skip
    return _PART.sub(lambda match: by_id.get(match.group(1), match.group(0)), panel)


def test_every_template_marks_a_live_part_as_the_pattern_reads_it() -> None:
    marked = 0
    for template in Path(settings.BASE_DIR, "templates").rglob("*.html"):
        source = template.read_text()
        for at in [m.start() for m in re.finditer(MARKER, source)]:
            tag = source[source.rindex("<", 0, at) :].split(">", 1)[0] + ">"
            marked += 1
            assert re.match(r'<li id="[^"]+" data-live-part[ >]', tag), (
                f"{template.name}: {tag!r} is not an <li> whose first attribute is its id"
            )
    assert marked >= 2


@pytest.mark.parametrize("page", ["board", "status"])
@pytest.mark.parametrize("persona", ["devops", "qa", "po", "support"])
def test_each_rendered_live_part_is_found_whole_and_holds_no_list(
    page: str, persona: str, release: Release, users: dict[str, Any]
) -> None:
    workflow.tick(item(release, "Unit tests pass"), by=users["qa"])
    panels = _panels(release, users[persona], page)

    ids: list[str] = []
    for name, html in panels.items():
        found = list(_PART.finditer(html))
        assert len(found) == html.count(MARKER), f"{name}: a marked row the pattern misses"
        for match in found:
            assert MARKED_TAG.match(match.group(0))
            assert match.group(0).count("<li") == 1, f"{name}: a list inside {match.group(1)}"
            ids.append(match.group(1))
    assert ids, "no panel has live parts"
    assert len(ids) == len(set(ids)), "two live parts share an id"


@pytest.mark.parametrize("page", ["board", "status"])
def test_the_rows_each_change_sends_put_in_place_give_the_panels_rendered_afresh(
    page: str, release: Release, users: dict[str, Any]
) -> None:
    changes = [
        lambda: workflow.tick(item(release, "Unit tests pass"), by=users["qa"]),
        lambda: workflow.annotate_item(
            item(release, "Merge everything"), by=users["backend"], note="merged"
        ),
        lambda: workflow.tick(item(release, "TLS certificates installed"), by=users["devops"]),
        lambda: workflow.sign_off(release, role="qa", phase="Pre", by=users["qa"]),
    ]
    watcher = users["backend"]
    before = _panels(release, watcher, page)
    sent_alone = 0
    for change in changes:
        change()
        after = _panels(release, watcher, page)
        for name, now in after.items():
            parts = _changed_parts(before[name], now)
            if parts == [now]:
                continue  # sent whole: nothing to put in place
            sent_alone += len(parts)
            assert all(OOB in part for part in parts)
            assert _put_in_place(before[name], parts) == now, name
        before = after
    # Ticks change a lead's sign-off row and progress bars, and those go alone.
    assert sent_alone >= 4
