"""Stand-ins for the protocol checks, all on 127.0.0.1: a DNS server over UDP, a bare TLS
server, and the certificates they present.

    with dns_stand_in({"api.example.test": ["203.0.113.7"]}) as server:
        ... server.address ...          # "127.0.0.1:PORT", the check's nameserver

    with tls_stand_in(certificates.valid) as port: ...

`Certificates` holds one trusted CA (its PEM is the checks' ca_file) and leaves issued by
it, plus one from a CA nothing trusts. `intermediate()` makes a CA under it whose own
certificate's dates and name the test chooses, for chains of three.

`shared_stand_in` keeps one `standin.stand_in` server for a whole module, each test
giving it the answer it needs: stopping a stand-in costs half a second.
"""

from __future__ import annotations

import ipaddress
import socket
import ssl
import threading
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import Enum
from pathlib import Path

import dns.message
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.rrset
import trustme
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
    load_pem_private_key,
)
from cryptography.x509.oid import NameOID

from tests.checks.standin import Answer, Reply, Seen, StandIn, stand_in

LOOPBACK = "127.0.0.1"
# How often the server threads look up from a blocking call to see whether to stop.
POLL_SECONDS = 0.05


class Mode(Enum):
    ANSWER = "answer"
    SERVFAIL = "servfail"
    SILENT = "silent"  # reads every query and never answers


@dataclass
class DnsStandIn:
    port: int
    # (name, type) of every query received, e.g. ("api.example.test", "A").
    queries: list[tuple[str, str]] = field(default_factory=list)

    @property
    def address(self) -> str:
        return f"{LOOPBACK}:{self.port}"


@contextmanager
def dns_stand_in(
    records: Mapping[str, Sequence[str]],
    *,
    ttl: int = 300,
    mode: Mode = Mode.ANSWER,
) -> Iterator[DnsStandIn]:
    """Answers A and AAAA queries from `records` ({name: [addresses]}), NXDOMAIN for a
    name it does not hold, an empty answer for a family the name has no address of."""
    zone = {name.lower().rstrip("."): list(addresses) for name, addresses in records.items()}
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind((LOOPBACK, 0))
    sock.settimeout(POLL_SECONDS)
    server = DnsStandIn(port=sock.getsockname()[1])
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                wire, client = sock.recvfrom(4096)
            except TimeoutError:
                continue
            query = dns.message.from_wire(wire)
            question = query.question[0]
            name = question.name.to_text(omit_final_dot=True).lower()
            server.queries.append((name, dns.rdatatype.to_text(question.rdtype)))
            if mode is Mode.SILENT:
                continue
            sock.sendto(_response(query, zone, ttl, mode).to_wire(), client)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        stop.set()
        thread.join()
        sock.close()


def _response(
    query: dns.message.Message, zone: Mapping[str, list[str]], ttl: int, mode: Mode
) -> dns.message.Message:
    response = dns.message.make_response(query)
    question = query.question[0]
    name = question.name.to_text(omit_final_dot=True).lower()
    if mode is Mode.SERVFAIL:
        response.set_rcode(dns.rcode.SERVFAIL)
    elif name not in zone:
        response.set_rcode(dns.rcode.NXDOMAIN)
    else:
        version = {dns.rdatatype.A: 4, dns.rdatatype.AAAA: 6}.get(question.rdtype)
        addresses = [a for a in zone[name] if ipaddress.ip_address(a).version == version]
        if addresses:
            response.answer.append(
                dns.rrset.from_text_list(
                    question.name, ttl, dns.rdataclass.IN, question.rdtype, addresses
                )
            )
    return response


@dataclass(frozen=True)
class Certificates:
    authority: trustme.CA
    ca_file: str
    valid: trustme.LeafCert
    near_expiry: trustme.LeafCert  # 5 days and a half left
    expired: trustme.LeafCert  # expired 12 days and a half ago
    wrong_host: trustme.LeafCert  # for wrong.example.test only
    untrusted: trustme.LeafCert  # from a CA no check trusts


