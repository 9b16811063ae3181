"""A shared render cut at its placeholders gives back each request's own page."""

from __future__ import annotations

from releases.pages import CSRF_PLACEHOLDER, CutPage, PageCache, compacted

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


def test_indentation_between_tags_becomes_one_line_break() -> None:
    written = b"<ul>\n    <li>one</li>\n\n    <li>two <b>x</b> <i>y</i></li>\r\n\t</ul>\n"
    assert compacted(written) == b"<ul>\n<li>one</li>\n<li>two <b>x</b> <i>y</i></li>\n</ul>\n"
    # Text beside the white space is not indentation.
    assert compacted(b"<p>\n  a note\n  </p>") == b"<p>\n  a note\n  </p>"


def test_white_space_that_means_something_is_kept() -> None:
    kept = [
        b'<textarea name="note">\n  <b>\n  </textarea>',
        b'<textarea name="note">&lt;b&gt;\n    indented\n</textarea>',
        b"<PRE>\n  <code>x</code>\n  </PRE>",
        b'<script type="application/json">{"a": "<\n  >"}</script>',
    ]
    for text in kept:
        assert compacted(b"<div>\n  " + text + b"\n</div>") == b"<div>\n" + text + b"\n</div>"


def test_a_cut_page_is_compacted() -> None:
    page = CutPage(b"<form>\n    <input>\n  </form>")
    assert page.filled({}) == b"<form>\n<input>\n</form>"
    assert len(page) == len(page.filled({}))
