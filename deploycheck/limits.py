"""How often someone did something lately: a count per fixed window, kept in Django's
cache, which is Redis when there is one, so every web process counts together."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

from django.core.cache import cache


@dataclass(frozen=True)
class Counted:
    key: str
    # This one included.
    count: int
    # Seconds until the window ends and the count starts again.
    retry_after: int


def count(name: str, window_seconds: int) -> Counted:
    """Count one more of `name` in the current window of `window_seconds`."""
    now = time.time()
    window = int(now // window_seconds)
    key = f"{name}:{window}"
    cache.add(key, 0, timeout=window_seconds * 2)
    try:
        counted = cache.incr(key)
    except ValueError:  # expired between add and incr: this one opens the window
        cache.set(key, 1, timeout=window_seconds * 2)
        counted = 1
    return Counted(key, counted, math.ceil((window + 1) * window_seconds - now))
