from __future__ import annotations

import re
import tomllib
from collections.abc import Collection, Iterable, MutableMapping, Sequence
from typing import TYPE_CHECKING, Any

from django import forms
from django.core.validators import RegexValidator
from django.utils.text import format_lazy
from django.utils.translation import gettext_lazy as _

from releases.models import Release, ReleaseItem, Role

from . import config
from .export import toml_value
from .kinds.base import OPTION_TYPES, Kind, OptionType
from .models import Check, PipelineToken, validate_version_pattern
from .toml_file import Fault

if TYPE_CHECKING:
    from django_stubs_ext import StrOrPromise


class RunChecksForm(forms.Form):
    """Which checks to run: an item's, a section's (phase and section), or, with
    neither, all of the release's."""

    item = forms.IntegerField(required=False, min_value=1)
    phase = forms.CharField(required=False, max_length=300, strip=False)
    section = forms.CharField(required=False, max_length=300, strip=False)


class PipelineTokenForm(forms.Form):
    role = forms.ChoiceField(
        label=_("Role whose items it may settle"),
        choices=[(r.value, r.label) for r in Role if r != Role.SUPPORT],
    )
    label = forms.CharField(
        label=_("Label"),
        max_length=100,
        help_text=_("Shown in the audit trail as ci:LABEL, e.g. github-actions."),
        validators=[
            RegexValidator(
                r"^[A-Za-z0-9][A-Za-z0-9_.-]*$",
                _("Use letters, digits, dots, dashes and underscores."),
            )
        ],
    )


class ProjectTokenForm(PipelineTokenForm):
    version_pattern = forms.CharField(
        label=_("Releases"),
        max_length=64,
        initial="*",
        help_text=_(
            "Releases whose version matches this pattern: * for every release; v2.* for "
            "v2.0.0, v2.1.0-rc.1 and so on; ? stands for one character, [0-9] for one of a set."
        ),
        validators=[validate_version_pattern],
    )


class RevokePipelineTokenForm(forms.Form):
    token = forms.ModelChoiceField(queryset=PipelineToken.objects.none(), widget=forms.HiddenInput)

    def __init__(self, *args: Any, release: Release | None, **kwargs: Any) -> None:
        """Only the active tokens of this release, or with none the project's, may be
        revoked from its page."""
        super().__init__(*args, **kwargs)
        field = self.fields["token"]
        assert isinstance(field, forms.ModelChoiceField)
        tokens = PipelineToken.objects.active()
        field.queryset = (
            tokens.filter(release=release) if release is not None else tokens.of_project()
        )


BOOLEAN_CHOICES = [
    ("", _("Not set: the kind's default")),
    ("true", _("true")),
    ("false", _("false")),
]
WHOLE_NUMBER = re.compile(r"[+-]?[0-9]+")
HELP: dict[OptionType | None, Any] = {
    OptionType.TEXT: "",
    OptionType.ENV: _(
        "The NAME of the environment variable that holds the credential, such as "
        "OPENAI_API_KEY — never the credential itself. Only the workers read its value."
    ),
    OptionType.URL: _("A URL with its scheme, such as https://api.example.com."),
    OptionType.INT: _("A whole number."),
    OptionType.TEXT_LIST: _("One per line."),
    # Unset and false differ: some kinds default to true.
    OptionType.BOOL: _("Left unset, the kind's default applies."),
    OptionType.ENV_TABLE: _(
        "Header names and the NAMES of the variables holding their values, written as "
        'TOML: { Authorization = "GRAFANA_TOKEN" }.'
    ),
    # An option type this form does not know yet (an option a kind takes without one).
    None: _('Written as a TOML value: "text", 3, ["a", "b"] or { NAME = "VARIABLE" }.'),
}


