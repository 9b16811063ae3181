"""Incident updates, the status page support follows, share links that hide personal
details, and the timeline read from the audit trail.

The personas are the conftest's: `po` and `devops` post updates, `support` only
follows, `outsider` holds no role, `admin` is staff.
"""

from __future__ import annotations

import re
import secrets
from datetime import timedelta
from typing import Any

import pytest
from django.contrib.auth.models import AnonymousUser
from django.core.exceptions import PermissionDenied
from django.test import Client
from django.urls import reverse
from django.utils import timezone, translation

from releases import workflow
from releases.board import load_snapshot, render_update, viewer_for
from releases.models import (
    ActorKind,
    AuditAction,
    AuditEvent,
    IncidentState,
    IncidentUpdate,
    Release,
    ReleaseStatus,
    Role,
    ShareLink,
)
from releases.timeline import FORMATTERS, Reader, human_line, phase_spans
from tests.conftest import item

QA_ITEM = "Unit tests pass"


def share_link(release: Release, users: dict[str, Any], *, hides: bool = False) -> str:
    token = secrets.token_urlsafe(24)
    ShareLink.objects.create(
        release=release,
        token_hash=ShareLink.hash_token(token),
        label="customer",
        created_by=users["admin"],
        hides_personal=hides,
    )
    return token


def page(client: Client, url: str, **params: str) -> str:
    response = client.get(url, params)
    assert response.status_code == 200, response.status_code
    return response.content.decode()


# --- the service ---------------------------------------------------------------------------


@pytest.mark.parametrize("persona", ["po", "devops"])
def test_it_lets_the_product_owner_and_devops_post_an_update(
    release: Release, users: dict[str, Any], persona: str
) -> None:
    revision = release.revision

    update = workflow.post_update(
        release, state="investigating", message="Logins are slow", by=users[persona]
    )

    assert (update.state, update.message, update.posted_by) == (
        "investigating",
        "Logins are slow",
        users[persona],
    )
    assert update.posted_as == persona
    release.refresh_from_db()
    assert release.revision == revision + 1
    event = release.audit_events.get(action=AuditAction.INCIDENT_UPDATE_POSTED)
    assert (event.target, event.before, event.after, event.override) == (
        "investigating",
        {},
        {"state": "investigating", "message": "Logins are slow"},
        False,
    )


@pytest.mark.parametrize("persona", ["qa", "support", "outsider"])
def test_it_refuses_updates_from_anyone_else(
    release: Release, users: dict[str, Any], persona: str
) -> None:
    with pytest.raises(PermissionDenied):
        workflow.post_update(release, state="identified", message="x", by=users[persona])

    assert not IncidentUpdate.objects.exists()
    assert not release.audit_events.filter(action=AuditAction.INCIDENT_UPDATE_POSTED).exists()


def test_it_audits_a_staff_update_as_an_override_and_keeps_the_state_it_follows(
    release: Release, users: dict[str, Any]
) -> None:
    workflow.post_update(release, state="identified", message="Cache bug", by=users["po"])
    workflow.post_update(release, state="resolved", message="Fixed", by=users["admin"])

    event = release.audit_events.filter(action=AuditAction.INCIDENT_UPDATE_POSTED).first()
    assert event is not None
    assert (event.before, event.after["state"], event.override) == (
        {"state": "identified"},
        "resolved",
        True,
    )


@pytest.mark.parametrize(
    ("state", "message", "refusal"),
    [
        ("panicking", "x", "Unknown incident state panicking."),
        ("resolved", "   ", "Write what is happening"),
        ("resolved", "x" * 501, "longer than 500 characters (it has 501)"),
        ("resolved", "fixed \u202e", "invisible bidirectional control characters (U+202E"),
    ],
)
def test_it_refuses_a_bad_update_and_writes_nothing(
    release: Release, users: dict[str, Any], state: str, message: str, refusal: str
) -> None:
    with pytest.raises(workflow.WorkflowError) as refused:
        workflow.post_update(release, state=state, message=message, by=users["po"])

    assert refusal in refused.value.message
    assert not IncidentUpdate.objects.exists()


