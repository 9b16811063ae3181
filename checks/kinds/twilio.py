"""Twilio: the account is active, Full and funded, and every incoming phone number sends
its calls and messages where production is, read where Twilio really routes them.

API: https://www.twilio.com/docs/usage/api/account,
https://www.twilio.com/docs/phone-numbers/api/incomingphonenumber-resource,
https://www.twilio.com/docs/usage/api/applications,
https://www.twilio.com/docs/sip-trunking/api/trunk-resource,
https://www.twilio.com/docs/sip-trunking/api/originationurl-resource,
https://support.twilio.com/hc/en-us/articles/360025294494 (the Balance resource) and
https://www.twilio.com/docs/iam/api-keys/keys-in-console (API keys).

Authentication is HTTP Basic with the account SID and its auth token, or with an API key
(`SK…`) and its secret, the account SID staying in every path. Only a Main key may read
the Account resource, so a Standard or Restricted key cannot prove the account's state.
The Account JSON carries the auth token itself: this module reads only `status` and
`type` from it, and no credential or URL query reaches the evidence.

What it proves: the account is `active` and `Full`; its balance is above zero (Twilio
suspends an account whose balance reaches zero) and at least `min_balance`; it has at
least one incoming number; and each number's routing, where Twilio takes it from:
- voice from the Elastic SIP trunk (`trunk_sid`) when set: at least one enabled
  origination URL, each a `sip:` URI on a public host, and its disaster-recovery URL;
  else from the Application (`voice_application_sid`): its voice, fallback and
  status-callback URLs; else from the number's own voice, fallback and status-callback
  URLs. A number that can take calls but routes them nowhere fails.
- SMS from the Application (`sms_application_sid`) when set, else the number's own URLs.
Every webhook URL that is set must be https, never on a tunnel or development host
(ngrok, localtunnel, Cloudflare quick tunnels, localhost, .local/.internal/.test names, a
host name without a dot, or an address that is not public), on `expected_host` when one
is configured, with a method Twilio documents (GET or POST). Origination URIs are a
PBX's: held to the same public-host rule, not to `expected_host`. An empty SMS URL is
not a fault: a Messaging Service may take the number's messages.

What it cannot prove: that those endpoints answer, validate Twilio's signature or hold a
valid certificate (the webhook, http and tls kinds do), the routing of a Messaging
Service, or the balance of a subaccount (Twilio reports it on the parent).

Permanent failures: credentials refused (401, code 20003), or the Account resource
refused to a Standard or Restricted API key; no account for these credentials (404, code
20404); an account SID not AC + 32 hex digits or an API key SID not SK + 32 hex digits;
an account suspended or closed, or a Trial account (it only messages verified numbers); a
balance at or below zero or under `min_balance`, or no balance reported while
`min_balance` asks for one; no incoming number; and any routing problem above,
including an Application or trunk that a number names but that does not exist.

Not verified: an account status or type the API does not document, named, ends as an
error at once; an account without them is an unreadable answer, retried.
"""

from __future__ import annotations

import ipaddress
import re
import socket
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any
from urllib.parse import urlsplit

import httpx
from django.utils.translation import gettext_noop as _

from .base import Context, Kind, Reason, Said, Value, fault, said, transient
from .client import busy_or_down, http_client, send, unexpected
from .vendor_errors import (
    api_url,
    error_body,
    integer,
    json_object,
    mapping,
    string,
    undocumented,
)

PRODUCTION = "https://api.twilio.com"
VERSION = "2010-04-01"
TRUNKING = "https://trunking.twilio.com"
TRUNKING_VERSION = "v1"
ACCOUNT_SID = re.compile(r"AC[0-9a-fA-F]{32}")
API_KEY_SID = re.compile(r"SK[0-9a-fA-F]{32}")
APPLICATION_SID = re.compile(r"AP[0-9a-fA-F]{32}")
TRUNK_SID = re.compile(r"TK[0-9a-fA-F]{32}")
URL_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*")
MAX_PAGES = 20
SHOWN_PROBLEMS = 3
METHODS = frozenset({"GET", "POST"})
# The account's status and type as the Account resource documents them.
ACCOUNT_STATUSES = ("active", "suspended", "closed")
ACCOUNT_TYPES = ("Trial", "Full")

