"""The elevenlabs kind against a stand-in ElevenLabs answering as its API reference
documents: the subscription, a voice, and the error details."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack
from typing import Any

import pytest

from checks.kinds import elevenlabs
from checks.kinds.base import Reason

from .standin import stand_in
from .test_vendor_kinds import (
    Serve,
    assert_not_verified_at_once,
    assert_permanent,
    assert_secret_only_in_headers,
    assert_transient,
    context,
    failure,
    success,
)
from .vendors import ELEVENLABS_KEY, ElevenLabs

ENV = {"ELEVENLABS_KEY": ELEVENLABS_KEY}
VOICE = "21m00Tcm4TlvDq8ikWAM"


@pytest.fixture
def serve() -> Iterator[Serve]:
    with ExitStack() as servers:
        yield lambda vendor: servers.enter_context(stand_in(vendor))


def options(url: str, **more: Any) -> dict[str, Any]:
    return {"secret_env": "ELEVENLABS_KEY", "base_url": url, **more}


def test_it_passes_with_an_active_subscription_and_the_voice_found(serve: Serve) -> None:
    server = serve(ElevenLabs())
    evidence = success(
        elevenlabs.KIND,
        context(options(server.url, voice_id=VOICE, min_characters=5000), ENV),
    )
    assert evidence == (
        "key accepted; creator subscription active; 75000 of 100000 characters left; "
        "voice 21m00Tcm4TlvDq8ikWAM (Rachel)"
    )
    assert [seen.path for seen in server.requests] == [
        "/v1/user/subscription",
        "/v1/voices/21m00Tcm4TlvDq8ikWAM",
    ]
    assert {seen.header("xi-api-key") for seen in server.requests} == {ELEVENLABS_KEY}
    assert_secret_only_in_headers(server.requests, ELEVENLABS_KEY)


def test_it_accepts_a_trialing_subscription_without_a_voice(serve: Serve) -> None:
    server = serve(ElevenLabs(status="trialing", tier="free"))
    evidence = success(elevenlabs.KIND, context(options(server.url), ENV))
    assert evidence == "key accepted; free subscription trialing; 75000 of 100000 characters left"


@pytest.mark.parametrize("legacy", [True, False])
def test_it_fails_auth_for_a_refused_key_in_either_error_shape(legacy: bool, serve: Serve) -> None:
    server = serve(ElevenLabs(key="sk_the_real_one", legacy_errors=legacy))
    error = failure(elevenlabs.KIND, context(options(server.url), ENV))
    assert_permanent(error, Reason.AUTH_FAILED)
    assert "invalid_api_key" in error.evidence


@pytest.mark.parametrize("status", ["past_due", "free_disabled", "incomplete"])
def test_it_names_a_subscription_that_is_neither_active_nor_trialing(
    status: str, serve: Serve
) -> None:
    server = serve(ElevenLabs(status=status))
    error = failure(elevenlabs.KIND, context(options(server.url), ENV))
    assert_permanent(error, Reason.MISCONFIGURED)
    assert f"subscription status is {status}" in error.evidence


def test_it_does_not_verify_a_subscription_status_the_api_does_not_document(
    serve: Serve,
) -> None:
    """SubscriptionStatusType: trialing, active, incomplete, past_due, free, free_disabled."""
    server = serve(ElevenLabs(status="paused"))
    error = failure(elevenlabs.KIND, context(options(server.url), ENV))
    assert_not_verified_at_once(error)
    assert error.evidence == (
        "subscription status is paused, which is not one the API documents "
        "(trialing, active, incomplete, past_due, free, free_disabled)"
    )


def test_it_fails_below_the_minimum_with_both_numbers(serve: Serve) -> None:
    server = serve(ElevenLabs(character_count=99000))
    error = failure(elevenlabs.KIND, context(options(server.url, min_characters=5000), ENV))
    assert_permanent(error, Reason.QUOTA_EXHAUSTED)
    assert error.evidence == (
        "1000 of 100000 characters left, below the minimum of 5000, and usage-based billing is off"
    )


def test_it_fails_an_exhausted_quota_without_a_minimum(serve: Serve) -> None:
    server = serve(ElevenLabs(character_count=100000))
    error = failure(elevenlabs.KIND, context(options(server.url), ENV))
    assert_permanent(error, Reason.QUOTA_EXHAUSTED)


def test_it_fails_quota_exceeded_answers_for_good(serve: Serve) -> None:
    server = serve(ElevenLabs(mode="quota"))
    error = failure(elevenlabs.KIND, context(options(server.url), ENV))
    assert_permanent(error, Reason.QUOTA_EXHAUSTED)
    assert "quota_exceeded" in error.evidence


@pytest.mark.parametrize("status", [400, 404])
def test_it_names_an_unknown_voice(status: int, serve: Serve) -> None:
    server = serve(ElevenLabs(voice_missing_status=status))
    error = failure(elevenlabs.KIND, context(options(server.url, voice_id="nope"), ENV))
    assert_permanent(error, Reason.MISCONFIGURED)
    assert error.evidence.startswith("voice nope not found")


@pytest.mark.parametrize(
    "code",
    [
        "too_many_concurrent_requests",
        "system_busy",
        "rate_limit_exceeded",
        "concurrent_limit_exceeded",
    ],
)
def test_it_retries_a_busy_elevenlabs(code: str, serve: Serve) -> None:
    vendor = ElevenLabs(mode="busy", busy_code=code, limit_headers={"Retry-After": "3"})
    server = serve(vendor)
    error = failure(elevenlabs.KIND, context(options(server.url), ENV))
    assert_transient(error, Reason.RATE_LIMITED, 3.0)
    assert code in error.evidence


def test_it_reads_a_validation_error_whose_detail_is_a_list(serve: Serve) -> None:
    server = serve(ElevenLabs(mode="invalid"))
    error = failure(elevenlabs.KIND, context(options(server.url), ENV))
    assert_transient(error, Reason.BAD_RESPONSE)
    assert "422" in error.evidence


# The default threshold and usage-based billing ------------------------------------------


def test_it_fails_when_less_than_five_percent_of_the_period_is_left(serve: Serve) -> None:
    """character_limit is "the maximum number of characters allowed in the current billing
    period" and character_count "the number of characters used":
    https://elevenlabs.io/docs/api-reference/user/subscription/get"""
    server = serve(ElevenLabs(character_count=95001))
    error = failure(elevenlabs.KIND, context(options(server.url), ENV))
    assert_permanent(error, Reason.QUOTA_EXHAUSTED)
    assert error.evidence == (
        "4999 of 100000 characters left, below 5 % of the period's characters (5000), "
        "and usage-based billing is off"
    )
    server = serve(ElevenLabs(character_count=95000))
    assert success(elevenlabs.KIND, context(options(server.url), ENV)) == (
        "key accepted; creator subscription active; 5000 of 100000 characters left"
    )