def test_it_accepts_a_message_of_exactly_the_limit_and_every_state(
    release: Release, users: dict[str, Any]
) -> None:
    for state in IncidentState.values:
        workflow.post_update(release, state=state, message="y" * 500, by=users["devops"])

    assert IncidentUpdate.objects.count() == len(IncidentState.values)


SENT_AGAIN = (
    "This same update (the same state and message) was posted less than a minute ago and "
    "already leads the status page, so it was not posted again."
)


def test_it_refuses_the_latest_update_sent_again_within_a_minute(
    release: Release, users: dict[str, Any]
) -> None:
    workflow.post_update(release, state="investigating", message="Slow", by=users["po"])

    # Sent twice by a double click, or once by each of two people reading the same news.
    for persona in ("po", "devops"):
        with pytest.raises(workflow.WorkflowError) as refused:
            workflow.post_update(
                release, state="investigating", message=" Slow ", by=users[persona]
            )
        assert refused.value.message == SENT_AGAIN

    assert IncidentUpdate.objects.count() == 1
    assert release.audit_events.filter(action=AuditAction.INCIDENT_UPDATE_POSTED).count() == 1


def test_it_posts_an_update_that_differs_from_the_latest_or_comes_a_minute_later(
    release: Release, users: dict[str, Any]
) -> None:
    workflow.post_update(release, state="investigating", message="Slow", by=users["po"])
    workflow.post_update(release, state="identified", message="Slow", by=users["po"])
    workflow.post_update(release, state="identified", message="Slow logins", by=users["po"])
    # Only the latest counts: going back to an earlier update is news.
    workflow.post_update(release, state="identified", message="Slow", by=users["po"])
    IncidentUpdate.objects.update(posted_at=timezone.now() - timedelta(seconds=61))
    # A minute on, saying again that nothing has changed is news too.
    workflow.post_update(release, state="identified", message="Slow", by=users["po"])

    assert IncidentUpdate.objects.count() == 5


def test_it_refuses_updates_on_a_cancelled_release(release: Release, users: dict[str, Any]) -> None:
    workflow.set_status(release, status=ReleaseStatus.CANCELLED, by=users["po"])

    with pytest.raises(workflow.WorkflowError):
        workflow.post_update(release, state="resolved", message="x", by=users["po"])


# --- one event as a line -------------------------------------------------------------------


def event(action: str, *, target: str = "", before: Any = None, after: Any = None) -> AuditEvent:
    return AuditEvent(
        action=action,
        target=target,
        before=before or {},
        after=after or {},
        actor_label="po (PO)",
        actor_kind=ActorKind.PERSON,
        actor_id=7,
        created_at=timezone.now(),
    )


@pytest.mark.parametrize("action", list(AuditAction))
def test_it_renders_every_audit_action_with_its_label(action: AuditAction) -> None:
    line = human_line(
        event(
            action,
            target="Unit tests pass",
            before={"status": "deployed", "state": "pending"},
            after={"status": "rolled_back", "state": "blocked", "reason": "CI is down"},
        )
    )

    assert line.title == str(action.label)
    assert line.who == "po (PO)"
    shown = " ".join(line.details)
    for raw in ("rolled_back", "deployed →", "pending →"):
        assert raw not in shown
    if action not in FORMATTERS:
        # A new action with no formatter of its own still reads before → after in words.
        assert "Status: Deployed → Rolled back" in line.details


def test_it_shows_an_action_this_version_does_not_know_as_written() -> None:
    line = human_line(event("window.moved", before={"slot": "09:00"}, after={"slot": "10:00"}))

    assert line.title == "window.moved"
    assert line.details == ("slot: 09:00 → 10:00",)


def test_it_names_status_values_by_their_labels_in_the_readers_language() -> None:
    status = event(
        AuditAction.RELEASE_STATUS, before={"status": "deployed"}, after={"status": "rolled_back"}
    )

    assert human_line(status).details == ("Status: Deployed → Rolled back",)
    with translation.override("es"):
        assert human_line(status).details == ("Estado: Desplegada → Revertida",)


