"""The embedded broker (deploycheck.broker): a folder that many processes write while one
reads, where every message arrives whole and exactly once, and a file that is not a
message is set aside instead of stopping the worker."""

from __future__ import annotations

import json
import multiprocessing
import os
import random
import subprocess
import sys
import time
from pathlib import Path
from queue import Empty
from typing import Any

import kombu
import pytest

ROOT = Path(__file__).resolve().parent.parent
TRANSPORT = "deploycheck.broker:Transport"
PRODUCERS = 8
MESSAGES_EACH = 10
# Some 500 KB of JSON: encoding and writing a message take long enough that a reader
# polling the folder meets files still being written, as a worker meets a burst of checks.
PADDING = ["x" * 100] * 5000


def options(root: Path) -> dict[str, Any]:
    return {
        "data_folder_in": str(root / "queue"),
        "data_folder_out": str(root / "queue"),
        "control_folder": str(root / "control"),
        # The reader looks again at once: the tightest race with the writers.
        "polling_interval": 0,
    }


def connect(root: Path) -> kombu.Connection:
    # No folder is made here: the transport makes its own.
    return kombu.Connection("filesystem://", transport=TRANSPORT, transport_options=options(root))


def produce(root: Path, producer: int, start_at: float) -> None:
    """Publish MESSAGES_EACH messages, up to a tenth of a second apart. The reader takes
    the oldest file first, so it only meets a file being written when it has caught up."""
    with connect(root) as connection:
        time.sleep(max(0.0, start_at - time.time()))
        queue = connection.SimpleQueue("race")
        for number in range(MESSAGES_EACH):
            queue.put({"producer": producer, "number": number, "padding": PADDING})
            time.sleep(random.random() * 0.1)
        queue.close()


def test_it_delivers_every_message_once_while_many_processes_write_and_one_reads(
    tmp_path: Path,
) -> None:
    spawn = multiprocessing.get_context("spawn")
    # Every process declares the queue at the same moment, so its exchange's table of
    # bindings is created by several at once, and publishing begins straight after.
    start_at = time.time() + 3
    producers = [
        spawn.Process(target=produce, args=(tmp_path, index, start_at))
        for index in range(PRODUCERS)
    ]
    for process in producers:
        process.start()
    received: list[tuple[int, int]] = []
    raised: list[str] = []
    deadline = time.monotonic() + 120
    try:
        with connect(tmp_path) as connection:
            time.sleep(max(0.0, start_at - time.time()))
            queue = connection.SimpleQueue("race")
            idle_since = time.monotonic()
            while len(received) < PRODUCERS * MESSAGES_EACH and time.monotonic() < deadline:
                try:
                    message = queue.get(timeout=0.5)
                except Empty:
                    # Every producer is done and nothing came for a while: what is
                    # missing will not come.
                    if all(not p.is_alive() for p in producers) and (
                        time.monotonic() - idle_since > 3
                    ):
                        break
                    continue
                except Exception as exc:
                    raised.append(repr(exc))
                    continue
                idle_since = time.monotonic()
                received.append((message.payload["producer"], message.payload["number"]))
                message.ack()
            queue.close()
    finally:
        for process in producers:
            process.join(timeout=30)
            if process.is_alive():
                process.kill()
    assert raised == []
    assert [process.exitcode for process in producers] == [0] * PRODUCERS
    assert sorted(received) == [
        (producer, number) for producer in range(PRODUCERS) for number in range(MESSAGES_EACH)
    ]
    assert os.listdir(tmp_path / "queue") == []
    assert os.listdir(tmp_path / "unreadable") == []


def bind_slowly(root: Path) -> None:
    """Bind a queue to a new exchange, pausing a second before each lock: a binder the
    scheduler put aside at the worst moment, which on a busy machine is any moment."""
    from kombu.transport import filesystem

    locking = filesystem.lock

    def slow_lock(file: Any, flags: int) -> None:
        time.sleep(1)
        locking(file, flags)

    filesystem.lock = slow_lock
    with connect(root) as connection:
        kombu.Queue("slow", kombu.Exchange("shared"), routing_key="slow")(
            connection.default_channel
        ).declare()


def test_a_reader_never_meets_a_table_of_bindings_half_made(tmp_path: Path) -> None:
    table = tmp_path / "control" / "shared.exchange"
    binder = multiprocessing.get_context("spawn").Process(target=bind_slowly, args=(tmp_path,))
    binder.start()
    try:
        deadline = time.monotonic() + 30
        while not table.exists() and time.monotonic() < deadline:
            time.sleep(0.01)
        with connect(tmp_path) as connection:
            # What a publisher reads to route a message: empty, or the binding if this
            # process was the one put aside; never a file it cannot parse.
            assert connection.default_channel.get_table("shared") in ([], [("slow", "", "slow")])
    finally:
        binder.join(timeout=30)
    assert binder.exitcode == 0
    assert json.loads(table.read_text()) == [["slow", "", "slow"]]


def test_it_sets_aside_a_file_that_is_not_a_message_and_reads_on(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # A queue of its own: kombu keeps the bindings a process declared in memory, across
    # connections, so a binding made by the test above would not be written here.
    with connect(tmp_path) as connection:
        queue = connection.SimpleQueue("set-aside")
        # Named to sort before anything published, so it is read first.
        (tmp_path / "queue" / "0_cut-short.set-aside.msg").write_text('{"body": "cut')
        queue.put({"hello": "world"})
        message = queue.get(timeout=5)
        assert message.payload == {"hello": "world"}
        message.ack()
        queue.close()
    kept = tmp_path / "unreadable" / "0_cut-short.set-aside.msg"
    assert kept.read_text() == '{"body": "cut'
    assert "could not read message 0_cut-short.set-aside.msg" in caplog.text
    assert str(kept) in caplog.text
    assert os.listdir(tmp_path / "queue") == []


def test_celery_uses_it_when_there_is_no_redis(tmp_path: Path) -> None:
    env = {
        **os.environ,
        "REDIS_URL": "",
        "DEBUG": "1",
        "DATA_DIR": str(tmp_path),
        "DJANGO_SETTINGS_MODULE": "deploycheck.settings",
    }
    code = (
        "from deploycheck.celery import app\n"
        "with app.connection_for_write() as connection:\n"
        "    connection.connect()\n"
        "    print(type(connection.transport).__module__)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "deploycheck.broker"
