"""A shared render cut at its placeholders gives back each request's own page."""

from __future__ import annotations

from releases.pages import CSRF_PLACEHOLDER, CutPage, PageCache

RENDER = f'<form><input value="{CSRF_PLACEHOLDER}"><input value="{CSRF_PLACEHOLDER}">ñ'.encode()
VALUES = {CSRF_PLACEHOLDER: b"token"}


def test_every_placeholder_gets_its_value() -> None:
    page = CutPage(RENDER)
    assert page.filled(VALUES) == '<form><input value="token"><input value="token">ñ'.encode()
    # The cut page serves the next request as it served the first.
    assert page.filled({CSRF_PLACEHOLDER: b"other"}).count(b'"other"') == 2


def test_the_render_counts_its_bytes() -> None:
    page = CutPage(RENDER)
    assert len(page) == len(RENDER)
    assert CutPage(b"no holes").filled({}) == b"no holes"


def test_the_cache_bounds_cut_pages_by_their_bytes() -> None:
    cache: PageCache[CutPage] = PageCache(max_bytes=2 * len(RENDER))
    for key in range(3):
        cache.put(key, CutPage(RENDER))
    assert cache.get(0) is None
    assert cache.get(2) is not None
