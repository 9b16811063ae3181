"""Markdown checklists in and out of the database.

releases.markdown knows Markdown and nothing of Django; this module turns its documents
into templates and turns templates and releases back into documents.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

from django.db import transaction

from . import markdown as md
from .models import (
    AuditEvent,
    ChecklistTemplate,
    ItemState,
    Release,
    Role,
    TemplateContact,
    TemplateItem,
    TemplateRollbackStep,
)

DEFAULT_CHECKLIST = Path(__file__).parent / "data" / "checklist-produccion.md"
FALLBACK_OWNER = Role.DEVOPS.value


class ChecklistFileError(Exception):
    """A checklist that cannot be imported, worded as `path:line: what is wrong`."""

    def __init__(self, source: str, error: md.ChecklistError) -> None:
        where = f"{source}:{error.line}" if error.line else source
        super().__init__(f"{where}: {error.message}")


def read(path: str | Path) -> md.Checklist:
    try:
        return md.read_checklist_file(path)
    except md.ChecklistError as error:
        raise ChecklistFileError(str(path), error) from None
    except OSError as error:
        raise ChecklistFileError(
            str(path), md.ChecklistError(None, f"cannot read the file ({error.strerror})")
        ) from None


def parse_bytes(data: bytes, source: str) -> md.Checklist:
    try:
        return md.read_checklist_bytes(data)
    except md.ChecklistError as error:
        raise ChecklistFileError(source, error) from None


def parse_text(text: str, source: str) -> md.Checklist:
    try:
        return md.parse_checklist(text)
    except md.ChecklistError as error:
        raise ChecklistFileError(source, error) from None


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


@transaction.atomic
def save_template(doc: md.Checklist, name: str, *, actor_label: str) -> ChecklistTemplate:
    """Create the template, or replace one of the same name. Releases made from it keep
    their own copies."""
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
            )
            for index, item in enumerate(doc.items)
        ]
    )
    TemplateRollbackStep.objects.bulk_create(
        [
            TemplateRollbackStep(
                template=template,
                position=index,
                text=step.text,
                commands=step.commands,
                lang=step.lang,
            )
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
    AuditEvent.objects.create(
        actor_label=actor_label,
        action="template.imported" if created else "template.replaced",
        target=name,
        after={"summary": doc.summary()},
    )
    return template


def load_default_template(*, actor_label: str = "system") -> ChecklistTemplate:
    doc = read(DEFAULT_CHECKLIST)
    return save_template(doc, doc.title, actor_label=actor_label)


def template_document(template: ChecklistTemplate) -> md.Checklist:
    items = tuple(
        md.Item(
            text=i.text,
            phase=i.phase,
            section=i.section,
            owner=i.owner_role,
            required=i.required,
            checks=tuple(i.checks),
        )
        for i in template.items.order_by("position")
    )
    return md.Checklist(
        title=template.title,
        description=template.description,
        items=items,
        gate_index=template.gate_position,
        rollback_heading=template.rollback_heading,
        rollback_intro=template.rollback_intro,
        rollback_steps=tuple(
            md.RollbackStep(text=s.text, commands=s.commands, lang=s.lang)
            for s in template.rollback_steps.order_by("position")
        ),
        contacts_heading=template.contacts_heading,
        contacts=tuple(
            md.Contact(role=c.role, name=c.name, contact=c.contact)
            for c in template.contacts.order_by("position")
        ),
        contacts_header=tuple(template.contacts_header) or md.Checklist.DEFAULT_CONTACTS_HEADER,
    )


def _timestamp(moment: datetime | None) -> str:
    if moment is None:
        return ""
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


def release_document(release: Release) -> md.Checklist:
    """The signed record of a release: who settled what, when, and why."""
    items = []
    for i in release.items.order_by("position"):
        record = None
        if i.state != ItemState.PENDING or i.note or i.evidence_url:
            record = md.Record(
                state=i.state,
                by=i.changed_by_label,
                at=_timestamp(i.changed_at),
                reason=i.reason,
                note=i.note,
                evidence=i.evidence_url,
            )
        items.append(
            md.Item(
                text=i.text,
                phase=i.phase,
                section=i.section,
                owner=i.owner_role,
                required=i.required,
                checks=tuple(i.checks),
                record=record,
            )
        )
    contacts = tuple(
        md.Contact(
            role=c.role,
            name=c.name,
            contact=" / ".join(v for v in (c.phone, c.email, c.other) if v),
        )
        for c in release.contacts.order_by("position")
    )
    return md.Checklist(
        title=release.template_title,
        description=release.template_description,
        items=tuple(items),
        gate_index=release.gate_position,
        rollback_heading=release.rollback_heading,
        rollback_intro=release.rollback_intro,
        rollback_steps=tuple(
            md.RollbackStep(text=s.text, commands=s.commands, lang=s.lang)
            for s in release.rollback_steps.order_by("position")
        ),
        contacts_heading=release.contacts_heading,
        contacts=contacts,
        contacts_header=tuple(release.contacts_header) or md.Checklist.DEFAULT_CONTACTS_HEADER,
    )


def export_template(template: ChecklistTemplate) -> str:
    return md.render_checklist(template_document(template))


def export_release(release: Release) -> str:
    return md.render_checklist(release_document(release))
