"""Stand-in vendor servers on 127.0.0.1: a real HTTP(S) server in a thread that answers
through a function the test gives it and records every request it received.

    def answer(request: Seen) -> Reply: ...
    with stand_in(answer) as server:
        ... server.url ... server.requests ...

With `tls=` (a trustme certificate) it speaks HTTPS; the test passes the CA's PEM file
to the check as its ca_file.
"""

from __future__ import annotations

import json
import ssl
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit


@dataclass(frozen=True)
class Seen:
    """One request as the stand-in received it."""

    method: str
    path: str
    query: dict[str, list[str]]
    headers: Mapping[str, str]
    body: bytes

    def header(self, name: str) -> str:
        return self.headers.get(name.lower(), "")


@dataclass(frozen=True)
class Reply:
    status: int = 200
    body: bytes | str | Any = b""
    headers: Mapping[str, str] = field(default_factory=dict)
    # Seconds to wait before answering: a slow vendor, or silence past the timeout.
    delay: float = 0.0

    def encoded(self) -> tuple[bytes, dict[str, str]]:
        headers = dict(self.headers)
        if isinstance(self.body, bytes):
            return self.body, headers
        if isinstance(self.body, str):
            headers.setdefault("Content-Type", "text/plain; charset=utf-8")
            return self.body.encode(), headers
        headers.setdefault("Content-Type", "application/json")
        return json.dumps(self.body).encode(), headers


def json_reply(data: Any, status: int = 200, **headers: str) -> Reply:
    return Reply(status=status, body=data, headers=headers)


class _Server(ThreadingHTTPServer):
    # The default backlog of 5 drops connections when a worker's threads all call at
    # once, and a dropped SYN costs a second: a real vendor accepts them.
    request_queue_size = 256


@dataclass
class StandIn:
    url: str
    host: str
    port: int
    requests: list[Seen]


Answer = Callable[[Seen], Reply]


@contextmanager
def stand_in(answer: Answer, *, tls: ssl.SSLContext | None = None) -> Iterator[StandIn]:
    requests: list[Seen] = []

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        # Headers and body go out in two writes; Nagle would hold the body back ~40 ms.
        disable_nagle_algorithm = True

        def _handle(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            parts = urlsplit(self.path)
            seen = Seen(
                method=self.command,
                path=parts.path,
                query=parse_qs(parts.query),
                headers={k.lower(): v for k, v in self.headers.items()},
                body=body,
            )
            requests.append(seen)
            reply = answer(seen)
            if reply.delay:
                time.sleep(reply.delay)
            payload, headers = reply.encoded()
            try:
                self.send_response(reply.status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the client gave up waiting, as a timeout test wants

        do_GET = do_POST = do_OPTIONS = do_HEAD = do_PUT = do_DELETE = _handle

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = _Server(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    if tls is not None:
        server.socket = tls.wrap_socket(server.socket, server_side=True)
    port = server.server_address[1]
    # A short poll interval lets shutdown() return quickly at the end of each test.
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    scheme = "https" if tls is not None else "http"
    try:
        yield StandIn(
            url=f"{scheme}://127.0.0.1:{port}", host="127.0.0.1", port=port, requests=requests
        )
    finally:
        server.shutdown()
        server.server_close()


def sequence(*replies: Reply) -> Answer:
    """Answers each request with the next reply; the last one repeats."""
    queue = list(replies)

    def answer(_request: Seen) -> Reply:
        return queue.pop(0) if len(queue) > 1 else queue[0]

    return answer
