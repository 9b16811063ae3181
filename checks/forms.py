from __future__ import annotations

from typing import Any

from django import forms
from django.core.validators import RegexValidator
from django.utils.translation import gettext_lazy as _

from releases.models import Release, Role

from .models import PipelineToken, validate_version_pattern


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
