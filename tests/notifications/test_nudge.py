"""Nudging a role from the go/no-go panel: who may, what it tells whom, at most once per
role every ten minutes, and how the panel shows it, with and without JavaScript."""

from __future__ import annotations

from datetime import timedelta
from typing import Any
from unittest import mock

import pytest
from django.contrib.messages import get_messages
from django.core.exceptions import PermissionDenied
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from notifications import email as notify_email
from notifications.models import Delivery, EmailDelivery, Event
from releases import workflow
from releases.models import AuditAction, AuditEvent, Release, ReleaseStatus
from releases.timeline import human_line, reader_for
from tests.releases.test_workflow import fingerprint

from .conftest import events_of, make_channel

pytestmark = pytest.mark.django_db


def at(moment: Any) -> Any:
    return mock.patch("django.utils.timezone.now", return_value=moment)


def client_for(user: Any) -> Client:
    client = Client(headers={"Accept-Language": "en"})
    client.force_login(user)
    return client


def nudge_url(release: Release) -> str:
    return reverse("releases:nudge", args=[release.version])


def board_url(release: Release) -> str:
    return reverse("releases:board", args=[release.version])


def addressed(event_type: str) -> list[str]:
    return sorted(
        EmailDelivery.objects.filter(event__type=event_type).values_list("address", flat=True)
    )


def qa_done(release: Release, users: dict[str, Any]) -> None:
    workflow.tick(release.items.get(text="Unit tests pass"), by=users["qa"])
    workflow.sign_off(release, role="qa", phase="Pre", by=users["qa"])


# --- who may ------------------------------------------------------------------------------


@pytest.mark.parametrize("persona", ["qa", "devops", "support", "outsider"])
def test_leads_support_and_outsiders_may_not_nudge(
    persona: str, release: Release, users: dict[str, Any]
) -> None:
    before = fingerprint(release)

    with pytest.raises(PermissionDenied):
        workflow.nudge_role(release, role="backend", by=users[persona])

    assert fingerprint(release) == before
    assert not Event.objects.filter(type="role.nudged").exists()


@pytest.mark.parametrize("persona", ["po", "admin"])
def test_the_product_owner_and_staff_nudge(
    persona: str, release: Release, users: dict[str, Any]
) -> None:
    workflow.nudge_role(release, role="backend", by=users[persona])

    assert len(events_of(release, "role.nudged")) == 1


def test_a_lead_pressing_nudge_gets_403_and_nothing_is_sent(
    release: Release, users: dict[str, Any]
) -> None:
    before = fingerprint(release)

    response = client_for(users["qa"]).post(nudge_url(release), {"role": "backend"})

    assert response.status_code == 403
    assert fingerprint(release) == before
    assert not Event.objects.exists()


def test_a_closed_release_is_not_nudged(release: Release, users: dict[str, Any]) -> None:
    workflow.set_status(release, status=ReleaseStatus.CANCELLED, by=users["po"], reason="dropped")

    with pytest.raises(workflow.WorkflowError, match="accepts no change"):
        workflow.nudge_role(release, role="backend", by=users["po"])


def test_a_role_with_nothing_left_is_not_nudged(release: Release, users: dict[str, Any]) -> None:
    qa_done(release, users)

    with pytest.raises(workflow.WorkflowError, match="nothing left to do"):
        workflow.nudge_role(release, role="qa", by=users["po"])
    assert not Event.objects.filter(type="role.nudged").exists()


def test_an_unknown_role_is_refused_with_a_message(release: Release, users: dict[str, Any]) -> None:
    client = client_for(users["po"])

    response = client.post(nudge_url(release), {"role": "ceo"}, follow=True)

    assert response.status_code == 200
    assert "is not one this page offers" in " ".join(
        str(m) for m in get_messages(response.wsgi_request)
    )
    assert not Event.objects.exists()


# --- what it says, to whom ----------------------------------------------------------------


def test_it_carries_the_roles_open_items_and_missing_sign_off(
    release: Release, users: dict[str, Any]
) -> None:
    workflow.tick(release.items.get(text="TLS certificates installed"), by=users["devops"])

    workflow.nudge_role(release, role="backend", by=users["po"])
    workflow.nudge_role(release, role="devops", by=users["po"])

    backend, devops = (e.data for e in events_of(release, "role.nudged"))
    assert backend["role"] == "backend"
    assert backend["open_items"] == {"count": 1, "first": ["Merge everything"]}
    assert backend["missing_signoff"] is True
    assert backend["actor"] == {"label": "po (PO)", "kind": "person"}
    # DevOps ticked their one required item; the optional one does not count.
    assert devops["open_items"] == {"count": 0, "first": []}
    assert devops["missing_signoff"] is True


def test_it_mails_the_roles_people_only_and_not_whoever_pressed(
    release: Release, users: dict[str, Any]
) -> None:
    workflow.assign(release, role="backend", user=users["outsider"], by=users["admin"])
    workflow.assign(release, role="backend", user=users["po"], by=users["admin"])

    workflow.nudge_role(release, role="backend", by=users["po"])

    assert addressed("role.nudged") == ["backend@example.com", "outsider@example.com"]


def test_channels_that_ask_for_nudges_get_them(release: Release, users: dict[str, Any]) -> None:
    nudges = make_channel("nudges", events=["role.nudged"])
    make_channel("deploys", events=["deploy.started"])

    workflow.nudge_role(release, role="frontend", by=users["admin"])

    assert [d.channel for d in Delivery.objects.all()] == [nudges]


