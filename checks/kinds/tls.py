"""tls: the certificates a host serves are trusted, name the host, and have time left.

The handshake and its verification (chain and host name) are Python's `ssl` module
(https://docs.python.org/3/library/ssl.html#ssl.SSLCertVerificationError), trusting the
system's store plus the certificates of `ca_file` when one is given; the verify codes
are OpenSSL's (https://docs.openssl.org/3.0/man1/openssl-verify/). Python 3.11's `ssl`
shows only the leaf, so the chain the server presents is read on a second connection with
pyOpenSSL's `Connection.get_peer_cert_chain`
(https://www.pyopenssl.org/en/latest/api/ssl.html#OpenSSL.SSL.Connection.get_peer_cert_chain),
whose leaf must be the one verified. Every presented certificate counts: an intermediate
closer to expiry than `min_days` fails the check as the leaf would, and the evidence
names it. Certificates are read with `cryptography`
(https://cryptography.io/en/latest/x509/reference/).

Permanent failures (misconfigured): a presented certificate with fewer than `min_days`
left; a certificate that does not name the host, has expired (which one, and how long
ago, is read from the unverified chain), or is not trusted; a `ca_file` that cannot be
read; a handshake the server fails in a way that does not change on retry, such as a
server that does not speak TLS on the port (an answer that shows the port is
misconfigured, so it is a fault, not garbage to retry). Transient: a refused, reset or
silent connection, a host that does not resolve, a server that closes the connection
mid-handshake, and a second connection that presents another leaf than the first.
"""

from __future__ import annotations

import ipaddress
import socket
import ssl
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import ExtensionOID, NameOID
from django.conf import settings
from django.utils.translation import gettext_noop as _
from OpenSSL import SSL

from .base import (
    CheckError,
    Context,
    Kind,
    OptionError,
    Reason,
    Said,
    Value,
    fault,
    said,
    transient,
    unloadable_ca_file,
)
from .client import unreachable

DEFAULT_PORT = 443
DEFAULT_MIN_DAYS = 14
HOSTNAME_MISMATCH = frozenset({62, 64})  # X509_V_ERR_HOSTNAME_MISMATCH, _IP_ADDRESS_MISMATCH
EXPIRED = 10  # X509_V_ERR_CERT_HAS_EXPIRED
# Unknown or self-signed issuer, or a chain the server sent incomplete.
UNTRUSTED = frozenset({18, 19, 20, 21})
# A TLS record is at most 16 KiB plus its header and expansion.
RECORD_BYTES = 18 * 1024


def run(context: Context) -> Said:
    host = context.text("host")
    port = context.number("port", DEFAULT_PORT)
    min_days = context.number("min_days", DEFAULT_MIN_DAYS)
    try:
        leaf_der, version = _handshake(host, port, _trust(context.text("ca_file")))
    except ssl.SSLCertVerificationError as error:
        raise _rejected(host, port, error) from None
    chain = _presented(host, port)
    if chain[0].public_bytes(Encoding.DER) != leaf_der:
        raise transient(
            Reason.BAD_RESPONSE,
            said(
                _("%(host)s:%(port)s presented another certificate on a second connection"),
                host=host,
                port=port,
            ),
        )
    now = datetime.now(UTC)
    soonest = min(range(len(chain)), key=lambda index: chain[index].not_valid_after_utc)
    expires = chain[soonest].not_valid_after_utc
    days = _whole_days(expires - now)
    until = expires.date().isoformat()
    if days < min_days:
        raise fault(
            Reason.MISCONFIGURED,
            said(
                _(
                    "%(certificate)s expires in %(days)s (on %(until)s),"
                    " fewer than min_days (%(min_days)s)"
                ),
                certificate=_described(chain, soonest),
                days=_days(days),
                until=until,
                min_days=min_days,
            ),
        )
    common: dict[str, Value] = {
        "days": _days(days),
        "until": until,
        "version": version,
        "issuer": _issuer(chain[0]),
        "presented": _presented_count(len(chain)),
    }
    if soonest == 0:
        return said(
            _(
                "valid for another %(days)s (until %(until)s), %(version)s,"
                " issued by %(issuer)s, %(presented)s"
            ),
            **common,
        )
    return said(
        _(
            "valid for another %(days)s (until %(until)s, when %(certificate)s expires),"
            " %(version)s, issued by %(issuer)s, %(presented)s"
        ),
        certificate=_described(chain, soonest),
        **common,
    )


_trusts: dict[str, ssl.SSLContext] = {}
_trusts_lock = threading.Lock()


