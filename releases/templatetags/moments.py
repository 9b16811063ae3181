"""`{{ value|moment }}`: a moment as every page shows it, in the reader's language and
with its zone ("07/12/2026 03:09 UTC" in Spanish, "12/07/2026 3:09 a.m. UTC" in
English). A builtin (settings.TEMPLATES): a time shown without its zone is ambiguous to
people working a release across offices, so no template should have to remember it."""

from __future__ import annotations

from datetime import datetime

from django import template
from django.utils import formats, timezone

register = template.Library()


@register.filter
def moment(value: datetime | None) -> str:
    if not isinstance(value, datetime):
        return ""
    try:
        local = timezone.localtime(value) if timezone.is_aware(value) else value
    except OverflowError:
        # At the calendar's first or last day the reader's offset has no room: as kept.
        local = value
    shown = formats.date_format(local, "SHORT_DATETIME_FORMAT")
    zone = local.tzname()
    return f"{shown} {zone}" if zone else shown