def test_it_counts_uncapped_usage_based_billing_and_says_it_is_billed(serve: Serve) -> None:
    """can_extend_character_limit: "Whether the workspace is entitled to enter overages
    (usage-based billing)"; max_credit_limit_extension: "unlimited" means no cap:
    https://elevenlabs.io/docs/api-reference/user/subscription/get"""
    server = serve(ElevenLabs(character_count=99000, can_extend=True, credit_extension="unlimited"))
    evidence = success(elevenlabs.KIND, context(options(server.url), ENV))
    assert evidence == (
        "key accepted; creator subscription active; 1000 of 100000 characters left, below 5 % "
        "of the period's characters (5000), but usage-based billing is on with no cap: "
        "characters past the limit are billed as overage"
    )


def test_it_counts_a_capped_overage_only_up_to_its_cap(serve: Serve) -> None:
    """max_credit_limit_extension: "Maximum number of credits that the credit limit can be
    exceeded by. Managed by the workspace admin.":
    https://elevenlabs.io/docs/api-reference/user/subscription/get"""
    server = serve(ElevenLabs(character_count=99000, can_extend=True, credit_extension=10000))
    assert success(elevenlabs.KIND, context(options(server.url), ENV)) == (
        "key accepted; creator subscription active; 1000 of 100000 characters left, below 5 % "
        "of the period's characters (5000), but usage-based billing allows 10000 characters "
        "past the limit, billed as overage"
    )
    server = serve(ElevenLabs(character_count=104000, can_extend=True, credit_extension=5000))
    error = failure(elevenlabs.KIND, context(options(server.url), ENV))
    assert_permanent(error, Reason.QUOTA_EXHAUSTED)
    assert error.evidence == (
        "4000 characters past the limit of 100000, below 5 % of the period's characters "
        "(5000) even with the 5000 characters usage-based billing allows past the limit"
    )


@pytest.mark.parametrize(
    ("can_extend", "credit_extension"),
    [(True, 0), (False, "unlimited"), (False, 50000)],
    ids=["entitled-but-off", "not-entitled-unlimited", "not-entitled-capped"],
)
def test_it_counts_no_overage_unless_entitled_and_switched_on(
    can_extend: bool, credit_extension: int | str, serve: Serve
) -> None:
    """`0` means usage-based billing is disabled; can_extend_character_limit is the
    entitlement: https://elevenlabs.io/docs/api-reference/user/subscription/get"""
    server = serve(
        ElevenLabs(character_count=99000, can_extend=can_extend, credit_extension=credit_extension)
    )
    error = failure(elevenlabs.KIND, context(options(server.url), ENV))
    assert_permanent(error, Reason.QUOTA_EXHAUSTED)
    assert error.evidence.endswith("and usage-based billing is off")


