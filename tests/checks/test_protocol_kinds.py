"""What every protocol kind shares; each kind (http, tls, dns, webhook, cors) has a
test_kind_*.py file of its own."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from checks.kinds import cors, dns, http, tls, webhook
from checks.kinds.base import OPTION_TYPES, CheckError, Context, Kind, Reason
from tests.checks.protocol_standins import (
    Certificates,
    Shared,
    certificates,
    shared_stand_in,
)
from tests.checks.standin import Answer, StandIn

KINDS = [http.KIND, webhook.KIND, tls.KIND, dns.KIND, cors.KIND]

Serve = Callable[[Answer], StandIn]


def context(**options: Any) -> Context:
    return Context(options=options, release_version="v1.0.0", env={})


def failure(kind: Kind, **options: Any) -> CheckError:
    with pytest.raises(CheckError) as caught:
        kind.run(context(**options))
    return caught.value


def assert_fault(error: CheckError, evidence: str) -> None:
    assert (error.permanent, error.reason) == (True, Reason.MISCONFIGURED)
    assert evidence in error.evidence


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Certificates:
    return certificates(tmp_path_factory.mktemp("certificates"))


@pytest.fixture(scope="module")
def plain_server() -> Iterator[Shared]:
    with shared_stand_in() as shared:
        yield shared


@pytest.fixture
def serve(plain_server: Shared) -> Serve:
    """An http:// stand-in that answers this test as it asks."""
    return plain_server.serve


@pytest.mark.parametrize("kind", KINDS, ids=lambda kind: kind.name)
def test_it_declares_only_options_a_checks_file_may_set(kind: Kind) -> None:
    assert kind.options <= OPTION_TYPES.keys()
    assert kind.docs_url.startswith("https://")
    assert kind.check_options is not None


def test_checks_starting_together_share_one_trust_store() -> None:
    from concurrent.futures import ThreadPoolExecutor

    from checks.kinds import client

    client._contexts.pop("", None)
    with ThreadPoolExecutor(16) as pool:
        contexts = list(pool.map(lambda _index: client.ssl_context(), range(32)))

    assert len({id(context) for context in contexts}) == 1
