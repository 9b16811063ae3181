"""Automated checks on the board: running them (joining checks already under way, and
at most CHECKS_RUNS_PER_MINUTE runs a person starts), showing their results, and what
their results mean for approval (stale evidence blocks it; a failure beside a person's
N/A does not revoke it).

The workers are not involved: `tasks.enqueue` is replaced by a recorder, so a test sees
exactly what would have been sent to them. Results are written as the runner writes
them, through workflow.record_check_result.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from django.db import connection, connections
from django.template.loader import render_to_string
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from checks import runner, tasks
from checks.models import Check, CheckResult, CheckRun, ResultState
from releases import workflow
from releases.actors import SystemActor
from releases.board import PANELS, board_context, viewer_for
from releases.models import (
    ActorKind,
    AuditAction,
    AuditEvent,
    ItemState,
    Release,
    ReleaseItem,
    ReleaseStatus,
    Role,
    blocking_reasons,
)
from releases.views import FILTERS
from releases.workflow import WorkflowError
from tests import storm
from tests.conftest import PERSONAS, build_small_template, cache_of_its_own, item

QA_ITEM = "Unit tests pass"
DEVOPS_ITEM = "TLS certificates installed"
UNCHECKED_ITEM = "Screens reviewed"
HTMX = {"HX-Request": "true"}
NOWHERE = {"url": "http://127.0.0.1:9/"}
RUN_FORM = re.compile(r'<form class="run-checks" method="post" action="([^"]+)"')
# What each item names: "old" is retired, so "Merge everything" has nothing left to run.
LINKS = {
    QA_ITEM: ["api", "db"],
    DEVOPS_ITEM: ["tls"],
    "Smoke tests in production": ["api"],
    "Merge everything": ["old"],
}


class Recorder:
    """Stands in for checks.tasks.enqueue: what would have gone to the workers."""

    def __init__(self) -> None:
        self.sent: list[tuple[int, int, float]] = []

    def __call__(self, result_id: int, attempt: int, delay: float) -> None:
        self.sent.append((result_id, attempt, delay))


@pytest.fixture(autouse=True)
def own_cache(settings: Any) -> Iterator[None]:
    """Every person's count of runs starts at zero."""
    yield from cache_of_its_own(settings, "check-runs")


@pytest.fixture
def recorder(monkeypatch: pytest.MonkeyPatch) -> Recorder:
    sent = Recorder()
    monkeypatch.setattr(tasks, "enqueue", sent)
    return sent


def link(release: Release, users: dict[str, Any], links: dict[str, list[str]]) -> None:
    """Declare the checks named in `links` and link them to the items, as a checks file
    would."""
    for name in sorted({name for names in links.values() for name in names}):
        Check.objects.get_or_create(
            release=release, name=name, defaults={"kind": "http", "options": NOWHERE}
        )
    workflow.link_checks(
        release,
        checks_of={item(release, text).pk: names for text, names in links.items()},
        summary={"source": "t"},
        by=users["admin"],
    )


@pytest.fixture
def linked(release: Release, users: dict[str, Any]) -> Release:
    link(release, users, LINKS)
    Check.objects.filter(release=release, name="old").update(retired_at=timezone.now())
    release.refresh_from_db()
    return release


def run_url(release: Release) -> str:
    return reverse("checks:run", args=[release.version])


def board_url(release: Release) -> str:
    return reverse("releases:board", args=[release.version])


def row_of(html: str, entry: ReleaseItem) -> str:
    """The markup of one item's row on the board."""
    start = html.index(f'<li id="item-{entry.pk}"')
    end = html.find('<li id="item-', start + 1)
    return html[start : end if end != -1 else len(html)]


def messages_in(html: str) -> list[str]:
    return re.findall(r'<p class="message message--\w+">(.*?)</p>', html, re.S)


def run_names(run: CheckRun) -> list[str]:
    return sorted(run.results.values_list("subject__name", flat=True))


# --- running checks from the board -----------------------------------------------------


