"""The web server's application: Django's own handlers behind Edge, on one port.

Django's async views wait on the event loop, where an open request costs a coroutine:
the live streams of releases/streams.py, the audit CSV download, which waits on the
worker writing it, and a notification channel's trial, which waits on its receiver.
They go to Django's ASGI handler. Every other request is a synchronous view and goes
to Django's WSGI handler on a pool of WEB_THREADS threads, which runs its middleware
and view on one thread in one go; Edge has already read its body, so a slow client
never holds one of those threads. The health check has a small pool of its own, so
that it never waits behind the pages queued for theirs.
"""

import gc
import os
import re
import sys
from pathlib import Path

import django
from a2wsgi import WSGIMiddleware
from django.conf import settings
from django.core.asgi import get_asgi_application
from django.core.wsgi import get_wsgi_application
from django.urls import reverse

from deploycheck.edge import Edge, Receive, Scope, Send

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "deploycheck.settings")
django.setup(set_prefix=False)

# releases.streams.routes: the streams and their polling fallback, which waits on the
# same process's hub; releases.manage_views.audit_csv; notifications.channel_views.
# channel_test, which waits on a channel's receiver.
ASYNC_PATH = re.compile(
    r"/(?:releases|s)/[^/]+/live/(?:poll/)?|/releases/[^/]+/audit\.csv"
    r"|/notifications/channels/\d+/test/"
)

streams = get_asgi_application()
django_wsgi = get_wsgi_application()
pages = WSGIMiddleware(django_wsgi, workers=settings.WEB_THREADS)  # type: ignore[arg-type]
# A load balancer that asks while twenty boards are queued must not wait for them: on
# the page threads its p95 was 136-144 ms on one process, on these 36-49 ms (make bench).
HEALTH_PATH = reverse("releases:healthz")
health = WSGIMiddleware(django_wsgi, workers=2)  # type: ignore[arg-type]


async def route(scope: Scope, receive: Receive, send: Send) -> None:
    if scope["type"] == "http" and ASYNC_PATH.fullmatch(scope["path"]):
        await streams(scope, receive, send)
    elif scope["type"] == "http" and scope["path"] == HEALTH_PATH:
        await health(scope, receive, send)  # type: ignore[arg-type]
    else:
        # Lifespan too: a2wsgi answers it, where Django's ASGI handler would refuse it.
        await pages(scope, receive, send)  # type: ignore[arg-type]


# Bodies are read and limited, and WebSocket upgrades and odd methods refused, before
# either handler sees a request.
application = Edge(route)


def compile_templates() -> None:
    """Ours, all compiled before the first request: the first board after a start is
    then no slower than the next."""
    from django.template.loader import get_template

    for directory in settings.TEMPLATES[0]["DIRS"]:
        root = Path(str(directory))
        for path in sorted(root.rglob("*.html")):
            get_template(path.relative_to(root).as_posix())


compile_templates()

# What start-up built (settings, URLs, the compiled templates above) lives as long as
# the process: out of the collector's full passes, which otherwise doubled the slowest
# loads of a 2,000-item board's rows.
gc.freeze()

# A thread holding the interpreter lock gives it up after this long when another waits
# (Python's default: 5 ms). A page that only waits on the database or Redis takes the
# lock back after each answer; beside an import preview's parsing it waited up to that
# long every time. With the audit CSVs on the worker, the status page's p95 beside
# back-to-back previews and CSVs was 128 ms at 5 ms, 48 ms at 1 ms and 35 ms at 0.5 ms,
# the preview as fast and the pages' throughput the same (make bench).
sys.setswitchinterval(0.0005)