class ItemChoices(forms.CheckboxSelectMultiple):
    """The release's items; those whose own checklist marker names the check are shown
    ticked and cannot be unticked here (the marker links them, whatever the form says)."""

    def __init__(self, *args: Any, marked: Collection[int] = (), **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.marked = {str(pk) for pk in marked}

    def create_option(self, *args: Any, **kwargs: Any) -> dict[str, Any]:
        option: dict[str, Any] = super().create_option(*args, **kwargs)
        if str(option["value"]) in self.marked:
            option["attrs"] = {**option["attrs"], "checked": True, "disabled": True}
            option["label"] = format_lazy("{} {}", option["label"], _("(named by the checklist)"))
        return option


class FileTableForm(forms.Form):
    """One table of a file (a checks file's `[[check]]`, a notifications file's
    `[[channel]]`), judged by that file's rules: each fault they find is shown beside the
    field of its key."""

    def __init__(self, data: Any = None, **kwargs: Any) -> None:
        # A copy, so that a value refused as a credential can be left out of the page.
        self._typed: MutableMapping[str, Any] | None = data.copy() if data is not None else None
        super().__init__(self._typed, **kwargs)

    def ask_name(self, help_text: StrOrPromise) -> None:
        """A new table's name, first of the fields. No `required` of Django's own: a
        missing name gets the file's message."""
        name = forms.CharField(
            label=_("Name"),
            required=False,
            help_text=help_text,
            widget=forms.TextInput(attrs={"required": True, "autocomplete": "off"}),
        )
        self.fields = {"name": name, **self.fields}

    def field_of(self, key: str | None) -> str | None:
        """The field a fault about the file's key is shown beside."""
        return key if key is not None and key in self.fields else None

    def show_faults(self, faults: Iterable[Fault]) -> None:
        for fault in faults:
            self.add_error(self.field_of(fault.key), fault.message)


class CheckForm(FileTableForm):
    """One check of a kind: a field per option the kind takes, each typed as the option
    is, and the items it verifies. What it holds becomes the `[[check]]` table a checks
    file would hold, judged by checks.config exactly as loading that file would judge it;
    `spec` is the result when the form is valid."""

    def __init__(
        self,
        data: Any = None,
        *,
        kind: Kind,
        items: Sequence[ReleaseItem],
        check: Check | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(data, **kwargs)
        self.kind = kind
        self.check = check
        self.spec: config.CheckSpec | None = None
        self.option_keys = [*sorted(kind.required), *sorted(kind.optional)]
        self._text_of = {entry.pk: entry.text for entry in items}
        # Keys whose value did not even read as its type: their fault is already shown.
        self._unread: set[str] = set()
        stored = check.options if check is not None else {}
        if check is None:
            self.ask_name(
                _(
                    "How the board, the results and a checklist's check= marker name it: "
                    "lower-case letters, digits, dots, dashes and underscores."
                )
            )
        for key in self.option_keys:
            self.fields[key] = _option_field(key, OPTION_TYPES.get(key), key in kind.required)
            if key in stored:
                self.initial[key] = _shown(OPTION_TYPES.get(key), stored[key])
        named = {entry.pk for entry in items if check is not None and check.name in entry.checks}
        marked = named - set(check.linked_item_ids if check is not None else ())
        self.fields["item"] = forms.TypedMultipleChoiceField(
            label=_("Items it verifies"),
            required=False,
            coerce=int,
            choices=_grouped(items),
            widget=ItemChoices(marked=marked),
        )
        if check is not None:
            self.initial["item"] = sorted(named | set(check.linked_item_ids))
            self.fields["seen"] = forms.CharField(required=False, widget=forms.HiddenInput)
            self.initial["seen"] = check.updated_at.isoformat()

    def option_fields(self) -> list[forms.BoundField]:
        return [self[key] for key in self.option_keys]

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        table: dict[str, Any] = {"kind": self.kind.name}
        name = self.check.name if self.check is not None else data.get("name")
        if name:
            table["name"] = name
        for key in self.option_keys:
            value = self._option(key, data.get(key))
            if value is not None:
                table[key] = value
        texts = [self._text_of[pk] for pk in self._in_order(data.get("item") or [])]
        if texts:
            table["item"] = texts
        for key in ("name", *self.option_keys):
            if self._typed is not None and key in table and config.carries_credential(table[key]):
                # Refused below, and not sent back: a credential stays out of the page.
                self._typed[key] = ""
        judged = config.parse_one(table)
        if isinstance(judged, config.CheckSpec):
            self.spec = judged
        else:
            self.show_faults(fault for fault in judged if fault.key not in self._unread)
        return data

    def _in_order(self, chosen: Sequence[int]) -> list[int]:
        # The items the check linked keep their order, so that saving it unchanged
        # changes nothing; newly chosen ones follow in the checklist's order.
        linked = list(self.check.linked_item_ids) if self.check is not None else []
        picked = set(chosen)
        return [
            *(pk for pk in linked if pk in picked),
            *(pk for pk in self._text_of if pk in picked and pk not in linked),
        ]

    def _option(self, key: str, raw: Any) -> Any:
        """The option's value as a checks file would hold it; None when it is not set."""
        option_type = OPTION_TYPES.get(key)
        if option_type is OptionType.BOOL:
            return {"true": True, "false": False}.get(raw or "")
        if not raw:
            return None
        if option_type is OptionType.INT:
            # Anything else goes on as written, for the file's own "whole number" message.
            return _whole_number(raw)
        if option_type is OptionType.TEXT_LIST:
            return self._text_list(key, raw)
        if option_type in (OptionType.TEXT, OptionType.ENV, OptionType.URL):
            return raw
        return self._toml_value(key, raw)

    def _text_list(self, key: str, raw: str) -> str | list[str]:
        texts = [line.strip() for line in raw.splitlines() if line.strip()]
        stored = self.check.options.get(key) if self.check is not None else None
        # A file may give one string for a list; kept so, it is no change.
        return stored if isinstance(stored, str) and texts == [stored] else texts

    def _toml_value(self, key: str, raw: str) -> Any:
        try:
            read = tomllib.loads(f"value = {raw}")
        except (ValueError, RecursionError):
            # ValueError: bad TOML, and also an integer longer than Python converts;
            # RecursionError: nesting deeper than the parser goes.
            read = {}
        if list(read) != ["value"]:
            self._unread.add(key)
            self.add_error(
                key,
                _('%(key)s must be one TOML value, such as "text", 3, ["a"] or { A = "B" }.')
                % {"key": key},
            )
            return None
        return read["value"]


def _whole_number(raw: str) -> int | str:
    if WHOLE_NUMBER.fullmatch(raw):
        try:
            return int(raw)
        except ValueError:  # more digits than Python converts
            pass
    return raw


def _option_field(key: str, option_type: OptionType | None, required: bool) -> forms.Field:
    """A field for one option. None of them is required to Django: the checks file's
    rules, and messages, decide what is missing or wrong."""
    help_text = HELP.get(option_type, HELP[None])
    if required:
        help_text = format_lazy("{} {}", _("Required."), help_text)
    attrs: dict[str, Any] = {"required": True} if required else {}
    if option_type is OptionType.BOOL:
        return forms.ChoiceField(
            label=key, required=False, choices=BOOLEAN_CHOICES, help_text=help_text
        )
    widget: forms.Widget
    if option_type is OptionType.TEXT_LIST:
        widget = forms.Textarea(attrs={**attrs, "rows": 3})
    elif option_type is OptionType.URL:
        widget = forms.URLInput(attrs=attrs)
    elif option_type is OptionType.INT:
        widget = forms.NumberInput(attrs={**attrs, "step": 1})
    elif option_type is OptionType.ENV:
        widget = forms.TextInput(attrs={**attrs, "autocomplete": "off", "spellcheck": "false"})
    else:
        widget = forms.TextInput(attrs=attrs)
    return forms.CharField(label=key, required=False, help_text=help_text, widget=widget)


def _shown(option_type: OptionType | None, value: Any) -> Any:
    """A stored option as its field shows it."""
    if option_type is OptionType.BOOL:
        return "true" if value is True else "false" if value is False else ""
    if option_type is OptionType.TEXT_LIST:
        return value if isinstance(value, str) else "\n".join(str(text) for text in value)
    if option_type in (OptionType.TEXT, OptionType.ENV, OptionType.URL, OptionType.INT):
        return str(value)
    return toml_value(value)


def _grouped(items: Sequence[ReleaseItem]) -> list[tuple[str, list[tuple[int, str]]]]:
    groups: dict[str, list[tuple[int, str]]] = {}
    for entry in items:
        place = " › ".join(part for part in (entry.phase, entry.section) if part)
        groups.setdefault(place, []).append((entry.pk, entry.text))
    return list(groups.items())