@pytest.mark.parametrize(
    ("scope", "names", "described"),
    [
        ({"item": "ITEM"}, ["api", "db"], "an item"),
        ({"phase": "Pre", "section": "Tests"}, ["api", "db"], "Pre › Tests"),
        ({}, ["api", "db", "tls"], "all checks"),
    ],
)
def test_it_runs_the_checks_of_the_scope_asked_for_and_sends_them_once_committed(
    linked: Release,
    as_user: Any,
    recorder: Recorder,
    django_capture_on_commit_callbacks: Any,
    scope: dict[str, str],
    names: list[str],
    described: str,
) -> None:
    data = {k: str(item(linked, QA_ITEM).pk) if v == "ITEM" else v for k, v in scope.items()}

    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        response = as_user("qa").post(run_url(linked), data, headers=HTMX)
        assert recorder.sent == [], "sent to the workers before the run was committed"

    assert len(callbacks) == 1
    assert response.status_code == 200
    run = CheckRun.objects.get()
    assert run.release == linked
    assert (run.requested_by_label, run.requested_by_kind, run.scope) == (
        "qa (QA)",
        ActorKind.PERSON,
        described,
    )
    assert run_names(run) == names
    results = list(run.results.all())
    assert {r.state for r in results} == {"queued"}
    assert sorted(recorder.sent) == sorted((r.pk, 1, 0.0) for r in results)
    assert messages_in(response.content.decode()) == [
        f"Running {len(names)} checks; their results appear here as they arrive."
    ]


def test_it_runs_each_check_once_however_many_items_name_it(
    linked: Release,
    as_user: Any,
    recorder: Recorder,
    django_capture_on_commit_callbacks: Any,
) -> None:
    with django_capture_on_commit_callbacks(execute=True):
        as_user("po").post(run_url(linked), {}, headers=HTMX)

    run = CheckRun.objects.get()
    assert CheckResult.objects.filter(run=run, subject__name="api").count() == 1
    assert len(recorder.sent) == run.results.count() == 3


def test_it_says_running_one_check_in_the_singular(
    linked: Release,
    as_user: Any,
    recorder: Recorder,
    django_capture_on_commit_callbacks: Any,
) -> None:
    with django_capture_on_commit_callbacks(execute=True):
        response = as_user("devops").post(
            run_url(linked), {"item": item(linked, DEVOPS_ITEM).pk}, headers=HTMX
        )

    assert messages_in(response.content.decode()) == [
        "Running 1 check; its result appears here as soon as it arrives."
    ]
    assert len(recorder.sent) == 1


def test_it_answers_htmx_with_the_messages_fragment(
    linked: Release, as_user: Any, recorder: Recorder, django_capture_on_commit_callbacks: Any
) -> None:
    with django_capture_on_commit_callbacks(execute=True):
        response = as_user("qa").post(run_url(linked), {}, headers=HTMX)

    html = response.content.decode()
    assert html.lstrip().startswith('<div id="messages" class="messages"')
    assert 'hx-swap-oob="innerHTML"' in html
    assert '<p class="message message--success">Running 3 checks' in html
    assert "<!doctype html>" not in html


def test_it_sends_a_plain_form_back_to_the_board_at_the_item(
    linked: Release, as_user: Any, recorder: Recorder, django_capture_on_commit_callbacks: Any
) -> None:
    client = as_user("qa")
    entry = item(linked, QA_ITEM)

    with django_capture_on_commit_callbacks(execute=True):
        for_item = client.post(run_url(linked), {"item": entry.pk})
        for_all = client.post(run_url(linked), {})

    assert for_item.status_code == for_all.status_code == 302
    assert for_item["Location"] == f"{board_url(linked)}#item-{entry.pk}"
    assert for_all["Location"] == board_url(linked)
    page = client.get(board_url(linked)).content.decode()
    assert messages_in(page) == [
        "Running 2 checks; their results appear here as they arrive.",
        # The item's two checks are still queued: "all" joins them.
        "Running 1 check; its result appears here as soon as it arrives. "
        "2 more were already running.",
    ]
    assert CheckRun.objects.count() == 2
    assert len(recorder.sent) == 3


