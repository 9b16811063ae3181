"""The release management pages: list, create, people and contacts, audit trail, sharing."""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Callable
from datetime import timedelta
from html.parser import HTMLParser
from typing import Any
from urllib.parse import urlparse

import pytest
from asgiref.sync import async_to_sync
from django.test import Client
from django.urls import resolve, reverse
from django.utils import timezone

from checks.models import PipelineToken
from releases import workflow
from releases.manage_views import AUDIT_PAGE_SIZE
from releases.models import (
    AuditAction,
    AuditEvent,
    ChecklistTemplate,
    EmergencyContact,
    Release,
    Role,
    ShareLink,
    Stakeholder,
)
from tests.conftest import PERSONAS, item

LoginAs = Callable[[str], Client]


@pytest.fixture
def login_as(users: dict[str, Any]) -> LoginAs:
    """A client signed in as a persona, asking for English so messages read as written."""

    def login(persona: str) -> Client:
        client = Client(headers={"accept-language": "en"})
        client.force_login(users[persona])
        return client

    return login


def people_url(release: Release) -> str:
    return reverse("releases:people", args=[release.version])


def audit_url(release: Release) -> str:
    return reverse("releases:audit", args=[release.version])


def csv_url(release: Release) -> str:
    return reverse("releases:audit-csv", args=[release.version])


def share_url(release: Release) -> str:
    return reverse("releases:share", args=[release.version])


def text_of(response: Any) -> str:
    return response.content.decode()


# --- release list ------------------------------------------------------------------------


@pytest.mark.parametrize("persona", PERSONAS)
def test_it_lists_the_release_with_progress_and_blockers_for_each_stakeholder(
    release: Release, users: dict[str, Any], login_as: LoginAs, persona: str
) -> None:
    workflow.tick(item(release, "Merge everything"), by=users["backend"])
    workflow.tick(item(release, "Unit tests pass"), by=users["qa"])
    workflow.mark_blocked(
        item(release, "Screens reviewed"), by=users["frontend"], reason="Designer away"
    )

    response = login_as(persona).get(reverse("releases:list"))

    page = text_of(response)
    board = reverse("releases:board", args=[release.version])
    assert f'<a href="{board}">v1.2.3</a>' in page
    assert "Spring" in page
    assert "29% (2 of 7)" in page
    assert 'value="2"' in page
    assert "1 blocker" in page


def test_a_release_nobody_has_started_shows_no_blockers_as_not_started(
    release: Release, login_as: LoginAs
) -> None:
    untouched = text_of(login_as("admin").get(reverse("releases:list")))
    workflow.tick(
        item(release, "Merge everything"), by=release.stakeholders.get(role="backend").user
    )
    started = text_of(login_as("admin").get(reverse("releases:list")))

    assert "Not started" in untouched and ">None<" not in untouched
    assert ">None<" in started and "Not started" not in started


def test_it_lists_every_release_for_staff(
    release: Release,
    small_template: ChecklistTemplate,
    users: dict[str, Any],
    login_as: LoginAs,
) -> None:
    workflow.create_release(small_template, version="v2.0.0", title="Summer", by=users["admin"])

    page = text_of(login_as("admin").get(reverse("releases:list")))

    assert reverse("releases:board", args=["v1.2.3"]) in page
    assert reverse("releases:board", args=["v2.0.0"]) in page
    assert "0% (0 of 7)" in page


def test_it_hides_releases_a_lead_holds_no_role_on(
    release: Release,
    small_template: ChecklistTemplate,
    users: dict[str, Any],
    login_as: LoginAs,
) -> None:
    workflow.create_release(small_template, version="v2.0.0", title="Summer", by=users["admin"])

    page = text_of(login_as("qa").get(reverse("releases:list")))

    assert "v1.2.3" in page
    assert "v2.0.0" not in page
    assert reverse("releases:create") not in page


def test_it_shows_an_outsider_nothing_but_an_explanation(
    release: Release, login_as: LoginAs
) -> None:
    page = text_of(login_as("outsider").get(reverse("releases:list")))

    assert "v1.2.3" not in page
    assert "You are not part of any release yet." in page


def test_it_tells_staff_how_to_start_when_there_are_no_releases(
    users: dict[str, Any], login_as: LoginAs
) -> None:
    page = text_of(login_as("admin").get(reverse("releases:list")))

    assert "There are no releases yet." in page
    assert f'href="{reverse("releases:create")}"' in page
    assert f'href="{reverse("releases:import")}"' in page


# --- create ------------------------------------------------------------------------------


def create_data(template: ChecklistTemplate, /, **overrides: str) -> dict[str, str]:
    data = {
        "template": str(template.pk),
        "version": "v2.0.0",
        "title": "Summer",
        "window_start": "2030-06-01T22:00",
        "window_end": "2030-06-02T02:00",
        "changelog_url": "https://example.com/CHANGELOG.md",
        "two_person_rule": "on",
    }
    data.update(overrides)
    return {key: value for key, value in data.items() if value != ""}


def test_it_creates_a_release_and_sends_staff_to_its_people(
    small_template: ChecklistTemplate, users: dict[str, Any], login_as: LoginAs
) -> None:
    client = login_as("admin")
    form_page = client.get(reverse("releases:create"))
    assert form_page.status_code == 200
    assert 'type="datetime-local"' in text_of(form_page)

    response = client.post(
        reverse("releases:create"), create_data(small_template), REMOTE_ADDR="10.0.0.7"
    )

    made = Release.objects.get(version="v2.0.0")
    assert response.status_code == 302
    assert response["Location"] == people_url(made)
    assert made.title == "Summer"
    assert made.items.count() == 7
    assert made.two_person_rule is True
    assert made.changelog_url == "https://example.com/CHANGELOG.md"
    assert made.window_start is not None and made.window_end is not None
    assert made.window_end - made.window_start == timedelta(hours=4)
    created = made.audit_events.get(action="release.created")
    assert created.source_ip == "10.0.0.7"
    assert created.actor == users["admin"]
    assert "Release v2.0.0 created with 7 items" in text_of(client.get(people_url(made)))


def test_it_refuses_a_title_that_does_not_fit_on_one_line_keeping_what_was_typed(
    small_template: ChecklistTemplate, login_as: LoginAs
) -> None:
    typed = "Summer\r\nfix"

    response = login_as("admin").post(
        reverse("releases:create"), {**create_data(small_template), "title": typed}
    )

    assert response.status_code == 422
    assert "Must fit on one line." in text_of(response)
    assert "Summer\r\nfix" in text_of(response) or "Summer\nfix" in text_of(response)
    assert not Release.objects.filter(version="v2.0.0").exists()


