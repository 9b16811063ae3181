"""The protocol kinds (http, webhook, tls, dns, cors) against stand-ins on 127.0.0.1."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from checks.kinds import cors, dns, http, tls, webhook
from checks.kinds.base import OPTION_TYPES, CheckError, Context, Kind, Reason
from tests.checks.protocol_standins import (
    Certificates,
    Mode,
    Shared,
    certificates,
    closed_port,
    dns_stand_in,
    server_context,
    shared_stand_in,
    silent_port,
    tls_stand_in,
)
from tests.checks.standin import Answer, Reply, Seen, StandIn, json_reply, stand_in

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


@pytest.fixture
def impatient(settings: Any) -> None:
    settings.CHECKS_CONNECT_TIMEOUT = 0.3
    settings.CHECKS_READ_TIMEOUT = 0.3


@pytest.mark.parametrize("kind", KINDS, ids=lambda kind: kind.name)
def test_it_declares_only_options_a_checks_file_may_set(kind: Kind) -> None:
    assert kind.options <= OPTION_TYPES.keys()
    assert kind.docs_url.startswith("https://")
    assert kind.check_options is not None


# http


def test_it_passes_a_200_and_says_how_fast_it_came(serve: Serve) -> None:
    server = serve(lambda _: Reply(body="ok"))
    evidence = http.run(context(url=server.url + "/health"))
    assert re.fullmatch(r"HTTP 200 in \d+ ms", evidence)
    assert [seen.method for seen in server.requests] == ["GET"]


def test_it_fails_a_status_other_than_the_expected_one(serve: Serve) -> None:
    server = serve(lambda _: Reply(status=404))
    error = failure(http.KIND, url=server.url)
    assert_fault(error, "HTTP 404, expected 200")


def test_it_accepts_the_status_expect_status_names(serve: Serve) -> None:
    server = serve(lambda _: Reply(status=204))
    assert http.run(context(url=server.url, expect_status=204)).startswith("HTTP 204 in ")


def test_it_retries_a_5xx_nobody_expected_with_the_wait_asked_for(serve: Serve) -> None:
    server = serve(lambda _: Reply(status=503, headers={"Retry-After": "7"}))
    error = failure(http.KIND, url=server.url)
    assert (error.permanent, error.reason, error.retry_after) == (False, Reason.VENDOR_DOWN, 7)


def test_it_retries_a_429_as_rate_limited(serve: Serve) -> None:
    server = serve(lambda _: Reply(status=429))
    error = failure(http.KIND, url=server.url)
    assert (error.permanent, error.reason) == (False, Reason.RATE_LIMITED)


def test_it_judges_a_5xx_a_status_condition_accepts(serve: Serve) -> None:
    server = serve(lambda _: Reply(status=503))
    evidence = http.run(context(url=server.url, conditions=["[STATUS] == any(200, 503)"]))
    assert re.fullmatch(r"HTTP 503 in \d+ ms; 1 condition holds", evidence)


def test_it_fails_a_redirect_naming_only_the_target_host(serve: Serve) -> None:
    location = "https://login.example.test/sso?token=abc123"
    server = serve(lambda _: Reply(status=302, headers={"Location": location}))
    error = failure(http.KIND, url=server.url)
    assert_fault(error, "HTTP 302 redirect to login.example.test, expected 200")
    assert "abc123" not in error.evidence
    assert len(server.requests) == 1


def test_it_fails_a_redirect_a_status_condition_refuses(serve: Serve) -> None:
    server = serve(lambda _: Reply(status=301, headers={"Location": "/elsewhere"}))
    error = failure(http.KIND, url=server.url, conditions=["[STATUS] < 300"])
    assert_fault(error, "HTTP 301 redirect to 127.0.0.1; [STATUS] < 300 is false: 301")


def test_it_uses_the_status_conditions_instead_of_the_default_200(serve: Serve) -> None:
    server = serve(lambda _: Reply(status=201))
    assert http.run(context(url=server.url, conditions=["[STATUS] < 300"]))


def test_it_times_out_on_a_slow_server(impatient: None, serve: Serve) -> None:
    server = serve(lambda _: Reply(delay=1.0))
    error = failure(http.KIND, url=server.url)
    assert (error.permanent, error.reason) == (False, Reason.TIMED_OUT)


def test_it_reports_a_refused_connection_as_transient() -> None:
    error = failure(http.KIND, url=f"http://127.0.0.1:{closed_port()}/")
    assert (error.permanent, error.reason) == (False, Reason.UNREACHABLE)


DOCUMENT = {
    "status": "UP",
    "data": [{"id": 1, "tags": ["a", "b"]}, {"id": 2}],
    "a": {"b": {"c": "deep"}},
    "name": "john-smith",
    "version": "10",
    "age": 30,
    "id": 31,
    "ok": True,
    "nothing": None,
}


@pytest.mark.parametrize(
    "condition",
    [
        "[STATUS] == 200",
        "[STATUS] < 300",
        "[STATUS] != 500",
        "[STATUS] == pat(2*)",
        "[RESPONSE_TIME] < 5000",
        "[RESPONSE_TIME] <= 5s",
        "5000 > [RESPONSE_TIME]",
        "[CONNECTED] == true",
        "[IP] == 127.0.0.1",
        "[BODY].status == UP",
        "[BODY].status != DOWN",
        "[BODY].data[0].id == 1",
        "[BODY].data[1].id >= 2",
        "[BODY].data[0].tags[1] == b",
        "[BODY].a.b.c == deep",
        '[BODY].a.b == {"c":"deep"}',
        "[BODY].ok == true",
        "[BODY].nothing == null",
        "len([BODY].data) == 2",
        "len([BODY].name) == 10",
        "len([BODY].a) == 1",
        "has([BODY].a.b) == true",
        "has([BODY].errors) == false",
        "[BODY].name == pat(john*)",
        "[BODY].name == pat(*smith)",
        "[BODY].name != pat(jane*)",
        "[BODY].data[0].id == any(1, 3)",
        "[BODY].status != any(DOWN, DEGRADED)",
        # Numbers compare as numbers ("10" > "9"), words as words.
        "[BODY].version > 9",
        "[BODY].version == 10.0",
        "[BODY].name > jane",
        "[BODY].age < [BODY].id",
    ],
)
def test_it_passes_a_condition_that_holds(condition: str, serve: Serve) -> None:
    server = serve(lambda _: json_reply(DOCUMENT))
    evidence = http.run(context(url=server.url, conditions=[condition]))
    assert evidence.endswith("; 1 condition holds")


@pytest.mark.parametrize(
    ("condition", "evidence"),
    [
        ("[STATUS] == 201", "[STATUS] == 201 is false: 200"),
        ("[RESPONSE_TIME] < 0", "[RESPONSE_TIME] < 0 is false: "),
        ("[BODY].status == DOWN", "[BODY].status == DOWN is false: UP"),
        ("[BODY].data[0].id == 2", "[BODY].data[0].id == 2 is false: 1"),
        ("len([BODY].data) > 5", "len([BODY].data) > 5 is false: 2"),
        ("has([BODY].a) == false", "has([BODY].a) == false is false: true"),
        ("[BODY].name == pat(jane*)", "[BODY].name == pat(jane*) is false: john-smith"),
        ("[BODY].id == any(1, 2)", "[BODY].id == any(1, 2) is false: 31"),
        ("[BODY].version < 9", "[BODY].version < 9 is false: 10"),
        ("[BODY].name < jane", "[BODY].name < jane is false: john-smith"),
        ("[BODY].age == [BODY].id", "[BODY].age == [BODY].id is false: 30 vs 31"),
        ("[BODY].data[5].id == 1", "[BODY].data[5].id == 1 cannot hold: [BODY].data[5] is absent"),
        ("[BODY].gone != x", "[BODY].gone != x cannot hold: [BODY].gone is absent"),
        ("[CERTIFICATE_EXPIRATION] > 48h", "cannot hold: the answer came without a TLS"),
    ],
)
def test_it_fails_a_condition_that_does_not_hold(
    condition: str, evidence: str, serve: Serve
) -> None:
    server = serve(lambda _: json_reply(DOCUMENT))
    error = failure(http.KIND, url=server.url, conditions=[condition])
    assert_fault(error, evidence)


def test_it_lists_every_false_condition(serve: Serve) -> None:
    conditions = ["[STATUS] == 200", "[BODY].status == DOWN", "[BODY].age > 40"]
    server = serve(lambda _: json_reply(DOCUMENT))
    error = failure(http.KIND, url=server.url, conditions=conditions)
    assert error.evidence == "[BODY].status == DOWN is false: UP; [BODY].age > 40 is false: 30"


def test_it_counts_the_conditions_that_hold(serve: Serve) -> None:
    conditions = ["[STATUS] == 200", "[BODY].status == UP", "len([BODY].data) == 2"]
    server = serve(lambda _: json_reply(DOCUMENT))
    evidence = http.run(context(url=server.url, conditions=conditions))
    assert re.fullmatch(r"HTTP 200 in \d+ ms; 3 conditions hold", evidence)


def test_it_compares_a_body_that_is_not_json_as_text(serve: Serve) -> None:
    server = serve(lambda _: Reply(body="pong\n"))
    conditions = ["[BODY] == pong", "len([BODY]) == 4", "has([BODY]) == true"]
    assert http.run(context(url=server.url, conditions=conditions))


def test_it_fails_a_body_path_into_a_body_that_is_not_json(serve: Serve) -> None:
    server = serve(lambda _: Reply(body="<html>maintenance</html>"))
    error = failure(http.KIND, url=server.url, conditions=["[BODY].status == UP"])
    assert_fault(error, "[BODY].status == UP cannot hold: the body is not JSON")
    assert "maintenance" not in error.evidence


def test_it_reads_the_time_left_on_the_certificate(certs: Certificates) -> None:
    with stand_in(lambda _: Reply(body="ok"), tls=server_context(certs.near_expiry)) as server:
        url = server.url
        holds = ["[CERTIFICATE_EXPIRATION] > 48h"]
        assert http.run(context(url=url, ca_file=certs.ca_file, conditions=holds))
        error = failure(
            http.KIND, url=url, ca_file=certs.ca_file, conditions=["[CERTIFICATE_EXPIRATION] > 30d"]
        )
    assert_fault(error, "[CERTIFICATE_EXPIRATION] > 30d is false: ")
    assert re.search(r"is false: 13[12]h$", error.evidence)


def test_it_refuses_a_certificate_from_an_unknown_authority(certs: Certificates) -> None:
    with stand_in(lambda _: Reply(), tls=server_context(certs.untrusted)) as server:
        error = failure(http.KIND, url=server.url, ca_file=certs.ca_file)
    assert_fault(error, "TLS certificate not accepted")


@pytest.mark.parametrize(
    ("condition", "problem"),
    [
        ("[STATUS] = 200", "has no comparison operator"),
        ("", "it is empty"),
        ("[STAUTS] == 200", "[STAUTS] is not a placeholder"),
        ("[STATUS].code == 200", "[STATUS] takes no path"),
        ("[BODY].data[x] == 1", "is not a path of .key and [index] steps"),
        ("len([BODY].data == 2", "a ( is never closed"),
        ("[BODY]) == 2", "a ) has no matching ("),
        ("len([STATUS]) == 3", "len() takes [BODY] or a [BODY] path"),
        ("size([BODY]) == 3", "size() is not a function"),
        ("[BODY].name < pat(j*)", "pat() and any() work only with == and !="),
        ("pat(a*) == any(a, b)", "one side must be a placeholder"),
        ("1 == 1", "one side must be a placeholder"),
        ("[STATUS] == ok", "[STATUS] is a number, not 'ok'"),
        ("[STATUS] == any(200, ok)", "[STATUS] is a number, not 'ok'"),
        ("[CONNECTED] == yes", "[CONNECTED] is true or false, not 'yes'"),
        ("has([BODY].a) > true", "has() is true or false: compare it with == or !="),
        ("[RESPONSE_TIME] < fast", "[RESPONSE_TIME] is milliseconds or a duration"),
        ("[BODY].id == any(1, , 2)", "any() needs values separated by commas"),
        ("[BODY].id == ", "nothing is on the right of =="),
    ],
)
def test_it_refuses_a_condition_that_does_not_parse(condition: str, problem: str) -> None:
    assert http.KIND.check_options is not None
    with pytest.raises(ValueError) as refused:
        http.KIND.check_options({"url": "https://api.example.test/", "conditions": [condition]})
    assert problem in str(refused.value)
    assert f"condition {condition.strip()!r}" in str(refused.value)


def test_it_fails_a_condition_that_does_not_parse_when_run_without_loading(serve: Serve) -> None:
    server = serve(lambda _: Reply())
    error = failure(http.KIND, url=server.url, conditions=["[STATUS] = 200"])
    assert_fault(error, "condition '[STATUS] = 200': it has no comparison operator")
    assert server.requests == []


@pytest.mark.parametrize(
    ("options", "problem"),
    [
        ({"url": "ftp://api.example.test/"}, "url must be an http:// or https:// URL"),
        ({"url": "https://api.example.test/", "expect_status": 99}, "expect_status must be"),
    ],
)
def test_it_refuses_http_options_that_cannot_work(options: dict[str, Any], problem: str) -> None:
    assert http.KIND.check_options is not None
    with pytest.raises(ValueError, match=re.escape(problem)):
        http.KIND.check_options(options)


def test_it_accepts_well_formed_http_options() -> None:
    assert http.KIND.check_options is not None
    http.KIND.check_options(
        {
            "url": "https://api.example.test/health",
            "expect_status": 200,
            "conditions": "[STATUS] < 300",
        }
    )


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


# tls


def test_it_passes_a_valid_certificate_with_days_version_and_issuer(certs: Certificates) -> None:
    with tls_stand_in(certs.valid) as port:
        evidence = tls.run(context(host="127.0.0.1", port=port, ca_file=certs.ca_file))
    assert re.fullmatch(
        r"valid for \d+ more days \(until \d{4}-\d\d-\d\d\), TLSv1\.[23], issued by trustme.*",
        evidence,
    )


def test_it_fails_a_certificate_with_fewer_days_left_than_min_days(certs: Certificates) -> None:
    until = (datetime.now(UTC) + timedelta(days=5, hours=12)).date().isoformat()
    with tls_stand_in(certs.near_expiry) as port:
        error = failure(tls.KIND, host="localhost", port=port, ca_file=certs.ca_file)
        evidence = tls.run(context(host="localhost", port=port, ca_file=certs.ca_file, min_days=3))
    assert_fault(error, f"certificate expires in 5 days (on {until}), fewer than min_days (14)")
    assert evidence.startswith(f"valid for 5 more days (until {until})")


def test_it_fails_an_expired_certificate_saying_how_long_ago(certs: Certificates) -> None:
    on = (datetime.now(UTC) - timedelta(days=12, hours=12)).date().isoformat()
    with tls_stand_in(certs.expired) as port:
        error = failure(tls.KIND, host="127.0.0.1", port=port, ca_file=certs.ca_file)
    assert_fault(error, f"certificate expired 12 days ago (on {on})")


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost"])
def test_it_fails_a_certificate_for_another_host(certs: Certificates, host: str) -> None:
    with tls_stand_in(certs.wrong_host) as port:
        error = failure(tls.KIND, host=host, port=port, ca_file=certs.ca_file)
    assert_fault(error, f"certificate is not valid for host {host} (it names wrong.example.test)")


def test_it_fails_a_certificate_nobody_trusts(certs: Certificates) -> None:
    with tls_stand_in(certs.untrusted) as port:
        error = failure(tls.KIND, host="127.0.0.1", port=port, ca_file=certs.ca_file)
    assert_fault(error, "certificate not trusted: unable to get local issuer certificate")


def test_it_fails_a_port_that_does_not_speak_tls(serve: Serve) -> None:
    server = serve(lambda _: Reply())
    error = failure(tls.KIND, host="127.0.0.1", port=server.port)
    assert_fault(error, "does not complete a TLS handshake (WRONG_VERSION_NUMBER)")


def test_it_retries_a_refused_tls_connection() -> None:
    error = failure(tls.KIND, host="127.0.0.1", port=closed_port())
    assert (error.permanent, error.reason) == (False, Reason.VENDOR_DOWN)
    assert "refused the connection" in error.evidence


def test_it_times_out_on_a_silent_tls_port(impatient: None) -> None:
    with silent_port() as port:
        error = failure(tls.KIND, host="127.0.0.1", port=port)
    assert (error.permanent, error.reason) == (False, Reason.TIMED_OUT)


@pytest.mark.parametrize(
    ("options", "problem"),
    [
        ({"host": "api.example.test", "port": 70000}, "port must be between 1 and 65535"),
        ({"host": "https://api.example.test/"}, "host must be a name or an address"),
        ({"host": "api.example.test", "min_days": -1}, "min_days must not be negative"),
    ],
)
def test_it_refuses_tls_options_that_cannot_work(options: dict[str, Any], problem: str) -> None:
    assert tls.KIND.check_options is not None
    with pytest.raises(ValueError, match=re.escape(problem)):
        tls.KIND.check_options(options)


# dns


def test_it_passes_a_name_that_resolves_to_the_expected_address() -> None:
    with dns_stand_in({"api.example.test": ["203.0.113.7"]}) as server:
        evidence = dns.run(
            context(host="api.example.test", nameserver=server.address, expect="203.0.113.7")
        )
    assert evidence == f"api.example.test resolves to 203.0.113.7 (TTL 300) via {server.address}"
    assert server.queries == [("api.example.test", "A"), ("api.example.test", "AAAA")]


def test_it_compares_both_families_as_normalized_sets() -> None:
    records = {"api.example.test": ["2001:db8::7", "203.0.113.7", "203.0.113.8"]}
    expect = ["203.0.113.8", "2001:0db8:0:0::7", "203.0.113.7"]
    with dns_stand_in(records, ttl=60) as server:
        evidence = dns.run(
            context(host="api.example.test", nameserver=server.address, expect=expect)
        )
    assert evidence.startswith(
        "api.example.test resolves to 203.0.113.7, 203.0.113.8, 2001:db8::7 (TTL 60)"
    )


def test_it_passes_a_name_with_only_an_ipv6_address() -> None:
    with dns_stand_in({"v6.example.test": ["2001:db8::1"]}) as server:
        evidence = dns.run(context(host="v6.example.test", nameserver=server.address))
    assert evidence.startswith("v6.example.test resolves to 2001:db8::1 ")


def test_it_fails_a_name_that_resolves_elsewhere() -> None:
    with dns_stand_in({"api.example.test": ["203.0.113.7", "203.0.113.9"]}) as server:
        error = failure(
            dns.KIND, host="api.example.test", nameserver=server.address, expect="198.51.100.1"
        )
    assert_fault(error, "resolves to 203.0.113.7, 203.0.113.9; expected 198.51.100.1")


def test_it_fails_a_name_that_does_not_exist() -> None:
    with dns_stand_in({}) as server:
        error = failure(dns.KIND, host="missing.example.test", nameserver=server.address)
    assert_fault(error, "missing.example.test does not exist (NXDOMAIN)")


def test_it_fails_a_name_without_addresses() -> None:
    with dns_stand_in({"empty.example.test": []}) as server:
        error = failure(dns.KIND, host="empty.example.test", nameserver=server.address)
    assert_fault(error, "empty.example.test has no A or AAAA record")


def test_it_retries_a_nameserver_that_fails() -> None:
    with dns_stand_in({"api.example.test": ["203.0.113.7"]}, mode=Mode.SERVFAIL) as server:
        error = failure(dns.KIND, host="api.example.test", nameserver=server.address)
    assert (error.permanent, error.reason) == (False, Reason.VENDOR_DOWN)


def test_it_times_out_on_a_silent_nameserver(impatient: None) -> None:
    with dns_stand_in({"api.example.test": ["203.0.113.7"]}, mode=Mode.SILENT) as server:
        error = failure(dns.KIND, host="api.example.test", nameserver=server.address)
    assert (error.permanent, error.reason) == (False, Reason.TIMED_OUT)


@pytest.mark.parametrize(
    ("options", "problem"),
    [
        ({"host": "api.example.test", "nameserver": "ns1.example.test"}, "must be IP or IP:port"),
        ({"host": "api.example.test", "nameserver": "127.0.0.1:99999"}, "port 1-65535"),
        ({"host": "api.example.test", "nameserver": "dns:53"}, "must be an IP address"),
        ({"host": "api.example.test", "expect": ["203.0.113.7", "web"]}, "'web' is not one"),
        ({"host": "203.0.113.7"}, "host must be a name to resolve"),
        ({"host": "a..example.test"}, "is not a DNS name"),
    ],
)
def test_it_refuses_dns_options_that_cannot_work(options: dict[str, Any], problem: str) -> None:
    assert dns.KIND.check_options is not None
    with pytest.raises(ValueError, match=re.escape(problem)):
        dns.KIND.check_options(options)


@pytest.mark.parametrize("nameserver", ["127.0.0.1", "127.0.0.1:53535", "::1", "[::1]:53535"])
def test_it_accepts_a_nameserver_address_with_or_without_port(nameserver: str) -> None:
    assert dns.KIND.check_options is not None
    dns.KIND.check_options({"host": "api.example.test", "nameserver": nameserver})


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
