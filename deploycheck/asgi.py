"""The web server's application: Django's own handlers behind Edge, on one port.

Django's async views wait on the event loop, where an open request costs a coroutine:
the live streams of releases/streams.py and the audit CSV download, which waits on the
worker writing it. They go to Django's ASGI handler. Every other request is a
synchronous view and goes to Django's WSGI handler on a pool of WEB_THREADS threads,
which runs its middleware and view on one thread in one go; Edge has already read its
body, so a slow client never holds one of those threads.
"""

import gc
import os
import re
from pathlib import Path

import django
from a2wsgi import WSGIMiddleware
from django.conf import settings
from django.core.asgi import get_asgi_application
from django.core.wsgi import get_wsgi_application

from deploycheck.edge import Edge, Receive, Scope, Send

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "deploycheck.settings")
django.setup(set_prefix=False)

# releases.streams.routes: the streams and their polling fallback, which waits on the
# same process's hub; releases.manage_views.audit_csv.
ASYNC_PATH = re.compile(r"/(?:releases|s)/[^/]+/live/(?:poll/)?|/releases/[^/]+/audit\.csv")

streams = get_asgi_application()
pages = WSGIMiddleware(get_wsgi_application(), workers=settings.WEB_THREADS)  # type: ignore[arg-type]


async def route(scope: Scope, receive: Receive, send: Send) -> None:
    if scope["type"] == "http" and ASYNC_PATH.fullmatch(scope["path"]):
        await streams(scope, receive, send)
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