@pytest.mark.parametrize(("persona", "status"), [("support", 403), ("outsider", 404)])
def test_it_refuses_to_run_checks_for_people_not_working_on_the_release(
    linked: Release,
    as_user: Any,
    recorder: Recorder,
    django_capture_on_commit_callbacks: Any,
    persona: str,
    status: int,
) -> None:
    with django_capture_on_commit_callbacks(execute=True):
        plain = as_user(persona).post(run_url(linked), {})
        htmx = as_user(persona).post(run_url(linked), {}, headers=HTMX)

    assert plain.status_code == htmx.status_code == status
    assert not CheckRun.objects.exists()
    assert recorder.sent == []


def test_it_sends_anonymous_visitors_to_log_in_instead_of_running(
    linked: Release, recorder: Recorder
) -> None:
    response = Client().post(run_url(linked), {})

    assert response.status_code == 302
    assert reverse("login") in response["Location"]
    assert not CheckRun.objects.exists()


def test_it_runs_checks_only_when_posted(linked: Release, as_user: Any) -> None:
    assert as_user("qa").get(run_url(linked)).status_code == 405
    assert not CheckRun.objects.exists()


@pytest.mark.parametrize(
    "scope",
    [
        {"item": "UNCHECKED"},
        {"item": "RETIRED"},
        {"phase": "Pre", "section": "UI"},
        {"phase": "Nowhere", "section": ""},
    ],
)
def test_it_warns_when_the_scope_has_no_checks_to_run(
    linked: Release,
    as_user: Any,
    recorder: Recorder,
    django_capture_on_commit_callbacks: Any,
    scope: dict[str, str],
) -> None:
    texts = {"UNCHECKED": UNCHECKED_ITEM, "RETIRED": "Merge everything"}
    data = {k: str(item(linked, texts[v]).pk) if v in texts else v for k, v in scope.items()}

    with django_capture_on_commit_callbacks(execute=True):
        response = as_user("qa").post(run_url(linked), data, headers=HTMX)

    assert response.status_code == 422
    assert '<p class="message message--warning">There are no automated checks to run here.</p>' in (
        response.content.decode()
    )
    assert not CheckRun.objects.exists()
    assert recorder.sent == []


def test_it_warns_that_a_release_without_checks_has_none_to_run(
    release: Release, as_user: Any, recorder: Recorder
) -> None:
    response = as_user("qa").post(run_url(release), {}, headers=HTMX)

    assert response.status_code == 422
    assert messages_in(response.content.decode()) == ["There are no automated checks to run here."]
    assert not CheckRun.objects.exists()


@pytest.mark.parametrize("data", [{"item": "abc"}, {"item": "0"}, {"phase": "x" * 301}])
def test_it_refuses_an_unclear_scope_without_starting_a_run(
    linked: Release, as_user: Any, recorder: Recorder, data: dict[str, str]
) -> None:
    client = as_user("qa")

    htmx = client.post(run_url(linked), data, headers=HTMX)
    plain = client.post(run_url(linked), data)

    assert htmx.status_code == 422
    assert messages_in(htmx.content.decode()) == [
        "Which checks to run was unclear; reload the page."
    ]
    assert plain.status_code == 302
    assert plain["Location"] == board_url(linked)
    assert not CheckRun.objects.exists()
    assert recorder.sent == []


def test_it_never_runs_another_releases_checks(
    linked: Release,
    users: dict[str, Any],
    as_user: Any,
    recorder: Recorder,
    django_capture_on_commit_callbacks: Any,
) -> None:
    other = workflow.create_release(
        build_small_template("other"), version="v9.9.9", title="Other", by=users["admin"]
    )
    workflow.assign(other, role=Role.QA, user=users["qa"], by=users["admin"])
    link(other, users, {QA_ITEM: ["api"]})

    with django_capture_on_commit_callbacks(execute=True):
        # An item of v1.2.3 asked for on the board of v9.9.9.
        response = as_user("qa").post(
            run_url(other), {"item": item(linked, QA_ITEM).pk}, headers=HTMX
        )

    assert response.status_code == 422
    assert not CheckRun.objects.exists()


# --- joining what is under way, and how many runs a person may start ----------------------

ALREADY_RUNNING = "Already running: results appear as they arrive."
TOO_MANY = re.compile(r"You have started (\d+) runs in the last minute; try again in (\d+) s\.")