def test_it_says_which_item_of_which_role_changed_and_why() -> None:
    blocked = event(
        AuditAction.ITEM_BLOCKED,
        target=QA_ITEM,
        before={"state": "pending", "reason": "", "note": "", "evidence_url": ""},
        after={"state": "blocked", "reason": "CI is down", "note": "", "evidence_url": ""},
    )

    line = human_line(blocked, Reader(owners={QA_ITEM: Role.QA}))

    assert line.details == (
        "“Unit tests pass” (QA Lead)",
        "State: Pending → Blocked",
        "Reason: CI is down",
    )


def test_it_reads_an_incident_update_and_a_sign_off_in_words() -> None:
    update = event(
        AuditAction.INCIDENT_UPDATE_POSTED,
        before={"state": "monitoring"},
        after={"state": "resolved", "message": "All good"},
    )
    signed = event(AuditAction.SIGNOFF_SIGNED, target="qa / Pre", after={"items": 2})

    assert human_line(update).details == ("State: Monitoring → Resolved", "All good")
    assert human_line(signed).details == ("QA Lead · Pre",)


def test_it_names_roles_instead_of_people_when_personal_details_are_hidden() -> None:
    reader = Reader(roles_by_user={7: frozenset({Role.PRODUCT_OWNER})}, hides_personal=True)

    assert human_line(event(AuditAction.RELEASE_APPROVED), reader).who == "Product Owner"


def test_it_never_fails_on_an_event_holding_something_unexpected() -> None:
    odd = event(AuditAction.RELEASE_CREATED, before=["x"], after="plain")

    line = human_line(odd)

    assert line.title == "Release created"


def test_it_adds_up_the_time_in_each_status() -> None:
    start = timezone.now() - timedelta(hours=10)

    def at(hours: float, action: str, after: Any = None) -> AuditEvent:
        made = event(action, after=after)
        made.created_at = start + timedelta(hours=hours)
        return made

    events = [
        at(1, AuditAction.ITEM_DONE, {"state": "done"}),
        at(4, AuditAction.RELEASE_APPROVED),
        at(5, AuditAction.APPROVAL_REVOKED, {"reason": "x"}),
        at(6, AuditAction.RELEASE_APPROVED),
        at(7, AuditAction.RELEASE_STATUS, {"status": "deployed"}),
    ]

    spans = phase_spans(events, created_at=start, now=start + timedelta(hours=9))

    assert [(s.status, s.lasted, s.current) for s in spans] == [
        ("planned", timedelta(hours=1), False),
        ("in_progress", timedelta(hours=4), False),
        ("approved", timedelta(hours=2), False),
        ("deployed", timedelta(hours=2), True),
    ]


# --- the status page -----------------------------------------------------------------------


def status_url(release: Release) -> str:
    return reverse("releases:status", args=[release.version])


def test_it_opens_the_status_page_with_what_is_happening_now(
    as_user: Any, release: Release, users: dict[str, Any]
) -> None:
    workflow.mark_blocked(item(release, QA_ITEM), by=users["qa"], reason="CI is down")
    workflow.post_update(release, state="investigating", message="Looking", by=users["po"])
    workflow.post_update(release, state="identified", message="Found it", by=users["devops"])

    html = page(as_user("support"), status_url(release))

    now = html.index('id="now-panel"')
    assert now < html.index('id="release-status"')
    assert now < html.index("Found it") < html.index('id="contacts-panel"')
    # On a phone the markup order is the reading order: who to call before sign-offs.
    assert html.index('id="contacts-panel"') < html.index('id="signoff-panel"')
    assert "The team is working through the checklist." in html
    stopped = html[now : html.index("</section>", now)]
    assert "Unit tests pass" in stopped and "(QA Lead)" in stopped and "CI is down" in stopped
    assert re.search(r"since .+ UTC \((under a minute|\d+ min)\)", stopped)
    assert "Looking" not in stopped
    # Every update stays listed below, newest first.
    updates = html[html.index('id="updates-panel"') :]
    assert updates.index("Found it") < updates.index("Looking")
    assert "Post an update" not in html


def test_it_offers_the_update_form_only_to_who_may_post(as_user: Any, release: Release) -> None:
    assert "Post an update" in page(as_user("po"), status_url(release))
    assert "Post an update" not in page(as_user("qa"), status_url(release))


