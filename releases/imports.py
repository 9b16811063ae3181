"""Staff import a Markdown checklist in the browser: upload, preview, confirm.

The preview carries the uploaded text in the confirm form, so nothing is written until
the person has seen exactly what will be created; confirming parses it again.
"""

from __future__ import annotations

from typing import Any

from django import forms
from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import URLPattern, path, reverse
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.views.decorators.http import require_http_methods

from . import checklists, workflow
from . import markdown as md
from .access import person, require_manager
from .models import ChecklistTemplate, Role


class UploadForm(forms.Form):
    file = forms.FileField(label=gettext_lazy("Markdown checklist"))
    name = forms.CharField(
        label=gettext_lazy("Template name"),
        max_length=200,
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
    text = forms.CharField(widget=forms.HiddenInput, strip=False)
    name = forms.CharField(max_length=200)
    default_owner = forms.ChoiceField(choices=Role.choices)


def _preview(doc: md.Checklist, default_owner: str) -> dict[str, Any]:
    owned = checklists.with_owners(doc, default_owner)
    sections: list[dict[str, Any]] = []
    for index, item in enumerate(owned.items):
        key = (item.phase, item.section)
        if not sections or sections[-1]["key"] != key:
            sections.append({"key": key, "phase": item.phase, "section": item.section, "items": []})
        sections[-1]["items"].append(
            {
                "text": item.text,
                "owner": Role(item.owner).label if item.owner else "",
                "defaulted": doc.items[index].owner is None,
                "required": item.required,
                "checks": item.checks,
                "after_gate": owned.gate_index is not None and index >= owned.gate_index,
            }
        )
    return {
        "doc": owned,
        "sections": sections,
        "summary": owned.summary(),
        "defaulted": sum(1 for i in doc.items if i.owner is None),
    }


@login_required
@require_http_methods(["GET", "POST"])
def import_checklist(request: HttpRequest) -> HttpResponse:
    require_manager(request)
    if request.method == "POST" and "text" in request.POST:
        return _confirm(request)
    form = UploadForm(request.POST or None, request.FILES or None)
    if request.method != "POST" or not form.is_valid():
        return render(request, "releases/import.html", {"form": form})
    upload = form.cleaned_data["file"]
    if upload.size > settings.CHECKLIST_MAX_BYTES:
        form.add_error(
            "file",
            _("%(name)s: the file is too large (%(size)d bytes, the limit is %(limit)d).")
            % {"name": upload.name, "size": upload.size, "limit": settings.CHECKLIST_MAX_BYTES},
        )
        return render(request, "releases/import.html", {"form": form})
    try:
        doc = checklists.parse_bytes(upload.read(), upload.name)
    except checklists.ChecklistFileError as error:
        form.add_error("file", str(error))
        return render(request, "releases/import.html", {"form": form})
    name = form.cleaned_data["name"].strip() or doc.title or upload.name
    default_owner = form.cleaned_data["default_owner"]
    confirm = ConfirmForm(
        initial={"text": md.render_checklist(doc), "name": name, "default_owner": default_owner}
    )
    return render(
        request,
        "releases/import_preview.html",
        {
            **_preview(doc, default_owner),
            "confirm": confirm,
            "name": name,
            "replaces": ChecklistTemplate.objects.filter(name=name).exists(),
        },
    )


def _confirm(request: HttpRequest) -> HttpResponse:
    form = ConfirmForm(request.POST)
    if not form.is_valid():
        messages.error(request, _("The preview expired or was altered; upload the file again."))
        return redirect("releases:import")
    try:
        doc = checklists.parse_text(form.cleaned_data["text"], _("uploaded checklist"))
    except checklists.ChecklistFileError as error:
        messages.error(request, str(error))
        return redirect("releases:import")
    name = form.cleaned_data["name"].strip()
    template = workflow.import_template(
        checklists.with_owners(doc, form.cleaned_data["default_owner"]), name, by=person(request)
    )
    messages.success(
        request,
        _("Template “%(name)s” saved: %(summary)s.")
        % {"name": template.name, "summary": doc.summary()},
    )
    return redirect(reverse("releases:list"))


routes: list[URLPattern] = [
    path("templates/import/", import_checklist, name="import"),
]
