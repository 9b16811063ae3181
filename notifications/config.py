"""The notifications file: where events go, as code (see the README's Notifications).

A TOML file of `[[channel]]` tables, read by `manage.py load_notifications FILE` with the
checks file's rules (checks.toml_file, checks.credentials): all or nothing, every fault
as `path:line: what is wrong` in the active language, unknown keys refused, and secrets
only named, never written: a credential pasted anywhere is refused without being
repeated, and so is a variable deploycheck reads for itself. The file is the whole list:
a channel it no longer declares is retired.

The staff's channel form (notifications.channel_views) is judged by the same code, one
channel at a time (parse_one), and saved as a load saves it, leaving the other channels
be (save).
"""

from __future__ import annotations

import codecs
import ipaddress
import re
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from checks.credentials import (
    find_credential,
    is_app_variable,
    is_loopback,
    url_character_problem,
    web_url,
)
from checks.export import toml_key, toml_value
from checks.kinds.base import is_variable_name
from checks.toml_file import (
    MAX_NESTING,
    Fault,
    Lines,
    NotARegularFile,
    Problems,
    hidden_text_problem,
    read_regular_file,
    toml_problem,
    too_deep,
)

from .models import Channel, ChannelKind
from .outbox import EVENT_TYPES
from .teams import LEGACY_HINT, is_legacy_connector

MAX_BYTES = 64 * 1024
MAX_CHANNELS = 100
URL_MAX = Channel._meta.get_field("url").max_length or 2000
NAME = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")
KEYS = {
    ChannelKind.WEBHOOK: ("name", "kind", "url", "url_env", "secret_env", "events", "releases"),
    ChannelKind.SLACK: ("name", "kind", "url", "url_env", "events", "releases"),
    ChannelKind.TEAMS: ("name", "kind", "url", "url_env", "events", "releases"),
    ChannelKind.EMAIL: ("name", "kind", "to", "language", "events", "releases"),
}
# An e-mail channel's list: a handful of addresses or mailing lists, not a directory.
MAX_ADDRESSES = 50
ADDRESS_MAX = 254
_SLACK_HOSTS = ("hooks.slack.com", "hooks.slack-gov.com")


class NotificationsFileError(Exception):
    """A notifications file refused whole; `errors` holds one `path:line: …` a fault, and
    `faults` the same faults with the key each concerns (what a form shows beside a field)."""

    def __init__(self, errors: list[str], faults: Sequence[Fault] = ()) -> None:
        super().__init__("\n".join(errors))
        self.errors = errors
        self.faults = list(faults)


class StaleEdit(Exception):
    """The channel changed after the person editing it opened it: saving would undo that
    change unseen."""


@dataclass(frozen=True)
class ChannelSpec:
    name: str
    kind: str
    url: str = ""
    url_env: str = ""
    secret_env: str = ""
    events: tuple[str, ...] = ("*",)
    releases: str = "*"
    to: tuple[str, ...] = ()
    language: str = ""


@dataclass(frozen=True)
class LoadSummary:
    created: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    retired: list[str] = field(default_factory=list)
    loaded: list[str] = field(default_factory=list)

    def __str__(self) -> str:
        count = len(self.loaded)
        return (
            f"{count} channel{'' if count == 1 else 's'} loaded ({len(self.created)} new, "
            f"{len(self.updated)} updated, {len(self.retired)} retired)"
        )


def read(path: str | Path) -> list[ChannelSpec]:
    """The channels a file declares; NotificationsFileError lists every fault it has."""
    problems = Problems(str(path))
    specs = _parse(str(path), problems)
    if problems:
        raise NotificationsFileError(problems.lines())
    return specs