def test_it_shows_when_the_deploy_was_recorded(
    as_user: Any, ready_release: Release, users: dict[str, Any]
) -> None:
    workflow.approve(ready_release, by=users["po"])
    workflow.set_status(ready_release, status=ReleaseStatus.DEPLOYED, by=users["devops"])

    html = page(as_user("support"), status_url(ready_release))

    assert "The release is in production." in html
    assert "Deployed at" in html


def test_it_keeps_what_the_product_owner_must_do_from_support_and_share_links(
    as_user: Any, ready_release: Release, users: dict[str, Any]
) -> None:
    workflow.approve(ready_release, by=users["po"])
    workflow.revoke_approval(ready_release, by=users["po"], reason="Bad data")
    needed = "It needs a new approval before go-live."
    token = share_link(ready_release, users)

    assert needed in page(as_user("po"), status_url(ready_release))
    assert needed not in page(as_user("support"), status_url(ready_release))
    shared = page(as_user(None), reverse("releases:shared-status", args=[token]))
    assert "Go-live approval was revoked." in shared
    assert needed not in shared


def test_it_shows_a_hiding_link_the_contacts_by_role_only_also_live(
    as_user: Any, release: Release, users: dict[str, Any]
) -> None:
    hidden = share_link(release, users, hides=True)
    open_link = share_link(release, users)
    workflow.post_update(release, state="investigating", message="Slow", by=users["po"])

    html = page(as_user(None), reverse("releases:shared-status", args=[hidden]))

    contacts = html[html.index('id="contacts-panel"') :]
    assert "DevOps Lead" in contacts
    for personal in ("tel:", "mailto:", "dana@example.com", "Dana Ops", "600 000 001"):
        assert personal not in html
    # The update names its author's role, not the person.
    assert "Product Owner" in html and "po (PO)" not in html
    assert "tel:+34600000001" in page(
        as_user(None), reverse("releases:shared-status", args=[open_link])
    )

    link = ShareLink.objects.get(hides_personal=True)
    viewer = viewer_for(
        AnonymousUser(),
        release,
        read_only=True,
        language="en",
        hides_personal=link.hides_personal,
    )
    workflow.update_contact(
        release.contacts.get(),
        by=users["admin"],
        name="Dana Ops",
        phone="+34 600 000 002",
        email="dana@example.com",
    )
    _revision, live = render_update(load_snapshot(release.pk), viewer, "status", 0)
    assert 'id="contacts-panel"' in live and 'id="now-panel"' in live
    for personal in ("tel:", "mailto:", "Dana Ops", "600 000 002"):
        assert personal not in live


def test_it_creates_a_share_link_that_hides_personal_details(
    as_user: Any, release: Release
) -> None:
    client = as_user("admin")
    share = reverse("releases:share", args=[release.version])

    form = page(client, share)
    response = client.post(share, {"action": "create", "label": "Customer", "hides_personal": "on"})

    assert 'name="hides_personal"' in form
    assert response.status_code == 302
    link = ShareLink.objects.get()
    assert link.hides_personal is True
    assert release.audit_events.get(action="share_link.created").after == {"hides_personal": True}
    assert "roles only" in page(client, share)


# --- the updates page ----------------------------------------------------------------------


def updates_url(release: Release) -> str:
    return reverse("releases:updates", args=[release.version])


def test_it_previews_an_update_then_publishes_it_on_confirmation(
    as_user: Any, release: Release
) -> None:
    client = as_user("devops")
    fields = {"state": "monitoring", "message": "Fix deployed, watching"}

    preview = client.post(updates_url(release), fields)

    assert preview.status_code == 200
    assert "Publish this update?" in preview.content.decode()
    assert not IncidentUpdate.objects.exists()
    published = client.post(updates_url(release), {**fields, "confirmed": "1"})
    assert published.status_code == 302
    assert published["Location"] == status_url(release)
    assert IncidentUpdate.objects.get().message == "Fix deployed, watching"


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"state": "resolved", "message": ""}, "Write what is happening for the people outside"),
        ({"state": "nope", "message": "x"}, "State “nope” is not one this page offers."),
        ({"state": "resolved", "message": "x" * 501}, "longer than 500 characters"),
        ({"state": "resolved", "message": "a\u2066b"}, "invisible bidirectional control"),
        (
            {"state": "resolved", "message": "a\u2066b", "confirmed": "1"},
            "invisible bidirectional control characters",
        ),
    ],
)
def test_it_explains_a_refused_update_and_keeps_what_was_typed(
    as_user: Any, release: Release, fields: dict[str, str], message: str
) -> None:
    response = as_user("po").post(updates_url(release), fields)

    assert response.status_code == 422
    assert message in response.content.decode()
    assert not IncidentUpdate.objects.exists()


