"""The supabase kind against a stand-in project: its gateway, GoTrue's health, and
PostgREST answering reads, counts and errors as its documentation describes."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack
from typing import Any

import pytest

from checks.kinds import supabase
from checks.kinds.base import Reason

from .standin import stand_in
from .test_vendor_kinds import (
    Serve,
    assert_permanent,
    assert_secret_only_in_headers,
    assert_transient,
    context,
    failure,
    success,
)
from .vendors import (
    PLANTED_ROW,
    SUPABASE_ANON_KEY,
    SUPABASE_JWT,
    SUPABASE_KEY,
    SUPABASE_SERVICE_JWT,
    Supabase,
)

ENV = {"SUPABASE_KEY": SUPABASE_KEY}
ANON_ENV = {"SUPABASE_ANON_KEY": SUPABASE_ANON_KEY}


@pytest.fixture
def serve() -> Iterator[Serve]:
    with ExitStack() as servers:
        yield lambda vendor: servers.enter_context(stand_in(vendor))


def options(url: str, tables: list[str] | None = None) -> dict[str, Any]:
    found: dict[str, Any] = {"secret_env": "SUPABASE_KEY", "base_url": url}
    if tables is not None:
        found["tables"] = tables
    return found


def anon_options(url: str, tables: list[str]) -> dict[str, Any]:
    return {"secret_env": "SUPABASE_ANON_KEY", "base_url": url, "tables": tables, "role": "anon"}


# The service key (the default role) ------------------------------------------------------


def test_it_passes_with_a_new_key_in_apikey_only_and_fetches_no_row(serve: Serve) -> None:
    """limit=0 returns an empty array and still runs the query:
    https://docs.postgrest.org/en/stable/references/api/pagination_count.html"""
    server = serve(Supabase())
    evidence = success(supabase.KIND, context(options(server.url, ["profiles", "orders"]), ENV))
    assert (
        evidence == "key accepted; auth GoTrue v2.170.0 healthy; tables profiles, orders readable"
    )
    assert [(seen.path, seen.query) for seen in server.requests] == [
        ("/auth/v1/health", {}),
        ("/rest/v1/profiles", {"limit": ["0"]}),
        ("/rest/v1/orders", {"limit": ["0"]}),
    ]
    assert {seen.header("apikey") for seen in server.requests} == {SUPABASE_KEY}
    assert {seen.header("authorization") for seen in server.requests} == {""}
    assert_secret_only_in_headers(server.requests, SUPABASE_KEY)


def test_it_sends_a_legacy_jwt_as_bearer_too(serve: Serve) -> None:
    server = serve(Supabase())
    success(
        supabase.KIND, context(options(server.url, ["profiles"]), {"SUPABASE_KEY": SUPABASE_JWT})
    )
    assert {seen.header("authorization") for seen in server.requests} == {f"Bearer {SUPABASE_JWT}"}


def test_it_url_quotes_a_table_name(serve: Serve) -> None:
    server = serve(Supabase(tables={"order items": "rls"}))
    success(supabase.KIND, context(options(server.url, ["order items"]), ENV))
    assert server.requests[1].path == "/rest/v1/order%20items"


def test_it_fails_auth_when_the_gateway_refuses_the_key(serve: Serve) -> None:
    server = serve(Supabase(keys={"sb_secret_the_real_one": "service_role"}))
    error = failure(supabase.KIND, context(options(server.url), ENV))
    assert_permanent(error, Reason.AUTH_FAILED)
    assert "gateway refused the API key" in error.evidence


def test_it_fails_auth_when_no_key_reaches_the_gateway(serve: Serve) -> None:
    server = serve(Supabase(mode="key_stripped"))
    error = failure(supabase.KIND, context(options(server.url), ENV))
    assert_permanent(error, Reason.AUTH_FAILED)
    assert error.evidence == "auth health: no API key reached the gateway (HTTP 401)"


def test_it_names_a_missing_table(serve: Serve) -> None:
    server = serve(Supabase())
    error = failure(supabase.KIND, context(options(server.url, ["profile"]), ENV))
    assert_permanent(error, Reason.MISCONFIGURED)
    assert error.evidence == "table profile not found (HTTP 404 PGRST205)"


def test_it_names_a_table_without_a_grant(serve: Serve) -> None:
    server = serve(Supabase(tables={"profiles": "no_grant"}))
    error = failure(supabase.KIND, context(options(server.url, ["profiles"]), ENV))
    assert_permanent(error, Reason.MISCONFIGURED)
    assert error.evidence == "permission denied on profiles: missing GRANT (HTTP 403 42501)"


def test_it_fails_auth_when_postgrest_rejects_the_jwt(serve: Serve) -> None:
    server = serve(Supabase(mode="jwt_rejected"))
    error = failure(supabase.KIND, context(options(server.url, ["profiles"]), ENV))
    assert_permanent(error, Reason.AUTH_FAILED)
    assert "PGRST301" in error.evidence


def test_it_retries_when_the_database_is_unreachable(serve: Serve) -> None:
    server = serve(Supabase(mode="db_down"))
    error = failure(supabase.KIND, context(options(server.url, ["profiles"]), ENV))
    assert_transient(error, Reason.VENDOR_DOWN)
    assert "PGRST002" in error.evidence


def test_it_fails_a_paused_project_for_good(serve: Serve) -> None:
    server = serve(Supabase(mode="paused"))
    error = failure(supabase.KIND, context(options(server.url), ENV))
    assert_permanent(error, Reason.MISCONFIGURED)
    assert "paused" in error.evidence


