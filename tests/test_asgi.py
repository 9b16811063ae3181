"""What the ASGI application does once, when a web process starts."""

from __future__ import annotations

from pathlib import Path

from django.conf import settings
from django.template import engines

from deploycheck.asgi import compile_templates


def test_every_template_of_ours_is_compiled_before_the_first_request() -> None:
    engine = engines["django"].engine
    (partials,) = engine.template_loaders
    (cached,) = partials.loaders
    cached.reset()

    compile_templates()

    root = Path(settings.BASE_DIR, "templates")
    ours = {path.relative_to(root).as_posix() for path in root.rglob("*.html")}
    assert "releases/board.html" in ours
    assert ours <= set(cached.get_template_cache)
