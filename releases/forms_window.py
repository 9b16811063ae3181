"""Forms of the maintenance window page. Times are typed as the clock on the wall reads
in the window's zone (what <input type="datetime-local"> sends), and made exact here:
a time the zone skips or repeats at a daylight-saving change is refused with a message,
never guessed."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from django import forms
from django.utils.translation import gettext_lazy as _

from .forms_manage import DATETIME_LOCAL_FORMAT
from .models import validate_year
from .workflow import WorkflowError
from .workflow.window import REASON_MAX, known_zones, refuse_too_long, zone_named

# What browsers send, and what a person may type where the browser has no picker.
ACCEPTED_FORMATS = (DATETIME_LOCAL_FORMAT, "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M")


class WallClockField(forms.CharField):
    """A date and time without a zone; the form gives it the window's."""

    widget = forms.DateTimeInput(attrs={"type": "datetime-local"}, format=DATETIME_LOCAL_FORMAT)

    def to_python(self, value: Any) -> datetime | None:  # type: ignore[override]
        text = super().to_python(value)
        if not text:
            return None
        for shape in ACCEPTED_FORMATS:
            try:
                wall = datetime.strptime(text, shape)
            except ValueError:
                continue
            # Before the zone is given to it, which could carry it past datetime's limits.
            validate_year(wall)
            return wall
        raise forms.ValidationError(
            _("Enter a date and time such as 2026-10-25 01:30."), code="invalid"
        )

    def prepare_value(self, value: Any) -> Any:
        return value.strftime(DATETIME_LOCAL_FORMAT) if isinstance(value, datetime) else value


class TimeZoneField(forms.CharField):
    """An IANA time zone, typed or picked from the page's `time-zones` list; its value
    is the zone's name."""

    widget = forms.TextInput(attrs={"list": "time-zones", "autocomplete": "off"})

    def __init__(self) -> None:
        super().__init__(
            label=_("Time zone"),
            max_length=64,
            help_text=_("An IANA name such as Europe/Madrid or America/New_York."),
        )

    def clean(self, value: Any) -> str:
        name = super().clean(value)
        try:
            return zone_named(name).key
        except WorkflowError as error:
            raise forms.ValidationError(error.message, code="invalid") from None


def exact(wall: datetime, zone: ZoneInfo) -> datetime:
    """The instant `wall` names in `zone`; ValueError with a message when the zone skips
    that time or shows it twice (clocks going forward or back)."""
    first, second = wall.replace(tzinfo=zone, fold=0), wall.replace(tzinfo=zone, fold=1)
    if first.utcoffset() == second.utcoffset():
        return first
    seen = first.astimezone(ZoneInfo("UTC")).astimezone(zone).replace(tzinfo=None)
    if seen != wall:
        raise ValueError(
            _("%(time)s does not exist in %(zone)s: the clocks skip it that night.")
            % {"time": f"{wall:%Y-%m-%d %H:%M}", "zone": zone.key}
        )
    raise ValueError(
        _(
            "%(time)s happens twice in %(zone)s: the clocks go back that night. "
            "Choose a time outside the repeated hour."
        )
        % {"time": f"{wall:%Y-%m-%d %H:%M}", "zone": zone.key}
    )


class WindowForm(forms.Form):
    start = WallClockField(label=_("Start"))
    end = WallClockField(label=_("End"))
    time_zone = TimeZoneField()
    # The window's SEQUENCE as the page showed it, for an edit: one based on an older
    # window is stale (workflow.edit_window).
    based_on = forms.IntegerField(widget=forms.HiddenInput, required=False, min_value=0)

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        name = cleaned.get("time_zone")
        if name is None:
            return cleaned
        zone = ZoneInfo(name)
        for field in ("start", "end"):
            wall = cleaned.get(field)
            if wall is None:
                continue
            try:
                cleaned[field] = exact(wall, zone)
            except ValueError as error:
                self.add_error(field, str(error))
        start, end = cleaned.get("start"), cleaned.get("end")
        if (
            isinstance(start, datetime)
            and isinstance(end, datetime)
            and start.tzinfo
            and end.tzinfo
        ):
            if end <= start:
                self.add_error("end", _("The window must end after it starts."))
            else:
                try:
                    refuse_too_long(start, end)
                except WorkflowError as error:
                    self.add_error("end", error.message)
        return cleaned


class ExtendForm(forms.Form):
    end = WallClockField(label=_("New end"))
    reason = forms.CharField(
        label=_("Why it needs longer"), max_length=REASON_MAX, widget=forms.Textarea({"rows": 2})
    )
    confirmed = forms.BooleanField(required=False, widget=forms.HiddenInput)

    def __init__(self, *args: Any, zone: ZoneInfo, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.zone = zone
        self.fields["end"].help_text = _("In %(zone)s.") % {"zone": zone.key}

    def clean_end(self) -> datetime | None:
        wall = self.cleaned_data.get("end")
        if wall is None:
            return None
        try:
            return exact(wall, self.zone)
        except ValueError as error:
            raise forms.ValidationError(str(error)) from None


class CancelForm(forms.Form):
    reason = forms.CharField(
        label=_("Why it is cancelled"), max_length=REASON_MAX, widget=forms.Textarea({"rows": 2})
    )
    confirmed = forms.BooleanField(required=False, widget=forms.HiddenInput)


class CompleteForm(forms.Form):
    confirmed = forms.BooleanField(required=False, widget=forms.HiddenInput)


def zone_choices() -> list[str]:
    return sorted(known_zones())


def suggested_end(end: datetime, zone: ZoneInfo) -> datetime:
    """What the extend form offers first: an hour past the current end, on the wall."""
    return (end + timedelta(hours=1)).astimezone(zone).replace(tzinfo=None)
