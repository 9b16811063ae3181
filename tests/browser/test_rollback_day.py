"""A rollback in real Chromium: DevOps declares it on the deployed release, ticks the
plan's steps from the board and copies a step's commands."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from django.urls import reverse
from playwright.sync_api import Page, expect

from releases import workflow
from releases.models import Release, ReleaseStatus, Role

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

LogIn = Callable[[str], Page]
PRE_DEPLOY = "Pre-Despliegue"


@pytest.fixture
def deployed(release_day: Release, people: dict[str, Any]) -> Release:
    for entry in release_day.items.filter(before_gate=True):
        workflow.tick(entry, by=people[entry.owner_role])
    for role in Role.leads():
        if release_day.items.filter(owner_role=role, phase=PRE_DEPLOY).exists():
            workflow.sign_off(release_day, role=role, phase=PRE_DEPLOY, by=people[role])
    workflow.approve(release_day, by=people["po"], reason="all green")
    workflow.start_deploy(release_day, by=people["devops"], reason="window open")
    workflow.finish_deploy(release_day, by=people["devops"], result="success", reason="ok")
    release_day.refresh_from_db()
    assert release_day.status == ReleaseStatus.DEPLOYED
    return release_day


def test_devops_declares_a_rollback_ticks_its_steps_and_copies_a_command(
    deployed: Release, log_in: LogIn
) -> None:
    devops = log_in("devops")
    devops.context.grant_permissions(["clipboard-read", "clipboard-write"])
    devops.goto(reverse("releases:board", args=[deployed.version]))

    devops.get_by_role("link", name="Declare a rollback", exact=True).click()
    devops.get_by_label("Severity").select_option("critical")
    devops.get_by_label("Why? (kept in the audit trail)").fill("5xx on checkout")
    devops.get_by_role("button", name="Declare the rollback", exact=True).click()

    panel = devops.locator("#rollout-panel")
    expect(panel).to_contain_text("Rollback under way")
    steps = list(deployed.rollback_steps.order_by("position"))
    with_commands = next(step for step in steps if step.commands)
    code = devops.locator(f"#rollout-code-{with_commands.pk}")
    expect(code).to_have_attribute("tabindex", "0")
    copy = devops.locator(f'button[data-copy="rollout-code-{with_commands.pk}"]')
    expect(copy).to_be_visible()
    copy.click()
    expect(copy).to_have_attribute("data-copied", with_commands.commands)
    assert devops.evaluate("navigator.clipboard.readText()") == with_commands.commands

    for number in range(1, len(steps) + 1):
        devops.get_by_role("button", name=f"Mark step {number} done", exact=True).click()
        expect(devops.locator(f"#rollback-step-{steps[number - 1].pk}")).to_contain_text("Done")

    expect(panel).to_contain_text(f"{len(steps)} of {len(steps)} steps done")
    rollback = deployed.rollbacks.get()
    assert rollback.resolved_at is not None
    assert all(record.done for record in rollback.records.all())

    # Closed with its cause, the day's record leaves in the release's export.
    devops.get_by_role("link", name="Close the rollback with its cause", exact=True).click()
    devops.get_by_label("Cause of the rollback").fill("A migration locked the orders table")
    devops.get_by_role("button", name="Close the rollback", exact=True).click()
    expect(panel).to_contain_text("Rollback closed")
    devops.goto(reverse("releases:timeline", args=[deployed.version]))
    with devops.expect_download() as download:
        devops.get_by_role("link", name="Download the release's record (Markdown)").click()
    record = Path(download.value.path()).read_text()
    plan = record[record.index(deployed.rollback_heading) :].split("\n## ", 1)[0]
    assert plan.count("<!-- deploycheck: record --> done by devops") == len(steps)
