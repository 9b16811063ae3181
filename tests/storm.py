"""Press "Run all checks" on a release's board as fast as plain HTTP allows, as a lead
would who clicks it again and again, and count what the server did with each press:

    python -m tests.storm http://127.0.0.1:8000/ --presses 300
    # 300 presses in 2.1 s: 1 started, 299 joined, 0 throttled

Started presses queued checks, joined ones found them all queued or running already,
throttled ones were refused (429) because the person had started CHECKS_RUNS_PER_MINUTE
runs this minute. It signs in like a browser (CSRF token, session cookie) and presses the
button as htmx does; by default as `devops` / `demo` on `v1.0.0`, what `make run` seeds.
"""

from __future__ import annotations

import argparse
import html
import json
import re
import sys
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import quote

import httpx

HIDDEN_CSRF = re.compile(r'name="csrfmiddlewaretoken" value="([^"]+)"')
PAGE_CSRF = re.compile(r"hx-headers='(\{[^']*\})'")
MESSAGE = re.compile(r'<p class="message message--(\w+)">')
RUN_FORM = re.compile(r'<form class="run-checks" method="post" action="([^"]+)"')
# What each kind of message says about a press answered 200.
BY_MESSAGE = {"success": "started", "info": "joined"}
OUTCOMES = ("started", "joined", "throttled")


class StormFailed(Exception):
    """The server did not let the storm begin (no sign-in, no board, no button)."""


def sign_in(client: httpx.Client, username: str, password: str) -> None:
    login = client.get("/accounts/login/")
    found = HIDDEN_CSRF.search(login.text)
    if login.status_code != 200 or found is None:
        raise StormFailed(f"no login form at {login.url} ({login.status_code})")
    answer = client.post(
        "/accounts/login/",
        data={"username": username, "password": password, "csrfmiddlewaretoken": found[1]},
        headers={"Referer": str(login.url)},
    )
    if answer.status_code != 302:
        raise StormFailed(f"signing in as {username} was refused ({answer.status_code})")


def run_button(client: httpx.Client, version: str) -> tuple[str, str]:
    """Where the board's "Run all checks" button posts, and the CSRF token the board
    gives htmx, as a page that presses its buttons has them."""
    board = client.get(f"/releases/{quote(version, safe='')}/")
    token = PAGE_CSRF.search(board.text)
    if board.status_code != 200 or token is None:
        raise StormFailed(f"no board for {version} ({board.status_code})")
    # The first run form is the one for all checks; the others name a section.
    action = RUN_FORM.search(board.text)
    if action is None:
        raise StormFailed(f"the board of {version} has no run button: no checks, or no role")
    return html.unescape(action[1]), json.loads(token[1])["X-CSRFToken"]


def press(client: httpx.Client, url: str, token: str) -> str:
    """Press "Run all checks" once; what came of it."""
    answer = client.post(url, headers={"HX-Request": "true", "X-CSRFToken": token})
    if answer.status_code == 429:
        return "throttled"
    if answer.status_code == 422:
        return "nothing to run"
    found = MESSAGE.search(answer.text)
    if answer.status_code == 200 and found is not None and found[1] in BY_MESSAGE:
        return BY_MESSAGE[found[1]]
    return f"answered {answer.status_code}"


def storm(
    url: str, presses: int, *, version: str, username: str, password: str, parallel: int
) -> Counter[str]:
    """Sign in, then press `presses` times from `parallel` connections at once."""
    limits = httpx.Limits(max_connections=parallel)
    with httpx.Client(base_url=url, timeout=30, limits=limits) as client:
        sign_in(client, username, password)
        run_url, token = run_button(client, version)
        with ThreadPoolExecutor(max_workers=parallel) as pool:
            return Counter(pool.map(lambda _n: press(client, run_url, token), range(presses)))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("url", help="the server, e.g. http://127.0.0.1:8000/")
    parser.add_argument("--presses", type=int, default=300)
    parser.add_argument("--release", default="v1.0.0", help="its version (default v1.0.0)")
    parser.add_argument("--user", default="devops")
    parser.add_argument("--password", default="demo")
    parser.add_argument("--parallel", type=int, default=4, help="connections pressing at once")
    args = parser.parse_args(argv)
    began = time.perf_counter()
    try:
        counts = storm(
            args.url,
            args.presses,
            version=args.release,
            username=args.user,
            password=args.password,
            parallel=args.parallel,
        )
    except (StormFailed, httpx.HTTPError) as failure:
        print(f"storm: {failure}", file=sys.stderr)
        return 1
    took = time.perf_counter() - began
    main_kinds = ", ".join(f"{counts.pop(kind, 0)} {kind}" for kind in OUTCOMES)
    others = "".join(f", {count} {kind}" for kind, count in sorted(counts.items()))
    print(f"{args.presses} presses in {took:.1f} s: {main_kinds}{others}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
