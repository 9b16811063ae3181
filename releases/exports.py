"""The audit trail as CSV: chosen by the audit page's filter, written by a Celery worker in
parts, streamed by the web process as the parts come.

The web process only moves bytes: formatting 100,000 events takes seconds of Python,
which in a web process would share the interpreter lock with every page it serves, the
support team's status page included. The download view waits on the event loop
(`stream`), holding no page thread, and deletes each part once sent; a download that
ends early deletes the export, and the worker, finding it gone, stops.
"""

from __future__ import annotations

import asyncio
import csv
import itertools
import json
import logging
import time as clock
from collections.abc import AsyncIterator, Callable, Iterable, Iterator
from datetime import datetime, time, timedelta
from enum import Enum
from typing import TYPE_CHECKING, Any, Literal

from asgiref.sync import sync_to_async
from django.db import transaction
from django.db.models import F, QuerySet
from django.http import QueryDict
from django.utils import timezone, translation
from django.utils.translation import gettext as _
from django.utils.translation import ngettext

from .connections import let_go_of_connection
from .forms_manage import AuditFilterForm
from .models import AuditAction, AuditEvent, AuditExport, AuditExportPart, Release
from .timeline import code_label

if TYPE_CHECKING:
    from django.contrib.auth.models import User

logger = logging.getLogger(__name__)

# Spreadsheets run a cell that starts with one of these as a formula (CSV injection).
FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")
# Events read from the database per batch, and written per part (about 0.5 MB): a part
# per event would be a row and a round trip each, the whole trail at once 100,000
# events in the worker's memory and in one row.
READ_BATCH = 500
PART_LINES = 5000
# How long a download waits for a worker to take its export up, then for each next part,
# before it says the workers are not answering.
START_SECONDS = 30.0
STALL_SECONDS = 60.0
# Each look opens a database connection (see _take_part).
POLL_SECONDS = 0.2
# The worker writes no further ahead of a download than this many unread parts (about
# 1.5 MB), and gives up on one that reads nothing for STALL_SECONDS: a download that
# stalls must not fill the database with the rest of the trail.
PARTS_AHEAD = 3
WORKER_POLL_SECONDS = 0.1
# Downloads one person may have under way at once.
EXPORTS_AT_ONCE = 2
# An export no download is reading any more (its web process died) is deleted by beat.
ABANDONED_AFTER = timedelta(hours=1)


class ExportFailed(Exception):
    """The export cannot be sent: the reason, for the person who asked."""


def filtered_events(
    release: Release, query: QueryDict
) -> tuple[AuditFilterForm, QuerySet[AuditEvent]]:
    """The filter form and the events it selects, newest first; an invalid filter field
    is ignored and its error shown, the valid ones still apply. Days are whole days in
    the current time zone."""
    codes = release.audit_events.order_by("action").values_list("action", flat=True).distinct()
    actions = [(code, AuditAction.label_of(code)) for code in codes]
    form = AuditFilterForm(query or None, actions=actions)
    events = release.audit_events.order_by("-created_at", "-id")
    if not form.is_bound:
        return form, events
    form.is_valid()
    data = form.cleaned_data
    if data.get("action"):
        events = events.filter(action=data["action"])
    if data.get("actor"):
        events = events.filter(actor_label__icontains=data["actor"].strip())
    # Bounds instead of __date keep the index useful. The form keeps both days inside
    # AUDIT_FIRST_DAY..AUDIT_LAST_DAY, so the day after "until" and the zone's offset
    # stay within the years a datetime can hold.
    tz = timezone.get_current_timezone()
    if data.get("since"):
        events = events.filter(created_at__gte=datetime.combine(data["since"], time.min, tz))
    if data.get("until"):
        next_day = data["until"] + timedelta(days=1)
        events = events.filter(created_at__lt=datetime.combine(next_day, time.min, tz))
    return form, events


def compact(value: Any) -> str:
    """A value of a snapshot as one line of text; JSON for anything but text."""
    if value is None:
        return "∅"
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False, sort_keys=True)


def _shown_data(data: Any) -> str:
    """Before or after as one CSV cell: the snapshot as JSON, with its codes labelled."""
    if isinstance(data, dict):
        data = {
            key: code_label(key, value) or value if isinstance(value, str) else value
            for key, value in data.items()
        }
    return compact(data)