def finish(release: Release) -> None:
    """Let every unfinished result end, as workers would have by now."""
    now = timezone.now()
    CheckResult.objects.filter(
        run__release=release, state__in=[ResultState.QUEUED, ResultState.RUNNING]
    ).update(state=ResultState.DONE, outcome="pass", reason="ok", finished_at=now, recorded_at=now)


def within_one_window() -> None:
    """Wait for the next window of the run limiter when this one is nearly over, so that
    every run the test starts counts in the same minute."""
    left = runner.RUN_WINDOW_SECONDS - time.time() % runner.RUN_WINDOW_SECONDS
    if left < 10:
        time.sleep(left + 0.1)


def test_it_joins_a_run_under_way_instead_of_starting_another(
    linked: Release, as_user: Any, recorder: Recorder, django_capture_on_commit_callbacks: Any
) -> None:
    client = as_user("qa")
    with django_capture_on_commit_callbacks(execute=True):
        client.post(run_url(linked), {}, headers=HTMX)
        again = client.post(run_url(linked), {}, headers=HTMX)

    assert again.status_code == 200
    assert messages_in(again.content.decode()) == [ALREADY_RUNNING]
    assert '<p class="message message--info">' in again.content.decode()
    assert CheckRun.objects.count() == 1
    assert CheckResult.objects.count() == len(recorder.sent) == 3


def test_it_queues_only_the_checks_that_have_nothing_under_way(
    linked: Release, as_user: Any, recorder: Recorder, django_capture_on_commit_callbacks: Any
) -> None:
    """The rule, check by check: a check with a queued or running result, in any run of
    the release, joins it; one whose results all finished is queued again."""
    client = as_user("qa")
    entry = item(linked, QA_ITEM)
    with django_capture_on_commit_callbacks(execute=True):
        client.post(run_url(linked), {"item": entry.pk}, headers=HTMX)
    first = CheckRun.objects.get()
    # A worker took "db"; "api" finished.
    first.results.filter(subject__name="db").update(state=ResultState.RUNNING)
    first.results.filter(subject__name="api").update(state=ResultState.DONE, outcome="pass")
    recorder.sent.clear()

    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(run_url(linked), {}, headers=HTMX)

    second = CheckRun.objects.exclude(pk=first.pk).get()
    assert run_names(second) == ["api", "tls"]
    assert sorted(recorder.sent) == sorted((r.pk, 1, 0.0) for r in second.results.all())
    assert messages_in(response.content.decode()) == [
        "Running 2 checks; their results appear here as they arrive. 1 more was already running."
    ]


@pytest.mark.django_db(transaction=True)
def test_two_presses_at_once_queue_each_check_once(
    small_template: Any,
    users: dict[str, Any],
    recorder: Recorder,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    release = workflow.create_release(
        small_template, version="v1.0.0", title="T", by=users["admin"]
    )
    for persona in ("qa", "devops"):
        workflow.assign(release, role=persona, user=users[persona], by=users["admin"])
    link(release, users, LINKS)
    queue = runner._queue

    def slowly(*args: Any, **kwargs: Any) -> runner.Launch:
        # The other press arrives while this one is still queueing its checks.
        time.sleep(0.3)
        return queue(*args, **kwargs)

    monkeypatch.setattr(runner, "_queue", slowly)
    clients = []
    for persona in ("qa", "devops"):
        client = Client(headers={"Accept-Language": "en"})
        client.force_login(users[persona])
        clients.append(client)
    together = threading.Barrier(len(clients))
    said: list[list[str]] = []

    def press(client: Client) -> None:
        try:
            together.wait(10)
            answer = client.post(run_url(release), {}, headers=HTMX)
            said.append(messages_in(answer.content.decode()))
        finally:
            connections.close_all()

    threads = [threading.Thread(target=press, args=(client,)) for client in clients]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)

    assert sorted(said) == [
        [ALREADY_RUNNING],
        ["Running 4 checks; their results appear here as they arrive."],
    ]
    assert CheckRun.objects.count() == 1
    assert CheckResult.objects.count() == len(recorder.sent) == 4


