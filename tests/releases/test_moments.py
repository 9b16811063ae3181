"""Every time a page shows carries its zone and is written as the reader's language
writes it."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

from django.conf import settings
from django.template import Context, Template
from django.utils import timezone, translation

from releases.templatetags.moments import moment

AT = datetime(2026, 12, 6, 20, 25, tzinfo=UTC)


def test_a_moment_reads_in_spanish_with_a_24_hour_clock_and_its_zone() -> None:
    with translation.override("es"), timezone.override("UTC"):
        assert moment(AT) == "06/12/2026 20:25 UTC"


def test_a_moment_reads_in_english_with_its_zone() -> None:
    with translation.override("en"), timezone.override("UTC"):
        assert moment(AT) == "12/06/2026 8:25 p.m. UTC"


def test_a_moment_is_shown_in_the_active_zone_and_names_it() -> None:
    with translation.override("es"), timezone.override(ZoneInfo("Europe/Madrid")):
        assert moment(AT) == "06/12/2026 21:25 CET"


def test_a_moment_on_the_calendars_first_day_reads_as_kept_where_the_zone_has_no_room() -> None:
    # Madrid's offset would take year 1 before the calendar starts.
    first = datetime(1, 1, 1, tzinfo=UTC)

    with translation.override("es"), timezone.override(ZoneInfo("Europe/Madrid")):
        assert moment(first) == "01/01/0001 00:00 UTC"


def test_nothing_is_shown_for_no_moment() -> None:
    assert moment(None) == ""
    assert Template("[{{ missing|moment }}]").render(Context({})) == "[]"


def test_every_template_writes_a_time_with_its_zone() -> None:
    """A `date` format that prints a time (H, G, g, h, P) without the zone (T, e, O) is
    a time a reader cannot place; machine-readable ISO (`c`) is for <time datetime>."""
    format_of = re.compile(r"""\|date:["']([^"']+)["']""")
    unplaced = []
    for template in Path(settings.BASE_DIR, "templates").rglob("*.html"):
        for written in format_of.findall(template.read_text()):
            shows_time = any(code in written for code in "HGghP")
            if written != "c" and shows_time and not any(code in written for code in "TeO"):
                unplaced.append(f"{template.name}: {written}")
    assert unplaced == []
