"""E-mail notifications: who gets which event, in their language, as text and HTML with
RFC 8058 unsubscribe headers; the unsubscribe link and the preferences page; sending
through a real SMTP server on 127.0.0.1, retries, the sweep, and nothing written for a
change that rolled back."""

from __future__ import annotations

import email
import email.policy
import re
from datetime import timedelta
from typing import Any

import pytest
from django.db import transaction
from django.test import Client
from django.utils import timezone

from deploycheck.settings import _email_settings
from notifications import email as notify_email
from notifications.models import DeliveryState, EmailDelivery, EmailSubscription, Event
from notifications.subscriptions import unsubscribe_token
from notifications.wording import TITLES
from releases import workflow
from releases.models import LanguagePreference, Release, ReleaseItem

from .conftest import Sink, free_port

Sent = list[tuple[int, int, float]]


@pytest.fixture(autouse=True)
def short_schedule(settings: Any) -> None:
    settings.NOTIFY_RETRY_SCHEDULE = [5.0, 300.0]
    settings.SITE_URL = "https://deploycheck.example.com"


def addressed(event_type: str) -> list[str]:
    return sorted(
        EmailDelivery.objects.filter(event__type=event_type).values_list("address", flat=True)
    )


def block_unit_tests(release: Release, users: dict[str, Any]) -> None:
    workflow.mark_blocked(
        release.items.get(text="Unit tests pass"), by=users["qa"], reason="staging is down"
    )


def deliver(delivery_id: int, attempt: int) -> Sent:
    sent: Sent = []
    notify_email.deliver(delivery_id, attempt, enqueue=lambda *args: sent.append(args))
    return sent


# --- Who gets what ----------------------------------------------------------------------


def test_a_blocked_item_goes_to_the_other_people_of_its_role_only(
    release: Release, users: dict[str, Any]
) -> None:
    workflow.assign(release, role="qa", user=users["outsider"], by=users["admin"])

    block_unit_tests(release, users)

    assert addressed("item.blocked") == ["outsider@example.com"]


def test_a_rollback_goes_to_everyone_on_the_release_but_who_declared_it(
    deployed: Release, users: dict[str, Any]
) -> None:
    workflow.declare_rollback(deployed, by=users["devops"], reason="errors", severity="minor")

    assert addressed("rollback.declared") == [
        f"{name}@example.com" for name in ("backend", "frontend", "po", "qa", "support")
    ]


def test_the_approval_question_goes_to_the_product_owner_only(ready_release: Release) -> None:
    assert addressed("approval.requested") == ["po@example.com"]


def test_a_reopened_sign_off_goes_to_the_people_of_that_role(
    ready_release: Release, users: dict[str, Any]
) -> None:
    workflow.assign(ready_release, role="devops", user=users["outsider"], by=users["admin"])
    infra = ready_release.items.get(text="TLS certificates installed")

    workflow.set_item_state(infra, by=users["admin"], state="pending")

    assert addressed("signoff.reopened") == ["devops@example.com", "outsider@example.com"]


def test_a_failing_check_goes_to_everyone_holding_the_items_role(
    release: Release, users: dict[str, Any]
) -> None:
    workflow.assign(release, role="devops", user=users["outsider"], by=users["admin"])
    ReleaseItem.objects.filter(release=release, text="TLS certificates installed").update(
        checks=["tls"]
    )
    entry = release.items.get(text="TLS certificates installed")

    workflow.record_check_result(entry, check="tls", passed=False, detail="certificate expired")

    assert addressed("check.failing") == ["devops@example.com", "outsider@example.com"]


def test_a_subscription_decides_and_people_without_an_address_are_skipped(
    deployed: Release, users: dict[str, Any]
) -> None:
    EmailSubscription.objects.create(
        user=users["backend"], events=["deploy.started"], offered=list(TITLES)
    )
    EmailSubscription.objects.create(user=users["frontend"], releases="v2.*")
    EmailSubscription.objects.create(user=users["qa"], unsubscribed_at=timezone.now())
    users["support"].email = ""
    users["support"].save()

    workflow.declare_rollback(deployed, by=users["devops"], reason="errors", severity="minor")

    assert addressed("rollback.declared") == ["po@example.com"]


def test_events_off_by_default_are_not_sent(deployed: Release, users: dict[str, Any]) -> None:
    assert Event.objects.filter(release=deployed, type="deploy.started").exists()
    assert addressed("deploy.started") == []


# --- The message ------------------------------------------------------------------------


