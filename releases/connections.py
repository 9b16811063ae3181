"""Work that runs away from a request's own thread (a live stream, an audit download, a
render on an executor's thread) and the database connection it leaves behind."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import ParamSpec, TypeVar

from django.db import close_old_connections, connection

_Params = ParamSpec("_Params")
_Result = TypeVar("_Result")


def let_go_of_connection() -> None:
    """Close this thread's connection now: Django closes a request's connection when its
    response ends, which for these is minutes away, and a waiting response must not hold
    one that long. Not one inside a transaction (a test's): that one is not ours to end."""
    if not connection.in_atomic_block:
        connection.close()


def closing_connections(work: Callable[_Params, _Result]) -> Callable[_Params, _Result]:
    """`work` for an executor's thread, which outlives it: the connections it opened are
    closed when it returns, where the thread would hold them idle until its next task."""

    @functools.wraps(work)
    def closing(*args: _Params.args, **kwargs: _Params.kwargs) -> _Result:
        try:
            return work(*args, **kwargs)
        finally:
            close_old_connections()

    return closing