def test_it_refuses_a_person_an_eleventh_run_in_a_minute_and_says_when_to_try_again(
    linked: Release, as_user: Any, recorder: Recorder, settings: Any
) -> None:
    settings.CHECKS_RUNS_PER_MINUTE = 10
    within_one_window()
    devops = as_user("devops")
    for _ in range(10):
        started = devops.post(run_url(linked), {}, headers=HTMX)
        # Pressing again while they run joins them: that starts no run, so counts none.
        joined = devops.post(run_url(linked), {}, headers=HTMX)
        assert messages_in(joined.content.decode()) == [ALREADY_RUNNING]
        assert started.status_code == joined.status_code == 200
        finish(linked)

    refused = devops.post(run_url(linked), {}, headers=HTMX)

    assert refused.status_code == 429
    wait = int(refused["Retry-After"])
    assert 1 <= wait <= runner.RUN_WINDOW_SECONDS
    assert messages_in(refused.content.decode()) == [
        f"You have started 10 runs in the last minute; try again in {wait} s."
    ]
    assert '<div id="messages" class="messages"' in refused.content.decode()
    assert CheckRun.objects.count() == 10
    assert not CheckResult.objects.filter(state=ResultState.QUEUED).exists()
    # Without JavaScript the refusal is the board, saying the same.
    plain = devops.post(run_url(linked), {})
    assert (plain.status_code, plain["Location"]) == (302, board_url(linked))
    [told] = messages_in(devops.get(board_url(linked)).content.decode())
    assert TOO_MANY.fullmatch(told)
    assert CheckRun.objects.count() == 10
    # Another person is not held back by devops' runs...
    assert as_user("qa").post(run_url(linked), {}, headers=HTMX).status_code == 200
    assert CheckRun.objects.count() == 11
    # ...and devops may still join what qa started.
    joined = devops.post(run_url(linked), {}, headers=HTMX)
    assert messages_in(joined.content.decode()) == [ALREADY_RUNNING]
    finish(linked)
    # Machines are not counted as people: `verify` and beat run whenever they must.
    launch = runner.start_run(
        linked,
        Check.objects.filter(release=linked),
        by=SystemActor("manage.py verify"),
        scope="all checks",
        enqueue=recorder,
    )
    assert len(launch.started) == 3


def test_it_says_one_run_in_the_singular(
    linked: Release, as_user: Any, recorder: Recorder, settings: Any
) -> None:
    settings.CHECKS_RUNS_PER_MINUTE = 1
    within_one_window()
    client = as_user("qa")
    client.post(run_url(linked), {}, headers=HTMX)
    finish(linked)

    refused = client.post(run_url(linked), {}, headers=HTMX)

    wait = refused["Retry-After"]
    assert messages_in(refused.content.decode()) == [
        f"You have started 1 run in the last minute; try again in {wait} s."
    ]


def test_the_storm_script_counts_started_joined_and_throttled_presses(
    live_server: Any,
    linked: Release,
    recorder: Recorder,
    monkeypatch: pytest.MonkeyPatch,
    settings: Any,
    capsys: pytest.CaptureFixture[str],
) -> None:
    settings.CHECKS_RUNS_PER_MINUTE = 2
    # Plain HTTP, as under `make run`: cookies that only travel over HTTPS would not.
    settings.SESSION_COOKIE_SECURE = settings.CSRF_COOKIE_SECURE = False
    within_one_window()
    # The workers are slower than the presses: everything after the first press joins.
    counted = storm.storm(
        live_server.url, 6, version=linked.version, username="devops", password="pw", parallel=3
    )
    assert counted == {"started": 1, "joined": 5}
    assert CheckRun.objects.count() == 1

    def at_once(result_id: int, _attempt: int, _delay: float) -> None:
        now = timezone.now()
        CheckResult.objects.filter(pk=result_id).update(
            state=ResultState.DONE, outcome="pass", finished_at=now, recorded_at=now
        )

    # The workers are faster than the presses: each press may start a run, until the
    # limit. One at a time, so each press finds the one before it finished.
    finish(linked)
    monkeypatch.setattr(tasks, "enqueue", at_once)
    argv = [live_server.url, "--presses", "4", "--release", linked.version, "--password", "pw"]
    assert storm.main([*argv, "--parallel", "1"]) == 0

    printed = capsys.readouterr().out
    assert re.fullmatch(r"4 presses in \d+\.\d s: 1 started, 0 joined, 3 throttled\n", printed)
    assert CheckRun.objects.count() == 2