def _trust(ca_file: str) -> ssl.SSLContext:
    """The system's trust store, with the certificates of `ca_file` added to it.

    A worker keeps one per file: reading the store costs tens of milliseconds of CPU,
    and a run's checks start together."""
    with _trusts_lock:
        context = _trusts.get(ca_file)
        if context is None:
            context = ssl.create_default_context()
            if ca_file:
                try:
                    context.load_verify_locations(cafile=ca_file)
                except OSError:
                    raise unloadable_ca_file(ca_file) from None
            _trusts[ca_file] = context
        return context


@contextmanager
def _connection(host: str, port: int) -> Iterator[socket.socket]:
    """A TCP connection to the server; failing to make or keep it is a CheckError."""
    where = f"{host}:{port}"
    try:
        with socket.create_connection(
            (host, port), timeout=float(settings.CHECKS_CONNECT_TIMEOUT)
        ) as raw:
            raw.settimeout(float(settings.CHECKS_READ_TIMEOUT))
            yield raw
    except ssl.SSLCertVerificationError:
        # The caller says what is wrong with the certificate.
        raise
    except TimeoutError:
        raise transient(
            Reason.TIMED_OUT,
            said(_("no TLS handshake from %(where)s within the timeout"), where=where),
        ) from None
    except OSError as error:
        # A name that does not resolve, a refused connection, no route: the worker could
        # not reach the host, which says nothing of the host's certificate.
        raise unreachable(where, error) from None


def _handshake(host: str, port: int, context: ssl.SSLContext) -> tuple[bytes, str]:
    """The server's certificate (DER) and the TLS version, or a CheckError for a
    connection or handshake that failed other than by verification."""
    where = f"{host}:{port}"
    with _connection(host, port) as raw:
        try:
            with context.wrap_socket(raw, server_hostname=host) as tls:
                der = tls.getpeercert(binary_form=True)
                version = tls.version() or "TLS"
        except ssl.SSLCertVerificationError:
            raise
        except (ssl.SSLEOFError, ssl.SSLZeroReturnError):
            raise _hung_up(where) from None
        except ssl.SSLError as error:
            raise fault(
                Reason.MISCONFIGURED,
                said(
                    _(
                        "%(where)s does not complete a TLS handshake (%(reason)s):"
                        " is TLS served on this port?"
                    ),
                    where=where,
                    reason=error.reason or "SSL error",
                ),
            ) from None
    if der is None:
        raise _no_certificate(where)
    return der, version


def _presented(host: str, port: int) -> list[x509.Certificate]:
    """Every certificate the server presents, leaf first, read without judging them."""
    where = f"{host}:{port}"
    tls = SSL.Connection(SSL.Context(SSL.TLS_CLIENT_METHOD), None)
    if not _is_address(host):
        # As `ssl` does: server name indication for a name, never for an address.
        tls.set_tlsext_host_name(host.encode("idna"))
    tls.set_connect_state()
    with _connection(host, port) as raw:
        try:
            _shake_hands(tls, raw, where)
        except SSL.Error as error:
            raise transient(
                Reason.BAD_RESPONSE,
                said(
                    _("%(where)s: reading the certificate chain failed (%(error)s)"),
                    where=where,
                    error=type(error).__name__,
                ),
            ) from None
    chain = tls.get_peer_cert_chain(as_cryptography=True)
    if not chain:
        raise _no_certificate(where)
    return chain


def _shake_hands(tls: SSL.Connection, raw: socket.socket, where: str) -> None:
    """The handshake through memory buffers, so that the socket keeps its timeouts."""
    while True:
        try:
            tls.do_handshake()
            return
        except SSL.WantReadError:
            pass
        raw.sendall(_outgoing(tls))
        incoming = raw.recv(RECORD_BYTES)
        if not incoming:
            raise _hung_up(where)
        tls.bio_write(incoming)


def _outgoing(tls: SSL.Connection) -> bytes:
    pending = b""
    while True:
        try:
            pending += tls.bio_read(RECORD_BYTES)
        except SSL.WantReadError:
            return pending


def _hung_up(where: str) -> CheckError:
    return transient(
        Reason.VENDOR_DOWN, said(_("%(where)s closed the connection mid-handshake"), where=where)
    )


def _no_certificate(where: str) -> CheckError:
    return transient(
        Reason.BAD_RESPONSE, said(_("%(where)s presented no certificate"), where=where)
    )