# (URL field, the field naming its method); None where Twilio always POSTs.
Webhooks = tuple[tuple[str, str | None], ...]
VOICE_WEBHOOKS: Webhooks = (
    ("voice_url", "voice_method"),
    ("voice_fallback_url", "voice_fallback_method"),
    ("status_callback", "status_callback_method"),
)
SMS_WEBHOOKS: Webhooks = (
    ("sms_url", "sms_method"),
    ("sms_fallback_url", "sms_fallback_method"),
)
APPLICATION_SMS_WEBHOOKS: Webhooks = (
    *SMS_WEBHOOKS,
    ("sms_status_callback", None),
    ("message_status_callback", None),
)
TRUNK_WEBHOOKS: Webhooks = (("disaster_recovery_url", "disaster_recovery_method"),)

# Hosts that forward to a developer's machine: reachable from Twilio, but never production.
TUNNEL_DOMAINS = (
    "ngrok.io",
    "ngrok-free.app",
    "ngrok-free.dev",
    "ngrok.app",
    "ngrok.dev",
    "loca.lt",
    "trycloudflare.com",
    "serveo.net",
    "lhr.life",
    "devtunnels.ms",
)
# Names that only resolve on one machine or one private network (RFC 6761, RFC 6762,
# RFC 8375 and ICANN's reservation of .internal).
PRIVATE_DOMAINS = ("localhost", "local", "internal", "test", "invalid", "home.arpa")
IPV4_SHORTHAND = re.compile(r"[0-9a-fA-Fx.]+")


@dataclass(frozen=True)
class Credential:
    username: str
    secret: str
    is_api_key: bool


def run(context: Context) -> Said:
    credential = _credential(context)
    sid = _sid(
        context,
        "account_sid_env",
        ACCOUNT_SID,
        _("the account SID in %(variable)s is not AC and 32 hex digits"),
    )
    min_balance = _min_balance(context)
    expected_host = context.text("expected_host").strip().lower().rstrip(".")
    base = api_url(context.text("base_url"), PRODUCTION, VERSION)
    trunking_base = api_url(context.text("trunking_base_url"), TRUNKING, TRUNKING_VERSION)
    auth = (credential.username, credential.secret)
    ca_file = context.text("ca_file")
    with (
        http_client(base_url=base, ca_file=ca_file, auth=auth) as api,
        http_client(base_url=trunking_base, ca_file=ca_file, auth=auth) as trunking,
    ):
        audit = Audit(api, trunking, credential, sid, expected_host)
        account = audit.get(api, f"/Accounts/{sid}.json", said(_("account")), account=True)
        _check_account(account)
        balance = _balance(audit, min_balance)
        for number in audit.numbers_of():
            audit.number(number)
    if audit.problems:
        raise fault(Reason.MISCONFIGURED, _problems(audit.problems))
    if not audit.numbers:
        raise fault(
            Reason.MISCONFIGURED,
            said(_("the account has no incoming phone numbers: nothing can call or text it")),
        )
    return _summary(audit, balance)


def _credential(context: Context) -> Credential:
    secret = context.secret("secret_env")
    if not context.options.get("api_key_sid_env"):
        return Credential(context.secret("account_sid_env"), secret, is_api_key=False)
    key = _sid(
        context,
        "api_key_sid_env",
        API_KEY_SID,
        _("the API key SID in %(variable)s is not SK and 32 hex digits"),
    )
    return Credential(key, secret, is_api_key=True)


