"""Markdown checklists in and out of the database.

releases.markdown knows Markdown and nothing of Django; this module turns its documents
into templates, copies a template into a release, and turns templates and releases back
into documents. A new checklist field goes on the abstract models in releases.models
(ChecklistOutline, ChecklistEntry, RollbackStepFields, ContactFields), which the copy
here picks up by itself, and into markdown's types and _document / _item here.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import NamedTuple

from django.conf import settings
from django.utils.translation import gettext, ngettext

from . import markdown as md
from .models import (
    ChecklistEntry,
    ChecklistOutline,
    ChecklistTemplate,
    ContactFields,
    EmergencyContact,
    ItemState,
    Release,
    ReleaseItem,
    Role,
    RollbackStep,
    RollbackStepFields,
    TemplateContact,
    TemplateItem,
    TemplateRollbackStep,
    shared_values,
)

DEFAULT_CHECKLIST = Path(__file__).parent / "data" / "checklist-produccion.md"
FALLBACK_OWNER = Role.DEVOPS.value


class Problem(NamedTuple):
    """One thing wrong in a checklist file, translated: ``line`` None when no line is to
    blame."""

    line: int | None
    message: str


class ChecklistFileError(Exception):
    """A checklist that cannot be imported: every problem in it, each worded as
    `path:line: what is wrong` in the active language."""

    def __init__(self, source: str, error: md.ChecklistError) -> None:
        self.source = source
        self.problems = [Problem(p.line, translated(p.text)) for p in error.problems]
        # More problems than md.MAX_PROBLEMS: those listed are the first ones.
        self.truncated = error.truncated
        super().__init__("\n".join(self.lines()))

    def lines(self) -> list[str]:
        return [
            f"{self.source}:{p.line}: {p.message}" if p.line else f"{self.source}: {p.message}"
            for p in self.problems
        ]


def translated(message: md.Message) -> str:
    """A message of releases.markdown in the active language."""
    params = {
        key: translated(value) if isinstance(value, md.Message) else value
        for key, value in message.params.items()
    }
    if message.plural and message.count is not None:
        text = ngettext(message.singular, message.plural, message.count)
    else:
        text = gettext(message.singular)
    return text % params if params else text


def read(path: str | Path) -> md.Checklist:
    try:
        return md.read_checklist_file(path, max_items=settings.CHECKLIST_MAX_ITEMS)
    except md.ChecklistError as error:
        raise ChecklistFileError(str(path), error) from None
    except OSError as error:
        raise ChecklistFileError(
            str(path),
            md.ChecklistError(
                None, md.gettext_noop("cannot read the file (%(reason)s)", reason=error.strerror)
            ),
        ) from None


def decode_bytes(data: bytes, source: str) -> str:
    """The text of an uploaded file, or ChecklistFileError when it is not text one can
    read (too large, binary, not UTF-8)."""
    try:
        return md.decode_checklist_bytes(data)
    except md.ChecklistError as error:
        raise ChecklistFileError(source, error) from None


def parse_text(text: str, source: str) -> md.Checklist:
    try:
        return md.parse_checklist(text, max_items=settings.CHECKLIST_MAX_ITEMS)
    except md.ChecklistError as error:
        raise ChecklistFileError(source, error) from None


def summary(doc: md.Checklist) -> str:
    """What a checklist holds, counted in the active language (md.Checklist.summary is
    the English one that scripts read)."""
    phases = sum(1 for phase in doc.phases if phase)
    sections = sum(1 for _, section in doc.sections if section)
    counts = [
        ngettext("%(count)d phase", "%(count)d phases", phases) % {"count": phases},
        ngettext("%(count)d section", "%(count)d sections", sections) % {"count": sections},
        ngettext("%(count)d item", "%(count)d items", len(doc.items)) % {"count": len(doc.items)},
        ngettext("%(count)d rollback step", "%(count)d rollback steps", len(doc.rollback_steps))
        % {"count": len(doc.rollback_steps)},
        ngettext("%(count)d emergency contact", "%(count)d emergency contacts", len(doc.contacts))
        % {"count": len(doc.contacts)},
    ]
    return ", ".join(counts)


def placeholder_contacts(doc: md.Checklist) -> list[md.Contact]:
    """The emergency contacts that a release made from ``doc`` would hold as placeholders,
    judged as the release judges them, which blocks go-live until they are filled in."""
    return [
        contact
        for contact in doc.contacts
        if EmergencyContact.from_cell(
            contact.contact, role=contact.role, name=contact.name
        ).has_placeholder()
    ]


def with_owners(doc: md.Checklist, default_owner: str = FALLBACK_OWNER) -> md.Checklist:
    """Fill the owners a file leaves unsaid: the seed's defaults by section name, then one
    default role, so every task line still becomes exactly one item."""
    defaults = md.SEED_DEFAULTS
    has_gate_section = any(i.section == defaults.gate_before_section for i in doc.items)
    doc = md.apply_default_owners(
        doc,
        defaults.section_owners,
        defaults.item_owners,
        defaults.gate_before_section if doc.gate_index is None and has_gate_section else None,
    )
    if all(item.owner for item in doc.items):
        return doc
    items = tuple(item if item.owner else replace(item, owner=default_owner) for item in doc.items)
    return replace(doc, items=items)


def save_template(doc: md.Checklist, name: str) -> tuple[ChecklistTemplate, bool]:
    """The template's rows, created or replacing one of the same name; whether it was
    created. Only workflow.import_template calls this, inside its transaction."""
    doc = with_owners(doc)
    template, created = ChecklistTemplate.objects.select_for_update().get_or_create(name=name)
    if not created:
        template.items.all().delete()
        template.rollback_steps.all().delete()
        template.contacts.all().delete()
    template.title = doc.title
    template.description = doc.description
    template.gate_position = doc.gate_index
    template.rollback_heading = doc.rollback_heading
    template.rollback_intro = doc.rollback_intro
    template.contacts_heading = doc.contacts_heading
    template.contacts_header = list(doc.contacts_header)
    template.save()
    TemplateItem.objects.bulk_create(
        [
            TemplateItem(
                template=template,
                position=index,
                phase=item.phase,
                section=item.section,
                text=item.text,
                owner_role=item.owner or FALLBACK_OWNER,
                required=item.required,
                checks=list(item.checks),
                perform=item.perform,
            )
            for index, item in enumerate(doc.items)
        ]
    )
    TemplateRollbackStep.objects.bulk_create(
        [
            TemplateRollbackStep(template=template, position=index, **step_columns(step))
            for index, step in enumerate(doc.rollback_steps)
        ]
    )
    TemplateContact.objects.bulk_create(
        [
            TemplateContact(
                template=template, position=index, role=c.role, name=c.name, contact=c.contact
            )
            for index, c in enumerate(doc.contacts)
        ]
    )
    return template, created


def copy_into_release(template: ChecklistTemplate, release: Release) -> int:
    """Save `release` with its own copy of the template's checklist; the item count.

    Every field of the shared abstract models is copied, so a field added to one of
    them reaches releases with no edit here.
    """
    for name, value in shared_values(template, ChecklistOutline).items():
        setattr(release, name, value)
    release.template_name = template.name
    release.template_title = template.title
    release.template_description = template.description
    release.save()
    items = list(template.items.order_by("position"))
    gate = template.gate_position if template.gate_position is not None else len(items)
    ReleaseItem.objects.bulk_create(
        [
            ReleaseItem(
                # Numbered afresh: positions edited in the admin may have gaps.
                **{**shared_values(i, ChecklistEntry), "position": index},
                release=release,
                before_gate=index < gate,
            )
            for index, i in enumerate(items)
        ]
    )
    RollbackStep.objects.bulk_create(
        [
            RollbackStep(release=release, **shared_values(s, RollbackStepFields))
            for s in template.rollback_steps.all()
        ]
    )
    EmergencyContact.objects.bulk_create(
        [
            EmergencyContact.from_cell(
                c.contact, release=release, **shared_values(c, ContactFields)
            )
            for c in template.contacts.all()
        ]
    )
    return len(items)


def _document(
    outline: ChecklistOutline,
    *,
    title: str,
    description: str,
    items: Iterable[md.Item],
    steps: Iterable[RollbackStepFields],
    contacts: Iterable[md.Contact],
    step_records: Mapping[int, md.Record] | None = None,
) -> md.Checklist:
    """`step_records`: the record of each rollback step, by the step's id."""
    records = step_records or {}
    return md.Checklist(
        title=title,
        description=description,
        items=tuple(items),
        gate_index=outline.gate_position,
        rollback_heading=outline.rollback_heading,
        rollback_intro=outline.rollback_intro,
        rollback_steps=tuple(plan_step(s, records.get(s.pk)) for s in steps),
        contacts_heading=outline.contacts_heading,
        contacts=tuple(contacts),
        contacts_header=tuple(outline.contacts_header) or md.Checklist.DEFAULT_CONTACTS_HEADER,
    )


