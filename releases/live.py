"""Live updates: push the changed fragments to the pages that follow a release.

releases.notify publishes each new revision; with Redis that wakes the watcher of every
web process at once, without it (the embedded default) watchers notice new revisions by
a cheap query.

Each web process has one Hub: one watcher task and, per release, the pages (subscribers)
following it. A new revision is loaded once, and rendered from that load once per
distinct (viewer, page, revision the page has) in a worker thread; every page in that
group gets the same bytes, so 200 open pages cost about as much as the handful of
different people behind them. Who may still follow is asked at each revision and every
ACCESS_CHECK_SECONDS, for many pages at once; a page whose access ended is closed.
Waiting pages hold no database connection: only the watcher's short queries, the access
checks and the renders touch the database, each closing its connection when done.
"""

from __future__ import annotations

import asyncio
import contextvars
import json
import logging
import re
from collections import OrderedDict, defaultdict
from collections.abc import Callable, Coroutine, Hashable
from dataclasses import dataclass, field
from functools import partial
from typing import Any, TypeGuard, TypeVar

import redis
import redis.asyncio
from asgiref.sync import sync_to_async
from django.conf import settings

from . import notify
from .connections import closing_connections
from .models import Release
from .notify import CHANNEL

logger = logging.getLogger(__name__)

# The pages a live stream can follow; releases.board renders an update for each.
PAGES = frozenset({"board", "status"})
# Even with Redis the watcher looks at the database now and then: a publish lost while
# Redis restarted must not leave pages stale for ever.
SAFETY_POLL_SECONDS = 5.0
# After Redis fails, how long the watcher polls the database before trying Redis again.
REDIS_RETRY_SECONDS = 5.0
# Distinct renders kept; entries are only reused while no newer revision is known.
RENDER_CACHE_SIZE = 512
# How often every open page's access is checked again, whether or not its release
# changed: a logout, an expired session or a password change gives no release a new
# revision, and may happen on another web process or none (a session expires by itself,
# an administrator sets a password from a shell). Each check asks once for all the
# pages of the process (a few queries by IN lists in a worker thread, see
# releases.streams.still_admitted), so 1,000 open pages cost the same few queries as
# ten, only with longer lists. A signal such as user_logged_out would reach only the
# process that served the logout, and only for a logout; this bounds them all alike.
ACCESS_CHECK_SECONDS = 2.0

# What every render of one revision of a release reads, loaded once for them all
# (releases.board.load_snapshot): release_id -> snapshot.
Loader = Callable[[int], object]
# releases.board.render_update: (snapshot, viewer, page, since_revision) -> (revision, html)
Renderer = Callable[[object, Hashable, str, int], tuple[int, str]]
# Which of the given holders (whatever a page's access was granted to: a person as they
# were let in, a share link) may still follow their release; asked for a release's
# pages at each of its revisions, and for every page every ACCESS_CHECK_SECONDS.
Admitter = Callable[[frozenset[Hashable]], frozenset[Hashable]]
# Its arguments: one distinct render.
_RenderKey = tuple[int, Hashable, str, int]


_LINE_BREAK = re.compile(r"\r\n|\r|\n")


def sse_event(event: str, data: str, event_id: int | None = None) -> bytes:
    """One Server-Sent Event; every line of data gets its own `data:` field."""
    lines = [f"event: {event}"]
    if event_id is not None:
        lines.append(f"id: {event_id}")
    lines += [f"data: {line}" for line in _LINE_BREAK.split(data)]
    return ("\n".join(lines) + "\n\n").encode()


@dataclass(frozen=True)
class Update:
    """What a page needs to go from some revision to `revision`."""

    revision: int
    html: str
    # Encoded once; every subscriber in the same group is sent these very bytes.
    event: bytes


def make_update(revision: int, html: str) -> Update:
    return Update(revision=revision, html=html, event=sse_event("update", html, revision))


@dataclass(eq=False)
class Subscriber:
    """One open page. `seen` is the revision its DOM shows."""

    release_id: int
    viewer: Hashable
    page: str
    seen: int
    # What access was granted to; when it no longer may follow, the stream ends.
    holder: Hashable = None
    pending: Update | None = None
    closed: bool = False
    wake: asyncio.Event = field(default_factory=asyncio.Event)

    def close(self) -> None:
        self.closed = True
        self.pending = None
        self.wake.set()

    def has(self) -> int:
        return max(self.seen, self.pending.revision if self.pending else -1)

    def offer(self, update: Update) -> None:
        # A newer update replaces one not yet sent: it was rendered from `seen`, so it
        # covers everything the older one did.
        if not self.closed and update.revision > self.has():
            self.pending = update
            self.wake.set()

    def take(self) -> Update | None:
        update, self.pending = self.pending, None
        self.wake.clear()
        if update is None or update.revision <= self.seen:
            return None
        self.seen = update.revision
        return update


