"""The twilio kind against a stand-in Twilio on 127.0.0.1: the REST API and the trunking
API answering as Twilio's documentation describes them.

Every failing run goes through `failure()`, which also asserts that no planted token,
key secret or other credential reached the evidence or the exception's text.
"""

from __future__ import annotations

import base64
from collections.abc import Iterator
from typing import Any

import pytest

from checks.kinds import twilio
from checks.kinds.base import Reason, Said

from .standin import stand_in
from .test_vendor_kinds import (
    Serve,
    Switch,
    assert_not_verified_at_once,
    assert_permanent,
    assert_secret_only_in_headers,
    assert_transient,
    context,
    failure,
    success,
)
from .vendors import (
    TWILIO_KEY_SECRET,
    TWILIO_KEY_SID,
    TWILIO_SID,
    TWILIO_TOKEN,
    Twilio,
    application,
    origination_url,
    production_number,
    trunk,
)

TWILIO_ENV = {"TWILIO_TOKEN": TWILIO_TOKEN, "TWILIO_SID": TWILIO_SID}
KEY_ENV = {"TWILIO_KEY_SID": TWILIO_KEY_SID, "TWILIO_KEY_SECRET": TWILIO_KEY_SECRET}
ACCOUNT = f"/2010-04-01/Accounts/{TWILIO_SID}"
NUMBERS = f"{ACCOUNT}/IncomingPhoneNumbers.json"
APP = "AP" + "2" * 32
OTHER_APP = "AP" + "4" * 32
TRUNK = "TK" + "3" * 32
NEVER_PRODUCTION = "a tunnel, local or private host is never production"
HEALTHY = (
    "account active and Full; balance 112.50 USD; 3 numbers; voice by URL 3, by application "
    "0, by trunk 0, without voice 0; SMS by application 0; every URL https, none on a tunnel "
    "or private host"
)


@pytest.fixture(scope="module")
def switch() -> Iterator[Switch]:
    switch = Switch()
    with stand_in(switch) as server:
        switch.server = server
        yield switch


@pytest.fixture
def serve(switch: Switch) -> Serve:
    return switch.plug


def options(url: str, **more: Any) -> dict[str, Any]:
    # Both APIs on the one stand-in: their paths do not overlap.
    return {
        "secret_env": "TWILIO_TOKEN",
        "account_sid_env": "TWILIO_SID",
        "base_url": url,
        "trunking_base_url": url,
        **more,
    }


def key_options(url: str, **more: Any) -> dict[str, Any]:
    return options(url, api_key_sid_env="TWILIO_KEY_SID", secret_env="TWILIO_KEY_SECRET", **more)


