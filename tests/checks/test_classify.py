"""How an attempt that did not pass is classified: what the worker could not reach, a
credential pasted with white space, the server's word on retrying, answers too big or
too slow, and the evidence a result keeps for each reader's language.

Stand-ins answer on 127.0.0.1; a name that must not resolve, or a route that must not
exist, is made so by replacing the socket call that would look it up, so nothing leaves
the machine.
"""

from __future__ import annotations

import errno
import gzip
import re
import socket
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from checks import runner
from checks.kinds import client, http, openai
from checks.kinds.base import CheckError, Context, Reason, Said, as_said
from checks.models import Check, CheckResult
from releases.actors import SystemActor
from releases.models import CheckOutcome, CheckReason, ItemState, Release
from tests.checks.protocol_standins import closed_port
from tests.checks.standin import Reply, stand_in
from tests.checks.vendors import OPENAI_KEY, OpenAI, openai_error
from tests.conftest import item

QA_ITEM = "Unit tests pass"


def run_http(url: str) -> CheckError:
    with pytest.raises(CheckError) as caught:
        http.run(Context(options={"url": url}, release_version="v1.0.0", env={}))
    return caught.value


def openai_check(url: str = "") -> Check:
    # The model list alone: these tests are about how an answer is classified.
    options: dict[str, Any] = {"secret_env": "OPENAI_API_KEY", "probe": False}
    if url:
        options["base_url"] = url
    return Check(name="openai", kind="openai", options=options)