@closing_connections
def _render_closing(
    load: Loader, render: Renderer, release_id: int, viewer: Hashable, page: str, since: int
) -> tuple[int, str]:
    return render(load(release_id), viewer, page, since)


@closing_connections
def _admit_closing(admit: Admitter, holders: frozenset[Hashable]) -> frozenset[Hashable]:
    return admit(holders)


@closing_connections
def _render_each(
    load: Loader, render: Renderer, release_id: int, keys: list[_RenderKey]
) -> list[tuple[_RenderKey, tuple[int, str] | None]]:
    """Load the release once and render one key of it after another, on a single database
    connection (opening one costs about as much as a small render); None for a key whose
    render failed, and for every key when the load did."""
    if not keys:
        return []
    try:
        snapshot = load(release_id)
    except Exception:
        logger.exception("live update of release %s failed to load", release_id)
        return [(key, None) for key in keys]
    results: list[tuple[_RenderKey, tuple[int, str] | None]] = []
    for key in keys:
        try:
            results.append((key, render(snapshot, *key[1:])))
        except Exception:
            logger.exception("live update of release %s failed", release_id)
            results.append((key, None))
    return results


@closing_connections
def _revisions_closing(release_ids: list[int]) -> list[tuple[int, int]]:
    return list(Release.objects.filter(pk__in=release_ids).values_list("pk", "revision"))


_T = TypeVar("_T")


def _detached_task(coroutine: Coroutine[Any, Any, _T]) -> asyncio.Task[_T]:
    # A fresh context: work shared by many pages must not inherit the language or the
    # thread-sensitive executor of the request that happened to start it.
    return asyncio.get_running_loop().create_task(coroutine, context=contextvars.Context())


def _running_here(task: asyncio.Task[_T] | None) -> TypeGuard[asyncio.Task[_T]]:
    # A task of another event loop never finishes in this one (each test client request
    # runs its own loop); uvicorn has one loop per process.
    return task is not None and not task.done() and task.get_loop() is asyncio.get_running_loop()


