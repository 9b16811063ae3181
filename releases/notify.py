"""Tell every web process that a release has a new revision.

The workflow publishes after each commit; releases.live listens. The process that made
the change is told at once, in memory. With Redis a publish wakes every other process at
once too; without it (the embedded default) they notice new revisions by a cheap query.
"""

from __future__ import annotations

import json
import logging
import threading
import weakref
from collections.abc import Callable

import redis
from django.conf import settings

logger = logging.getLogger(__name__)

CHANNEL = "deploycheck:revisions"

Listener = Callable[[int, int], None]
_here: list[weakref.WeakMethod[Listener]] = []
_clients: dict[str, redis.Redis] = {}
_clients_lock = threading.Lock()


def listen_here(listener: Listener) -> None:
    """Call `listener(release_id, revision)` for every change made in this process, for
    as long as the object it is a method of lives."""
    _here.append(weakref.WeakMethod(listener))


def publish(release_id: int, revision: int) -> None:
    for reference in list(_here):
        listener = reference()
        if listener is None:
            _here.remove(reference)
        else:
            listener(release_id, revision)
    if not settings.REDIS_URL:
        return
    try:
        _client(settings.REDIS_URL).publish(
            CHANNEL, json.dumps({"release": release_id, "revision": revision})
        )
    except redis.RedisError:
        # The change is committed; pages still catch up through their periodic check.
        logger.warning(
            "could not publish revision %s of release %s", revision, release_id, exc_info=True
        )


def _client(url: str) -> redis.Redis:
    # One client, and so one pool of connections, per process: a connection per publish
    # cost a round trip more than the publish itself.
    with _clients_lock:
        client = _clients.get(url)
        if client is None:
            client = _clients[url] = redis.Redis.from_url(url, socket_timeout=2)
        return client
