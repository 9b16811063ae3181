"""Staff import a Markdown checklist in the browser: upload, preview, confirm.

The preview carries the checklist in the confirm form, so nothing is written until the
person has seen exactly what will be created; confirming parses it again. What the
preview showed (the text, the file's name, and the owner of the items the file does not
assign) travels signed and for an hour at most: an altered or stale preview is refused
rather than imported. The template's name is not signed, since the person may still
change it there.

The uploaded text is also kept in the session until the template is created, since a
browser never fills a file field back in: after a page with mistakes on it (a file's
problems, a name too long) or a refused preview, the person previews again without
picking the file again.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any, NamedTuple

from django import forms
from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core import signing
from django.db import models
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import URLPattern, path, reverse
from django.utils.formats import number_format
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy, ngettext
from django.views.decorators.http import require_http_methods

from . import checklists, rendering, workflow
from . import markdown as md
from .access import person, require_manager
from .forms import TextLimit, VisibleText
from .models import ChecklistTemplate, Role, TemplateContact, TemplateRollbackStep


def _limit(model: type[models.Model], name: str) -> int:
    field = model._meta.get_field(name)
    assert isinstance(field, models.CharField) and field.max_length is not None
    return field.max_length


PREVIEW_MAX_AGE = timedelta(hours=1)
PREVIEW_SALT = "releases.imports.preview"
NAME_MAX_LENGTH = _limit(ChecklistTemplate, "name")
NAME_ERRORS = {
    "max_length": gettext_lazy(
        "The template name is longer than %(limit)s characters (it has %(length)s)."
    ),
    "required": gettext_lazy("Give the template a name."),
}


def _name_field(**kwargs: Any) -> forms.CharField:
    field = forms.CharField(error_messages=NAME_ERRORS, **kwargs)
    # TextLimit rather than max_length=, so that the counts read as the person reads them.
    field.max_length = NAME_MAX_LENGTH
    field.validators.append(TextLimit(NAME_MAX_LENGTH))
    field.validators.append(VisibleText(gettext_lazy("The template name")))
    field.widget.attrs["maxlength"] = str(NAME_MAX_LENGTH)
    return field


class UploadForm(forms.Form):
    # Not required: a file kept from the last upload stands in for it (import_checklist).
    file = forms.FileField(label=gettext_lazy("Markdown checklist"), required=False)
    name = _name_field(
        label=gettext_lazy("Template name"),
        required=False,
        help_text=gettext_lazy("Leave empty to use the checklist's title."),
    )
    default_owner = forms.ChoiceField(
        label=gettext_lazy("Owner of items the file does not assign"),
        choices=[(r.value, r.label) for r in Role.leads()]
        + [(Role.PRODUCT_OWNER.value, Role.PRODUCT_OWNER.label)],
        initial=checklists.FALLBACK_OWNER,
    )


class ConfirmForm(forms.Form):
    preview = forms.CharField(widget=forms.HiddenInput, strip=False)
    name = _name_field(label=gettext_lazy("Template name"))


class PreviewRefused(Exception):
    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class Upload(NamedTuple):
    """A checklist file as uploaded: its name and its text."""

    file_name: str
    text: str


class Preview(NamedTuple):
    upload: Upload
    default_owner: str


KEPT_UPLOAD = "releases.imports.upload"


def _kept_upload(request: HttpRequest) -> Upload | None:
    kept = request.session.get(KEPT_UPLOAD)
    if not isinstance(kept, dict):
        return None
    file_name, text = kept.get("file_name"), kept.get("text")
    if not isinstance(file_name, str) or not isinstance(text, str):
        return None
    return Upload(file_name, text)


def _keep_upload(request: HttpRequest, upload: Upload | None) -> None:
    if upload is None:
        request.session.pop(KEPT_UPLOAD, None)
    else:
        request.session[KEPT_UPLOAD] = upload._asdict()


def sign_preview(upload: Upload, default_owner: str) -> str:
    signer = signing.TimestampSigner(salt=PREVIEW_SALT)
    return signer.sign_object(
        {"text": upload.text, "file": upload.file_name, "owner": default_owner}, compress=True
    )


def read_preview(value: str) -> Preview:
    """What a preview showed, or PreviewRefused saying why not."""
    signer = signing.TimestampSigner(salt=PREVIEW_SALT)
    try:
        data = signer.unsign_object(value, max_age=PREVIEW_MAX_AGE)
    except signing.SignatureExpired:
        raise PreviewRefused(
            _("The preview expired (a preview lasts an hour); upload the file again.")
        ) from None
    except signing.BadSignature:
        raise PreviewRefused(_("The preview was altered; upload the file again.")) from None
    text, file_name, owner = data.get("text"), data.get("file"), data.get("owner")
    if not isinstance(text, str) or not isinstance(file_name, str) or owner not in Role.values:
        raise PreviewRefused(_("The preview was altered; upload the file again."))
    return Preview(Upload(file_name, text), owner)


def _storable(doc: md.Checklist, source: str) -> md.Checklist:
    """The checklist, if its template and its releases can store every part of it;
    otherwise ChecklistFileError saying which parts are too long.

    The parser already refuses a title, phase or section longer than its column; the
    rollback and contacts headings, a code block's language and the contact cells it
    leaves to the database, which refused them with a 500 on confirm (or later, when a
    release split a contact cell into a phone and an email too long for theirs).
    """
    # (what it is, its length, its column's length)
    checks = [
        (
            md.gettext_noop("the rollback plan heading"),
            len(doc.rollback_heading),
            _limit(ChecklistTemplate, "rollback_heading"),
        ),
        (
            md.gettext_noop("the emergency contacts heading"),
            len(doc.contacts_heading),
            _limit(ChecklistTemplate, "contacts_heading"),
        ),
    ]
    for step in doc.rollback_steps:
        checks.append(
            (
                md.gettext_noop("a rollback step's code language"),
                len(step.lang),
                _limit(TemplateRollbackStep, "lang"),
            )
        )
    for contact in doc.contacts:
        checks += [
            (
                md.gettext_noop("an emergency contact's role"),
                len(contact.role),
                _limit(TemplateContact, "role"),
            ),
            (
                md.gettext_noop("an emergency contact's name"),
                len(contact.name),
                _limit(TemplateContact, "name"),
            ),
            (
                md.gettext_noop("an emergency contact's contact"),
                len(contact.contact),
                _limit(TemplateContact, "contact"),
            ),
        ]
    problems = [
        md.too_long(None, what, length, limit) for what, length, limit in checks if length > limit
    ]
    if problems:
        first, *more = problems
        raise checklists.ChecklistFileError(source, md.ChecklistError(first.line, first.text, more))
    return doc


def _preview(doc: md.Checklist, default_owner: str) -> dict[str, Any]:
    owned = checklists.with_owners(doc, default_owner)
    sections: list[dict[str, Any]] = []
    for index, item in enumerate(owned.items):
        key = (item.phase, item.section)
        if not sections or sections[-1]["key"] != key:
            sections.append({"key": key, "phase": item.phase, "section": item.section, "items": []})
        sections[-1]["items"].append(
            {
                "text_html": rendering.inline_html(item.text),
                "owner": Role(item.owner).label if item.owner else "",
                "defaulted": doc.items[index].owner is None,
                "required": item.required,
                "checks": item.checks,
                "after_gate": owned.gate_index is not None and index >= owned.gate_index,
            }
        )
    placeholders = checklists.placeholder_contacts(owned)
    return {
        "doc": owned,
        "sections": sections,
        "summary": checklists.summary(owned),
        "defaulted": sum(1 for i in doc.items if i.owner is None),
        "default_owner": Role(default_owner).label,
        "placeholders": placeholders,
        "contacts": [(contact, contact in placeholders) for contact in owned.contacts],
        "rollback_steps": [
            {"text_html": rendering.block_html(step.text), "commands": step.commands}
            for step in owned.rollback_steps
        ],
    }


def _render_preview(
    request: HttpRequest, doc: md.Checklist, preview: Preview, confirm: ConfirmForm
) -> HttpResponse:
    name = str(confirm["name"].value() or "").strip()
    return render(
        request,
        "releases/import_preview.html",
        {
            **_preview(doc, preview.default_owner),
            "confirm": confirm,
            "name": name,
            "file_name": preview.upload.file_name,
            "replaces": ChecklistTemplate.objects.filter(name=name).exists(),
        },
        # A name to fix before the template can be created is a refusal, as elsewhere.
        status=422 if confirm.is_bound and confirm.errors else 200,
    )


def _render_upload(
    request: HttpRequest,
    form: UploadForm,
    kept: Upload | None,
    refused: checklists.ChecklistFileError | None = None,
) -> HttpResponse:
    return render(
        request,
        "releases/import.html",
        {
            "form": form,
            "kept": kept,
            "refused": refused,
            "problem_lines": refused.lines() if refused else [],
        },
        # An upload form sent back is always refused: what it sent previews otherwise.
        status=422 if form.is_bound else 200,
    )


@login_required
@require_http_methods(["GET", "POST"])
def import_checklist(request: HttpRequest) -> HttpResponse:
    require_manager(request)
    # "text" is what a preview page from before signing posted: refused as unsigned.
    if request.method == "POST" and ("preview" in request.POST or "text" in request.POST):
        return _confirm(request)
    kept = _kept_upload(request)
    if request.method != "POST":
        return _render_upload(request, UploadForm(), kept)
    form = UploadForm(request.POST, request.FILES)
    form.is_valid()
    chosen = form.cleaned_data.get("file")
    if chosen or "file" in form.errors:
        # A new file replaces the kept one, whether or not it can be read.
        _keep_upload(request, None)
        kept = None
    if chosen:
        if chosen.size > settings.CHECKLIST_MAX_BYTES:
            form.add_error(
                "file",
                ngettext(
                    "%(name)s: the file is too large (%(size)s byte, the limit is %(limit)s).",
                    "%(name)s: the file is too large (%(size)s bytes, the limit is %(limit)s).",
                    chosen.size,
                )
                % {
                    "name": chosen.name,
                    "size": number_format(chosen.size, force_grouping=True),
                    "limit": number_format(settings.CHECKLIST_MAX_BYTES, force_grouping=True),
                },
            )
            return _render_upload(request, form, None)
        try:
            kept = Upload(chosen.name, checklists.decode_bytes(chosen.read(), chosen.name))
        except checklists.ChecklistFileError as refused:
            return _render_upload(request, form, None, refused)
        _keep_upload(request, kept)
    elif kept is None and "file" not in form.errors:
        form.add_error("file", _("Choose the Markdown checklist to import."))
    if kept is None or form.errors:
        return _render_upload(request, form, kept)
    try:
        doc = _storable(checklists.parse_text(kept.text, kept.file_name), kept.file_name)
    except checklists.ChecklistFileError as refused:
        return _render_upload(request, form, kept, refused)
    typed = form.cleaned_data["name"].strip()
    name = typed or doc.title or kept.file_name
    # The canonical text, so that the confirm reads exactly what the preview showed.
    preview = Preview(
        Upload(kept.file_name, md.render_checklist(doc)), form.cleaned_data["default_owner"]
    )
    signed = sign_preview(preview.upload, preview.default_owner)
    if len(name) <= NAME_MAX_LENGTH:
        confirm = ConfirmForm(initial={"preview": signed, "name": name})
        return _render_preview(request, doc, preview, confirm)
    # A title or file name too long for a template name: the preview stands, with the
    # name field saying so, for the person to shorten there.
    confirm = ConfirmForm({"preview": signed, "name": name})
    confirm.is_valid()
    origin = _("the checklist's title") if doc.title else _("the file name")
    confirm.add_error("name", _("It comes from %(origin)s; shorten it here.") % {"origin": origin})
    return _render_preview(request, doc, preview, confirm)


def _start_again(
    request: HttpRequest,
    confirm: ConfirmForm,
    refused: PreviewRefused | checklists.ChecklistFileError,
) -> HttpResponse:
    """The upload form again, for a preview that cannot be confirmed, saying why: with the
    name typed on the preview, and the file kept from the upload that made it."""
    typed = {"name": confirm["name"].value() or "", "default_owner": checklists.FALLBACK_OWNER}
    form = UploadForm(typed)
    form.is_valid()
    if isinstance(refused, PreviewRefused):
        form.add_error(None, refused.message)
        return _render_upload(request, form, _kept_upload(request))
    return _render_upload(request, form, _kept_upload(request), refused)


def _confirm(request: HttpRequest) -> HttpResponse:
    form = ConfirmForm(request.POST)
    form.is_valid()
    try:
        preview = read_preview(request.POST.get("preview", ""))
        source = preview.upload.file_name
        doc = _storable(checklists.parse_text(preview.upload.text, source), source)
    except (PreviewRefused, checklists.ChecklistFileError) as refused:
        return _start_again(request, form, refused)
    if form.errors:
        return _render_preview(request, doc, preview, form)
    name = form.cleaned_data["name"].strip()
    template = workflow.import_template(
        checklists.with_owners(doc, preview.default_owner), name, by=person(request)
    )
    _keep_upload(request, None)
    messages.success(
        request,
        _("Template “%(name)s” saved: %(summary)s.")
        % {"name": template.name, "summary": checklists.summary(doc)},
    )
    return redirect(reverse("releases:list"))


routes: list[URLPattern] = [
    path("templates/import/", import_checklist, name="import"),
]