def basic(username: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{username}:{password}".encode()).decode()


# What worked before: the account, its credentials, paging. ------------------------------


def test_it_passes_twilio_with_a_full_account_and_every_webhook_on_the_host(serve: Serve) -> None:
    """https://www.twilio.com/docs/usage/api/account and
    https://www.twilio.com/docs/phone-numbers/api/incomingphonenumber-resource"""
    server = serve(Twilio())
    evidence = success(
        twilio.KIND, context(options(server.url, expected_host="API.example.com"), TWILIO_ENV)
    )
    assert evidence == HEALTHY.replace("every URL https", "every URL https on api.example.com")
    assert [seen.path for seen in server.requests] == [
        f"{ACCOUNT}.json",
        f"{ACCOUNT}/Balance.json",
        NUMBERS,
        NUMBERS,
    ]
    assert server.requests[3].query["Page"] == ["1"]
    assert {seen.header("authorization") for seen in server.requests} == {
        basic(TWILIO_SID, TWILIO_TOKEN)
    }
    assert_secret_only_in_headers(server.requests, TWILIO_TOKEN)


def test_it_does_not_append_the_twilio_version_twice(serve: Serve) -> None:
    server = serve(Twilio())
    evidence = success(twilio.KIND, context(options(server.url + "/2010-04-01"), TWILIO_ENV))
    assert evidence == HEALTHY
    assert server.requests[0].path == f"{ACCOUNT}.json"


@pytest.mark.parametrize(
    ("status", "account_type", "said"),
    [
        ("active", "Trial", "account type is Trial, not Full"),
        ("suspended", "Full", "account status is suspended, not active"),
        ("closed", "Full", "account status is closed, not active"),
    ],
)
def test_it_fails_a_twilio_account_that_is_not_active_and_full(
    status: str, account_type: str, said: str, serve: Serve
) -> None:
    """https://www.twilio.com/docs/usage/api/account: status active|suspended|closed,
    type Trial|Full."""
    server = serve(Twilio(status=status, account_type=account_type))
    error = failure(twilio.KIND, context(options(server.url), TWILIO_ENV))
    assert_permanent(error, Reason.MISCONFIGURED)
    assert said in error.evidence


@pytest.mark.parametrize(
    ("status", "account_type", "said"),
    [
        (
            "pending",
            "Full",
            "account status is pending, which is not one the API documents "
            "(active, suspended, closed)",
        ),
        (
            "active",
            "Enterprise",
            "account type is Enterprise, which is not one the API documents (Trial, Full)",
        ),
    ],
)
def test_it_does_not_verify_an_account_status_or_type_the_api_does_not_document(
    status: str, account_type: str, said: str, serve: Serve
) -> None:
    server = serve(Twilio(status=status, account_type=account_type))
    error = failure(twilio.KIND, context(options(server.url), TWILIO_ENV))
    assert_not_verified_at_once(error)
    assert error.evidence == said


@pytest.mark.parametrize(("status", "account_type"), [("", "Full"), ("active", "")])
def test_it_retries_an_account_without_its_status_or_type(
    status: str, account_type: str, serve: Serve
) -> None:
    server = serve(Twilio(status=status, account_type=account_type))
    error = failure(twilio.KIND, context(options(server.url), TWILIO_ENV))
    assert_transient(error, Reason.BAD_RESPONSE)
    assert error.evidence == "account: HTTP 200 without status and type"


def test_it_names_the_number_and_field_of_a_plain_http_webhook_without_its_query(
    serve: Serve,
) -> None:
    numbers = [
        production_number("+15550100001"),
        production_number(
            "+15550100002", sms_url="http://staging.example.com/sms?token=planted-query-token"
        ),
    ]
    server = serve(Twilio(numbers=numbers))
    error = failure(twilio.KIND, context(options(server.url), TWILIO_ENV))
    assert_permanent(error, Reason.MISCONFIGURED)
    assert error.evidence == (
        "1 routing problem: +15550100002 sms_url is not https (http on staging.example.com)"
    )
    assert "planted-query-token" not in error.evidence


def test_it_names_a_twilio_webhook_on_another_host(serve: Serve) -> None:
    numbers = [
        production_number("+15550100003", status_callback="https://staging.example.com/status"),
        production_number("+15550100004", voice_fallback_url="https://old.example.net/fallback"),
    ]
    server = serve(Twilio(numbers=numbers))
    error = failure(
        twilio.KIND, context(options(server.url, expected_host="api.example.com"), TWILIO_ENV)
    )
    assert_permanent(error, Reason.MISCONFIGURED)
    assert error.evidence == (
        "2 routing problems: +15550100003 status_callback points at staging.example.com, not "
        "api.example.com; +15550100004 voice_fallback_url points at old.example.net, not "
        "api.example.com"
    )


def test_it_fails_twilio_auth_for_a_refused_token(serve: Serve) -> None:
    """https://www.twilio.com/docs/api/errors/20003"""
    server = serve(Twilio(token="the-real-token"))
    error = failure(twilio.KIND, context(options(server.url), TWILIO_ENV))
    assert_permanent(error, Reason.AUTH_FAILED)
    assert error.evidence == (
        "account: the account SID and auth token were refused (HTTP 401 code 20003)"
    )


def test_it_fails_twilio_auth_when_the_sid_belongs_to_another_token(serve: Serve) -> None:
    other = "AC" + "f" * 32
    server = serve(Twilio())
    error = failure(twilio.KIND, context(options(server.url), {**TWILIO_ENV, "TWILIO_SID": other}))
    assert_permanent(error, Reason.AUTH_FAILED)
    assert "code 20003" in error.evidence


def test_it_fails_twilio_auth_when_no_account_is_found_for_the_credentials(serve: Serve) -> None:
    server = serve(Twilio(mode="no_account"))
    error = failure(twilio.KIND, context(options(server.url), TWILIO_ENV))
    assert_permanent(error, Reason.AUTH_FAILED)
    assert error.evidence == "account not found for these credentials (HTTP 404 code 20404)"


def test_it_rejects_an_account_sid_that_is_not_ac_and_32_hex_digits(serve: Serve) -> None:
    server = serve(Twilio())
    error = failure(
        twilio.KIND, context(options(server.url), {**TWILIO_ENV, "TWILIO_SID": "SK123"})
    )
    assert_permanent(error, Reason.MISCONFIGURED)
    assert server.requests == []


def test_it_retries_a_twilio_rate_limit_after_its_retry_after(serve: Serve) -> None:
    """https://www.twilio.com/docs/api/errors/20429"""
    server = serve(Twilio(mode="rate_limited", limit_headers={"Retry-After": "2"}))
    error = failure(twilio.KIND, context(options(server.url), TWILIO_ENV))
    assert_transient(error, Reason.RATE_LIMITED, 2.0)
    assert "code 20429" in error.evidence


def test_it_never_follows_a_twilio_next_page_to_another_host(serve: Serve) -> None:
    server = serve(Twilio(mode="foreign_page"))
    error = failure(twilio.KIND, context(options(server.url), TWILIO_ENV))
    assert_transient(error, Reason.BAD_RESPONSE)
    assert [seen.path for seen in server.requests][-1] == NUMBERS
    assert len(server.requests) == 3


def test_it_stops_after_twenty_pages_of_twilio_numbers(serve: Serve) -> None:
    server = serve(Twilio(mode="endless"))
    error = failure(twilio.KIND, context(options(server.url), TWILIO_ENV))
    assert_transient(error, Reason.BAD_RESPONSE)
    assert "more than 20 pages" in error.evidence
    assert [seen.path for seen in server.requests].count(NUMBERS) == 20


# The numbers are the product. -----------------------------------------------------------


def test_it_fails_an_account_without_a_single_incoming_number(serve: Serve) -> None:
    """https://www.twilio.com/docs/phone-numbers/api/incomingphonenumber-resource: the
    list is the account's numbers; an empty one means nothing can call or text it."""
    server = serve(Twilio(numbers=[]))
    error = failure(twilio.KIND, context(options(server.url), TWILIO_ENV))
    assert_permanent(error, Reason.MISCONFIGURED)
    assert error.evidence == (
        "the account has no incoming phone numbers: nothing can call or text it"
    )


def test_it_fails_a_number_whose_calls_go_nowhere(serve: Serve) -> None:
    """https://www.twilio.com/docs/phone-numbers/api/incomingphonenumber-resource:
    voice_url, voice_application_sid and trunk_sid are the three places a call can go."""
    numbers = [
        production_number("+15550100001"),
        production_number("+15550100009", voice_url=""),
    ]
    server = serve(Twilio(numbers=numbers))
    error = failure(twilio.KIND, context(options(server.url), TWILIO_ENV))
    assert_permanent(error, Reason.MISCONFIGURED)
    assert error.evidence == (
        "1 routing problem: +15550100009 has no voice URL, application or trunk: "
        "its calls go nowhere"
    )


def test_it_accepts_a_number_without_a_voice_url_that_cannot_take_calls(serve: Serve) -> None:
    """https://www.twilio.com/docs/phone-numbers/api/incomingphonenumber-resource:
    `capabilities` says whether the number can receive calls."""
    numbers = [
        production_number(
            "+15550100010",
            voice_url="",
            status_callback="",
            capabilities={"voice": False, "sms": True, "mms": False, "fax": False},
        )
    ]
    server = serve(Twilio(numbers=numbers))
    evidence = success(twilio.KIND, context(options(server.url), TWILIO_ENV))
    assert "1 number; voice by URL 0, by application 0, by trunk 0, without voice 1" in evidence


# Routing is checked where Twilio takes it from. -----------------------------------------


def test_it_follows_numbers_to_their_application_and_trunk_and_ignores_what_they_override(
    serve: Serve,
) -> None:
    """https://www.twilio.com/docs/phone-numbers/api/incomingphonenumber-resource: "If a
    voice_application_sid is present, we ignore all of the voice urls", "If a trunk_sid
    is present, we ignore all of the voice urls and voice applications", "If an
    sms_application_sid is present, we ignore all sms_*_url values"; the Application is
    https://www.twilio.com/docs/usage/api/applications and the trunk
    https://www.twilio.com/docs/sip-trunking/api/trunk-resource."""
    numbers = [
        production_number(
            "+15550100005", voice_application_sid=APP, voice_url="http://ignored.example/voice"
        ),
        production_number(
            "+15550100006",
            trunk_sid=TRUNK,
            voice_application_sid=OTHER_APP,
            voice_url="http://ignored.example/voice",
        ),
        production_number(
            "+15550100007", sms_application_sid=APP, sms_url="http://ignored.example/sms"
        ),
    ]
    applications = {
        APP: application(
            APP,
            voice_url="https://api.example.com/twilio/voice",
            status_callback="https://api.example.com/twilio/status",
            sms_url="https://api.example.com/twilio/sms",
        ),
        OTHER_APP: application(OTHER_APP, voice_url="https://abc.ngrok.io/voice"),
    }
    trunks = {TRUNK: trunk(TRUNK, disaster_recovery_url="https://api.example.com/recovery")}
    origination = {
        TRUNK: [
            origination_url(TRUNK, "sip:pbx.example.com:5060;transport=tls"),
            origination_url(TRUNK, "sip:10.0.0.9", index=1, enabled=False),
        ]
    }
    server = serve(
        Twilio(
            numbers=numbers,
            applications=applications,
            trunks=trunks,
            origination_urls=origination,
        )
    )
    evidence = success(
        twilio.KIND, context(options(server.url, expected_host="api.example.com"), TWILIO_ENV)
    )
    assert evidence == (
        "account active and Full; balance 112.50 USD; 3 numbers; voice by URL 1, by "
        "application 1, by trunk 1, without voice 0; SMS by application 1; every URL https "
        "on api.example.com, none on a tunnel or private host"
    )
    paths = [seen.path for seen in server.requests]
    assert paths.count(f"{ACCOUNT}/Applications/{APP}.json") == 1
    assert f"{ACCOUNT}/Applications/{OTHER_APP}.json" not in paths
    assert f"/v1/Trunks/{TRUNK}" in paths
    assert f"/v1/Trunks/{TRUNK}/OriginationUrls" in paths


def test_it_fails_an_application_whose_urls_are_not_production(serve: Serve) -> None:
    """https://www.twilio.com/docs/usage/api/applications: the Application's voice_url,
    voice_fallback_url and status_callback, each with its GET or POST method."""
    numbers = [production_number("+15550100005", voice_application_sid=APP)]
    applications = {
        APP: application(
            APP,
            voice_url="https://abc123.ngrok-free.app/voice",
            voice_fallback_url="http://api.example.com/fallback",
            voice_fallback_method="DELETE",
        )
    }
    server = serve(Twilio(numbers=numbers, applications=applications))
    error = failure(twilio.KIND, context(options(server.url), TWILIO_ENV))
    assert_permanent(error, Reason.MISCONFIGURED)
    # The evidence is cut at 300 characters; the sentence keeps every problem in full.
    assert error.evidence.startswith("3 routing problems: ")
    problems = [error.said.values[slot] for slot in ("first", "second", "third")]
    assert [problem.english() for problem in problems if isinstance(problem, Said)] == [
        f"application {APP} voice_url points at abc123.ngrok-free.app: {NEVER_PRODUCTION}",
        f"application {APP} voice_fallback_url is not https (http on api.example.com)",
        f"application {APP} voice_fallback_method is DELETE, not GET or POST",
    ]
    assert server.requests[-1].path == f"{ACCOUNT}/Applications/{APP}.json"
    assert server.requests[-1].header("authorization") == basic(TWILIO_SID, TWILIO_TOKEN)


def test_it_fails_an_application_without_a_voice_url(serve: Serve) -> None:
    """https://www.twilio.com/docs/usage/api/applications: voice_url is "The URL we call
    when the phone number assigned to this application receives a call"."""
    numbers = [production_number("+15550100005", voice_application_sid=APP)]
    server = serve(Twilio(numbers=numbers, applications={APP: application(APP)}))
    error = failure(twilio.KIND, context(options(server.url), TWILIO_ENV))
    assert_permanent(error, Reason.MISCONFIGURED)
    assert error.evidence == (
        f"1 routing problem: application {APP} has no voice_url: calls to +15550100005 go nowhere"
    )


def test_it_fails_an_sms_application_whose_urls_are_not_production(serve: Serve) -> None:
    """https://www.twilio.com/docs/usage/api/applications: sms_url, sms_fallback_url,
    sms_status_callback and message_status_callback."""
    numbers = [production_number("+15550100007", sms_application_sid=APP)]
    applications = {
        APP: application(
            APP,
            voice_url="https://api.example.com/voice",
            sms_url="https://quiet-fox.loca.lt/sms",
            message_status_callback="http://api.example.com/message-status",
        )
    }
    server = serve(Twilio(numbers=numbers, applications=applications))
    error = failure(twilio.KIND, context(options(server.url), TWILIO_ENV))
    assert_permanent(error, Reason.MISCONFIGURED)
    assert error.evidence == (
        f"2 routing problems: application {APP} sms_url points at quiet-fox.loca.lt: "
        f"{NEVER_PRODUCTION}; application {APP} message_status_callback is not https (http "
        "on api.example.com)"
    )


def test_it_fails_a_number_routed_to_an_application_that_does_not_exist(serve: Serve) -> None:
    """https://www.twilio.com/docs/api/errors/20404 for a fetch of
    https://www.twilio.com/docs/usage/api/applications"""
    numbers = [production_number("+15550100005", voice_application_sid=APP)]
    server = serve(Twilio(numbers=numbers))
    error = failure(twilio.KIND, context(options(server.url), TWILIO_ENV))
    assert_permanent(error, Reason.MISCONFIGURED)
    assert error.evidence == (
        f"1 routing problem: application {APP}, which +15550100005 routes to, was not found "
        "(HTTP 404 code 20404)"
    )


@pytest.mark.parametrize(
    ("trunk_fields", "urls", "problem"),
    [
        (
            {},
            [origination_url(TRUNK, "sip:admin:planted-sip-password@192.168.0.10:5060")],
            f"trunk {TRUNK} origination URL pbx-0 points at 192.168.0.10: {NEVER_PRODUCTION}",
        ),
        (
            {},
            [origination_url(TRUNK, "sip://[fd00::5]:5060")],
            f"trunk {TRUNK} origination URL pbx-0 points at fd00::5: {NEVER_PRODUCTION}",
        ),
        (
            {},
            [origination_url(TRUNK, "https://pbx.example.com/")],
            f"trunk {TRUNK} origination URL pbx-0 is not a sip: URI (https)",
        ),
        (
            {},
            [origination_url(TRUNK, "sip:pbx.example.com", enabled=False)],
            f"trunk {TRUNK} has no enabled origination URL: calls to +15550100006 go nowhere",
        ),
        (
            {},
            [],
            f"trunk {TRUNK} has no enabled origination URL: calls to +15550100006 go nowhere",
        ),
        (
            {"disaster_recovery_url": "http://api.example.com/recovery"},
            [origination_url(TRUNK, "sip:pbx.example.com")],
            f"trunk {TRUNK} disaster_recovery_url is not https (http on api.example.com)",
        ),
        (
            {
                "disaster_recovery_url": "https://api.example.com/recovery",
                "disaster_recovery_method": "PATCH",
            },
            [origination_url(TRUNK, "sip:pbx.example.com")],
            f"trunk {TRUNK} disaster_recovery_method is PATCH, not GET or POST",
        ),
    ],
)
def test_it_fails_a_trunk_that_cannot_reach_production(
    trunk_fields: dict[str, Any], urls: list[dict[str, Any]], problem: str, serve: Serve
) -> None:
    """https://www.twilio.com/docs/sip-trunking/api/originationurl-resource: sip_url "must
    be a sip: schema", `enabled` defaults to true; disaster_recovery_url and its GET or
    POST method in https://www.twilio.com/docs/sip-trunking/api/trunk-resource."""
    numbers = [production_number("+15550100006", trunk_sid=TRUNK)]
    server = serve(
        Twilio(
            numbers=numbers,
            trunks={TRUNK: trunk(TRUNK, **trunk_fields)},
            origination_urls={TRUNK: urls},
        )
    )
    error = failure(twilio.KIND, context(options(server.url), TWILIO_ENV))
    assert_permanent(error, Reason.MISCONFIGURED)
    assert error.evidence == f"1 routing problem: {problem}"
    assert "planted-sip-password" not in error.evidence


def test_it_fails_a_number_routed_to_a_trunk_that_does_not_exist(serve: Serve) -> None:
    """https://www.twilio.com/docs/sip-trunking/api/trunk-resource"""
    numbers = [production_number("+15550100006", trunk_sid=TRUNK)]
    server = serve(Twilio(numbers=numbers))
    error = failure(twilio.KIND, context(options(server.url), TWILIO_ENV))
    assert_permanent(error, Reason.MISCONFIGURED)
    assert error.evidence == (
        f"1 routing problem: trunk {TRUNK}, which +15550100006 routes to, was not found "
        "(HTTP 404 code 20404)"
    )


def test_it_asks_the_trunking_api_on_its_own_host(serve: Serve) -> None:
    """https://www.twilio.com/docs/sip-trunking/api/trunk-resource: GET
    https://trunking.twilio.com/v1/Trunks/{Sid}, another host than api.twilio.com, with
    the same Basic credentials."""
    numbers = [production_number("+15550100006", trunk_sid=TRUNK)]
    vendor = Twilio(
        numbers=numbers,
        trunks={TRUNK: trunk(TRUNK)},
        origination_urls={TRUNK: [origination_url(TRUNK, "sip:pbx.example.com")]},
    )
    api = serve(vendor)
    with stand_in(vendor) as trunking:
        success(
            twilio.KIND,
            context(options(api.url, trunking_base_url=trunking.url), TWILIO_ENV),
        )
    assert [seen.path for seen in trunking.requests] == [
        f"/v1/Trunks/{TRUNK}",
        f"/v1/Trunks/{TRUNK}/OriginationUrls",
    ]
    assert {seen.header("authorization") for seen in trunking.requests} == {
        basic(TWILIO_SID, TWILIO_TOKEN)
    }
    assert not [seen for seen in api.requests if seen.path.startswith("/v1/")]


def test_it_reads_every_page_of_a_trunks_origination_urls(serve: Serve) -> None:
    """https://www.twilio.com/docs/sip-trunking/api/originationurl-resource: the list
    pages with meta.next_page_url."""
    numbers = [production_number("+15550100006", trunk_sid=TRUNK)]
    urls = [
        origination_url(TRUNK, "sip:pbx.example.com"),
        origination_url(TRUNK, "sip:pbx.internal", index=1),
    ]
    vendor = Twilio(
        numbers=numbers,
        trunks={TRUNK: trunk(TRUNK)},
        origination_urls={TRUNK: urls},
        origination_page_size=1,
    )
    server = serve(vendor)
    error = failure(twilio.KIND, context(options(server.url), TWILIO_ENV))
    assert error.evidence == (
        f"1 routing problem: trunk {TRUNK} origination URL pbx-1 points at pbx.internal: "
        f"{NEVER_PRODUCTION}"
    )
    assert server.requests[-1].query["Page"] == ["1"]


def test_it_never_follows_a_trunks_next_page_to_another_host(serve: Serve) -> None:
    numbers = [production_number("+15550100006", trunk_sid=TRUNK)]
    vendor = Twilio(
        mode="foreign_trunk_page",
        numbers=numbers,
        trunks={TRUNK: trunk(TRUNK)},
        origination_urls={TRUNK: [origination_url(TRUNK, "sip:pbx.example.com")]},
    )
    server = serve(vendor)
    error = failure(twilio.KIND, context(options(server.url), TWILIO_ENV))
    assert_transient(error, Reason.BAD_RESPONSE)
    assert "next_page_url is not a page of the same list" in error.evidence
    assert server.requests[-1].path == f"/v1/Trunks/{TRUNK}/OriginationUrls"


# Tunnels and development hosts are never production. ------------------------------------


@pytest.mark.parametrize(
    ("url", "host"),
    [
        ("https://abc123.ngrok.io/voice", "abc123.ngrok.io"),
        ("https://abc123.ngrok-free.app/voice", "abc123.ngrok-free.app"),
        ("https://abc123.ngrok.app/voice", "abc123.ngrok.app"),
        ("https://abc123.ngrok.dev/voice", "abc123.ngrok.dev"),
        ("https://quiet-fox.loca.lt/voice", "quiet-fox.loca.lt"),
        ("https://some-words.trycloudflare.com/voice", "some-words.trycloudflare.com"),
        ("https://localhost/voice", "localhost"),
        ("https://LOCALHOST./voice", "localhost"),
        ("https://127.0.0.1:8443/voice", "127.0.0.1"),
        ("https://127.1/voice", "127.1"),
        ("https://10.1.2.3/voice", "10.1.2.3"),
        ("https://172.16.0.5/voice", "172.16.0.5"),
        ("https://192.168.1.20/voice", "192.168.1.20"),
        ("https://100.64.0.1/voice", "100.64.0.1"),
        ("https://169.254.169.254/voice", "169.254.169.254"),
        ("https://0.0.0.0/voice", "0.0.0.0"),
        ("https://[::1]/voice", "::1"),
        ("https://[::]/voice", "::"),
        ("https://[fe80::1]/voice", "fe80::1"),
        ("https://[fd12:3456::1]/voice", "fd12:3456::1"),
        ("https://[::ffff:10.0.0.1]/voice", "::ffff:10.0.0.1"),
        ("https://printer.local/voice", "printer.local"),
        ("https://api.internal/voice", "api.internal"),
        ("https://app.test/voice", "app.test"),
        ("https://staging/voice", "staging"),
    ],
)
def test_it_never_counts_a_tunnel_or_development_host_as_production(
    url: str, host: str, serve: Serve
) -> None:
    """https://www.twilio.com/docs/usage/webhooks/webhooks-security: Twilio calls
    webhooks from the internet; a tunnel reaches a developer's machine and a private
    address reaches nothing, expected_host or not."""
    server = serve(Twilio(numbers=[production_number("+15550100001", voice_url=url)]))
    error = failure(twilio.KIND, context(options(server.url), TWILIO_ENV))
    assert_permanent(error, Reason.MISCONFIGURED)
    assert error.evidence == (
        f"1 routing problem: +15550100001 voice_url points at {host}: {NEVER_PRODUCTION}"
    )


def test_it_fails_a_tunnel_host_even_when_it_is_the_expected_host(serve: Serve) -> None:
    numbers = [
        production_number(
            "+15550100001",
            voice_url="https://abc123.ngrok.io/voice",
            sms_url="https://abc123.ngrok.io/sms",
            status_callback="",
        )
    ]
    server = serve(Twilio(numbers=numbers))
    error = failure(
        twilio.KIND, context(options(server.url, expected_host="abc123.ngrok.io"), TWILIO_ENV)
    )
    assert_permanent(error, Reason.MISCONFIGURED)
    assert error.evidence.startswith(
        f"2 routing problems: +15550100001 voice_url points at abc123.ngrok.io: {NEVER_PRODUCTION}"
    )


# Fallbacks, status callbacks and methods. -----------------------------------------------


def test_it_fails_a_method_twilio_does_not_document(serve: Serve) -> None:
    """https://www.twilio.com/docs/phone-numbers/api/incomingphonenumber-resource: each
    *_method "Can be: GET or POST"."""
    numbers = [
        production_number(
            "+15550100001",
            voice_method="PUT",
            status_callback_method=None,
            sms_fallback_url="https://api.example.com/sms-fallback",
            sms_fallback_method="get",
        )
    ]
    server = serve(Twilio(numbers=numbers))
    error = failure(twilio.KIND, context(options(server.url), TWILIO_ENV))
    assert_permanent(error, Reason.MISCONFIGURED)
    assert error.evidence == (
        "2 routing problems: +15550100001 voice_method is PUT, not GET or POST; "
        "+15550100001 status_callback_method is missing, not GET or POST"
    )


def test_it_checks_a_numbers_fallback_and_status_callback_like_its_voice_url(
    serve: Serve,
) -> None:
    numbers = [
        production_number(
            "+15550100001",
            voice_fallback_url="https://[::1]:8080/fallback",
            status_callback="https://status.example.com.trycloudflare.com/status",
        )
    ]
    server = serve(Twilio(numbers=numbers))
    error = failure(twilio.KIND, context(options(server.url), TWILIO_ENV))
    assert_permanent(error, Reason.MISCONFIGURED)
    assert error.evidence == (
        f"2 routing problems: +15550100001 voice_fallback_url points at ::1: {NEVER_PRODUCTION}; "
        "+15550100001 status_callback points at status.example.com.trycloudflare.com: "
        f"{NEVER_PRODUCTION}"
    )


# The balance. ---------------------------------------------------------------------------


def test_it_passes_a_balance_at_or_above_the_minimum(serve: Serve) -> None:
    """https://support.twilio.com/hc/en-us/articles/360025294494-Check-Your-Twilio-Account-Balance:
    GET /2010-04-01/Accounts/{Sid}/Balance.json answers balance and currency."""
    server = serve(Twilio(balance="100.00"))
    evidence = success(twilio.KIND, context(options(server.url, min_balance=100), TWILIO_ENV))
    assert "balance 100.00 USD" in evidence


def test_it_fails_a_balance_below_the_minimum_with_both_amounts(serve: Serve) -> None:
    server = serve(Twilio(balance="12.29", currency="EUR"))
    error = failure(twilio.KIND, context(options(server.url, min_balance=20), TWILIO_ENV))
    assert_permanent(error, Reason.QUOTA_EXHAUSTED)
    assert error.evidence == "balance is 12.29 EUR, below the minimum of 20"


@pytest.mark.parametrize("balance", ["0.00", "-3.75"])
def test_it_fails_a_balance_at_or_below_zero_without_a_minimum(balance: str, serve: Serve) -> None:
    """https://support.twilio.com/hc/en-us/articles/223183248:
    "When your account balance reaches zero, your account will become suspended"."""
    server = serve(Twilio(balance=balance))
    error = failure(twilio.KIND, context(options(server.url), TWILIO_ENV))
    assert_permanent(error, Reason.QUOTA_EXHAUSTED)
    assert error.evidence == (
        f"balance is {balance} USD: Twilio suspends an account whose balance reaches zero"
    )


@pytest.mark.parametrize("balance", ["twelve", "NaN", "Infinity", True])
def test_it_cannot_judge_a_balance_that_is_not_a_number(balance: Any, serve: Serve) -> None:
    server = serve(Twilio(balance=balance))
    error = failure(twilio.KIND, context(options(server.url, min_balance=1), TWILIO_ENV))
    assert_transient(error, Reason.BAD_RESPONSE)
    assert error.evidence == "balance: HTTP 200 without a number"


def test_it_says_a_subaccount_reports_no_balance_and_fails_only_a_minimum(serve: Serve) -> None:
    """Fetch balance, in Twilio's OpenAPI description (github.com/twilio/twilio-oai,
    spec/json/twilio_api_v2010.json): "Child accounts do not contain balance
    information"."""
    server = serve(Twilio(balance=None))
    evidence = success(twilio.KIND, context(options(server.url), TWILIO_ENV))
    assert "balance not reported;" in evidence
    error = failure(twilio.KIND, context(options(server.url, min_balance=10), TWILIO_ENV))
    assert_permanent(error, Reason.MISCONFIGURED)
    assert "min_balance 10 cannot be checked" in error.evidence


# API keys. ------------------------------------------------------------------------------


def test_it_authenticates_with_an_api_key_and_keeps_the_account_in_the_path(
    serve: Serve,
) -> None:
    """https://www.twilio.com/docs/usage/requests-to-twilio: Basic auth with the API Key
    as username and its secret as password; the account SID stays in each path."""
    server = serve(Twilio())
    evidence = success(twilio.KIND, context(key_options(server.url), {**TWILIO_ENV, **KEY_ENV}))
    assert evidence == HEALTHY
    assert {seen.header("authorization") for seen in server.requests} == {
        basic(TWILIO_KEY_SID, TWILIO_KEY_SECRET)
    }
    assert all(seen.path.startswith(ACCOUNT) for seen in server.requests)
    assert_secret_only_in_headers(server.requests, TWILIO_KEY_SECRET)


def test_it_fails_auth_for_an_api_key_with_a_wrong_secret(serve: Serve) -> None:
    """https://www.twilio.com/docs/api/errors/20003: "Attempted API Key has been deleted"
    among the causes of a 401."""
    server = serve(Twilio(api_keys={TWILIO_KEY_SID: ("the-real-secret", "main")}))
    error = failure(twilio.KIND, context(key_options(server.url), {**TWILIO_ENV, **KEY_ENV}))
    assert_permanent(error, Reason.AUTH_FAILED)
    assert error.evidence.startswith("account: the API key was refused (HTTP 401 code 20003)")


@pytest.mark.parametrize("status", [401, 403])
def test_it_says_a_standard_api_key_cannot_read_the_account(status: int, serve: Serve) -> None:
    """https://www.twilio.com/docs/iam/api-keys/keys-in-console: a Standard key has
    "Access to all Twilio API resources, except for Accounts (/Accounts)"; only a Main
    key can read the account's status and type."""
    server = serve(
        Twilio(
            api_keys={TWILIO_KEY_SID: (TWILIO_KEY_SECRET, "standard")},
            key_refused_status=status,
        )
    )
    error = failure(twilio.KIND, context(key_options(server.url), {**TWILIO_ENV, **KEY_ENV}))
    assert_permanent(error, Reason.AUTH_FAILED)
    assert error.evidence == (
        f"account: the API key was refused (HTTP {status} code 20003): its secret is wrong, or "
        "it is a Standard or Restricted key, which cannot read the Account resource (only a "
        "Main key can)"
    )


def test_it_rejects_an_api_key_sid_that_is_not_sk_and_32_hex_digits(serve: Serve) -> None:
    server = serve(Twilio())
    env = {**TWILIO_ENV, **KEY_ENV, "TWILIO_KEY_SID": TWILIO_SID}
    error = failure(twilio.KIND, context(key_options(server.url), env))
    assert_permanent(error, Reason.MISCONFIGURED)
    assert error.evidence == "the API key SID in TWILIO_KEY_SID is not SK and 32 hex digits"
    assert server.requests == []


# Evidence a reader gets in their own language. ------------------------------------------


def test_it_writes_its_evidence_as_messages_with_slots_for_each_language(serve: Serve) -> None:
    server = serve(Twilio())
    evidence = twilio.KIND.run(context(options(server.url), TWILIO_ENV))
    assert isinstance(evidence, Said)
    assert "%(balance)s" in evidence.message
    assert isinstance(evidence.values["balance"], Said)

    server = serve(Twilio(numbers=[production_number("+15550100009", voice_url="")]))
    error = failure(twilio.KIND, context(options(server.url), TWILIO_ENV))
    assert error.said.message == "1 routing problem: %(first)s"
    first = error.said.values["first"]
    assert isinstance(first, Said)
    assert first.values == {"number": "+15550100009"}