def plan_step(row: RollbackStepFields, record: md.Record | None = None) -> md.RollbackStep:
    """A rollback step's row as the plan writes it."""
    return md.RollbackStep(
        text=row.text,
        commands=row.commands,
        lang=row.lang,
        # DevOps is every step's owner unless the plan names another.
        owner=None if row.owner_role == Role.DEVOPS else row.owner_role,
        record=record,
    )


def step_columns(step: md.RollbackStep) -> dict[str, str]:
    """A plan's step as its row stores it: DevOps owns a step the plan gives no owner."""
    return {
        "text": step.text,
        "commands": step.commands,
        "lang": step.lang,
        "owner_role": step.owner or Role.DEVOPS,
    }


def _item(entry: ChecklistEntry, record: md.Record | None = None) -> md.Item:
    return md.Item(
        text=entry.text,
        phase=entry.phase,
        section=entry.section,
        owner=entry.owner_role,
        required=entry.required,
        checks=tuple(entry.checks),
        perform=entry.perform,
        record=record,
    )


def template_document(template: ChecklistTemplate) -> md.Checklist:
    return _document(
        template,
        title=template.title,
        description=template.description,
        items=(_item(i) for i in template.items.order_by("position")),
        steps=template.rollback_steps.order_by("position"),
        contacts=(
            md.Contact(role=c.role, name=c.name, contact=c.contact)
            for c in template.contacts.order_by("position")
        ),
    )


