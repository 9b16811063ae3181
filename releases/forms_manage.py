"""Forms of the release management pages: create, people, contacts, audit filters, sharing.

They validate what a person typed and say what is wrong beside the field; the change
itself is left to releases.workflow.
"""

from __future__ import annotations

import re
from datetime import date
from typing import TYPE_CHECKING, Any, cast

from django import forms
from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser
from django.utils.translation import gettext_lazy as _

from .forms import VisibleText
from .models import (
    YEARS,
    ChecklistTemplate,
    Release,
    Role,
    ShareLink,
    validate_version,
    validate_year,
)

# What browsers send from <input type="datetime-local"> and expect back as its value.
DATETIME_LOCAL_FORMAT = "%Y-%m-%dT%H:%M"
# The same shape EmergencyContact.from_cell recognises as a phone number.
PHONE_PATTERN = re.compile(r"^[\d+\-().#x ]+$")
PHONE_MIN_DIGITS = 6


def _datetime_local() -> forms.DateTimeInput:
    return forms.DateTimeInput(attrs={"type": "datetime-local"}, format=DATETIME_LOCAL_FORMAT)


if TYPE_CHECKING:
    from django_stubs_ext import StrOrPromise

    # Generic in django-stubs only: Django's class cannot be subscripted at run time.
    _TemplateChoiceBase = forms.ModelChoiceField[ChecklistTemplate]
    _UserChoiceBase = forms.ModelChoiceField[AbstractBaseUser]
    _ContactRowsBase = forms.BaseFormSet["ContactRowForm"]
else:
    _TemplateChoiceBase = _UserChoiceBase = forms.ModelChoiceField
    _ContactRowsBase = forms.BaseFormSet


class TemplateChoiceField(_TemplateChoiceBase):
    def label_from_instance(self, obj: ChecklistTemplate) -> str:
        if obj.title and obj.title != obj.name:
            return f"{obj.name} — {obj.title}"
        return obj.name


class UserChoiceField(_UserChoiceBase):
    def label_from_instance(self, obj: AbstractBaseUser) -> str:
        full = obj.get_full_name() if hasattr(obj, "get_full_name") else ""
        return f"{full} ({obj.get_username()})" if full else obj.get_username()


class ReleaseCreateForm(forms.Form):
    template = TemplateChoiceField(
        label=_("Checklist template"),
        queryset=ChecklistTemplate.objects.all(),
        empty_label=_("Choose a template…"),
        error_messages={"required": _("Choose the checklist this release starts from.")},
    )
    version = forms.CharField(
        label=_("Version"),
        max_length=Release._meta.get_field("version").max_length,
        validators=[validate_version],
        help_text=_("For example v1.4.0 or v2.0.0-rc.1."),
        widget=forms.TextInput(attrs={"placeholder": "v1.4.0", "autocomplete": "off"}),
        error_messages={"required": _("Give the release a version such as v1.4.0.")},
    )
    title = forms.CharField(
        label=_("Title"),
        max_length=Release._meta.get_field("title").max_length,
        validators=[VisibleText(_("The title"))],
        error_messages={"required": _("Give the release a short title.")},
    )
    window_start = forms.DateTimeField(
        label=_("Target window start"),
        required=False,
        widget=_datetime_local(),
        validators=[validate_year],
    )
    window_end = forms.DateTimeField(
        label=_("Target window end"),
        required=False,
        widget=_datetime_local(),
        validators=[validate_year],
    )
    changelog_url = forms.URLField(
        label=_("Changelog link"),
        required=False,
        assume_scheme="https",
        max_length=Release._meta.get_field("changelog_url").max_length,
        validators=[VisibleText(_("The changelog link"))],
    )
    two_person_rule = forms.BooleanField(
        label=_("Two-person rule"),
        required=False,
        initial=True,
        help_text=_("Whoever signed off as a lead cannot also approve go-live."),
    )

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        start, end = cleaned.get("window_start"), cleaned.get("window_end")
        if start and end and end < start:
            self.add_error("window_end", _("The window cannot end before it starts."))
        return cleaned


