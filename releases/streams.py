"""Live updates for open board and status pages: a Server-Sent Events stream per page,
and a polling endpoint the page falls back to when the stream fails.

Access is resolved once, when the page connects, on the request's thread, whose
database connection is closed before the stream starts (`_live_view`); the open stream
then waits on the process's hub and holds no connection. The hub asks `still_admitted`
again at every revision of the release and every few seconds besides (releases.live),
and a stream whose access ended says so and ends: a person logged out, whose session
expired, whose password changed, whose account was deactivated or whose roles changed;
a revoked share link. Streams also end after STREAM_MAX_SECONDS, and the browser
reconnects.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Hashable
from dataclasses import dataclass
from importlib import import_module
from typing import Any

from asgiref.sync import sync_to_async
from django.conf import settings
from django.contrib.auth import HASH_SESSION_KEY, get_user_model
from django.contrib.auth.models import AnonymousUser
from django.contrib.auth.views import redirect_to_login
from django.contrib.sessions.backends.db import SessionStore as DatabaseSessionStore
from django.contrib.sessions.base_session import AbstractBaseSession
from django.http import Http404, HttpRequest, HttpResponse, StreamingHttpResponse
from django.shortcuts import get_object_or_404
from django.urls import URLPattern, path
from django.utils import timezone
from django.utils.cache import add_never_cache_headers
from django.utils.crypto import constant_time_compare

from . import board, live
from .access import get_release_for_user
from .connections import let_go_of_connection
from .models import ShareLink, Stakeholder

STREAM_MAX_SECONDS = 300.0
# How long the browser waits before reconnecting a stream that ended (EventSource retry).
RECONNECT_MILLISECONDS = 2000


@dataclass(frozen=True)
class PersonHolder:
    """A logged-in person as they were let in to follow a release: their roles on it,
    their staff standing, and the session they came with, by its key and the hash of
    their password it holds (what django.contrib.auth.get_user verifies)."""

    release_id: int
    user_id: int
    roles: frozenset[str]
    is_staff: bool
    session_key: str
    session_hash: str


@dataclass(frozen=True)
class LinkHolder:
    """A share link as it let a page in."""

    release_id: int
    link_id: int


def still_admitted(holders: frozenset[Hashable]) -> frozenset[Hashable]:
    """The holders that may still follow their release as they were let in: a person
    whose session still stands and whose account is active, holding the same roles (and
    staff standing) on the release; an unrevoked link. A person whose roles changed is
    let go too: their reconnect gets today's view.

    The hub asks this for every open page of the process every few seconds, so it costs
    at most four queries (sessions, people, roles, links) however many pages and
    releases it is asked about, never one per page.
    """
    people = [h for h in holders if isinstance(h, PersonHolder)]
    links = [h for h in holders if isinstance(h, LinkHolder)]
    admitted: set[Hashable] = set()
    if people:
        admitted.update(_people_admitted(people))
    if links:
        active = set(
            ShareLink.objects.active()
            .filter(pk__in={h.link_id for h in links})
            .values_list("pk", "release_id")
        )
        admitted.update(h for h in links if (h.link_id, h.release_id) in active)
    return frozenset(admitted)


def _people_admitted(people: list[PersonHolder]) -> list[PersonHolder]:
    # As the session middleware and django.contrib.auth.get_user would find them at the
    # next request: the session row there and unexpired (a logout deletes it), the
    # account active, and the hash the session holds still that of the account's
    # password. The hash was read from the session when the page connected: Django
    # never changes the person or the hash a session holds without giving it a new key
    # (login, update_session_auth_hash and get_user's own fallback all cycle it), and
    # the old key then is gone, so comparing the key's existence and that hash is what
    # reading the session again would tell, without decoding every session each time.
    sessions = set(
        _session_model()
        .objects.filter(
            session_key__in={p.session_key for p in people}, expire_date__gt=timezone.now()
        )
        .values_list("session_key", flat=True)
    )
    users = {
        user.pk: user
        for user in get_user_model().objects.filter(
            pk__in={p.user_id for p in people}, is_active=True
        )
    }
    hashes = {pk: user.get_session_auth_hash() for pk, user in users.items()}
    roles: dict[tuple[int, int], set[str]] = {}
    for release_id, user_id, role in Stakeholder.objects.filter(
        release_id__in={p.release_id for p in people}, user_id__in=list(users)
    ).values_list("release_id", "user_id", "role"):
        roles.setdefault((release_id, user_id), set()).add(role)

    def admits(person: PersonHolder) -> bool:
        user = users.get(person.user_id)
        if user is None or person.session_key not in sessions:
            return False
        if not constant_time_compare(person.session_hash, hashes[person.user_id]):
            return False
        # Still someone who may see the release (access.get_release_for_user), standing
        # as they did when let in.
        held = frozenset(roles.get((person.release_id, person.user_id), ()))
        if not (held or user.is_staff):
            return False
        return held == person.roles and user.is_staff == person.is_staff

    return [person for person in people if admits(person)]


def _session_model() -> type[AbstractBaseSession]:
    # The configured engine's, as the session middleware loads it: database sessions.
    store: type[DatabaseSessionStore] = import_module(settings.SESSION_ENGINE).SessionStore
    return store.get_model_class()


# One per web process: the pages it serves and the watcher that feeds them.
hub = live.Hub(board.load_snapshot, board.render_update, still_admitted)


@dataclass(frozen=True)
class LiveAccess:
    """What a connecting page may follow, resolved once at connect."""

    release_id: int
    revision: int
    viewer: Hashable
    page: str
    # Who the access was granted to, as it was granted: re-checked at every revision.
    holder: Hashable = None


def _member_access(request: HttpRequest, version: str) -> LiveAccess | HttpResponse:
    page = request.GET.get("page", "board")
    if page not in live.PAGES:
        raise Http404
    user = request.user
    if not user.is_authenticated:
        return redirect_to_login(request.get_full_path())
    release = get_release_for_user(request, version)
    # As views.status_page does: the status page changes nothing, whoever looks.
    viewer = board.viewer_for(
        user, release, read_only=page == "status", language=request.LANGUAGE_CODE
    )
    # Read after request.user, whose verification may have given the session a new key.
    session = request.session
    holder = PersonHolder(
        release.pk,
        user.pk,
        viewer.roles,
        viewer.is_staff,
        session.session_key or "",
        session.get(HASH_SESSION_KEY, ""),
    )
    return LiveAccess(release.pk, release.revision, viewer, page, holder)


def _shared_access(request: HttpRequest, token: str) -> LiveAccess | HttpResponse:
    link = get_object_or_404(
        ShareLink.objects.active().select_related("release"),
        token_hash=ShareLink.hash_token(token),
    )
    viewer = board.viewer_for(
        AnonymousUser(),
        link.release,
        read_only=True,
        language=request.LANGUAGE_CODE,
        hides_personal=link.hides_personal,
    )
    holder = LinkHolder(link.release_id, link.pk)
    return LiveAccess(link.release_id, link.release.revision, viewer, "status", holder)


def _since(request: HttpRequest, current: int) -> int:
    """The revision the page shows: EventSource's Last-Event-ID on a reconnect, else
    ?since=. A page claiming a revision the release never had gets everything again."""
    raw = request.headers.get("Last-Event-ID") or request.GET.get("since", "")
    try:
        since = int(raw)
    except ValueError:
        return current
    return since if 0 <= since <= current else 0


async def _stream(access: LiveAccess, since: int) -> StreamingHttpResponse:
    response = StreamingHttpResponse(_events(hub, access, since), content_type="text/event-stream")
    response["Cache-Control"] = "no-cache"
    # Tells nginx-style proxies to pass each event on at once instead of buffering.
    response["X-Accel-Buffering"] = "no"
    return response


async def _events(hub: live.Hub, access: LiveAccess, since: int) -> AsyncIterator[bytes]:
    # Subscribed inside the generator so that the `finally` below always pairs with it,
    # whether the stream ends, times out or the browser goes away (CancelledError).
    subscriber = hub.subscribe(
        access.release_id,
        access.viewer,
        access.page,
        seen=since,
        current=access.revision,
        holder=access.holder,
    )
    loop = asyncio.get_running_loop()
    deadline = loop.time() + STREAM_MAX_SECONDS
    keepalive = settings.LIVE_KEEPALIVE_SECONDS
    # One alarm at a time, for the moment the stream has been quiet for `keepalive` (or
    # reaches its deadline), moved on only once it rang: a timeout around every wait
    # cost a timer per page per change, a tenth of the CPU of a change seen by 1,000
    # pages.
    sent_at = loop.time()
    rang = False

    def ring() -> None:
        # A timer may run a little before its time: it says it rang, not the clock.
        nonlocal rang
        rang = True
        subscriber.wake.set()

    alarm = loop.call_at(min(sent_at + keepalive, deadline), ring)
    try:
        yield f"retry: {RECONNECT_MILLISECONDS}\n".encode() + live.sse_event(
            "revision", str(access.revision)
        )
        while True:
            await subscriber.wake.wait()
            if subscriber.closed:
                # Access ended: say so, and make the browser stop reconnecting with a
                # retry far away (it would only be refused).
                yield b"retry: 86400000\n" + live.sse_event("revoked", "")
                return
            now = loop.time()
            update = subscriber.take()
            if update is not None:
                yield update.event
                sent_at = now
            if now >= deadline:
                return
            if now >= sent_at + keepalive:
                yield b": keep-alive\n\n"
                sent_at = now
            if rang:
                rang = False
                alarm = loop.call_at(min(sent_at + keepalive, deadline), ring)
    finally:
        alarm.cancel()
        hub.unsubscribe(subscriber)


async def _poll(access: LiveAccess, since: int) -> HttpResponse:
    if since >= access.revision:
        response = HttpResponse(status=204)
        response["X-Revision"] = str(access.revision)
    else:
        update = await hub.render(
            access.release_id, access.viewer, access.page, since, at_least=access.revision
        )
        response = HttpResponse(update.html)
        response["X-Revision"] = str(update.revision)
    add_never_cache_headers(response)
    return response


Access = Callable[[HttpRequest, str], LiveAccess | HttpResponse]


def _then_close_connection(access: Access) -> Access:
    def resolve(request: HttpRequest, key: str) -> LiveAccess | HttpResponse:
        try:
            return access(request, key)
        finally:
            let_go_of_connection()

    return resolve


Respond = Callable[[LiveAccess, int], Awaitable[HttpResponse | StreamingHttpResponse]]


def _live_view(
    access: Access, respond: Respond
) -> Callable[[HttpRequest, str], Coroutine[Any, Any, HttpResponse | StreamingHttpResponse]]:
    """A live endpoint: resolve who may follow what (on the request's thread, with the
    connection its middleware used), then stream or answer a poll from the page's
    revision."""

    async def view(request: HttpRequest, key: str) -> HttpResponse | StreamingHttpResponse:
        resolved = await sync_to_async(_then_close_connection(access))(request, key)
        if isinstance(resolved, HttpResponse):
            return resolved
        return await respond(resolved, _since(request, resolved.revision))

    return view


live_stream = _live_view(_member_access, _stream)
live_poll = _live_view(_member_access, _poll)
shared_live = _live_view(_shared_access, _stream)
shared_live_poll = _live_view(_shared_access, _poll)


routes: list[URLPattern] = [
    path("releases/<str:key>/live/", live_stream, name="live"),
    path("releases/<str:key>/live/poll/", live_poll, name="live-poll"),
    path("s/<str:key>/live/", shared_live, name="shared-live"),
    path("s/<str:key>/live/poll/", shared_live_poll, name="shared-live-poll"),
]
