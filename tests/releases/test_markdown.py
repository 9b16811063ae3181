"""releases.markdown: reading Markdown checklists and writing them back.

Pure Python, no database and no Django settings.
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from markdown_it import MarkdownIt

from releases import markdown
from releases.markdown import (
    DEFAULT_MAX_ITEMS,
    MAX_FILE_BYTES,
    MAX_PHASE_LENGTH,
    MAX_SECTION_LENGTH,
    MAX_TITLE_LENGTH,
    RECORD_STATES,
    ROLE_KEYS,
    SEED_DEFAULTS,
    Checklist,
    ChecklistError,
    Contact,
    Item,
    Record,
    RollbackStep,
    apply_default_owners,
    bidi_controls,
    parse_checklist,
    read_checklist_bytes,
    read_checklist_file,
    render_checklist,
)

# The app ships the team's own production checklist as its default template.
SEED = (Path(__file__).parents[2] / "releases" / "data" / "checklist-produccion.md").read_text(
    encoding="utf-8"
)
# Sample inputs in the styles other teams write.
CHECKLISTS = Path(__file__).parent / "checklists"


def texts(doc: Checklist) -> list[str]:
    return [item.text for item in doc.items]


def without_records(doc: Checklist) -> Checklist:
    return dataclasses.replace(
        doc, items=tuple(dataclasses.replace(item, record=None) for item in doc.items)
    )


# The seed ---------------------------------------------------------------------------


def test_it_reads_the_seed() -> None:
    doc = parse_checklist(SEED)

    assert doc.summary() == (
        "3 phases, 13 sections, 66 items, 6 rollback steps, 5 emergency contacts"
    )
    assert doc.title == "Checklist de Despliegue a Producción"
    assert doc.description.startswith("Este documento proporciona una lista de verificación")
    assert doc.phases == ("Pre-Despliegue", "Despliegue", "Post-Despliegue")
    assert doc.sections[:2] == (
        ("Pre-Despliegue", "Código y Control de Versiones"),
        ("Pre-Despliegue", "Pruebas"),
    )
    assert doc.items[0] == Item(
        text="Todos los cambios están fusionados en la rama principal",
        phase="Pre-Despliegue",
        section="Código y Control de Versiones",
        owner=None,
    )
    assert doc.items[0].line == 9
    assert doc.gate_index is None
    assert all(item.required and item.record is None for item in doc.items)


def test_it_reads_the_seed_rollback_plan_and_contacts() -> None:
    doc = parse_checklist(SEED)

    assert doc.rollback_heading == "Plan de Rollback"
    assert doc.rollback_intro == (
        "En caso de problemas críticos durante o después del despliegue, "
        "seguir este plan de rollback:"
    )
    assert doc.rollback_steps[0] == RollbackStep(
        text="**Evaluación rápida**:\n"
        "- Determinar la severidad del problema\n"
        "- Decidir si es necesario un rollback completo o parcial",
        commands="",
    )
    frontend = doc.rollback_steps[1]
    assert frontend.text == "**Rollback de Frontend**:"
    assert frontend.lang == "bash"
    assert frontend.commands.splitlines() == [
        "docker-compose -f docker-compose.yml -f docker-compose.prod.yml pull frontend:previous",
        "docker-compose -f docker-compose.yml -f docker-compose.prod.yml up -d frontend",
    ]
    assert doc.contacts_heading == "Contactos de Emergencia"
    assert doc.contacts_header == ("Rol", "Nombre", "Contacto")
    assert doc.contacts[0] == Contact("DevOps Lead", "[Nombre]", "[Teléfono/Email]")
    assert [c.role for c in doc.contacts] == [
        "DevOps Lead",
        "Backend Lead",
        "Frontend Lead",
        "QA Lead",
        "Product Owner",
    ]


def test_it_gives_the_seed_its_default_owners_and_gate() -> None:
    doc = apply_default_owners(parse_checklist(SEED), *SEED_DEFAULTS)
    owner = {item.text: item.owner for item in doc.items}

    assert owner["Desplegar el frontend"] == "frontend"
    assert owner["Desplegar el backend"] == "backend"
    assert owner["Desplegar la base de datos (migraciones)"] == "backend"
    assert owner["Activar modo de mantenimiento (si es necesario)"] == "devops"
    assert owner["Validar la experiencia de usuario en diferentes dispositivos"] == "frontend"
    assert owner["Todas las pruebas unitarias pasan (backend y frontend)"] == "qa"
    assert owner["Se ha notificado a todos los stakeholders sobre el despliegue"] == "po"
    assert all(item.owner in ROLE_KEYS for item in doc.items)
    # 29 Pre-Despliegue items + 5 of Despliegue › Preparación stand before the gate.
    assert doc.gate_index == 34
    assert doc.items[34].section == "Proceso de Despliegue"
    assert doc.items[33].section == "Preparación"


def test_it_keeps_owners_the_document_already_gives() -> None:
    doc = parse_checklist(
        "## Pruebas\n- [ ] Desplegar el frontend <!-- deploycheck: owner=support -->\n- [ ] x\n"
    )

    owned = apply_default_owners(doc, {"Pruebas": "qa"}, {"Desplegar el frontend": "po"}, None)

    assert [item.owner for item in owned.items] == ["support", None]
    assert owned.gate_index is None


def test_it_refuses_a_gate_before_a_section_that_is_not_there() -> None:
    with pytest.raises(ChecklistError, match="no section named 'Nowhere'"):
        apply_default_owners(parse_checklist("- [ ] a\n"), {}, {}, "Nowhere")


def test_it_round_trips_the_seed_byte_for_byte() -> None:
    once = render_checklist(parse_checklist(SEED))
    twice = render_checklist(parse_checklist(once))

    assert twice == once
    owned = apply_default_owners(parse_checklist(SEED), *SEED_DEFAULTS)
    exported = render_checklist(owned)
    assert parse_checklist(exported) == owned
    assert render_checklist(parse_checklist(exported)) == exported


def test_it_reads_the_seed_file_with_a_bom_and_crlf(tmp_path: Path) -> None:
    path = tmp_path / "seed.md"
    path.write_bytes(b"\xef\xbb\xbf" + SEED.replace("\n", "\r\n").encode())

    assert read_checklist_file(path) == parse_checklist(SEED)


# Real-world variants ------------------------------------------------------------------

VARIANTS = {
    "star bullets": ("* [ ] a\n* [ ] b\n", 2),
    "plus bullets": ("+ [ ] a\n+ [x] b\n", 2),
    "ordered": ("1. [ ] a\n2. [ ] b\n\n1) [x] c\n", 3),
    "x and X": ("- [x] a\n- [X] b\n- [ ] c\n", 3),
    "nested": ("- [ ] a\n  - [ ] b\n    - [x] c\n  - not a task\n- [ ] d\n", 4),
    "continuation lines": ("- [ ] one\n  two\nthree\n- [ ] four\n", 2),
    "not tasks": ("- plain\n- [ ]no space\n- [] empty\n- [y] other\n- [ ] real\n", 1),
    "task list in a blockquote": ("> - [ ] quoted\n> - [x] too\n", 2),
    "fenced code": ("## P\n\n```md\n# not a heading\n- [ ] not an item\n```\n\n- [ ] real\n", 1),
    "indented code": ("Intro\n\n    - [ ] code, not an item\n\n- [ ] real\n", 1),
    "front matter": ("---\ntitle: x\nitems:\n- [ ] no\n---\n# T\n\n- [ ] a\n", 1),
    "HTML-commented items": (
        "<!--\n- [ ] hidden\n-->\n- [ ] shown\n\n<!-- - [ ] also hidden -->\n"
        "- [ ] shown <!-- - [ ] inline, hidden -->\n",
        2,
    ),
    "items before any heading": ("- [ ] a\n\n## P\n\n- [ ] b\n", 2),
    "no headings at all": ("Just a list.\n\n- [ ] a\n- [ ] b\n\nMore prose.\n\n- [ ] c\n", 3),
    "only # headings": ("# A\n- [ ] a\n# B\n- [ ] b\n", 2),
    "only #### headings": ("#### A\n- [ ] a\n#### B\n- [ ] b\n", 2),
    "CRLF": ("## P\r\n\r\n- [ ] a\r\n- [ ] b\r\n", 2),
    "CR only": ("## P\r\r- [ ] a\r- [ ] b\r", 2),
    "no final newline": ("## P\n\n- [ ] a\n- [ ] b", 2),
    "Japanese, Arabic, emoji": (
        "## 本番\n\n- [ ] デプロイを確認する\n- [ ] التحقق من النشر\n- [ ] 🚀 go\n",
        3,
    ),
    "setext headings": ("Fase\n====\n\n- [ ] a\n\nSección\n-------\n\n- [ ] b\n", 2),
    "loose list": ("- [ ] a\n\n- [ ] b\n\n\n- [ ] c\n", 3),
}


@pytest.mark.parametrize(("source", "count"), VARIANTS.values(), ids=VARIANTS.keys())
def test_it_counts_each_task_item_once(source: str, count: int) -> None:
    assert len(parse_checklist(source).items) == count


def test_it_reads_item_text_verbatim() -> None:
    doc = parse_checklist(
        "- [ ] See [the *docs*](https://example.com/a_b) and run `make  test`\n"
        "- [x]   padded   \n"
        "- [ ] one\n  two\nthree  \n  four\\\n  five\n"
        "- [ ] parent\n  - [ ] child\n"
    )

    assert texts(doc) == [
        "See [the *docs*](https://example.com/a_b) and run `make  test`",
        "padded",
        "one two three four\\ five",
        "parent",
        "child",
    ]


def test_it_does_not_keep_the_tick_of_an_imported_file() -> None:
    doc = parse_checklist("- [x] a\n- [X] b\n")

    assert [item.record for item in doc.items] == [None, None]
    assert render_checklist(doc) == "- [ ] a\n- [ ] b\n"


def test_it_reads_phases_sections_and_folded_headings() -> None:
    doc = parse_checklist(
        "# Title\n\nFirst paragraph.\n\nSecond\nparagraph.\n\n- not a task\n\n"
        "- [ ] loose\n\n"
        "## Phase A\n\n- [ ] a0\n\n### Seguridad\n\n- [ ] a1\n\n#### Red\n\n- [ ] a2\n\n"
        "##### Firewall\n\n- [ ] a3\n\n#### Host\n\n- [ ] a4\n\n### Otra\n\n- [ ] a5\n\n"
        "## Phase B\n\n- [ ] b0\n\n## Phase C\n\n#### Deep only\n\n- [ ] c0\n"
    )

    assert doc.title == "Title"
    assert doc.description == "First paragraph.\n\nSecond\nparagraph."
    assert [(i.text, i.phase, i.section) for i in doc.items] == [
        ("loose", "", ""),
        ("a0", "Phase A", ""),
        ("a1", "Phase A", "Seguridad"),
        ("a2", "Phase A", "Seguridad › Red"),
        ("a3", "Phase A", "Seguridad › Red › Firewall"),
        ("a4", "Phase A", "Seguridad › Host"),
        ("a5", "Phase A", "Otra"),
        ("b0", "Phase B", ""),
        ("c0", "Phase C", "Deep only"),
    ]
    assert doc.summary().startswith("3 phases, 6 sections, 9 items")


def test_it_reads_headings_of_one_level_as_phases() -> None:
    only_h1 = parse_checklist("# A\n- [ ] a\n# B\n- [ ] b\n")
    only_h4 = parse_checklist("#### A\n- [ ] a\n#### B\n- [ ] b\n")
    lone_title = parse_checklist("# A\n- [ ] a\n")

    assert only_h1.title == ""
    assert [(i.phase, i.section) for i in only_h1.items] == [("A", ""), ("B", "")]
    assert [(i.phase, i.section) for i in only_h4.items] == [("A", ""), ("B", "")]
    assert lone_title.title == "A"
    assert lone_title.phases == ("",)
    assert lone_title.summary() == (
        "0 phases, 0 sections, 1 items, 0 rollback steps, 0 emergency contacts"
    )


def test_it_reads_a_title_behind_front_matter_and_comments() -> None:
    doc = parse_checklist("---\nx: 1\n---\n<!-- markdownlint-disable -->\n# T\n\n- [ ] a\n")

    assert doc.title == "T"
    assert doc.items[0].phase == ""


def test_it_is_not_fooled_by_a_title_that_is_not_first() -> None:
    doc = parse_checklist("Intro.\n\n# A\n\n- [ ] a\n")

    assert doc.title == ""
    assert doc.description == "Intro."
    assert doc.items[0].phase == "A"


def test_it_reads_line_numbers_after_front_matter_and_crlf() -> None:
    doc = parse_checklist("---\na: 1\n---\r\n# T\r\n\r\n- [ ] a\r\n- [ ] b\n  c\n- [ ] d")

    assert [item.line for item in doc.items] == [6, 7, 9]


def nested_list(depth: int) -> str:
    """Task items each nested one level deeper than the last, ``depth`` levels in all."""
    return "".join(f"{'  ' * level}- [ ] level {level + 1}\n" for level in range(depth))


def test_it_reads_items_nested_as_deep_as_markdown_it_reads() -> None:
    doc = parse_checklist(nested_list(9) + "\n" + "> " * 17 + "- [ ] 17 quotes deep\n")

    assert texts(doc) == [*(f"level {n}" for n in range(1, 10)), "17 quotes deep"]


# markdown-it reads no deeper than 20 levels (a quote is one, a list two) and skips
# whatever is inside without a word.
TOO_DEEP = {
    "ten nested lists": (nested_list(12), 10),
    "ten nested lists, nothing after": (nested_list(10), 10),
    "deep quotes": ("- [ ] a\n\n" + "> " * 18 + "- [ ] quoted\n", 3),
    "quotes within quotes": ("- [ ] a\n\n" + "> " * 25 + "plain words\n", 3),
    "lists within quotes": (
        "> > > - [ ] q\n" + "".join(f"> > > {'  ' * n}- [ ] n{n}\n" for n in range(1, 9)),
        9,
    ),
    "under a plain bullet": (
        "- plain\n" + "".join(f"{'  ' * n}- n{n}\n" for n in range(1, 12)),
        10,
    ),
    "inside a rollback step": (
        "- [ ] a\n\n## Rollback\n\n1. undo\n" + "   > " * 20 + "echo\n",
        6,
    ),
}


@pytest.mark.parametrize(("source", "line"), TOO_DEEP.values(), ids=TOO_DEEP.keys())
def test_it_refuses_what_is_nested_too_deeply_to_be_read(source: str, line: int) -> None:
    with pytest.raises(ChecklistError) as caught:
        parse_checklist(source)

    assert caught.value.line == line
    assert caught.value.message.startswith("lists and quotes nest too deeply here")


def test_it_refuses_a_task_item_that_no_rule_reads(monkeypatch: pytest.MonkeyPatch) -> None:
    # The last line of defence: should any path through the reader ever miss a task item
    # markdown-it saw, the document is refused at that item instead of losing it. Simulate
    # such a path by making the reader blind to one item.
    task_item = markdown._Reader._task_item

    def blind(reader: markdown._Reader, index: int) -> markdown._ItemDraft | None:
        if reader.tokens[index + 2].content.endswith("lost"):
            return None
        return task_item(reader, index)

    monkeypatch.setattr(markdown._Reader, "_task_item", blind)

    with pytest.raises(ChecklistError) as caught:
        parse_checklist("- [ ] kept\n  > - [ ] lost\n- [ ] kept too\n")

    assert caught.value.line == 2
    assert "would be lost" in caught.value.message


# Annotations ----------------------------------------------------------------------------


def test_it_reads_item_annotations() -> None:
    doc = parse_checklist(
        "- [ ] TLS ok <!-- deploycheck: owner=qa optional check=tls check=http-health -->\n"
        "- [ ] Other <!-- a plain comment stays in the text -->\n"
        "- [ ] Split\n  <!-- deploycheck: owner=devops check=dns -->\n"
        "- [ ] Twice <!-- deploycheck: owner=po --> <!-- deploycheck: required check=x.y_z -->\n"
    )

    assert doc.items[0] == Item(
        text="TLS ok",
        phase="",
        section="",
        owner="qa",
        required=False,
        checks=("tls", "http-health"),
    )
    assert doc.items[1].text == "Other <!-- a plain comment stays in the text -->"
    assert doc.items[1].owner is None
    assert (doc.items[2].text, doc.items[2].owner, doc.items[2].checks) == (
        "Split",
        "devops",
        ("dns",),
    )
    assert (doc.items[3].owner, doc.items[3].required, doc.items[3].checks) == (
        "po",
        True,
        ("x.y_z",),
    )


def test_it_applies_heading_defaults_deepest_first() -> None:
    doc = parse_checklist(
        "# T\n<!-- deploycheck: owner=support -->\n\n- [ ] doc default\n\n"
        "## Phase\n<!-- deploycheck: owner=devops optional -->\n\n- [ ] phase default\n\n"
        "### Section\n<!-- plain -->\n<!-- deploycheck: owner=qa -->\n\n- [ ] section default\n"
        "- [ ] item wins <!-- deploycheck: owner=po required -->\n\n"
        "## Next\n\n- [ ] back to the title default\n"
    )

    assert [(i.owner, i.required) for i in doc.items] == [
        ("support", True),
        ("devops", False),
        ("qa", False),
        ("po", True),
        ("support", True),
    ]


def test_it_reads_the_gate_where_it_stands() -> None:
    between = parse_checklist("- [ ] a\n\n<!-- deploycheck: gate -->\n\n- [ ] b\n")
    under_heading = parse_checklist("- [ ] a\n## B\n<!-- deploycheck: gate owner=qa -->\n- [ ] b\n")
    first = parse_checklist("<!-- deploycheck: gate -->\n\n- [ ] a\n")
    last = parse_checklist("- [ ] a\n- [ ] b\n\n<!-- deploycheck: gate -->\n")
    inside_item = parse_checklist("- [ ] a\n  <!-- deploycheck: gate -->\n- [ ] b\n")

    assert between.gate_index == 1
    assert under_heading.gate_index == 1
    assert under_heading.items[1].owner == "qa"
    assert first.gate_index == 0
    assert last.gate_index == 2
    assert inside_item.gate_index == 1


def test_it_ignores_commented_out_annotations() -> None:
    doc = parse_checklist("<!--\n<!-- deploycheck: owner=nobody -->\n- [ ] a\n")

    assert doc.items[0].owner is None


# Errors ---------------------------------------------------------------------------------

NO_ITEMS = "no task items found (a task item is a list item starting with [ ] or [x])"


@pytest.mark.parametrize(
    "source",
    [
        "",
        "   \n\n",
        "# Only a title\n\nAnd prose.\n",
        "<!-- - [ ] hidden -->\n",
        "---\na: b\n---\n",
    ],
    ids=["empty", "blank", "prose", "commented out", "front matter only"],
)
def test_it_refuses_a_document_without_task_items(source: str) -> None:
    with pytest.raises(ChecklistError) as caught:
        parse_checklist(source)

    assert caught.value.line is None
    assert str(caught.value) == NO_ITEMS


ERRORS = {
    "unknown owner": (
        "## P\n\n- [ ] a\n- [ ] b <!-- deploycheck: owner=xyz -->\n",
        4,
        "unknown owner 'xyz' (expected one of devops, backend, frontend, qa, po, support)",
    ),
    "unknown owner under a heading": (
        "# T\n\n## P\n<!-- deploycheck: owner=lead -->\n- [ ] a\n",
        4,
        "unknown owner 'lead'",
    ),
    "unknown owner on a continuation line": (
        "- [ ] a\n  b <!-- deploycheck: owner=xyz -->\n",
        2,
        "unknown owner 'xyz'",
    ),
    "bad token": ("- [ ] a\n- [ ] b <!-- deploycheck: optinal -->\n", 2, "'optinal'"),
    "bad check name": ("- [ ] a <!-- deploycheck: check=TLS -->\n", 1, "bad check name 'TLS'"),
    "empty item": ("- [ ] a\n- [ ]\n", 2, "task item without text"),
    "empty item after its comment": (
        "- [ ] a\n\n- [x] <!-- deploycheck: owner=qa -->\n",
        3,
        "task item without text",
    ),
    "comment in the middle": (
        "- [ ] a <!-- deploycheck: owner=qa --> b\n",
        1,
        "must end the item's text",
    ),
    "two owners": ("- [ ] a <!-- deploycheck: owner=qa owner=po -->\n", 1, "two owners"),
    "optional and required": (
        "- [ ] a <!-- deploycheck: optional -->\n  <!-- deploycheck: required -->\n",
        2,
        "both optional and required",
    ),
    "check twice": ("- [ ] a <!-- deploycheck: check=x check=x -->\n", 1, "'x' is given twice"),
    "gate in an item's text": ("- [ ] a <!-- deploycheck: gate -->\n", 1, "'gate' goes in"),
    "two gates": (
        "<!-- deploycheck: gate -->\n\n- [ ] a\n\n<!-- deploycheck: gate -->\n",
        5,
        "a second gate (the first is on line 1)",
    ),
    "owner astray": ("- [ ] a\n\nProse.\n\n<!-- deploycheck: owner=qa -->\n", 5, "'owner=qa'"),
    "check on a heading": ("## P\n<!-- deploycheck: check=tls -->\n- [ ] a\n", 2, "check="),
    "text after a comment": ("- [ ] a\n\n<!-- deploycheck: gate --> now\n", 3, "'now'"),
    "record astray": ("- [ ] a\n\n<!-- deploycheck: record --> done\n", 3, "inside its task"),
    "task under the rollback plan": (
        "- [ ] a\n\n## Rollback\n\n1. step\n\n- [ ] not a step\n",
        7,
        "task item under 'Rollback'",
    ),
    "task under the contacts": (
        "- [ ] a\n\n## Contacts\n\n- [ ] call Ana\n",
        5,
        "task item under 'Contacts'",
    ),
    "narrow contacts table": ("- [ ] a\n\n## Contacts\n\n| a | b |\n|---|---|\n", 5, "2 columns"),
    "empty rollback step": ("- [ ] a\n\n## Rollback\n\n1. one\n2.\n", 6, "empty rollback step"),
    "two rollback plans": ("- [ ] a\n\n## Rollback\n\n## Reversión\n", 5, "second rollback"),
}


@pytest.mark.parametrize(("source", "line", "message"), ERRORS.values(), ids=ERRORS.keys())
def test_it_names_the_line_of_a_mistake(source: str, line: int, message: str) -> None:
    with pytest.raises(ChecklistError) as caught:
        parse_checklist(source)

    assert caught.value.line == line
    assert message in caught.value.message
    assert str(caught.value) == f"line {line}: {caught.value.message}"


def test_it_refuses_a_binary_file(tmp_path: Path) -> None:
    path = tmp_path / "image.md"
    path.write_bytes(b"- [ ] a\n- [ ] b\n\x89PNG\x00\x00")

    with pytest.raises(ChecklistError) as caught:
        read_checklist_file(path)

    assert caught.value.line == 3
    assert "binary" in caught.value.message


def test_it_refuses_text_that_is_not_utf8(tmp_path: Path) -> None:
    path = tmp_path / "latin1.md"
    path.write_bytes("## Fase\r\n\r\n- [ ] Configuración\r\n".encode("latin-1"))

    with pytest.raises(ChecklistError) as caught:
        read_checklist_file(path)

    assert caught.value.line == 3
    assert caught.value.message.startswith("not UTF-8 text")
    assert str(caught.value).startswith("line 3: not UTF-8 text")


def test_it_refuses_an_oversized_file(tmp_path: Path) -> None:
    path = tmp_path / "huge.md"
    path.write_bytes(b"- [ ] a\n" * (MAX_FILE_BYTES // 8 + 1))

    with pytest.raises(ChecklistError) as caught:
        read_checklist_file(path)

    assert caught.value.line is None
    assert str(caught.value) == (
        f"file is too large ({MAX_FILE_BYTES + 8} bytes, the limit is 1048576)"
    )
    with pytest.raises(ChecklistError, match="file is too large"):
        read_checklist_bytes(bytes(MAX_FILE_BYTES + 1))


def test_it_refuses_an_empty_file(tmp_path: Path) -> None:
    path = tmp_path / "empty.md"
    path.write_bytes(b"")

    with pytest.raises(ChecklistError, match=r"^no task items found"):
        read_checklist_file(path)


def test_it_accepts_a_file_of_exactly_the_limit() -> None:
    data = b"- [ ] a\n" + b" " * (MAX_FILE_BYTES - 8)

    assert len(read_checklist_bytes(data).items) == 1


def problems_of(source: str, **limits: int) -> list[tuple[int | None, str]]:
    with pytest.raises(ChecklistError) as caught:
        parse_checklist(source, **limits)
    return [(problem.line, problem.message) for problem in caught.value.problems]


def test_it_lists_every_problem_in_the_order_of_the_document() -> None:
    source = (
        "# Ship\n\n## Pre\n\n"
        "- [ ] one <!-- deploycheck: owner=nobody -->\n"
        "- [ ] fine\n"
        "- [ ] two <!-- deploycheck: check=Bad -->\n\n"
        "<!-- deploycheck: gate -->\n\n<!-- deploycheck: gate -->\n\n"
        "## Rollback\n\n1. undo\n\n- [ ] a step after numbered ones\n\n"
        "## Contacts\n\n| Role | Name |\n|---|---|\n"
    )

    assert problems_of(source) == [
        (5, "unknown owner 'nobody' (expected one of devops, backend, frontend, qa, po, support)"),
        (
            7,
            "bad check name 'Bad' (lowercase letters, digits, '.', '_' and '-', starting with "
            "a letter or digit)",
        ),
        (11, "a second gate (the first is on line 9)"),
        (
            17,
            "task item under 'Rollback', where the steps are a numbered list; move it under a "
            "phase heading, or rename the heading",
        ),
        (21, "the contacts table has 2 columns; it needs role | name | contact"),
    ]


def test_it_names_the_first_problem_as_the_error_itself() -> None:
    with pytest.raises(ChecklistError) as caught:
        parse_checklist(
            "- [ ] a <!-- deploycheck: bogus -->\n- [ ] b <!-- deploycheck: owner=x -->\n"
        )

    assert caught.value.line == 1
    assert caught.value.message.startswith("unknown deploycheck word 'bogus'")
    assert caught.value.problems[0] is caught.value
    assert len(caught.value.problems) == 2


def test_it_reports_a_refused_item_once_and_reads_the_items_inside_it() -> None:
    # The refused item is not reported again as lost, nor the document as having no
    # items; the item nested in it is still read, and its own mistake reported.
    source = (
        "- [ ] outer <!-- deploycheck: owner=x -->\n  - [ ] inner <!-- deploycheck: bogus -->\n"
    )

    assert [line for line, _ in problems_of(source)] == [1, 2]


def test_it_reports_every_line_with_a_bidirectional_control() -> None:
    source = "# Ship\n\n- [ ] one \u202e\n- [ ] two\n- [ ] three \u2066\n"

    assert [line for line, _ in problems_of(source)] == [3, 5]


def test_it_stops_listing_after_the_most_problems_it_shows() -> None:
    source = "- [ ] x <!-- deploycheck: owner=nobody -->\n" * (markdown.MAX_PROBLEMS + 50)

    with pytest.raises(ChecklistError) as caught:
        parse_checklist(source)

    assert len(caught.value.problems) == markdown.MAX_PROBLEMS
    assert caught.value.truncated
    assert caught.value.problems[-1].line == markdown.MAX_PROBLEMS


def test_it_stops_at_too_many_items_keeping_the_problems_before() -> None:
    source = "- [ ] a <!-- deploycheck: owner=nobody -->\n- [ ] b\n- [ ] c\n- [ ] d\n"

    assert problems_of(source, max_items=2) == [
        (1, "unknown owner 'nobody' (expected one of devops, backend, frontend, qa, po, support)"),
        (3, "the checklist has more than 2 items (the limit is 2)"),
    ]


def test_a_message_keeps_what_translating_it_takes() -> None:
    with pytest.raises(ChecklistError) as caught:
        parse_checklist("## Contacts\n\n| Role |\n|---|\n\n- [ ] a\n")

    assert caught.value.text == markdown.Message(
        "the contacts table has %(count)s column; it needs role | name | contact",
        "the contacts table has %(count)s columns; it needs role | name | contact",
        1,
        {"count": 1},
    )
    assert caught.value.message == "the contacts table has 1 column; it needs role | name | contact"


# Limits ------------------------------------------------------------------------------------


def test_it_names_its_limits() -> None:
    assert DEFAULT_MAX_ITEMS == 2000
    assert MAX_TITLE_LENGTH == MAX_PHASE_LENGTH == MAX_SECTION_LENGTH == 300


def test_it_accepts_a_checklist_of_exactly_the_item_limit() -> None:
    assert len(parse_checklist("- [ ] a\n" * 2000).items) == 2000
    assert len(parse_checklist("- [ ] a\n- [ ] b\n", max_items=2).items) == 2


def test_it_refuses_more_items_than_the_limit(tmp_path: Path) -> None:
    path = tmp_path / "big.md"
    path.write_bytes(b"## P\n\n" + b"- [ ] a\n" * 3000)

    with pytest.raises(ChecklistError) as caught:
        read_checklist_file(path)

    assert caught.value.line == 2003
    assert caught.value.message == "the checklist has more than 2000 items (the limit is 2000)"
    with pytest.raises(ChecklistError, match=r"^line 3: .* more than 2 items \(the limit is 2\)"):
        read_checklist_bytes(b"- [ ] a\n- [ ] b\n- [ ] c\n", max_items=2)
    with pytest.raises(ChecklistError, match=r"^line 2: .* more than 1 item \(the limit is 1\)"):
        parse_checklist("- [ ] a\n- [ ] b\n", max_items=1)


def test_it_refuses_a_hundred_thousand_items_without_reading_them_all() -> None:
    data = b"- [ ] a\n" * 100_000

    started = time.perf_counter()
    with pytest.raises(ChecklistError) as caught:
        read_checklist_bytes(data)
    elapsed = time.perf_counter() - started

    assert caught.value.line == 2001
    # Reading all of them takes markdown-it seconds; no assertion, so a slow machine
    # cannot fail the test, but a regression shows in the printed time.
    print(f"refused 100,000 items in {elapsed:.3f} s")


# Lines that look like task items, but are not items, are not counted.
NOT_OVER_THE_LIMIT = {
    "front matter": "---\n" + "- [ ] yaml\n" * 20 + "---\n- [ ] real\n",
    "code": "```\n" + "- [ ] code\n" * 20 + "```\n- [ ] real\n",
    "comment": "<!--\n" + "- [ ] hidden\n" * 20 + "-->\n- [ ] real\n",
    "headings": "".join(f"- [ ] h{n}\n  ---\n" for n in range(20)) + "- [ ] real\n",
    "rollback steps under a title": (
        "# Rollback plan\n\n" + "- [ ] step\n" * 20 + "\n# Phase\n\n- [ ] real\n"
    ),
}


@pytest.mark.parametrize("source", NOT_OVER_THE_LIMIT.values(), ids=NOT_OVER_THE_LIMIT.keys())
def test_it_counts_only_items_against_the_limit(source: str) -> None:
    assert texts(parse_checklist(source, max_items=10)) == ["real"]


FIELD_LIMITS = {
    "phase": ("## " + "P" * 412 + "\n\n- [ ] a\n", 1, "the heading is 412 characters long"),
    "section": ("## P\n\n### " + "S" * 301 + "\n\n- [ ] a\n", 3, "the heading is 301"),
    "setext phase": ("P" * 301 + "\n---\n\n- [ ] a\n", 1, "the heading is 301"),
    "folded section": (
        "## P\n\n### " + "S" * 200 + "\n\n#### " + "T" * 100 + "\n\n- [ ] a\n",
        5,
        "the section name this heading completes is 303 characters long",
    ),
    "title": ("# " + "T" * 301 + "\n\n- [ ] a\n", 1, "the title is 301 characters long"),
}


@pytest.mark.parametrize(
    ("source", "line", "message"), FIELD_LIMITS.values(), ids=FIELD_LIMITS.keys()
)
def test_it_refuses_names_longer_than_their_columns(source: str, line: int, message: str) -> None:
    with pytest.raises(ChecklistError) as caught:
        parse_checklist(source)

    assert caught.value.line == line
    assert caught.value.message.startswith(message)
    assert caught.value.message.endswith("; the limit is 300")


def test_it_accepts_names_of_exactly_the_limit() -> None:
    doc = parse_checklist(
        "# " + "T" * 300 + "\n\n## " + "P" * 300 + "\n\n### " + "S" * 300 + "\n\n- [ ] a\n"
        "\n## Q\n\n### " + "S" * 148 + "\n\n#### " + "T" * 149 + "\n\n- [ ] b\n"
    )

    assert len(doc.title) == len(doc.items[0].phase) == len(doc.items[0].section) == 300
    assert len(doc.items[1].section) == 300
    # A long heading with no item under it names no phase or section.
    assert len(parse_checklist("## " + "P" * 400 + "\n\n## Q\n\n- [ ] a\n").items) == 1


BIDI = "\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069"


def test_it_finds_bidirectional_control_characters() -> None:
    assert bidi_controls("abc 日本 مرحبا \u200b\u2060") == []
    assert bidi_controls("a\u202eb\u2066c\u202e") == ["U+202E", "U+2066"]
    assert bidi_controls(BIDI) == [f"U+{ord(char):04X}" for char in BIDI]


BIDI_PLACES = {
    "item text": ("- [ ] a\n- [ ] evil\u202etxt.exe\n", 2),
    "an item's continuation line": ("- [ ] a\n  b \u2066c\u2069\n", 2),
    "an item's annotation": ("- [ ] a <!-- deploycheck: owner=qa -->\u200f\n", 1),
    "title": ("# T\u202d\n\n- [ ] a\n", 1),
    "phase": ("## P\u200e\n\n- [ ] a\n", 1),
    "setext heading": ("P\nQ\u061c\n---\n\n- [ ] a\n", 2),
    "description": ("# T\n\nWhy\u202a.\n\n- [ ] a\n", 3),
    "rollback heading": ("- [ ] a\n\n## Rollback\u2067\n\n1. undo\n", 3),
    "rollback intro": ("- [ ] a\n\n## Rollback\n\nIf\u202b\n\n1. undo\n", 5),
    "rollback step": ("- [ ] a\n\n## Rollback\n\n1. undo\n2. re\u202edo\n", 6),
    "task rollback step": ("- [ ] a\n\n## Rollback\n\n- [ ] undo\u202e\n", 5),
    "rollback command": (
        "- [ ] a\n\n## Rollback\n\n1. undo\n\n```sh\nrm -rf /tmp/x \u2068# safe\n```\n",
        8,
    ),
    "contact cell": (
        "- [ ] a\n\n## Contacts\n\n| Role | Name | Contact |\n|---|---|---|\n"
        "| QA | Ana | +34\u202c600 |\n",
        7,
    ),
    "contacts header": (
        "- [ ] a\n\n## Contacts\n\n| Role | Name\u200f | Contact |\n|---|---|---|\n",
        5,
    ),
}


@pytest.mark.parametrize(("source", "line"), BIDI_PLACES.values(), ids=BIDI_PLACES.keys())
def test_it_refuses_bidirectional_control_characters(source: str, line: int) -> None:
    with pytest.raises(ChecklistError) as caught:
        parse_checklist(source)

    found = bidi_controls(source)[0]
    assert caught.value.line == line
    assert caught.value.message == (
        f"the line contains an invisible bidirectional control character {found}, which "
        "can make text read differently from what it is"
    )


# Rollback plan and contacts ---------------------------------------------------------------


def test_it_reads_rollback_steps_written_loosely() -> None:
    doc = parse_checklist(
        "- [ ] a\n\n# Reversión del despliegue\n\nIntro one.\n\nIntro two.\n\n"
        "- a bullet list is ignored\n\n"
        "1. First\n   continued\n\n   More prose.\n\n   ~~~sh\n   echo 1\n   ~~~\n"
        "   ```\n   echo 2\n   ```\n"
        "2. Second, its code not indented\n```python\nprint(3)\n```\n"
        "3. ```\n   only code\n   ```\n\n"
        "Prose after the steps is not a step.\n\n"
        "### A sub-heading belongs to the plan\n\n4. Fourth\n"
    )

    assert doc.rollback_heading == "Reversión del despliegue"
    assert doc.rollback_intro == "Intro one.\n\nIntro two."
    assert doc.rollback_steps == (
        RollbackStep("First\ncontinued\n\nMore prose.", "echo 1\necho 2", "sh"),
        RollbackStep("Second, its code not indented", "print(3)", "python"),
        RollbackStep("", "only code", ""),
        RollbackStep("Fourth", ""),
    )
    assert doc.phases == ("",)


def test_it_reads_contacts_with_extra_and_missing_cells() -> None:
    doc = parse_checklist(
        "- [ ] a\n\n## Emergency contacts\n\n"
        "| Role | Name | Phone | Email |\n|---|---|---|---|\n"
        "| DevOps \\| SRE | Ana | +34 600 | ana@example.com |\n"
        "| QA | Luis |\n"
    )

    assert doc.contacts_header == ("Role", "Name", "Phone")
    assert doc.contacts == (
        Contact("DevOps | SRE", "Ana", "+34 600 / ana@example.com"),
        Contact("QA", "Luis", ""),
    )


def test_it_ends_the_rollback_plan_at_the_next_heading_of_its_level() -> None:
    doc = parse_checklist(
        "## Despliegue\n\n### Plan de rollback\n\n1. undo\n\n### Verificación\n\n- [ ] check\n"
    )

    assert doc.rollback_steps == (RollbackStep("undo", ""),)
    assert [(i.phase, i.section) for i in doc.items] == [("Despliegue", "Verificación")]


def test_it_reads_a_feature_flag_rollout_with_rollback_steps_as_task_items() -> None:
    doc = read_checklist_file(CHECKLISTS / "feature-flag-rollout.md")

    assert doc.summary() == (
        "1 phases, 3 sections, 14 items, 3 rollback steps, 0 emergency contacts"
    )
    assert doc.sections == (
        ("Rollout Steps", "Before enabling"),
        ("Rollout Steps", "Staging"),
        ("Rollout Steps", "Production"),
    )
    assert doc.rollback_heading == "Rollback Steps"
    assert doc.rollback_intro == ""
    assert doc.rollback_steps == (
        RollbackStep(
            "Turn the flag off for everyone:",
            "flagctl set checkout_v2 off --env production",
            "bash",
        ),
        RollbackStep(
            "Check that no request still reaches the new checkout:",
            "flagctl audit checkout_v2 --env production --since 15m",
            "bash",
        ),
        RollbackStep(
            "Tell `#payments-eng` and support that the feature is off again:",
            "notify --channel '#payments-eng' --channel '#support' 'checkout_v2 is off again'",
            "bash",
        ),
    )
    once = render_checklist(doc)
    assert parse_checklist(once) == doc
    assert render_checklist(parse_checklist(once)) == once


def test_it_reads_task_items_under_a_rollback_heading_as_steps() -> None:
    doc = parse_checklist(
        "- [ ] a\n\n## Rollback\n\nIf the flag misbehaves:\n\n"
        "- [x] Disable it\n  everywhere\n\n  ```sh\n  flag off\n  ```\n"
        "- [ ] Check the flags\n  - [ ] of staging\n  - [ ] of production\n"
        "- a plain bullet is no step\n"
        "-\t[ ]\tTabbed\n"
        "* [ ]\n\n  ```\n  only code\n  ```\n\n"
        "```bash\nmore code\n```\n\n"
        "1. A numbered list may follow\n"
    )

    assert doc.rollback_intro == "If the flag misbehaves:"
    assert doc.rollback_steps == (
        RollbackStep("Disable it\neverywhere", "flag off", "sh"),
        RollbackStep("Check the flags\n- [ ] of staging\n- [ ] of production", ""),
        RollbackStep("Tabbed", ""),
        RollbackStep("", "only code\nmore code", ""),
        RollbackStep("A numbered list may follow", ""),
    )
    assert texts(doc) == ["a"]
    once = render_checklist(doc)
    assert parse_checklist(once) == doc
    assert render_checklist(parse_checklist(once)) == once


@pytest.mark.parametrize(
    ("plan", "line"),
    [
        ("1. step\n\n- [ ] not a step\n", 7),
        ("- [ ] step\n\n1. step\n\n- [ ] not a step\n", 9),
        ("- Steps:\n  - [ ] nested under a plain bullet\n", 6),
        ("> - [ ] quoted\n", 5),
    ],
    ids=["after numbered steps", "after task and numbered steps", "nested", "quoted"],
)
def test_it_refuses_task_items_a_rollback_plan_cannot_hold(plan: str, line: int) -> None:
    with pytest.raises(ChecklistError) as caught:
        parse_checklist("- [ ] a\n\n## Rollback\n\n" + plan)

    assert caught.value.line == line
    assert caught.value.message.startswith("task item under 'Rollback'")


# In the export the plan is a numbered list: a step's text opens its item, where a task
# item had its box first, and the step's commands follow the text in a fence of their own.
MISREAD_STEPS = {
    "comment left open above the commands": (
        "- [ ] <!-- open\n```\n# T\n```\n",
        "- [ ] <!-- open -->\n```\n# T\n```\n",
        5,
        "the rollback step's line '<!-- open' opens an HTML comment that the step does not "
        "close: in the export, where rollback steps are a numbered list, it would swallow the "
        "step's commands; close it, or write '\\<' for a literal '<'",
    ),
    "raw HTML left open above the commands": (
        "- [ ] <pre>\n  ```\n  undo\n  ```\n",
        "- [ ] \\<pre>\n  ```\n  undo\n  ```\n",
        5,
        "the rollback step's line '<pre>' opens raw HTML that the step does not close",
    ),
    "comment left open in a numbered step, its commands after it": (
        "1. Undo\n   <!-- owner: ana\n```sh\nundo\n```\n",
        "1. Undo\n   <!-- owner: ana -->\n```sh\nundo\n```\n",
        6,
        "the rollback step's line '<!-- owner: ana' opens an HTML comment",
    ),
    "comment left open in a numbered step, above the code in it": (
        "1. **Revert flag**: disable\n   <!--\n   ```bash\n   flag off\n   ```\n",
        "1. **Revert flag**: disable\n   <!-- -->\n   ```bash\n   flag off\n   ```\n",
        6,
        "the rollback step's line '<!--' opens an HTML comment that the step does not close",
    ),
    "fence after the box": (
        "- [ ] ```\n  undo\n",
        "- [ ] \\```\n  undo\n",
        5,
        "the rollback step's line '```' would open a code block in the export, where rollback "
        "steps are a numbered list; write '\\`' for a literal '`'",
    ),
    "link reference definition after the box": (
        "- [ ] [runbook]: https://wiki.example/runbook\n",
        "- [ ] \\[runbook]: https://wiki.example/runbook\n",
        5,
        "the rollback step's line '[runbook]: https://wiki.example/runbook' would read as a "
        "link reference definition, which shows nothing",
    ),
    "code under a heading after the box": (
        "- [ ] # Undo\n      undo\n",
        "- [ ] # Undo\n  undo\n",
        6,
        "the rollback step's line '    undo' would read as code in the export",
    ),
}


@pytest.mark.parametrize(
    ("plan", "fixed", "line", "message"), MISREAD_STEPS.values(), ids=MISREAD_STEPS.keys()
)
def test_it_refuses_a_rollback_step_that_its_export_would_read_otherwise(
    plan: str, fixed: str, line: int, message: str
) -> None:
    with pytest.raises(ChecklistError) as caught:
        parse_checklist("- [ ] a\n\n## Rollback\n\n" + plan)

    assert caught.value.line == line
    assert caught.value.message.startswith(message)
    # Done as the message says, the step reads back from its export.
    doc = parse_checklist("- [ ] a\n\n## Rollback\n\n" + fixed)
    once = render_checklist(doc)
    assert parse_checklist(once) == doc
    assert render_checklist(parse_checklist(once)) == once


# Rendering ---------------------------------------------------------------------------------


def test_it_renders_the_canonical_form() -> None:
    doc = Checklist(
        title="Go-live #",
        description="Why we check.",
        items=(
            Item("unphased", "", "", None),
            Item("a", "Before", "Tests", "qa", required=False, checks=("tls", "dns")),
            Item("b", "Before", "", "po"),
            Item("c", "After", "Watch", "devops"),
        ),
        gate_index=2,
        rollback_heading="Rollback",
        rollback_intro="If it breaks:",
        rollback_steps=(RollbackStep("Revert\n- quickly", "git revert HEAD\n", "sh"),),
        contacts_heading="Contacts",
        contacts=(Contact("Lead | deputy", "Ana", "ana@example.com"),),
    )

    assert render_checklist(doc) == (
        "# Go-live # #\n\nWhy we check.\n\n- [ ] unphased\n\n## Before\n\n### Tests\n\n"
        "- [ ] a <!-- deploycheck: owner=qa optional check=tls check=dns -->\n\n"
        "<!-- deploycheck: gate -->\n\n## Before\n\n"
        "- [ ] b <!-- deploycheck: owner=po -->\n\n## After\n\n### Watch\n\n"
        "- [ ] c <!-- deploycheck: owner=devops -->\n\n## Rollback\n\nIf it breaks:\n\n"
        "1. Revert\n   - quickly\n\n   ```sh\n   git revert HEAD\n\n   ```\n\n## Contacts\n\n"
        "| Role | Name | Contact |\n| --- | --- | --- |\n"
        "| Lead \\| deputy | Ana | ana@example.com |\n"
    )
    assert parse_checklist(render_checklist(doc)) == doc


def test_it_fences_commands_that_hold_fences() -> None:
    step = RollbackStep("Write docs", "cat <<EOF\n```\ncode\n````\nEOF", "sh")
    doc = Checklist(
        "T",
        items=(Item("a", "", "", None),),
        rollback_heading="Rollback",
        rollback_steps=(step,) * 10,
    )

    text = render_checklist(doc)

    assert "   `````sh\n" in text
    assert "10. Write docs\n\n    `````sh\n" in text
    assert parse_checklist(text) == doc


def test_it_refuses_documents_it_could_not_write_back() -> None:
    item = Item("a", "", "", None)

    with pytest.raises(ValueError, match="gate_index"):
        Checklist("T", items=(item,), gate_index=2)
    with pytest.raises(ValueError, match="would not read as the rollback"):
        Checklist("T", items=(item,), rollback_heading="Plan B")
    with pytest.raises(ValueError, match="needs a heading"):
        Checklist("T", items=(item,), contacts=(Contact("a", "b", "c"),))
    with pytest.raises(ValueError, match="would read as the contacts"):
        Checklist("T", items=(Item("a", "Contact the press", "", None),))
    with pytest.raises(ValueError, match="unknown owner"):
        Item("a", "", "", "boss")
    with pytest.raises(ValueError, match="one non-empty line"):
        Item("a\nb", "", "", None)
    with pytest.raises(ValueError, match="unknown record state"):
        Record("maybe")


# Records -------------------------------------------------------------------------------------


def test_it_reads_the_documented_record_line() -> None:
    doc = parse_checklist(
        "- [x] Todas las pruebas unitarias pasan (backend y frontend) "
        "<!-- deploycheck: owner=qa -->\n"
        "  <!-- deploycheck: record --> done by qa (Ana López) at 2026-11-27 10:32 UTC"
        " — evidence: https://ci.example/run/1 — note: green on main\n"
    )

    assert doc.items[0].text == "Todas las pruebas unitarias pasan (backend y frontend)"
    assert doc.items[0].record == Record(
        state="done",
        by="qa (Ana López)",
        at="2026-11-27 10:32 UTC",
        evidence="https://ci.example/run/1",
        note="green on main",
    )


RECORDS = {
    "not applicable": (
        Record("na", by="po", at="2026-11-27 09:00 UTC", reason="no maintenance window"),
        "[ ]",
        "not applicable by po at 2026-11-27 09:00 UTC — reason: no maintenance window",
    ),
    "blocked without who": (
        Record("blocked", reason="waiting for DNS"),
        "[ ]",
        "blocked — reason: waiting for DNS",
    ),
    "failed at only": (Record("failed", at="10:00", reason="TLS"), "[ ]", "failed at 10:00"),
    "pending with a note": (Record("pending", note="see ticket"), "[ ]", "pending — note: see"),
    "a name with 'at' in it": (
        Record("done", by="Ana at HQ at", at="now"),
        "[x]",
        r"done by Ana \at HQ \at at now",
    ),
    "dashes, backslashes and lines": (
        Record("done", note="a — b\\n\nc\r\nd", evidence="C:\\x"),
        "[x]",
        r"done — evidence: C:\\x — note: a \— b\\n\nc\r\nd",
    ),
}


@pytest.mark.parametrize(("record", "box", "line"), RECORDS.values(), ids=RECORDS.keys())
def test_it_writes_and_reads_records(record: Record, box: str, line: str) -> None:
    doc = Checklist("T", items=(Item("a", "P", "", "qa", record=record),))

    text = render_checklist(doc)

    assert f"- {box} a <!-- deploycheck: owner=qa -->\n  <!-- deploycheck: record --> " in text
    assert line in text
    assert parse_checklist(text) == doc


def test_it_reads_record_fields_in_any_order() -> None:
    doc = parse_checklist(
        "- [ ] a\n  <!-- deploycheck: record --> blocked — note: n — reason:r — evidence: e\n"
    )

    assert doc.items[0].record == Record("blocked", reason="r", note="n", evidence="e")


@pytest.mark.parametrize(
    ("record_line", "message"),
    [
        ("finished by qa", "a record starts with done"),
        ("done by qa — owner: x", "unknown record field 'owner: x'"),
        ("done — note: a — note: b", "gives note twice"),
        ("blocked", "the box is ticked but the record says 'blocked'"),
    ],
)
def test_it_refuses_unreadable_records(record_line: str, message: str) -> None:
    with pytest.raises(ChecklistError) as caught:
        parse_checklist(f"- [x] a\n  <!-- deploycheck: record --> {record_line}\n")

    assert caught.value.line == (1 if "box" in message else 2)
    assert message in caught.value.message


def test_it_refuses_a_done_record_on_an_unticked_box() -> None:
    with pytest.raises(ChecklistError, match="not ticked but the record says 'done'"):
        parse_checklist("- [ ] a\n  <!-- deploycheck: record --> done\n")


def test_it_reads_a_release_export_back_to_its_template() -> None:
    template = apply_default_owners(parse_checklist(SEED), *SEED_DEFAULTS)
    states = [
        Record("done", by="qa (Ana López)", at="2026-11-27 10:32 UTC", evidence="https://ci/1"),
        Record("na", by="po", at="2026-11-27 10:40 UTC", reason="no window — not needed"),
        Record("blocked", by="devops at night", reason="DNS\npropagation"),
        Record("failed", at="2026-11-27 11:00 UTC", reason="check tls: expired"),
        Record("pending", note="C:\\deploy\\notes.txt"),
        None,
    ]
    release = dataclasses.replace(
        template,
        items=tuple(
            dataclasses.replace(item, record=states[index % len(states)])
            for index, item in enumerate(template.items)
        ),
    )

    exported = render_checklist(release)
    back = parse_checklist(exported)

    assert back == release
    assert [item.record for item in back.items] == [item.record for item in release.items]
    assert without_records(back) == template
    assert render_checklist(without_records(back)) == render_checklist(template)
    assert exported.count("- [x] ") == sum(1 for i in release.items if i.record == states[0])
    assert render_checklist(back) == exported


def test_it_escapes_html_in_record_values() -> None:
    record = Record(
        "blocked",
        by="<b>mallory</b> & co",
        at="<i>now</i>",
        reason="a <!-- b",
        note="<script>alert(1)</script> --> &lt; is not <",
        evidence="https://ci.example/?a=1&b=<2>",
    )
    doc = Checklist("T", items=(Item("a", "P", "", "qa", record=record),))

    text = render_checklist(doc)

    record_line = next(line for line in text.splitlines() if "deploycheck: record" in line)
    assert "<" not in record_line.removeprefix("  <!-- deploycheck: record -->")
    assert "note: &lt;script>alert(1)&lt;/script> --> &amp;lt; is not &lt;" in record_line
    # A renderer that passes raw HTML through shows the values as text.
    html = MarkdownIt("commonmark", {"html": True}).render(text)
    assert "<script>" not in html
    assert "<b>" not in html
    assert "<!-- b" not in html
    back = parse_checklist(text)
    assert back == doc
    assert back.items[0].record == record
    assert render_checklist(back) == text


def test_it_reads_records_written_before_values_were_escaped() -> None:
    doc = parse_checklist("- [ ] a\n  <!-- deploycheck: record --> pending — note: a & b &c\n")

    assert doc.items[0].record == Record("pending", note="a & b &c")


# Property: whatever a document holds, writing and reading it gives it back -------------------

ORACLE = MarkdownIt("commonmark").enable("table")
CHARACTERS = st.one_of(
    st.sampled_from(
        list("aZ09 .,:;!?()/'\"-_*+=#&%@$^~{}[]|\\<>`—›éñüÁçßØ日本語テストمرحبا🚀✅\t")
    ),
    st.characters(categories=["L", "M", "N", "P", "S", "Zs"]),
)
PIECES = st.one_of(
    st.text(CHARACTERS, min_size=1, max_size=8),
    st.text(CHARACTERS, min_size=1, max_size=6).map(lambda s: f"`{s}`"),
    st.tuples(st.text(CHARACTERS, min_size=1, max_size=6), st.text("abc/_-.", max_size=6)).map(
        lambda pair: f"[{pair[0]}](https://example.com/{pair[1]})"
    ),
    # Comments carry the annotations, so HTML that could swallow one is the riskiest text.
    st.sampled_from(["<!--", "-->", "<!-- c -->", "<!x", "<a b='", "<?", "<![CDATA["]),
)
# One line of inline Markdown. Surrounding blanks are not part of Markdown's text.
INLINE = st.lists(PIECES, min_size=1, max_size=4).map(" ".join).map(str.strip).filter(bool)


def is_paragraph(text: str) -> bool:
    tokens = ORACLE.parse(text)
    return [t.type for t in tokens] == ["paragraph_open", "inline", "paragraph_close"] and (
        tokens[1].content == text
    )


def names_a_section(text: str) -> bool:
    folded = text.casefold()
    return any(word in folded for word in ("rollback", "reversión", "reversion", "contact"))


# Descriptions, intros and step texts are paragraph source by definition: text that
# CommonMark reads as something else (a list, a heading, a table) is not one.
PARAGRAPH = st.lists(INLINE, min_size=1, max_size=2).map("\n".join).filter(is_paragraph)
LINE = INLINE.filter(is_paragraph)
PARAGRAPHS = st.lists(PARAGRAPH, max_size=2).map("\n\n".join)
# A heading whose text names a rollback plan or contacts is read as that section.
HEADING = INLINE.filter(lambda s: not names_a_section(s))
CHECK_NAME = st.tuples(st.sampled_from("az09"), st.text("az09_.-", max_size=6)).map("".join)
RECORD_VALUE = st.just("") | (
    st.lists(
        st.one_of(
            st.sampled_from(["at", "by", "—", " — ", "\\", "\\n", "\n", "\r\n", "note:", "done"]),
            st.text(CHARACTERS, max_size=6),
        ),
        min_size=1,
        max_size=4,
    )
    .map(" ".join)
    # A record is one line of prose: the blanks around a value are not kept.
    .map(str.strip)
)
RECORDS_STRATEGY = st.builds(
    Record,
    state=st.sampled_from(RECORD_STATES),
    by=RECORD_VALUE,
    at=RECORD_VALUE,
    reason=RECORD_VALUE,
    note=RECORD_VALUE,
    evidence=RECORD_VALUE,
)
COMMANDS = (
    st.lists(
        st.lists(
            st.one_of(
                st.text(CHARACTERS, max_size=5), st.sampled_from(["`", "~~~", "    ", "```"])
            ),
            max_size=4,
        ).map("".join),
        min_size=1,
        max_size=4,
    )
    .map("\n".join)
    .filter(bool)
)
# A table cell is trimmed by GFM, so it cannot keep blanks around its text.
CELL = st.one_of(st.just(""), INLINE)


@st.composite
def rollback_steps(draw: st.DrawFn) -> RollbackStep:
    lines = draw(st.lists(LINE, max_size=1))
    bullets = draw(st.lists(LINE, max_size=3)) if lines else []
    text = "\n".join([*lines, *(f"- {bullet}" for bullet in bullets)])
    commands = draw(COMMANDS if not text else st.one_of(st.just(""), COMMANDS))
    lang = draw(st.one_of(st.just(""), st.text("az09+ -", min_size=1, max_size=8)))
    # Without commands there is no code block to write a language on.
    return RollbackStep(text, commands, lang.strip() if commands else "")


@st.composite
def checklists(draw: st.DrawFn) -> Checklist:
    phases = [*draw(st.lists(HEADING, min_size=1, max_size=3)), ""]
    sections = [*draw(st.lists(HEADING, max_size=3)), ""]
    items = draw(
        st.lists(
            st.builds(
                Item,
                text=INLINE,
                phase=st.sampled_from(phases),
                section=st.sampled_from(sections),
                owner=st.one_of(st.none(), st.sampled_from(ROLE_KEYS)),
                required=st.booleans(),
                checks=st.lists(CHECK_NAME, max_size=3, unique=True).map(tuple),
                record=st.one_of(st.none(), RECORDS_STRATEGY),
            ),
            min_size=1,
            max_size=6,
        )
    )
    rollback_heading = draw(
        st.one_of(
            st.just(""),
            st.tuples(
                st.one_of(st.just(""), INLINE),
                st.sampled_from(["Rollback", "plan de rollback", "Reversión", "REVERSION"]),
                st.one_of(st.just(""), INLINE),
            ).map(lambda parts: " ".join(parts).strip()),
        )
    )
    contacts_heading = draw(
        st.one_of(
            st.just(""),
            st.tuples(
                st.sampled_from(["Contactos de Emergencia", "Emergency contacts", "CONTACT"]),
                st.one_of(st.just(""), HEADING),
            ).map(lambda parts: " ".join(parts).strip()),
        )
    )
    return Checklist(
        title=draw(st.one_of(st.just(""), INLINE)),
        description=draw(PARAGRAPHS),
        items=tuple(items),
        gate_index=draw(st.one_of(st.none(), st.integers(0, len(items)))),
        rollback_heading=rollback_heading,
        rollback_intro=draw(PARAGRAPHS) if rollback_heading else "",
        rollback_steps=tuple(draw(st.lists(rollback_steps(), max_size=4)))
        if rollback_heading
        else (),
        contacts_heading=contacts_heading,
        contacts=tuple(draw(st.lists(st.builds(Contact, CELL, CELL, CELL), max_size=3)))
        if contacts_heading
        else (),
        # The header row is written only inside the contacts section.
        contacts_header=draw(st.tuples(CELL, CELL, CELL))
        if contacts_heading
        else Checklist.DEFAULT_CONTACTS_HEADER,
    )


@settings(max_examples=200, deadline=None)
@given(checklists())
def test_it_reads_back_whatever_it_writes(doc: Checklist) -> None:
    text = render_checklist(doc)
    back = parse_checklist(text)

    assert back == doc
    assert render_checklist(back) == text


# Property: any Markdown that reads at all is written in a form that reads back the same.
FRAGMENTS = [
    *("# T", "## P", "### S", "#### D", "## Plan de Rollback", "## Contactos", "Setext", "===="),
    *("---", "- [ ] a", "- [x] b", "* [ ] c", "1. [ ] d", "  - [ ] e", "    - [ ] f", "- plain"),
    *(
        "1. step",
        "2. step two",
        "10. ten",
        "1.",
        "   - sub",
        "   ```sh",
        "   echo",
        "   ```",
        "```",
    ),
    *("~~~", "    indented", "| a | b | c |", "|---|---|---|", "| x \\| y | z |", "", "", "prose"),
    *("  continued", "> quote", "> - [ ] q", "<!-- c -->", "<!--", "-->", "<div>", "[ref]: /url"),
    *("<!-- deploycheck: gate -->", "<!-- deploycheck: owner=qa -->", "- [ ] g #", "- [ ] a\\"),
    *("  <!-- deploycheck: owner=po optional check=x -->", "- [ ] <!-- open", "- [ ] a <!x"),
    *("  <!-- deploycheck: record --> done by a at b", "- [ ] `x` [l](u) 日本 🚀", "\t- [ ] tab"),
    *("## ##", "##", "1) [ ] paren", "-", "a | b", "--|--", "   10. nested"),
]


@settings(max_examples=200, deadline=None)
@given(st.lists(st.sampled_from(FRAGMENTS), max_size=25).map("\n".join))
# A step's comment, left open, swallowed its commands in the export.
@example("- [ ] a\n## Plan de Rollback\n- [ ] <!-- open\n```\n# T")
def test_it_writes_any_readable_markdown_in_a_stable_form(source: str) -> None:
    try:
        doc = parse_checklist(source)
    except ChecklistError:
        return  # refusing is fine; reading differently the second time is not
    text = render_checklist(doc)

    assert parse_checklist(text) == doc
    assert render_checklist(parse_checklist(text)) == text


@settings(max_examples=200, deadline=None)
@given(st.lists(st.sampled_from(FRAGMENTS), max_size=25).map("\n".join), st.integers(0, 12))
def test_it_refuses_at_the_first_item_over_any_limit(source: str, limit: int) -> None:
    try:
        doc = parse_checklist(source)
    except ChecklistError:
        return
    if len(doc.items) <= limit:
        assert parse_checklist(source, max_items=limit) == doc
        return
    with pytest.raises(ChecklistError) as caught:
        parse_checklist(source, max_items=limit)

    assert caught.value.line == doc.items[limit].line
    noun = "item" if limit == 1 else "items"
    assert caught.value.message == (
        f"the checklist has more than {limit} {noun} (the limit is {limit})"
    )
