"""`perform=` in a checklist: the action the app performs for an item, read, refused
with its line when it names no action, and written back as it was."""

from __future__ import annotations

from typing import Any

import pytest

from releases import checklists, workflow
from releases.markdown import ChecklistError, parse_checklist, render_checklist

DOC = """# Release

## Despliegue

### Preparación

- [ ] Notificar a los stakeholders <!-- deploycheck: owner=po perform=announce:stakeholders -->
- [ ] El equipo de soporte está informado <!-- deploycheck: perform=acknowledge:support -->
- [ ] Notificar a los usuarios
  <!-- deploycheck: owner=po perform=announce:users -->
- [ ] Programar la retrospectiva <!-- deploycheck: perform=retrospective optional -->
- [ ] Sin acción
"""


def test_it_reads_the_action_of_each_item() -> None:
    doc = parse_checklist(DOC)

    assert [item.perform for item in doc.items] == [
        "announce:stakeholders",
        "acknowledge:support",
        "announce:users",
        "retrospective",
        "",
    ]
    assert doc.items[3].required is False


def test_it_writes_the_action_back_and_reads_its_own_export_byte_for_byte() -> None:
    once = render_checklist(parse_checklist(DOC))
    twice = render_checklist(parse_checklist(once))

    assert twice == once
    assert "perform=announce:stakeholders -->" in once
    assert "<!-- deploycheck: owner=po perform=announce:users -->" in once
    assert parse_checklist(once).items == parse_checklist(DOC).items


@pytest.mark.parametrize(
    ("directive", "message"),
    [
        ("perform=shout:everyone", "unknown perform action 'shout:everyone'"),
        ("perform=announce:", "unknown perform action 'announce:'"),
        ("perform=acknowledge:qa", "unknown perform action 'acknowledge:qa'"),
        ("perform=retrospective:po", "unknown perform action 'retrospective:po'"),
        ("perform=announce:Users", "unknown perform action 'announce:Users'"),
        (
            "perform=retrospective perform=announce:people",
            "two perform actions ('retrospective' and 'announce:people')",
        ),
    ],
)
def test_it_refuses_what_names_no_action_at_its_line(directive: str, message: str) -> None:
    source = f"# T\n\n## P\n\n- [ ] fine\n- [ ] item <!-- deploycheck: {directive} -->\n"

    with pytest.raises(ChecklistError) as caught:
        parse_checklist(source)

    assert caught.value.line == 6
    assert caught.value.message.startswith(message)


def test_an_unknown_action_is_told_which_ones_exist() -> None:
    with pytest.raises(ChecklistError) as caught:
        parse_checklist("- [ ] item <!-- deploycheck: perform=tweet -->\n")

    assert caught.value.message == (
        "unknown perform action 'tweet' (expected announce:people, announce:stakeholders, "
        "announce:CHANNEL, acknowledge:support, retrospective)"
    )


def test_an_action_under_a_heading_is_refused() -> None:
    source = "# T\n\n## P\n<!-- deploycheck: perform=retrospective -->\n\n- [ ] item\n"

    with pytest.raises(ChecklistError) as caught:
        parse_checklist(source)

    assert caught.value.line == 4
    assert caught.value.message == "perform= belongs to an item, not to a heading"


@pytest.mark.django_db
def test_a_template_and_its_releases_keep_the_action_and_export_it(users: dict[str, Any]) -> None:
    template = workflow.import_template(parse_checklist(DOC), "comms", by=users["admin"])
    release = workflow.create_release(template, version="v2.0.0", title="Comms", by=users["admin"])

    assert [i.perform for i in release.items.order_by("position")][:2] == [
        "announce:stakeholders",
        "acknowledge:support",
    ]
    exported = checklists.export_release(release)
    assert "perform=acknowledge:support" in exported
    again = parse_checklist(checklists.export_template(template))
    assert [i.perform for i in again.items] == [i.perform for i in parse_checklist(DOC).items]
