"""The protocol kinds webhook and cors against stand-ins on 127.0.0.1; http, tls and dns
have their own test_kind_*.py files."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from checks.kinds import cors, dns, http, tls, webhook
from checks.kinds.base import OPTION_TYPES, CheckError, Context, Kind, Reason
from tests.checks.protocol_standins import (
    Certificates,
    Shared,
    certificates,
    server_context,
    shared_stand_in,
)
from tests.checks.standin import Answer, Reply, Seen, StandIn

KINDS = [http.KIND, webhook.KIND, tls.KIND, dns.KIND, cors.KIND]
FOREIGN = cors.FOREIGN_ORIGIN
APP = "https://app.example.test"

Serve = Callable[[Answer], StandIn]


def context(**options: Any) -> Context:
    return Context(options=options, release_version="v1.0.0", env={})


def failure(kind: Kind, **options: Any) -> CheckError:
    with pytest.raises(CheckError) as caught:
        kind.run(context(**options))
    return caught.value


def assert_fault(error: CheckError, evidence: str) -> None:
    assert (error.permanent, error.reason) == (True, Reason.MISCONFIGURED)
    assert evidence in error.evidence


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Certificates:
    return certificates(tmp_path_factory.mktemp("certificates"))


@pytest.fixture(scope="module")
def plain_server() -> Iterator[Shared]:
    with shared_stand_in() as shared:
        yield shared


@pytest.fixture(scope="module")
def secure_server(certs: Certificates) -> Iterator[Shared]:
    with shared_stand_in(tls=server_context(certs.valid)) as shared:
        yield shared


@pytest.fixture
def serve(plain_server: Shared) -> Serve:
    """An http:// stand-in that answers this test as it asks."""
    return plain_server.serve


@pytest.mark.parametrize("kind", KINDS, ids=lambda kind: kind.name)
def test_it_declares_only_options_a_checks_file_may_set(kind: Kind) -> None:
    assert kind.options <= OPTION_TYPES.keys()
    assert kind.docs_url.startswith("https://")
    assert kind.check_options is not None


# webhook


def run_webhook(
    secure_server: Shared, certs: Certificates, reply: Reply
) -> tuple[str | CheckError, list[Seen]]:
    server = secure_server.serve(lambda _: reply)
    options = {"url": server.url + "/hooks/twilio", "ca_file": certs.ca_file}
    try:
        return webhook.run(context(**options)), server.requests
    except CheckError as error:
        return error, server.requests


def test_it_passes_a_webhook_that_refuses_an_unsigned_request(
    secure_server: Shared, certs: Certificates
) -> None:
    outcome, requests = run_webhook(secure_server, certs, Reply(status=403))
    assert outcome == "refuses an unsigned request (HTTP 403)"
    [seen] = requests
    assert (seen.method, seen.path) == ("POST", "/hooks/twilio")
    assert seen.header("content-type") == "application/json"
    assert b"deploycheck.probe" in seen.body
    assert not [name for name in seen.headers if "signature" in name]


def test_it_fails_a_webhook_that_accepts_an_unsigned_request(
    secure_server: Shared, certs: Certificates
) -> None:
    outcome, _ = run_webhook(secure_server, certs, Reply(status=200))
    assert isinstance(outcome, CheckError)
    assert_fault(outcome, "accepted an unsigned request: signature validation is off")


def test_it_fails_a_webhook_url_where_nothing_answers(
    secure_server: Shared, certs: Certificates
) -> None:
    outcome, _ = run_webhook(secure_server, certs, Reply(status=404))
    assert isinstance(outcome, CheckError)
    assert_fault(outcome, "no webhook endpoint answers at this URL (HTTP 404)")


def test_it_fails_a_webhook_that_redirects(secure_server: Shared, certs: Certificates) -> None:
    outcome, _ = run_webhook(
        secure_server,
        certs,
        Reply(status=308, headers={"Location": "https://new.example.test/hook"}),
    )
    assert isinstance(outcome, CheckError)
    assert_fault(outcome, "HTTP 308 redirect to new.example.test")


def test_it_retries_a_webhook_that_is_down(secure_server: Shared, certs: Certificates) -> None:
    outcome, _ = run_webhook(secure_server, certs, Reply(status=502))
    assert isinstance(outcome, CheckError)
    assert (outcome.permanent, outcome.reason) == (False, Reason.VENDOR_DOWN)


def test_it_refuses_a_webhook_url_that_is_not_https() -> None:
    assert webhook.KIND.check_options is not None
    with pytest.raises(ValueError, match="must start with https://"):
        webhook.KIND.check_options({"url": "http://api.example.test/hook"})
    webhook.KIND.check_options({"url": "https://api.example.test/hook"})
    assert_fault(failure(webhook.KIND, url="http://api.example.test/hook"), "https://")