def test_it_creates_a_release_without_the_two_person_rule_when_unticked(
    small_template: ChecklistTemplate, users: dict[str, Any], login_as: LoginAs
) -> None:
    login_as("admin").post(
        reverse("releases:create"), create_data(small_template, two_person_rule="")
    )

    assert Release.objects.get(version="v2.0.0").two_person_rule is False


def test_it_rejects_a_malformed_version_and_keeps_what_was_typed(
    small_template: ChecklistTemplate, users: dict[str, Any], login_as: LoginAs
) -> None:
    response = login_as("admin").post(
        reverse("releases:create"), create_data(small_template, version="2.0", title="Kept")
    )

    assert response.status_code == 422
    assert response.context["form"].errors["version"] == [
        "Use a version like v1.2.3 (optionally with a pre-release such as v1.2.3-rc.1)."
    ]
    page = text_of(response)
    assert "Use a version like v1.2.3" in page
    assert 'value="2.0"' in page
    assert 'value="Kept"' in page
    assert not Release.objects.exists()


@pytest.mark.parametrize("version", ["v1０.0.0", "v１.2.3", "v1.2.3-rc.١"])
def test_it_rejects_a_version_with_digits_other_than_ascii(
    small_template: ChecklistTemplate, users: dict[str, Any], login_as: LoginAs, version: str
) -> None:
    # Python's \d matches any Unicode digit: v1０.0.0 (a full-width zero) would be created
    # beside v10.0.0 and read the same on every page.
    response = login_as("admin").post(
        reverse("releases:create"), create_data(small_template, version=version)
    )

    assert response.status_code == 422
    assert response.context["form"].errors["version"] == [
        "Use a version like v1.2.3 (optionally with a pre-release such as v1.2.3-rc.1)."
    ]
    assert not Release.objects.exists()


def test_it_rejects_a_duplicate_version_with_the_workflows_message(
    release: Release, small_template: ChecklistTemplate, login_as: LoginAs
) -> None:
    response = login_as("admin").post(
        reverse("releases:create"), create_data(small_template, version="v1.2.3")
    )

    assert response.status_code == 422
    [message] = response.context["form"].errors["version"]
    assert "already exists" in message
    assert message in text_of(response)
    assert Release.objects.count() == 1


def test_it_rejects_a_window_that_ends_before_it_starts(
    small_template: ChecklistTemplate, login_as: LoginAs
) -> None:
    response = login_as("admin").post(
        reverse("releases:create"),
        create_data(small_template, window_start="2030-06-02T10:00", window_end="2030-06-01T10:00"),
    )

    assert response.context["form"].errors["window_end"] == [
        "The window cannot end before it starts."
    ]
    page = text_of(response)
    assert 'value="2030-06-02T10:00"' in page
    assert 'value="2030-06-01T10:00"' in page
    assert not Release.objects.exists()


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("window_start", "0001-01-01T00:00"),
        ("window_start", "1999-12-31T23:59"),
        ("window_end", "3000-01-01T00:00"),
        ("window_end", "9999-12-31T23:59"),
    ],
)
def test_it_refuses_a_target_window_outside_the_years_every_date_keeps_to(
    small_template: ChecklistTemplate, login_as: LoginAs, field: str, value: str
) -> None:
    response = login_as("admin").post(
        reverse("releases:create"), create_data(small_template, **{field: value})
    )

    assert response.status_code == 422
    assert response.context["form"].errors[field] == ["Enter a year between 2000 and 2999."]
    assert f'value="{value}"' in text_of(response)
    assert not Release.objects.exists()


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("template", "", "Choose the checklist this release starts from."),
        ("title", "", "Give the release a short title."),
        ("changelog_url", "not a link", "Enter a valid URL."),
        ("window_start", "tomorrow", "Enter a valid date/time."),
    ],
)
def test_it_explains_every_other_bad_input_beside_its_field(
    small_template: ChecklistTemplate, login_as: LoginAs, field: str, value: str, message: str
) -> None:
    response = login_as("admin").post(
        reverse("releases:create"), create_data(small_template, **{field: value})
    )

    assert response.context["form"].errors[field] == [message]
    assert not Release.objects.exists()


@pytest.mark.parametrize("persona", ["po", "qa", "outsider"])
def test_it_forbids_non_staff_to_create_releases(
    small_template: ChecklistTemplate, login_as: LoginAs, persona: str
) -> None:
    client = login_as(persona)

    assert client.get(reverse("releases:create")).status_code == 403
    assert client.post(reverse("releases:create"), create_data(small_template)).status_code == 403
    assert not Release.objects.exists()


def test_it_sends_anonymous_visitors_to_log_in(release: Release) -> None:
    response = Client().get(people_url(release))

    assert response.status_code == 302
    assert response["Location"].startswith(reverse("login"))


# --- people ------------------------------------------------------------------------------


def test_it_shows_roles_and_people_to_a_stakeholder_without_the_controls(
    release: Release, login_as: LoginAs
) -> None:
    response = login_as("support").get(people_url(release))

    page = text_of(response)
    assert response.status_code == 200
    for role in Role:
        assert str(role.label) in page
    assert "QA" in page and "(qa)" in page
    assert 'value="assign"' not in page
    assert 'value="unassign"' not in page


def test_it_hides_a_release_from_an_outsider(release: Release, login_as: LoginAs) -> None:
    assert login_as("outsider").get(people_url(release)).status_code == 404


def test_it_lets_staff_assign_someone_to_a_role(
    release: Release, users: dict[str, Any], login_as: LoginAs
) -> None:
    client = login_as("admin")
    response = client.post(
        people_url(release),
        {
            "action": "assign",
            "role": Role.QA,
            "user": users["outsider"].pk,
        },
        REMOTE_ADDR="10.0.0.9",
    )

    assert response.status_code == 302
    assert response["Location"] == people_url(release)
    assert Stakeholder.objects.filter(
        release=release, role=Role.QA, user=users["outsider"]
    ).exists()
    event = release.audit_events.get(action="stakeholder.assigned", target="qa: outsider")
    assert event.source_ip == "10.0.0.9"
    assert "outsider now holds the role QA Lead." in text_of(client.get(people_url(release)))


def test_it_explains_an_assignment_without_a_person(release: Release, login_as: LoginAs) -> None:
    response = login_as("admin").post(people_url(release), {"action": "assign", "role": Role.QA})

    assert response.status_code == 422
    assert response.context["assign_form"].errors["user"] == ["Choose who takes the role."]


def test_it_offers_only_active_users_for_a_role(
    release: Release, users: dict[str, Any], login_as: LoginAs
) -> None:
    users["outsider"].is_active = False
    users["outsider"].save()

    response = login_as("admin").get(people_url(release))

    choices = response.context["assign_form"].fields["user"].queryset
    assert users["qa"] in choices
    assert users["outsider"] not in choices


