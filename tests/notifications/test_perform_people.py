"""Performed items that reach people one by one: support's "I'm ready" link, which ticks
the item when the first support person confirms (never on delivery alone), and the
retrospective's calendar invitation, METHOD:REQUEST with every person as an attendee."""

from __future__ import annotations

import email
import email.policy
import html
import re
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import icalendar
import pytest
from django.test import Client
from django.utils import timezone

from notifications import email as notify_email
from notifications import performed
from notifications.models import EmailDelivery, Event
from notifications.perform import MeetingTime, perform
from notifications.performed import acknowledge_token
from releases import workflow
from releases.models import ActorKind, AuditAction, AuditEvent, ItemState, Release, ReleaseItem

from .test_email import Sink

SUPPORT_ITEM = "Screens reviewed"  # a Frontend item of the small template


@pytest.fixture(autouse=True)
def site(settings: Any) -> None:
    settings.SITE_URL = "https://deploycheck.example.com"
    settings.DEFAULT_FROM_EMAIL = "deploycheck@example.com"


def linked(release: Release, action: str) -> ReleaseItem:
    ReleaseItem.objects.filter(release=release, text=SUPPORT_ITEM).update(perform=action)
    return release.items.select_related("release").get(text=SUPPORT_ITEM)


def send_emails() -> None:
    for pk in EmailDelivery.objects.values_list("pk", flat=True):
        notify_email.deliver(pk, 1, enqueue=lambda *args: None)


def received(sink: Sink) -> list[email.message.EmailMessage]:
    return [
        email.message_from_bytes(envelope.content, policy=email.policy.default)
        for envelope in sink.received
    ]


# --- acknowledge:support -------------------------------------------------------------------


@pytest.fixture
def asked(release: Release, users: dict[str, Any], smtp: Sink) -> ReleaseItem:
    entry = linked(release, "acknowledge:support")
    perform(entry, by=users["frontend"], message="Are you ready?")
    send_emails()
    return entry


def ready_link(sink: Sink) -> str:
    [mail] = received(sink)
    text = mail.get_body(("plain",)).get_content()
    found = re.search(r"https://deploycheck\.example\.com(/notifications/ready/\S+/)", text)
    assert found is not None, text
    return found.group(1)


def test_support_alone_is_asked_and_delivery_alone_does_not_tick(
    asked: ReleaseItem, smtp: Sink
) -> None:
    assert [envelope.rcpt_tos for envelope in smtp.received] == [["support@example.com"]]
    waiting = ReleaseItem.objects.get(pk=asked.pk)
    assert waiting.state == ItemState.PENDING
    assert waiting.performed["state"] == "awaiting"
    assert AuditEvent.objects.filter(action=AuditAction.PERFORM_AWAITING).exists()


def test_i_am_ready_through_the_link_ticks_the_item_with_who_and_when_logged_out(
    asked: ReleaseItem, smtp: Sink
) -> None:
    link = ready_link(smtp)
    client = Client(enforce_csrf_checks=True, HTTP_ACCEPT_LANGUAGE="en")

    shown = client.get(link)
    token = shown.cookies["csrftoken"].value
    confirmed = client.post(link, {"csrfmiddlewaretoken": token})

    assert shown.status_code == 200 and "Screens reviewed" in shown.content.decode()
    assert confirmed.status_code == 200
    assert "your confirmation is recorded" in confirmed.content.decode()
    done = ReleaseItem.objects.get(pk=asked.pk)
    assert done.state == ItemState.DONE
    assert done.changed_by_kind == ActorKind.PERSON
    assert done.changed_by_label == "support (SUPPORT)"
    [entry] = done.performed["acknowledged"]
    assert entry["by"] == "support (SUPPORT)" and entry["at"]
    audit = AuditEvent.objects.get(action=AuditAction.ACKNOWLEDGED)
    assert audit.actor_label == "support (SUPPORT)"
    assert audit.after["state"] == ItemState.DONE


def test_a_later_confirmation_is_recorded_beside_the_first_and_a_repeat_changes_nothing(
    release: Release, users: dict[str, Any], asked: ReleaseItem
) -> None:
    workflow.assign(release, role="support", user=users["outsider"], by=users["admin"])
    event = Event.objects.get(type="support.acknowledge_requested")
    first = f"/notifications/ready/{acknowledge_token(event.pk, users['support'].pk)}/"
    second = f"/notifications/ready/{acknowledge_token(event.pk, users['outsider'].pk)}/"

    Client(HTTP_ACCEPT_LANGUAGE="en").post(first)
    Client(HTTP_ACCEPT_LANGUAGE="en").post(second)
    Client(HTTP_ACCEPT_LANGUAGE="en").post(first)

    item = ReleaseItem.objects.get(pk=asked.pk)
    assert [entry["by"] for entry in item.performed["acknowledged"]] == [
        "support (SUPPORT)",
        "outsider (OUTSIDER)",
    ]
    assert item.changed_by_label == "support (SUPPORT)"
    assert AuditEvent.objects.filter(action=AuditAction.ACKNOWLEDGED).count() == 2


