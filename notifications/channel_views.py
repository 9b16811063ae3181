"""The staff pages of the notification channels (`/notifications/channels/`): add, edit,
retire and test channels, download them as a notifications file, and read the delivery
log, where a delivery can be handed out again.

A channel's form is judged by notifications.config as a notifications file is, with the
same messages, and saved as loading a file saves, in one transaction; only the other
channels are left be. A test is sent from here and now, as `manage.py notify_test` sends
it, and its answer shown as it came.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from asgiref.sync import sync_to_async
from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.paginator import EmptyPage, Page, PageNotAnInteger, Paginator
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import URLPattern, path, reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from releases.access import require_manager
from releases.connections import closing_connections

from . import config, sending
from .forms import ALL_EVENTS, ChannelForm
from .models import (
    Attempt,
    AttemptOutcome,
    Channel,
    ChannelKind,
    Delivery,
    DeliveryState,
    EmailDelivery,
)
from .replay import NotReplayed, replay, replay_email
from .trial import Trial, accepted, try_channel
from .wording import TITLES

PAGE_SIZE = 50
FILENAME = "notifications.toml"
# The models' labels are the log lines' words; these are a person's, in their language.
OUTCOMES = {
    AttemptOutcome.DELIVERED: gettext_lazy("delivered"),
    AttemptOutcome.ACCEPTED: gettext_lazy(
        "accepted by the Workflow; posting to the channel is not confirmed"
    ),
    AttemptOutcome.RETRY: gettext_lazy("will retry"),
    AttemptOutcome.FAILED: gettext_lazy("failed"),
}
STATES = {
    DeliveryState.PENDING: gettext_lazy("pending"),
    DeliveryState.SENDING: gettext_lazy("sending"),
    DeliveryState.DELIVERED: gettext_lazy("delivered"),
    DeliveryState.ACCEPTED: gettext_lazy("accepted, not confirmed"),
    DeliveryState.FAILED: gettext_lazy("failed"),
}


def _channel(request: HttpRequest, channel_id: int) -> Channel:
    """A channel, for staff only: others get 403 whether it exists or not."""
    require_manager(request)
    return get_object_or_404(Channel, pk=channel_id)


@dataclass(frozen=True)
class ChannelRow:
    channel: Channel
    kind_label: str
    all_events: bool


def _row(channel: Channel) -> ChannelRow:
    return ChannelRow(
        channel=channel,
        kind_label=str(ChannelKind(channel.kind).label)
        if channel.kind in ChannelKind.values
        else channel.kind,
        all_events=ALL_EVENTS in channel.events,
    )


@login_required
@require_GET
def channels_page(request: HttpRequest) -> HttpResponse:
    require_manager(request)
    channels = list(Channel.objects.order_by("name"))
    context = {
        "rows": [_row(channel) for channel in channels if channel.retired_at is None],
        "retired": [_row(channel) for channel in channels if channel.retired_at is not None],
        "loader": f"manage.py load_notifications {FILENAME}",
    }
    return render(request, "notifications/channels.html", context)


@login_required
@require_http_methods(["GET", "POST"])
def channel_add(request: HttpRequest) -> HttpResponse:
    require_manager(request)
    form = ChannelForm(request.POST if request.method == "POST" else None)
    if request.method == "POST" and form.is_valid() and _save(request, form, new=True):
        return redirect("channels:channels")
    status = 422 if form.is_bound else 200
    return render(
        request, "notifications/channel_form.html", {"form": form, "channel": None}, status=status
    )


@login_required
@require_http_methods(["GET", "POST"])
def channel_edit(request: HttpRequest, id: int) -> HttpResponse:
    channel = _channel(request, id)
    data = request.POST if request.method == "POST" else None
    form = ChannelForm(data, channel=channel)
    if request.method == "POST" and form.is_valid():
        try:
            saved = _save(request, form, new=False)
        except config.StaleEdit:
            # What was typed stays; the next save goes over the change now shown.
            channel.refresh_from_db()
            fresh = request.POST.copy()
            fresh["seen"] = config.seen_token(channel)
            form = ChannelForm(fresh, channel=channel)
            form.is_valid()
            form.add_error(
                None,
                _(
                    "Someone changed this channel after you opened it, so nothing was saved. "
                    "Its current values are on the channels page; save again to replace them "
                    "with what you typed."
                ),
            )
        else:
            if saved:
                return redirect("channels:channels")
    status = 422 if form.is_bound else 200
    return render(
        request,
        "notifications/channel_form.html",
        {"form": form, "channel": channel, "row": _row(channel)},
        status=status,
    )


def _save(request: HttpRequest, form: ChannelForm, *, new: bool) -> bool:
    """Declare the form's channel; its faults go beside their fields and False comes
    back. A stale edit raises config.StaleEdit."""
    spec = form.spec
    assert spec is not None  # the form is valid
    was = Channel.objects.filter(name=spec.name).first()
    seen = form.cleaned_data.get("seen") if not new else None
    try:
        summary = config.save(spec, new=new, seen=seen or None)
    except config.NotificationsFileError as refused:
        form.show_faults(refused.faults)
        return False
    names = {"name": spec.name}
    if was is not None and was.retired_at is not None:
        messages.success(request, _("Channel %(name)s is back.") % names)
    elif summary.created:
        messages.success(request, _("Channel %(name)s added.") % names)
    elif summary.updated:
        now = Channel.objects.get(name=spec.name)
        if was is not None and was.disabled_at is not None and now.disabled_at is None:
            messages.success(request, _("Channel %(name)s saved, and on again.") % names)
        else:
            messages.success(request, _("Channel %(name)s saved.") % names)
    else:
        messages.info(request, _("Nothing changed in channel %(name)s.") % names)
    return True


@login_required
@require_POST
def channel_retire(request: HttpRequest, id: int) -> HttpResponse:
    channel = _channel(request, id)
    names = {"name": channel.name}
    if config.retire(channel):
        messages.success(
            request,
            _(
                "Channel %(name)s retired: it gets no more events, and its deliveries stay "
                "in the log. Add it again to bring it back."
            )
            % names,
        )
    else:
        messages.info(request, _("Channel %(name)s was retired already.") % names)
    return redirect("channels:channels")


@login_required
@require_http_methods(["GET", "POST"])
async def channel_test(request: HttpRequest, id: int) -> HttpResponse:
    """Send a test event now, from this server, and show what the receiver answered.
    Served on the event loop (deploycheck.asgi), and sent from a thread of its own: a
    receiver that takes its time, up to the delivery timeout, holds no page thread.

    A test refused before anything was sent (a URL refused, a variable not set) is
    answered 422, saying why; one sent is answered 200, whatever the receiver said.

    A GET is the result's address opened again (after logging in, from the address
    bar): it sends nothing, and shows the channel's row, where a test is sent from."""
    if request.method == "GET":
        return redirect(reverse("channels:channels") + f"#channel-{id}")
    channel = await sync_to_async(_channel)(request, id)
    user = await request.auser()
    trial = await sync_to_async(_trial_closing, thread_sensitive=False)(
        channel, user.get_username()
    )
    context = {"row": _row(channel), "channel": channel, "trial": trial}
    return await sync_to_async(render)(
        request,
        "notifications/channel_test.html",
        context,
        status=200 if trial.outcome.sent else 422,
    )