def test_it_lets_staff_remove_someone_from_a_role(
    release: Release, users: dict[str, Any], login_as: LoginAs
) -> None:
    client = login_as("admin")
    page = text_of(client.get(people_url(release)))
    assert 'value="unassign"' in page

    response = client.post(
        people_url(release),
        {
            "action": "unassign",
            "role": Role.QA,
            "user": users["qa"].pk,
        },
    )

    assert response.status_code == 302
    assert not Stakeholder.objects.filter(release=release, role=Role.QA).exists()
    assert release.audit_events.filter(action="stakeholder.unassigned").count() == 1


def test_it_says_so_when_the_person_removed_does_not_hold_the_role(
    small_template: ChecklistTemplate, users: dict[str, Any], login_as: LoginAs
) -> None:
    nobody_yet = workflow.create_release(
        small_template, version="v3.0.0", title="Autumn", by=users["admin"]
    )
    nobody_yet.refresh_from_db()
    revision, events = nobody_yet.revision, AuditEvent.objects.count()

    response = login_as("admin").post(
        people_url(nobody_yet),
        {"action": "unassign", "role": Role.QA, "user": users["devops"].pk},
        follow=True,
    )

    page = text_of(response)
    assert "devops does not hold the role QA Lead: nothing changed." in page
    assert "no longer holds" not in page
    nobody_yet.refresh_from_db()
    assert nobody_yet.revision == revision
    assert AuditEvent.objects.count() == events
    assert not nobody_yet.stakeholders.exists()


@pytest.mark.parametrize("action", ["assign", "unassign"])
def test_it_forbids_non_staff_to_change_people(
    release: Release, users: dict[str, Any], login_as: LoginAs, action: str
) -> None:
    response = login_as("po").post(
        people_url(release),
        {
            "action": action,
            "role": Role.QA,
            "user": users["qa"].pk,
        },
    )

    assert response.status_code == 403
    assert Stakeholder.objects.filter(release=release, role=Role.QA, user=users["qa"]).exists()


@pytest.fixture
def placeholder_contact(release: Release) -> EmergencyContact:
    return EmergencyContact.objects.create(
        release=release, position=1, role="QA Lead", name="[Nombre]", other="[Teléfono]"
    )


def contact_data(contact: EmergencyContact, **fields: str) -> dict[str, str]:
    data = {"action": "contact", "contact": str(contact.pk)}
    data.update({f"contact-{contact.pk}-{key}": value for key, value in fields.items()})
    return data


def test_it_shows_which_contacts_still_hold_placeholders(
    placeholder_contact: EmergencyContact, release: Release, login_as: LoginAs
) -> None:
    page = text_of(login_as("support").get(people_url(release)))

    assert "1 contact still holds a placeholder." in page
    assert "Dana Ops" in page
    assert page.count(">Placeholder<") == 1


def test_it_lets_the_product_owner_fill_in_a_contact(
    placeholder_contact: EmergencyContact, release: Release, login_as: LoginAs
) -> None:
    client = login_as("po")
    response = client.post(
        people_url(release),
        contact_data(
            placeholder_contact,
            name="Quinn Tester",
            phone="+34 600 111 222",
            email="q@example.com",
        ),
    )

    assert response.status_code == 302
    placeholder_contact.refresh_from_db()
    assert placeholder_contact.name == "Quinn Tester"
    assert placeholder_contact.phone == "+34 600 111 222"
    assert not placeholder_contact.has_placeholder()
    assert release.audit_events.filter(action="contact.updated").count() == 1
    page = text_of(client.get(people_url(release)))
    assert "Emergency contact for QA Lead saved." in page
    assert "still holds a placeholder" not in page


def test_it_forbids_a_lead_to_edit_contacts(
    placeholder_contact: EmergencyContact, release: Release, login_as: LoginAs
) -> None:
    client = login_as("qa")
    assert 'value="contact"' not in text_of(client.get(people_url(release)))

    response = client.post(
        people_url(release),
        contact_data(
            placeholder_contact,
            name="Me",
            phone="+34 600 111 222",
            email="",
        ),
    )

    assert response.status_code == 403
    placeholder_contact.refresh_from_db()
    assert placeholder_contact.name == "[Nombre]"


def test_it_explains_a_bad_email_and_keeps_what_was_typed(
    placeholder_contact: EmergencyContact, release: Release, login_as: LoginAs
) -> None:
    response = login_as("po").post(
        people_url(release),
        contact_data(
            placeholder_contact,
            name="Quinn Tester",
            phone="",
            email="quinn-at-example",
        ),
    )

    assert response.status_code == 422
    page = text_of(response)
    assert "Enter a valid email address." in page
    assert 'value="quinn-at-example"' in page
    assert 'value="Quinn Tester"' in page
    placeholder_contact.refresh_from_db()
    assert placeholder_contact.name == "[Nombre]"
    assert not release.audit_events.filter(action="contact.updated").exists()


@pytest.mark.parametrize(
    ("phone", "email", "message"),
    [
        ("call me", "", "Enter a phone number such as +34 600 000 000."),
        ("", "", "Give a phone number or an email address."),
    ],
)
def test_it_explains_a_contact_nobody_could_reach(
    placeholder_contact: EmergencyContact,
    release: Release,
    login_as: LoginAs,
    phone: str,
    email: str,
    message: str,
) -> None:
    response = login_as("admin").post(
        people_url(release),
        contact_data(
            placeholder_contact,
            name="Quinn Tester",
            phone=phone,
            email=email,
        ),
    )

    assert response.status_code == 422
    assert message in text_of(response)


def test_it_answers_404_for_a_contact_of_another_release(
    placeholder_contact: EmergencyContact, release: Release, login_as: LoginAs
) -> None:
    data = contact_data(placeholder_contact, name="X", phone="+34 600 111 222")
    data["contact"] = "999999"

    assert login_as("admin").post(people_url(release), data).status_code == 404


# --- audit trail -------------------------------------------------------------------------


def test_it_shows_who_did_what_when_and_from_where(
    release: Release, users: dict[str, Any], login_as: LoginAs
) -> None:
    workflow.mark_blocked(
        item(release, "Unit tests pass"), by=users["admin"], reason="Flaky suite", ip="192.0.2.4"
    )

    # Where from is for staff only (see the test below).
    response = login_as("admin").get(audit_url(release))

    page = text_of(response)
    assert response.status_code == 200
    assert "Item blocked" in page
    assert "Unit tests pass" in page
    assert "192.0.2.4" in page
    assert ">Override<" in page
    # Keys and codes read as labels in the reader's language, never as codes.
    assert "<dt>State</dt><dd>Pending</dd>" in page
    assert "<dt>State</dt><dd>Blocked</dd>" in page
    assert "<dt>Reason</dt><dd>Flaky suite</dd>" in page


