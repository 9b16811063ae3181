"""The broker of `make run`: kombu's filesystem transport, safe with many processes.

kombu's own transport creates a message's file and only then writes it, so a worker that
lists the queue folder in between takes an empty file, fails to parse it and dies; the
message is gone too, since kombu deletes a file before parsing it. Its table of queue
bindings per exchange is created the same way. Here each message, and each new table,
is written whole in a tmp/ folder beside the queue and renamed into place: rename is
atomic within a filesystem, so every reader sees the whole file or nothing.

The reader claims a file by renaming it into that tmp/ folder (one reader wins, a second
finds it gone), and a file it cannot parse is moved to unreadable/ and logged, never
dropped. No fsync: a development broker need not outlive a power cut, and a file left
half-written by one would be set aside, not crash the worker.

Selected in settings with CELERY_BROKER_TRANSPORT when REDIS_URL is unset. kombu's
filesystem module has no annotations, hence the no-untyped-call ignores.
"""

from __future__ import annotations

import contextlib
import logging
import os
import tempfile
import uuid
from pathlib import Path
from queue import Empty
from time import monotonic
from typing import Any

from kombu.transport import filesystem
from kombu.utils.json import dumps, loads
from kombu.utils.objects import cached_property

logger = logging.getLogger(__name__)


class Channel(filesystem.Channel):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[no-untyped-call]
        for folder in (
            Path(self.data_folder_in),
            Path(self.data_folder_out),
            self.control_folder,
            self.tmp_folder,
            self.unreadable_folder,
        ):
            folder.mkdir(parents=True, exist_ok=True)

    @cached_property
    def tmp_folder(self) -> Path:
        # Beside the queue folder, so that a rename between them never crosses filesystems.
        default = Path(self.data_folder_in).parent / "tmp"
        return Path(self.transport_options.get("tmp_folder", default))

    @cached_property
    def unreadable_folder(self) -> Path:
        default = Path(self.data_folder_in).parent / "unreadable"
        return Path(self.transport_options.get("unreadable_folder", default))

    def _put(self, queue: str, payload: dict[str, Any], **kwargs: Any) -> None:  # type: ignore[override]
        # kombu's name: readers pick a queue's files by what follows the first dot, and
        # take the oldest first by the leading milliseconds.
        name = f"{round(monotonic() * 1000)}_{uuid.uuid4()}.{queue}.msg"
        self._write_whole(Path(self.data_folder_out) / name, dumps(payload))  # type: ignore[no-untyped-call]

    def _get(self, queue: str, timeout: float | None = None) -> dict[str, Any]:
        inbox = Path(self.data_folder_in)
        for name in sorted(os.listdir(inbox)):
            if name.partition(".")[2] != f"{queue}.msg":
                continue
            claimed = self.tmp_folder / name
            try:
                os.rename(inbox / name, claimed)
            except FileNotFoundError:
                continue  # another reader claimed it first
            try:
                message = loads(claimed.read_bytes())  # type: ignore[no-untyped-call]
                if not isinstance(message, dict):
                    raise ValueError(f"a JSON {type(message).__name__}, not a message")
            except ValueError as exc:
                self._set_aside(claimed, exc)
                continue
            claimed.unlink()
            return message
        raise Empty()

    def _queue_bind(self, exchange: str, routing_key: str, pattern: str, queue: str) -> None:
        table: Path = self._exchange_file(exchange)  # type: ignore[no-untyped-call]
        if not table.exists():
            # kombu would create the table by opening it for writing, where a reader, or a
            # second process binding at the same moment, finds it empty.
            self._write_whole(table, dumps([]), replace=False)  # type: ignore[no-untyped-call]
        super()._queue_bind(exchange, routing_key, pattern, queue)  # type: ignore[no-untyped-call]

    def _write_whole(self, target: Path, text: str, replace: bool = True) -> None:
        """Write `text` to `target` so that no reader ever sees part of it; without
        `replace`, a `target` another process created first is left as it is."""
        descriptor, staged = tempfile.mkstemp(dir=self.tmp_folder, suffix=".part")
        try:
            with os.fdopen(descriptor, "wb") as file:
                file.write(text.encode())
            if replace:
                os.rename(staged, target)
            else:
                # Another process created it first: theirs stands.
                with contextlib.suppress(FileExistsError):
                    os.link(staged, target)
        finally:
            Path(staged).unlink(missing_ok=True)

    def _set_aside(self, claimed: Path, error: ValueError) -> None:
        kept = self.unreadable_folder / claimed.name
        os.rename(claimed, kept)
        logger.error(
            "broker: could not read message %s (%s); kept it in %s", claimed.name, error, kept
        )


class Transport(filesystem.Transport):
    Channel = Channel
