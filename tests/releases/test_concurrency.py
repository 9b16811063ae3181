"""Two people acting on one release at the same moment lose nothing.

Each test starts its workers on a barrier so their operations overlap. On PostgreSQL the
release row lock makes them queue; on SQLite the database serialises writers itself. Both
must end in the same place: every change kept, one revision per change, stale edits
refused with a Conflict.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import pytest
from django.db import connection

from releases import notify, workflow
from releases.models import (
    AuditEvent,
    ChecklistTemplate,
    IncidentUpdate,
    ItemState,
    Release,
    Role,
    TemplateItem,
)
from releases.workflow import Conflict
from tests.conftest import item

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def published(monkeypatch: pytest.MonkeyPatch) -> list[tuple[int, int]]:
    calls: list[tuple[int, int]] = []
    lock = threading.Lock()

    def record(release_id: int, revision: int) -> None:
        with lock:
            calls.append((release_id, revision))

    monkeypatch.setattr(notify, "publish", record)
    return calls


def run_together(jobs: list[Callable[[], Any]]) -> list[Any]:
    """Start every job at the same moment, each in its own thread and database connection;
    return what each returned or raised, in job order."""
    barrier = threading.Barrier(len(jobs))
    outcomes: list[Any] = [None] * len(jobs)

    def worker(index: int, job: Callable[[], Any]) -> None:
        try:
            barrier.wait(timeout=30)
            outcomes[index] = job()
        except Exception as error:  # the caller asserts on what each thread met
            outcomes[index] = error
        finally:
            connection.close()

    threads = [threading.Thread(target=worker, args=(i, job)) for i, job in enumerate(jobs)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not any(thread.is_alive() for thread in threads)
    return outcomes


def test_it_keeps_both_ticks_of_two_leads_acting_at_once(
    release: Release, users: dict[str, Any], published: list[tuple[int, int]]
) -> None:
    start, events = release.revision, AuditEvent.objects.count()
    qa_item, devops_item = (
        item(release, "Unit tests pass"),
        item(release, "TLS certificates installed"),
    )

    outcomes = run_together(
        [
            lambda: workflow.tick(qa_item.pk, by=users["qa"], expected_version=0),
            lambda: workflow.tick(devops_item.pk, by=users["devops"], expected_version=0),
        ]
    )

    assert not [o for o in outcomes if isinstance(o, Exception)]
    release.refresh_from_db()
    assert release.revision == start + 2
    assert item(release, "Unit tests pass").state == ItemState.DONE
    assert item(release, "TLS certificates installed").state == ItemState.DONE
    new = AuditEvent.objects.filter(release=release).order_by("id")[events:]
    assert sorted((e.action, e.target) for e in new) == [
        ("item.done", "TLS certificates installed"),
        ("item.done", "Unit tests pass"),
    ]
    assert sorted(published) == [(release.pk, start + 1), (release.pk, start + 2)]


def test_it_lets_exactly_one_of_two_stale_edits_win(
    release: Release, users: dict[str, Any], published: list[tuple[int, int]]
) -> None:
    start, events = release.revision, AuditEvent.objects.count()
    seen = item(release, "Unit tests pass")

    outcomes = run_together(
        [
            lambda: workflow.tick(seen.pk, by=users["qa"], expected_version=seen.version),
            lambda: workflow.mark_blocked(
                seen.pk, by=users["admin"], reason="Regression", expected_version=seen.version
            ),
        ]
    )

    conflicts = [o for o in outcomes if isinstance(o, Conflict)]
    winners = [o for o in outcomes if not isinstance(o, Exception)]
    assert (len(winners), len(conflicts)) == (1, 1)
    [winner] = winners
    current = item(release, "Unit tests pass")
    assert (current.state, current.reason, current.version) == (winner.state, winner.reason, 1)
    release.refresh_from_db()
    assert release.revision == start + 1
    assert AuditEvent.objects.count() == events + 1
    assert published == [(release.pk, start + 1)]


def test_it_keeps_twenty_ticks_by_four_leads_at_once(
    users: dict[str, Any], published: list[tuple[int, int]]
) -> None:
    template = ChecklistTemplate.objects.create(name="wide", title="Wide")
    leads = Role.leads()
    TemplateItem.objects.bulk_create(
        [
            TemplateItem(
                template=template,
                position=i,
                phase="Pre",
                section="All",
                text=f"Item {i}",
                owner_role=leads[i % len(leads)],
            )
            for i in range(20)
        ]
    )
    made = workflow.create_release(template, version="v7.0.0", title="Wide", by=users["admin"])
    for role in leads:
        workflow.assign(made, role=role, user=users[role], by=users["admin"])
    made.refresh_from_db()
    start = made.revision
    entries = list(made.items.order_by("position"))
    published.clear()

    outcomes = run_together(
        [
            (
                lambda entry=entry: workflow.tick(
                    entry.pk, by=users[entry.owner_role], expected_version=0
                )
            )
            for entry in entries
        ]
    )

    assert not [o for o in outcomes if isinstance(o, Exception)]
    made.refresh_from_db()
    assert made.revision == start + 20
    assert set(made.items.values_list("state", flat=True)) == {ItemState.DONE}
    assert sorted(made.items.values_list("revision", flat=True)) == list(
        range(start + 1, start + 21)
    )
    ticked = AuditEvent.objects.filter(release=made, action="item.done")
    assert sorted(ticked.values_list("target", flat=True)) == sorted(e.text for e in entries)
    assert sorted(revision for _, revision in published) == list(range(start + 1, start + 21))


def test_it_posts_once_an_incident_update_sent_twice_at_once(
    release: Release, users: dict[str, Any], published: list[tuple[int, int]]
) -> None:
    def post() -> Any:
        return workflow.post_update(
            release, state="identified", message="Checkout fails", by=users["po"]
        )

    outcomes = run_together([post, post])

    refused = [o for o in outcomes if isinstance(o, Exception)]
    assert len(refused) == 1 and isinstance(refused[0], workflow.WorkflowError)
    assert IncidentUpdate.objects.filter(release=release).count() == 1
