"""Every permission rule, as a table: who (persona) × what (action) → the answer.

These run against releases.policy directly, with no database; the view and workflow
tests check that the server enforces the same answers.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from releases import policy
from releases.models import ActorKind, ReleaseStatus, Role
from releases.policy import Access, Who

DENIED, ALLOWED, OVERRIDE = Access.DENIED, Access.ALLOWED, Access.OVERRIDE


def person(*roles: str, staff: bool = False, read_only: bool | None = None) -> Who:
    held = frozenset(roles)
    watching = policy.is_read_only(held, is_staff=staff) if read_only is None else read_only
    return Who(ActorKind.PERSON, held, staff, read_only=watching)


PERSONAS: dict[str, Who] = {
    "devops": person(Role.DEVOPS),
    "qa": person(Role.QA),
    "po": person(Role.PRODUCT_OWNER),
    "support": person(Role.SUPPORT),
    "outsider": person(),
    "admin": person(staff=True),
    "admin-qa": person(Role.QA, staff=True),
    "po-on-status-page": person(Role.PRODUCT_OWNER, read_only=True),
    "check:tls": Who(ActorKind.CHECK, check="tls"),
    "ci:qa": Who(ActorKind.PIPELINE, frozenset({Role.QA})),
    "ci:devops": Who(ActorKind.PIPELINE, frozenset({Role.DEVOPS})),
    "system": Who(ActorKind.SYSTEM),
}

Rule = Callable[[Who], Access]
ACTIONS: dict[str, Rule] = {
    "change a QA item": lambda who: policy.may_change_item(who, owner_role=Role.QA),
    "change a QA item checked by tls": lambda who: policy.may_change_item(
        who, owner_role=Role.QA, checks=["tls"]
    ),
    "change a support item": lambda who: policy.may_change_item(who, owner_role=Role.SUPPORT),
    "sign off QA": lambda who: policy.may_sign_off(who, role=Role.QA),
    "sign off as support": lambda who: policy.may_sign_off(who, role=Role.SUPPORT),
    "withdraw own sign-off": lambda who: policy.may_withdraw(who, signed_it=True),
    "withdraw another's sign-off": lambda who: policy.may_withdraw(who, signed_it=False),
    "approve go-live": policy.may_approve,
    "edit contacts": policy.may_edit_contacts,
    "record the deploy": lambda who: policy.may_set_status(who, status=ReleaseStatus.DEPLOYED),
    "cancel": lambda who: policy.may_set_status(who, status=ReleaseStatus.CANCELLED),
    "manage releases": policy.may_manage,
    "run checks": policy.may_run_checks,
    "tick a QA item over its failing check": lambda who: policy.may_override_check(
        who, owner_role=Role.QA
    ),
    "post an incident update": policy.may_post_update,
    "manage the maintenance window": policy.may_manage_window,
    "record the deploy's start or end": policy.may_record_deploy,
    "declare, mitigate, resolve or close a rollback": policy.may_declare_rollback,
    "tick a QA rollback step": lambda who: policy.may_tick_rollback_step(who, owner_role=Role.QA),
    "edit the contacts and the rollback plan": policy.may_edit_release_plan,
    "nudge a role": policy.may_nudge,
    "perform a QA item": lambda who: policy.may_perform(who, owner_role=Role.QA),
    "record how a delivery in flight ended": lambda who: policy.may_settle_performance(
        who, sending=True
    ),
    "say support is ready": policy.may_acknowledge,
}

# Columns in the order of ACTIONS.
TABLE: dict[str, tuple[Access, ...]] = {
    #                   QA    QA+tls  sup.  s/qa  s/sup own  other appr  cont  depl  canc  mgmt  run  over  post  win   dep   rbk   step  plan  nudge perf  settle ready  # noqa: E501
    "devops":          (DENIED, DENIED, DENIED, DENIED, DENIED, ALLOWED, DENIED, DENIED, DENIED, ALLOWED, DENIED, DENIED, ALLOWED, DENIED, ALLOWED, ALLOWED, ALLOWED, ALLOWED, DENIED, DENIED, DENIED, DENIED, DENIED, DENIED),  # noqa: E501
    "qa":              (ALLOWED, ALLOWED, DENIED, ALLOWED, DENIED, ALLOWED, DENIED, DENIED, DENIED, DENIED, DENIED, DENIED, ALLOWED, ALLOWED, DENIED, DENIED, DENIED, DENIED, ALLOWED, DENIED, DENIED, ALLOWED, DENIED, DENIED),  # noqa: E501
    "po":              (DENIED, DENIED, DENIED, DENIED, DENIED, ALLOWED, DENIED, ALLOWED, ALLOWED, ALLOWED, ALLOWED, DENIED, ALLOWED, DENIED, ALLOWED, ALLOWED, ALLOWED, ALLOWED, DENIED, DENIED, ALLOWED, ALLOWED, DENIED, DENIED),  # noqa: E501
    "support":         (DENIED, DENIED, DENIED, DENIED, DENIED, DENIED, DENIED, DENIED, DENIED, DENIED, DENIED, DENIED, DENIED, DENIED, DENIED, DENIED, DENIED, DENIED, DENIED, DENIED, DENIED, DENIED, DENIED, ALLOWED),  # noqa: E501
    "outsider":        (DENIED, DENIED, DENIED, DENIED, DENIED, DENIED, DENIED, DENIED, DENIED, DENIED, DENIED, DENIED, DENIED, DENIED, DENIED, DENIED, DENIED, DENIED, DENIED, DENIED, DENIED, DENIED, DENIED, DENIED),  # noqa: E501
    "admin":           (OVERRIDE, OVERRIDE, OVERRIDE, OVERRIDE, DENIED, ALLOWED, OVERRIDE, OVERRIDE, OVERRIDE, OVERRIDE, OVERRIDE, ALLOWED, OVERRIDE, OVERRIDE, OVERRIDE, ALLOWED, OVERRIDE, OVERRIDE, OVERRIDE, ALLOWED, ALLOWED, OVERRIDE, DENIED, DENIED),  # noqa: E501
    "admin-qa":        (ALLOWED, ALLOWED, OVERRIDE, ALLOWED, DENIED, ALLOWED, OVERRIDE, OVERRIDE, OVERRIDE, OVERRIDE, OVERRIDE, ALLOWED, ALLOWED, ALLOWED, OVERRIDE, ALLOWED, OVERRIDE, OVERRIDE, ALLOWED, ALLOWED, ALLOWED, ALLOWED, DENIED, DENIED),  # noqa: E501
    "po-on-status-page": (DENIED, DENIED, DENIED, DENIED, DENIED, DENIED, DENIED, DENIED, DENIED, DENIED, DENIED, DENIED, DENIED, DENIED, DENIED, DENIED, DENIED, DENIED, DENIED, DENIED, DENIED, DENIED, DENIED, DENIED),  # noqa: E501
    "check:tls":       (DENIED, ALLOWED, DENIED, DENIED, DENIED, DENIED, DENIED, DENIED, DENIED, DENIED, DENIED, DENIED, DENIED, DENIED, DENIED, DENIED, DENIED, DENIED, DENIED, DENIED, DENIED, DENIED, DENIED, DENIED),  # noqa: E501
    "ci:qa":           (ALLOWED, ALLOWED, DENIED, DENIED, DENIED, DENIED, DENIED, DENIED, DENIED, DENIED, DENIED, DENIED, DENIED, DENIED, DENIED, DENIED, DENIED, DENIED, ALLOWED, DENIED, DENIED, DENIED, DENIED, DENIED),  # noqa: E501
    "ci:devops":       (DENIED, DENIED, DENIED, DENIED, DENIED, DENIED, DENIED, DENIED, DENIED, DENIED, DENIED, DENIED, DENIED, DENIED, ALLOWED, ALLOWED, ALLOWED, ALLOWED, DENIED, DENIED, DENIED, DENIED, DENIED, DENIED),  # noqa: E501
    "system":          (DENIED, DENIED, DENIED, DENIED, DENIED, DENIED, DENIED, DENIED, ALLOWED, DENIED, DENIED, ALLOWED, DENIED, DENIED, DENIED, DENIED, DENIED, DENIED, DENIED, DENIED, DENIED, DENIED, ALLOWED, DENIED),  # noqa: E501
}  # fmt: skip

CELLS = [
    (persona, action, TABLE[persona][column])
    for persona in PERSONAS
    for column, action in enumerate(ACTIONS)
]


def test_it_has_a_row_for_every_persona_and_a_column_for_every_action() -> None:
    assert set(TABLE) == set(PERSONAS)
    assert all(len(row) == len(ACTIONS) for row in TABLE.values())


@pytest.mark.parametrize(("persona", "action", "expected"), CELLS)
def test_it_answers_each_persona_and_action_as_the_table_says(
    persona: str, action: str, expected: Access
) -> None:
    assert ACTIONS[action](PERSONAS[persona]) is expected


@pytest.mark.parametrize(
    ("roles", "staff", "read_only"),
    [
        ({Role.SUPPORT}, False, True),
        (set(), False, True),
        ({Role.SUPPORT, Role.QA}, False, False),
        ({Role.SUPPORT}, True, False),
    ],
)
def test_it_treats_support_only_people_as_watching(
    roles: set[str], staff: bool, read_only: bool
) -> None:
    assert policy.is_read_only(roles, is_staff=staff) is read_only


def test_it_never_lets_a_check_settle_an_item_without_a_name() -> None:
    nameless = Who(ActorKind.CHECK, check="")

    assert policy.may_change_item(nameless, owner_role=Role.QA, checks=[""]) is DENIED


def test_it_lists_personal_obstacles_before_the_release_reasons() -> None:
    obstacles = policy.personal_obstacles(
        ["Pending: x"],
        already_approved=True,
        may_approve=False,
        signed_off=True,
        two_person_rule=True,
    )

    assert obstacles[0].startswith("Two-person rule")
    assert obstacles[1:] == [
        "Only the Product Owner approves go-live.",
        "Go-live is already approved.",
        "Pending: x",
    ]