def test_it_shows_only_what_changed_in_before_and_after(
    release: Release, users: dict[str, Any], login_as: LoginAs
) -> None:
    workflow.tick(item(release, "Unit tests pass"), by=users["qa"])
    AuditEvent.objects.create(
        release=release, actor_label="bot", action="note", target="fresh", after={"a": 1, "b": ""}
    )

    response = login_as("qa").get(audit_url(release))

    rows = {row.event.target: row for row in response.context["rows"]}
    tick = rows["Unit tests pass"]
    assert tick.before == [("State", "Pending")]
    assert tick.after == [("State", "Done")]
    assert "<dt>State</dt><dd>Pending</dd>" in text_of(response)
    assert "<dt>Evidence link</dt>" not in text_of(response)
    # With nothing before, the whole of the after side is shown.
    assert rows["fresh"].before == []
    assert rows["fresh"].after == [("a", "1"), ("b", "∅")]
    # The CSV keeps the complete snapshots.
    _raw, csv_rows = read_csv(login_as("qa").get(csv_url(release), {"action": "item.done"}))
    assert '"evidence_url": ""' in csv_rows[1][5]
    assert '"note": ""' in csv_rows[1][6]


def test_it_filters_the_audit_trail_by_action_actor_and_dates(
    release: Release, users: dict[str, Any], login_as: LoginAs
) -> None:
    workflow.tick(item(release, "Unit tests pass"), by=users["qa"])
    workflow.tick(item(release, "Merge everything"), by=users["backend"])
    client = login_as("qa")

    by_action = client.get(audit_url(release), {"action": "item.done"})
    assert [r.event.target for r in by_action.context["rows"]] == [
        "Merge everything",
        "Unit tests pass",
    ]
    assert '<option value="item.done" selected>' in text_of(by_action)

    by_actor = client.get(audit_url(release), {"actor": "BACK"})
    assert [r.event.target for r in by_actor.context["rows"]] == ["Merge everything"]

    today = timezone.localdate()
    since_today = client.get(
        audit_url(release), {"since": today.isoformat(), "until": today.isoformat()}
    )
    assert since_today.context["page"].paginator.count == release.audit_events.count()
    from_tomorrow = client.get(
        audit_url(release), {"since": (today + timedelta(days=1)).isoformat()}
    )
    assert from_tomorrow.context["rows"] == []
    assert "No events match these filters." in text_of(from_tomorrow)


def test_it_explains_a_date_range_that_ends_before_it_starts(
    release: Release, login_as: LoginAs
) -> None:
    response = login_as("qa").get(
        audit_url(release), {"since": "2030-01-02", "until": "2030-01-01"}
    )

    assert response.status_code == 200
    assert "The range cannot end before it starts." in text_of(response)


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("since", "9999-12-31", "“From” must be a day from 2000-01-01 to 2999-12-31."),
        ("until", "9999-12-31", "“To” must be a day from 2000-01-01 to 2999-12-31."),
        ("until", "3000-01-01", "“To” must be a day from 2000-01-01 to 2999-12-31."),
        ("since", "0001-01-01", "“From” must be a day from 2000-01-01 to 2999-12-31."),
        ("until", "10000-01-01", "“To” is not a date; write it as YYYY-MM-DD."),
        ("since", "9999-99-99", "“From” is not a date; write it as YYYY-MM-DD."),
    ],
)
def test_it_explains_an_out_of_range_date_beside_its_field_on_the_page_and_the_csv(
    release: Release, login_as: LoginAs, field: str, value: str, message: str
) -> None:
    client = login_as("qa")

    page = client.get(audit_url(release), {field: value, "action": "release.created"})
    download = client.get(csv_url(release), {field: value, "action": "release.created"})

    assert page.status_code == 200
    assert page.context["form"].errors[field] == [message]
    assert message in text_of(page)
    # The valid filters still apply, on the page as in the download.
    assert [r.event.action for r in page.context["rows"]] == ["release.created"]
    assert download.status_code == 200
    assert len(read_csv(download)[1]) == 2


def test_it_accepts_the_last_day_of_the_range(release: Release, login_as: LoginAs) -> None:
    response = login_as("qa").get(
        audit_url(release), {"since": "2000-01-01", "until": "2999-12-31"}
    )

    assert response.context["form"].errors == {}
    assert response.context["page"].paginator.count == release.audit_events.count()


@pytest.mark.parametrize("page", [str(10**30), "-1", "0", "two", "１"])
def test_it_clamps_a_page_out_of_range_to_a_real_page(
    release: Release, login_as: LoginAs, page: str
) -> None:
    response = login_as("qa").get(audit_url(release), {"page": page})

    assert response.status_code == 200
    assert response.context["page"].number == 1


def test_it_pages_the_audit_trail(
    release: Release, users: dict[str, Any], login_as: LoginAs
) -> None:
    total = release.audit_events.count()
    AuditEvent.objects.bulk_create(
        [
            AuditEvent(release=release, actor_label="bot", action="note", target=f"n{i}")
            for i in range(AUDIT_PAGE_SIZE + 5 - total)
        ]
    )
    client = login_as("qa")

    first = client.get(audit_url(release), {"actor": ""})
    second = client.get(audit_url(release), {"actor": "", "page": 2})

    assert len(first.context["rows"]) == AUDIT_PAGE_SIZE
    assert len(second.context["rows"]) == 5
    assert "Page 1 of 2" in text_of(first)
    assert "?actor=&amp;page=2" in text_of(first)


def test_it_hides_the_audit_trail_from_an_outsider(release: Release, login_as: LoginAs) -> None:
    client = login_as("outsider")

    assert client.get(audit_url(release)).status_code == 404
    assert client.get(csv_url(release)).status_code == 404


def read_csv(response: Any) -> tuple[bytes, list[list[str]]]:
    # The download streams on the event loop (an async iterator) as the worker writes it.
    async def downloaded() -> bytes:
        return b"".join([part async for part in response.streaming_content])

    raw = async_to_sync(downloaded)()
    return raw, list(csv.reader(io.StringIO(raw.decode("utf-8-sig"))))