def test_a_nudge_is_on_the_timeline(release: Release, users: dict[str, Any]) -> None:
    workflow.nudge_role(release, role="backend", by=users["po"])

    event = AuditEvent.objects.get(action=AuditAction.ROLE_NUDGED)
    line = human_line(event, reader_for(release))
    assert line.title == "Role nudged"
    assert line.details == ("Backend Lead", "1 open item", "Sign-off missing")


# --- at most once in ten minutes ------------------------------------------------------------


def test_a_second_nudge_within_ten_minutes_is_refused_and_says_when(
    release: Release, users: dict[str, Any]
) -> None:
    first = timezone.now()
    with at(first):
        workflow.nudge_role(release, role="backend", by=users["po"])
    before = fingerprint(release)

    with (
        at(first + timedelta(minutes=9, seconds=59)),
        pytest.raises(workflow.WorkflowError, match="next nudge is allowed from"),
    ):
        workflow.nudge_role(release, role="backend", by=users["admin"])

    assert fingerprint(release) == before
    assert len(events_of(release, "role.nudged")) == 1
    # Another role is its own count.
    with at(first + timedelta(minutes=1)):
        workflow.nudge_role(release, role="qa", by=users["po"])
    with at(first + timedelta(minutes=10)):
        workflow.nudge_role(release, role="backend", by=users["po"])
    assert [e.data["role"] for e in events_of(release, "role.nudged")] == [
        "backend",
        "qa",
        "backend",
    ]


def test_a_second_press_in_the_browser_is_a_message_not_an_error(
    release: Release, users: dict[str, Any]
) -> None:
    client = client_for(users["po"])
    client.post(nudge_url(release), {"role": "backend"})

    response = client.post(nudge_url(release), {"role": "backend"}, follow=True)

    assert response.status_code == 200
    said = [str(m) for m in get_messages(response.wsgi_request)]
    assert any("the next nudge is allowed from" in text for text in said), said
    assert len(events_of(release, "role.nudged")) == 1


def test_htmx_gets_422_and_the_message(release: Release, users: dict[str, Any]) -> None:
    client = client_for(users["po"])
    client.post(nudge_url(release), {"role": "backend"}, headers={"HX-Request": "true"})

    response = client.post(nudge_url(release), {"role": "backend"}, headers={"HX-Request": "true"})

    assert response.status_code == 422
    assert "the next nudge is allowed from" in response.content.decode()


# --- the panel ----------------------------------------------------------------------------


def test_the_panel_offers_a_nudge_only_beside_roles_with_work(
    release: Release, users: dict[str, Any]
) -> None:
    qa_done(release, users)

    page = client_for(users["po"]).get(board_url(release)).content.decode()

    for role in ("devops", "backend", "frontend"):
        assert f'name="role" value="{role}"' in page, role
    assert 'name="role" value="qa"' not in page
    assert 'id="waiting-qa"' not in page
    assert "csrfmiddlewaretoken" in page.split('id="waiting-backend"', 1)[1].split("</li>")[0]


@pytest.mark.parametrize("persona", ["qa", "support"])
def test_leads_and_support_see_who_is_waited_on_without_a_nudge(
    persona: str, release: Release, users: dict[str, Any]
) -> None:
    page = client_for(users[persona]).get(board_url(release)).content.decode()

    assert 'id="waiting-backend"' in page
    assert reverse("releases:nudge", args=[release.version]) not in page


def test_a_nudge_without_javascript_goes_back_to_the_panel_which_says_who_and_when(
    release: Release, users: dict[str, Any]
) -> None:
    client = client_for(users["po"])

    response = client.post(nudge_url(release), {"role": "backend"})

    assert response.status_code == 302
    assert response["Location"].endswith("#gonogo-panel")
    page = client.get(response["Location"]).content.decode()
    assert "Nudged the Backend Lead" in page
    waiting = page.split('id="waiting-backend"', 1)[1].split("</li>")[0]
    assert "nudged by po (PO) on" in waiting
    # What the others see, through their own shared render.
    other = client_for(users["qa"]).get(board_url(release)).content.decode()
    assert "nudged by po (PO) on" in other


def test_htmx_gets_the_panel_back_at_once(release: Release, users: dict[str, Any]) -> None:
    response = client_for(users["po"]).post(
        nudge_url(release), {"role": "backend"}, headers={"HX-Request": "true"}
    )

    assert response.status_code == 200
    html = response.content.decode()
    assert 'id="gonogo-panel"' in html
    assert "nudged by po (PO) on" in html


def test_once_approved_nobody_is_waited_on(approved: Release, users: dict[str, Any]) -> None:
    page = client_for(users["admin"]).get(board_url(approved)).content.decode()

    assert 'id="gonogo-waiting"' not in page


def test_the_mail_names_the_open_items_in_the_readers_language(
    release: Release, users: dict[str, Any]
) -> None:
    workflow.nudge_role(release, role="backend", by=users["po"])
    delivery = EmailDelivery.objects.get(event__type="role.nudged")

    text = notify_email.message(delivery).body

    assert "La puesta en producción espera a tu rol" in text
    assert "Elementos abiertos: 1: “Merge everything”" in text
    assert "Falta el visto bueno: sí" in text


def test_a_nudge_without_its_csrf_token_is_refused(release: Release, users: dict[str, Any]) -> None:
    client = Client(enforce_csrf_checks=True)
    client.force_login(users["po"])

    response = client.post(nudge_url(release), {"role": "backend"})

    assert response.status_code == 403
    assert not Event.objects.exists()