def _sid(context: Context, option: str, form: re.Pattern[str], malformed: str) -> str:
    """The SID in the variable `option` names; `malformed` (naming `%(variable)s`) when it
    is not of its `form`."""
    sid = context.secret(option)
    if not form.fullmatch(sid):
        raise fault(Reason.MISCONFIGURED, said(malformed, variable=context.text(option)))
    return sid


def _min_balance(context: Context) -> Decimal | None:
    value = context.options.get("min_balance")
    if value is None:
        return None
    amount = _decimal(value)
    if amount is None:
        raise fault(Reason.MISCONFIGURED, said(_("min_balance is not a number")))
    return amount


def _check_account(account: dict[str, Any]) -> None:
    status, kind = string(account, "status"), string(account, "type")
    if not status or not kind:
        raise transient(Reason.BAD_RESPONSE, said(_("account: HTTP 200 without status and type")))
    if status not in ACCOUNT_STATUSES:
        raise undocumented(said(_("account status")), status, ACCOUNT_STATUSES)
    if status != "active":
        raise fault(
            Reason.MISCONFIGURED,
            said(_("account status is %(status)s, not active"), status=status),
        )
    if kind not in ACCOUNT_TYPES:
        raise undocumented(said(_("account type")), kind, ACCOUNT_TYPES)
    if kind != "Full":
        raise fault(
            Reason.MISCONFIGURED,
            said(
                _(
                    "account type is %(type)s, not Full: "
                    "a Trial account only messages verified numbers"
                ),
                type=kind,
            ),
        )


def _balance(audit: Audit, min_balance: Decimal | None) -> Said:
    # A subaccount has no balance of its own ("Child accounts do not contain balance
    # information"): that is not a fault unless the check was asked for a minimum.
    data = audit.get(
        audit.api, f"/Accounts/{audit.sid}/Balance.json", said(_("balance")), missing_ok=True
    )
    raw = data.get("balance")
    if raw is None or raw == "":
        if min_balance is not None:
            raise fault(
                Reason.MISCONFIGURED,
                said(
                    _(
                        "Twilio reports no balance for this account (a subaccount's is its "
                        "parent's), so min_balance %(minimum)s cannot be checked"
                    ),
                    minimum=str(min_balance),
                ),
            )
        return said(_("not reported"))
    amount = _decimal(raw)
    if amount is None:
        raise transient(Reason.BAD_RESPONSE, said(_("balance: HTTP 200 without a number")))
    shown = said(
        _("%(amount)s %(currency)s"),
        amount=str(raw),
        currency=string(data, "currency") or _missing(),
    )
    if amount <= 0:
        raise fault(
            Reason.QUOTA_EXHAUSTED,
            said(
                _("balance is %(balance)s: Twilio suspends an account whose balance reaches zero"),
                balance=shown,
            ),
        )
    if min_balance is not None and amount < min_balance:
        raise fault(
            Reason.QUOTA_EXHAUSTED,
            said(
                _("balance is %(balance)s, below the minimum of %(minimum)s"),
                balance=shown,
                minimum=str(min_balance),
            ),
        )
    return shown


def _decimal(value: Any) -> Decimal | None:
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        return None
    try:
        amount = Decimal(str(value).strip())
    except InvalidOperation:
        return None
    return amount if amount.is_finite() else None


