"""The dns kind against a DNS stand-in on 127.0.0.1 answering A and AAAA queries."""

from __future__ import annotations

import re
from typing import Any

import pytest

from checks.kinds import dns
from checks.kinds.base import CheckError, Context, Kind, Reason, Said, as_said
from tests.checks.protocol_standins import Mode, dns_stand_in


def context(**options: Any) -> Context:
    return Context(options=options, release_version="v1.0.0", env={})


def english(evidence: Said | str) -> str:
    return as_said(evidence).english()


def failure(kind: Kind, **options: Any) -> CheckError:
    with pytest.raises(CheckError) as caught:
        kind.run(context(**options))
    return caught.value


def assert_fault(error: CheckError, evidence: str) -> None:
    assert (error.permanent, error.reason) == (True, Reason.MISCONFIGURED)
    assert evidence in error.evidence


@pytest.fixture
def impatient(settings: Any) -> None:
    settings.CHECKS_CONNECT_TIMEOUT = 0.3
    settings.CHECKS_READ_TIMEOUT = 0.3


# Resolution


def test_it_passes_a_name_that_resolves_to_the_expected_address() -> None:
    with dns_stand_in({"api.example.test": ["203.0.113.7"]}) as server:
        evidence = english(
            dns.run(
                context(host="api.example.test", nameserver=server.address, expect="203.0.113.7")
            )
        )
    assert evidence == f"api.example.test resolves to 203.0.113.7 (TTL 300) via {server.address}"
    assert server.queries == [("api.example.test", "A"), ("api.example.test", "AAAA")]


def test_it_compares_both_families_as_normalized_sets() -> None:
    records = {"api.example.test": ["2001:db8::7", "203.0.113.7", "203.0.113.8"]}
    expect = ["203.0.113.8", "2001:0db8:0:0::7", "203.0.113.7"]
    with dns_stand_in(records, ttl=60) as server:
        evidence = english(
            dns.run(context(host="api.example.test", nameserver=server.address, expect=expect))
        )
    assert evidence.startswith(
        "api.example.test resolves to 203.0.113.7, 203.0.113.8, 2001:db8::7 (TTL 60)"
    )


def test_it_passes_a_name_with_only_an_ipv6_address() -> None:
    with dns_stand_in({"v6.example.test": ["2001:db8::1"]}) as server:
        evidence = english(dns.run(context(host="v6.example.test", nameserver=server.address)))
    assert evidence.startswith("v6.example.test resolves to 2001:db8::1 ")


def test_it_fails_a_name_that_resolves_elsewhere() -> None:
    with dns_stand_in({"api.example.test": ["203.0.113.7", "203.0.113.9"]}) as server:
        error = failure(
            dns.KIND, host="api.example.test", nameserver=server.address, expect="198.51.100.1"
        )
    assert_fault(error, "A records are 203.0.113.7, 203.0.113.9; expected 198.51.100.1")


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
        (
            {"host": "a..example.test"},
            "host 'a..example.test' is not a DNS name: its labels are 1 to 63 octets, 255 in all",
        ),
        ({"host": "a" * 64 + ".example.test"}, "its labels are 1 to 63 octets"),
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


# expect, per record type


def test_it_accepts_aaaa_records_an_ipv4_only_expect_does_not_name() -> None:
    """An A query answers IPv4 addresses and an AAAA query IPv6 ones (RFC 1035 §3.4.1,
    https://www.rfc-editor.org/rfc/rfc1035#section-3.4.1; RFC 3596 §2,
    https://www.rfc-editor.org/rfc/rfc3596#section-2): an IPv4 expectation says nothing
    of AAAA."""
    records = {"api.example.test": ["203.0.113.7", "2001:db8::7"]}
    with dns_stand_in(records) as server:
        evidence = dns.run(
            context(host="api.example.test", nameserver=server.address, expect=["203.0.113.7"])
        )
    assert english(evidence).startswith("api.example.test resolves to 203.0.113.7, 2001:db8::7 ")


def test_it_accepts_a_records_an_ipv6_only_expect_does_not_name() -> None:
    """RFC 3596 §2 (https://www.rfc-editor.org/rfc/rfc3596#section-2): AAAA holds the IPv6
    addresses, A the IPv4 ones."""
    records = {"api.example.test": ["203.0.113.7", "2001:db8::7"]}
    with dns_stand_in(records) as server:
        evidence = dns.run(
            context(host="api.example.test", nameserver=server.address, expect="2001:db8::7")
        )
    assert english(evidence).startswith("api.example.test resolves to ")


def test_it_fails_the_record_type_that_differs_from_its_expected_addresses() -> None:
    """Each type named in `expect` must equal its records exactly
    (https://dnspython.readthedocs.io/en/latest/resolver-class.html)."""
    records = {"api.example.test": ["203.0.113.7", "2001:db8::7"]}
    expect = ["203.0.113.7", "2001:db8::8"]
    with dns_stand_in(records) as server:
        error = failure(dns.KIND, host="api.example.test", nameserver=server.address, expect=expect)
    assert error.evidence == "AAAA records are 2001:db8::7; expected 2001:db8::8"


def test_it_fails_an_ipv4_expect_when_the_name_has_only_aaaa_records() -> None:
    """A name with no A record answers an A query with no records (RFC 2308 §2.2,
    https://www.rfc-editor.org/rfc/rfc2308#section-2.2)."""
    with dns_stand_in({"v6.example.test": ["2001:db8::1"]}) as server:
        error = failure(
            dns.KIND, host="v6.example.test", nameserver=server.address, expect="203.0.113.7"
        )
    assert_fault(error, "A records are none; expected 203.0.113.7")