def test_it_never_keeps_row_contents(serve: Serve) -> None:
    server = serve(Supabase())
    evidence = success(supabase.KIND, context(options(server.url, ["profiles"]), ENV))
    assert PLANTED_ROW not in evidence


# The anon key: row-level security --------------------------------------------------------


def test_it_passes_anon_when_row_level_security_hides_every_row(serve: Serve) -> None:
    """With Prefer: count=exact the total after Content-Range's slash counts the rows the
    role can see; an empty result reads */0:
    https://docs.postgrest.org/en/stable/references/api/pagination_count.html"""
    server = serve(Supabase())
    evidence = success(
        supabase.KIND, context(anon_options(server.url, ["profiles", "orders"]), ANON_ENV)
    )
    assert evidence == (
        "key accepted; auth GoTrue v2.170.0 healthy; anon sees no rows in profiles, orders"
    )
    assert [(seen.path, seen.query) for seen in server.requests] == [
        ("/auth/v1/health", {}),
        ("/rest/v1/profiles", {"limit": ["0"]}),
        ("/rest/v1/orders", {"limit": ["0"]}),
    ]
    assert [seen.header("prefer") for seen in server.requests[1:]] == ["count=exact"] * 2
    assert {seen.header("apikey") for seen in server.requests} == {SUPABASE_ANON_KEY}
    assert {seen.header("authorization") for seen in server.requests} == {""}


def test_it_passes_anon_refused_with_permission_denied(serve: Serve) -> None:
    """42501 (insufficient privilege) answers 401 for the anonymous role, with the body
    {"code","details","hint","message"}:
    https://docs.postgrest.org/en/stable/references/errors.html"""
    server = serve(Supabase(tables={"profiles": "rls", "secrets": "revoked"}))
    evidence = success(
        supabase.KIND, context(anon_options(server.url, ["profiles", "secrets"]), ANON_ENV)
    )
    assert evidence == (
        "key accepted; auth GoTrue v2.170.0 healthy; anon sees no rows in profiles; "
        "anon is refused on secrets (permission denied)"
    )


def test_it_fails_a_table_whose_rows_anon_can_read_naming_it(serve: Serve) -> None:
    """A role allowed to read gets the count of its rows, e.g. Content-Range */3 with 206:
    https://docs.postgrest.org/en/stable/references/api/pagination_count.html"""
    server = serve(Supabase(tables={"profiles": "rls", "orders": "open"}))
    error = failure(
        supabase.KIND, context(anon_options(server.url, ["profiles", "orders"]), ANON_ENV)
    )
    assert_permanent(error, Reason.MISCONFIGURED)
    assert error.evidence == (
        "table orders: anon can read its 3 rows; row-level security is off or a policy lets "
        "anon read them"
    )


def test_it_sends_a_legacy_anon_jwt_as_bearer_too(serve: Serve) -> None:
    """Legacy keys are JWTs and go in apikey and Authorization:
    https://supabase.com/docs/guides/api/api-keys"""
    server = serve(Supabase())
    evidence = success(
        supabase.KIND,
        context(anon_options(server.url, ["profiles"]), {"SUPABASE_ANON_KEY": SUPABASE_JWT}),
    )
    assert evidence.endswith("anon sees no rows in profiles")
    assert {seen.header("authorization") for seen in server.requests} == {f"Bearer {SUPABASE_JWT}"}


@pytest.mark.parametrize("key", [SUPABASE_KEY, SUPABASE_SERVICE_JWT], ids=["sb_secret", "jwt"])
def test_it_refuses_a_secret_key_for_role_anon_before_any_request(key: str, serve: Serve) -> None:
    """Secret and service_role keys bypass row-level security:
    https://supabase.com/docs/guides/api/api-keys"""
    server = serve(Supabase())
    error = failure(
        supabase.KIND,
        context(anon_options(server.url, ["profiles"]), {"SUPABASE_ANON_KEY": key}),
    )
    assert_permanent(error, Reason.MISCONFIGURED)
    assert error.evidence == (
        "role anon needs the project's anon or publishable key; this one is a secret key, "
        "which bypasses row-level security"
    )
    assert server.requests == []


def test_it_retries_an_anon_read_whose_rows_were_not_counted(serve: Serve) -> None:
    """Without a count the total is *, which says nothing about the rows:
    https://docs.postgrest.org/en/stable/references/api/pagination_count.html"""
    server = serve(Supabase(mode="prefer_stripped"))
    error = failure(supabase.KIND, context(anon_options(server.url, ["profiles"]), ANON_ENV))
    assert_transient(error, Reason.BAD_RESPONSE)
    assert error.evidence == "table profiles: HTTP 200 without a row count in Content-Range"


@pytest.mark.parametrize(
    ("given", "problem"),
    [
        ({"role": "admin", "tables": ["profiles"]}, "role must be service or anon, not admin"),
        ({"role": "anon"}, "role anon needs tables"),
        ({"role": "anon", "tables": []}, "role anon needs tables"),
    ],
)
def test_it_refuses_a_role_it_cannot_check_when_the_file_loads(
    given: dict[str, Any], problem: str
) -> None:
    """Row-level security is judged per table: https://supabase.com/docs/guides/database/postgres/row-level-security"""
    assert supabase.KIND.check_options is not None
    with pytest.raises(ValueError, match=problem):
        supabase.KIND.check_options(
            {"secret_env": "K", "base_url": "https://x.supabase.co", **given}
        )
