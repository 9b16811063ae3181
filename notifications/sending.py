"""Handing deliveries to the workers: a Celery task per attempt, taking ids; the work is
in notifications.delivery and notifications.email. The outbox and a replay hand out
through here; beat's own tasks are in notifications.tasks."""

from __future__ import annotations

from deploycheck.celery import app

from . import delivery, email


def enqueue(delivery_id: int, attempt: int, delay: float) -> None:
    deliver.apply_async((delivery_id, attempt), countdown=delay or None)


def _deliver(delivery_id: int, attempt: int) -> None:
    delivery.deliver(delivery_id, attempt, enqueue=enqueue)


def enqueue_email(delivery_id: int, attempt: int, delay: float) -> None:
    deliver_email.apply_async((delivery_id, attempt), countdown=delay or None)


def _deliver_email(delivery_id: int, attempt: int) -> None:
    email.deliver(delivery_id, attempt, enqueue=enqueue_email)


# Registered by a call, not as decorators: Celery ships no type hints, and an untyped
# decorator would leave the functions unchecked.
deliver = app.task(name="notifications.deliver", ignore_result=True)(_deliver)
deliver_email = app.task(name="notifications.deliver_email", ignore_result=True)(_deliver_email)
