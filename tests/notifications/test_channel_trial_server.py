"""A channel's trial through the web server: it waits on the receiver without holding
one of the page threads."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from django.conf import settings
from django.test import Client

from tests.checks.standin import Reply, Seen, stand_in
from tests.notifications.conftest import make_channel
from tests.servers import WebServer, cookie_header, serving_the_test_database

# How long the receiver may hold the trial before the test gives up on it.
HELD_SECONDS = 30


@pytest.fixture
def one_page_thread(transactional_db: None, tmp_path: Path) -> Iterator[WebServer]:
    """A web process with a single page thread, which a trial held on it would take."""
    # The receiver stands in on 127.0.0.1.
    with serving_the_test_database(
        tmp_path, REDIS_URL="", WEB_THREADS="1", NOTIFY_ALLOW_PRIVATE="1"
    ) as running:
        yield running


def test_a_trial_waiting_on_its_receiver_leaves_the_pages_served(
    one_page_thread: WebServer, users: dict[str, Any]
) -> None:
    arrived, answer_now = threading.Event(), threading.Event()

    def receiver(seen: Seen) -> Reply:
        arrived.set()
        answer_now.wait(HELD_SECONDS)
        return Reply(200, body="received")

    client = Client()
    client.force_login(users["admin"])
    session = {settings.SESSION_COOKIE_NAME: client.cookies[settings.SESSION_COOKIE_NAME].value}
    with stand_in(receiver) as receiving:
        channel = make_channel("room", kind="teams", url=f"{receiving.url}/flow", secret_env="")
        with httpx.Client(base_url=one_page_thread.url, timeout=HELD_SECONDS + 10) as http:
            channels = http.get("/notifications/channels/", headers=cookie_header_of(session))
            channels.raise_for_status()
            csrf = channels.cookies["csrftoken"]
            trial: dict[str, httpx.Response] = {}

            def try_it() -> None:
                trial["answer"] = http.post(
                    f"/notifications/channels/{channel.pk}/test/",
                    headers={
                        **cookie_header_of({**session, "csrftoken": csrf}),
                        "X-CSRFToken": csrf,
                        "Accept-Language": "en",
                    },
                )

            trying = threading.Thread(target=try_it)
            trying.start()
            try:
                assert arrived.wait(10), "the trial never reached its receiver"
                # Held by the receiver now; a page still gets its thread.
                page = http.get(
                    "/notifications/channels/", headers=cookie_header_of(session), timeout=10
                )
            finally:
                answer_now.set()
                trying.join(HELD_SECONDS + 10)

    assert page.status_code == 200
    assert "room" in page.text
    assert trial["answer"].status_code == 200
    assert "received" in trial["answer"].text
    assert "the Workflow&#x27;s flow answered HTTP 200 itself" in trial["answer"].text


def cookie_header_of(cookies: dict[str, str]) -> dict[str, str]:
    return {"Cookie": cookie_header(cookies)}