def test_it_reads_the_deprecated_extension_fields_of_an_older_answer(serve: Serve) -> None:
    """allowed_to_extend_character_limit: "Deprecated: use max_credit_limit_extension != 0";
    max_character_limit_extension: "Deprecated: use max_credit_limit_extension":
    https://elevenlabs.io/docs/api-reference/user/subscription/get"""
    vendor = ElevenLabs(
        character_count=99000,
        can_extend=True,
        credit_extension=None,
        allowed_to_extend=True,
        character_extension=20000,
    )
    server = serve(vendor)
    assert success(elevenlabs.KIND, context(options(server.url), ENV)).endswith(
        "but usage-based billing allows 20000 characters past the limit, billed as overage"
    )
    vendor.character_extension = None
    error = failure(elevenlabs.KIND, context(options(server.url), ENV))
    assert_permanent(error, Reason.QUOTA_EXHAUSTED)


# Scoped keys ------------------------------------------------------------------------------


def test_it_reads_the_voice_but_does_not_pass_when_the_key_lacks_user_read(serve: Serve) -> None:
    """A scoped key without a permission gets 401 with detail.code/status
    missing_permissions and a message naming the permission:
    https://elevenlabs.io/docs/eleven-api/resources/errors"""
    server = serve(ElevenLabs(permissions=frozenset({"voices_read"}), legacy_errors=False))
    error = failure(elevenlabs.KIND, context(options(server.url, voice_id=VOICE), ENV))
    assert_permanent(error, Reason.MISCONFIGURED)
    assert error.evidence == (
        "the key is valid but lacks the permission user_read, so the subscription and its "
        "quota cannot be read; voice 21m00Tcm4TlvDq8ikWAM (Rachel) found"
    )
    assert [seen.path for seen in server.requests] == [
        "/v1/user/subscription",
        "/v1/voices/21m00Tcm4TlvDq8ikWAM",
    ]


def test_it_judges_the_subscription_but_not_a_voice_it_may_not_read(serve: Serve) -> None:
    """https://elevenlabs.io/docs/eleven-api/resources/errors (missing_permissions)"""
    server = serve(ElevenLabs(permissions=frozenset({"user_read"})))
    error = failure(elevenlabs.KIND, context(options(server.url, voice_id=VOICE), ENV))
    assert_permanent(error, Reason.MISCONFIGURED)
    assert error.evidence == (
        "the key is valid but lacks the permission voices_read, so the voice cannot be read"
    )


def test_it_names_every_permission_the_key_lacks(serve: Serve) -> None:
    """https://elevenlabs.io/docs/eleven-api/resources/errors (missing_permissions)"""
    server = serve(ElevenLabs(permissions=frozenset()))
    error = failure(elevenlabs.KIND, context(options(server.url, voice_id=VOICE), ENV))
    assert_permanent(error, Reason.MISCONFIGURED)
    assert error.evidence == (
        "the key is valid but lacks the permission user_read, so the subscription and its "
        "quota cannot be read; the key is valid but lacks the permission voices_read, so the "
        "voice cannot be read"
    )


def test_it_reports_an_unknown_voice_beside_an_unreadable_subscription(serve: Serve) -> None:
    """https://elevenlabs.io/docs/eleven-api/resources/errors (missing_permissions), and
    voice_not_found: https://help.elevenlabs.io/hc/en-us/articles/19572237925521"""
    server = serve(ElevenLabs(permissions=frozenset({"voices_read"})))
    error = failure(elevenlabs.KIND, context(options(server.url, voice_id="nope"), ENV))
    assert_permanent(error, Reason.MISCONFIGURED)
    assert error.evidence == (
        "the key is valid but lacks the permission user_read, so the subscription and its "
        "quota cannot be read; voice nope not found (HTTP 400 voice_not_found)"
    )


# Not found --------------------------------------------------------------------------------


def test_it_fails_a_voice_that_does_not_exist_without_retrying(serve: Serve) -> None:
    """Errors carry detail.code (or the legacy detail.status); a voice id that names no
    voice answers 400 voice_does_not_exist (or voice_not_found):
    https://elevenlabs.io/docs/eleven-api/resources/errors"""
    vendor = ElevenLabs(voice_missing_code="voice_does_not_exist", legacy_errors=False)
    server = serve(vendor)
    error = failure(elevenlabs.KIND, context(options(server.url, voice_id="nope"), ENV))
    assert_permanent(error, Reason.MISCONFIGURED)
    assert error.evidence == "voice nope not found (HTTP 400 voice_does_not_exist)"
    assert len(server.requests) == 2


def test_it_fails_a_base_url_that_serves_no_subscription(serve: Serve) -> None:
    """GET /v1/user/subscription is the documented path:
    https://elevenlabs.io/docs/api-reference/user/subscription/get"""
    server = serve(ElevenLabs())
    error = failure(elevenlabs.KIND, context(options(server.url + "/proxy"), ENV))
    assert_permanent(error, Reason.MISCONFIGURED)
    assert error.evidence == "subscription: not found (HTTP 404); check base_url"
