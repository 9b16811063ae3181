"""Keep secrets that travel in URLs and headers out of every log line.

A share link (`/s/<token>/…`) is the credential itself, and so is the token in a password
reset link or an `Authorization` header; an access log or a "Not Found: /s/…" warning
would hand them to whoever reads the logs. RedactSecrets rewrites them in each record's
message and arguments before any handler formats it; settings.LOGGING puts it on every
handler, uvicorn's access log included; ConsoleEmailBackend does the same for mail
printed on the server's output, which is a log to whoever reads it.
"""

from __future__ import annotations

import io
import logging
import re
from typing import Any

from django.core.mail import EmailMessage
from django.core.mail.backends import console

REDACTED = "[redacted]"

_PATTERNS: tuple[tuple[re.Pattern[str], str], ...] = (
    # The segment after /s/ is a share link's token, whatever follows it (live/, poll/).
    (re.compile(r"(/s/)[^/\s?#\"'<>]+"), rf"\g<1>{REDACTED}"),
    # Django's password reset link: /reset/<uidb64>/<token>/; its own redirect target,
    # /reset/<uidb64>/set-password/, holds no secret.
    (
        re.compile(r"(/reset/[^/\s?#\"'<>]+/)(?!set-password\b)[^/\s?#\"'<>]+"),
        rf"\g<1>{REDACTED}",
    ),
    # An Authorization header as a log line may show it: `Authorization: Basic …`,
    # `"authorization": "Token …"`. The scheme stays, to tell what was sent.
    (
        re.compile(
            r"(?i)(\bauthorization[\"']?\s*[:=]\s*[\"']?)((?:bearer|basic|token)\s+)?[^\s\"',;}]+"
        ),
        rf"\g<1>\g<2>{REDACTED}",
    ),
    # A bearer token anywhere else (a pipeline token pasted into a message).
    (re.compile(r"(?i)(\bbearer\s+)[A-Za-z0-9._~+/=-]+"), rf"\g<1>{REDACTED}"),
    # Credentials some APIs take in the query string (Google's ?key=, OAuth's
    # access_token=), should such a URL reach a log line.
    (
        re.compile(r"(?i)([?&](?:key|api_?key|access_token|token|secret|password)=)[^&#\s\"'<>]+"),
        rf"\g<1>{REDACTED}",
    ),
)


def redact(text: str) -> str:
    for pattern, replacement in _PATTERNS:
        text = pattern.sub(replacement, text)
    return text


def _redact_arg(value: Any) -> Any:
    if isinstance(value, str):
        return redact(value)
    if value is None or isinstance(value, bool | int | float):
        return value
    # An object whose text holds a secret (a request, a URL) becomes that text, redacted;
    # any other keeps its type, so that a %d or %r in the message still formats it.
    try:
        text = str(value)
    except Exception:
        # Logging must never raise at the call site; the formatter reports it instead.
        return value
    cleaned = redact(text)
    return value if cleaned == text else cleaned


class RedactSecrets(logging.Filter):
    """Rewrite secrets in place, so every handler after this one sees them redacted too.

    The arguments are redacted one by one rather than the message formatted here:
    uvicorn's AccessFormatter reads its five arguments (address, method, path, version,
    status) from the record.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg = _redact_arg(record.msg)
        if isinstance(record.args, tuple):
            record.args = tuple(_redact_arg(arg) for arg in record.args)
        elif isinstance(record.args, dict):
            record.args = {key: _redact_arg(arg) for key, arg in record.args.items()}
        if record.exc_info and not record.exc_text:
            # An exception's message may quote the URL (a Resolver404, an httpx error).
            # Formatter.format uses exc_text when set, so this is what gets written.
            record.exc_text = redact(logging.Formatter().formatException(record.exc_info))
        return True


def uvicorn_access_logger() -> dict[str, Any] | None:
    """LOGGING's entry for uvicorn's access log, or None to leave it as uvicorn set it.

    uvicorn configures its loggers before it imports the app (and so these settings);
    configuring "uvicorn.access" again here sends its lines through the redacting
    handler. Started with --no-access-log, uvicorn leaves that logger without handlers
    and not propagating: reconfiguring it would turn the access log back on, so it is
    left alone. Outside uvicorn the entry does no harm: nothing logs there.
    """
    access = logging.getLogger("uvicorn.access")
    if not access.handlers and not access.propagate:
        return None
    return {"handlers": ["access"], "propagate": False}


class ConsoleEmailBackend(console.EmailBackend):
    """Django's console mail backend, its output redacted like every log line: a
    password reset mail printed there holds the reset link's token."""

    def write_message(self, message: EmailMessage) -> None:
        # Django's rendering of the message, caught to be redacted as a whole.
        output, captured = self.stream, io.StringIO()
        self.stream = captured
        try:
            super().write_message(message)
        finally:
            self.stream = output
        output.write(redact(captured.getvalue()))