def test_each_person_gets_it_in_their_language_as_text_and_html(
    deployed: Release, users: dict[str, Any]
) -> None:
    LanguagePreference.objects.create(user=users["po"], language="es")
    LanguagePreference.objects.create(user=users["qa"], language="en")
    workflow.declare_rollback(deployed, by=users["devops"], reason="errors", severity="minor")

    rollback = EmailDelivery.objects.filter(event__type="rollback.declared")
    po = notify_email.message(rollback.get(address="po@example.com"))
    qa = notify_email.message(rollback.get(address="qa@example.com"))

    assert qa.subject == "[deploycheck] v1.2.3: Rollback declared"
    assert po.subject == "[deploycheck] v1.2.3: Rollback declarado"
    assert "Reason: errors" in qa.body
    assert "Severity: minor: degraded, with a workaround" in qa.body
    assert "Motivo: errors" in po.body
    assert "Gravedad: leve: degradado, con una alternativa" in po.body
    assert "By devops (DEVOPS), " in qa.body and " UTC" in qa.body
    assert "Por devops (DEVOPS), " in po.body
    assert "https://deploycheck.example.com/releases/v1.2.3/" in qa.body
    [(html, mimetype)] = qa.alternatives
    assert mimetype == "text/html"
    assert '<a href="https://deploycheck.example.com/releases/v1.2.3/">Open the release</a>' in (
        html
    )
    assert "Abrir la versión" in po.alternatives[0][0]


