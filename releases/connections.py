"""Responses that wait minutes (a live stream, an audit download) and the database
connection of the thread that prepared them."""

from __future__ import annotations

from django.db import connection


def let_go_of_connection() -> None:
    """Close this thread's connection now: Django closes a request's connection when its
    response ends, which for these is minutes away, and a waiting response must not hold
    one that long. Not one inside a transaction (a test's): that one is not ours to end."""
    if not connection.in_atomic_block:
        connection.close()