@dataclass
class Audit:
    """Where each number's calls and messages go, followed to the Application or trunk
    that handles them; each of those is fetched and judged once."""

    api: httpx.Client
    trunking: httpx.Client
    credential: Credential
    # The account's SID, in every path: with an API key it is not the username.
    sid: str
    expected_host: str
    numbers: int = 0
    voice_by_url: int = 0
    voice_by_application: int = 0
    voice_by_trunk: int = 0
    without_voice: int = 0
    sms_by_application: int = 0
    problems: list[Said] = field(default_factory=list)
    applications: dict[str, dict[str, Any] | None] = field(default_factory=dict)
    audited: set[tuple[str, str]] = field(default_factory=set)

    def numbers_of(self) -> Iterator[dict[str, Any]]:
        path = f"/Accounts/{self.sid}/IncomingPhoneNumbers.json"
        what = said(_("incoming phone numbers"))
        for _page in range(MAX_PAGES):
            page = self.get(self.api, path, what)
            yield from _dicts(page.get("incoming_phone_numbers"), what)
            next_page = page.get("next_page_uri")
            if not next_page:
                return
            path = _next_path(next_page, self.sid)
        raise transient(
            Reason.BAD_RESPONSE,
            said(
                _(
                    "incoming phone numbers: more than %(pages)s pages; "
                    "not every number was checked"
                ),
                pages=MAX_PAGES,
            ),
        )

    def number(self, number: dict[str, Any]) -> None:
        self.numbers += 1
        label: Value = (
            string(number, "phone_number")
            or string(number, "sid")
            or said(_("number %(index)s"), index=self.numbers)
        )

        def place(name: str) -> Said:
            return said(_("%(number)s %(field)s"), number=label, field=name)

        # Twilio's precedence: a trunk overrides an application, which overrides the
        # number's own voice URLs.
        trunk = string(number, "trunk_sid")
        application = string(number, "voice_application_sid")
        if mapping(number, "capabilities").get("voice") is False:
            self.without_voice += 1
        elif trunk:
            self.voice_by_trunk += 1
            self._trunk(trunk, label)
        elif application:
            self.voice_by_application += 1
            self._application(application, "voice", label)
        elif string(number, "voice_url").strip():
            self.voice_by_url += 1
            self._webhooks(number, VOICE_WEBHOOKS, place)
        else:
            self.problems.append(
                said(
                    _("%(number)s has no voice URL, application or trunk: its calls go nowhere"),
                    number=label,
                )
            )
        sms_application = string(number, "sms_application_sid")
        if sms_application:
            self.sms_by_application += 1
            self._application(sms_application, "sms", label)
        else:
            self._webhooks(number, SMS_WEBHOOKS, place)

    def _application(self, sid: str, channel: str, label: Value) -> None:
        if not APPLICATION_SID.fullmatch(sid):
            raise transient(
                Reason.BAD_RESPONSE,
                said(
                    _(
                        "incoming phone numbers: %(number)s names an application SID "
                        "that is not AP and 32 hex digits"
                    ),
                    number=label,
                ),
            )
        if (sid, channel) in self.audited:
            return
        self.audited.add((sid, channel))
        if sid not in self.applications:
            self.applications[sid] = self._fetch(
                self.api,
                f"/Accounts/{self.sid}/Applications/{sid}.json",
                said(_("application %(application)s"), application=sid),
                label,
            )
        application = self.applications[sid]
        if application is None:
            return

        def place(name: str) -> Said:
            return said(_("application %(application)s %(field)s"), application=sid, field=name)

        if channel == "sms":
            self._webhooks(application, APPLICATION_SMS_WEBHOOKS, place)
            return
        if not string(application, "voice_url").strip():
            self.problems.append(
                said(
                    _(
                        "application %(application)s has no voice_url: "
                        "calls to %(number)s go nowhere"
                    ),
                    application=sid,
                    number=label,
                )
            )
        self._webhooks(application, VOICE_WEBHOOKS, place)

    def _trunk(self, sid: str, label: Value) -> None:
        if not TRUNK_SID.fullmatch(sid):
            raise transient(
                Reason.BAD_RESPONSE,
                said(
                    _(
                        "incoming phone numbers: %(number)s names a trunk SID "
                        "that is not TK and 32 hex digits"
                    ),
                    number=label,
                ),
            )
        if (sid, "trunk") in self.audited:
            return
        self.audited.add((sid, "trunk"))
        trunk = self._fetch(
            self.trunking, f"/Trunks/{sid}", said(_("trunk %(trunk)s"), trunk=sid), label
        )
        if trunk is None:
            return

        def place(name: str) -> Said:
            return said(_("trunk %(trunk)s %(field)s"), trunk=sid, field=name)

        self._webhooks(trunk, TRUNK_WEBHOOKS, place)
        enabled = 0
        for origination in self._origination_urls(sid):
            # "Whether the URL is enabled. The default is true."
            if origination.get("enabled") is False:
                continue
            enabled += 1
            name = string(origination, "friendly_name") or string(origination, "sid")
            problem = _sip_problem(
                string(origination, "sip_url"),
                said(_("trunk %(trunk)s origination URL %(name)s"), trunk=sid, name=name),
            )
            if problem:
                self.problems.append(problem)
        if not enabled:
            self.problems.append(
                said(
                    _(
                        "trunk %(trunk)s has no enabled origination URL: "
                        "calls to %(number)s go nowhere"
                    ),
                    trunk=sid,
                    number=label,
                )
            )

    def _origination_urls(self, trunk: str) -> Iterator[dict[str, Any]]:
        path = f"/Trunks/{trunk}/OriginationUrls"
        what = said(_("origination URLs of trunk %(trunk)s"), trunk=trunk)
        url = path
        for _page in range(MAX_PAGES):
            page = self.get(self.trunking, url, what)
            yield from _dicts(page.get("origination_urls"), what)
            next_page = mapping(page, "meta").get("next_page_url")
            if not next_page:
                return
            url = _same_list(next_page, self.trunking.base_url, path, what)
        raise transient(
            Reason.BAD_RESPONSE,
            said(
                _("%(what)s: more than %(pages)s pages; not every URL was checked"),
                what=what,
                pages=MAX_PAGES,
            ),
        )

    def _webhooks(
        self, resource: dict[str, Any], webhooks: Webhooks, place: Callable[[str], Said]
    ) -> None:
        for url_field, method_field in webhooks:
            url = string(resource, url_field).strip()
            if not url:
                continue
            problem = _url_problem(url, place(url_field), self.expected_host)
            if problem:
                self.problems.append(problem)
            if method_field:
                problem = _method_problem(resource.get(method_field), place(method_field))
                if problem:
                    self.problems.append(problem)

    def get(
        self,
        client: httpx.Client,
        url: str,
        what: Said,
        *,
        account: bool = False,
        missing_ok: bool = False,
    ) -> dict[str, Any]:
        """The JSON object at `url`; {} for a 404 when `missing_ok`."""
        response = send(client, "GET", url)
        if response.status_code == 404 and missing_ok:
            return {}
        return self._read(response, what, account=account)

    def _fetch(
        self, client: httpx.Client, url: str, what: Said, label: Value
    ) -> dict[str, Any] | None:
        """A resource a number routes to, or None when Twilio has no such resource: a
        routing problem of that number, not a reason to stop judging the others."""
        response = send(client, "GET", url)
        if response.status_code == 404:
            self.problems.append(
                said(
                    _("%(what)s, which %(number)s routes to, was not found (%(answer)s)"),
                    what=what,
                    number=label,
                    answer=_answer(response),
                )
            )
            return None
        return self._read(response, what)

    def _read(
        self, response: httpx.Response, what: Said, *, account: bool = False
    ) -> dict[str, Any]:
        if response.status_code != 200:
            raise self._refused(response, what, account)
        return json_object(response, what)

    def _refused(self, response: httpx.Response, what: Said, account: bool) -> Exception:
        status = response.status_code
        answer = _answer(response)
        if status in (401, 403) and account and self.credential.is_api_key:
            return fault(
                Reason.AUTH_FAILED,
                said(
                    _(
                        "%(what)s: the API key was refused (%(answer)s): its secret is wrong, "
                        "or it is a Standard or Restricted key, which cannot read the Account "
                        "resource (only a Main key can)"
                    ),
                    what=what,
                    answer=answer,
                ),
            )
        if status == 401 and self.credential.is_api_key:
            return fault(
                Reason.AUTH_FAILED,
                said(
                    _("%(what)s: the API key and its secret were refused (%(answer)s)"),
                    what=what,
                    answer=answer,
                ),
            )
        if status == 401:
            return fault(
                Reason.AUTH_FAILED,
                said(
                    _("%(what)s: the account SID and auth token were refused (%(answer)s)"),
                    what=what,
                    answer=answer,
                ),
            )
        if status == 404 and account:
            return fault(
                Reason.AUTH_FAILED,
                said(_("account not found for these credentials (%(answer)s)"), answer=answer),
            )
        if status == 429:
            return busy_or_down(
                response,
                said(_("%(what)s: too many requests (%(answer)s)"), what=what, answer=answer),
            )
        return unexpected(response, what)


