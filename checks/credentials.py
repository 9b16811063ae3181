"""Credentials where only the name of their variable belongs, for the files and forms
that declare checks and notification channels: a key pasted into a value, a token in a
URL, a variable deploycheck reads for itself, a host a credential may reach in the clear.

A credential found is named by what it is (`Credential.what`, in the active language),
never repeated.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from django.utils.translation import gettext as _
from django.utils.translation import gettext_noop

from releases.markdown import blank_or_control

# What deploycheck itself reads from the environment (deploycheck/settings.py,
# deploycheck/run.py, uvicorn's FORWARDED_ALLOW_IPS: the README's configuration table),
# and the families Django, Celery and uvicorn read. A check sends the value of its *_env
# variables to the host its file names, and a channel posts to or signs with its own, so
# naming one of these would hand deploycheck's own secrets and configuration to that host.
APP_VARIABLES = frozenset(
    {
        "ALLOWED_HOSTS",
        "APPROVAL_REMINDER_MINUTES",
        "AXES_COOLOFF_MINUTES",
        "AXES_FAILURE_LIMIT",
        "CALENDAR_UID_DOMAIN",
        "CHECKLIST_MAX_BYTES",
        "CHECKLIST_MAX_ITEMS",
        "CHECKS_ATTEMPT_SECONDS",
        "CHECKS_CONNECT_TIMEOUT",
        "CHECKS_INTERVAL_SECONDS",
        "CHECKS_MAX_AGE",
        "CHECKS_MAX_ATTEMPTS",
        "CHECKS_MAX_PER_RELEASE",
        "CHECKS_MAX_RESPONSE_BYTES",
        "CHECKS_READ_TIMEOUT",
        "CHECKS_RETRY_BASE_SECONDS",
        "CHECKS_RUNS_PER_MINUTE",
        "CSRF_TRUSTED_ORIGINS",
        "DATABASE_URL",
        "DATA_DIR",
        "DB_CONN_MAX_AGE",
        "DB_POOL_SIZE",
        "DEBUG",
        "DEMO_MODE",
        "EMAIL_FROM",
        "EMAIL_URL",
        "FORWARDED_ALLOW_IPS",
        "HOST",
        "HSTS_INCLUDE_SUBDOMAINS",
        "HSTS_PRELOAD",
        "HSTS_SECONDS",
        "LANGUAGE_CODE",
        "LIVE_KEEPALIVE_SECONDS",
        "LIVE_POLL_SECONDS",
        "LOG_LEVEL",
        "MAINTENANCE_WINDOW_MAX_HOURS",
        "MAX_REQUEST_BYTES",
        "NOTIFY_ALLOW_PRIVATE",
        "NOTIFY_ATTEMPT_SECONDS",
        "NOTIFY_CONNECT_TIMEOUT",
        "NOTIFY_MAX_RESPONSE_BYTES",
        "NOTIFY_READ_TIMEOUT",
        "NOTIFY_RETRY_SCHEDULE",
        "PIPELINE_REQUESTS_PER_MINUTE",
        "PORT",
        "REDIS_CONNECTIONS",
        "REDIS_URL",
        "SECRET_KEY",
        "SECURE_COOKIES",
        "SITE_URL",
        "SSL_REDIRECT",
        "STATIC_MANIFEST",
        "TIME_ZONE",
        "WEB_CONCURRENCY",
        "WEB_THREADS",
        "WORKER_CONCURRENCY",
        "WORKER_NICENESS",
    }
)
APP_VARIABLE_PREFIXES = ("DJANGO_", "DEPLOYCHECK_", "CELERY_", "UVICORN_")


def is_app_variable(name: str) -> bool:
    """Whether deploycheck reads the variable for itself, so no check or channel may
    name it."""
    return name in APP_VARIABLES or name.startswith(APP_VARIABLE_PREFIXES)


def is_loopback(host: str) -> bool:
    """Whether the host is this machine, the only one a credential may reach over plain
    HTTP (a stand-in)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@dataclass(frozen=True)
