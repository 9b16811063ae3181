"""Compacted templates show what the templates as written show: the same text and tags,
with only the amount of whitespace between them changed, and none where it counts."""

from __future__ import annotations

import copy
import re
from typing import Any

import pytest
from django.conf import settings
from django.template import Context, Template
from django.test import Client, override_settings

from deploycheck.template_source import compact
from releases import checklists, workflow
from releases.board import row_renders
from releases.models import Release, Role
from releases.pages import pages


def shown(source: str, **context: Any) -> str:
    return Template(compact(source)).render(Context(context))


def test_indentation_and_lines_of_bare_tags_go() -> None:
    source = "<ul>\n  {% for x in xs %}\n    <li>{{ x }}</li>\n  {% endfor %}\n</ul>\n"
    assert shown(source, xs=[1, 2]) == "<ul>\n<li>1</li>\n<li>2</li>\n</ul>\n"


def test_words_on_either_side_of_a_bare_tag_stay_apart() -> None:
    source = "one\n  {% if flag %}\n  two\n  {% endif %}\n  three"
    assert shown(source, flag=True) == "one\ntwo\nthree"
    assert shown(source, flag=False) == "one\nthree"


def test_a_tag_that_prints_keeps_its_line() -> None:
    source = "one\n  {{ word }}\n  {% firstof word %}\nthree"
    assert shown(source, word="two") == "one\ntwo\ntwo\nthree"


def test_pre_textarea_and_translated_blocks_keep_their_whitespace() -> None:
    source = (
        "<div>\n"
        "    <pre><code>deploy \\\n  --previous\n    --now</code></pre>\n"
        '    <textarea name="note">\n  indented</textarea>\n'
        "    {% load i18n %}{% blocktranslate %}Two\n    lines{% endblocktranslate %}\n"
        "</div>"
    )
    compacted = compact(source)
    assert "<pre><code>deploy \\\n  --previous\n    --now</code></pre>" in compacted
    assert '<textarea name="note">\n  indented</textarea>' in compacted
    assert "{% blocktranslate %}Two\n    lines{% endblocktranslate %}" in compacted
    assert "\n    <pre>" not in compacted


def test_the_line_after_a_kept_block_is_not_taken_for_a_line_of_its_own() -> None:
    source = "<pre>x</pre>{% if flag %}\nafter{% endif %}"
    assert shown(source, flag=True) == "<pre>x</pre>\nafter"


# --- whole pages -----------------------------------------------------------------------

# The masked CSRF token differs on every response, and a signed value's time and
# signature from one second to the next.
TOKEN = re.compile(r"[A-Za-z0-9]{64}|:[0-9A-Za-z]{6}:[\w-]{43}")


def as_written() -> list[dict[str, Any]]:
    templates = copy.deepcopy(settings.TEMPLATES)
    templates[0]["OPTIONS"]["loaders"] = [
        (
            "template_partials.loader.Loader",
            [
                (
                    "django.template.loaders.cached.Loader",
                    [
                        "django.template.loaders.filesystem.Loader",
                        "django.template.loaders.app_directories.Loader",
                    ],
                )
            ],
        )
    ]
    return templates


def normalized(html: str) -> str:
    return re.sub(r"\s+", " ", TOKEN.sub("TOKEN", html)).strip()


def kept_exactly(html: str) -> list[str]:
    return re.findall(r"<(?:pre|textarea)\b.*?</(?:pre|textarea)>", TOKEN.sub("TOKEN", html), re.S)


@pytest.fixture
def busy_release(release: Release, users: dict[str, Any]) -> Release:
    """A release with what people type in: a reason over several lines, a multi-line
    rollback command."""
    step = release.rollback_steps.get()
    step.commands = "kubectl rollout undo deploy/api \\\n    --to-revision=41\n  && make smoke"
    step.save()
    entries = list(release.items.order_by("position"))
    workflow.tick(entries[0], by=users[entries[0].owner_role])
    workflow.mark_blocked(
        entries[1], by=users[entries[1].owner_role], reason="Flaky\n\n  e2e suite"
    )
    release.refresh_from_db()
    return release


def page_paths(release: Release) -> list[str]:
    version = release.version
    return [
        "/",
        f"/releases/{version}/",
        f"/releases/{version}/?show=mine",
        f"/releases/{version}/status/",
        f"/releases/{version}/people/",
        f"/releases/{version}/audit/",
        f"/releases/{version}/share/",
        f"/releases/{version}/tokens/",
        "/tokens/",
        "/releases/new/",
        "/templates/import/",
    ]


@pytest.mark.parametrize("persona", ["admin", Role.QA, Role.PRODUCT_OWNER, Role.SUPPORT])
def test_every_page_shows_what_its_templates_as_written_show(
    busy_release: Release, users: dict[str, Any], persona: str
) -> None:
    client = Client(headers={"accept-language": "en"})
    client.force_login(users[persona])

    def fetch_all() -> list[tuple[int, str]]:
        pages.clear()
        row_renders.clear()
        answers = [client.get(path) for path in page_paths(busy_release)]
        upload = client.post(
            "/templates/import/",
            {"file": checklists.DEFAULT_CHECKLIST.open("rb"), "default_owner": "qa"},
        )
        return [(answer.status_code, answer.content.decode()) for answer in [*answers, upload]]

    compacted = fetch_all()
    with override_settings(TEMPLATES=as_written()):
        written = fetch_all()
    assert [status for status, _html in compacted] == [status for status, _html in written]
    assert any("--to-revision=41" in html for _status, html in compacted)
    for (_status, small), (_same, large) in zip(compacted, written, strict=True):
        assert normalized(small) == normalized(large)
        assert kept_exactly(small) == kept_exactly(large)
        assert len(small) <= len(large)
    board = compacted[1][1]
    assert len(board) < 0.8 * len(written[1][1])
