"""Rollback steps in Markdown: their owner (owner=) and, in a release's export, how each
went in its rollback (a record), both read back as written."""

from __future__ import annotations

from pathlib import Path

import pytest
from django.utils import translation

from releases import markdown as md
from releases.workflow.rollback import plan_error_text

HEAD = "# T\n\n## P\n\n- [ ] Item\n\n## Plan de Rollback\n\n"


def steps(plan: str) -> tuple[md.RollbackStep, ...]:
    return md.parse_checklist(HEAD + plan).rollback_steps


def round_trip(doc: md.Checklist) -> md.Checklist:
    text = md.render_checklist(doc)
    back = md.parse_checklist(text)
    assert md.render_checklist(back) == text
    return back


def test_it_reads_an_owner_ending_a_steps_first_line_or_on_a_line_of_its_own() -> None:
    read = steps(
        "1. **Frontend**: <!-- deploycheck: owner=frontend -->\n"
        "   ```bash\n   deploy frontend\n   ```\n"
        "2. **Check**:\n   <!-- deploycheck: owner=qa -->\n   - the site answers\n"
        "3. Announce it\n"
    )

    assert [(s.owner, s.text) for s in read] == [
        ("frontend", "**Frontend**:"),
        ("qa", "**Check**:\n\n- the site answers"),
        (None, "Announce it"),
    ]
    assert read[0].commands == "deploy frontend"


@pytest.mark.parametrize(
    "owner_line",
    [
        "1. Restore <!-- deploycheck: owner=backend -->\n",
        "1. Restore\n\n   <!-- deploycheck: owner=backend -->\n",
    ],
)
def test_it_writes_the_owner_back_where_it_reads_as_the_same_step(owner_line: str) -> None:
    doc = md.parse_checklist(HEAD + owner_line)

    back = round_trip(doc)

    assert back == doc
    assert "1. Restore <!-- deploycheck: owner=backend -->" in md.render_checklist(doc)


def test_it_writes_the_owner_on_its_own_line_after_text_holding_an_opener() -> None:
    doc = md.parse_checklist(HEAD + "1. Compare a <!x and b <!-- deploycheck: owner=qa -->\n")
    step = doc.rollback_steps[0]
    assert (step.owner, step.text) == ("qa", "Compare a <!x and b")

    text = md.render_checklist(doc)

    assert "1. Compare a <!x and b\n\n   <!-- deploycheck: owner=qa -->" in text
    assert round_trip(doc) == doc


def test_it_round_trips_each_steps_record_under_its_commands() -> None:
    doc = md.parse_checklist(
        HEAD + "1. Roll back\n   ```bash\n   deploy --previous\n   ```\n2. Tell\n"
    )
    done = md.Record(
        "done",
        by="devops (Dana at Ops)",
        at="2026-12-07 01:10 UTC",
        note="took 3 — min",
        evidence="https://ci.example/run/9",
    )
    pending = md.Record("pending", note="waiting <on> CDN")
    first, second = doc.rollback_steps
    recorded = md.Checklist(
        **{
            **doc.__dict__,
            "rollback_steps": (
                md.RollbackStep(first.text, first.commands, first.lang, record=done),
                md.RollbackStep(second.text, second.commands, "", owner="qa", record=pending),
            ),
        }
    )

    text = md.render_checklist(recorded)

    assert (
        "   ```\n\n   <!-- deploycheck: record --> done by devops (Dana \\at Ops) at "
        "2026-12-07 01:10 UTC — evidence: https://ci.example/run/9 — note: took 3 \\— min"
    ) in text
    assert (
        "2. Tell <!-- deploycheck: owner=qa -->\n\n   <!-- deploycheck: record --> pending" in text
    )
    assert round_trip(recorded) == recorded


