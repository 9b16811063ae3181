"""The http kind against HTTP(S) stand-ins on 127.0.0.1, with Gatus-style conditions
(https://github.com/TwiN/gatus#conditions)."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
from django.utils import translation

from checks import config
from checks.kinds import http
from checks.kinds.base import CheckError, Context, Kind, Reason, Said, as_said
from tests.checks.protocol_standins import (
    Certificates,
    Shared,
    certificates,
    closed_port,
    server_context,
    shared_stand_in,
    silent_port,
)
from tests.checks.standin import Answer, Reply, Seen, StandIn, json_reply, stand_in

Serve = Callable[[Answer], StandIn]


def context(env: Mapping[str, str] | None = None, **options: Any) -> Context:
    return Context(options=options, release_version="v1.0.0", env=dict(env or {}))


def english(evidence: Said | str) -> str:
    return as_said(evidence).english()


def failure(kind: Kind, env: Mapping[str, str] | None = None, **options: Any) -> CheckError:
    with pytest.raises(CheckError) as caught:
        kind.run(context(env, **options))
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


@pytest.fixture
def serve(plain_server: Shared) -> Serve:
    """An http:// stand-in that answers this test as it asks."""
    return plain_server.serve


@pytest.fixture
def impatient(settings: Any) -> None:
    settings.CHECKS_CONNECT_TIMEOUT = 0.3
    settings.CHECKS_READ_TIMEOUT = 0.3


# Status and conditions


def test_it_passes_a_200_and_says_how_fast_it_came(serve: Serve) -> None:
    server = serve(lambda _: Reply(body="ok"))
    evidence = english(http.run(context(url=server.url + "/health")))
    assert re.fullmatch(r"HTTP 200 in \d+ ms", evidence)
    assert [seen.method for seen in server.requests] == ["GET"]


def test_it_fails_a_status_other_than_the_expected_one(serve: Serve) -> None:
    server = serve(lambda _: Reply(status=404))
    error = failure(http.KIND, url=server.url)
    assert_fault(error, "HTTP 404, expected 200")


def test_it_accepts_the_status_expect_status_names(serve: Serve) -> None:
    server = serve(lambda _: Reply(status=204))
    assert english(http.run(context(url=server.url, expect_status=204))).startswith("HTTP 204 in ")


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
    evidence = english(http.run(context(url=server.url, conditions=["[STATUS] == any(200, 503)"])))
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
    assert english(http.run(context(url=server.url, conditions=["[STATUS] < 300"])))


def test_it_times_out_on_a_slow_server(impatient: None, serve: Serve) -> None:
    server = serve(lambda _: Reply(delay=1.0))
    error = failure(http.KIND, url=server.url)
    assert (error.permanent, error.reason) == (False, Reason.TIMED_OUT)


def test_it_reports_a_refused_connection_as_unreachable_and_transient() -> None:
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
    evidence = english(http.run(context(url=server.url, conditions=[condition])))
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
    evidence = english(http.run(context(url=server.url, conditions=conditions)))
    assert re.fullmatch(r"HTTP 200 in \d+ ms; 3 conditions hold", evidence)


def test_it_compares_a_body_that_is_not_json_as_text(serve: Serve) -> None:
    server = serve(lambda _: Reply(body="pong\n"))
    conditions = ["[BODY] == pong", "len([BODY]) == 4", "has([BODY]) == true"]
    assert english(http.run(context(url=server.url, conditions=conditions)))


def test_it_fails_a_body_path_into_a_body_that_is_not_json(serve: Serve) -> None:
    server = serve(lambda _: Reply(body="<html>maintenance</html>"))
    error = failure(http.KIND, url=server.url, conditions=["[BODY].status == UP"])
    assert_fault(error, "[BODY].status == UP cannot hold: the body is not JSON")
    assert "maintenance" not in error.evidence