class AssignForm(forms.Form):
    role = forms.ChoiceField(label=_("Role"), choices=Role.choices)
    user = UserChoiceField(
        label=_("Person"),
        queryset=get_user_model().objects.filter(is_active=True).order_by("username"),
        empty_label=_("Choose a person…"),
        error_messages={"required": _("Choose who takes the role.")},
    )


class UnassignForm(forms.Form):
    role = forms.ChoiceField(choices=Role.choices, widget=forms.HiddenInput)
    # Any user, active or not: someone who left the company must still be removable.
    user = forms.ModelChoiceField(queryset=get_user_model().objects.all(), widget=forms.HiddenInput)


class PhoneField(forms.CharField):
    """An emergency contact's phone, which may be left out."""

    def __init__(self) -> None:
        super().__init__(
            label=_("Phone"),
            max_length=50,
            required=False,
            widget=forms.TextInput(attrs={"type": "tel", "autocomplete": "off"}),
        )

    def clean(self, value: Any) -> str:
        phone: str = super().clean(value).strip()
        digits = sum(ch.isdigit() for ch in phone)
        if phone and (not PHONE_PATTERN.match(phone) or digits < PHONE_MIN_DIGITS):
            raise forms.ValidationError(
                _("Enter a phone number such as +34 600 000 000."), code="phone"
            )
        return phone


class ContactForm(forms.Form):
    name = forms.CharField(label=_("Name"), max_length=200, validators=[VisibleText(_("The name"))])
    phone = PhoneField()
    email = forms.EmailField(
        label=_("Email"), required=False, validators=[VisibleText(_("The email"))]
    )

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        # Without a way to reach them the contact still counts as a placeholder, which
        # blocks go-live; say so now rather than on the go/no-go panel later.
        if not self.errors and not (cleaned.get("phone") or cleaned.get("email")):
            raise forms.ValidationError(
                _("Give a phone number or an email address."), code="unreachable"
            )
        return cleaned


# Rows the contacts editor takes at once: a release day has a handful of contacts.
CONTACTS_MAX = 50


class ContactRowForm(forms.Form):
    """One row of the contacts editor. A name such as "[Nombre]", or no phone and no
    email, is a placeholder: saved as typed, and flagged, since it blocks go-live."""

    contact_id = forms.IntegerField(required=False, min_value=1, widget=forms.HiddenInput)
    role = forms.CharField(
        label=_("Role"),
        max_length=100,
        error_messages={"required": _("Say which role this contact answers for.")},
    )
    name = forms.CharField(
        label=_("Name"),
        max_length=200,
        error_messages={"required": _("Give a name, or a placeholder such as [Nombre].")},
    )
    phone = PhoneField()
    email = forms.EmailField(label=_("Email"), required=False)


class BaseContactRowFormSet(_ContactRowsBase):
    default_error_messages = {
        "too_many_forms": _("At most %(num)d contacts can be saved at once."),
    }

    def clean(self) -> None:
        super().clean()
        # Django's management form takes any whole number: a negative count would read
        # as no rows at all, and saving that removes every contact.
        if (self.management_form.cleaned_data["TOTAL_FORMS"] or 0) < 0:
            raise forms.ValidationError(
                _("The form is incomplete; reload the page and try again."), code="incomplete"
            )


ContactRowFormSet = forms.formset_factory(
    ContactRowForm,
    formset=BaseContactRowFormSet,
    extra=1,
    can_delete=True,
    max_num=CONTACTS_MAX,
    validate_max=True,
)


class BasedOnForm(forms.Form):
    """What the editor loaded: a save based on something older is stale."""

    based_on = forms.CharField(widget=forms.HiddenInput, max_length=64)


