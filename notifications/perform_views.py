"""The pages of items the app performs: the confirmation page behind an item's
"Perform…" (what will be sent and to whom, the message to edit, the retrospective's
time), and the "I'm ready" page a support person's link opens, logged in or not.

The item's owner role, the product owner and staff reach the first; anyone else gets
403, an outsider 404. Nothing is sent but by the POST of that page."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from django import forms
from django.contrib import messages
from django.contrib.auth import get_user_model
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import URLPattern, path, reverse
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.views.decorators.http import require_http_methods

from releases import performs, policy, workflow
from releases.access import client_ip, get_release_for_user, person
from releases.actors import Person, who_on
from releases.forms import VisibleText
from releases.forms_window import TimeZoneField, WallClockField, exact, zone_choices
from releases.models import ReleaseItem, Role

from .links import BadToken
from .models import Performance
from .perform import MEETING_MINUTES, MESSAGE_MAX, MeetingTime, audience_of, default_message
from .perform import perform as perform_item
from .performed import read_acknowledge_token


class PerformForm(forms.Form):
    message = forms.CharField(
        label=gettext_lazy("Message"),
        # The workflow refuses a message that says nothing, blank or invisible alike.
        required=False,
        max_length=MESSAGE_MAX,
        widget=forms.Textarea({"rows": 5}),
        validators=[VisibleText(gettext_lazy("The message"))],
    )

    def clean_message(self) -> str:
        message = workflow.trimmed(str(self.cleaned_data["message"]))
        if not message:
            raise forms.ValidationError(_("Write the message to send."))
        return message


class RetrospectiveForm(PerformForm):
    start = WallClockField(label=gettext_lazy("Starts"))
    minutes = forms.IntegerField(
        label=gettext_lazy("Duration in minutes"),
        min_value=MEETING_MINUTES[0],
        max_value=MEETING_MINUTES[1],
        initial=60,
    )
    time_zone = TimeZoneField()

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        name, wall, minutes = (cleaned.get(k) for k in ("time_zone", "start", "minutes"))
        if name is None or not isinstance(wall, datetime) or not isinstance(minutes, int):
            return cleaned
        zone = ZoneInfo(name)
        try:
            start = exact(wall, zone)
        except ValueError as error:
            self.add_error("start", str(error))
            return cleaned
        if start <= timezone.now():
            self.add_error("start", _("Choose a time in the future."))
            return cleaned
        cleaned["meeting"] = MeetingTime(start, start + timedelta(minutes=minutes), zone.key)
        return cleaned


def _performable(request: HttpRequest, version: str, item_id: int) -> ReleaseItem:
    """The item, if this person may perform it: 404 for an outsider or an item that
    performs nothing, 403 for someone on the release whom the rule does not allow."""
    release = get_release_for_user(request, version)
    item = get_object_or_404(release.items.select_related("release"), pk=item_id)
    if performs.parse(item.perform) is None:
        raise Http404(_("This item is not linked to anything the app performs."))
    if not policy.may_perform(who_on(person(request), release), owner_role=item.owner_role):
        raise PermissionDenied(
            _("Only the %(role)s or the Product Owner may perform “%(text)s”.")
            % {"role": Role(item.owner_role).label, "text": item.text}
        )
    return item


@login_required
@require_http_methods(["GET", "POST"])
def perform_page(request: HttpRequest, version: str, item_id: int) -> HttpResponse:
    item = _performable(request, version, item_id)
    perform = performs.parse(item.perform)
    assert perform is not None  # _performable answered 404 otherwise
    form_class = RetrospectiveForm if perform.action == performs.RETROSPECTIVE else PerformForm
    status = 200
    if request.method == "POST":
        form = form_class(request.POST)
        if form.is_valid():
            try:
                perform_item(
                    item,
                    by=person(request).user,
                    message=form.cleaned_data["message"],
                    meeting=form.cleaned_data.get("meeting"),
                    ip=client_ip(request),
                )
            except workflow.WorkflowError as error:
                form.add_error(None, error.message)
                status = 409
            else:
                messages.success(
                    request,
                    _("Sending “%(text)s”; the item is ticked once delivery is confirmed.")
                    % {"text": item.text},
                )
                board = reverse("releases:board", args=[item.release.version])
                return redirect(f"{board}#item-{item.pk}")
        else:
            status = 422
    else:
        initial: dict[str, Any] = {"message": default_message(item)}
        if form_class is RetrospectiveForm:
            initial["time_zone"] = timezone.get_current_timezone_name()
        form = form_class(initial=initial)
    context = {
        "release": item.release,
        "item": item,
        "perform": perform,
        "audience": audience_of(item),
        "form": form,
        "sending": item.performed.get("state") == performs.SENDING,
        "zones": zone_choices() if form_class is RetrospectiveForm else (),
    }
    return render(request, "notifications/perform.html", context, status=status)


@require_http_methods(["GET", "POST"])
def acknowledge_page(request: HttpRequest, token: str) -> HttpResponse:
    """GET shows what is asked, POST says "I'm ready"; the link is the proof of who."""
    try:
        event_id, user_id = read_acknowledge_token(token)
        performance = Performance.objects.select_related("item__release").get(event_id=event_id)
        user = get_user_model().objects.get(pk=user_id, is_active=True)
    except BadToken as error:
        return _acknowledge(request, status=400, error=str(error))
    except (Performance.DoesNotExist, get_user_model().DoesNotExist, ValueError):
        return _acknowledge(request, status=400, error=_("This link is not valid."))
    item = performance.item
    if not policy.may_acknowledge(who_on(Person(user), item.release)):
        # Whoever left the release's support reads nothing of it through an old link.
        return _acknowledge(
            request,
            status=403,
            error=_("Only the release's support people confirm they are ready."),
        )
    context: dict[str, Any] = {
        "item": item,
        "release": item.release,
        "name": user.get_full_name() or user.get_username(),
    }
    already = any(a.get("user") == user.pk for a in item.performed.get("acknowledged", []))
    if request.method == "POST":
        try:
            workflow.acknowledge(item.pk, by=Person(user, client_ip(request)))
        except (workflow.WorkflowError, PermissionDenied) as error:
            return _acknowledge(request, status=403, error=str(error), **context)
        return _acknowledge(request, done=True, **context)
    return _acknowledge(request, done=already, **context)


def _acknowledge(request: HttpRequest, status: int = 200, **context: Any) -> HttpResponse:
    return render(request, "notifications/acknowledge.html", context, status=status)


routes: list[URLPattern] = [
    path(
        "releases/<str:version>/items/<int:item_id>/perform/",
        perform_page,
        name="perform",
    ),
    path("notifications/ready/<str:token>/", acknowledge_page, name="acknowledge"),
]
