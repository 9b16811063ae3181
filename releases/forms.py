"""What the board's forms post. The rules themselves live in releases.workflow; these only
check that a request is well-formed before it reaches them.

The board shows a refused form as one message, in the messages area (and beside the field
the person typed in, if any), so every error names its field: "The note is longer than
5,000 characters (it has 5,312)." rather than Django's "Ensure this value has at most…". The
fields a person types in say their limit; the hidden ones ask for a reload, since only a
stale or forged page gets them wrong.
"""

from __future__ import annotations

from typing import Any

from django import forms
from django.core.exceptions import ValidationError
from django.core.validators import MaxLengthValidator
from django.utils.formats import number_format
from django.utils.translation import gettext_lazy as _

from . import workflow
from .models import Role

ITEM_ACTIONS = ("tick", "untick", "na", "blocked", "note", "evidence", "override")
# The field each item action's form has the person type in; a tick types nothing.
TYPED_FIELDS = {
    "na": "reason",
    "blocked": "reason",
    "override": "reason",
    "note": "note",
    "evidence": "evidence_url",
}
# A refused choice is quoted back, but a forged one can be any length.
QUOTED_VALUE_LENGTH = 40

RELOAD = _("Reload the page and try again.")
# Each takes %(field)s, the field's label ("The note"), filled in by NamedErrorsForm.
MESSAGES: dict[str, Any] = {
    "required": _("%(field)s is missing from the form."),
    "invalid_choice": _("%(field)s “%(value)s” is not one this page offers."),
    "invalid": _("%(field)s is not a number."),
    "min_value": _("%(field)s cannot be below %(limit_value)s."),
    "null_characters_not_allowed": _("%(field)s contains a NUL character, which cannot be stored."),
}
TOO_LONG = _("%(field)s is longer than %(limit)s characters (it has %(length)s).")


class TextLimit(MaxLengthValidator):
    """MaxLengthValidator whose numbers read as the person reads numbers (5,000 or 5.000)."""

    message = TOO_LONG

    def __call__(self, value: Any) -> None:
        length = len(value)
        if length > self.limit_value:
            raise ValidationError(
                self.message,
                code="max_length",
                params={
                    "limit": number_format(self.limit_value, force_grouping=True),
                    "length": number_format(length, force_grouping=True),
                },
            )


class VisibleText:
    """A field's validator refusing invisible bidirectional controls as the workflow
    does (workflow.visible_text), so that the page says so beside the field: `what` is
    how the message names it ("The title")."""

    def __init__(self, what: Any) -> None:
        self.what = what

    def __call__(self, value: Any) -> None:
        try:
            workflow.visible_text(str(value), str(self.what))
        except workflow.WorkflowError as error:
            raise ValidationError(error.message, code="hidden") from None


class TypedText(forms.CharField):
    """A text the person types in (a note, a reason): a refusal of it needs no reload."""


def _text(label: Any, max_length: int, *, typed: bool = True, **kwargs: Any) -> forms.CharField:
    kind = TypedText if typed else forms.CharField
    field = kind(label=label, required=False, error_messages=MESSAGES, **kwargs)
    # TextLimit instead of the MaxLengthValidator that max_length= would add.
    field.max_length = max_length
    field.validators.append(TextLimit(max_length))
    return field


def _choice(label: Any, choices: Any) -> forms.ChoiceField:
    return forms.ChoiceField(label=label, choices=choices, error_messages=MESSAGES)


class NamedErrorsForm(forms.Form):
    """Every error of a field names it: its label goes into the message's parameters."""

    def add_error(self, field: str | None, error: Any) -> None:
        if field is not None and isinstance(error, ValidationError) and field in self.fields:
            for each in error.error_list:
                params = dict(each.params or {})
                value = str(params.get("value", ""))
                if len(value) > QUOTED_VALUE_LENGTH:
                    params["value"] = value[: QUOTED_VALUE_LENGTH - 1] + "…"
                params["field"] = self.fields[field].label
                each.params = params
        super().add_error(field, error)

    def refusal(self) -> str:
        """What is wrong with the form, as one message: each field's errors in turn, and
        the request to reload when a hidden field (not one the person typed) is wrong."""
        problems = [str(message) for errors in self.errors.values() for message in errors]
        hidden = any(not isinstance(self.fields[name], TypedText) for name in self.errors)
        return " ".join([*problems, str(RELOAD)] if hidden else problems)


class ItemActionForm(NamedErrorsForm):
    # A checkbox form posts action twice ("untick", then "tick" when checked); Django
    # reads the last value, which is the one the checkbox meant.
    action = _choice(_("The action"), [(action, action) for action in ITEM_ACTIONS])
    # The item version the form was rendered with: a stale one is a conflict.
    version = forms.IntegerField(label=_("The item version"), min_value=0, error_messages=MESSAGES)
    reason = _text(_("The reason"), 2000)
    note = _text(_("The note"), 5000)
    evidence_url = _text(_("The evidence link"), 1000)

    def typed(self) -> tuple[str, str] | None:
        """The action posted and what was typed in its form's field, exactly as sent,
        valid or not; None for an action whose form has nothing to type (a tick)."""
        action = str(self.data.get("action", ""))
        field = TYPED_FIELDS.get(action)
        return None if field is None else (action, str(self.data.get(field, "")))


class SignOffForm(NamedErrorsForm):
    # Any role: the workflow itself says that only leads sign off.
    role = _choice(_("The role"), Role.choices)
    # Items without a phase heading have the phase "", which is a real phase to sign.
    phase = _text(_("The phase"), 300, typed=False, strip=False)
    action = _choice(_("The action"), [("sign", "sign"), ("withdraw", "withdraw")])


class RevokeForm(NamedErrorsForm):
    reason = _text(_("The reason"), 2000)


class NudgeForm(NamedErrorsForm):
    role = _choice(_("The role"), Role.choices)


class RemindersForm(NamedErrorsForm):
    on = _choice(_("The reminders switch"), [("1", "on"), ("0", "off")])