@closing_connections
def _trial_closing(channel: Channel, by: str) -> Trial:
    return try_channel(channel, by=by)


@login_required
@require_GET
def channels_download(request: HttpRequest) -> HttpResponse:
    require_manager(request)
    # Retired channels are left out, so that loading the file retires them again.
    channels = list(Channel.objects.filter(retired_at__isnull=True).order_by("name"))
    response = HttpResponse(
        config.channels_file(channels), content_type="application/toml; charset=utf-8"
    )
    response["Content-Disposition"] = f'attachment; filename="{FILENAME}"'
    return response


class AttemptFilterForm(forms.Form):
    outcome = forms.ChoiceField(
        label=gettext_lazy("Outcome"),
        required=False,
        choices=[("", gettext_lazy("Any outcome")), *OUTCOMES.items()],
    )


class EmailFilterForm(forms.Form):
    state = forms.ChoiceField(
        label=gettext_lazy("State"),
        required=False,
        choices=[("", gettext_lazy("Any state")), *STATES.items()],
    )


@dataclass(frozen=True)
class AttemptRow:
    attempt: Attempt
    title: str
    outcome: str
    state: str
    # The delivery's latest attempt: where its state, and a replay, are shown.
    latest: bool
    replayable: bool


def _paged(request: HttpRequest, rows: QuerySet[Any]) -> tuple[Page[Any] | None, str]:
    """The page ?page= asks for, or None and why there is no such page."""
    paginator = Paginator(rows, PAGE_SIZE)
    asked = request.GET.get("page", "1")
    try:
        return paginator.page(asked), ""
    except PageNotAnInteger:
        problem = _("“%(page)s” is not a page number.") % {"page": asked[:20]}
    except EmptyPage:
        problem = _("There is no page %(page)s: the pages go from 1 to %(last)s.") % {
            "page": asked[:20],
            "last": paginator.num_pages,
        }
    return None, problem


def _outcome_shown(attempt: Attempt) -> str:
    if attempt.outcome == AttemptOutcome.ACCEPTED:
        return accepted(ChannelKind(attempt.delivery.channel.kind))
    return str(OUTCOMES[AttemptOutcome(attempt.outcome)])


