"""Mail, for a person (notifications.email) and for an e-mail channel alike: one way to
write an event as a mail, text and HTML in a given language, and one way to send it
through Django's mail (EMAIL_URL: an SMTP server, or an ESP's API through
django-anymail) and judge what came of it:

- taken by the SMTP server, or by the ESP for every address ("sent" or "queued"):
  delivered; the Message-ID is kept (the ESP's own id when it gives one);
- every address refused (SMTP), any address rejected or invalid (ESP), a permanent 5xx
  SMTP reply to the sender or the content, an ESP's 4xx: failed, not tried again, since
  the same mail would be refused again;
- no connection, a timeout, a temporary reply, an ESP's 429 or 5xx: tried again.

Whether the mail then reaches an inbox is the server's to tell, in a bounce: nobody
confirms it here.
"""

from __future__ import annotations

import logging
import smtplib
from dataclasses import dataclass
from email.utils import make_msgid
from typing import Any
from urllib.parse import urlsplit

from anymail.exceptions import AnymailAPIError, AnymailError, AnymailRecipientsRefused
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.core.mail import EmailMultiAlternatives
from django.template.loader import render_to_string
from django.utils import translation
from django.utils.translation import gettext, gettext_noop
from django.utils.translation import gettext_lazy as _

from releases.models import DeployResult, IncidentState, Role, RollbackSeverity, WindowState
from releases.templatetags.moments import moment

from . import performed
from .models import AttemptOutcome, Channel, Event
from .wording import link_of, title_of, what_happened

logger = logging.getLogger(__name__)

MESSAGE_ID_MAX = 300
# How much of an ESP's answer a delivery's error quotes.
ANSWER_QUOTED = 300
# EMAIL_URL=console:// (make run's default): mail printed, not sent.
CONSOLE_BACKEND = "deploycheck.logs.ConsoleEmailBackend"
PRINTED_ONLY = gettext_noop(
    "printed on the server's output (EMAIL_URL is console://): no mail server took it"
)
# What an ESP answers for an address it took.
TAKEN = frozenset({"sent", "queued"})

# What of an event's data a mail shows, under which label, in this order.
DETAILS: tuple[tuple[str, Any], ...] = (
    ("item", _("Item")),
    ("step", _("Step")),
    ("phase", _("Phase")),
    ("in", _("Starts in")),
    ("open_items", _("Open items")),
    ("missing_signoff", _("Sign-off missing")),
    ("severity", _("Severity")),
    ("result", _("Result")),
    ("state", _("State")),
    ("start", _("Starts")),
    ("end", _("Ends")),
    ("reason", _("Reason")),
    ("failure", _("Failure")),
    ("message", _("Message")),
)


@dataclass(frozen=True)
class Mailed:
    """What came of sending one mail."""

    outcome: AttemptOutcome
    error: str = ""
    message_id: str = ""
    # The HTTP status of an ESP's API when it refused; None for SMTP.
    http_status: int | None = None
    # False when no mail was handed to a server at all (no EMAIL_URL, say).
    sent: bool = True


# How far off a window's start is, as `maintenance.starting_soon` says it.
STARTS_IN: dict[str, Any] = {"24h": _("24 hours"), "60m": _("60 minutes")}


def shown(event_type: str, key: str, value: Any) -> str:
    """A value as the reader's language names it when it is one of the app's choices
    (a severity, a result, a state), else as it was written."""
    if key == "open_items" and isinstance(value, dict):
        named = ", ".join(f"“{text}”" for text in value.get("first", []))
        return f"{value.get('count', 0)}: {named}" if named else str(value.get("count", 0))
    if key == "in" and value in STARTS_IN:
        return str(STARTS_IN[value])
    if isinstance(value, bool):
        return gettext("yes") if value else gettext("no")
    choices: Any = {"severity": RollbackSeverity, "result": DeployResult}.get(key)
    if key == "state":
        choices = IncidentState if event_type.startswith("incident.") else WindowState
    if choices is not None and value in choices.values:
        return str(choices(value).label)
    return str(value)