def _read_text(path: str, problems: Problems) -> str | None:
    try:
        raw = read_regular_file(path, MAX_BYTES)
    except NotARegularFile:
        problems.refuse_file(None, _("is not a regular file"))
        return None
    except OSError as error:
        problems.refuse_file(
            None, _("cannot be read (%(reason)s)") % {"reason": error.strerror or error}
        )
        return None
    if len(raw) > MAX_BYTES:
        problems.refuse_file(None, _("is larger than %(size)d KiB") % {"size": MAX_BYTES // 1024})
        return None
    try:
        return raw.removeprefix(codecs.BOM_UTF8).decode("utf-8")
    except UnicodeDecodeError as error:
        problems.refuse_file(raw.count(b"\n", 0, error.start) + 1, _("is not UTF-8 text"))
        return None


def _parse(path: str, problems: Problems) -> list[ChannelSpec]:
    text = _read_text(path, problems)
    if text is None:
        return []
    nested_at = too_deep(text)
    if nested_at is not None:
        problems.refuse_file(
            nested_at,
            _("arrays or tables nested more than %(most)d deep") % {"most": MAX_NESTING},
        )
        return []
    lines = Lines(text, "channel")
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        toml_problem(problems, str(error), len(lines.lines))
        return []
    for key, value in data.items():
        if key == "channel":
            continue
        if (found := find_credential(key)) or (found := find_credential(value)):
            problems.add(
                lines.top_level_text(key, found.text),
                _("a top-level key carries a credential (%(what)s); remove it")
                % {"what": found.what},
            )
        else:
            problems.add(
                lines.top_level(key),
                _(
                    "unknown top-level key “%(key)s”; a notifications file holds only "
                    "[[channel]] tables"
                )
                % {"key": key},
            )
    tables = data.get("channel", [])
    if not isinstance(tables, list) or not all(isinstance(t, dict) for t in tables):
        problems.refuse_file(lines.top_level("channel"), _("channel must be [[channel]] tables"))
        return []
    if len(tables) > MAX_CHANNELS:
        problems.refuse_file(
            lines.header(MAX_CHANNELS),
            _("the file declares %(count)d channels; at most %(most)d")
            % {"count": len(tables), "most": MAX_CHANNELS},
        )
        return []
    specs: list[ChannelSpec] = []
    first_use: dict[str, int] = {}
    for index, table in enumerate(tables):
        spec = _parse_channel(index, table, lines, problems, first_use)
        if spec is not None:
            specs.append(spec)
    return specs


def _parse_channel(
    index: int,
    table: dict[str, Any],
    lines: Lines,
    problems: Problems,
    first_use: dict[str, int],
) -> ChannelSpec | None:
    header = lines.header(index)
    faults = len(problems)
    for key, value in table.items():
        # Variables' names are judged as names below; anything else holding a
        # credential is refused here, without quoting it.
        if (found := find_credential(key)) or (
            not key.endswith("_env") and (found := find_credential(value))
        ):
            problems.add(
                lines.text_in(index, key, found.text),
                _(
                    "this [[channel]]: %(key)s carries a credential (%(what)s); "
                    "name an environment variable instead"
                )
                % {"key": key, "what": found.what},
                key,
            )
        elif problem := hidden_text_problem(key, value):
            problems.add(
                lines.key(index, key),
                _("this [[channel]]: %(problem)s") % {"problem": problem},
                key,
            )
    if len(problems) > faults:
        return None

    name = table.get("name")
    if not isinstance(name, str) or not NAME.fullmatch(name):
        problems.add(
            lines.key(index, "name") if "name" in table else header,
            _(
                "this [[channel]] needs a name of lower-case letters, digits, dots, dashes "
                "and underscores (at most 64)"
            ),
            "name",
        )
        return None
    label = _("channel “%(name)s”") % {"name": name}
    if name in first_use:
        problems.add(
            lines.key(index, "name"),
            _("%(label)s is declared twice (first at line %(line)d)")
            % {"label": label, "line": first_use[name]},
            "name",
        )
    first_use.setdefault(name, header)

    kind = table.get("kind")
    *others, last = sorted(KEYS)
    known = _("%(some)s or %(last)s") % {"some": ", ".join(others), "last": last}
    if kind not in KEYS:
        if "kind" not in table:
            message = _("%(label)s has no kind; the kinds are %(known)s")
        elif isinstance(kind, str):
            message = _("%(label)s: “%(kind)s” is not a kind of channel; the kinds are %(known)s")
        else:
            message = _("%(label)s: that is not a kind of channel; the kinds are %(known)s")
        problems.add(
            lines.key(index, "kind") if "kind" in table else header,
            message % {"label": label, "kind": kind, "known": known},
            "kind",
        )
        return None
    kind = ChannelKind(kind)
    allowed = KEYS[kind]
    for key in table:
        if kind == ChannelKind.EMAIL and key in ("url", "url_env", "secret_env"):
            problems.add(
                lines.key(index, key),
                _(
                    "%(label)s: an email channel has no %(key)s: it is mailed through "
                    "EMAIL_URL; list its addresses in to"
                )
                % {"label": label, "key": key},
                key,
            )
        elif key not in allowed:
            problems.add(
                lines.key(index, key),
                _("%(label)s: unknown key “%(key)s” for kind %(kind)s; allowed: %(allowed)s")
                % {"label": label, "key": key, "kind": kind.value, "allowed": ", ".join(allowed)},
                key,
            )

    def fault(key: str, message: str) -> None:
        problems.add(
            lines.key(index, key),
            _("%(label)s: %(problem)s") % {"label": label, "problem": message},
            key,
        )

    url = table.get("url", "")
    url_env = table.get("url_env", "")
    to: tuple[str, ...] = ()
    language = ""
    if kind == ChannelKind.EMAIL:
        url = url_env = ""
        to = _addresses(index, table, lines, problems, label)
        language = table.get("language", "")
        codes = [code for code, _name in settings.LANGUAGES]
        if language not in ("", *codes):
            fault("language", _("language must be one of %(codes)s") % {"codes": ", ".join(codes)})
    elif bool(url) == bool(url_env):
        problems.add(
            header, _("%(label)s needs url or url_env (one of them)") % {"label": label}, "url"
        )
    if url:
        problem = _url_problem(url, kind)
        if problem:
            fault("url", problem)
    if url_env:
        problem = _env_problem("url_env", url_env)
        if problem:
            fault("url_env", problem)
    secret_env = table.get("secret_env", "")
    if kind == ChannelKind.WEBHOOK:
        if not secret_env:
            problems.add(
                header,
                _("%(label)s needs secret_env, the variable holding its whsec_… signing secret")
                % {"label": label},
                "secret_env",
            )
        else:
            problem = _env_problem("secret_env", secret_env)
            if problem:
                fault("secret_env", problem)
    events = table.get("events", ["*"])
    if not isinstance(events, list) or not events or not all(isinstance(e, str) for e in events):
        fault("events", _('events must be a list of event types, or ["*"] for all'))
    else:
        unknown = [e for e in events if e != "*" and e not in EVENT_TYPES]
        if unknown:
            problems.add(
                lines.text_in(index, "events", unknown[0]),
                _("%(label)s: “%(event)s” is not an event type; known: %(known)s")
                % {"label": label, "event": unknown[0][:60], "known": ", ".join(EVENT_TYPES)},
                "events",
            )
    releases = table.get("releases", "*")
    if (
        not isinstance(releases, str)
        or not releases.strip()
        or len(releases) > 100
        or "\n" in releases
    ):
        fault("releases", _('releases must be a version glob such as "v2.*", or "*" for all'))
    if len(problems) > faults:
        return None
    return ChannelSpec(
        name=name,
        kind=kind.value,
        url=url,
        url_env=url_env,
        secret_env=secret_env,
        events=tuple(dict.fromkeys(events)),
        releases=releases,
        to=to,
        language=language,
    )


def _addresses(
    index: int, table: dict[str, Any], lines: Lines, problems: Problems, label: str
) -> tuple[str, ...]:
    """An e-mail channel's `to`: 1 to MAX_ADDRESSES valid addresses, each once."""
    to = table.get("to")
    if (
        not isinstance(to, list)
        or not to
        or len(to) > MAX_ADDRESSES
        or not all(isinstance(address, str) for address in to)
    ):
        problems.add(
            lines.key(index, "to") if "to" in table else lines.header(index),
            _(
                "%(label)s needs to, a list of 1 to %(most)d e-mail addresses, such as "
                '["ops@example.com"]'
            )
            % {"label": label, "most": MAX_ADDRESSES},
            "to",
        )
        return ()
    seen: set[str] = set()
    for address in to:
        try:
            if len(address) > ADDRESS_MAX:
                raise ValidationError("too long")
            validate_email(address)
        except ValidationError:
            problems.add(
                lines.text_in(index, "to", address),
                _(
                    "%(label)s: “%(address)s” is not an e-mail address (write only the "
                    "address, such as ops@example.com)"
                )
                % {"label": label, "address": address[:80]},
                "to",
            )
            continue
        if address.lower() in seen:
            problems.add(
                lines.text_in(index, "to", address),
                _("%(label)s: %(address)s is listed twice") % {"label": label, "address": address},
                "to",
            )
        seen.add(address.lower())
    return tuple(to)


def _inside_the_network(host: str) -> bool:
    """Whether the host is written as this machine or an address that is not public.
    A name that resolves to one is caught only when a delivery resolves it."""
    if is_loopback(host):
        return True
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return not address.is_global or address.is_multicast


def _url_problem(url: Any, kind: ChannelKind) -> str:
    parts = web_url(url)
    if parts is None:
        return url_character_problem("url", url) or _("url must be an https:// URL")
    host = parts.host
    if parts.scheme == "http" and not is_loopback(host):
        return _("url must be https://; http:// only to this machine (a stand-in)")
    if not settings.NOTIFY_ALLOW_PRIVATE and _inside_the_network(host):
        # Every delivery to it would be refused (notifications.delivery.guard): a channel
        # saved so would look ready and never be told anything.
        return _(
            "url points to this machine or a private network (%(host)s), which "
            "notifications reach only with NOTIFY_ALLOW_PRIVATE=1"
        ) % {"host": host}
    if parts.has_login:
        return _("url must not hold credentials (user:password@); name a variable instead")
    if is_legacy_connector(url):
        return _("url is %(hint)s") % {"hint": _(LEGACY_HINT)}
    if kind == ChannelKind.SLACK and host in _SLACK_HOSTS:
        return _(
            "a Slack webhook URL is its own secret: keep it in an environment variable "
            "and name that with url_env"
        )
    if len(url) > URL_MAX:
        return _("url is longer than %(most)d characters") % {"most": URL_MAX}
    return ""


def _env_problem(key: str, value: Any) -> str:
    if not is_variable_name(value):
        return _("%(key)s must name an environment variable such as OPS_WEBHOOK_SECRET") % {
            "key": key
        }
    if is_app_variable(value):
        return _(
            "%(key)s must not name %(variable)s, which deploycheck reads for itself; name a "
            "variable that holds only this channel's secret"
        ) % {"key": key, "variable": value}
    if len(value) > 100:
        return _("%(key)s is longer than 100 characters") % {"key": key}
    return ""


def parse_one(table: Mapping[str, Any]) -> ChannelSpec | list[Fault]:
    """One channel as a form gives it: the table a `[[channel]]` of a file would hold,
    judged by the code that judges the file, every fault worded the same."""
    problems = Problems("")
    spec = _parse_channel(0, dict(table), Lines("", "channel"), problems, {})
    if spec is None or problems:
        return problems.faults()
    return spec


def load(path: str | Path) -> LoadSummary:
    """Make the channels what the file says, all or nothing."""
    specs = read(path)
    return _declare(specs, whole_file=True)


def seen_token(channel: Channel) -> str:
    """What a form remembers of the channel it shows, to tell whether it changed since:
    every save of a declaration moves `loaded_at`, and a retirement sets `retired_at`."""
    retired = channel.retired_at.isoformat() if channel.retired_at else "active"
    return f"{channel.loaded_at.isoformat()} {retired}"


def save(spec: ChannelSpec, *, new: bool, seen: str | None = None) -> LoadSummary:
    """Declare one channel (parse_one's) as a file declaring it would, leaving the others
    be; in one transaction. `new`: the name must not be an active channel's (a retired
    one comes back). `seen`: seen_token of the channel as the person saw it; a change
    since raises StaleEdit. NotificationsFileError lists what only the stored channels
    can show: a name taken, MAX_CHANNELS reached."""
    return _declare([spec], whole_file=False, new=new, seen=seen)


@transaction.atomic
def retire(channel: Channel) -> bool:
    """Retire one channel as a file that stops declaring it does: its deliveries stay as
    history. False when it was retired already."""
    return bool(
        Channel.objects.filter(pk=channel.pk, retired_at__isnull=True).update(
            retired_at=timezone.now()
        )
    )


def channels_file(channels: Sequence[Channel]) -> str:
    """The channels as a notifications file that load_notifications loads back to them:
    names of variables, never their values."""
    head = (
        "# deploycheck notifications file: where events go. Secrets are not here: url_env\n"
        "# and secret_env name the environment variables that hold them.\n"
        "#\n"
        "#   python manage.py load_notifications notifications.toml\n"
    )
    blocks = []
    for channel in channels:
        lines = ["[[channel]]"]
        if channel.disabled_at is not None:
            # Loaded back with the same URL it stays off, as loading the file keeps it.
            reason = " ".join(channel.disabled_reason.split())
            lines.append(f"# off since {channel.disabled_at.isoformat()}: {reason}")
        values: dict[str, Any] = {
            "name": channel.name,
            "kind": channel.kind,
            "url": channel.url,
            "url_env": channel.url_env,
            "secret_env": channel.secret_env,
            "to": list(channel.addresses),
            "language": channel.language,
            "events": list(channel.events),
            "releases": channel.releases,
        }
        lines += [
            f"{toml_key(key)} = {toml_value(value)}"
            for key, value in values.items()
            if value not in ("", [])
        ]
        blocks.append("\n".join(lines) + "\n")
    return "\n".join([head, *blocks])


@transaction.atomic
def _declare(
    specs: Sequence[ChannelSpec], *, whole_file: bool, new: bool = False, seen: str | None = None
) -> LoadSummary:
    """What `load` and `save` share. A whole file retires the channels it lacks; one
    channel from a form leaves the others be."""
    now = timezone.now()
    existing = {channel.name: channel for channel in Channel.objects.select_for_update()}
    if not whole_file:
        _refuse_one(specs[0], existing, new=new, seen=seen)
    summary = LoadSummary(loaded=[spec.name for spec in specs])
    for spec in specs:
        values = {
            "kind": spec.kind,
            "url": spec.url,
            "url_env": spec.url_env,
            "secret_env": spec.secret_env,
            "events": list(spec.events),
            "releases": spec.releases,
            "addresses": list(spec.to),
            "language": spec.language,
        }
        channel = existing.get(spec.name)
        if channel is None:
            Channel.objects.create(name=spec.name, loaded_at=now, **values)
            summary.created.append(spec.name)
            continue
        moved = (channel.url, channel.url_env) != (spec.url, spec.url_env)
        changed = (
            moved
            or channel.retired_at is not None
            or any(getattr(channel, key) != value for key, value in values.items())
        )
        if not changed:
            continue
        for key, value in values.items():
            setattr(channel, key, value)
        channel.retired_at = None
        channel.loaded_at = now
        if moved:
            # A channel disabled because its endpoint was gone is enabled by a new one.
            channel.disabled_at, channel.disabled_reason = None, ""
        channel.save()
        summary.updated.append(spec.name)
    declared = {spec.name for spec in specs}
    for name, channel in sorted(existing.items()):
        if whole_file and name not in declared and channel.retired_at is None:
            channel.retired_at = now
            channel.save(update_fields=["retired_at"])
            summary.retired.append(name)
    return summary


def _refuse_one(
    spec: ChannelSpec, existing: Mapping[str, Channel], *, new: bool, seen: str | None
) -> None:
    """What refuses a form's one channel besides the file's rules."""
    channel = existing.get(spec.name)
    if seen is not None and (channel is None or seen_token(channel) != seen):
        raise StaleEdit(spec.name)
    problems = Problems("")
    if new and channel is not None and channel.retired_at is None:
        problems.add(
            None,
            _("channel name “%(name)s” is taken; edit that channel") % {"name": spec.name},
            "name",
        )
    active = sum(1 for other in existing.values() if other.retired_at is None)
    if (channel is None or channel.retired_at is not None) and active >= MAX_CHANNELS:
        problems.add(
            None,
            _("there are %(count)d channels; at most %(most)d")
            % {"count": active, "most": MAX_CHANNELS},
        )
    if problems:
        raise NotificationsFileError(problems.lines(), problems.faults())
