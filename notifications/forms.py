from __future__ import annotations

from typing import TYPE_CHECKING, Any

from django import forms
from django.utils.text import format_lazy
from django.utils.translation import gettext_lazy as _

from checks.config import carries_credential
from checks.forms import FileTableForm

from . import config
from .models import Channel, ChannelKind
from .outbox import EVENT_TYPES
from .wording import TITLES

if TYPE_CHECKING:
    from django_stubs_ext import StrOrPromise

ALL_EVENTS = "*"


def _variable_field(label: StrOrPromise, help_text: StrOrPromise) -> forms.CharField:
    """A field for the name of an environment variable: taken as typed, and neither
    remembered nor spell-checked by the browser."""
    return forms.CharField(
        label=label,
        required=False,
        strip=False,
        help_text=help_text,
        widget=forms.TextInput(attrs={"autocomplete": "off", "spellcheck": "false"}),
    )


class ChannelForm(FileTableForm):
    """One channel. What it holds becomes the `[[channel]]` table a notifications file
    would hold, judged by notifications.config exactly as loading that file would judge
    it; `spec` is the result when the form is valid. No field is required, nor has
    choices, to Django: the file's rules, and messages, decide what is missing or wrong."""

    kind = forms.CharField(
        label=_("Kind"),
        required=False,
        widget=forms.Select(
            choices=[("", _("Choose a kind")), *ChannelKind.choices], attrs={"required": True}
        ),
    )
    url = forms.CharField(
        label=_("URL"),
        required=False,
        strip=False,
        help_text=_(
            "Where events are posted, https:// only (this machine or a private network only "
            "with NOTIFY_ALLOW_PRIVATE=1, and plain http:// only to this machine). Leave it "
            "empty and name a variable below when the URL is itself a secret, as a Slack "
            "webhook's is."
        ),
        widget=forms.URLInput(attrs={"autocomplete": "off"}),
    )
    url_env = _variable_field(
        _("URL variable"),
        _(
            "The NAME of the environment variable holding the URL, such as OPS_SLACK_URL: "
            "never the URL itself. Only the workers read its value."
        ),
    )
    secret_env = _variable_field(
        _("Signing secret variable"),
        _(
            "Standard Webhooks only: the NAME of the environment variable holding its "
            "whsec_… signing secret, such as OPS_WEBHOOK_SECRET."
        ),
    )
    to = forms.CharField(
        label=_("Addresses"),
        required=False,
        help_text=_("E-mail channels only: the addresses it mails, one a line."),
        widget=forms.Textarea(attrs={"rows": 3, "autocomplete": "off", "spellcheck": "false"}),
    )
    language = forms.CharField(
        label=_("Language"),
        required=False,
        help_text=_("E-mail channels only: the language its mail is written in."),
        widget=forms.Select(
            choices=[("", _("The site's language")), ("es", "Español"), ("en", "English")]
        ),
    )
    # A plain field: whatever is posted reaches the file's rules, which name an unknown
    # event type as they would in a file.
    events = forms.Field(
        label=_("Events"),
        required=False,
        widget=forms.CheckboxSelectMultiple(
            choices=[
                (ALL_EVENTS, _("All events, including those added later")),
                *((name, format_lazy("{} ({})", TITLES[name], name)) for name in EVENT_TYPES),
            ]
        ),
    )
    releases = forms.CharField(
        label=_("Releases"),
        required=False,
        strip=False,
        initial="*",
        help_text=_("A version glob: * for every release, v2.* for the v2 ones."),
    )

    def __init__(self, data: Any = None, *, channel: Channel | None = None, **kwargs: Any) -> None:
        super().__init__(data, **kwargs)
        self.channel = channel
        self.spec: config.ChannelSpec | None = None
        if channel is None:
            self.ask_name(
                _(
                    "How the delivery log names it: lower-case letters, digits, dots, "
                    "dashes and underscores."
                )
            )
            self.initial["events"] = [ALL_EVENTS]
        else:
            self.initial.update(
                {
                    "kind": channel.kind,
                    "url": channel.url,
                    "url_env": channel.url_env,
                    "secret_env": channel.secret_env,
                    "to": "\n".join(channel.addresses),
                    "language": channel.language,
                    "events": list(channel.events),
                    "releases": channel.releases,
                    "seen": config.seen_token(channel),
                }
            )
            self.fields["seen"] = forms.CharField(required=False, widget=forms.HiddenInput)

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        name = self.channel.name if self.channel is not None else data.get("name")
        # As a file would hold it: a key left empty is a key not written.
        table: dict[str, Any] = {"name": name} if name else {}
        for key in ("kind", "url", "url_env", "secret_env", "language"):
            if data.get(key):
                table[key] = data[key]
        if addresses := str(data.get("to") or "").split():
            table["to"] = addresses
        events = data.get("events")
        table["events"] = [str(event) for event in events] if isinstance(events, list) else []
        table["releases"] = data.get("releases", "")
        for key, value in table.items():
            if self._typed is not None and key != "events" and carries_credential(value):
                # Refused below, and not sent back: a credential stays out of the page.
                self._typed[key] = ""
        judged = config.parse_one(table)
        if isinstance(judged, config.ChannelSpec):
            self.spec = judged
        else:
            for fault in judged:
                if self._typed is not None and fault.key in ("url_env", "secret_env"):
                    # A value refused where a variable's name belongs may be the secret
                    # itself, in a form no pattern knows (a whsec_… key): not sent back.
                    self._typed[fault.key] = ""
                self.add_error(self.field_of(fault.key), fault.message)
        return data