# --- results on the board ----------------------------------------------------------------


def test_it_shows_each_checks_latest_result_on_its_item(
    linked: Release, as_user: Any, users: dict[str, Any]
) -> None:
    entry = item(linked, QA_ITEM)
    workflow.record_check_result(
        entry,
        check="api",
        passed=False,
        outcome="error",
        reason="timed_out",
        detail="no answer within the timeout",
        latency_ms=1234,
    )
    workflow.record_check_result(entry, check="db", passed=True, detail="42 rows", latency_ms=7)

    row = row_of(as_user("qa").get(board_url(linked)).content.decode(), entry)

    assert '<span class="badge badge--check-error">api: could not be judged</span>' in row
    assert '<span class="check__reason">timed out</span>' in row
    assert '<span class="check__latency">1234 ms</span>' in row
    assert '<span class="check__evidence">no answer within the timeout</span>' in row
    assert '<span class="badge badge--check-pass">db: passed</span>' in row
    assert '<span class="check__latency">7 ms</span>' in row
    assert '<span class="check__evidence">42 rows</span>' in row
    # A passing check shows no reason: "all good" would only be noise.
    assert "all good" not in row
    assert row.count('<span class="check__reason">') == 1
    assert re.search(r"badge--check-error.*?<time datetime=\"", row, re.S)


def test_it_shows_the_newest_result_of_a_check_replacing_the_older_one(
    linked: Release, as_user: Any
) -> None:
    entry = item(linked, DEVOPS_ITEM)
    workflow.record_check_result(entry, check="tls", passed=False, detail="expired", latency_ms=5)
    workflow.record_check_result(entry, check="tls", passed=True, detail="valid", latency_ms=6)

    row = row_of(as_user("devops").get(board_url(linked)).content.decode(), entry)

    assert "tls: passed" in row
    assert "expired" not in row
    assert '<span class="check__evidence">valid</span>' in row


def test_it_says_a_check_has_not_run_yet_before_any_result(linked: Release, as_user: Any) -> None:
    html = as_user("qa").get(board_url(linked)).content.decode()

    row = row_of(html, item(linked, QA_ITEM))
    assert '<span class="badge badge--check-none">api: not run yet</span>' in row
    assert '<span class="badge badge--check-none">db: not run yet</span>' in row
    assert "check__latency" not in row
    assert "<time" not in row.split('class="item__checks"')[1].split("</ul>")[0]
    assert 'class="item__checks"' not in row_of(html, item(linked, UNCHECKED_ITEM))


@pytest.mark.parametrize("persona", ["qa", "po", "admin"])
def test_it_offers_the_run_buttons_to_people_working_on_the_release(
    linked: Release, as_user: Any, persona: str
) -> None:
    html = as_user(persona).get(board_url(linked)).content.decode()

    actions = RUN_FORM.findall(html)
    # All, one per section with checks (Code, Tests, Infra, Run), one per item with checks.
    assert actions == ["/releases/v1.2.3/checks/run/"] * (1 + 4 + 4)
    assert re.search(r">\s*Run all checks\s*</button>", html)
    assert re.search(r">\s*Run this section(&#x27;|')s checks\s*</button>", html)
    assert "Run this item" in row_of(html, item(linked, QA_ITEM))
    assert "Run this item" not in row_of(html, item(linked, UNCHECKED_ITEM))