def certificates(directory: Path) -> Certificates:
    authority, stranger = trustme.CA(), trustme.CA()
    now = datetime.now(UTC)
    names = ("localhost", LOOPBACK)
    ca_file = directory / "ca.pem"
    authority.cert_pem.write_to_path(str(ca_file))
    return Certificates(
        authority=authority,
        ca_file=str(ca_file),
        valid=authority.issue_cert(*names),
        near_expiry=authority.issue_cert(*names, not_after=now + timedelta(days=5, hours=12)),
        expired=authority.issue_cert(
            *names,
            not_before=now - timedelta(days=90),
            not_after=now - timedelta(days=12, hours=12),
        ),
        wrong_host=authority.issue_cert("wrong.example.test"),
        untrusted=stranger.issue_cert(*names),
    )


def intermediate(
    root: trustme.CA,
    *,
    common_name: str,
    not_after: datetime,
    not_before: datetime | None = None,
) -> trustme.CA:
    """A CA whose certificate `root` signs, valid from `not_before` to `not_after`: the
    leaves it issues present it as their chain's intermediate (trustme's own child CAs
    take no dates)."""
    key = ec.generate_private_key(ec.SECP256R1())
    root_certificate = x509.load_pem_x509_certificate(root.cert_pem.bytes())
    root_key = load_pem_private_key(root.private_key_pem.bytes(), password=None)
    assert isinstance(root_key, ec.EllipticCurvePrivateKey)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(
            x509.Name(
                [
                    x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Stand-in"),
                    x509.NameAttribute(NameOID.COMMON_NAME, common_name),
                ]
            )
        )
        .issuer_name(root_certificate.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before or datetime.now(UTC) - timedelta(days=30))
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(root_key.public_key()),
            critical=False,
        )
        .sign(root_key, hashes.SHA256())
    )
    child = trustme.CA.from_pem(
        certificate.public_bytes(Encoding.PEM),
        key.private_bytes(Encoding.PEM, PrivateFormat.TraditionalOpenSSL, NoEncryption()),
    )
    # What makes the leaves it issues carry its certificate as their chain.
    child.parent_cert = root
    return child


def server_context(leaf: trustme.LeafCert) -> ssl.SSLContext:
    """A server side presenting `leaf`, for `standin.stand_in(..., tls=...)` too."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    leaf.configure_cert(context)
    return context


@contextmanager
def tls_stand_in(*leaves: trustme.LeafCert) -> Iterator[int]:
    """A port on 127.0.0.1 that completes a TLS handshake presenting a leaf (with its
    chain), then hangs up; given several, each connection presents the next in turn."""
    contexts = [server_context(leaf) for leaf in leaves]
    with _listening() as listener:
        listener.settimeout(POLL_SECONDS)
        stop = threading.Event()

        def serve() -> None:
            served = 0
            while not stop.is_set():
                try:
                    connection, _ = listener.accept()
                except TimeoutError:
                    continue
                connection.settimeout(1.0)
                context = contexts[served % len(contexts)]
                served += 1
                try:
                    context.wrap_socket(connection, server_side=True).close()
                except OSError:
                    # The client refused the certificate, as most tests here want.
                    connection.close()

        thread = threading.Thread(target=serve, daemon=True)
        thread.start()
        try:
            yield listener.getsockname()[1]
        finally:
            stop.set()
            thread.join()


class Shared:
    """One HTTP(S) stand-in whose answer each test sets."""

    def __init__(self) -> None:
        self._answer: Answer = lambda _: Reply()
        self._server: StandIn | None = None

    def answer(self, seen: Seen) -> Reply:
        return self._answer(seen)

    def serve(self, answer: Answer) -> StandIn:
        """The server, answering with `answer` from now on and with its log emptied."""
        assert self._server is not None, "use it inside shared_stand_in()"
        self._answer = answer
        self._server.requests.clear()
        return self._server


@contextmanager
def shared_stand_in(*, tls: ssl.SSLContext | None = None) -> Iterator[Shared]:
    shared = Shared()
    with stand_in(shared.answer, tls=tls) as server:
        shared._server = server
        yield shared


@contextmanager
def silent_port() -> Iterator[int]:
    """A port whose connections the kernel accepts and nothing ever answers."""
    with _listening() as listener:
        yield listener.getsockname()[1]


def closed_port() -> int:
    """A port nothing listens on, so a connection to it is refused."""
    with _listening() as listener:
        return int(listener.getsockname()[1])


@contextmanager
def _listening() -> Iterator[socket.socket]:
    listener = socket.create_server((LOOPBACK, 0))
    try:
        yield listener
    finally:
        listener.close()