def test_it_reads_the_time_left_on_the_certificate(certs: Certificates) -> None:
    with stand_in(lambda _: Reply(body="ok"), tls=server_context(certs.near_expiry)) as server:
        url = server.url
        holds = ["[CERTIFICATE_EXPIRATION] > 48h"]
        assert english(http.run(context(url=url, ca_file=certs.ca_file, conditions=holds)))
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
    # Kept in English, read in the reader's language.
    with translation.override("es"):
        shown = error.said.translated()
    assert shown == (
        "opción no válida: condición '[STATUS] = 200': no tiene operador de comparación "
        "(==, !=, <=, >=, <, >)"
    )


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


# Credentials from the environment

SECRET = "glsa_planted_grafana_token_7d2e"


def echo_authorization(seen: Seen) -> Reply:
    return json_reply({"you_sent": seen.header("authorization"), "token": SECRET})


def test_it_sends_headers_from_the_environment_and_never_shows_their_values(
    serve: Serve,
) -> None:
    """Prometheus, Loki and Grafana take credentials in the Authorization header
    (https://prometheus.io/docs/prometheus/latest/configuration/https/,
    https://grafana.com/docs/grafana/latest/developers/http_api/auth/); a server may echo
    what it received."""
    server = serve(echo_authorization)
    env = {"GRAFANA_AUTHORIZATION": f"Bearer {SECRET}"}
    conditions = ["[BODY].you_sent == nothing", "[BODY].token == nothing"]
    error = failure(
        http.KIND,
        env,
        url=server.url,
        headers_env={"Authorization": "GRAFANA_AUTHORIZATION"},
        conditions=conditions,
    )
    [seen] = server.requests
    assert seen.header("authorization") == f"Bearer {SECRET}"
    assert_fault(error, "[BODY].you_sent == nothing is false: •••")
    assert "[BODY].token == nothing is false: •••" in error.evidence
    assert SECRET not in error.evidence
    assert SECRET not in str(error.said.as_json())


def test_it_fails_before_any_request_when_a_header_variable_is_unset(serve: Serve) -> None:
    """The header's value lives only in the worker's environment; without it the request
    would go out unauthenticated (https://prometheus.io/docs/prometheus/latest/configuration/https/)."""
    server = serve(lambda _: Reply())
    error = failure(
        http.KIND, {}, url=server.url, headers_env={"Authorization": "LOKI_AUTHORIZATION"}
    )
    assert_fault(error, "environment variable LOKI_AUTHORIZATION (header Authorization) is not set")
    assert server.requests == []


@pytest.mark.parametrize("variable", ["SECRET_KEY", "DATABASE_URL", "DJANGO_SETTINGS_MODULE"])
def test_it_never_sends_one_of_deploycheck_s_own_variables_as_a_header(
    serve: Serve, tmp_path: Path, variable: str
) -> None:
    """A header read from the worker's environment could otherwise carry the server's
    own secret key or database address to whatever host the check names: refused in the
    checks file, and at run time for a check saved before that."""
    head = '[[check]]\nname = "leak"\nkind = "http"\nurl = "https://collector.example.test/"\n'
    leaking = tmp_path / "leak.toml"
    leaking.write_text(head + f'headers_env = {{ X-Key = "{variable}" }}\n')
    with pytest.raises(config.ChecksFileError) as caught:
        config.read(leaking)
    assert caught.value.errors == [
        f"{leaking}:5: check “leak”: headers_env must not name {variable}, which deploycheck"
        " reads for itself; name a variable that holds only this check's credential"
    ]

    server = serve(lambda _: Reply())
    error = failure(http.KIND, {variable: SECRET}, url=server.url, headers_env={"X-Key": variable})
    assert_fault(error, f"{variable} is deploycheck's own variable, which no check may send")
    assert server.requests == []
    with pytest.raises(CheckError, match="own variable"):
        context({variable: SECRET}, secret_env=variable).secret()


