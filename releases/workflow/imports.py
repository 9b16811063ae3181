"""Templates and releases: a checklist imported as a template, and a release created
from one in a single transaction.
"""

from __future__ import annotations

from datetime import datetime

from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.utils.translation import gettext as _

from .. import checklists
from .. import markdown as md
from ..models import (
    AuditAction,
    ChecklistTemplate,
    Release,
)
from .change import By, WorkflowError, _changing, _require_manager, as_actor, visible_text


def import_template(
    doc: md.Checklist, name: str, *, by: By, ip: str | None = None
) -> ChecklistTemplate:
    """Create the template, or replace one of the same name. Releases made from it keep
    their own copies."""
    actor = as_actor(by, ip)
    _require_manager(actor)
    # The file's own text is refused at its line by the reader; the name is typed apart.
    visible_text(name, _("The template name"))
    with _changing(None, actor) as change:
        template, created = checklists.save_template(doc, name)
        change.audit(
            AuditAction.TEMPLATE_IMPORTED if created else AuditAction.TEMPLATE_REPLACED,
            name,
            {},
            {"summary": doc.summary()},
        )
        return template


def import_default_template(*, by: By) -> ChecklistTemplate:
    doc = checklists.read(checklists.DEFAULT_CHECKLIST)
    return import_template(doc, doc.title, by=by)


def create_release(
    template: ChecklistTemplate,
    *,
    version: str,
    title: str,
    by: By,
    window_start: datetime | None = None,
    window_end: datetime | None = None,
    changelog_url: str = "",
    two_person_rule: bool = True,
    ip: str | None = None,
) -> Release:
    """A release's checklist is a copy of its template, so later template edits never
    rewrite a release in progress."""
    actor = as_actor(by, ip)
    _require_manager(actor)
    release = Release(
        version=version.strip(),
        title=visible_text(title.strip(), _("The title")),
        template=template,
        window_start=window_start,
        window_end=window_end,
        changelog_url=visible_text(changelog_url.strip(), _("The changelog link")),
        two_person_rule=two_person_rule,
    )
    try:
        # Uniqueness is left to the insert, which answers races and the plain case alike.
        release.full_clean(validate_unique=False)
    except ValidationError as error:
        raise WorkflowError(" ".join(error.messages)) from None
    try:
        with transaction.atomic():
            item_count = checklists.copy_into_release(template, release)
            with _changing(release.pk, actor) as change:
                change.audit(
                    AuditAction.RELEASE_CREATED,
                    release.version,
                    {},
                    {"template": template.name, "items": item_count},
                )
    except IntegrityError:
        raise WorkflowError(
            _("A release %(version)s already exists.") % {"version": release.version}
        ) from None
    return release