# cors


def cors_policy(allows: str | None, *, credentials: bool = False) -> Callable[[Seen], Reply]:
    """A server allowing `allows` ("*", "echo" for any origin, an origin, or None)."""

    def answer(seen: Seen) -> Reply:
        origin = seen.header("origin")
        headers = {}
        if allows == "echo" or (allows is not None and allows in ("*", origin)):
            headers["Access-Control-Allow-Origin"] = origin if allows == "echo" else allows
        if credentials:
            headers["Access-Control-Allow-Credentials"] = "true"
        return Reply(status=204 if seen.method == "OPTIONS" else 200, headers=headers)

    return answer


def test_it_passes_an_endpoint_that_refuses_a_foreign_origin(serve: Serve) -> None:
    server = serve(cors_policy(None))
    assert cors.run(context(url=server.url)) == f"refuses {FOREIGN}"
    get, preflight = server.requests
    assert (get.method, get.header("origin")) == ("GET", FOREIGN)
    assert (preflight.method, preflight.header("origin")) == ("OPTIONS", FOREIGN)
    assert preflight.header("access-control-request-method") == "POST"


def test_it_passes_an_endpoint_that_allows_only_its_own_origin(serve: Serve) -> None:
    server = serve(cors_policy(APP))
    evidence = cors.run(context(url=server.url, allowed_origin=APP))
    assert evidence == f"refuses {FOREIGN}; allows {APP}"
    assert [seen.header("origin") for seen in server.requests] == [FOREIGN, FOREIGN, APP, APP]


def test_it_fails_an_endpoint_that_answers_a_wildcard(serve: Serve) -> None:
    server = serve(cors_policy("*"))
    error = failure(cors.KIND, url=server.url)
    assert_fault(
        error, "accepts requests from any origin (GET answers Access-Control-Allow-Origin: *)"
    )


def test_it_fails_an_endpoint_that_echoes_any_origin(serve: Serve) -> None:
    server = serve(cors_policy("echo", credentials=True))
    error = failure(cors.KIND, url=server.url, allowed_origin=APP)
    assert_fault(error, "accepts requests from any origin, with credentials")
    assert "the origin echoed back" in error.evidence


def test_it_fails_an_endpoint_whose_preflight_alone_echoes_the_origin(serve: Serve) -> None:
    def answer(seen: Seen) -> Reply:
        if seen.method == "OPTIONS":
            return Reply(status=204, headers={"Access-Control-Allow-Origin": seen.header("origin")})
        return Reply()

    server = serve(answer)
    error = failure(cors.KIND, url=server.url)
    assert_fault(error, "any origin (OPTIONS answers Access-Control-Allow-Origin:")


def test_it_fails_an_endpoint_that_does_not_allow_the_app_origin(serve: Serve) -> None:
    server = serve(cors_policy("https://old.example.test"))
    error = failure(cors.KIND, url=server.url, allowed_origin=APP)
    assert_fault(
        error,
        f"does not allow {APP} (GET answers no Access-Control-Allow-Origin;"
        " OPTIONS answers no Access-Control-Allow-Origin)",
    )


def test_it_retries_a_cors_endpoint_that_is_down(serve: Serve) -> None:
    server = serve(lambda _: Reply(status=503))
    error = failure(cors.KIND, url=server.url)
    assert (error.permanent, error.reason) == (False, Reason.VENDOR_DOWN)


def test_it_fails_a_cors_url_where_nothing_answers(serve: Serve) -> None:
    server = serve(lambda _: Reply(status=404))
    error = failure(cors.KIND, url=server.url)
    assert_fault(error, "no endpoint answers at this URL (HTTP 404)")


@pytest.mark.parametrize(
    ("origin", "problem"),
    [
        ("app.example.test", "must be an origin such as"),
        ("https://app.example.test/", "with no path: write https://app.example.test"),
    ],
)
def test_it_refuses_an_allowed_origin_that_is_not_an_origin(origin: str, problem: str) -> None:
    assert cors.KIND.check_options is not None
    with pytest.raises(ValueError, match=re.escape(problem)):
        cors.KIND.check_options({"url": "https://api.example.test/", "allowed_origin": origin})


def test_checks_starting_together_share_one_trust_store() -> None:
    from concurrent.futures import ThreadPoolExecutor

    from checks.kinds import client

    client._contexts.pop("", None)
    with ThreadPoolExecutor(16) as pool:
        contexts = list(pool.map(lambda _index: client.ssl_context(), range(32)))

    assert len({id(context) for context in contexts}) == 1