def test_the_checks_file_takes_header_variables_but_never_a_credential(tmp_path: Path) -> None:
    """A header field's name is a token (RFC 9110 §5.1,
    https://www.rfc-editor.org/rfc/rfc9110#section-5.1); its value comes from a variable."""
    head = '[[check]]\nname = "metrics"\nkind = "http"\nurl = "https://prometheus.example.test/"\n'
    good = tmp_path / "good.toml"
    good.write_text(head + 'headers_env = { Authorization = "PROMETHEUS_AUTHORIZATION" }\n')
    [spec] = config.read(good)
    assert spec.options["headers_env"] == {"Authorization": "PROMETHEUS_AUTHORIZATION"}

    pasted = tmp_path / "pasted.toml"
    pasted.write_text(head + f'headers_env = {{ Authorization = "Bearer {SECRET}" }}\n')
    with pytest.raises(config.ChecksFileError) as caught:
        config.read(pasted)
    assert caught.value.errors == [
        f"{pasted}:5: check “metrics”: headers_env must be a table whose values name"
        " environment variables such as PROMETHEUS_AUTHORIZATION, not hold the credentials"
        " themselves"
    ]
    assert SECRET not in str(caught.value)

    badly_named = tmp_path / "name.toml"
    badly_named.write_text(head + 'headers_env = { "Author ization" = "PROMETHEUS_AUTH" }\n')
    with pytest.raises(config.ChecksFileError, match="not an HTTP header name"):
        config.read(badly_named)


# [CONNECTED]


def test_it_judges_connected_false_by_whether_a_connection_can_be_made(
    impatient: None, serve: Serve, certs: Certificates
) -> None:
    """Gatus reads [CONNECTED] as whether a connection was established, and judges the
    conditions when it was not (https://github.com/TwiN/gatus#conditions): a port nothing
    listens on holds `[CONNECTED] == false`; one that answers, even slowly or with a
    certificate nobody trusts, does not."""
    refused = closed_port()
    evidence = http.run(
        context(url=f"http://127.0.0.1:{refused}/", conditions="[CONNECTED] == false")
    )
    assert english(evidence) == "no connection to 127.0.0.1 could be made; 1 condition holds"

    server = serve(lambda _: Reply())
    answered = failure(http.KIND, url=server.url, conditions=["[CONNECTED] == false"])
    assert_fault(answered, "[CONNECTED] == false is false: true")

    with silent_port() as port:
        silent = failure(
            http.KIND, url=f"http://127.0.0.1:{port}/", conditions="[CONNECTED] == false"
        )
    assert (silent.permanent, silent.reason) == (False, Reason.TIMED_OUT)

    with stand_in(lambda _: Reply(), tls=server_context(certs.untrusted)) as secure:
        untrusted = failure(http.KIND, url=secure.url, conditions="[CONNECTED] == false")
    assert_fault(untrusted, "TLS certificate not accepted")


def test_it_fails_connected_true_where_nothing_listens(serve: Serve) -> None:
    """A condition on a connection that was not made is false, as in Gatus
    (https://github.com/TwiN/gatus#conditions); what needs an answer cannot hold."""
    url = f"http://127.0.0.1:{closed_port()}/"
    error = failure(http.KIND, url=url, conditions=["[CONNECTED] == true", "[STATUS] == 200"])
    assert error.evidence == (
        "[CONNECTED] == true is false: false; [STATUS] == 200 cannot hold: no connection was made"
    )
    assert error.permanent


def test_it_fails_an_expected_status_where_nothing_listens() -> None:
    """expect_status needs an answer (RFC 9110 §15, https://www.rfc-editor.org/rfc/rfc9110#section-15)."""
    url = f"http://127.0.0.1:{closed_port()}/"
    error = failure(http.KIND, url=url, expect_status=200, conditions=["[CONNECTED] == false"])
    assert_fault(error, "no connection was made, expected HTTP 200")
