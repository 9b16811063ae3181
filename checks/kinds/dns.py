"""dns: a host name resolves (A and AAAA), and to the expected addresses when given.

`expect` is compared per record type: its IPv4 addresses with the A records, its IPv6
addresses with the AAAA records, each exactly as a set; a type `expect` names no address
of is not compared, so an IPv4-only `expect` accepts whatever AAAA records the name has.

Resolution is dnspython's stub resolver
(https://dnspython.readthedocs.io/en/latest/resolver-class.html), against the nameserver
the check names or else the worker's system configuration; response codes as in RFC 1035
§4.1.1 (https://www.rfc-editor.org/rfc/rfc1035#section-4.1.1).

Permanent failures (misconfigured): the name does not exist (NXDOMAIN), it has neither an
A nor an AAAA record, or the records of a type `expect` names differ from it. Transient: no answer
within the timeout, every nameserver failing (SERVFAIL, REFUSED), any other resolver
error (YXDOMAIN, a malformed answer), and a worker with no resolver configuration.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from typing import Any

import dns.exception
import dns.name
import dns.resolver
from django.conf import settings
from django.utils.translation import gettext_noop as _

from .base import (
    Context,
    Kind,
    OptionError,
    Reason,
    Said,
    fault,
    invalid_option,
    joined,
    said,
    texts,
    transient,
)

DEFAULT_PORT = 53
RECORD_TYPES = ("A", "AAAA")

Address = ipaddress.IPv4Address | ipaddress.IPv6Address


def run(context: Context) -> Said:
    host = context.text("host")
    try:
        resolver = _resolver(context.text("nameserver"))
        expected = {ipaddress.ip_address(text.strip()) for text in context.texts("expect")}
    except ValueError as error:
        raise invalid_option(error) from None
    found: dict[str, set[Address]] = {}
    ttls: list[int] = []
    via = ""
    for record_type in RECORD_TYPES:
        try:
            answer = resolver.resolve(host, record_type, search=False)
        except dns.resolver.NoAnswer:
            found[record_type] = set()
            continue
        except dns.resolver.NXDOMAIN:
            raise fault(
                Reason.MISCONFIGURED, said(_("%(host)s does not exist (NXDOMAIN)"), host=host)
            ) from None
        except dns.resolver.LifetimeTimeout:
            raise transient(
                Reason.TIMED_OUT,
                said(
                    _("no DNS answer for %(host)s %(type)s within the timeout"),
                    host=host,
                    type=record_type,
                ),
            ) from None
        except dns.resolver.NoNameservers:
            raise transient(
                Reason.VENDOR_DOWN,
                said(
                    _("no nameserver answered %(host)s %(type)s (SERVFAIL or REFUSED)"),
                    host=host,
                    type=record_type,
                ),
            ) from None
        except dns.exception.DNSException as error:
            raise transient(
                Reason.BAD_RESPONSE,
                said(
                    _("DNS query %(host)s %(type)s failed: %(error)s"),
                    host=host,
                    type=record_type,
                    error=str(error),
                ),
            ) from None
        found[record_type] = {ipaddress.ip_address(record.to_text()) for record in answer}
        if answer.rrset is not None:
            ttls.append(answer.rrset.ttl)
        via = _server(str(answer.nameserver), answer.port)
    addresses = set().union(*found.values())
    if not addresses:
        raise fault(Reason.MISCONFIGURED, said(_("%(host)s has no A or AAAA record"), host=host))
    mismatches = [
        said(
            _("%(type)s records are %(found)s; expected %(expected)s"),
            type=record_type,
            found=_listed(found[record_type]),
            expected=_listed(wanted),
        )
        for record_type, wanted in _by_type(expected).items()
        if wanted and found[record_type] != wanted
    ]
    if mismatches:
        raise fault(Reason.MISCONFIGURED, joined(*mismatches))
    return said(
        _("%(host)s resolves to %(addresses)s (TTL %(ttl)s) via %(via)s"),
        host=host,
        addresses=_listed(addresses),
        ttl=min(ttls),
        via=via,
    )


def _by_type(addresses: set[Address]) -> dict[str, set[Address]]:
    """The addresses an A query answers, and those an AAAA query answers."""
    return {
        "A": {a for a in addresses if a.version == 4},
        "AAAA": {a for a in addresses if a.version == 6},
    }


def _resolver(nameserver: str) -> dns.resolver.Resolver:
    if nameserver:
        address, port = _nameserver(nameserver)
        resolver = dns.resolver.Resolver(configure=False)
        resolver.nameservers = [address]
        resolver.port = port
    else:
        try:
            resolver = dns.resolver.Resolver()
        except dns.resolver.NoResolverConfiguration:
            raise transient(
                Reason.UNREACHABLE, said(_("this worker has no DNS resolver configured"))
            ) from None
    timeout = float(settings.CHECKS_READ_TIMEOUT)
    resolver.timeout = timeout
    resolver.lifetime = timeout
    return resolver


def _nameserver(text: str) -> tuple[str, int]:
    """The address and port of "IP", "IP:port" or "[IPv6]:port"; OptionError otherwise."""
    text = text.strip()
    try:
        return str(ipaddress.ip_address(text.removeprefix("[").removesuffix("]"))), DEFAULT_PORT
    except ValueError:
        pass
    address, colon, port = text.rpartition(":")
    if not colon or not port.isdigit() or not 1 <= int(port) <= 65535:
        raise OptionError(
            said(
                _("nameserver must be IP or IP:port (port 1-65535), not %(text)s"),
                text=repr(text),
            )
        )
    try:
        parsed = ipaddress.ip_address(address.removeprefix("[").removesuffix("]"))
    except ValueError:
        raise OptionError(
            said(_("nameserver must be an IP address, not %(address)s"), address=repr(address))
        ) from None
    return str(parsed), int(port)


def _server(address: str, port: int | None) -> str:
    if port is None:
        return address
    return f"[{address}]:{port}" if ":" in address else f"{address}:{port}"


def _listed(addresses: set[Address]) -> Said | str:
    if not addresses:
        return said(_("none"))
    return ", ".join(str(a) for a in sorted(addresses, key=lambda a: (a.version, int(a))))


def check_options(options: Mapping[str, Any]) -> None:
    host = str(options.get("host", "")).strip()
    if not host:
        raise OptionError(said(_("host must be a name to resolve")))
    try:
        ipaddress.ip_address(host)
    except ValueError:
        pass
    else:
        raise OptionError(
            said(_("host must be a name to resolve, not the address %(host)s"), host=host)
        )
    try:
        dns.name.from_text(host)
    except dns.exception.DNSException:
        raise OptionError(
            said(
                _("host %(host)s is not a DNS name: its labels are 1 to 63 octets, 255 in all"),
                host=repr(host),
            )
        ) from None
    if options.get("nameserver"):
        _nameserver(str(options["nameserver"]))
    for text in texts(options.get("expect", [])):
        try:
            ipaddress.ip_address(text)
        except ValueError:
            raise OptionError(
                said(_("expect must list IP addresses, and %(text)s is not one"), text=repr(text))
            ) from None


KIND = Kind(
    name="dns",
    required=frozenset({"host"}),
    optional=frozenset({"expect", "nameserver"}),
    run=run,
    docs_url="https://dnspython.readthedocs.io/en/latest/resolver-class.html",
    check_options=check_options,
)
