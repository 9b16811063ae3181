"""The tls kind against TLS stand-ins on 127.0.0.1 presenting trustme certificates: a
leaf alone, or a leaf with an intermediate under the trusted root."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import trustme

from checks.kinds import tls
from checks.kinds.base import CheckError, Context, Kind, Reason, as_said
from tests.checks.protocol_standins import (
    Certificates,
    Shared,
    certificates,
    closed_port,
    intermediate,
    shared_stand_in,
    silent_port,
    tls_stand_in,
)
from tests.checks.standin import Reply

NAMES = ("localhost", "127.0.0.1")


def context(**options: Any) -> Context:
    return Context(options=options, release_version="v1.0.0", env={})


def passed(**options: Any) -> str:
    return as_said(tls.run(context(**options))).english()


def failure(kind: Kind, **options: Any) -> CheckError:
    with pytest.raises(CheckError) as caught:
        kind.run(context(**options))
    return caught.value


def assert_fault(error: CheckError, evidence: str) -> None:
    assert (error.permanent, error.reason) == (True, Reason.MISCONFIGURED)
    assert evidence in error.evidence


def day(offset: timedelta) -> str:
    return (datetime.now(UTC) + offset).date().isoformat()


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Certificates:
    return certificates(tmp_path_factory.mktemp("certificates"))


@pytest.fixture(scope="module")
def plain_server() -> Iterator[Shared]:
    with shared_stand_in() as shared:
        yield shared


@pytest.fixture
def impatient(settings: Any) -> None:
    settings.CHECKS_CONNECT_TIMEOUT = 0.3
    settings.CHECKS_READ_TIMEOUT = 0.3


def test_it_names_why_a_ca_file_cannot_be_loaded(tmp_path: Path) -> None:
    not_pem = tmp_path / "notes.txt"
    not_pem.write_text("not a certificate\n")
    error = failure(tls.KIND, host="127.0.0.1", port=443, ca_file=str(not_pem))
    assert_fault(error, f"ca_file {not_pem} holds no PEM certificate")


def test_it_passes_a_valid_certificate_with_days_version_and_issuer(certs: Certificates) -> None:
    with tls_stand_in(certs.valid) as port:
        evidence = passed(host="127.0.0.1", port=port, ca_file=certs.ca_file)
    assert re.fullmatch(
        r"valid for another \d+ days \(until \d{4}-\d\d-\d\d\), TLSv1\.[23], issued by trustme.*,"
        r" 1 certificate presented",
        evidence,
    )


def test_it_fails_a_certificate_with_fewer_days_left_than_min_days(certs: Certificates) -> None:
    until = day(timedelta(days=5, hours=12))
    with tls_stand_in(certs.near_expiry) as port:
        error = failure(tls.KIND, host="localhost", port=port, ca_file=certs.ca_file)
        evidence = passed(host="localhost", port=port, ca_file=certs.ca_file, min_days=3)
    assert_fault(
        error,
        f"the leaf certificate localhost expires in 5 days (on {until}), fewer than min_days (14)",
    )
    assert evidence.startswith(f"valid for another 5 days (until {until})")


def test_it_fails_an_expired_certificate_saying_how_long_ago(certs: Certificates) -> None:
    on = day(-timedelta(days=12, hours=12))
    with tls_stand_in(certs.expired) as port:
        error = failure(tls.KIND, host="127.0.0.1", port=port, ca_file=certs.ca_file)
    assert_fault(error, f"the leaf certificate localhost expired 12 days ago (on {on})")


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost"])
def test_it_fails_a_certificate_for_another_host(certs: Certificates, host: str) -> None:
    with tls_stand_in(certs.wrong_host) as port:
        error = failure(tls.KIND, host=host, port=port, ca_file=certs.ca_file)
    assert_fault(error, f"certificate is not valid for host {host} (it names wrong.example.test)")


def test_it_fails_a_certificate_nobody_trusts(certs: Certificates) -> None:
    with tls_stand_in(certs.untrusted) as port:
        error = failure(tls.KIND, host="127.0.0.1", port=port, ca_file=certs.ca_file)
    assert_fault(error, "certificate not trusted: unable to get local issuer certificate")


def test_it_fails_a_port_that_does_not_speak_tls(plain_server: Shared) -> None:
    server = plain_server.serve(lambda _: Reply())
    error = failure(tls.KIND, host="127.0.0.1", port=server.port)
    assert_fault(error, "does not complete a TLS handshake (WRONG_VERSION_NUMBER)")


def test_it_retries_a_refused_tls_connection_as_unreachable_not_as_the_vendor_down() -> None:
    """Could not evaluate is never the vendor failing: a refused connection says nothing
    of the certificate."""
    port = closed_port()
    error = failure(tls.KIND, host="127.0.0.1", port=port)
    assert (error.permanent, error.reason) == (False, Reason.UNREACHABLE)
    assert error.evidence == f"the worker cannot reach 127.0.0.1:{port} (connection refused)"


def test_it_names_a_host_that_does_not_resolve_as_unreachable() -> None:
    error = failure(tls.KIND, host="no-such-host.invalid", port=443)
    assert (error.permanent, error.reason) == (False, Reason.UNREACHABLE)
    assert error.evidence == (
        "the worker cannot reach no-such-host.invalid:443 (name does not resolve)"
    )


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


# The chain the server presents


def test_it_fails_an_intermediate_closer_to_expiry_than_min_days_naming_it(
    certs: Certificates,
) -> None:
    """Every certificate of the path has its own validity period (RFC 5280 §6.1.3,
    https://www.rfc-editor.org/rfc/rfc5280#section-6.1.3); pyOpenSSL reads the chain the
    server presents: https://www.pyopenssl.org/en/latest/api/ssl.html#OpenSSL.SSL.Connection.get_peer_cert_chain"""
    issuing = intermediate(
        certs.authority, common_name="Stand-in Issuing CA", not_after=_in(days=5, hours=12)
    )
    with tls_stand_in(issuing.issue_cert(*NAMES)) as port:
        error = failure(tls.KIND, host="localhost", port=port, ca_file=certs.ca_file)
    assert_fault(
        error,
        "the intermediate certificate Stand-in Issuing CA expires in 5 days"
        f" (on {day(timedelta(days=5, hours=12))}), fewer than min_days (14)",
    )


def test_it_passes_a_chain_saying_which_certificate_expires_first(certs: Certificates) -> None:
    """The chain stops validating when its first certificate expires (RFC 5280 §6.1.3,
    https://www.rfc-editor.org/rfc/rfc5280#section-6.1.3)."""
    issuing = intermediate(
        certs.authority, common_name="Stand-in Issuing CA", not_after=_in(days=40, hours=12)
    )
    with tls_stand_in(issuing.issue_cert(*NAMES)) as port:
        evidence = passed(host="localhost", port=port, ca_file=certs.ca_file)
    assert evidence.startswith(
        f"valid for another 40 days (until {day(timedelta(days=40, hours=12))},"
        " when the intermediate certificate Stand-in Issuing CA expires), TLSv1."
    )
    assert evidence.endswith(", 2 certificates presented")


def test_it_names_an_expired_intermediate_and_how_long_ago(certs: Certificates) -> None:
    """OpenSSL refuses a path with an expired certificate at any depth
    (X509_V_ERR_CERT_HAS_EXPIRED, https://docs.openssl.org/3.0/man1/openssl-verify/)."""
    issuing = intermediate(
        certs.authority,
        common_name="Stand-in Old CA",
        not_before=_in(days=-400),
        not_after=_in(days=-3, hours=-12),
    )
    leaf = issuing.issue_cert(*NAMES, not_before=_in(days=-30), not_after=_in(days=300))
    with tls_stand_in(leaf) as port:
        error = failure(tls.KIND, host="localhost", port=port, ca_file=certs.ca_file)
    assert_fault(
        error,
        "the intermediate certificate Stand-in Old CA expired 3 days ago"
        f" (on {day(-timedelta(days=3, hours=12))})",
    )


def test_it_retries_when_a_second_connection_presents_another_leaf(certs: Certificates) -> None:
    """The chain is read on a second connection (Python 3.11's ssl shows only the leaf,
    https://docs.python.org/3.11/library/ssl.html#ssl.SSLSocket.getpeercert); it is only
    judged when it holds the leaf the first one verified."""
    with tls_stand_in(certs.valid, certs.near_expiry) as port:
        error = failure(tls.KIND, host="localhost", port=port, ca_file=certs.ca_file)
    assert (error.permanent, error.reason) == (False, Reason.BAD_RESPONSE)
    assert error.evidence == (
        f"localhost:{port} presented another certificate on a second connection"
    )


# ca_file


def test_it_adds_ca_file_to_the_system_trust_store(
    certs: Certificates, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """load_verify_locations adds to a context's trust store, which
    create_default_context fills from the system's:
    https://docs.python.org/3/library/ssl.html#ssl.SSLContext.load_verify_locations"""
    system = trustme.CA()
    system.cert_pem.write_to_path(str(tmp_path / "system.pem"))
    monkeypatch.setenv("SSL_CERT_FILE", str(tmp_path / "system.pem"))
    monkeypatch.setenv("SSL_CERT_DIR", str(tmp_path))
    # A CA file no check has read yet: workers keep the trust store each file made.
    ca_file = tmp_path / "private.pem"
    ca_file.write_bytes(Path(certs.ca_file).read_bytes())
    with tls_stand_in(system.issue_cert(*NAMES)) as publicly_trusted:
        evidence = passed(host="localhost", port=publicly_trusted, ca_file=str(ca_file))
    with tls_stand_in(certs.valid) as privately_trusted:
        assert passed(host="localhost", port=privately_trusted, ca_file=str(ca_file))
    assert evidence.startswith("valid for another ")


def test_it_fails_a_ca_file_it_cannot_read(certs: Certificates, tmp_path: Path) -> None:
    """A CA file must hold PEM certificates:
    https://docs.python.org/3/library/ssl.html#ssl.SSLContext.load_verify_locations"""
    with tls_stand_in(certs.valid) as port:
        error = failure(tls.KIND, host="localhost", port=port, ca_file=str(tmp_path / "none.pem"))
    assert_fault(error, f"ca_file {tmp_path / 'none.pem'} does not exist")


def _in(*, days: int, hours: int = 0) -> datetime:
    return datetime.now(UTC) + timedelta(days=days, hours=hours)