def _dicts(items: Any, what: Said) -> list[dict[str, Any]]:
    if not isinstance(items, list) or not all(isinstance(item, dict) for item in items):
        raise transient(
            Reason.BAD_RESPONSE, said(_("%(what)s: HTTP 200 without a list"), what=what)
        )
    return items


def _next_path(next_page: Any, sid: str) -> str:
    # The client sends the credentials with every request, so the next page must stay
    # under this account on this host: an absolute or foreign URI is never followed.
    prefix = f"/{VERSION}/Accounts/{sid}/IncomingPhoneNumbers"
    if not isinstance(next_page, str) or not next_page.startswith(prefix):
        raise transient(
            Reason.BAD_RESPONSE,
            said(
                _("incoming phone numbers: next_page_uri is not a page of this account's numbers")
            ),
        )
    return next_page.removeprefix(f"/{VERSION}")


def _same_list(next_page: Any, base: httpx.URL, path: str, what: Said) -> str:
    # The trunking API gives absolute next-page URLs; the credentials go only to a page
    # of the same list on the same host.
    try:
        url = httpx.URL(next_page) if isinstance(next_page, str) else None
    except httpx.InvalidURL:
        url = None
    if (
        url is None
        or (url.scheme, url.host, url.port) != (base.scheme, base.host, base.port)
        or url.path != base.path.rstrip("/") + path
    ):
        raise transient(
            Reason.BAD_RESPONSE,
            said(_("%(what)s: next_page_url is not a page of the same list"), what=what),
        )
    return str(url)