def _log(request: HttpRequest, channel: Channel | None) -> HttpResponse:
    attempts = Attempt.objects.select_related(
        "delivery__event__release", "delivery__channel"
    ).order_by("-at", "-pk")
    if channel is not None:
        attempts = attempts.filter(delivery__channel=channel)
    form = AttemptFilterForm(request.GET or None)
    if form.is_valid() and form.cleaned_data["outcome"]:
        attempts = attempts.filter(outcome=form.cleaned_data["outcome"])
    page, problem = _paged(request, attempts)
    rows = []
    for attempt in page.object_list if page is not None else []:
        delivery = attempt.delivery
        latest = attempt.number == delivery.attempts
        rows.append(
            AttemptRow(
                attempt=attempt,
                title=str(TITLES.get(delivery.event.type, delivery.event.type)),
                outcome=_outcome_shown(attempt),
                state=str(STATES.get(delivery.state, delivery.state)),
                latest=latest,
                replayable=latest
                and delivery.state != DeliveryState.SENDING
                and delivery.channel.active,
            )
        )
    context = {
        "channel": channel,
        "form": form,
        "page": page,
        "problem": problem,
        "rows": rows,
        "here": request.get_full_path(),
    }
    return render(
        request, "notifications/delivery_log.html", context, status=404 if problem else 200
    )


@login_required
@require_GET
def delivery_log(request: HttpRequest) -> HttpResponse:
    require_manager(request)
    return _log(request, None)


@login_required
@require_GET
def channel_log(request: HttpRequest, id: int) -> HttpResponse:
    return _log(request, _channel(request, id))


@login_required
@require_GET
def email_log(request: HttpRequest) -> HttpResponse:
    require_manager(request)
    emails = EmailDelivery.objects.select_related("event__release").order_by(
        "-event__created_at", "-pk"
    )
    form = EmailFilterForm(request.GET or None)
    if form.is_valid() and form.cleaned_data["state"]:
        emails = emails.filter(state=form.cleaned_data["state"])
    page, problem = _paged(request, emails)
    shown = list(page.object_list) if page is not None else []
    context = {
        "form": form,
        "page": page,
        "problem": problem,
        "rows": [
            (
                email,
                str(TITLES.get(email.event.type, email.event.type)),
                str(STATES.get(email.state, email.state)),
            )
            for email in shown
        ],
        "here": request.get_full_path(),
    }
    return render(request, "notifications/email_log.html", context, status=404 if problem else 200)


def _back(request: HttpRequest, fallback: str) -> HttpResponse:
    """To the log page the replay was asked from, if it is one of ours."""
    wanted = request.POST.get("next", "")
    if url_has_allowed_host_and_scheme(
        wanted, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ) and wanted.startswith("/"):
        return redirect(wanted)
    return redirect(fallback)


def _replay(
    request: HttpRequest, hand_out: Callable[[str], int], done: str, names: dict[str, str]
) -> None:
    """Hand a delivery out again for the person asking and say so with `done`, which
    names the attempt it went as; a refusal is shown instead."""
    try:
        attempt = hand_out(request.user.get_username())
    except NotReplayed as refused:
        messages.error(request, refused.message)
    else:
        messages.success(request, done % {**names, "attempt": attempt})


@login_required
@require_POST
def delivery_replay(request: HttpRequest, id: int) -> HttpResponse:
    require_manager(request)
    delivery = get_object_or_404(Delivery.objects.select_related("channel"), pk=id)
    _replay(
        request,
        lambda by: replay(delivery, by=by, enqueue=sending.enqueue),
        _("Handed out again to %(name)s, as attempt %(attempt)s, with the same event id."),
        {"name": delivery.channel.name},
    )
    return _back(request, reverse("channels:channel-log", args=[delivery.channel_id]))


@login_required
@require_POST
def email_replay(request: HttpRequest, id: int) -> HttpResponse:
    require_manager(request)
    email = get_object_or_404(EmailDelivery, pk=id)
    _replay(
        request,
        lambda by: replay_email(email, by=by, enqueue=sending.enqueue_email),
        _("The e-mail to %(address)s is handed out again, as attempt %(attempt)s."),
        {"address": email.address},
    )
    return _back(request, reverse("channels:emails"))


app_name = "channels"
urlpatterns: list[URLPattern] = [
    path("notifications/channels/", channels_page, name="channels"),
    path("notifications/channels.toml", channels_download, name="download"),
    path("notifications/channels/new/", channel_add, name="add"),
    path("notifications/channels/<int:id>/", channel_edit, name="edit"),
    path("notifications/channels/<int:id>/retire/", channel_retire, name="retire"),
    path("notifications/channels/<int:id>/test/", channel_test, name="test"),
    path("notifications/channels/<int:id>/log/", channel_log, name="channel-log"),
    path("notifications/log/", delivery_log, name="log"),
    path("notifications/emails/", email_log, name="emails"),
    path("notifications/deliveries/<int:id>/replay/", delivery_replay, name="replay"),
    path("notifications/emails/<int:id>/replay/", email_replay, name="email-replay"),
]