def compose(
    event: Event,
    to: list[str],
    language: str,
    footer: dict[str, str],
    *,
    person: int | None = None,
) -> EmailMultiAlternatives:
    """An event as a mail in `language`, text and HTML. `footer` says why the reader gets
    it: a person's `unsubscribe` and `preferences` links, or the `channel` whose list
    holds the address. A mail to one `person` carries what a performed item adds for
    them: their "I'm ready" link, a retrospective's invitation."""
    data = event.data
    release = data.get("release", {})
    with translation.override(language):
        role = data.get("role")
        link, link_label = link_of(event)
        extras = (
            performed.mail_extras(event, person, settings.SITE_URL) if person is not None else None
        )
        context = {
            "title": what_happened(event),
            "version": release.get("version", ""),
            "release_title": release.get("title", ""),
            "role": str(Role(role).label) if role in Role.values else "",
            "details": [
                (str(label), shown(event.type, key, data[key]))
                for key, label in DETAILS
                if data.get(key) not in (None, "")
            ],
            "actor": event.actor_label,
            "when": moment(event.created_at),
            "link": link,
            "link_label": link_label,
            **footer,
        }
        if extras is not None:
            context["details"] = [*context["details"], *extras.details]
            context["action_link"], context["action_label"] = extras.link, extras.link_label
        subject = f"[deploycheck] {title_of(event)}"
        text = render_to_string("notifications/email.txt", context)
        html = render_to_string("notifications/email.html", context)
    domain = urlsplit(settings.SITE_URL).hostname or "localhost"
    mail = EmailMultiAlternatives(
        subject=subject,
        body=text,
        to=to,
        # RFC 3834: no out-of-office reply should answer it.
        headers={"Message-ID": make_msgid(domain=domain), "Auto-Submitted": "auto-generated"},
    )
    mail.attach_alternative(html, "text/html")
    if extras is not None and extras.calendar is not None:
        # As calendars look for it: an alternative of the body, and an attachment for the
        # mail readers that only offer those.
        mail.attach_alternative(extras.calendar.decode(), "text/calendar; method=REQUEST")
        mail.attach("invite.ics", extras.calendar, "application/ics")
    return mail


def for_channel(channel: Channel, event: Event) -> EmailMultiAlternatives:
    """One mail to every address of an e-mail channel, in the channel's language. It
    has no unsubscribe link: who is on the list is the notifications file's to say."""
    return compose(
        event,
        list(channel.addresses),
        channel.language or settings.LANGUAGE_CODE,
        {"channel": channel.name},
    )


def to_channel(channel: Channel, event: Event) -> Mailed:
    if not settings.EMAIL_ENABLED:
        return Mailed(
            AttemptOutcome.FAILED, "EMAIL_URL is not set: no mail can be sent", sent=False
        )
    return post(for_channel(channel, event))


