"""The Checks page in real Chromium: staff add a check through its kind's form, and a
test's answer reaches the open page without a reload."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from django.urls import reverse
from playwright.sync_api import Page, expect

from checks.models import CheckResult
from releases.models import CheckOutcome, CheckReason, Release
from tests.browser.conftest import Browsing

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

PASTED = "sk-proj-Q2xhdWRlIHNheXMgbm8gc2VjcmV0cyBoZXJl"
STILL_LOADED = "window.checksPageStillLoaded === true"


def test_it_adds_a_check_from_its_form_and_shows_a_tests_answer_when_it_comes(
    release: Release,
    people: dict[str, Any],
    log_in: Callable[[str], Page],
    browsing: Browsing,
) -> None:
    page = log_in("admin")
    page.goto(reverse("checks:checks", args=[release.version]))
    page.get_by_label("Kind of check").select_option("openai")
    page.get_by_role("button", name="Add a check").click()

    page.get_by_label("Name").fill("openai")
    page.get_by_label("secret_env").fill(PASTED)
    page.get_by_label("models").fill("gpt-4o-mini")
    page.get_by_role("button", name="Add check").click()

    expect(page.get_by_role("alert")).to_have_text(
        "check “openai”: secret_env must name an environment variable such as "
        "OPENAI_API_KEY, not hold the credential itself"
    )
    expect(page.get_by_label("secret_env")).to_have_value("")
    expect(page.get_by_label("Name")).to_have_value("openai")
    browsing.refused_on_purpose("/checks/new/")

    page.get_by_label("secret_env").fill("OPENAI_API_KEY")
    page.get_by_label("Smoke tests in production").check()
    page.get_by_role("button", name="Add check").click()

    expect(page.get_by_text("Check openai added.")).to_be_visible()
    page.evaluate("window.checksPageStillLoaded = true")
    page.get_by_role("button", name="Test now check openai").click()
    answer = page.locator("[id^=result-]")
    expect(answer).to_contain_text("Queued")

    CheckResult.objects.filter(subject__name="openai").update(
        state="done",
        outcome=CheckOutcome.PASS,
        reason=CheckReason.OK,
        evidence="key accepted; gpt-4o-mini answered",
        latency_ms=40,
    )

    # The page asks again every 2 s while the answer is pending.
    expect(answer).to_contain_text("Passed", timeout=10_000)
    expect(answer).to_contain_text("key accepted; gpt-4o-mini answered")
    assert page.evaluate(STILL_LOADED)