def _safe_cell(value: str) -> str:
    return "'" + value if value.startswith(FORMULA_PREFIXES) else value


class _Echo:
    """A file-like object whose write returns the line, so csv.writer can feed a stream."""

    def write(self, value: str) -> str:
        return value


# What the CSV reads of each event, as plain values: building 100,000 model instances
# took longer than writing the lines.
CSV_FIELDS = ("created_at", "actor_label", "action", "target", "before", "after",
              "source_ip", "override")  # fmt: skip


def csv_lines(events: Iterable[tuple[Any, ...]], *, show_addresses: bool) -> Iterator[str]:
    """The CSV in the active language and time zone, a line at a time."""
    writer = csv.writer(_Echo())
    # The byte-order mark makes Excel read the file as UTF-8 rather than the locale's
    # code page, which would garble names such as "Producción".
    yield "\ufeff"
    yield writer.writerow(
        [
            _("When"),
            _("Who"),
            _("Action"),
            _("Action code"),
            _("Target"),
            _("Before"),
            _("After"),
            *([_("From")] if show_addresses else []),
            _("Override"),
        ]
    )
    zone = timezone.get_current_timezone()
    yes, no = _("yes"), _("no")
    for created_at, actor_label, action, target, before, after, source_ip, override in events:
        row = [
            created_at.astimezone(zone).isoformat(),
            actor_label,
            AuditAction.label_of(action),
            action,
            target,
            _shown_data(before),
            _shown_data(after),
            *([source_ip or ""] if show_addresses else []),
            yes if override else no,
        ]
        yield writer.writerow([_safe_cell(cell) for cell in row])


# --- asked for by the web process ----------------------------------------------------------


def start(
    release: Release,
    query: QueryDict,
    *,
    by: User,
    show_addresses: bool,
    enqueue: Callable[[int], None],
) -> int:
    """A new export of what the filter `query` selects, in the active language and time
    zone, handed to the workers by `enqueue`; ExportFailed when the person already has
    EXPORTS_AT_ONCE under way or the broker does not take it."""
    under_way = AuditExport.objects.filter(
        requested_by=by, created_at__gte=timezone.now() - ABANDONED_AFTER
    ).count()
    if under_way >= EXPORTS_AT_ONCE:
        busy = ngettext(
            "You already have %(count)d download of the audit trail under way; wait for it "
            "to finish.",
            "You already have %(count)d downloads of the audit trail under way; wait for "
            "one to finish.",
            under_way,
        )
        raise ExportFailed(busy % {"count": under_way})
    export = AuditExport.objects.create(
        release=release,
        requested_by=by,
        query=query.urlencode(),
        language=translation.get_language() or "",
        zone=timezone.get_current_timezone_name(),
        show_addresses=show_addresses,
    )
    try:
        enqueue(export.pk)
    except Exception as error:  # The broker's errors have no common base of their own.
        logger.exception("audit export %s could not be handed to the workers", export.pk)
        export.delete()
        raise ExportFailed(
            _("The export could not be handed to the workers: %(reason)s. Try again shortly.")
            % {"reason": type(error).__name__}
        ) from error
    return export.pk


class _Part(Enum):
    # What _take_part says while the worker has yet to write the part asked for.
    NOT_YET = "not yet"


def _take_part(export_id: int, number: int) -> bytes | Literal[_Part.NOT_YET] | None:
    """Part `number` as bytes if it is written (and deletes it), None after the last
    part, NOT_YET while the worker is on it; ExportFailed when the export failed or is
    gone. A download waits minutes between parts: it holds no database connection
    meanwhile, or a web process's pool would be held by its downloads."""
    try:
        state = (
            AuditExport.objects.filter(pk=export_id)
            .values_list("parts_written", "finished_at", "error")
            .first()
        )
        if state is None:
            raise ExportFailed(_("The export was deleted before it was sent."))
        written, finished_at, error = state
        if error:
            raise ExportFailed(error)
        if number < written:
            parts = AuditExportPart.objects.filter(export_id=export_id, number=number)
            data = parts.values_list("data", flat=True).get()
            parts.delete()
            return bytes(data)
        return None if finished_at is not None else _Part.NOT_YET
    finally:
        let_go_of_connection()