@pytest.mark.parametrize(
    ("plan", "message"),
    [
        ("1. Restore <!-- deploycheck: owner=cto -->\n", "unknown owner 'cto'"),
        ("1. Restore <!-- deploycheck: check=tls -->\n", "only owner= does"),
        ("1. Restore <!-- deploycheck: optional -->\n", "only owner= does"),
        (
            "1. Restore <!-- deploycheck: owner=qa -->\n   <!-- deploycheck: owner=backend -->\n",
            "two owners",
        ),
        ("1. Restore\n   <!-- deploycheck: record --> blocked — reason: x\n", "done or pending"),
        (
            "1. Restore\n   <!-- deploycheck: record --> done\n"
            "   <!-- deploycheck: record --> done\n",
            "a second record",
        ),
    ],
)
def test_it_refuses_step_annotations_it_cannot_keep(plan: str, message: str) -> None:
    with pytest.raises(md.ChecklistError, match=message):
        steps(plan)


def test_it_leaves_ordinary_comments_in_a_steps_text() -> None:
    read = steps("1. Restore <!-- ask Ana first -->\n")

    assert read[0].text == "Restore <!-- ask Ana first -->"
    assert read[0].owner is None


def test_it_refuses_an_unknown_owner_or_record_state_in_a_document_built_in_code() -> None:
    with pytest.raises(ValueError, match="unknown owner"):
        md.RollbackStep("x", "", owner="cto")
    with pytest.raises(ValueError, match="done or pending"):
        md.RollbackStep("x", "", record=md.Record("blocked", reason="y"))


def test_it_reads_the_seed_plan_as_every_step_devops_owned() -> None:
    doc = md.read_checklist_file(
        Path(__file__).parents[2] / "releases/data/checklist-produccion.md"
    )

    assert {step.owner for step in doc.rollback_steps} == {None}


# --- the plan on its own (the plan's editor) ---------------------------------------------


def test_a_plan_written_alone_reads_as_the_same_plan_under_its_heading() -> None:
    seed = md.read_checklist_file(Path("releases/data/checklist-produccion.md"))
    plan = md.RollbackPlan(seed.rollback_intro, seed.rollback_steps)

    text = md.render_rollback_plan(plan)

    assert md.parse_rollback_plan(text) == plan
    assert text in md.render_checklist(seed)


def test_a_plan_written_alone_keeps_each_steps_owner() -> None:
    plan = md.parse_rollback_plan(
        "Before anything, tell support.\n\n"
        "1. **Backend** <!-- deploycheck: owner=backend -->\n"
        "   ```bash\n   deploy backend --previous\n   ```\n"
        "2. Check the site\n"
    )

    assert plan.intro == "Before anything, tell support."
    assert [(s.text, s.owner, s.commands) for s in plan.steps] == [
        ("**Backend**", "backend", "deploy backend --previous"),
        ("Check the site", None, ""),
    ]


@pytest.mark.parametrize(
    ("text", "line", "says"),
    [
        ("1. Restore\n\nA stray paragraph\n", 3, "would not keep this"),
        ("1. Restore\n\n- a plain list\n", 3, "would not keep this"),
        ("```bash\nrun\n```\n\n1. Restore\n", 1, "would not keep this"),
        ("1. Restore\n\n## Afterwards\n", 3, "a heading has no place"),
        ("1. Restore <!-- deploycheck: owner=ops -->\n", 1, "unknown owner 'ops'"),
        ("1. Restore\n<!-- deploycheck: gate -->\n", 2, "go-live gate"),
        ("1. Restore\n\n   <!-- deploycheck: record --> done by Dana at 10:00\n", 1, "record"),
        ("1. Restore\n2. Check \u202eit\n", 2, "U+202E"),
    ],
)
def test_a_plan_written_alone_refuses_what_it_would_not_keep_at_its_line(
    text: str, line: int, says: str
) -> None:
    with pytest.raises(md.ChecklistError) as error:
        md.parse_rollback_plan(text)

    assert error.value.line == line
    assert says in error.value.message


def test_a_plan_written_alone_needs_a_step() -> None:
    with pytest.raises(md.ChecklistError, match="no steps found"):
        md.parse_rollback_plan("Only an intro.\n")


def test_a_refused_plan_reads_in_the_editors_language() -> None:
    with pytest.raises(md.ChecklistError) as refused:
        md.parse_rollback_plan("## Pasos\n\n1. Restaurar\n")
    with translation.override("es"):
        shown = plan_error_text(refused.value)

    assert shown == (
        "Línea 1 del plan de rollback: un encabezado no tiene cabida en el plan de rollback; "
        "escríbelo en negrita"
    )
