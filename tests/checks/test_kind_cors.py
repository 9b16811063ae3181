"""The cors kind against CORS policies served on 127.0.0.1, judged as the Fetch standard
judges them (https://fetch.spec.whatwg.org/#http-cors-protocol)."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from checks import config
from checks.kinds import cors
from checks.kinds.base import CheckError, Context, Reason, Said
from tests.checks.protocol_standins import (
    Shared,
    cors_policy,
    ending_with,
    on_host,
    only,
    shared_stand_in,
    starting_with,
    with_null,
)
from tests.checks.standin import Answer, Reply, Seen, StandIn

APP = "https://app.example.test"
FOREIGN = cors.FOREIGN_ORIGIN
LOOK_ALIKES = [
    "https://app.example.test.evil",
    "https://evilapp.example.test",
    "http://app.example.test",
    "https://app.example.test:8443",
]

Serve = Callable[[Answer], StandIn]


@pytest.fixture(scope="module")
def plain_server() -> Iterator[Shared]:
    with shared_stand_in() as shared:
        yield shared


@pytest.fixture
def serve(plain_server: Shared) -> Serve:
    return plain_server.serve


def check(server: StandIn, **options: Any) -> Said | CheckError:
    context = Context(options={"url": server.url, **options}, release_version="v1.0.0", env={})
    try:
        return cors.run(context)
    except CheckError as error:
        return error


def fault_of(outcome: Said | CheckError) -> CheckError:
    assert isinstance(outcome, CheckError), outcome
    assert (outcome.permanent, outcome.reason) == (True, Reason.MISCONFIGURED)
    return outcome


def passed(outcome: Said | CheckError) -> str:
    assert isinstance(outcome, Said), outcome
    return outcome.english()


def preflights(server: StandIn) -> list[Seen]:
    return [seen for seen in server.requests if seen.method == "OPTIONS"]


# what passes


def test_it_passes_an_endpoint_that_allows_only_its_own_origin(serve: Serve) -> None:
    """The preflight carries Access-Control-Request-Headers as a sorted lower-case list and
    is answered with an ok status (https://fetch.spec.whatwg.org/#cors-preflight-fetch)."""
    server = serve(cors_policy(only(APP)))

    outcome = check(server, allowed_origin=APP)

    assert passed(outcome) == (
        f"refuses 6 foreign origins, look-alikes of {APP} among them; allows {APP}, whose"
        " preflight answers HTTP 204 and allows POST with authorization, content-type"
    )
    origins = [seen.header("origin") for seen in server.requests]
    assert origins == [o for o in [FOREIGN, *LOOK_ALIKES, "null", APP] for _ in ("GET", "OPTIONS")]
    assert [seen.method for seen in server.requests[:2]] == ["GET", "OPTIONS"]
    for preflight in preflights(server):
        assert preflight.header("access-control-request-method") == "POST"
        assert preflight.header("access-control-request-headers") == "authorization,content-type"


def test_it_passes_an_endpoint_that_refuses_every_foreign_origin_when_no_app_origin_is_given(
    serve: Serve,
) -> None:
    server = serve(cors_policy(None))

    outcome = check(server)

    assert passed(outcome) == "refuses 2 foreign origins, to a GET and to a preflight"
    assert [seen.header("origin") for seen in server.requests] == [FOREIGN, FOREIGN, "null", "null"]


def test_it_compares_allowed_header_names_without_case(serve: Serve) -> None:
    """Header names match byte-case-insensitively: https://fetch.spec.whatwg.org/#cors-preflight-fetch."""
    server = serve(cors_policy(only(APP), headers="AUTHORIZATION,Content-Type"))

    assert passed(check(server, allowed_origin=APP)).endswith(
        "allows POST with authorization, content-type"
    )


def test_it_sends_the_request_headers_and_method_it_is_told(serve: Serve) -> None:
    server = serve(cors_policy(only(APP), methods="PUT", headers="x-request-id, content-type"))

    outcome = check(
        server,
        allowed_origin=APP,
        request_method="put",
        request_headers=["X-Request-Id", "content-type"],
    )

    assert passed(outcome).endswith("allows PUT with content-type, x-request-id")
    preflight = preflights(server)[-1]
    assert preflight.header("access-control-request-method") == "PUT"
    assert preflight.header("access-control-request-headers") == "content-type,x-request-id"


def test_it_needs_no_listed_method_for_a_safelisted_one(serve: Serve) -> None:
    """GET, HEAD and POST are CORS-safelisted methods: https://fetch.spec.whatwg.org/#cors-safelisted-method."""
    server = serve(cors_policy(only(APP), methods=None))

    assert passed(check(server, allowed_origin=APP)).startswith("refuses 6 foreign origins")


def test_it_counts_a_wildcard_method_and_header_only_without_credentials(serve: Serve) -> None:
    """`*` stands for any method or header of a request without credentials, and never for
    Authorization: https://fetch.spec.whatwg.org/#cors-preflight-fetch."""
    server = serve(cors_policy(only(APP), methods="*", headers="*"))

    outcome = check(
        server, allowed_origin=APP, request_method="DELETE", request_headers="x-request-id"
    )

    assert passed(outcome).endswith("allows DELETE with x-request-id")


def test_it_passes_a_public_endpoint_that_answers_a_wildcard_without_credentials(
    serve: Serve,
) -> None:
    server = serve(cors_policy("*", headers="content-type"))

    outcome = check(server, public=True, request_headers="content-type")

    assert passed(outcome) == (
        f"public, and no foreign origin gets credentials; the preflight from {FOREIGN} answers"
        " HTTP 204 and allows POST with content-type"
    )


# what fails: foreign origins


def test_it_fails_an_endpoint_that_answers_a_wildcard_unless_it_is_public(serve: Serve) -> None:
    server = serve(cors_policy("*"))

    error = fault_of(check(server, allowed_origin=APP))

    assert error.evidence == (
        "accepts requests from any origin (GET answers Access-Control-Allow-Origin: *); declare"
        " public = true if the endpoint is meant for every site"
    )


@pytest.mark.parametrize("public", [False, True])
def test_it_fails_a_wildcard_with_credentials_even_when_public(serve: Serve, public: bool) -> None:
    server = serve(cors_policy("*", credentials=True))

    error = fault_of(check(server, public=public))

    assert error.evidence.startswith("accepts requests from any origin, with credentials")
    assert error.said.values == {"method": "GET"}


@pytest.mark.parametrize(
    ("policy", "let_in"),
    [
        (starting_with(APP), ["https://app.example.test.evil", "https://app.example.test:8443"]),
        (
            ending_with("app.example.test"),
            ["https://evilapp.example.test", "http://app.example.test"],
        ),
        (on_host("app.example.test"), ["http://app.example.test", "https://app.example.test:8443"]),
        (with_null(APP), ["null"]),
    ],
    ids=["prefix", "suffix", "host-only", "null"],
)
def test_it_fails_a_policy_that_lets_in_a_look_alike_of_the_app_origin(
    serve: Serve, policy: Callable[[str], bool], let_in: list[str]
) -> None:
    """Origins compare exactly, scheme, host and port
    (https://fetch.spec.whatwg.org/#cors-check, https://html.spec.whatwg.org/#same-origin)."""
    server = serve(cors_policy(policy))

    error = fault_of(check(server, allowed_origin=APP))

    shown = "; ".join(f"{origin} (GET, OPTIONS)" for origin in let_in)
    assert error.evidence == (
        f"allows foreign origins: {shown}; Access-Control-Allow-Origin must name only {APP},"
        " compared exactly"
    )


def test_it_fails_an_endpoint_that_echoes_any_origin_with_credentials(serve: Serve) -> None:
    server = serve(cors_policy(lambda _: True, credentials=True))

    error = fault_of(check(server, public=True))

    assert error.evidence.startswith(f"allows foreign origins with credentials: {FOREIGN} (GET,")


def test_it_fails_an_endpoint_whose_preflight_alone_echoes_the_origin(serve: Serve) -> None:
    def answer(seen: Seen) -> Reply:
        if seen.method == "OPTIONS":
            return Reply(status=204, headers={"Access-Control-Allow-Origin": seen.header("origin")})
        return Reply()

    error = fault_of(check(serve(answer)))

    assert error.evidence == (
        f"allows foreign origins: {FOREIGN} (OPTIONS); null (OPTIONS);"
        " Access-Control-Allow-Origin echoes them"
    )


# what fails: the app's own origin


@pytest.mark.parametrize("status", [403, 404, 405])
def test_it_fails_a_preflight_that_does_not_answer_an_ok_status(serve: Serve, status: int) -> None:
    """A preflight succeeds only with an ok status (200-299):
    https://fetch.spec.whatwg.org/#cors-preflight-fetch."""
    server = serve(cors_policy(only(APP), preflight_status=status))

    error = fault_of(check(server, allowed_origin=APP))

    assert error.evidence == (
        f"the preflight from {APP} answered HTTP {status}: a browser goes on only after an ok"
        " status (200-299)"
    )


def test_it_fails_a_preflight_that_does_not_allow_a_requested_header(serve: Serve) -> None:
    server = serve(cors_policy(only(APP), headers="content-type"))

    error = fault_of(check(server, allowed_origin=APP))

    assert error.evidence == (
        "the preflight does not allow the headers authorization"
        " (Access-Control-Allow-Headers: content-type)"
    )


def test_it_fails_a_preflight_without_allowed_headers(serve: Serve) -> None:
    server = serve(cors_policy(only(APP), headers=None))

    error = fault_of(check(server, allowed_origin=APP))

    assert error.evidence == (
        "the preflight does not allow the headers authorization, content-type: it answers no"
        " Access-Control-Allow-Headers"
    )


@pytest.mark.parametrize(
    ("credentials", "missing"),
    [(False, "authorization"), (True, "authorization, content-type")],
)
def test_it_does_not_let_a_wildcard_header_cover_authorization_or_credentials(
    serve: Serve, credentials: bool, missing: str
) -> None:
    """Authorization is a CORS non-wildcard request-header name:
    https://fetch.spec.whatwg.org/#cors-non-wildcard-request-header-name."""
    server = serve(cors_policy(only(APP), headers="*", credentials=credentials))

    error = fault_of(check(server, allowed_origin=APP))

    assert error.evidence.startswith(
        f"the preflight does not allow the headers {missing}: Access-Control-Allow-Headers: *"
        " covers neither Authorization nor any header of a request with credentials"
    )


def test_it_fails_a_preflight_that_does_not_allow_the_method(serve: Serve) -> None:
    server = serve(cors_policy(only(APP), methods="GET, POST, put"))

    error = fault_of(check(server, allowed_origin=APP, request_method="PUT"))

    assert error.evidence == (
        "the preflight does not allow PUT (Access-Control-Allow-Methods: GET, POST, put)"
    )


def test_it_does_not_let_a_wildcard_method_count_with_credentials(serve: Serve) -> None:
    server = serve(cors_policy(only(APP), methods="*", credentials=True))

    error = fault_of(check(server, allowed_origin=APP, request_method="PATCH"))

    assert error.evidence.startswith(
        "the preflight does not allow PATCH: Access-Control-Allow-Methods: * does not count"
    )


def test_it_fails_an_endpoint_that_does_not_allow_the_app_origin(serve: Serve) -> None:
    server = serve(cors_policy(only("https://old.example.test")))

    error = fault_of(check(server, allowed_origin=APP))

    assert error.evidence == f"does not allow {APP}: GET answers no Access-Control-Allow-Origin"


def test_it_fails_a_public_endpoint_that_refuses_the_origin_it_is_judged_from(
    serve: Serve,
) -> None:
    server = serve(cors_policy(only(APP)))

    error = fault_of(check(server, public=True))

    assert error.evidence == f"does not allow {FOREIGN}: GET answers no Access-Control-Allow-Origin"


# what cannot be judged


def test_it_retries_a_cors_endpoint_that_is_down(serve: Serve) -> None:
    server = serve(lambda _: Reply(status=503, headers={"Retry-After": "3"}))

    outcome = check(server)

    assert isinstance(outcome, CheckError)
    assert (outcome.permanent, outcome.reason) == (False, Reason.VENDOR_DOWN)
    assert (outcome.evidence, outcome.retry_after) == ("CORS GET: HTTP 503", 3.0)
    assert outcome.said.values == {"method": "GET", "status": 503}


def test_it_fails_a_cors_url_where_nothing_answers(serve: Serve) -> None:
    error = fault_of(check(serve(lambda _: Reply(status=404))))

    assert error.said.message == "no endpoint answers at this URL (HTTP %(status)s)"
    assert error.said.values == {"status": 404}


def test_it_fails_a_redirect_without_following_it(serve: Serve) -> None:
    redirect = Reply(status=301, headers={"Location": "https://elsewhere.example.test/"})

    error = fault_of(check(serve(lambda _: redirect)))

    assert error.evidence.startswith("GET answered an HTTP 301 redirect: a preflight may not be")


# options


@pytest.mark.parametrize(
    ("options", "problem"),
    [
        ({"allowed_origin": "https://App.Example.test:443"}, f"as a browser sends it: {APP}"),
        ({"allowed_origin": "https://app.example.test:99999"}, "must be an origin such as"),
        ({"request_method": "PO ST"}, "request_method must be an HTTP method"),
        ({"request_headers": ["content-type", "x bad"]}, "request_headers must be header names"),
    ],
)
def test_it_refuses_cors_options_that_cannot_work(options: dict[str, Any], problem: str) -> None:
    assert cors.KIND.check_options is not None
    with pytest.raises(ValueError, match=re.escape(problem)):
        cors.KIND.check_options({"url": "https://api.example.test/", **options})


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


def test_a_checks_file_must_give_public_as_a_boolean(tmp_path: Path) -> None:
    path = tmp_path / "checks.toml"
    path.write_text(
        '[[check]]\nname = "cors"\nkind = "cors"\nurl = "https://api.example.test/"\n'
        'public = "yes"\n'
    )

    with pytest.raises(config.ChecksFileError) as refused:
        config.read(path)

    assert refused.value.errors == [f"{path}:5: check “cors”: public must be true or false"]


def test_a_checks_file_may_declare_a_public_endpoint(tmp_path: Path) -> None:
    path = tmp_path / "checks.toml"
    path.write_text(
        '[[check]]\nname = "cors"\nkind = "cors"\nurl = "https://api.example.test/"\n'
        'public = true\nrequest_headers = "content-type"\n'
    )

    [spec] = config.read(path)

    assert spec.options["public"] is True