def test_it_exports_the_audit_trail_as_csv_for_excel(
    release: Release, users: dict[str, Any], login_as: LoginAs
) -> None:
    workflow.mark_not_applicable(
        item(release, "Nice-to-have dashboard"),
        by=users["devops"],
        reason="Producción ya lo tiene",
        ip="192.0.2.8",
    )

    response = login_as("admin").get(csv_url(release), {"action": "item.not_applicable"})

    assert response.status_code == 200
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    assert response["Content-Disposition"] == 'attachment; filename="audit-v1.2.3.csv"'
    raw, rows = read_csv(response)
    assert raw.startswith(b"\xef\xbb\xbf")
    assert rows[0] == [
        "When", "Who", "Action", "Action code", "Target", "Before", "After", "From", "Override"
    ]  # fmt: skip
    assert len(rows) == 2
    _when, who, action, code, target, before, after, source, override = rows[1]
    assert who == "devops (DEVOPS)"
    assert action == "Item marked not applicable"
    assert code == "item.not_applicable"
    assert target == "Nice-to-have dashboard"
    assert '"state": "Pending"' in before
    assert '"state": "Not applicable"' in after
    assert '"reason": "Producción ya lo tiene"' in after
    assert source == "192.0.2.8"
    assert override == "no"


def test_it_shows_where_people_acted_from_to_staff_only(
    release: Release, users: dict[str, Any], login_as: LoginAs
) -> None:
    workflow.tick(item(release, "Unit tests pass"), by=users["qa"], ip="192.0.2.8")

    raw, rows = read_csv(login_as("support").get(csv_url(release)))
    page = login_as("qa").get(reverse("releases:audit", args=[release.version])).content.decode()
    staff_page = login_as("admin").get(reverse("releases:audit", args=[release.version]))

    assert rows[0] == [
        "When",
        "Who",
        "Action",
        "Action code",
        "Target",
        "Before",
        "After",
        "Override",
    ]
    assert b"192.0.2.8" not in raw
    assert "192.0.2.8" not in page
    assert "192.0.2.8" in staff_page.content.decode()


def test_it_stops_csv_cells_from_running_as_formulas(release: Release, login_as: LoginAs) -> None:
    AuditEvent.objects.create(
        release=release, actor_label='=HYPERLINK("http://x")', action="note", target="+1 more"
    )
    AuditEvent.objects.create(release=release, actor_label="@SUM(A1)", action="note", target="-2")

    _raw, rows = read_csv(login_as("qa").get(csv_url(release), {"action": "note"}))

    cells = {cell for row in rows[1:] for cell in (row[1], row[4])}
    assert {'\'=HYPERLINK("http://x")', "'+1 more", "'@SUM(A1)", "'-2"} <= cells


# --- share links -------------------------------------------------------------------------


def shown_link(page: str) -> str | None:
    found = re.search(r'id="new-share-url"[^>]*value="([^"]+)"', page)
    return found.group(1) if found else None


def test_it_creates_a_share_link_and_shows_it_only_once(
    release: Release, users: dict[str, Any], login_as: LoginAs
) -> None:
    client = login_as("admin")
    revision = release.revision

    response = client.post(
        share_url(release), {"action": "create", "label": "Support desk"}, REMOTE_ADDR="10.0.0.3"
    )

    assert response.status_code == 302
    assert response["Location"] == share_url(release)
    shown = client.get(share_url(release))
    url = shown_link(text_of(shown))
    assert url is not None and url.startswith("http://testserver/")
    assert shown["Cache-Control"] == "no-store"
    [token] = resolve(urlparse(url).path).kwargs.values()
    link = ShareLink.objects.get()
    assert link.token_hash == ShareLink.hash_token(token)
    assert link.label == "Support desk"
    assert link.created_by == users["admin"]
    assert token not in link.token_hash
    assert shown_link(text_of(client.get(share_url(release)))) is None
    event = release.audit_events.get(action="share_link.created")
    assert (event.target, event.source_ip, event.actor) == (
        "Support desk",
        "10.0.0.3",
        users["admin"],
    )
    assert token not in str(event.before) + str(event.after) + event.target
    release.refresh_from_db()
    assert release.revision == revision


def test_it_asks_who_a_share_link_is_for(release: Release, login_as: LoginAs) -> None:
    response = login_as("admin").post(share_url(release), {"action": "create", "label": ""})

    assert response.status_code == 422
    assert "Say who the link is for." in text_of(response)
    assert not ShareLink.objects.exists()


def test_it_revokes_a_share_link_once(
    release: Release, users: dict[str, Any], login_as: LoginAs
) -> None:
    client = login_as("admin")
    client.post(share_url(release), {"action": "create", "label": "Customer X"})
    link = ShareLink.objects.get()

    response = client.post(share_url(release), {"action": "revoke", "link": link.pk})
    again = client.post(share_url(release), {"action": "revoke", "link": link.pk}, follow=True)

    assert response.status_code == 302
    link.refresh_from_db()
    assert link.revoked_at is not None
    assert (
        release.audit_events.filter(action="share_link.revoked", target="Customer X").count() == 1
    )
    assert "That link is already revoked or does not exist." in text_of(again)
    assert "Revoked" in text_of(again)


@pytest.mark.parametrize(("persona", "status"), [("po", 403), ("support", 403), ("outsider", 404)])
def test_it_keeps_share_links_to_staff(
    release: Release, login_as: LoginAs, persona: str, status: int
) -> None:
    client = login_as(persona)

    assert client.get(share_url(release)).status_code == status
    posted = client.post(share_url(release), {"action": "create", "label": "Mine"})
    assert posted.status_code == status
    assert not ShareLink.objects.exists()


def test_it_does_not_show_a_link_created_for_another_release(
    release: Release,
    small_template: ChecklistTemplate,
    users: dict[str, Any],
    login_as: LoginAs,
) -> None:
    other = workflow.create_release(
        small_template, version="v9.0.0", title="Other", by=users["admin"]
    )
    client = login_as("admin")
    client.post(share_url(release), {"action": "create", "label": "Support desk"})

    assert shown_link(text_of(client.get(share_url(other)))) is None


# --- tables ------------------------------------------------------------------------------


