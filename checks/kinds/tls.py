"""tls: the certificate a host serves is trusted, names the host, and has time left.

The handshake and its verification are Python's `ssl` module
(https://docs.python.org/3/library/ssl.html#ssl.SSLCertVerificationError); the verify
codes are OpenSSL's (https://docs.openssl.org/3.0/man1/openssl-verify/); certificates are
read with `cryptography` (https://cryptography.io/en/latest/x509/reference/).

Permanent failures (misconfigured): fewer than `min_days` left; a certificate that does
not name the host, has expired (how long ago is read from a second, unverified
connection), or is not trusted; a handshake the server fails in a way that does not
change on retry, such as a server that does not speak TLS on the port (an answer that
shows the port is misconfigured, so it is a fault, not garbage to retry). Transient: a
refused, reset or silent connection, a host that does not resolve, and a server that
closes the connection mid-handshake.
"""

from __future__ import annotations

import socket
import ssl
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from cryptography import x509
from cryptography.x509.oid import ExtensionOID, NameOID
from django.conf import settings

from .base import CheckError, Context, Kind, Reason, fault, transient
from .client import ssl_context

DEFAULT_PORT = 443
DEFAULT_MIN_DAYS = 14
HOSTNAME_MISMATCH = frozenset({62, 64})  # X509_V_ERR_HOSTNAME_MISMATCH, _IP_ADDRESS_MISMATCH
EXPIRED = 10  # X509_V_ERR_CERT_HAS_EXPIRED
# Unknown or self-signed issuer, or a chain the server sent incomplete.
UNTRUSTED = frozenset({18, 19, 20, 21})


def run(context: Context) -> str:
    host = context.text("host")
    port = context.number("port", DEFAULT_PORT)
    min_days = context.number("min_days", DEFAULT_MIN_DAYS)
    try:
        der, version = _handshake(host, port, ssl_context(context.text("ca_file")))
    except ssl.SSLCertVerificationError as error:
        raise _rejected(host, port, error) from None
    certificate = x509.load_der_x509_certificate(der)
    expires = certificate.not_valid_after_utc
    days = _whole_days(expires - datetime.now(UTC))
    until = expires.date().isoformat()
    if days < min_days:
        raise fault(
            Reason.MISCONFIGURED,
            f"certificate expires in {_days(days)} (on {until}), fewer than min_days ({min_days})",
        )
    issuer = _issuer(certificate)
    return f"valid for {days} more days (until {until}), {version}, issued by {issuer}"


def _handshake(host: str, port: int, context: ssl.SSLContext) -> tuple[bytes, str]:
    """The server's certificate (DER) and the TLS version, or a CheckError for a
    connection or handshake that failed other than by verification."""
    where = f"{host}:{port}"
    try:
        with socket.create_connection(
            (host, port), timeout=float(settings.CHECKS_CONNECT_TIMEOUT)
        ) as raw:
            raw.settimeout(float(settings.CHECKS_READ_TIMEOUT))
            with context.wrap_socket(raw, server_hostname=host) as tls:
                der = tls.getpeercert(binary_form=True)
                version = tls.version() or "TLS"
    except ssl.SSLCertVerificationError:
        raise
    except (ssl.SSLEOFError, ssl.SSLZeroReturnError):
        raise transient(
            Reason.VENDOR_DOWN, f"{where} closed the connection mid-handshake"
        ) from None
    except ssl.SSLError as error:
        raise fault(
            Reason.MISCONFIGURED,
            f"{where} does not complete a TLS handshake ({error.reason or 'SSL error'}):"
            " is TLS served on this port?",
        ) from None
    except TimeoutError:
        raise transient(
            Reason.TIMED_OUT, f"no TLS handshake from {where} within the timeout"
        ) from None
    except ConnectionRefusedError:
        raise transient(Reason.VENDOR_DOWN, f"{where} refused the connection") from None
    except socket.gaierror:
        raise transient(Reason.VENDOR_DOWN, f"{host} does not resolve") from None
    except OSError as error:
        raise transient(
            Reason.VENDOR_DOWN, f"connection to {where} failed: {error.strerror}"
        ) from None
    if der is None:
        raise transient(Reason.BAD_RESPONSE, f"{where} presented no certificate")
    return der, version


def _rejected(host: str, port: int, error: ssl.SSLCertVerificationError) -> CheckError:
    code = error.verify_code
    if code in HOSTNAME_MISMATCH:
        certificate = _unverified(host, port)
        names = f" (it names {', '.join(_names(certificate))})" if certificate else ""
        return fault(Reason.MISCONFIGURED, f"certificate is not valid for host {host}{names}")
    if code == EXPIRED:
        certificate = _unverified(host, port)
        if certificate is None:
            return fault(Reason.MISCONFIGURED, "certificate has expired")
        expired = certificate.not_valid_after_utc
        ago = _whole_days(datetime.now(UTC) - expired)
        when = f"{_days(ago)} ago" if ago else "less than a day ago"
        return fault(
            Reason.MISCONFIGURED, f"certificate expired {when} (on {expired.date().isoformat()})"
        )
    if code in UNTRUSTED:
        return fault(Reason.MISCONFIGURED, f"certificate not trusted: {error.verify_message}")
    return fault(Reason.MISCONFIGURED, f"certificate rejected: {error.verify_message}")


def _unverified(host: str, port: int) -> x509.Certificate | None:
    """The certificate read again without verifying it, to say what is wrong with it;
    None when that second connection fails too."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    try:
        der, _version = _handshake(host, port, context)
    except CheckError:
        return None
    return x509.load_der_x509_certificate(der)


def _names(certificate: x509.Certificate) -> list[str]:
    try:
        names = certificate.extensions.get_extension_for_oid(
            ExtensionOID.SUBJECT_ALTERNATIVE_NAME
        ).value
    except x509.ExtensionNotFound:
        return [_attribute(certificate.subject, NameOID.COMMON_NAME) or "no name"]
    assert isinstance(names, x509.SubjectAlternativeName)
    dns = names.get_values_for_type(x509.DNSName)
    ips = [str(ip) for ip in names.get_values_for_type(x509.IPAddress)]
    return [*dns, *ips] or ["no name"]


def _issuer(certificate: x509.Certificate) -> str:
    organization = _attribute(certificate.issuer, NameOID.ORGANIZATION_NAME)
    common = _attribute(certificate.issuer, NameOID.COMMON_NAME)
    if organization and common and organization != common:
        return f"{organization} ({common})"
    return organization or common or certificate.issuer.rfc4514_string()


def _attribute(name: x509.Name, oid: x509.ObjectIdentifier) -> str:
    values = name.get_attributes_for_oid(oid)
    return str(values[0].value) if values else ""


def _whole_days(span: timedelta) -> int:
    return span // timedelta(days=1)


def _days(count: int) -> str:
    return "1 day" if count == 1 else f"{count} days"


def check_options(options: Mapping[str, Any]) -> None:
    host = str(options.get("host", "")).strip()
    if not host or "/" in host:
        raise ValueError("host must be a name or an address, not a URL")
    port = int(str(options.get("port", DEFAULT_PORT)))
    if not 1 <= port <= 65535:
        raise ValueError(f"port must be between 1 and 65535, not {port}")
    if int(str(options.get("min_days", DEFAULT_MIN_DAYS))) < 0:
        raise ValueError("min_days must not be negative")


KIND = Kind(
    name="tls",
    required=frozenset({"host"}),
    optional=frozenset({"port", "min_days", "ca_file"}),
    run=run,
    docs_url="https://docs.python.org/3/library/ssl.html#ssl.SSLCertVerificationError",
    check_options=check_options,
)
