"""The contacts and rollback plan editor in real Chromium: staff add a contact and
rewrite the plan, and a status page open elsewhere shows the new contact without a
reload."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from django.urls import reverse
from playwright.sync_api import Page, expect

from releases.models import Release

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

LogIn = Callable[[str], Page]
PLAN = (
    "1. **Backend** <!-- deploycheck: owner=backend -->\n\n"
    "   ```bash\n   deploy backend --previous\n   ```\n\n"
    "2. Check the site <!-- deploycheck: owner=qa -->\n"
)


def test_staff_add_a_contact_and_rewrite_the_plan_while_the_status_page_follows(
    release_day: Release, people: dict[str, Any], log_in: LogIn
) -> None:
    support = log_in("support")
    support.goto(reverse("releases:status", args=[release_day.version]))
    admin = log_in("admin")
    admin.goto(reverse("releases:plan", args=[release_day.version]))
    rows = release_day.contacts.count()

    admin.get_by_role("button", name="Add a row", exact=True).click()
    new_row = rows + 2  # the page offers one empty row, and one more was added
    admin.get_by_label(f"Role, row {new_row}", exact=True).fill("Guardia")
    admin.get_by_label(f"Name, row {new_row}", exact=True).fill("Ana Guardia")
    admin.get_by_label(f"Phone, row {new_row}", exact=True).fill("+34 600 111 222")
    admin.get_by_role("button", name="Save contacts", exact=True).click()

    expect(admin.get_by_text("Emergency contacts saved.")).to_be_visible()
    expect(support.locator("main")).to_contain_text("Ana Guardia")

    admin.get_by_label("Rollback plan (Markdown)").fill(PLAN)
    admin.get_by_role("button", name="Preview", exact=True).click()
    expect(admin.get_by_role("heading", name="Preview: 2 steps, not saved yet")).to_be_visible()
    expect(admin.locator("main")).to_contain_text("Owner: Backend Lead")
    admin.get_by_role("button", name="Save plan", exact=True).click()

    expect(admin.get_by_text("Rollback plan saved: 2 steps.")).to_be_visible()
    assert list(release_day.rollback_steps.values_list("owner_role", flat=True)) == [
        "backend",
        "qa",
    ]