def test_a_bad_or_expired_link_gets_a_clear_400(
    asked: ReleaseItem, smtp: Sink, monkeypatch: pytest.MonkeyPatch
) -> None:
    link = ready_link(smtp)

    tampered = Client(HTTP_ACCEPT_LANGUAGE="en").get(link[:-3] + "xx/")
    monkeypatch.setattr(performed, "ACKNOWLEDGE_MAX_AGE", timedelta(seconds=-1))
    expired = Client(HTTP_ACCEPT_LANGUAGE="en").post(link)

    assert tampered.status_code == 400
    assert "This link is not valid." in tampered.content.decode()
    assert expired.status_code == 400
    assert "This link has expired" in expired.content.decode()
    assert ReleaseItem.objects.get(pk=asked.pk).state == ItemState.PENDING


def test_someone_no_longer_in_support_is_refused_with_403(
    release: Release, users: dict[str, Any], asked: ReleaseItem, smtp: Sink
) -> None:
    link = ready_link(smtp)
    workflow.unassign(release, role="support", user=users["support"], by=users["admin"])

    client = Client(HTTP_ACCEPT_LANGUAGE="en")
    refused = client.post(link)
    opened = client.get(link)

    assert refused.status_code == opened.status_code == 403
    assert ReleaseItem.objects.get(pk=asked.pk).state == ItemState.PENDING
    # The old link shows nothing of the release nor of the person any more.
    page = html.unescape(opened.content.decode())
    assert "Only the release's support people confirm they are ready." in page
    assert 'form method="post"' not in page
    for shown in (release.title, release.version, asked.text):
        assert shown not in page, shown


# --- retrospective ---------------------------------------------------------------------------


def test_the_retrospective_invitation_is_a_calendar_request_to_every_person(
    release: Release, users: dict[str, Any], smtp: Sink
) -> None:
    entry = linked(release, "retrospective")
    madrid = ZoneInfo("Europe/Madrid")
    start = (
        (timezone.now() + timedelta(days=3))
        .astimezone(madrid)
        .replace(hour=16, minute=0, second=0, microsecond=0)
    )
    client = Client(HTTP_ACCEPT_LANGUAGE="en")
    client.force_login(users["po"])

    answer = client.post(
        f"/releases/{release.version}/items/{entry.pk}/perform/",
        {
            "message": "Let us look back.",
            "start": start.strftime("%Y-%m-%dT%H:%M"),
            "minutes": "90",
            "time_zone": "Europe/Madrid",
        },
    )
    assert answer.status_code == 302
    send_emails()

    mails = received(smtp)
    everyone = sorted(
        f"{name}@example.com" for name in ("backend", "devops", "frontend", "po", "qa", "support")
    )
    assert sorted(rcpt for envelope in smtp.received for rcpt in envelope.rcpt_tos) == everyone
    parts = [part for part in mails[0].walk() if part.get_content_type() == "text/calendar"]
    assert parts and parts[0].get_param("method") == "REQUEST"
    calendar = icalendar.Calendar.from_ical(parts[0].get_content())
    assert calendar["METHOD"] == "REQUEST"
    [meeting] = calendar.walk("VEVENT")
    assert meeting["DTSTART"].dt == start
    assert meeting["DTSTART"].params["TZID"] == "Europe/Madrid"
    assert meeting["DTEND"].dt == start + timedelta(minutes=90)
    assert str(meeting["ORGANIZER"]) == "mailto:deploycheck@example.com"
    assert sorted(str(a).removeprefix("mailto:") for a in meeting["ATTENDEE"]) == everyone
    assert str(meeting["UID"]).startswith(f"retrospective-{release.pk}@")
    assert calendar.walk("VTIMEZONE")
    done = ReleaseItem.objects.get(pk=entry.pk)
    assert done.state == ItemState.DONE
    assert sorted(done.performed["recipients"]) == everyone


def test_a_second_invitation_keeps_the_uid_and_raises_the_sequence(
    release: Release, users: dict[str, Any], smtp: Sink, settings: Any
) -> None:
    entry = linked(release, "retrospective")
    start = timezone.now() + timedelta(days=2)
    for hours in (0, 1):
        when = start + timedelta(hours=hours)
        perform(
            entry,
            by=users["po"],
            message="Retro",
            meeting=MeetingTime(when, when + timedelta(hours=1), "UTC"),
        )
        send_emails()

    sequences = [
        event.data["meeting"]["sequence"]
        for event in Event.objects.filter(type="retrospective.invited").order_by("created_at")
    ]
    assert sequences == [0, 1]
    uids = {
        str(icalendar.Calendar.from_ical(part.get_content()).walk("VEVENT")[0]["UID"])
        for mail in received(smtp)
        for part in mail.walk()
        if part.get_content_type() == "text/calendar"
    }
    assert uids == {f"retrospective-{release.pk}@{settings.CALENDAR_UID_DOMAIN}"}


def test_a_retrospective_in_the_past_is_refused_with_the_form(
    release: Release, users: dict[str, Any]
) -> None:
    entry = linked(release, "retrospective")
    client = Client(HTTP_ACCEPT_LANGUAGE="en")
    client.force_login(users["po"])
    past = datetime.now(tz=ZoneInfo("Europe/Madrid")) - timedelta(hours=2)

    answer = client.post(
        f"/releases/{release.version}/items/{entry.pk}/perform/",
        {
            "message": "Retro",
            "start": past.strftime("%Y-%m-%dT%H:%M"),
            "minutes": "60",
            "time_zone": "Europe/Madrid",
        },
    )

    assert answer.status_code == 422
    assert "Choose a time in the future." in answer.content.decode()
    assert not Event.objects.filter(type="retrospective.invited").exists()
