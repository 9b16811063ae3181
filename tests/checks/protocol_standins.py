"""Stand-ins for the protocol checks, all on 127.0.0.1: a DNS server over UDP, a bare TLS
server, the certificates they present, webhook receivers that validate each vendor's
signature, and CORS policies.

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

import base64
import hashlib
import hmac
import ipaddress
import json
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from enum import Enum
from pathlib import Path
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import dns.message
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.rrset
import standardwebhooks
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


# --- webhook receivers --------------------------------------------------------------------
# Each validates a delivery as the vendor's own code does, then reads the body as the
# vendor shapes it: 400 for a body it cannot read, 401/403 for a signature it refuses.


def twilio_signature(url: str, params: Mapping[str, str], token: str) -> str:
    """Twilio's signature: base64 HMAC-SHA1 of the URL followed by each parameter's name
    and value, sorted by name (twilio-python, twilio/request_validator.py)."""
    signed = url + "".join(name + value for name, value in sorted(params.items()))
    return base64.b64encode(
        hmac.new(token.encode(), signed.encode(), hashlib.sha1).digest()
    ).decode()


def twilio_accepts(url: str, params: Mapping[str, str], signature: str, token: str) -> bool:
    """twilio-python's RequestValidator.validate: the URL with and without its port, since
    Twilio itself signs either way."""
    parts = urlsplit(url)
    default = {"https": 443, "http": 80}[parts.scheme]
    host = parts.hostname or ""
    without_port = urlunsplit(parts._replace(netloc=host))
    with_port = urlunsplit(parts._replace(netloc=f"{host}:{parts.port or default}"))
    return any(
        hmac.compare_digest(twilio_signature(candidate, params, token), signature)
        for candidate in (without_port, with_port)
    )


def requested_url(seen: Seen, scheme: str = "https") -> str:
    """The URL a framework rebuilds from the request line and the Host header."""
    query = f"?{urlencode(seen.query, doseq=True)}" if seen.query else ""
    return f"{scheme}://{seen.header('host')}{seen.path}{query}"


def elevenlabs_accepts(body: bytes, header: str, secret: str) -> bool:
    """elevenlabs-python's construct_event: `t=<time>,v0=<hex HMAC-SHA256 of
    "<time>.<body>">`, no older than 30 minutes."""
    fields = dict(part.split("=", 1) for part in header.split(",") if "=" in part)
    timestamp, signature = fields.get("t", ""), fields.get("v0", "")
    if not timestamp.isdigit() or int(timestamp) < time.time() - 30 * 60:
        return False
    signed = f"{timestamp}.".encode() + body
    expected = hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, signature)


def _twilio_receiver(seen: Seen, secret: str) -> Reply:
    params = dict(parse_qsl(seen.body.decode(), keep_blank_values=True))
    if not twilio_accepts(requested_url(seen), params, seen.header("x-twilio-signature"), secret):
        return Reply(status=403)
    if not params.get("CallSid", "").startswith("CA") or "AccountSid" not in params:
        return Reply(status=400)
    return Reply(body="<Response/>", headers={"Content-Type": "text/xml"})


def _elevenlabs_receiver(seen: Seen, secret: str) -> Reply:
    if not elevenlabs_accepts(seen.body, seen.header("elevenlabs-signature"), secret):
        return Reply(status=401)
    event = json.loads(seen.body)
    if event.get("type") != "post_call_transcription" or "conversation_id" not in event["data"]:
        return Reply(status=400)
    return Reply()


def _standard_receiver(seen: Seen, secret: str) -> Reply:
    try:
        event = standardwebhooks.Webhook(secret).verify(seen.body, dict(seen.headers))
    except standardwebhooks.WebhookVerificationError:
        return Reply(status=401)
    return Reply(status=204 if "type" in event else 400)


def _hmac_receiver(
    seen: Seen, secret: str, header: str = "x-hub-signature-256", prefix: str = "sha256="
) -> Reply:
    expected = prefix + hmac.new(secret.encode(), seen.body, hashlib.sha256).hexdigest()
    if not hmac.compare_digest(expected, seen.header(header)):
        return Reply(status=401)
    return Reply(status=204 if seen.header("x-github-event") == "ping" else 400)


RECEIVERS: dict[str, Callable[[Seen, str], Reply]] = {
    "twilio": _twilio_receiver,
    "elevenlabs": _elevenlabs_receiver,
    "standard": _standard_receiver,
    "hmac": _hmac_receiver,
}


def webhook_receiver(scheme: str, secret: str) -> Answer:
    """An endpoint that validates `scheme` with `secret`, as the vendor's docs ask."""
    return lambda seen: RECEIVERS[scheme](seen, secret)


def hmac_receiver(secret: str, *, header: str, prefix: str) -> Answer:
    return lambda seen: _hmac_receiver(seen, secret, header.lower(), prefix)


def receiver_of_another_shape(scheme: str, secret: str) -> Answer:
    """An endpoint whose validation expects another shape than the vendor sends: Twilio's
    JSON variant (the signature over the bare URL), or a JSON body parsed and serialised
    again before its signature is checked, which the Standard Webhooks spec warns of."""

    def answer(seen: Seen) -> Reply:
        if scheme == "twilio":
            signature = seen.header("x-twilio-signature")
            accepted = twilio_accepts(requested_url(seen), {}, signature, secret)
            return Reply() if accepted else Reply(status=403)
        reserialised = json.dumps(json.loads(seen.body)).encode()
        return RECEIVERS[scheme](replace(seen, body=reserialised), secret)

    return answer


def refuses_everything(_seen: Seen) -> Reply:
    return Reply(status=403)


def accepts_everything(_seen: Seen) -> Reply:
    return Reply()


# --- CORS policies ---------------------------------------------------------------------------


def cors_policy(
    allows: Callable[[str], bool] | str | None,
    *,
    credentials: bool = False,
    methods: str | None = "GET, POST",
    headers: str | None = "Content-Type, Authorization",
    preflight_status: int = 204,
) -> Answer:
    """A server whose Access-Control-Allow-Origin is `*` (allows="*"), the request's
    Origin when `allows(origin)` holds, or absent (None); its preflight answers
    `preflight_status` with Access-Control-Allow-Methods `methods` and
    Access-Control-Allow-Headers `headers` whatever the origin."""

    def answer(seen: Seen) -> Reply:
        origin = seen.header("origin")
        reply: dict[str, str] = {}
        if allows == "*":
            reply["Access-Control-Allow-Origin"] = "*"
        elif callable(allows) and allows(origin):
            reply["Access-Control-Allow-Origin"] = origin
        if credentials:
            reply["Access-Control-Allow-Credentials"] = "true"
        if seen.method != "OPTIONS":
            return Reply(headers=reply)
        if methods is not None:
            reply["Access-Control-Allow-Methods"] = methods
        if headers is not None:
            reply["Access-Control-Allow-Headers"] = headers
        return Reply(status=preflight_status, headers=reply)

    return answer


def only(allowed: str) -> Callable[[str], bool]:
    return lambda origin: origin == allowed


def starting_with(allowed: str) -> Callable[[str], bool]:
    """A policy written as an unanchored pattern `^https://app\\.example`."""
    return lambda origin: origin.startswith(allowed)


def ending_with(host: str) -> Callable[[str], bool]:
    """A policy matching the end of the origin: any scheme, any name ending in `host`."""
    return lambda origin: origin.endswith(host)


def on_host(host: str) -> Callable[[str], bool]:
    """A policy comparing host names only, whatever the scheme and port."""
    return lambda origin: urlsplit(origin).hostname == host


def with_null(allowed: str) -> Callable[[str], bool]:
    """A policy that also lets in the `null` origin, as a list holding "null" does."""
    return lambda origin: origin in (allowed, "null")