def _is_address(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def _rejected(host: str, port: int, error: ssl.SSLCertVerificationError) -> CheckError:
    code = error.verify_code
    if code in HOSTNAME_MISMATCH:
        chain = _unverified(host, port)
        if not chain:
            return fault(
                Reason.MISCONFIGURED,
                said(_("certificate is not valid for host %(host)s"), host=host),
            )
        names = _names(chain[0])
        return fault(
            Reason.MISCONFIGURED,
            said(
                _("certificate is not valid for host %(host)s (it names %(names)s)"),
                host=host,
                names=", ".join(names) if names else said(_("no name")),
            ),
        )
    if code == EXPIRED:
        return _expired(_unverified(host, port), str(error.verify_message))
    if code in UNTRUSTED:
        return fault(
            Reason.MISCONFIGURED,
            said(_("certificate not trusted: %(reason)s"), reason=str(error.verify_message)),
        )
    return fault(
        Reason.MISCONFIGURED,
        said(_("certificate rejected: %(reason)s"), reason=str(error.verify_message)),
    )


def _expired(chain: list[x509.Certificate], reason: str) -> CheckError:
    """Which presented certificate has expired, the leaf first, and how long ago."""
    now = datetime.now(UTC)
    index = next((i for i, c in enumerate(chain) if c.not_valid_after_utc <= now), None)
    if index is None:
        # The expired one is not among those presented: a root of the trust store.
        return fault(
            Reason.MISCONFIGURED,
            said(_("a certificate of the chain has expired: %(reason)s"), reason=reason),
        )
    expired = chain[index].not_valid_after_utc
    days = _whole_days(now - expired)
    ago = said(_("%(days)s ago"), days=_days(days)) if days else said(_("less than a day ago"))
    return fault(
        Reason.MISCONFIGURED,
        said(
            _("%(certificate)s expired %(ago)s (on %(on)s)"),
            certificate=_described(chain, index),
            ago=ago,
            on=expired.date().isoformat(),
        ),
    )


def _unverified(host: str, port: int) -> list[x509.Certificate]:
    """The presented chain read again without verifying it, to say what is wrong with
    it; empty when that second connection fails too."""
    try:
        return _presented(host, port)
    except CheckError:
        return []


def _described(chain: list[x509.Certificate], index: int) -> Said:
    """Which certificate of the chain this is, by its place and its name."""
    certificate = chain[index]
    name = _name(certificate)
    if index == 0:
        return said(_("the leaf certificate %(name)s"), name=name)
    if certificate.subject == certificate.issuer:
        return said(_("the root certificate %(name)s"), name=name)
    return said(_("the intermediate certificate %(name)s"), name=name)


def _name(certificate: x509.Certificate) -> str:
    """Its subject's common name, else the first name it is valid for, else its subject."""
    common = _attribute(certificate.subject, NameOID.COMMON_NAME)
    names = _names(certificate)
    return common or (names[0] if names else certificate.subject.rfc4514_string())


def _names(certificate: x509.Certificate) -> list[str]:
    """The host names and addresses it is valid for."""
    try:
        names = certificate.extensions.get_extension_for_oid(
            ExtensionOID.SUBJECT_ALTERNATIVE_NAME
        ).value
    except x509.ExtensionNotFound:
        common = _attribute(certificate.subject, NameOID.COMMON_NAME)
        return [common] if common else []
    assert isinstance(names, x509.SubjectAlternativeName)
    dns = names.get_values_for_type(x509.DNSName)
    ips = [str(ip) for ip in names.get_values_for_type(x509.IPAddress)]
    return [*dns, *ips]


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


def _days(count: int) -> Said:
    if count == 1:
        return said(_("1 day"))
    return said(_("%(count)s days"), count=count)


def _presented_count(count: int) -> Said:
    if count == 1:
        return said(_("1 certificate presented"))
    return said(_("%(count)s certificates presented"), count=count)


def check_options(options: Mapping[str, Any]) -> None:
    host = str(options.get("host", "")).strip()
    if not host or "/" in host:
        raise OptionError(said(_("host must be a name or an address, not a URL")))
    port = int(str(options.get("port", DEFAULT_PORT)))
    if not 1 <= port <= 65535:
        raise OptionError(said(_("port must be between 1 and 65535, not %(port)s"), port=port))
    if int(str(options.get("min_days", DEFAULT_MIN_DAYS))) < 0:
        raise OptionError(said(_("min_days must not be negative")))


KIND = Kind(
    name="tls",
    required=frozenset({"host"}),
    optional=frozenset({"port", "min_days", "ca_file"}),
    run=run,
    docs_url="https://docs.python.org/3/library/ssl.html#ssl.SSLCertVerificationError",
    check_options=check_options,
)
