"""A person's e-mail notifications: the unsubscribe link every mail carries (no login
needed; RFC 8058's one-click POST too), and the page where they choose what they get."""

from __future__ import annotations

import re
from typing import Any

from django import forms
from django.contrib.auth import get_user_model
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.urls import URLPattern, path
from django.utils.translation import gettext_lazy as _
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_http_methods

from . import perform_views
from .links import BadToken
from .models import EmailSubscription, default_events
from .subscriptions import unsubscribe, user_of_token
from .wording import TITLES

# A glob over release versions: the characters versions use, and * ? [ ].
RELEASES_GLOB = re.compile(r"^[A-Za-z0-9.*?\[\]!_+-]{1,100}$")
# Every [ opens a set that a ] closes, read as fnmatch reads it: a ! first negates the
# set, and a ] first (after the !) is one of its characters, taken greedily (?+) as
# fnmatch takes it, so "[]" and "[!]" stay open. fnmatch takes a [ left open, or a ]
# alone, as that character itself, which no version holds: the pattern would match
# nothing, silently.
SETS_CLOSED = re.compile(r"(?:[^\[\]]|\[!?+\]?+[^\]]*\])*")


@csrf_exempt  # RFC 8058: mail clients POST the link from outside any page of ours
@require_http_methods(["GET", "POST"])
def unsubscribe_view(request: HttpRequest, token: str) -> HttpResponse:
    """GET asks, POST unsubscribes; POSTing again changes nothing."""
    try:
        user_id = user_of_token(token)
        person = get_user_model().objects.get(pk=user_id)
    except BadToken as error:
        return _page(request, status=400, error=str(error))
    except get_user_model().DoesNotExist:
        return _page(request, status=400, error=str(_("This unsubscribe link is not valid.")))
    if request.method == "POST":
        unsubscribe(person.pk)
        return _page(request, done=True, address=person.email)
    return _page(request, address=person.email)


def _page(request: HttpRequest, status: int = 200, **context: Any) -> HttpResponse:
    return render(request, "notifications/unsubscribe.html", context, status=status)


class SubscriptionForm(forms.Form):
    releases = forms.CharField(
        label=_("Releases"),
        max_length=100,
        initial="*",
        help_text=_("A pattern over versions: * for all, v2.* for the 2.x releases."),
    )
    events = forms.MultipleChoiceField(
        label=_("Events"),
        choices=list(TITLES.items()),
        widget=forms.CheckboxSelectMultiple,
        required=False,
    )

    def clean_releases(self) -> str:
        value = str(self.cleaned_data["releases"]).strip()
        if not RELEASES_GLOB.match(value):
            raise forms.ValidationError(
                _("Use letters, digits, . - _ + and the wildcards * ? [ ] only.")
            )
        if not SETS_CLOSED.fullmatch(value):
            raise forms.ValidationError(
                _("Close each [ with ], as in v2.[0-4].*: a [ or ] alone matches no version.")
            )
        return value


@login_required
@require_http_methods(["GET", "POST"])
def preferences_view(request: HttpRequest) -> HttpResponse:
    # login_required let only a person with an account in.
    person_id = int(request.user.pk or 0)
    subscription = EmailSubscription.objects.filter(user_id=person_id).first()
    saved = False
    if request.method == "POST":
        form = SubscriptionForm(request.POST)
        if form.is_valid():
            subscription, _created = EmailSubscription.objects.update_or_create(
                user_id=person_id,
                defaults={
                    "releases": form.cleaned_data["releases"],
                    "events": list(form.cleaned_data["events"]),
                    "offered": list(TITLES),
                    "unsubscribed_at": None,
                },
            )
            saved = True
    else:
        form = SubscriptionForm(
            initial={
                "releases": subscription.releases if subscription else "*",
                "events": [event for event in TITLES if subscription.chosen(event)]
                if subscription
                else default_events(),
            }
        )
    unsubscribed = subscription is not None and subscription.unsubscribed_at is not None
    return render(
        request,
        "notifications/preferences.html",
        {"form": form, "saved": saved, "unsubscribed": unsubscribed},
        status=422 if form.is_bound and not form.is_valid() else 200,
    )


app_name = "notifications"
urlpatterns: list[URLPattern] = [
    *perform_views.routes,
    path("account/notifications/", preferences_view, name="preferences"),
    path("notifications/unsubscribe/<str:token>/", unsubscribe_view, name="unsubscribe"),
]
