"""Celery tasks of the release workflow: thin; the work is in releases.workflow."""

from __future__ import annotations

from deploycheck.celery import app

from . import exports, workflow


def _advance_windows() -> int:
    return workflow.advance_windows()


# Registered by a call, not as a decorator: Celery ships no type hints, and an untyped
# decorator would leave the function unchecked.
advance_windows = app.task(name="releases.advance_windows", ignore_result=True)(_advance_windows)

export_audit = app.task(name="releases.export_audit", ignore_result=True)(exports.write)


def enqueue_export(export_id: int) -> None:
    export_audit.delay(export_id)


drop_abandoned_exports = app.task(name="releases.drop_abandoned_exports", ignore_result=True)(
    exports.drop_abandoned
)