def post(mail: EmailMultiAlternatives) -> Mailed:
    """Send one mail and judge what came of it; never raises."""
    try:
        mail.send()
    except smtplib.SMTPRecipientsRefused as error:
        refused = ", ".join(sorted(error.recipients))
        return Mailed(AttemptOutcome.FAILED, f"the mail server refused every address: {refused}")
    except smtplib.SMTPResponseException as error:
        # RFC 5321: a 5yz reply is permanent, the same mail is refused again; but a
        # failed login is this server's settings, which may be fixed before the retry.
        permanent = error.smtp_code >= 500 and not isinstance(
            error, smtplib.SMTPAuthenticationError
        )
        reply = error.smtp_error
        if isinstance(reply, bytes):
            reply = reply.decode("utf-8", "replace")
        return Mailed(
            AttemptOutcome.FAILED if permanent else AttemptOutcome.RETRY,
            f"the mail server answered {error.smtp_code} {reply}".strip(),
        )
    except AnymailRecipientsRefused as error:
        return _refused_by_esp(mail, error)
    except AnymailAPIError as error:
        return _esp_error(error)
    except AnymailError as error:
        # An address or a feature the ESP cannot take: the same mail fails again.
        return Mailed(AttemptOutcome.FAILED, _one_line(str(error)))
    except (smtplib.SMTPException, OSError) as error:
        return Mailed(AttemptOutcome.RETRY, f"{type(error).__name__}: {error}")
    except ImproperlyConfigured as error:
        # Such as amazon-ses without boto3 installed: fixed on the workers, it sends.
        return Mailed(AttemptOutcome.RETRY, f"the mail settings are wrong: {_one_line(str(error))}")
    except Exception as error:  # a bug must not leave the delivery half-done
        logger.exception("mail %s crashed", mail.extra_headers.get("Message-ID"))
        return Mailed(AttemptOutcome.RETRY, f"the mail crashed ({type(error).__name__})")
    status = getattr(mail, "anymail_status", None)
    if status is None:
        message_id = str(mail.extra_headers["Message-ID"])
        if settings.EMAIL_BACKEND == CONSOLE_BACKEND:
            # Nobody was sent anything: the mail is only on the server's output.
            return Mailed(AttemptOutcome.ACCEPTED, PRINTED_ONLY, message_id)
        return Mailed(AttemptOutcome.DELIVERED, message_id=message_id)
    message_id = _esp_message_id(status.message_id)
    if set(status.status or ()) <= TAKEN:
        return Mailed(AttemptOutcome.DELIVERED, message_id=message_id)
    # Some addresses were taken and others not: sending again would mail the first
    # ones twice, so the delivery fails, naming those left out.
    taken = sum(recipient.status in TAKEN for recipient in status.recipients.values())
    return Mailed(
        AttemptOutcome.FAILED,
        f"the ESP took {taken} of {len(status.recipients)} addresses ({_statuses(status)}): "
        + _answer(status.esp_response),
        message_id,
    )


def _refused_by_esp(mail: EmailMultiAlternatives, error: AnymailRecipientsRefused) -> Mailed:
    status = getattr(mail, "anymail_status", None)
    which = _statuses(status) if status is not None else "every address"
    answer = _answer(status.esp_response if status is not None else error.response)
    return Mailed(AttemptOutcome.FAILED, f"the ESP refused every address ({which}): {answer}")


def _esp_error(error: AnymailAPIError) -> Mailed:
    code = error.status_code
    if code is None:
        # No answer: the ESP could not be reached, or timed out.
        cause = error.__cause__ or error
        return Mailed(
            AttemptOutcome.RETRY, f"could not reach the ESP ({type(cause).__name__}: {cause})"
        )
    again = code == 429 or code >= 500
    return Mailed(
        AttemptOutcome.RETRY if again else AttemptOutcome.FAILED,
        f"the ESP answered {_answer(error.response)}",
        http_status=code,
    )


def _answer(response: Any) -> str:
    """An ESP's HTTP answer in a line: its status and the start of its body."""
    if response is None:
        return "no answer"
    body = _one_line(getattr(response, "text", "") or "")[:ANSWER_QUOTED]
    return f"HTTP {response.status_code}: {body}" if body else f"HTTP {response.status_code}"


def _statuses(status: Any) -> str:
    return ", ".join(
        f"{address} {recipient.status}"
        for address, recipient in sorted(status.recipients.items())
        if recipient.status not in TAKEN
    )


def _esp_message_id(found: Any) -> str:
    """An ESP's id of the mail: one, or one an address when it gives each its own."""
    if isinstance(found, set):
        found = ", ".join(sorted(str(one) for one in found if one))
    return str(found or "")[:MESSAGE_ID_MAX]


def _one_line(text: str) -> str:
    return " ".join(text.split())
