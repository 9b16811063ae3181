import gc
import os
from pathlib import Path

import django

from deploycheck.edge import Edge
from deploycheck.request_thread import RequestThreadHandler

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "deploycheck.settings")
django.setup(set_prefix=False)

# Bodies are read and limited, and WebSocket upgrades and odd methods refused, before
# anything of Django sees a request.
application = Edge(RequestThreadHandler())


def compile_templates() -> None:
    """Ours, all compiled before the first request: the first board after a start is
    then no slower than the next."""
    from django.conf import settings
    from django.template.loader import get_template

    for directory in settings.TEMPLATES[0]["DIRS"]:
        root = Path(str(directory))
        for path in sorted(root.rglob("*.html")):
            get_template(path.relative_to(root).as_posix())


compile_templates()

# What start-up built lives as long as the process: out of the collector's full passes,
# which otherwise doubled the slowest loads of a 2,000-item board's rows.
gc.freeze()