@pytest.mark.parametrize(
    ("persona", "summary"),
    [
        ("qa", "N/A, blocked, note, evidence, checks"),
        ("po", "Checks"),
        ("admin", "N/A, blocked, note, evidence, checks"),
    ],
)
def test_an_items_run_button_is_folded_into_the_items_menu(
    linked: Release, as_user: Any, persona: str, summary: str
) -> None:
    html = as_user(persona).get(board_url(linked)).content.decode()

    row = row_of(html, item(linked, QA_ITEM))
    menu = re.search(
        r'<details class="item__more">\s*<summary>(.*?)</summary>(.*?)</details>', row, re.S
    )
    assert menu, "the item has no menu"
    assert menu.group(1) == summary
    assert "Run this item" in menu.group(2)
    # Nothing of the row outside its menu runs its checks.
    assert "Run this item" not in row.replace(menu.group(0), "")
    # An item without checks has nothing to run, and offers nothing to run.
    assert "Run this item" not in row_of(html, item(linked, UNCHECKED_ITEM))


def test_it_shows_the_results_but_no_run_buttons_to_support(linked: Release, as_user: Any) -> None:
    html = as_user("support").get(board_url(linked)).content.decode()

    assert RUN_FORM.findall(html) == []
    assert "/releases/v1.2.3/checks/run/" not in html
    assert "api: not run yet" in row_of(html, item(linked, QA_ITEM))


def test_it_offers_no_run_buttons_on_a_release_without_checks(
    release: Release, as_user: Any
) -> None:
    html = as_user("qa").get(board_url(release)).content.decode()

    assert "/releases/v1.2.3/checks/run/" not in html
    assert 'class="item__checks"' not in html


def render_board(release: Release, users: dict[str, Any]) -> tuple[int, str]:
    viewer = viewer_for(users["qa"], release, language="en")
    with CaptureQueriesContext(connection) as captured:
        context = {**board_context(release, viewer), "show": "", "filters": FILTERS}
        names = ("releases/board.html#board", *PANELS["board"])
        html = "".join(render_to_string(name, context) for name in names)
    return len(captured.captured_queries), html


def test_it_renders_the_board_in_the_same_queries_with_and_without_checks(
    release: Release, users: dict[str, Any]
) -> None:
    checked = workflow.create_release(
        build_small_template("checked"), version="v2.0.0", title="Checked", by=users["admin"]
    )
    for persona in PERSONAS:
        workflow.assign(checked, role=persona, user=users[persona], by=users["admin"])
    entries = list(checked.items.order_by("position"))
    link(checked, users, {entry.text: ["api", f"c{n}"] for n, entry in enumerate(entries)})
    for entry in entries[::2]:
        workflow.record_check_result(entry, check="api", passed=True, latency_ms=3)
    checked.refresh_from_db()

    plain_count, plain_html = render_board(release, users)
    checked_count, checked_html = render_board(checked, users)

    assert "item__checks" not in plain_html
    assert checked_html.count('class="badge badge--check-') == 2 * len(entries)
    assert "api: passed" in checked_html
    assert checked_count == plain_count


# --- fresh evidence ----------------------------------------------------------------------


def age_result(entry: ReleaseItem, check: str, *, by: timedelta) -> None:
    """Make a check's last answer on an item `by` old, as if nothing had run since."""
    entry.refresh_from_db()
    results = dict(entry.check_results)
    results[check] = {**results[check], "at": (timezone.now() - by).isoformat()}
    ReleaseItem.objects.filter(pk=entry.pk).update(check_results=results)


@pytest.fixture
def stale(ready_release: Release, users: dict[str, Any], settings: Any) -> Release:
    """Ready to approve, but the check on the ticked QA item last answered a day ago."""
    settings.CHECKS_MAX_AGE = 60
    link(ready_release, users, {QA_ITEM: ["api"]})
    entry = item(ready_release, QA_ITEM)
    workflow.record_check_result(entry, check="api", passed=True, latency_ms=3)
    age_result(entry, "api", by=timedelta(days=1))
    ready_release.refresh_from_db()
    return ready_release


def test_it_blocks_approval_while_a_ticked_items_checks_answered_too_long_ago(
    stale: Release, users: dict[str, Any]
) -> None:
    reasons = [r for r in blocking_reasons(stale) if r.code == "checks-stale"]

    assert len(reasons) == 1
    assert reasons[0].message == ("No recent result of api on “Unit tests pass”: re-run the checks")
    with pytest.raises(WorkflowError, match="No recent result of api"):
        workflow.approve(stale, by=users["po"])
    assert stale.active_approval() is None