class WebURL:
    """An http:// or https:// URL naming a host, as the checks and notifications files
    take one."""

    scheme: str
    host: str
    # A user or password (user:password@): a credential where a variable's name belongs.
    has_login: bool


def url_character_problem(key: str, value: Any) -> str:
    """Why a URL is refused for a space or a control character in it, naming which; ""
    when it holds none."""
    found = blank_or_control(value) if isinstance(value, str) else None
    if found is None:
        return ""
    return _("%(key)s must not contain spaces or control characters (it holds U+%(code)04X)") % {
        "key": key,
        "code": ord(found),
    }


def web_url(value: Any) -> WebURL | None:
    """The URL's scheme and host, or None when the value is no http:// or https:// URL
    naming a host, or holds a space or a control character (url_character_problem says
    which)."""
    if not isinstance(value, str) or blank_or_control(value) is not None:
        return None
    try:
        parts = urlsplit(value)
    except ValueError:
        return None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return None
    return WebURL(
        parts.scheme, parts.hostname, parts.username is not None or parts.password is not None
    )


@dataclass(frozen=True)
class Credential:
    """A credential found in a value. `what` names it for a message without repeating
    it; `text` is the credential as written, used only to find its line in a file."""

    what: str
    text: str


def _mixed(body: str) -> bool:
    # Generated keys mix upper and lower case and digits; words joined by dashes
    # ("sk-learn-regression-monitoring") do not.
    return (
        any(c.isupper() for c in body)
        and any(c.islower() for c in body)
        and any(c.isdigit() for c in body)
    )


def _has_digit(body: str) -> bool:
    return any(c.isdigit() for c in body)


def _always(body: str) -> bool:
    return True


# Vendors' documented key formats: a fixed prefix (shown in the message) and a body
# (never shown), which must also pass its test to count.
_KEY_FORMATS: tuple[tuple[re.Pattern[str], str, Callable[[str], bool]], ...] = (
    # sk-…, sk-proj-…, sk-svcacct-…, sk-admin-…
    (
        re.compile(r"(?<![\w-])(?P<prefix>sk-(?:proj-|svcacct-|admin-)?)(?P<body>[\w-]{20,})"),
        gettext_noop("an OpenAI key"),
        _mixed,
    ),
    (
        re.compile(r"(?<![\w-])(?P<prefix>sk_)(?P<body>[0-9a-f]{48})(?![0-9A-Za-z])"),
        gettext_noop("an ElevenLabs key"),
        _always,
    ),
    (
        re.compile(r"(?<![\w-])(?P<prefix>gh[pousr]_)(?P<body>[A-Za-z0-9]{36})(?![A-Za-z0-9])"),
        gettext_noop("a GitHub token"),
        _always,
    ),
    (
        re.compile(r"(?<![\w-])(?P<prefix>github_pat_)(?P<body>\w{22,})"),
        gettext_noop("a GitHub token"),
        _always,
    ),
    (
        re.compile(r"(?<![\w-])(?P<prefix>AIza)(?P<body>[\w-]{35})(?![\w-])"),
        gettext_noop("a Google API key"),
        _always,
    ),
    (
        re.compile(r"(?<![\w-])(?P<prefix>sb_(?:secret|publishable)_)(?P<body>[\w-]{16,})"),
        gettext_noop("a Supabase key"),
        _always,
    ),
    (
        re.compile(r"(?<![\w-])(?P<prefix>xox[abposre]-)(?P<body>[A-Za-z0-9-]{10,})"),
        gettext_noop("a Slack token"),
        _has_digit,
    ),
    (
        re.compile(r"(?<![A-Za-z0-9])(?P<prefix>AKIA|ASIA)(?P<body>[A-Z0-9]{16})(?![A-Za-z0-9])"),
        gettext_noop("an AWS access key"),
        _always,
    ),
    # A JSON Web Token: header (a JSON object, so "eyJ"), payload and signature, each
    # base64url. Supabase's legacy anon and service_role keys are ones.
    (
        re.compile(r"(?<![\w-])(?P<prefix>eyJ)(?P<body>[\w-]{8,}\.[\w-]{8,}\.[\w-]*)"),
        gettext_noop("a JSON Web Token"),
        _always,
    ),
)
# A Twilio account or API key SID names an account, and is no secret alone (it is in
# Twilio's own URLs); written beside a 32-character token, that is its auth token or
# key secret.
_TWILIO_SID = re.compile(r"(?<![A-Za-z0-9])(?P<prefix>AC|SK)[0-9a-f]{32}(?![A-Za-z0-9])")
_TOKEN_32 = re.compile(r"(?<![A-Za-z0-9])[A-Za-z0-9]{32}(?![A-Za-z0-9])")
_URL_IN_TEXT = re.compile(r"\b[A-Za-z][A-Za-z0-9+.-]*://[^\s\"'<>]+")
# Query and fragment parameters that carry a credential, compared in lower case without
# punctuation (api_key, apiKey and api-key alike). Explicit names rather than every
# "…token": a pageToken or nextToken is a cursor.
_CREDENTIAL_PARAMETERS = frozenset(
    {
        "token",
        "accesstoken",
        "authtoken",
        "apitoken",
        "idtoken",
        "refreshtoken",
        "sessiontoken",
        "securitytoken",
        "xamzsecuritytoken",
        "key",
        "apikey",
        "accesskey",
        "secretkey",
        "privatekey",
        "subscriptionkey",
        "secret",
        "clientsecret",
        "password",
        "passwd",
        "pwd",
        "pass",
        "sig",
        "signature",
        "xamzsignature",
        "xamzcredential",
        "xgoogsignature",
        "xgoogcredential",
        "credential",
        "credentials",
        "auth",
        "authorization",
        "jwt",
    }
)
_CREDENTIAL_PARAMETER_ENDINGS = ("secret", "password", "apikey", "accesstoken", "authtoken")


