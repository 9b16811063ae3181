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


def test_support_who_follow_the_status_page_may_not(
    release: Release, users: dict[str, Any]
) -> None:
    response = _client(users["support"]).get(reverse("releases:export", args=[release.version]))

    assert response.status_code == 403


def test_someone_not_on_the_release_is_refused_and_a_stranger_sent_to_log_in(
    release: Release, users: dict[str, Any]
) -> None:
    url = reverse("releases:export", args=[release.version])

    assert _client(users["outsider"]).get(url).status_code == 404
    assert Client().get(url).status_code == 302


def test_the_timeline_links_it_for_the_team_only(release: Release, users: dict[str, Any]) -> None:
    url = reverse("releases:timeline", args=[release.version])
    export = reverse("releases:export", args=[release.version])

    assert export in _client(users["po"]).get(url).content.decode()
    assert export not in _client(users["support"]).get(url).content.decode()