@pytest.mark.parametrize("language", ["en", "es"])
def test_it_refuses_an_update_published_twice_and_keeps_what_was_typed(
    as_user: Any, release: Release, language: str
) -> None:
    client = as_user("po", language)
    fields = {"state": "identified", "message": "Checkout <fails> for cards", "confirmed": "1"}
    assert client.post(updates_url(release), fields).status_code == 302

    again = client.post(updates_url(release), fields)

    assert again.status_code == 422
    page = again.content.decode()
    said = {
        "en": SENT_AGAIN,
        "es": "Esta misma actualización (el mismo estado y mensaje) se publicó hace menos de "
        "un minuto y ya encabeza la página de estado, así que no se ha vuelto a publicar.",
    }
    assert said[language] in page
    assert ">\nCheckout &lt;fails&gt; for cards</textarea>" in page
    assert '<option value="identified" selected>' in page
    assert IncidentUpdate.objects.count() == 1


@pytest.mark.parametrize(("persona", "status"), [("qa", 403), ("support", 403), ("outsider", 404)])
def test_it_refuses_the_updates_page_to_others(
    as_user: Any, release: Release, persona: str, status: int
) -> None:
    client = as_user(persona)

    assert client.get(updates_url(release)).status_code == status
    assert (
        client.post(
            updates_url(release), {"state": "resolved", "message": "x", "confirmed": "1"}
        ).status_code
        == status
    )
    assert not IncidentUpdate.objects.exists()


# --- the timeline --------------------------------------------------------------------------


def timeline_url(release: Release) -> str:
    return reverse("releases:timeline", args=[release.version])


@pytest.mark.parametrize("persona", ["qa", "support", "po", "admin"])
def test_it_shows_the_timeline_to_everyone_on_the_release(
    as_user: Any, release: Release, users: dict[str, Any], persona: str
) -> None:
    workflow.mark_blocked(item(release, QA_ITEM), by=users["qa"], reason="CI is down")

    html = page(as_user(persona), timeline_url(release))

    assert "Item blocked" in html
    assert "State: Pending → Blocked" in html
    assert "“Unit tests pass” (QA Lead)" in html
    assert "Time in each status" in html


def test_it_refuses_the_timeline_to_outsiders_and_sends_anonymous_people_to_log_in(
    as_user: Any, release: Release
) -> None:
    assert as_user("outsider").get(timeline_url(release)).status_code == 404
    assert as_user(None).get(timeline_url(release)).status_code == 302


def test_it_shows_the_timeline_in_the_readers_language(
    release: Release, users: dict[str, Any]
) -> None:
    workflow.mark_blocked(item(release, QA_ITEM), by=users["qa"], reason="CI is down")
    client = Client(headers={"Accept-Language": "es"})
    client.force_login(users["qa"])

    html = client.get(timeline_url(release)).content.decode()

    assert "Estado: Pendiente → Bloqueado" in html


def test_it_opens_the_timeline_through_a_share_link_until_it_is_revoked(
    as_user: Any, release: Release, users: dict[str, Any]
) -> None:
    token = share_link(release, users)
    url = reverse("releases:shared-timeline", args=[token])
    workflow.post_update(release, state="investigating", message="Slow", by=users["po"])

    response = as_user(None).get(url)

    html = response.content.decode()
    assert response.status_code == 200
    assert response["Referrer-Policy"] == "no-referrer"
    assert "Incident update posted" in html and "Slow" in html
    # How the team is organised is not the link's business.
    assert "Person assigned" not in html
    ShareLink.objects.update(revoked_at=timezone.now())
    assert as_user(None).get(url).status_code == 404
    assert as_user(None).get(reverse("releases:shared-timeline", args=["nope"])).status_code == 404


