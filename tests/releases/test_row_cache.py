"""The row cache's key holds everything the item partial reads.

A row's HTML is shared by every render with the same key, so a value the partial reads
that the key does not hold shows one viewer's row to another, or an old row after a
change. Rather than list what the partial reads today, these tests change, one at a
time, every value a row render can see (each field of the row, of the viewer and of the
release, and every other name in the board's context) and require that a change the key
does not see leaves the render as it was. A field added to the partial without its key
fails here.
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from django.db import models
from django.template.loader import get_template
from django.utils import translation

from releases import workflow
from releases.board import (
    ITEM_PARTIAL,
    CheckShown,
    ItemRow,
    Viewer,
    board_context,
    row_cache_key,
    viewer_for,
)
from releases.models import Release, Role
from releases.policy import Who
from tests.conftest import item

pytestmark = pytest.mark.django_db

# Context values computed from others the key holds: changing one alone is a context
# no board builds. Each names what it is derived from.
DERIVED_FROM_KEY = {
    "run_checks_url": "reversed from release.version",
}
A_CHECK = CheckShown("probe", "fail", "Failed", "Refused", "", "", "12 ms", "HTTP 503")


def _changed(value: Any) -> Any:
    """A value different from `value` that a template would show differently."""
    if isinstance(value, bool):
        return not value
    if isinstance(value, int):
        return value + 1
    if isinstance(value, str):
        return f"{value}·changed"
    if isinstance(value, frozenset):
        return frozenset(Role.values) - value or frozenset({Role.QA})
    if isinstance(value, tuple):
        return () if value else (A_CHECK,)
    return None


def _row_variants(row: ItemRow) -> Iterator[tuple[str, ItemRow]]:
    for field in dataclasses.fields(row):
        if field.name == "item":
            continue  # its revision, in the key, changes with every change to it
        yield (
            f"row.{field.name}",
            dataclasses.replace(row, **{field.name: _changed(getattr(row, field.name))}),
        )


def _viewer_variants(viewer: Viewer) -> Iterator[tuple[str, Viewer]]:
    for field in dataclasses.fields(viewer):
        if field.name == "who":
            continue
        yield (
            f"viewer.{field.name}",
            dataclasses.replace(viewer, **{field.name: _changed(getattr(viewer, field.name))}),
        )
    for field in dataclasses.fields(viewer.who):
        if field.name == "kind":
            continue  # rows are rendered for people only
        who: Who = dataclasses.replace(
            viewer.who, **{field.name: _changed(getattr(viewer.who, field.name))}
        )
        yield f"viewer.who.{field.name}", dataclasses.replace(viewer, who=who)


def _release_variants(release: Release) -> Iterator[tuple[str, Release]]:
    for field in release._meta.concrete_fields:
        value = getattr(release, field.attname)
        if isinstance(field, models.DateTimeField):
            changed = (value + timedelta(days=1)) if value else release.created_at
        elif isinstance(field, models.JSONField):
            changed = {"changed": True} if value != {"changed": True} else {}
        else:
            changed = _changed(value)
        variant = copy.copy(release)
        setattr(variant, field.attname, changed)
        yield f"release.{field.attname}", variant


def _variants(context: dict[str, Any], row: ItemRow) -> Iterator[tuple[str, dict[str, Any]]]:
    for name, changed_row in _row_variants(row):
        yield name, {**context, "row": changed_row}
    for name, viewer in _viewer_variants(context["viewer"]):
        yield name, {**context, "viewer": viewer}
    for name, release in _release_variants(context["release"]):
        yield name, {**context, "release": release}
    for name, value in context.items():
        if name not in ("row", "viewer", "release") and name not in DERIVED_FROM_KEY:
            yield name, {**context, name: _changed(value)}


def _render(context: dict[str, Any]) -> str:
    return get_template(ITEM_PARTIAL).render(context)


def _uncovered(context: dict[str, Any], row: ItemRow) -> tuple[list[str], int]:
    """The values whose change alters the render but not the key; and how many changes
    altered the render at all."""
    base = {**context, "row": row}
    key, html = row_cache_key(row, base), _render(base)
    uncovered, seen = [], 0
    for name, variant in _variants(base, row):
        changed_html = _render(variant)
        seen += changed_html != html
        if changed_html != html and row_cache_key(variant["row"], variant) == key:
            uncovered.append(name)
    return uncovered, seen


@pytest.mark.parametrize("persona", ["qa", "backend", "po", "support"])
def test_every_value_the_row_partial_reads_is_in_the_row_cache_key(
    persona: str, release: Release, users: dict[str, Any]
) -> None:
    workflow.tick(item(release, "Unit tests pass"), by=users["qa"])
    workflow.annotate_item(item(release, "Unit tests pass"), by=users["qa"], note="green")
    release.refresh_from_db()
    viewer = viewer_for(users[persona], release, language="en")
    context = board_context(release, viewer)

    with translation.override("en"):
        for row in context["rows"]:
            uncovered, seen = _uncovered(context, row)

            assert uncovered == [], (
                f"the row partial reads {uncovered} for {row.item.text!r}, "
                "which the row cache key does not hold"
            )
            # The changes reach the partial: a test whose changes showed nothing would
            # pass whatever the key held.
            assert seen >= 3


def test_a_value_left_out_of_the_key_is_found(
    release: Release, users: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    viewer = viewer_for(users["qa"], release, language="en")
    context = board_context(release, viewer)
    full_key = row_cache_key

    def key_without_can_change(row: ItemRow, context: Any) -> Any:
        return full_key(dataclasses.replace(row, can_change=False), context)

    monkeypatch.setattr("tests.releases.test_row_cache.row_cache_key", key_without_can_change)
    with translation.override("en"):
        row = next(row for row in context["rows"] if row.can_change)
        uncovered, _seen = _uncovered(context, row)

    assert "row.can_change" in uncovered
