"""Celery tasks: thin, taking ids; the work is in notifications.delivery."""

from __future__ import annotations

from deploycheck.celery import app

from . import delivery, email, reminders


def enqueue(delivery_id: int, attempt: int, delay: float) -> None:
    deliver.apply_async((delivery_id, attempt), countdown=delay or None)


def _deliver(delivery_id: int, attempt: int) -> None:
    delivery.deliver(delivery_id, attempt, enqueue=enqueue)


def enqueue_email(delivery_id: int, attempt: int, delay: float) -> None:
    deliver_email.apply_async((delivery_id, attempt), countdown=delay or None)


def _deliver_email(delivery_id: int, attempt: int) -> None:
    email.deliver(delivery_id, attempt, enqueue=enqueue_email)


def _sweep() -> int:
    # One beat entry for both: e-mails are deliveries like the channels'.
    return delivery.sweep(enqueue=enqueue) + email.sweep(enqueue=enqueue_email)


def _remind() -> int:
    return reminders.remind()


# Registered by a call, not as decorators: Celery ships no type hints, and an untyped
# decorator would leave the functions unchecked.
deliver = app.task(name="notifications.deliver", ignore_result=True)(_deliver)
deliver_email = app.task(name="notifications.deliver_email", ignore_result=True)(_deliver_email)
sweep = app.task(name="notifications.sweep", ignore_result=True)(_sweep)
remind = app.task(name="notifications.remind", ignore_result=True)(_remind)
