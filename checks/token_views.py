"""The staff pages that manage pipeline tokens: a release's ("Pipeline tokens") and the
project's (`/tokens/`), where staff create, list and revoke them.

A token is made for one role and either one release or, as a project token, every release
whose version matches its pattern; it is shown once and only its hash is stored. The API
that takes them is the `api` app; each page shows the URLs a CI job calls.
"""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import URLPattern, path, reverse
from django.utils.translation import gettext as _
from django.views.decorators.http import require_http_methods

from releases.access import get_release_for_user, person, require_manager
from releases.manage_views import _refused_if
from releases.models import Release

from . import tokens as tokens_service
from .forms import PipelineTokenForm, ProjectTokenForm, RevokePipelineTokenForm
from .models import PipelineToken


@login_required
@require_http_methods(["GET", "POST"])
def tokens(request: HttpRequest, version: str) -> HttpResponse:
    release = get_release_for_user(request, version)
    require_manager(request)
    return _tokens_page(request, release)


@login_required
@require_http_methods(["GET", "POST"])
def project_tokens(request: HttpRequest) -> HttpResponse:
    """Tokens for every release whose version matches a pattern, so that CI needs no
    new token for each release."""
    require_manager(request)
    return _tokens_page(request, None)


def _tokens_page(request: HttpRequest, release: Release | None) -> HttpResponse:
    """The tokens of a release, or with None the project's: create, list, revoke."""
    if release is not None:
        here = reverse("checks:tokens", args=[release.version])
        form_class: type[PipelineTokenForm] = PipelineTokenForm
        version = release.version
    else:
        here = reverse("checks:project-tokens")
        form_class = ProjectTokenForm
        # The example the page shows leaves the version to the CI job's shell.
        version = "$RELEASE_VERSION"
    form = form_class()
    new_token = ""
    if request.method == "POST":
        if request.POST.get("action") == "revoke":
            revoke = RevokePipelineTokenForm(request.POST, release=release)
            if revoke.is_valid() and tokens_service.revoke(
                revoke.cleaned_data["token"], by=person(request)
            ):
                messages.success(request, _("Token revoked; it no longer works."))
            else:
                messages.error(request, _("That token is already revoked or does not exist."))
            return redirect(here)
        form = form_class(request.POST)
        if form.is_valid():
            new_token = tokens_service.create(
                release,
                role=form.cleaned_data["role"],
                label=form.cleaned_data["label"],
                pattern=form.cleaned_data.get("version_pattern", ""),
                by=person(request),
            )
            if new_token:
                form = form_class()
            else:
                form.add_error("label", _("An active token already has this label."))
    shown = PipelineToken.objects.select_related("created_by")
    context = {
        "release": release,
        "form": form,
        "new_token": new_token,
        "tokens": [
            (t, RevokePipelineTokenForm(initial={"token": t.pk}, release=release, auto_id=False))
            for t in (shown.filter(release=release) if release is not None else shown.of_project())
        ],
        # The project tokens that also work here, shown read-only: the project's page
        # manages them.
        "applying": [(t, None) for t in shown.active().applying_to(release.version)]
        if release is not None
        else [],
        "api_go": request.build_absolute_uri(reverse("api:go-no-go", args=[version])),
        "api_evidence": request.build_absolute_uri(reverse("api:evidence", args=[version])),
    }
    template = "checks/tokens.html" if release is not None else "checks/project_tokens.html"
    response = render(request, template, context, status=_refused_if(form))
    # The page may carry a working token: never cached, never kept in history.
    response["Cache-Control"] = "no-store"
    return response


routes: list[URLPattern] = [
    path("releases/<str:version>/tokens/", tokens, name="tokens"),
    path("tokens/", project_tokens, name="project-tokens"),
]