async def _next_part(export_id: int, number: int, patience: float) -> bytes | None:
    """Part `number` once written, None after the last one."""
    deadline = clock.monotonic() + patience
    while (taken := await sync_to_async(_take_part)(export_id, number)) is _Part.NOT_YET:
        if clock.monotonic() > deadline:
            waited = _(
                "No worker has written the export for %(seconds)d s: the workers may be "
                "stopped or busy. Try again shortly."
            )
            raise ExportFailed(waited % {"seconds": patience})
        await asyncio.sleep(POLL_SECONDS)
    return taken


async def first_part(export_id: int) -> bytes | None:
    """What the download starts with, once a worker has written it; ExportFailed (and
    the export deleted) when none does in time or the export failed."""
    try:
        return await _next_part(export_id, 0, START_SECONDS)
    except ExportFailed:
        await AuditExport.objects.filter(pk=export_id).adelete()
        raise


async def stream(export_id: int, first: bytes | None) -> AsyncIterator[bytes]:
    """The export's parts as the worker writes them. A failure after the first byte can
    only cut the download short, which the browser reports as a failed download."""
    try:
        number, data = 0, first
        while data is not None:
            yield data
            number += 1
            data = await _next_part(export_id, number, STALL_SECONDS)
    finally:
        await AuditExport.objects.filter(pk=export_id).adelete()


# --- done by a worker ----------------------------------------------------------------------


def write(export_id: int) -> None:
    """Write the export's parts; stops when the download that asked is gone."""
    export = AuditExport.objects.select_related("release").filter(pk=export_id).first()
    if export is None:
        return
    with translation.override(export.language), timezone.override(export.zone):
        if not AuditExport.objects.filter(pk=export_id, started_at=None).update(
            started_at=timezone.now()
        ):
            # Taken before by a worker that died mid-way: its first parts may already be
            # sent, so starting over would repeat lines.
            _fail(export_id, _("The worker writing the export stopped; download it again."))
            return
        try:
            _write_parts(export)
        except Exception:
            logger.exception("audit export %s failed", export_id)
            _fail(export_id, _("The export failed on the worker; its log says why. Try again."))


def _fail(export_id: int, reason: str) -> None:
    AuditExport.objects.filter(pk=export_id, finished_at=None).update(error=reason)


def _write_parts(export: AuditExport) -> None:
    _form, events = filtered_events(export.release, QueryDict(export.query))
    rows = events.values_list(*CSV_FIELDS).iterator(chunk_size=READ_BATCH)
    lines = csv_lines(rows, show_addresses=export.show_addresses)
    number = 0
    while True:
        part = "".join(itertools.islice(lines, PART_LINES))
        if not part:
            break
        if not _reader_keeps_up(export.pk) or not _add_part(export.pk, number, part.encode()):
            return
        number += 1
    AuditExport.objects.filter(pk=export.pk).update(finished_at=timezone.now())


def _reader_keeps_up(export_id: int) -> bool:
    """Waits while PARTS_AHEAD parts are unread; False when the download read nothing for
    STALL_SECONDS (the export then fails, and says why)."""
    deadline = clock.monotonic() + STALL_SECONDS
    while AuditExportPart.objects.filter(export_id=export_id).count() >= PARTS_AHEAD:
        if clock.monotonic() > deadline:
            _fail(export_id, _("The download stopped reading the export; download it again."))
            return False
        clock.sleep(WORKER_POLL_SECONDS)
    return True


def _add_part(export_id: int, number: int, data: bytes) -> bool:
    """False when the export is gone: its download ended, nobody will read on."""
    with transaction.atomic():
        if not AuditExport.objects.filter(pk=export_id).update(
            parts_written=F("parts_written") + 1
        ):
            return False
        AuditExportPart.objects.create(export_id=export_id, number=number, data=data)
    return True


def drop_abandoned() -> int:
    """Exports whose download died with its web process, however far they got."""
    deleted, _by_model = AuditExport.objects.filter(
        created_at__lt=timezone.now() - ABANDONED_AFTER
    ).delete()
    return deleted