def _timestamp(moment: datetime | None) -> str:
    if moment is None:
        return ""
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


def _record(item: ReleaseItem) -> md.Record | None:
    if item.state == ItemState.PENDING and not (item.note or item.evidence_url):
        return None
    return md.Record(
        state=item.state,
        by=item.changed_by_label,
        at=_timestamp(item.changed_at),
        reason=item.reason,
        note=item.note,
        evidence=item.evidence_url,
    )


def _step_records(release: Release) -> dict[int, md.Record]:
    """How each rollback step went in the release's latest rollback, by step id: as
    items, a step left pending with nothing said has no record."""
    rollback = release.rollbacks.order_by("-declared_at", "-pk").first()
    if rollback is None:
        return {}
    return {
        record.step_id: md.Record(
            state="done" if record.done else "pending",
            by=record.done_by_label,
            at=_timestamp(record.done_at),
            note=record.note,
            evidence=record.evidence_url,
        )
        for record in rollback.records.all()
        if record.done or record.note or record.evidence_url
    }


def release_document(release: Release) -> md.Checklist:
    """The signed record of a release: who settled what, when, and why, and how its
    rollback's steps went."""
    return _document(
        release,
        title=release.template_title,
        description=release.template_description,
        items=(_item(i, _record(i)) for i in release.items.order_by("position")),
        steps=release.rollback_steps.order_by("position"),
        contacts=(
            md.Contact(role=c.role, name=c.name, contact=c.cell)
            for c in release.contacts.order_by("position")
        ),
        step_records=_step_records(release),
    )


def export_template(template: ChecklistTemplate) -> str:
    return md.render_checklist(template_document(template))


def export_release(release: Release) -> str:
    return md.render_checklist(release_document(release))