class Hub:
    """The subscribers of one web process and the watcher that feeds them."""

    def __init__(self, load: Loader, render: Renderer, admit: Admitter | None = None) -> None:
        # The caller says how to load and render (releases.board in production) and who
        # may still follow (releases.streams), so this module knows nothing of pages.
        self._load = load
        self._render = render
        self._admit = admit
        self._subscribers: dict[int, set[Subscriber]] = {}
        self._revisions: dict[int, int] = {}
        self._watcher: asyncio.Task[None] | None = None
        self._access_checker: asyncio.Task[None] | None = None
        self._fan_outs: dict[int, asyncio.Task[None]] = {}
        self._dirty: set[int] = set()
        self._cache: OrderedDict[_RenderKey, Update] = OrderedDict()
        self._rendering: dict[_RenderKey, asyncio.Task[Update]] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        notify.listen_here(self._heard_here)

    def _heard_here(self, release_id: int, revision: int) -> None:
        # A change committed by this process, from a request's thread: its own pages need
        # not wait for Redis or for the next poll.
        loop = self._loop
        if loop is not None and not loop.is_closed():
            loop.call_soon_threadsafe(self.notice, release_id, revision)

    # --- subscribers ---------------------------------------------------------------------

    def subscribe(
        self,
        release_id: int,
        viewer: Hashable,
        page: str,
        *,
        seen: int,
        current: int,
        holder: Hashable = None,
    ) -> Subscriber:
        """Follow a release from revision `seen`; `current` is the latest one known to the
        caller, so a page that is already behind gets its catch-up at once."""
        subscriber = Subscriber(
            release_id=release_id, viewer=viewer, page=page, seen=seen, holder=holder
        )
        self._subscribers.setdefault(release_id, set()).add(subscriber)
        self._loop = asyncio.get_running_loop()
        if not _running_here(self._watcher):
            self._watcher = _detached_task(self._watch())
        if self._admit is not None and not _running_here(self._access_checker):
            self._access_checker = _detached_task(self._check_access())
        self._revisions[release_id] = max(current, self._revisions.get(release_id, -1))
        if seen < self._revisions[release_id]:
            self._bring_up_to_date(release_id)
        return subscriber

    def unsubscribe(self, subscriber: Subscriber) -> None:
        followers = self._subscribers.get(subscriber.release_id)
        if followers is None:
            return
        followers.discard(subscriber)
        if not followers:
            del self._subscribers[subscriber.release_id]
            self._revisions.pop(subscriber.release_id, None)
            fan_out = self._fan_outs.get(subscriber.release_id)
            if fan_out is not None and fan_out.done():
                del self._fan_outs[subscriber.release_id]

    def subscriber_count(self) -> int:
        return sum(len(followers) for followers in self._subscribers.values())

    # --- new revisions -------------------------------------------------------------------

    def notice(self, release_id: int, revision: int) -> None:
        """Record that `release_id` is at `revision` and bring its pages up to date.

        Only a revision newer than the latest known starts renders, so repeated notices
        (every poll, every safety check) cost nothing, and a render that failed is
        retried with the next revision rather than in a tight loop.
        """
        if release_id not in self._subscribers:
            return
        if revision <= self._revisions.get(release_id, -1):
            return
        self._revisions[release_id] = revision
        self._bring_up_to_date(release_id)

    def _bring_up_to_date(self, release_id: int) -> None:
        self._dirty.add(release_id)
        if not _running_here(self._fan_outs.get(release_id)):
            self._fan_outs[release_id] = _detached_task(self._fan_out(release_id))

    async def _fan_out(self, release_id: int) -> None:
        # Runs again while notices arrive during a render, so none is lost.
        while release_id in self._dirty:
            self._dirty.discard(release_id)
            target = self._revisions.get(release_id, -1)
            groups: dict[_RenderKey, list[Subscriber]] = defaultdict(list)
            for subscriber in self._subscribers.get(release_id, ()):
                if subscriber.has() < target:
                    key = (release_id, subscriber.viewer, subscriber.page, subscriber.seen)
                    groups[key].append(subscriber)
            updates: dict[_RenderKey, Update] = {}
            to_render: list[_RenderKey] = []
            for key in groups:
                cached = self._fresh(key, target)
                if cached is None:
                    to_render.append(key)
                else:
                    updates[key] = cached
            # Every revision may be the one that removed someone or revoked a link, and
            # it reaches every web process: each ends the streams it may no longer serve,
            # asking beside the renders and before sending anything.
            _closed, rendered = await asyncio.gather(
                self._close_revoked(list(self._subscribers.get(release_id, ()))),
                sync_to_async(_render_each, thread_sensitive=False)(
                    self._load, self._render, release_id, to_render
                ),
            )
            for key, result in rendered:
                if result is not None:
                    updates[key] = self._remember(key, *result)
            # All groups at once, once every render is done: a page that starts swapping
            # its update in takes CPU from the renders still to come (on a shared
            # machine, or one where the browsers run), so sending as each render is done
            # made the last group of pages wait longest. Most-watched first.
            for key, members in sorted(groups.items(), key=lambda g: len(g[1]), reverse=True):
                update = updates.get(key)
                if update is not None:
                    for subscriber in members:
                        subscriber.offer(update)
            newest = max((update.revision for update in updates.values()), default=-1)
            if 0 <= newest < target and self._revisions.get(release_id) == target:
                # The database is the truth: a revision it has not got (a message from
                # another deployment sharing Redis) must not hold back the real ones.
                self._revisions[release_id] = newest

    async def _check_access(self) -> None:
        """Runs while anyone is subscribed: ends the streams of those who may no longer
        follow though their release did not change (see ACCESS_CHECK_SECONDS)."""
        while self._subscribers:
            await asyncio.sleep(ACCESS_CHECK_SECONDS)
            await self._close_revoked(
                [s for followers in self._subscribers.values() for s in followers]
            )

    async def _close_revoked(self, subscribers: list[Subscriber]) -> None:
        if self._admit is None:
            return
        following = [s for s in subscribers if not s.closed]
        holders = frozenset(s.holder for s in following)
        if not holders:
            return
        try:
            admitted = await sync_to_async(_admit_closing, thread_sensitive=False)(
                self._admit, holders
            )
        except Exception:
            # Unsure who may follow: keep the streams, and ask again at the next revision
            # or check, whichever comes first.
            logger.exception("live updates: could not re-check access to live pages")
            return
        for subscriber in following:
            if subscriber.holder not in admitted:
                subscriber.close()

    # --- rendering -----------------------------------------------------------------------

    async def render(
        self, release_id: int, viewer: Hashable, page: str, since: int, *, at_least: int
    ) -> Update:
        """The update from `since` to a revision no older than `at_least`, rendered once
        however many pages or polls ask for it at the same time.

        At most two renders: a render already under way may have read the database just
        before `at_least` was committed, so one more is started then. Whatever that one
        finds is the truth, even if older than `at_least` (a message naming a revision
        this database never had).
        """
        key: _RenderKey = (release_id, viewer, page, since)
        for _attempt in range(2):
            cached = self._fresh(key, at_least)
            if cached is not None:
                return cached
            rendering = self._rendering.get(key)
            if not _running_here(rendering):
                rendering = _detached_task(self._render_into_cache(key))
                self._rendering[key] = rendering
                rendering.add_done_callback(partial(self._forget_rendering, key))
            # Shielded: a page that goes away must not cancel a render others wait for.
            update = await asyncio.shield(rendering)
            if update.revision >= at_least:
                break
        return update

    def _forget_rendering(self, key: _RenderKey, done: asyncio.Task[Update]) -> None:
        if self._rendering.get(key) is done:
            del self._rendering[key]

    async def _render_into_cache(self, key: _RenderKey) -> Update:
        revision, html = await sync_to_async(_render_closing, thread_sensitive=False)(
            self._load, self._render, *key
        )
        return self._remember(key, revision, html)

    def _fresh(self, key: _RenderKey, at_least: int) -> Update | None:
        cached = self._cache.get(key)
        if cached is None or cached.revision < at_least:
            return None
        self._cache.move_to_end(key)
        return cached

    def _remember(self, key: _RenderKey, revision: int, html: str) -> Update:
        update = make_update(revision, html)
        self._cache[key] = update
        self._cache.move_to_end(key)
        while len(self._cache) > RENDER_CACHE_SIZE:
            self._cache.popitem(last=False)
        return update

    # --- the watcher ---------------------------------------------------------------------

    async def _watch(self) -> None:
        """Runs while anyone is subscribed; the next subscriber starts it again."""
        while self._subscribers:
            try:
                if settings.REDIS_URL:
                    await self._listen(settings.REDIS_URL)
                else:
                    await self._poll(until_idle=True)
            except redis.RedisError:
                logger.warning(
                    "live updates: Redis unavailable, polling the database for %s s",
                    REDIS_RETRY_SECONDS,
                    exc_info=True,
                )
                await self._poll(seconds=REDIS_RETRY_SECONDS)
            except Exception:
                # The watcher must outlive a database hiccup; its pages would go stale.
                logger.exception("live updates: watcher failed; restarting in 1 s")
                await asyncio.sleep(1)

    async def _listen(self, url: str) -> None:
        loop = asyncio.get_running_loop()
        client = redis.asyncio.Redis.from_url(url)
        try:
            async with client.pubsub(ignore_subscribe_messages=True) as pubsub:
                await pubsub.subscribe(CHANNEL)
                # Whatever was published before the subscription took effect.
                await self._check_database()
                next_check = loop.time() + SAFETY_POLL_SECONDS
                while self._subscribers:
                    message = await pubsub.get_message(timeout=max(0.0, next_check - loop.time()))
                    if message is not None:
                        self._on_message(message["data"])
                    if loop.time() >= next_check:
                        await self._check_database()
                        next_check = loop.time() + SAFETY_POLL_SECONDS
        finally:
            await client.aclose()

    def _on_message(self, data: bytes | str) -> None:
        try:
            payload = json.loads(data)
            release_id, revision = int(payload["release"]), int(payload["revision"])
        except (ValueError, TypeError, KeyError):
            logger.warning("live updates: ignoring malformed message %r", data)
            return
        self.notice(release_id, revision)

    async def _poll(self, *, until_idle: bool = False, seconds: float = 0.0) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + seconds
        while self._subscribers and (until_idle or loop.time() < deadline):
            await self._check_database()
            await asyncio.sleep(settings.LIVE_POLL_SECONDS)

    async def _check_database(self) -> None:
        watched = list(self._subscribers)
        if not watched:
            return
        rows = await sync_to_async(_revisions_closing, thread_sensitive=False)(watched)
        for release_id, revision in rows:
            self.notice(release_id, revision)