def test_it_names_roles_not_people_on_a_hiding_links_timeline(
    as_user: Any, release: Release, users: dict[str, Any]
) -> None:
    token = share_link(release, users, hides=True)
    workflow.mark_blocked(item(release, QA_ITEM), by=users["qa"], reason="CI is down")
    workflow.update_contact(
        release.contacts.get(), by=users["admin"], name="Dana", phone="+34 600 000 009", email=""
    )

    html = page(as_user(None), reverse("releases:shared-timeline", args=[token]))

    assert "QA Lead" in html
    for personal in ("qa (QA)", ">qa<", "600 000 009", "admin"):
        assert personal not in html


def test_it_filters_the_timeline_by_role(
    as_user: Any, release: Release, users: dict[str, Any]
) -> None:
    workflow.mark_blocked(item(release, QA_ITEM), by=users["qa"], reason="CI is down")
    workflow.tick(item(release, "Merge everything"), by=users["backend"])
    client = as_user("qa")

    qa = page(client, timeline_url(release), role="qa")
    backend = page(client, timeline_url(release), role="backend")

    assert "Unit tests pass" in qa and "Merge everything" not in qa
    assert "Merge everything" in backend and "Unit tests pass" not in backend


@pytest.mark.parametrize("value", ["wizard", "x" * 300, "QA"])
def test_it_explains_a_bad_role_filter_and_shows_everything(
    as_user: Any, release: Release, value: str
) -> None:
    response = as_user("qa").get(timeline_url(release), {"role": value})

    html = response.content.decode()
    assert response.status_code == 400
    assert "is not a role here; choose one from the list." in html
    assert "Release created" in html


def test_it_shows_phase_durations_and_approval_to_deploy(
    as_user: Any, ready_release: Release, users: dict[str, Any]
) -> None:
    workflow.approve(ready_release, by=users["po"])
    workflow.set_status(ready_release, status=ReleaseStatus.DEPLOYED, by=users["devops"])

    html = page(as_user("support"), timeline_url(ready_release))

    durations = html[html.index("Time in each status") : html.index("What happened")]
    for label in ("Planned", "In progress", "Go-live approved", "Deployed"):
        assert label in durations
    assert "(now)" in durations
    assert "From approval to deploy" in durations
    assert "Status: Go-live approved → Deployed" in html


def test_it_names_no_one_on_a_hiding_links_status_page(
    as_user: Any, ready_release: Release, users: dict[str, Any]
) -> None:
    workflow.approve(ready_release, by=users["po"])
    workflow.revoke_approval(ready_release, by=users["po"], reason="Bad data")
    hidden = share_link(ready_release, users, hides=True)
    open_link = share_link(ready_release, users)

    html = page(as_user(None), reverse("releases:shared-status", args=[hidden]))
    shown = page(as_user(None), reverse("releases:shared-status", args=[open_link]))

    assert "it had been approved by PO" in shown and "by QA, " in shown
    for personal in ("approved by PO", "by QA, ", "QA</span>", "DEVOPS"):
        assert personal not in html
    assert "Go-live approval was revoked." in html


def test_it_says_which_settings_of_a_check_changed_without_their_values() -> None:
    changed = event(
        AuditAction.CHECK_CHANGED,
        target="tls",
        before={"kind": "tls", "options": {"host": "a.internal"}, "items": ["x"]},
        after={"kind": "tls", "options": {"host": "b.internal"}, "items": ["x"]},
    )

    assert human_line(changed).details == ("tls", "Changed: options")


def test_it_keeps_the_teams_notes_and_evidence_links_from_share_links() -> None:
    annotated = event(
        AuditAction.ITEM_ANNOTATED,
        target=QA_ITEM,
        before={"state": "pending", "note": "", "evidence_url": ""},
        after={"state": "pending", "note": "ask Bob", "evidence_url": "https://ci.internal/1"},
    )

    team = human_line(annotated, Reader()).details
    shared = human_line(annotated, Reader(shared=True)).details

    assert "Note: ∅ → ask Bob" in team
    assert shared == ("“Unit tests pass”",)
