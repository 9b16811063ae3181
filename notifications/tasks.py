"""Celery tasks: thin, taking ids; the work is in notifications.delivery."""

from __future__ import annotations

from deploycheck.celery import app

from . import delivery


def enqueue(delivery_id: int, attempt: int, delay: float) -> None:
    deliver.apply_async((delivery_id, attempt), countdown=delay or None)


def _deliver(delivery_id: int, attempt: int) -> None:
    delivery.deliver(delivery_id, attempt, enqueue=enqueue)


def _sweep() -> int:
    return delivery.sweep(enqueue=enqueue)


# Registered by a call, not as decorators: Celery ships no type hints, and an untyped
# decorator would leave the functions unchecked.
deliver = app.task(name="notifications.deliver", ignore_result=True)(_deliver)
sweep = app.task(name="notifications.sweep", ignore_result=True)(_sweep)