class RollbackPlanForm(BasedOnForm):
    # Far above any plan a team writes, far below the request body limit.
    MAX_LENGTH = 100_000

    markdown = forms.CharField(
        label=_("Rollback plan (Markdown)"),
        max_length=MAX_LENGTH,
        strip=False,
        widget=forms.Textarea(attrs={"rows": 24, "spellcheck": "false", "class": "code-input"}),
        help_text=_(
            "An optional introduction, then the steps as a numbered list (1. 2. 3.), each "
            "with its commands in a code block indented under it. A step belongs to DevOps "
            "unless it ends its first line with an owner, such as "
            "<!-- deploycheck: owner=backend --> (devops, backend, frontend, qa, po)."
        ),
        error_messages={"required": _("Write the plan's steps as a numbered list.")},
    )


# The days an audit filter may name: the years of every other date people type. Nothing
# was audited before 2000, and the bounds keep the filter's arithmetic (the day after
# "to", a time zone's offset) inside Python's years 1-9999: 9999-12-31 as "to" was an
# OverflowError, a 500, on the page and the CSV.
AUDIT_FIRST_DAY = date(YEARS[0], 1, 1)
AUDIT_LAST_DAY = date(YEARS[1], 12, 31)


class AuditDateField(forms.DateField):
    """A day of the audit trail; a bad one is explained by the field's name."""

    def __init__(self, *, label: StrOrPromise) -> None:
        super().__init__(
            label=label,
            required=False,
            widget=forms.DateInput(
                attrs={
                    "type": "date",
                    "min": AUDIT_FIRST_DAY.isoformat(),
                    "max": AUDIT_LAST_DAY.isoformat(),
                }
            ),
        )

    def to_python(self, value: Any) -> date | None:
        try:
            return super().to_python(value)
        except forms.ValidationError as error:
            if error.code != "invalid":
                raise
            raise forms.ValidationError(
                _("“%(field)s” is not a date; write it as YYYY-MM-DD."),
                code="invalid",
                params={"field": self.label},
            ) from None

    def validate(self, value: Any) -> None:
        super().validate(value)
        if value is not None and not AUDIT_FIRST_DAY <= value <= AUDIT_LAST_DAY:
            raise forms.ValidationError(
                _("“%(field)s” must be a day from %(first)s to %(last)s."),
                code="out_of_range",
                params={
                    "field": self.label,
                    "first": AUDIT_FIRST_DAY.isoformat(),
                    "last": AUDIT_LAST_DAY.isoformat(),
                },
            )


class AuditFilterForm(forms.Form):
    action = forms.ChoiceField(label=_("Action"), required=False)
    actor = forms.CharField(label=_("Who"), required=False, max_length=200)
    since = AuditDateField(label=_("From"))
    until = AuditDateField(label=_("To"))

    def __init__(self, *args: Any, actions: list[tuple[str, str]], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        cast(forms.ChoiceField, self.fields["action"]).choices = [
            ("", _("All actions")),
            *actions,
        ]

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        since: date | None = cleaned.get("since")
        until: date | None = cleaned.get("until")
        if since and until and until < since:
            self.add_error("until", _("The range cannot end before it starts."))
        return cleaned


class ShareLinkForm(forms.Form):
    label = forms.CharField(
        label=_("Who is this link for?"),
        max_length=ShareLink._meta.get_field("label").max_length,
        validators=[VisibleText(_("The link's label"))],
        help_text=_("For example “Support team” or “Customer X”, so you know what to revoke."),
        error_messages={"required": _("Say who the link is for.")},
    )
    hides_personal = forms.BooleanField(
        label=_("Hide personal contact details"),
        required=False,
        help_text=_(
            "For a link sent outside the company: emergency contacts and the timeline show "
            "roles only, never names, phone numbers or e-mails."
        ),
    )


class RevokeShareLinkForm(forms.Form):
    link = forms.ModelChoiceField(
        queryset=ShareLink.objects.none(),
        widget=forms.HiddenInput,
        error_messages={"invalid_choice": _("That link is already revoked or does not exist.")},
    )

    def __init__(self, *args: Any, release: Release, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        link = cast("forms.ModelChoiceField[ShareLink]", self.fields["link"])
        link.queryset = release.share_links.active()