class Tables(HTMLParser):
    """Each table's scrolling box and table attributes, the scope of its header cells, and
    the text of every element with an id."""

    def __init__(self) -> None:
        super().__init__()
        self.tables: list[dict[str, Any]] = []
        self.named: dict[str, str] = {}
        self.open: list[tuple[str, dict[str, str | None]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = dict(attrs)
        if tag == "table":
            box = self.open[-1][1] if self.open and self.open[-1][0] == "div" else {}
            self.tables.append({"box": box, "table": attributes, "scopes": []})
        elif tag == "th" and self.tables:
            self.tables[-1]["scopes"].append(attributes.get("scope"))
        if tag not in ("input", "br", "img", "meta", "link"):
            self.open.append((tag, attributes))

    def handle_endtag(self, tag: str) -> None:
        while self.open and self.open.pop()[0] != tag:
            pass

    def handle_data(self, data: str) -> None:
        for _tag, attributes in self.open:
            if attributes.get("id"):
                self.named[str(attributes["id"])] = self.named.get(str(attributes["id"]), "") + data


def test_every_table_scrolls_in_a_named_box_a_keyboard_can_reach(
    release: Release, users: dict[str, Any], login_as: LoginAs
) -> None:
    workflow.create_share_link(release, label="Support desk", by=users["admin"])
    PipelineToken.objects.create(release=release, role=Role.QA, label="ci", token_hash="ci")
    PipelineToken.objects.create(version_pattern="*", role=Role.QA, label="any", token_hash="any")
    pages = [
        ("admin", reverse("releases:list")),
        ("admin", people_url(release)),
        ("qa", people_url(release)),
        ("admin", share_url(release)),
        ("admin", reverse("checks:tokens", args=[release.version])),
        ("admin", reverse("checks:project-tokens")),
    ]
    seen = 0
    for persona, url in pages:
        page = Tables()
        page.feed(text_of(login_as(persona).get(url)))
        assert page.tables, url
        for table in page.tables:
            box, name = table["box"], table["box"].get("aria-labelledby")
            assert (box.get("class"), box.get("role"), box.get("tabindex")) == (
                "table-scroll",
                "region",
                "0",
            ), url
            assert page.named.get(name, "").strip(), f"{url}: {name} names nothing"
            assert table["table"].get("aria-labelledby") == name
            assert "col" in table["scopes"] and "row" in table["scopes"], url
            assert set(table["scopes"]) <= {"col", "row"}, url
            seen += 1
    # The release list; the roles, twice, and the contacts qa may read but not edit;
    # the links; the release's two token tables and the project's.
    assert seen == 8


# --- contacts and rollback plan ----------------------------------------------------------


def plan_url(release: Release) -> str:
    return reverse("releases:plan", args=[release.version])


def contacts_data(release: Release, rows: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
    """The contacts form as a browser posts it: `rows` in order, with the version loaded."""
    data: dict[str, Any] = {
        "action": "contacts-save",
        "contacts-based_on": workflow.contacts_version(release),
        "contacts-TOTAL_FORMS": str(len(rows)),
        "contacts-INITIAL_FORMS": str(sum(1 for r in rows if r.get("contact_id"))),
        "contacts-MIN_NUM_FORMS": "0",
        "contacts-MAX_NUM_FORMS": "50",
    }
    for index, row in enumerate(rows):
        for name, value in row.items():
            data[f"contacts-{index}-{name}"] = value
    data.update(extra)
    return data


def dana_row(release: Release, **changes: Any) -> dict[str, Any]:
    dana = release.contacts.get(role="DevOps Lead")
    return {
        "contact_id": str(dana.pk),
        "role": dana.role,
        "name": dana.name,
        "phone": dana.phone,
        "email": dana.email,
        **changes,
    }


def plan_data(release: Release, markdown: str, action: str = "plan-save") -> dict[str, Any]:
    return {
        "action": action,
        "plan-markdown": markdown,
        "plan-based_on": workflow.plan_version(release),
    }


PLAN = (
    "1. **Backend** <!-- deploycheck: owner=backend -->\n   ```bash\n   restore\n   ```\n2. Check\n"
)


def test_it_links_the_contacts_and_plan_page_for_staff_only(
    release: Release, login_as: LoginAs
) -> None:
    assert plan_url(release) in text_of(login_as("admin").get(people_url(release)))
    assert plan_url(release) not in text_of(login_as("po").get(people_url(release)))


@pytest.mark.parametrize("persona", PERSONAS)
def test_it_answers_403_to_anyone_but_staff_on_the_contacts_and_plan_page(
    release: Release, login_as: LoginAs, persona: str
) -> None:
    client = login_as(persona)
    before = AuditEvent.objects.count()

    assert client.get(plan_url(release)).status_code == 403
    assert client.post(plan_url(release), plan_data(release, PLAN)).status_code == 403
    assert client.post(plan_url(release), contacts_data(release, [])).status_code == 403
    assert AuditEvent.objects.count() == before
    assert release.contacts.count() == 1


def test_it_answers_404_to_an_outsider_on_the_contacts_and_plan_page(
    release: Release, login_as: LoginAs
) -> None:
    assert login_as("outsider").get(plan_url(release)).status_code == 404


def test_it_saves_the_contacts_as_listed_and_flags_a_placeholder(
    release: Release, login_as: LoginAs
) -> None:
    revision = release.revision
    rows = [
        dana_row(release, phone="+34 600 000 002"),
        {"role": "QA Lead", "name": "[Nombre]", "phone": "", "email": ""},
    ]

    response = login_as("admin").post(plan_url(release), contacts_data(release, rows), follow=True)

    page = text_of(response)
    assert response.redirect_chain[-1][0] == f"{plan_url(release)}#contacts-heading"
    assert "Emergency contacts saved." in page
    assert "1 contact still holds a placeholder: go-live cannot be approved" in page
    assert "Placeholder: blocks go-live" in page
    assert list(release.contacts.values_list("role", "name", "phone")) == [
        ("DevOps Lead", "Dana Ops", "+34 600 000 002"),
        ("QA Lead", "[Nombre]", ""),
    ]
    release.refresh_from_db()
    assert release.revision == revision + 1
    assert release.audit_events.filter(action="contacts.edited").count() == 1


def test_it_removes_a_contact_whose_row_is_ticked_for_removal(
    release: Release, login_as: LoginAs
) -> None:
    rows = [dana_row(release, DELETE="on")]

    response = login_as("admin").post(plan_url(release), contacts_data(release, rows))

    assert response.status_code == 302
    assert release.contacts.count() == 0


def test_it_adds_a_row_keeping_everything_typed_and_saving_nothing(
    release: Release, login_as: LoginAs
) -> None:
    rows = [
        dana_row(release, name="Dana typed"),
        {"role": "QA Lead", "name": "Quinn", "phone": "bad phone", "email": ""},
        {"role": "", "name": "", "phone": "", "email": ""},
    ]
    data = contacts_data(release, rows, action="contacts-add")

    response = login_as("admin").post(plan_url(release), data)

    page = text_of(response)
    assert response.status_code == 200
    assert 'value="Dana typed"' in page
    assert 'value="bad phone"' in page
    # The blank row stays, one more comes, and only typed rows must be filled in.
    assert 'name="contacts-TOTAL_FORMS" value="4"' in page
    assert 'name="contacts-INITIAL_FORMS" value="2"' in page
    assert 'name="contacts-3-role"' in page
    assert release.contacts.get().name == "Dana Ops"
    assert not release.audit_events.filter(action="contacts.edited").exists()


def test_it_refuses_a_row_added_to_a_tampered_contacts_form_without_failing(
    release: Release, login_as: LoginAs
) -> None:
    data = {"action": "contacts-add", "contacts-based_on": workflow.contacts_version(release)}

    response = login_as("admin").post(plan_url(release), data)

    assert response.status_code == 422
    assert "The form is incomplete; reload the page and try again." in text_of(response)


@pytest.mark.parametrize(
    ("row", "says"),
    [
        ({"role": "QA Lead", "name": "Quinn", "phone": "call me", "email": ""}, "Enter a phone"),
        ({"role": "QA Lead", "name": "", "phone": "+34 600 000 005", "email": ""}, "[Nombre]"),
        ({"role": "", "name": "Quinn", "phone": "+34 600 000 005", "email": ""}, "which role"),
        ({"role": "QA Lead", "name": "Quinn", "phone": "", "email": "quinn@"}, "valid email"),
    ],
)
def test_it_explains_a_contact_row_it_cannot_save_and_keeps_what_was_typed(
    release: Release, login_as: LoginAs, row: dict[str, str], says: str
) -> None:
    response = login_as("admin").post(plan_url(release), contacts_data(release, [row]))

    page = text_of(response)
    assert response.status_code == 422
    assert says in page
    assert 'class="error" role="alert"' in page
    assert release.contacts.get().name == "Dana Ops"


def test_it_refuses_a_stale_contacts_save_keeping_what_was_typed_and_showing_what_is_saved(
    release: Release, users: dict[str, Any], login_as: LoginAs
) -> None:
    client = login_as("admin")
    stale = contacts_data(release, [dana_row(release, name="Mine")])
    workflow.update_contact(
        release.contacts.get(), by=users["po"], name="Theirs", phone="+34 600 000 007", email=""
    )

    response = client.post(plan_url(release), stale)

    page = text_of(response)
    assert response.status_code == 422
    assert "Someone else saved the emergency contacts while you were editing them." in page
    assert 'value="Mine"' in page
    assert "Emergency contacts as saved now" in page and "Theirs" in page
    assert release.contacts.get().name == "Theirs"
    # Saving the same page again replaces theirs, knowingly.
    renewed = re.search(r'name="contacts-based_on" value="([0-9a-f]+)"', page)
    assert renewed is not None
    again = client.post(plan_url(release), {**stale, "contacts-based_on": renewed.group(1)})
    assert again.status_code == 302
    assert release.contacts.get().name == "Mine"


def test_it_explains_a_tampered_contacts_form_without_failing(
    release: Release, login_as: LoginAs
) -> None:
    data = {"action": "contacts-save", "contacts-based_on": workflow.contacts_version(release)}

    response = login_as("admin").post(plan_url(release), data)

    assert response.status_code == 422
    assert "ManagementForm data is missing or has been tampered with" in text_of(response)
    assert release.contacts.count() == 1


def test_it_answers_400_to_an_unknown_action_on_the_contacts_and_plan_page(
    release: Release, login_as: LoginAs
) -> None:
    response = login_as("admin").post(plan_url(release), {"action": "nope"})

    assert response.status_code == 400


def test_it_previews_the_plans_steps_with_their_owners_without_saving(
    release: Release, login_as: LoginAs
) -> None:
    response = login_as("admin").post(plan_url(release), plan_data(release, PLAN, "plan-preview"))

    page = text_of(response)
    assert response.status_code == 200
    assert "Preview: 2 steps, not saved yet" in page
    assert "<strong>Backend</strong>" in page and "Owner: Backend Lead" in page
    assert "Owner: DevOps Lead" in page and "<code>restore</code>" in page
    assert "deploycheck: owner=backend" in page  # the textarea keeps the text
    assert list(release.rollback_steps.values_list("text", flat=True)) == ["Roll back"]


def test_it_shows_the_line_of_a_plan_it_cannot_read_and_keeps_the_text(
    release: Release, login_as: LoginAs
) -> None:
    typed = "1. Restore\n\nA stray paragraph\n"

    for action in ("plan-preview", "plan-save"):
        response = login_as("admin").post(plan_url(release), plan_data(release, typed, action))

        page = text_of(response)
        assert response.status_code == 422
        assert "Line 3 of the rollback plan: the plan would not keep this" in page
        assert "A stray paragraph" in page
    assert list(release.rollback_steps.values_list("text", flat=True)) == ["Roll back"]


def test_it_saves_the_plan_and_shows_it_on_the_timeline_in_each_language(
    release: Release, login_as: LoginAs
) -> None:
    client = login_as("admin")

    response = client.post(plan_url(release), plan_data(release, PLAN), follow=True)

    assert "Rollback plan saved: 2 steps." in text_of(response)
    assert list(release.rollback_steps.values_list("text", "owner_role")) == [
        ("**Backend**", "backend"),
        ("Check", "devops"),
    ]
    timeline = reverse("releases:timeline", args=[release.version])
    english = text_of(client.get(timeline))
    assert "Rollback plan edited" in english
    assert "Steps: 1 → 2" in english and "Step 1: **Backend** (Backend Lead)" in english
    spanish = Client(headers={"accept-language": "es"})
    spanish.force_login(release.stakeholders.get(role="po").user)
    page = text_of(spanish.get(timeline))
    assert "Plan de rollback editado" in page
    assert "Pasos: 1 → 2" in page


def test_it_shows_the_contacts_edit_on_the_timeline_with_its_placeholders(
    release: Release, login_as: LoginAs
) -> None:
    rows = [dana_row(release, DELETE="on"), {"role": "QA Lead", "name": "[Nombre]"}]
    login_as("admin").post(plan_url(release), contacts_data(release, rows))

    page = text_of(login_as("admin").get(reverse("releases:timeline", args=[release.version])))

    assert "Emergency contacts edited" in page
    assert "Added: QA Lead: [Nombre]" in page
    assert "Removed: DevOps Lead: Dana Ops" in page
    assert "1 contact still holds a placeholder, which blocks go-live" in page


def test_it_refuses_a_stale_plan_save_keeping_the_text_and_showing_the_saved_plan(
    release: Release, users: dict[str, Any], login_as: LoginAs
) -> None:
    client = login_as("admin")
    stale = plan_data(release, PLAN)
    workflow.edit_rollback_plan(
        release,
        markdown="1. Their plan\n",
        based_on=workflow.plan_version(release),
        by=users["admin"],
    )

    response = client.post(plan_url(release), stale)

    page = text_of(response)
    assert response.status_code == 422
    assert "Someone else saved the rollback plan while you were editing it." in page
    assert "The rollback plan as saved now" in page and "1. Their plan" in page
    assert "deploycheck: owner=backend" in page
    assert list(release.rollback_steps.values_list("text", flat=True)) == ["Their plan"]
    renewed = re.search(r'name="plan-based_on" value="([0-9a-f]+)"', page)
    assert renewed is not None
    again = client.post(plan_url(release), {**stale, "plan-based_on": renewed.group(1)})
    assert again.status_code == 302
    assert release.rollback_steps.count() == 2


def test_it_refuses_to_edit_the_plan_while_a_rollback_is_in_progress(
    ready_release: Release, users: dict[str, Any], login_as: LoginAs
) -> None:
    client = login_as("admin")
    typed = plan_data(ready_release, PLAN)
    workflow.approve(ready_release, by=users["po"])
    workflow.start_deploy(ready_release, by=users["devops"], reason="window open")
    workflow.declare_rollback(ready_release, by=users["devops"], reason="5xx", severity="major")

    shown = text_of(client.get(plan_url(ready_release)))
    refused = client.post(plan_url(ready_release), typed)

    assert "A rollback is in progress and its steps are being ticked" in shown
    assert 'name="plan-markdown"' not in shown
    assert "Roll back" in shown  # the saved steps are still shown
    assert refused.status_code == 422
    assert text_of(refused).count("A rollback is in progress") == 1
    assert "deploycheck: owner=backend" in text_of(refused)
    assert list(ready_release.rollback_steps.values_list("text", flat=True)) == ["Roll back"]


@pytest.mark.parametrize(("contact_id", "says"), [("abc", "Enter a whole number."), ("999999", "")])
def test_it_explains_a_tampered_contact_row_without_failing(
    release: Release, login_as: LoginAs, contact_id: str, says: str
) -> None:
    row = dana_row(release, contact_id=contact_id)

    response = login_as("admin").post(plan_url(release), contacts_data(release, [row]))

    page = text_of(response)
    assert response.status_code == 422
    assert (says or "Row 1 names a contact this release does not have") in page
    assert release.contacts.get().name == "Dana Ops"


def test_it_refuses_two_rows_editing_one_contact_keeping_what_was_typed(
    release: Release, login_as: LoginAs
) -> None:
    rows = [dana_row(release), dana_row(release, name="Dana Twice")]

    response = login_as("admin").post(plan_url(release), contacts_data(release, rows))

    page = text_of(response)
    assert "Rows 1 and 2 edit the same contact; reload the page." in page
    assert "Dana Twice" in page
    assert release.contacts.get().name == "Dana Ops"


@pytest.mark.parametrize("count", ["-1", "-1000"])
def test_it_refuses_a_negative_row_count_instead_of_removing_every_contact(
    release: Release, login_as: LoginAs, count: str
) -> None:
    data = contacts_data(release, [dana_row(release)], **{"contacts-TOTAL_FORMS": count})

    response = login_as("admin").post(plan_url(release), data)

    assert "The form is incomplete; reload the page and try again." in text_of(response)
    assert release.contacts.get().name == "Dana Ops"
    assert not release.audit_events.filter(action=AuditAction.CONTACTS_EDITED).exists()


def test_it_shows_a_cancelled_releases_contacts_and_plan_without_forms(
    release: Release, users: dict[str, Any], login_as: LoginAs
) -> None:
    workflow.set_status(release, status="cancelled", by=users["po"])

    page = text_of(login_as("admin").get(plan_url(release)))

    assert "The release is cancelled: it accepts no change until staff reopen it." in page
    assert 'name="plan-markdown"' not in page and 'name="contacts-TOTAL_FORMS"' not in page
    assert "Dana Ops" in page and "Roll back" in page


# --- the audit trail in words ------------------------------------------------------------


@pytest.fixture
def rolled_back(ready_release: Release, users: dict[str, Any]) -> Release:
    workflow.approve(ready_release, by=users["po"])
    workflow.start_deploy(ready_release, by=users["devops"], reason="window open")
    workflow.declare_rollback(ready_release, by=users["devops"], reason="5xx", severity="major")
    return ready_release


def spanish_client(user: Any) -> Client:
    client = Client(headers={"accept-language": "es"})
    client.force_login(user)
    return client


def test_the_audit_page_shows_actions_and_statuses_by_their_spanish_labels(
    rolled_back: Release, users: dict[str, Any]
) -> None:
    page = text_of(spanish_client(users["po"]).get(audit_url(rolled_back)))

    assert "Rollback declarado" in page
    assert "<dt>Estado</dt><dd>Revertida</dd>" in page
    assert "<dt>Gravedad</dt><dd>" in page
    assert ">rolled_back<" not in page and ">major<" not in page


def test_the_audit_csv_has_a_label_column_beside_the_code_with_statuses_labelled(
    rolled_back: Release, users: dict[str, Any]
) -> None:
    response = spanish_client(users["po"]).get(
        csv_url(rolled_back), {"action": "rollback.declared"}
    )

    _raw, rows = read_csv(response)
    header, row = rows[0], rows[1]
    assert header[2:4] == ["Acción", "Código de la acción"]
    assert row[2:4] == ["Rollback declarado", "rollback.declared"]
    before, after = row[5], row[6]
    assert '"status": "Puesta en producción aprobada"' in before
    assert '"status": "Revertida"' in after
    assert "rolled_back" not in after and '"major"' not in after


def test_it_previews_a_step_too_long_for_its_column_as_an_error(
    release: Release, login_as: LoginAs
) -> None:
    typed = "1. Restore\n   ```" + "x" * 41 + "\n   run\n   ```\n"

    response = login_as("admin").post(plan_url(release), plan_data(release, typed, "plan-preview"))

    page = text_of(response)
    assert response.status_code == 422
    assert "Step 1 of the rollback plan:" in page and "Preview:" not in page


def test_the_contacts_and_plan_page_speaks_spanish(release: Release, users: dict[str, Any]) -> None:
    page = text_of(spanish_client(users["admin"]).get(plan_url(release)))

    assert "Contactos y plan de rollback" in page
    assert "Guardar contactos" in page and "Añadir una fila" in page
    assert "Plan de rollback (Markdown)" in page and "Guardar plan" in page
    assert "Responsable: DevOps Lead" in page


def test_the_timeline_names_a_changed_contact_by_its_role(
    release: Release, login_as: LoginAs
) -> None:
    rows = [dana_row(release, phone="+34 600 000 009")]
    login_as("admin").post(plan_url(release), contacts_data(release, rows))

    page = text_of(login_as("admin").get(reverse("releases:timeline", args=[release.version])))

    assert "Changed: DevOps Lead: Dana Ops" in page
    assert "Added:" not in page and "Removed:" not in page