def test_it_lets_a_fresh_pass_clear_the_stale_evidence(
    stale: Release, users: dict[str, Any]
) -> None:
    workflow.record_check_result(item(stale, QA_ITEM), check="api", passed=True, latency_ms=3)

    assert "checks-stale" not in {r.code for r in blocking_reasons(stale)}
    approval = workflow.approve(stale, by=users["po"])
    assert approval.revoked_at is None
    stale.refresh_from_db()
    assert stale.status == ReleaseStatus.APPROVED


def test_it_counts_a_result_within_the_maximum_age_as_fresh(
    stale: Release, users: dict[str, Any]
) -> None:
    age_result(item(stale, QA_ITEM), "api", by=timedelta(seconds=30))

    assert "checks-stale" not in {r.code for r in blocking_reasons(stale)}
    assert workflow.approve(stale, by=users["po"]).revoked_at is None


def test_it_treats_a_linked_check_that_never_answered_as_stale(
    ready_release: Release, users: dict[str, Any]
) -> None:
    link(ready_release, users, {QA_ITEM: ["api"]})

    reasons = [r for r in blocking_reasons(ready_release) if r.code == "checks-stale"]

    assert [r.message for r in reasons] == [
        "No recent result of api on “Unit tests pass”: re-run the checks"
    ]


# --- a failure beside a person's decision ------------------------------------------------


@pytest.fixture
def approved_with_na(release: Release, users: dict[str, Any]) -> Release:
    """Approved, with the QA item checked by "api" and marked N/A by QA before signing."""
    link(release, users, {QA_ITEM: ["api"]})
    for entry in release.items.filter(before_gate=True).exclude(text=QA_ITEM):
        workflow.tick(entry, by=users[entry.owner_role])
    workflow.mark_not_applicable(
        item(release, QA_ITEM), by=users["qa"], reason="covered by the integration suite"
    )
    for role in Role.leads():
        workflow.sign_off(release, role=role, phase="Pre", by=users[role])
    workflow.approve(release, by=users["po"])
    release.refresh_from_db()
    return release


def test_it_shows_a_failing_check_beside_a_persons_na_without_revoking_approval(
    approved_with_na: Release, users: dict[str, Any], as_user: Any
) -> None:
    release = approved_with_na
    approval = release.active_approval()
    assert approval is not None

    workflow.record_check_result(
        item(release, QA_ITEM), check="api", passed=False, detail="HTTP 500 from /health"
    )

    entry = item(release, QA_ITEM)
    assert entry.state == ItemState.NOT_APPLICABLE
    assert entry.reason == "covered by the integration suite"
    assert entry.changed_by == users["qa"]
    assert entry.check_failure == "HTTP 500 from /health"
    release.refresh_from_db()
    assert release.status == ReleaseStatus.APPROVED
    assert release.active_approval() == approval
    assert not AuditEvent.objects.filter(action=AuditAction.APPROVAL_REVOKED).exists()
    assert AuditEvent.objects.filter(action=AuditAction.CHECK_FAILED, target=QA_ITEM).exists()
    assert "check-failed" not in {r.code for r in blocking_reasons(release)}
    row = row_of(as_user("qa").get(board_url(release)).content.decode(), entry)
    assert "<strong>Automated check failing:</strong> HTTP 500 from /health" in row
    assert '<span class="badge badge--check-fail">api: failed</span>' in row


def test_it_revokes_approval_when_a_check_fails_beside_a_tick(
    approved_with_na: Release, users: dict[str, Any]
) -> None:
    # The contrast: the same failure beside a tick is a reason to stop.
    release = approved_with_na
    link(release, users, {DEVOPS_ITEM: ["tls"]})

    workflow.record_check_result(
        item(release, DEVOPS_ITEM), check="tls", passed=False, detail="certificate expired"
    )

    entry = item(release, DEVOPS_ITEM)
    assert entry.state == ItemState.DONE
    assert entry.check_failure == "certificate expired"
    release.refresh_from_db()
    assert release.active_approval() is None
    assert release.status == ReleaseStatus.IN_PROGRESS
    assert AuditEvent.objects.filter(action=AuditAction.APPROVAL_REVOKED).count() == 1