def _url_problem(url: str, place: Said, expected_host: str) -> Said | None:
    # Only scheme and host reach the evidence: a webhook's query or user part may carry
    # a token.
    try:
        parts = urlsplit(url)
        host = (parts.hostname or "").rstrip(".")
    except ValueError:
        return said(_("%(place)s is not a valid URL"), place=place)
    if parts.scheme.lower() != "https":
        return said(
            _("%(place)s is not https (%(scheme)s on %(host)s)"),
            place=place,
            scheme=parts.scheme or said(_("no scheme")),
            host=host or said(_("no host")),
        )
    host_problem = _host_problem(host, place)
    if host_problem is not None:
        return host_problem
    if expected_host and host != expected_host:
        return said(
            _("%(place)s points at %(host)s, not %(expected)s"),
            place=place,
            host=host,
            expected=expected_host,
        )
    return None


def _method_problem(method: Any, place: Said) -> Said | None:
    if isinstance(method, str) and method.strip().upper() in METHODS:
        return None
    shown: Value = method.strip() if isinstance(method, str) and method.strip() else _missing()
    return said(_("%(place)s is %(method)s, not GET or POST"), place=place, method=shown)


def _sip_problem(uri: str, place: Said) -> Said | None:
    """What keeps Twilio from reaching a production PBX at an origination URI, which
    "must be a sip: schema" (sip:[user[:password]@]host[:port][;params][?headers])."""
    scheme, colon, rest = uri.strip().partition(":")
    if not colon or scheme.lower() != "sip":
        shown: Value = scheme if colon and URL_SCHEME.fullmatch(scheme) else said(_("no scheme"))
        return said(_("%(place)s is not a sip: URI (%(scheme)s)"), place=place, scheme=shown)
    # Twilio's own examples write sip://host; the user part may hold a password.
    address = re.split(r"[;?]", rest.removeprefix("//"), maxsplit=1)[0].rpartition("@")[2]
    bracketed = address.startswith("[")
    host = (address[1:].partition("]") if bracketed else address.partition(":"))[0].rstrip(".")
    return _host_problem(host, place)


