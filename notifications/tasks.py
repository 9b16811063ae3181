"""Beat's notification tasks, thin: the sweep that hands out what no task is sending,
and the reminders the clock brings. Importing this module also registers the delivery
tasks (notifications.sending), so a worker that discovers it runs them all."""

from __future__ import annotations

from deploycheck.celery import app

from . import delivery, email, reminders
from .sending import enqueue, enqueue_email


def _sweep() -> int:
    # One beat entry for both: e-mails are deliveries like the channels'.
    return delivery.sweep(enqueue=enqueue) + email.sweep(enqueue=enqueue_email)


def _remind() -> int:
    return reminders.remind()


sweep = app.task(name="notifications.sweep", ignore_result=True)(_sweep)
remind = app.task(name="notifications.remind", ignore_result=True)(_remind)
