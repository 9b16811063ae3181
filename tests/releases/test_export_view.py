"""The release's record as Markdown, for its team."""

from __future__ import annotations

from typing import Any

import pytest
from django.test import Client
from django.urls import reverse

from releases import workflow
from releases.models import Release
from tests.conftest import item

pytestmark = pytest.mark.django_db


def _client(user: Any) -> Client:
    client = Client()
    client.force_login(user)
    return client


def test_a_lead_downloads_the_release_with_each_items_record(
    release: Release, users: dict[str, Any]
) -> None:
    workflow.tick(item(release, "Unit tests pass"), by=users["qa"])

    response = _client(users["backend"]).get(reverse("releases:export", args=[release.version]))

    assert response.status_code == 200
    assert response["Content-Type"] == "text/markdown; charset=utf-8"
    assert response["Content-Disposition"] == 'attachment; filename="v1.2.3.md"'
    text = response.content.decode()
    assert "- [x] Unit tests pass" in text
    assert "<!-- deploycheck: record --> done by qa" in text


def test_support_downloads_it_too_having_read_the_same_notes_on_the_board(
    release: Release, users: dict[str, Any]
) -> None:
    entry = item(release, "Unit tests pass")
    workflow.annotate_item(entry, by=users["qa"], note="flaky on Tuesdays")
    support = _client(users["support"])

    board = support.get(reverse("releases:board", args=[release.version]))
    response = support.get(reverse("releases:export", args=[release.version]))

    assert "flaky on Tuesdays" in board.content.decode()
    assert response.status_code == 200
    assert "flaky on Tuesdays" in response.content.decode()


def test_someone_not_on_the_release_is_refused_and_a_stranger_sent_to_log_in(
    release: Release, users: dict[str, Any]
) -> None:
    url = reverse("releases:export", args=[release.version])

    assert _client(users["outsider"]).get(url).status_code == 404
    assert Client().get(url).status_code == 302


def test_the_timeline_links_it_for_everyone_on_the_release_but_not_a_share_link(
    release: Release, users: dict[str, Any]
) -> None:
    url = reverse("releases:timeline", args=[release.version])
    export = reverse("releases:export", args=[release.version])
    token = workflow.create_share_link(release, label="customer", by=users["admin"])
    shared = reverse("releases:shared-timeline", args=[token])

    assert export in _client(users["po"]).get(url).content.decode()
    assert export in _client(users["support"]).get(url).content.decode()
    assert export not in Client().get(shared).content.decode()
