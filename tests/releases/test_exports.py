"""The audit CSV that a worker writes in parts and the download streams: every part in
order, nothing left behind, and a clear word on the audit page when no CSV can come."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from asgiref.sync import async_to_sync
from django.contrib.messages import get_messages
from django.db import connection
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from releases import exports, tasks, workflow
from releases.models import AuditExport, AuditExportPart, Release
from tests.conftest import item
from tests.releases.test_manage_views import read_csv

LoginAs = Callable[[str], Client]


@pytest.fixture
def login_as(users: dict[str, Any]) -> LoginAs:
    def logged_in(persona: str) -> Client:
        client = Client()
        client.force_login(users[persona])
        return client

    return logged_in


def csv_url(release: Release) -> str:
    return reverse("releases:audit-csv", args=[release.version])


def test_a_trail_longer_than_a_part_arrives_whole_and_in_order(
    release: Release, users: dict[str, Any], login_as: LoginAs, monkeypatch: pytest.MonkeyPatch
) -> None:
    for _round in range(2):
        workflow.tick(item(release, "Unit tests pass"), by=users["qa"])
        workflow.untick(item(release, "Unit tests pass"), by=users["qa"])
    monkeypatch.setattr(exports, "PART_LINES", 2)
    written: list[int] = []

    def worker(export_id: int) -> None:
        exports.write(export_id)
        written.append(export_id)

    monkeypatch.setattr(tasks, "enqueue_export", worker)

    _raw, rows = read_csv(login_as("qa").get(csv_url(release)))

    events = release.audit_events.order_by("-created_at", "-id")
    assert [row[3] for row in rows[1:]] == [event.action for event in events]
    assert len(rows) - 1 == events.count() >= 5
    assert len(written) == 1
    # Each part was deleted once sent, the export once the download ended.
    assert not AuditExportPart.objects.exists()
    assert not AuditExport.objects.exists()


def test_no_worker_taking_the_export_up_is_said_on_the_audit_page(
    release: Release, login_as: LoginAs, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(tasks, "enqueue_export", lambda export_id: None)
    monkeypatch.setattr(exports, "START_SECONDS", 0.2)
    client = login_as("qa")

    response = client.get(csv_url(release), {"action": "item.done"}, HTTP_ACCEPT_LANGUAGE="en")

    assert response.status_code == 302
    assert response["Location"] == reverse("releases:audit", args=[release.version]) + (
        "?action=item.done"
    )
    (message,) = get_messages(response.wsgi_request)
    assert "No worker has written the export for 0 s" in str(message)
    assert not AuditExport.objects.exists()


def test_a_broker_that_refuses_the_export_is_said_on_the_audit_page(
    release: Release, login_as: LoginAs, monkeypatch: pytest.MonkeyPatch
) -> None:
    def refused(export_id: int) -> None:
        raise ConnectionRefusedError("broker down")

    monkeypatch.setattr(tasks, "enqueue_export", refused)

    response = login_as("qa").get(csv_url(release), HTTP_ACCEPT_LANGUAGE="en")

    assert response.status_code == 302
    (message,) = get_messages(response.wsgi_request)
    assert str(message) == (
        "The export could not be handed to the workers: ConnectionRefusedError. Try again shortly."
    )
    assert not AuditExport.objects.exists()


def test_a_failing_export_says_so_instead_of_sending_a_partial_file(
    release: Release, login_as: LoginAs, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(export: AuditExport) -> None:
        raise RuntimeError("disk full")

    monkeypatch.setattr(exports, "_write_parts", broken)

    response = login_as("qa").get(csv_url(release), HTTP_ACCEPT_LANGUAGE="en")

    assert response.status_code == 302
    (message,) = get_messages(response.wsgi_request)
    assert str(message) == "The export failed on the worker; its log says why. Try again."


def test_a_worker_taking_up_an_export_a_lost_worker_began_fails_it_rather_than_repeat_lines(
    release: Release,
) -> None:
    export = AuditExport.objects.create(release=release, language="en", zone="UTC")
    exports.write(export.pk)
    AuditExport.objects.filter(pk=export.pk).update(finished_at=None)

    exports.write(export.pk)

    export.refresh_from_db()
    assert export.error == "The worker writing the export stopped; download it again."
    with pytest.raises(exports.ExportFailed, match="stopped; download it again"):
        async_to_sync(exports.first_part)(export.pk)
    assert not AuditExport.objects.filter(pk=export.pk).exists()


def test_the_worker_stops_when_the_download_is_gone(
    release: Release, users: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    workflow.tick(item(release, "Unit tests pass"), by=users["qa"])
    monkeypatch.setattr(exports, "PART_LINES", 1)
    export = AuditExport.objects.create(release=release, language="en", zone="UTC")
    parts = []
    real_add_part = exports._add_part

    def download_gone_after_two(export_id: int, number: int, data: bytes) -> bool:
        if number == 2:
            AuditExport.objects.filter(pk=export_id).delete()
        parts.append(number)
        return real_add_part(export_id, number, data)

    monkeypatch.setattr(exports, "_add_part", download_gone_after_two)

    exports.write(export.pk)

    assert parts == [0, 1, 2]
    assert not AuditExportPart.objects.exists()


def test_the_export_speaks_the_language_of_who_asked_and_the_site_time_zone(
    release: Release, login_as: LoginAs, settings: Any
) -> None:
    settings.TIME_ZONE = "Europe/Madrid"

    _raw, rows = read_csv(login_as("qa").get(csv_url(release), HTTP_ACCEPT_LANGUAGE="es"))

    assert rows[0][0] == "Cuándo"
    assert rows[-1][2] == "Versión creada"
    assert rows[-1][0].endswith(("+01:00", "+02:00"))


def test_one_person_has_at_most_two_downloads_under_way(
    release: Release, users: dict[str, Any], login_as: LoginAs
) -> None:
    for _download in range(exports.EXPORTS_AT_ONCE):
        AuditExport.objects.create(
            release=release, requested_by=users["qa"], language="en", zone="UTC"
        )

    refused = login_as("qa").get(csv_url(release), HTTP_ACCEPT_LANGUAGE="en")
    _raw, rows = read_csv(login_as("po").get(csv_url(release), HTTP_ACCEPT_LANGUAGE="en"))

    assert refused.status_code == 302
    (message,) = get_messages(refused.wsgi_request)
    assert str(message) == (
        "You already have 2 downloads of the audit trail under way; wait for one to finish."
    )
    assert rows[0][0] == "When"


def test_the_worker_writes_no_further_ahead_of_a_stalled_download(
    release: Release, users: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    workflow.tick(item(release, "Unit tests pass"), by=users["qa"])
    monkeypatch.setattr(exports, "PART_LINES", 1)
    monkeypatch.setattr(exports, "PARTS_AHEAD", 2)
    monkeypatch.setattr(exports, "STALL_SECONDS", 0.3)
    monkeypatch.setattr(exports, "WORKER_POLL_SECONDS", 0.05)
    export = AuditExport.objects.create(release=release, language="en", zone="UTC")

    exports.write(export.pk)

    export.refresh_from_db()
    assert export.parts_written == 2
    assert export.finished_at is None
    assert export.error == "The download stopped reading the export; download it again."
    with pytest.raises(exports.ExportFailed, match="stopped reading"):
        async_to_sync(exports.first_part)(export.pk)


def test_beat_drops_exports_no_download_reads_any_more(release: Release) -> None:
    old = AuditExport.objects.create(release=release, language="en", zone="UTC")
    AuditExport.objects.filter(pk=old.pk).update(
        created_at=timezone.now() - exports.ABANDONED_AFTER - timedelta(minutes=1)
    )
    recent = AuditExport.objects.create(release=release, language="en", zone="UTC")

    assert exports.drop_abandoned() == 1

    assert list(AuditExport.objects.values_list("pk", flat=True)) == [recent.pk]


@pytest.mark.django_db(transaction=True)
def test_a_download_waiting_for_its_next_part_holds_no_database_connection(
    release: Release,
) -> None:
    export = AuditExport.objects.create(release=release, language="en", zone="UTC")

    assert exports._take_part(export.pk, 0) is exports._Part.NOT_YET

    assert connection.connection is None