@pytest.fixture
def openai_key(monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("OPENAI_API_KEY", OPENAI_KEY)
    return OPENAI_KEY


# --- a vendor the worker cannot reach ------------------------------------------------------


@pytest.fixture
def no_dns(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every name but the loopback address fails to resolve, as getaddrinfo reports it
    (https://docs.python.org/3/library/socket.html#socket.gaierror)."""
    resolve = socket.getaddrinfo

    def unresolvable(host: Any, *args: Any, **kwargs: Any) -> Any:
        if host in ("127.0.0.1", b"127.0.0.1"):
            return resolve(host, *args, **kwargs)
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    monkeypatch.setattr(socket, "getaddrinfo", unresolvable)


def test_it_says_the_worker_cannot_reach_a_name_that_does_not_resolve(
    no_dns: None, openai_key: str
) -> None:
    """The openai kind's production host, api.openai.com, as a worker without DNS sees
    it: nothing is known of OpenAI, so it is not `vendor_down`."""
    with pytest.raises(CheckError) as caught:
        openai.run(
            Context(
                options={"secret_env": "OPENAI_API_KEY", "models": ["gpt-4o-mini"]},
                release_version="v1.0.0",
                env={"OPENAI_API_KEY": openai_key},
            )
        )

    error = caught.value
    assert (error.reason, error.permanent) == (Reason.UNREACHABLE, False)
    assert error.evidence == "the worker cannot reach api.openai.com (name does not resolve)"


def test_it_says_the_worker_cannot_reach_a_host_that_refuses_the_connection() -> None:
    port = closed_port()

    error = run_http(f"http://127.0.0.1:{port}/health")

    assert (error.reason, error.permanent) == (Reason.UNREACHABLE, False)
    assert error.evidence == f"the worker cannot reach 127.0.0.1:{port} (connection refused)"


@pytest.mark.parametrize("code", [errno.EHOSTUNREACH, errno.ENETUNREACH])
def test_it_says_the_worker_has_no_route_to_a_host(
    code: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """connect() failing with EHOSTUNREACH or ENETUNREACH, as the kernel reports a
    missing route (https://man7.org/linux/man-pages/man2/connect.2.html)."""

    def no_route(*args: Any, **kwargs: Any) -> socket.socket:
        raise OSError(code, "No route to host")

    monkeypatch.setattr(socket, "create_connection", no_route)

    error = run_http("http://10.255.255.1/health")

    assert (error.reason, error.permanent) == (Reason.UNREACHABLE, False)
    assert error.evidence == "the worker cannot reach 10.255.255.1 (no route to host)"


def test_it_retries_a_vendor_it_cannot_reach_and_ends_as_an_error(settings: Any) -> None:
    settings.CHECKS_MAX_ATTEMPTS = 2
    check = Check(name="api", kind="http", options={"url": f"http://127.0.0.1:{closed_port()}/"})

    first = runner.judge(check, "v1.0.0", attempt=1)
    last = runner.judge(check, "v1.0.0", attempt=2)

    assert (first.outcome, first.reason) == (CheckOutcome.ERROR, CheckReason.UNREACHABLE)
    assert first.retry_in is not None
    assert (last.outcome, last.reason, last.retry_in) == (
        CheckOutcome.ERROR,
        CheckReason.UNREACHABLE,
        None,
    )


# --- a credential pasted with white space ---------------------------------------------------


@pytest.mark.parametrize(
    ("value", "evidence"),
    [
        (OPENAI_KEY + "\n", "OPENAI_API_KEY ends with a newline"),
        (OPENAI_KEY + "\r\n", "OPENAI_API_KEY ends with a newline"),
        (" " + OPENAI_KEY, "OPENAI_API_KEY starts with a space"),
        (OPENAI_KEY + " ", "OPENAI_API_KEY ends with a space"),
        (OPENAI_KEY[:10] + "\n" + OPENAI_KEY[10:], "OPENAI_API_KEY contains a line break"),
    ],
)
def test_it_refuses_a_key_pasted_with_white_space_naming_only_the_variable(
    value: str, evidence: str
) -> None:
    context = Context(
        options={"secret_env": "OPENAI_API_KEY"},
        release_version="v1.0.0",
        env={"OPENAI_API_KEY": value},
    )

    with pytest.raises(CheckError) as caught:
        context.secret()

    error = caught.value
    assert (error.reason, error.permanent, error.evidence) == (
        Reason.MISCONFIGURED,
        True,
        evidence,
    )
    assert OPENAI_KEY[:10] not in f"{error} {error.said.as_json()}"


@pytest.mark.parametrize(
    ("ca_file", "evidence"),
    [
        ("/nonexistent/ca.pem", "ca_file /nonexistent/ca.pem does not exist"),
        ("/", "ca_file / is not a regular file"),
    ],
)
def test_it_reports_a_ca_file_it_cannot_load_as_misconfigured_not_as_the_answer(
    openai_key: str, ca_file: str, evidence: str
) -> None:
    check = openai_check()
    check.options["ca_file"] = ca_file
    finding = runner.judge(check, "v1.0.0", attempt=1)

    assert (finding.outcome, finding.reason, finding.retry_in) == (
        CheckOutcome.FAIL,
        CheckReason.MISCONFIGURED,
        None,
    )
    assert finding.evidence == evidence


def test_it_never_sends_a_key_with_a_leading_space_nor_retries_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """With its space the key would reach OpenAI and be refused (401 invalid_api_key,
    https://platform.openai.com/docs/guides/error-codes): a failure that blames the
    key's value, when it is how it was pasted."""
    monkeypatch.setenv("OPENAI_API_KEY", " " + OPENAI_KEY)
    with stand_in(OpenAI()) as server:
        finding = runner.judge(openai_check(server.url), "v1.0.0", attempt=1)
        sent = list(server.requests)

    assert sent == []
    assert (finding.outcome, finding.reason, finding.retry_in) == (
        CheckOutcome.FAIL,
        CheckReason.MISCONFIGURED,
        None,
    )
    assert finding.evidence == "OPENAI_API_KEY starts with a space"


# --- the server's word on retrying ---------------------------------------------------------


def test_it_retries_an_answer_the_server_marks_retryable_though_the_kind_would_fail_it(
    openai_key: str,
) -> None:
    """OpenAI marks an answer retryable with `x-should-retry: true`, which its own SDK
    obeys before anything else (https://github.com/openai/openai-python, `_should_retry`
    in src/openai/_base_client.py); a 401 is otherwise a refused key
    (https://platform.openai.com/docs/guides/error-codes)."""

    def answer(_request: Any) -> Reply:
        return openai_error(
            401, "Incorrect API key provided.", "invalid_request_error", "invalid_api_key",
            **{"x-should-retry": "true"},
        )  # fmt: skip

    with stand_in(answer) as server:
        finding = runner.judge(openai_check(server.url), "v1.0.0", attempt=1)

    assert (finding.outcome, finding.reason) == (CheckOutcome.ERROR, CheckReason.AUTH_FAILED)
    assert finding.retry_in is not None
    assert "the server says to try again" in finding.evidence


def test_it_ends_a_5xx_the_server_says_not_to_retry_as_an_error_at_once(
    openai_key: str,
) -> None:
    """A 500 server_error (https://platform.openai.com/docs/guides/error-codes) with
    `x-should-retry: false`: nothing was judged, so it is no failure; and the server
    says another try would not help."""

    def answer(_request: Any) -> Reply:
        return openai_error(
            500, "The server had an error while processing your request.", "server_error", None,
            **{"x-should-retry": "false"},
        )  # fmt: skip

    with stand_in(answer) as server:
        finding = runner.judge(openai_check(server.url), "v1.0.0", attempt=1)

    assert (finding.outcome, finding.reason, finding.retry_in) == (
        CheckOutcome.ERROR,
        CheckReason.VENDOR_DOWN,
        None,
    )
    assert finding.evidence == "models: HTTP 500; the server says not to try again"


def test_it_does_not_retry_a_5xx_the_server_says_not_to_even_when_the_kind_would() -> None:
    """The http kind reads a 503 itself (RFC 9110 §15.6.4,
    https://www.rfc-editor.org/rfc/rfc9110#section-15.6.4) and would retry it."""
    answer = Reply(status=503, headers={"x-should-retry": "false"})
    with stand_in(lambda _request: answer) as server:
        finding = runner.judge(
            Check(name="api", kind="http", options={"url": server.url}), "v1.0.0", attempt=1
        )
        tries = len(server.requests)

    assert (finding.outcome, finding.reason, finding.retry_in, tries) == (
        CheckOutcome.ERROR,
        CheckReason.VENDOR_DOWN,
        None,
        1,
    )


def test_it_weighs_the_servers_word_only_against_the_answer_it_came_with() -> None:
    answer = Reply(status=500, headers={"x-should-retry": "false"})
    port = closed_port()
    with (
        stand_in(lambda _request: answer) as server,
        client.attempt(10.0) as current,
        client.http_client() as session,
    ):
        client.send(session, "GET", server.url)
        said_of_the_answer = current.server_says_retry
        # A later request that gets no answer at all: the 500's word is not about it.
        with pytest.raises(CheckError):
            client.send(session, "GET", f"http://127.0.0.1:{port}/")

    assert (said_of_the_answer, current.server_says_retry) == (False, None)


def test_it_ends_the_attempt_when_the_vendor_asks_for_a_longer_wait_than_a_retry(
    openai_key: str,
) -> None:
    """A 429 rate_limit_exceeded with Retry-After in seconds (RFC 9110 §10.2.3,
    https://www.rfc-editor.org/rfc/rfc9110#section-10.2.3): an hour is past what a retry
    waits, and trying sooner would only be refused again."""
    vendor = OpenAI(mode="rate_limited", limit_headers={"retry-after": "3600"})
    with stand_in(vendor) as server:
        before = datetime.now(UTC)
        finding = runner.judge(openai_check(server.url), "v1.0.0", attempt=1)
        after = datetime.now(UTC)

    assert (finding.outcome, finding.reason, finding.retry_in) == (
        CheckOutcome.ERROR,
        CheckReason.RATE_LIMITED,
        None,
    )
    shown = re.fullmatch(
        r"models: HTTP 429; the vendor asks to wait 3600 s; try again after (\d\d:\d\d) UTC",
        finding.evidence,
    )
    assert shown is not None
    # Rounded up to the minute, so that "after" is never a moment too soon.
    assert shown.group(1) in {
        f"{moment + timedelta(seconds=3600 + 60):%H:%M}" for moment in (before, after)
    }


# --- answers too big or too slow -----------------------------------------------------------


def test_it_calls_an_answer_past_the_size_limit_unreadable() -> None:
    with stand_in(lambda _request: Reply(body=b"x" * (2 * 1024 * 1024))) as server:
        error = run_http(server.url)

    assert (error.reason, error.permanent) == (Reason.BAD_RESPONSE, False)
    assert "is larger than 1048576 bytes" in error.evidence


def test_it_counts_the_size_of_a_compressed_answer_once_it_is_unpacked() -> None:
    """Content-Encoding gzip (RFC 9110 §8.4.1.3,
    https://www.rfc-editor.org/rfc/rfc9110#section-8.4.1.3): a couple of kilobytes on
    the wire that unpack to 2 MiB."""
    packed = gzip.compress(b"0" * (2 * 1024 * 1024))
    answer = Reply(body=packed, headers={"Content-Encoding": "gzip"})
    with stand_in(lambda _request: answer) as server:
        error = run_http(server.url)

    assert len(packed) < 10_000
    assert (error.reason, error.permanent) == (Reason.BAD_RESPONSE, False)


@pytest.fixture
def dripping() -> Iterator[str]:
    """A server that answers 200 with an 8-byte body and sends it a byte a second, each
    byte well within the read timeout; it stops by itself after the eighth."""
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(10)
    done = threading.Event()

    def serve() -> None:
        try:
            connection, _address = listener.accept()
        except OSError:
            return
        with connection:
            connection.settimeout(5)
            received = b""
            while b"\r\n\r\n" not in received:
                chunk = connection.recv(4096)
                if not chunk:
                    return
                received += chunk
            try:
                connection.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 8\r\n\r\n")
                for _ in range(8):
                    if done.wait(1.0):
                        return
                    connection.sendall(b"x")
            except OSError:
                return  # the client gave up, as the test wants

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{listener.getsockname()[1]}/"
    finally:
        done.set()
        listener.close()
        thread.join(5)


def test_it_ends_an_attempt_at_its_deadline_however_slowly_the_answer_drips(
    dripping: str, settings: Any
) -> None:
    settings.CHECKS_ATTEMPT_SECONDS = 2
    started = time.monotonic()

    finding = runner.judge(
        Check(name="api", kind="http", options={"url": dripping}), "v1.0.0", attempt=1
    )

    took = time.monotonic() - started
    assert (finding.outcome, finding.reason) == (CheckOutcome.ERROR, CheckReason.TIMED_OUT)
    assert took < 2 + 1.0
    assert "within the attempt's 2 s" in finding.evidence


def test_it_sends_nothing_once_the_attempt_is_over() -> None:
    with (
        stand_in(lambda _request: Reply()) as server,
        client.attempt(0.0),
        client.http_client() as session,
        pytest.raises(CheckError) as caught,
    ):
        client.send(session, "GET", server.url)

    assert (caught.value.reason, server.requests) == (Reason.TIMED_OUT, [])


# --- the evidence a result keeps -------------------------------------------------------------


def test_it_keeps_the_evidence_as_a_message_and_its_values_on_the_result_and_the_item(
    release: Release, django_capture_on_commit_callbacks: Any
) -> None:
    sent: list[tuple[int, int, float]] = []

    def enqueue(result_id: int, attempt: int, delay: float) -> None:
        sent.append((result_id, attempt, delay))

    with stand_in(lambda _request: Reply(status=404)) as server:
        check = Check.objects.create(
            release=release, name="api", kind="http", options={"url": server.url}
        )
        release.items.filter(text=QA_ITEM).update(checks=["api"])
        with django_capture_on_commit_callbacks(execute=True):
            runner.start_run(release, [check], by=SystemActor("tests"), scope="", enqueue=enqueue)
        result_id, attempt, _delay = sent.pop()
        runner.execute(result_id, attempt, enqueue=enqueue)

    result = CheckResult.objects.get(pk=result_id)
    said = Said.from_json(result.said)
    assert said is not None
    assert said.english() == result.evidence == "HTTP 404, expected 200"
    entry = item(release, QA_ITEM)
    assert entry.state == ItemState.FAILED
    assert entry.check_results["api"]["said"] == result.said
    assert entry.check_results["api"]["evidence"] == result.evidence


def test_it_shows_plain_evidence_with_a_percent_sign_as_it_was_written() -> None:
    evidence = as_said("99% of requests failed")

    assert Said.from_json(evidence.as_json()) == evidence
    assert (evidence.english(), evidence.translated()) == ("99% of requests failed",) * 2
