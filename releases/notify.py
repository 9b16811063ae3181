"""Tell every web process that a release has a new revision.

The workflow publishes after each commit; releases.live listens. With Redis a publish
wakes every process at once; without it (the embedded default) each process notices new
revisions by a cheap query, so publishing is a no-op.
"""

from __future__ import annotations

import json
import logging

import redis
from django.conf import settings

logger = logging.getLogger(__name__)

CHANNEL = "deploycheck:revisions"


def publish(release_id: int, revision: int) -> None:
    if not settings.REDIS_URL:
        return
    try:
        client = redis.Redis.from_url(settings.REDIS_URL, socket_timeout=2)
        client.publish(CHANNEL, json.dumps({"release": release_id, "revision": revision}))
    except redis.RedisError:
        # The change is committed; pages still catch up through their periodic check.
        logger.warning(
            "could not publish revision %s of release %s", revision, release_id, exc_info=True
        )