def test_it_carries_one_click_unsubscribe_headers(release: Release, users: dict[str, Any]) -> None:
    workflow.assign(release, role="qa", user=users["outsider"], by=users["admin"])
    block_unit_tests(release, users)

    sent = notify_email.message(EmailDelivery.objects.get())

    link = sent.extra_headers["List-Unsubscribe"]
    token = unsubscribe_token(users["outsider"].pk)
    assert link == f"<https://deploycheck.example.com/notifications/unsubscribe/{token}/>"
    assert sent.extra_headers["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert link[1:-1] in sent.body


def test_one_click_is_offered_only_for_an_https_link(
    release: Release, users: dict[str, Any], settings: Any
) -> None:
    settings.SITE_URL = "http://127.0.0.1:8000"
    workflow.assign(release, role="qa", user=users["outsider"], by=users["admin"])
    block_unit_tests(release, users)

    sent = notify_email.message(EmailDelivery.objects.get())

    assert sent.extra_headers["List-Unsubscribe"].startswith("<http://127.0.0.1:8000/")
    assert "List-Unsubscribe-Post" not in sent.extra_headers


# --- Unsubscribing ----------------------------------------------------------------------


def test_unsubscribe_asks_on_get_and_unsubscribes_on_a_one_click_post(
    users: dict[str, Any],
) -> None:
    path = f"/notifications/unsubscribe/{unsubscribe_token(users['qa'].pk)}/"
    client = Client(enforce_csrf_checks=True)

    asked = client.get(path, HTTP_ACCEPT_LANGUAGE="en")
    assert asked.status_code == 200
    assert "Stop e-mail notifications to qa@example.com?" in asked.content.decode()
    assert not EmailSubscription.objects.exists()

    first = client.post(path, {"List-Unsubscribe": "One-Click"}, HTTP_ACCEPT_LANGUAGE="en")
    when = EmailSubscription.objects.get(user=users["qa"]).unsubscribed_at
    again = client.post(path, {"List-Unsubscribe": "One-Click"}, HTTP_ACCEPT_LANGUAGE="en")

    assert first.status_code == again.status_code == 200
    assert "qa@example.com gets no more e-mail notifications" in again.content.decode()
    assert when is not None
    assert EmailSubscription.objects.get(user=users["qa"]).unsubscribed_at == when


@pytest.mark.parametrize("token", ["nonsense", "eyJ1Ijo5OTk5OX0:1abc:forged"])
def test_a_bad_unsubscribe_link_says_so(token: str, users: dict[str, Any]) -> None:
    for method in ("get", "post"):
        answer = getattr(Client(), method)(
            f"/notifications/unsubscribe/{token}/", HTTP_ACCEPT_LANGUAGE="en"
        )
        assert answer.status_code == 400
        assert "This unsubscribe link is not valid." in answer.content.decode()
    assert not EmailSubscription.objects.exists()


def test_an_expired_unsubscribe_link_says_so(
    users: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    token = unsubscribe_token(users["qa"].pk)
    monkeypatch.setattr("notifications.subscriptions.UNSUBSCRIBE_MAX_AGE", timedelta(seconds=-1))

    answer = Client().post(f"/notifications/unsubscribe/{token}/", HTTP_ACCEPT_LANGUAGE="en")

    assert answer.status_code == 400
    assert "This unsubscribe link has expired." in answer.content.decode()


def test_a_person_chooses_what_they_get(users: dict[str, Any]) -> None:
    client = Client()
    client.force_login(users["qa"])

    shown = client.get("/account/notifications/", HTTP_ACCEPT_LANGUAGE="en")
    assert 'href="/account/notifications/"' in client.get("/").content.decode()
    bad = client.post(
        "/account/notifications/",
        {"releases": "v1 ; drop", "events": ["rollback.declared"]},
        HTTP_ACCEPT_LANGUAGE="en",
    )
    unknown = client.post(
        "/account/notifications/", {"releases": "*", "events": ["nope"]}, HTTP_ACCEPT_LANGUAGE="en"
    )
    assert not EmailSubscription.objects.exists()
    saved = client.post(
        "/account/notifications/",
        {"releases": "v2.*", "events": ["rollback.declared", "deploy.started"]},
        HTTP_ACCEPT_LANGUAGE="en",
    )

    assert shown.status_code == 200
    assert 'value="approval.requested" id="id_events_0" checked' in shown.content.decode()
    assert bad.status_code == 422
    assert "wildcards" in bad.content.decode()
    assert unknown.status_code == 422
    assert saved.status_code == 200
    subscription = EmailSubscription.objects.get(user=users["qa"])
    assert (subscription.releases, subscription.events) == (
        "v2.*",
        ["rollback.declared", "deploy.started"],
    )
    assert subscription.offered == list(TITLES)


@pytest.mark.parametrize("pattern", ["[", "v2.[0-4", "v2.]*", "[]", "[!]"])
def test_a_pattern_with_a_bracket_left_open_or_alone_is_refused_as_typed(
    users: dict[str, Any], pattern: str
) -> None:
    client = Client()
    client.force_login(users["qa"])

    answer = client.post(
        "/account/notifications/",
        {"releases": pattern, "events": ["rollback.declared"]},
        HTTP_ACCEPT_LANGUAGE="en",
    )

    assert answer.status_code == 422
    assert answer.context["form"].errors == {
        "releases": ["Close each [ with ], as in v2.[0-4].*: a [ or ] alone matches no version."]
    }
    assert answer.context["form"]["releases"].value() == pattern
    assert not EmailSubscription.objects.exists()


def test_a_pattern_with_a_set_of_characters_is_saved(users: dict[str, Any]) -> None:
    client = Client()
    client.force_login(users["qa"])

    answer = client.post(
        "/account/notifications/", {"releases": "v2.[0-4].*", "events": ["rollback.declared"]}
    )

    assert answer.status_code == 200
    assert EmailSubscription.objects.get().releases == "v2.[0-4].*"


def test_a_default_event_that_came_after_a_choice_is_sent_and_shown_chosen(
    deployed: Release, users: dict[str, Any]
) -> None:
    # Chosen when the page did not offer rollback.declared yet, and again by someone
    # who was offered it and left it off.
    before = [event for event in TITLES if event != "rollback.declared"]
    EmailSubscription.objects.create(user=users["po"], events=["approval.requested"],
                                     offered=before)  # fmt: skip
    EmailSubscription.objects.create(
        user=users["support"], events=["approval.requested"], offered=list(TITLES)
    )

    workflow.declare_rollback(deployed, by=users["devops"], reason="errors", severity="minor")

    told = addressed("rollback.declared")
    assert "po@example.com" in told
    assert "support@example.com" not in told
    client = Client()
    client.force_login(users["po"])
    page = client.get("/account/notifications/", HTTP_ACCEPT_LANGUAGE="en").content.decode()
    assert re.search(r'value="rollback.declared" id="id_events_\d+" checked', page)
    assert not re.search(r'value="deploy.started" id="id_events_\d+" checked', page)


def test_the_preferences_page_needs_a_login() -> None:
    answer = Client().get("/account/notifications/")
    assert answer.status_code == 302
    assert "/accounts/login/" in answer["Location"]


# --- Sending through SMTP ---------------------------------------------------------------


def test_the_task_sends_it_through_smtp_and_records_the_message_id(
    release: Release, users: dict[str, Any], smtp: Sink
) -> None:
    from notifications import sending

    workflow.assign(release, role="qa", user=users["outsider"], by=users["admin"])
    block_unit_tests(release, users)
    pk = EmailDelivery.objects.get().pk

    sending._deliver_email(pk, 1)
    sending._deliver_email(pk, 1)  # the same task again sends nothing

    [envelope] = smtp.received
    assert envelope.rcpt_tos == ["outsider@example.com"]
    received = email.message_from_bytes(envelope.content, policy=email.policy.default)
    assert received["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert [part.get_content_type() for part in received.walk()][1:] == [
        "text/plain",
        "text/html",
    ]
    sent = EmailDelivery.objects.get()
    assert sent.state == DeliveryState.DELIVERED
    assert sent.attempts == 1
    assert sent.message_id == received["Message-ID"]
    assert sent.message_id.endswith("@deploycheck.example.com>")


def test_a_refused_connection_is_retried_with_backoff(
    release: Release, users: dict[str, Any], settings: Any
) -> None:
    for name, value in _email_settings(f"smtp://127.0.0.1:{free_port()}?timeout=2").items():
        setattr(settings, name, value)
    settings.EMAIL_ENABLED = True
    workflow.assign(release, role="qa", user=users["outsider"], by=users["admin"])
    block_unit_tests(release, users)
    pk = EmailDelivery.objects.get().pk

    first = deliver(pk, 1)
    waiting = EmailDelivery.objects.get()
    second = deliver(pk, 2)

    assert len(first) == 1 and first[0][:2] == (pk, 2) and 4.5 <= first[0][2] <= 5.5
    assert waiting.state == DeliveryState.PENDING
    assert "ConnectionRefusedError" in waiting.last_error
    # The next step (300 s) waits for the sweep; the last attempt gives up.
    assert second == []
    assert EmailDelivery.objects.get().state == DeliveryState.PENDING
    assert deliver(pk, 3) == []
    gave_up = EmailDelivery.objects.get()
    assert gave_up.state == DeliveryState.FAILED
    assert "gave up after 3 attempts" in gave_up.last_error


def test_the_sweep_sends_again_what_a_killed_worker_left(
    release: Release, users: dict[str, Any], smtp: Sink, settings: Any
) -> None:
    workflow.assign(release, role="qa", user=users["outsider"], by=users["admin"])
    block_unit_tests(release, users)
    pk = EmailDelivery.objects.get().pk
    # A worker claimed attempt 1 and was killed before it recorded anything.
    EmailDelivery.objects.filter(pk=pk).update(state=DeliveryState.SENDING, attempts=1)
    later = timezone.now() + timedelta(seconds=settings.NOTIFY_ATTEMPT_SECONDS + 1)
    sent: Sent = []

    assert notify_email.sweep(enqueue=lambda *args: sent.append(args)) == 0
    assert notify_email.sweep(enqueue=lambda *args: sent.append(args), now=later) == 1
    assert sent == [(pk, 2, 0.0)]
    assert deliver(pk, 2) == []

    assert len(smtp.received) == 1
    assert EmailDelivery.objects.get().state == DeliveryState.DELIVERED


def test_the_beat_sweep_covers_e_mail(
    release: Release, users: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    from notifications import tasks

    workflow.assign(release, role="qa", user=users["outsider"], by=users["admin"])
    block_unit_tests(release, users)
    EmailDelivery.objects.update(due_at=timezone.now() - timedelta(seconds=1))
    handed: Sent = []
    monkeypatch.setattr(tasks, "enqueue_email", lambda *args: handed.append(args))

    tasks._sweep()

    assert handed == [(EmailDelivery.objects.get().pk, 1, 0.0)]


def test_without_email_url_a_delivery_fails_saying_why(
    release: Release, users: dict[str, Any], settings: Any
) -> None:
    settings.EMAIL_ENABLED = False
    workflow.assign(release, role="qa", user=users["outsider"], by=users["admin"])
    block_unit_tests(release, users)

    assert deliver(EmailDelivery.objects.get().pk, 1) == []

    failed = EmailDelivery.objects.get()
    assert failed.state == DeliveryState.FAILED
    assert failed.last_error == "EMAIL_URL is not set: no mail can be sent"


def test_a_person_who_unsubscribed_after_it_was_written_is_not_mailed(
    release: Release, users: dict[str, Any], smtp: Sink
) -> None:
    workflow.assign(release, role="qa", user=users["outsider"], by=users["admin"])
    block_unit_tests(release, users)
    EmailSubscription.objects.create(user=users["outsider"], unsubscribed_at=timezone.now())

    deliver(EmailDelivery.objects.get().pk, 1)

    assert smtp.received == []
    assert EmailDelivery.objects.get().state == DeliveryState.FAILED


def test_a_change_that_rolls_back_writes_no_e_mail(release: Release, users: dict[str, Any]) -> None:
    workflow.assign(release, role="qa", user=users["outsider"], by=users["admin"])

    with pytest.raises(RuntimeError), transaction.atomic():
        block_unit_tests(release, users)
        assert EmailDelivery.objects.count() == 1
        raise RuntimeError("the rest of the request failed")

    assert not EmailDelivery.objects.exists()
    assert not Event.objects.filter(type="item.blocked").exists()