def find_credential(value: Any) -> Credential | None:
    """The first credential in a value: a string, or the keys and strings of the lists
    and tables within it. Walked without recursion, as dotted keys can nest tables
    without bound."""
    pending: list[Any] = [value]
    while pending:
        current = pending.pop()
        if isinstance(current, str):
            found = _credential_in_text(current)
            if found:
                return found
        elif isinstance(current, dict):
            for key, item in reversed(current.items()):
                pending += [item, key]
        elif isinstance(current, list):
            pending += reversed(current)
    return None


def _credential_in_text(text: str) -> Credential | None:
    for pattern, what, plausible in _KEY_FORMATS:
        for match in pattern.finditer(text):
            if plausible(match["body"]):
                return Credential(f"{_(what)}, {match['prefix']}…", match[0])
    sid = _TWILIO_SID.search(text)
    if sid:
        for token in _TOKEN_32.finditer(text):
            # A token mixes letters and digits; a run of 32 digits is a number.
            if _has_digit(token[0]) and not token[0].isdigit():
                what = _("a Twilio SID with its secret")
                return Credential(f"{what}, {sid['prefix']}…", token[0])
    for url in _URL_IN_TEXT.finditer(text):
        found = _credential_in_url(url[0])
        if found:
            return found
    return None


def _credential_in_url(url: str) -> Credential | None:
    try:
        parts = urlsplit(url)
        password = parts.password
    except ValueError:
        return None
    if password:
        return Credential("user:password@", password)
    for mark, part in (("?", parts.query), ("#", parts.fragment)):
        for name, value in parse_qsl(part):
            normal = re.sub(r"[^a-z0-9]", "", name.lower())
            if normal in _CREDENTIAL_PARAMETERS or normal.endswith(_CREDENTIAL_PARAMETER_ENDINGS):
                return Credential(f"{mark}{name}=…", value)
    return None