def _host_problem(host: str, place: Said) -> Said | None:
    """What keeps the host a webhook URL or an origination URI names from being
    production's."""
    if not host:
        return said(_("%(place)s has no host"), place=place)
    if _never_production(host):
        return said(
            _("%(place)s points at %(host)s: a tunnel, local or private host is never production"),
            place=place,
            host=host,
        )
    return None


def _never_production(host: str) -> bool:
    host = host.lower()
    address = _address(host)
    if address is not None:
        return not address.is_global or address.is_multicast
    if "." not in host:
        return True
    return any(
        host == domain or host.endswith("." + domain)
        for domain in (*TUNNEL_DOMAINS, *PRIVATE_DOMAINS)
    )


def _address(host: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        # Resolvers also read 127.1, 0x7f.0.0.1 and 2130706433 as addresses.
        if not IPV4_SHORTHAND.fullmatch(host):
            return None
        try:
            return ipaddress.IPv4Address(socket.inet_aton(host))
        except OSError:
            return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def _answer(response: httpx.Response) -> Said:
    code = integer(error_body(response), "code")
    if code is None:
        return said(_("HTTP %(status)s"), status=response.status_code)
    return said(_("HTTP %(status)s code %(code)s"), status=response.status_code, code=code)


def _missing() -> Said:
    return said(_("missing"))


def _problems(problems: list[Said]) -> Said:
    count = len(problems)
    first, *others = problems
    if count == 1:
        return said(_("1 routing problem: %(first)s"), first=first)
    if count == 2:
        return said(
            _("%(count)s routing problems: %(first)s; %(second)s"),
            count=count,
            first=first,
            second=others[0],
        )
    if count == SHOWN_PROBLEMS:
        return said(
            _("%(count)s routing problems: %(first)s; %(second)s; %(third)s"),
            count=count,
            first=first,
            second=others[0],
            third=others[1],
        )
    return said(
        _("%(count)s routing problems: %(first)s; %(second)s; %(third)s; and %(more)s more"),
        count=count,
        first=first,
        second=others[0],
        third=others[1],
        more=count - SHOWN_PROBLEMS,
    )


def _summary(audit: Audit, balance: Said) -> Said:
    numbers = (
        said(_("1 number"))
        if audit.numbers == 1
        else said(_("%(count)s numbers"), count=audit.numbers)
    )
    urls = (
        said(_("every URL https on %(host)s"), host=audit.expected_host)
        if audit.expected_host
        else said(_("every URL https"))
    )
    return said(
        _(
            "account active and Full; balance %(balance)s; %(numbers)s; voice by URL "
            "%(by_url)s, by application %(by_application)s, by trunk %(by_trunk)s, "
            "without voice %(without_voice)s; SMS by application %(sms_by_application)s; "
            "%(urls)s, none on a tunnel or private host"
        ),
        balance=balance,
        numbers=numbers,
        by_url=audit.voice_by_url,
        by_application=audit.voice_by_application,
        by_trunk=audit.voice_by_trunk,
        without_voice=audit.without_voice,
        sms_by_application=audit.sms_by_application,
        urls=urls,
    )


KIND = Kind(
    name="twilio",
    required=frozenset({"secret_env", "account_sid_env"}),
    optional=frozenset(
        {
            "api_key_sid_env",
            "expected_host",
            "min_balance",
            "base_url",
            "trunking_base_url",
            "ca_file",
        }
    ),
    run=run,
    docs_url="https://www.twilio.com/docs/phone-numbers/api/incomingphonenumber-resource",
)
