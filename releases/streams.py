"""Live updates for open board and status pages: a Server-Sent Events stream per page,
and a polling endpoint the page falls back to when the stream fails.

Access is resolved once, when the page connects, on the request's thread, whose
database connection goes back before the stream starts (deploycheck.request_thread);
the open stream then waits on the process's hub and holds no connection. Streams end
after STREAM_MAX_SECONDS and the browser reconnects, which checks access again (a
revoked share link, a removed stakeholder).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Hashable
from dataclasses import dataclass
from typing import Any

from asgiref.sync import sync_to_async
from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import AnonymousUser
from django.contrib.auth.views import redirect_to_login
from django.http import Http404, HttpRequest, HttpResponse, StreamingHttpResponse
from django.shortcuts import get_object_or_404
from django.urls import URLPattern, path
from django.utils.cache import add_never_cache_headers

from . import board, live
from .access import get_release_for_user
from .models import ShareLink, Stakeholder

STREAM_MAX_SECONDS = 300.0
# How long the browser waits before reconnecting a stream that ended (EventSource retry).
RECONNECT_MILLISECONDS = 2000


def _person_holder(user_id: int, roles: frozenset[str], is_staff: bool) -> Hashable:
    return ("person", user_id, roles, is_staff)


def still_admitted(release_id: int, holders: frozenset[Hashable]) -> frozenset[Hashable]:
    """The holders that may still follow the release as they were let in: an active
    account holding the same roles (and staff standing) on it, an unrevoked link. A
    person whose roles changed is let go too: their reconnect gets today's view."""
    users = {h[1] for h in holders if isinstance(h, tuple) and h[0] == "person"}
    links = {h[1] for h in holders if isinstance(h, tuple) and h[0] == "link"}
    roles: dict[int, set[str]] = {}
    for user_id, role in Stakeholder.objects.filter(
        release_id=release_id, user_id__in=users
    ).values_list("user_id", "role"):
        roles.setdefault(user_id, set()).add(role)
    staff = dict(
        get_user_model().objects.filter(pk__in=users, is_active=True).values_list("pk", "is_staff")
    )
    admitted: set[Hashable] = {
        _person_holder(user_id, frozenset(held), staff[user_id])
        for user_id, held in roles.items()
        if user_id in staff
    }
    admitted |= {
        _person_holder(user_id, frozenset(), True)
        for user_id, is_staff in staff.items()
        if is_staff and user_id not in roles
    }
    admitted |= {
        ("link", pk)
        for pk in ShareLink.objects.active()
        .filter(release_id=release_id, pk__in=links)
        .values_list("pk", flat=True)
    }
    return frozenset(admitted & holders)


# One per web process: the pages it serves and the watcher that feeds them.
hub = live.Hub(board.render_update, still_admitted)


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
    holder = _person_holder(user.pk, viewer.roles, viewer.is_staff)
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
    return LiveAccess(link.release_id, link.release.revision, viewer, "status", ("link", link.pk))


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
    try:
        yield f"retry: {RECONNECT_MILLISECONDS}\n".encode() + live.sse_event(
            "revision", str(access.revision)
        )
        loop = asyncio.get_running_loop()
        deadline = loop.time() + STREAM_MAX_SECONDS
        while (left := deadline - loop.time()) > 0:
            try:
                async with asyncio.timeout(min(settings.LIVE_KEEPALIVE_SECONDS, left)):
                    await subscriber.wake.wait()
            except TimeoutError:
                yield b": keep-alive\n\n"
                continue
            if subscriber.closed:
                # Access ended: say so, and make the browser stop reconnecting with a
                # retry far away (it would only be refused).
                yield b"retry: 86400000\n" + live.sse_event("revoked", "")
                return
            update = subscriber.take()
            if update is not None:
                yield update.event
    finally:
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
Respond = Callable[[LiveAccess, int], Awaitable[HttpResponse | StreamingHttpResponse]]


def _live_view(
    access: Access, respond: Respond
) -> Callable[[HttpRequest, str], Coroutine[Any, Any, HttpResponse | StreamingHttpResponse]]:
    """A live endpoint: resolve who may follow what (on the request's thread, with the
    connection its middleware used), then stream or answer a poll from the page's
    revision."""

    async def view(request: HttpRequest, key: str) -> HttpResponse | StreamingHttpResponse:
        resolved = await sync_to_async(access)(request, key)
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
