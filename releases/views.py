"""The release board, its actions, and the read-only status page.

Every page works without JavaScript: forms POST and redirect back with a message, or,
refused, answer with the board showing what was typed in its form. With htmx the same
views answer with the changed fragments instead (swapped out of band by their DOM ids),
so the acting page updates at once; every other open page follows through the live
stream.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Hashable, Mapping
from dataclasses import dataclass, replace
from typing import Any
from urllib.parse import urlsplit

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.contrib.auth.models import AnonymousUser
from django.contrib.auth.views import redirect_to_login
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse
from django.middleware.csrf import get_token
from django.shortcuts import get_object_or_404, redirect, render
from django.template.loader import render_to_string
from django.urls import URLPattern, path, reverse
from django.utils import timezone, translation
from django.utils.cache import patch_vary_headers
from django.utils.http import url_has_allowed_host_and_scheme
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.views.decorators.http import require_GET, require_POST
from django_htmx.middleware import HtmxDetails

from . import errors, workflow
from .access import get_release_for_user, person
from .board import (
    Typed,
    Viewer,
    board_context,
    render_fragments,
    section_context,
    show_typed,
    status_context,
    viewer_for,
)
from .forms import (
    TYPED_FIELDS,
    ItemActionForm,
    NamedErrorsForm,
    NudgeForm,
    RemindersForm,
    RevokeForm,
    SignOffForm,
)
from .models import Release, ReleaseItem, Role, ShareLink
from .pages import BODY_SLOT, CSRF_PLACEHOLDER, CutPage, pages

# The board's filters, by query string; "" shows everything.
FILTERS = (
    ("", gettext_lazy("All")),
    ("mine", gettext_lazy("Mine")),
    ("pending", gettext_lazy("Pending")),
    ("blocked", gettext_lazy("Blocked")),
)


class HtmxHttpRequest(HttpRequest):
    htmx: HtmxDetails


def healthz(request: HttpRequest) -> HttpResponse:
    """For a load balancer: 503 naming what this process cannot reach, since every page
    needs the database and, when there is Redis, Redis."""
    if down := errors.unreachable():
        return HttpResponse(
            f"unreachable: {', '.join(down)}", status=503, content_type="text/plain"
        )
    return HttpResponse("ok", content_type="text/plain")


@login_required
def release_list(request: HttpRequest) -> HttpResponse:
    releases = Release.objects.visible_to(request.user).with_progress()
    return render(request, "releases/release_list.html", {"releases": releases})


# --- helpers ---------------------------------------------------------------------------


def _viewer(request: HttpRequest, release: Release, *, read_only: bool = False) -> Viewer:
    return viewer_for(
        request.user, release, read_only=read_only, language=translation.get_language()
    )


# What a request changes in the board's context before it is rendered: a form shown
# again with what was typed in it.
Adjust = Callable[[dict[str, Any]], None]


@dataclass(frozen=True)
class Kept:
    """A board form other than an item's (a rollback step's note, the revoke reason)
    whose `fields` come back as they were typed when the action is refused or stale:
    `put_back` puts them in the board's context, so that the form is rendered holding
    them, in that person's answer only."""

    fields: tuple[str, ...]
    put_back: Callable[[dict[str, Any], Mapping[str, str]], None]


class Unchanged(str):
    """What an operation that found nothing to change says: told as information, where
    a change is told as a success."""


def _render_board(
    request: HtmxHttpRequest,
    release: Release,
    *,
    status: int = 200,
    typed: tuple[int, Typed] | None = None,
    adjust: Adjust | None = None,
) -> HttpResponse:
    """The board rendered for this request alone, never shared: with `typed`, what the
    person typed in one item's form and had refused, back in it; `adjust` does the same
    for another of the board's forms."""
    show = request.GET.get("show", "")
    context = {
        **board_context(release, _viewer(request, release)),
        "show": show if show in dict(FILTERS) else "",
        "filters": FILTERS,
    }
    if typed is not None:
        show_typed(context, *typed, open_section=True)
    if adjust is not None:
        adjust(context)
    template = "releases/board.html"
    # Only the filter links ask for the checklist alone; any other htmx request (a
    # boosted link, a history restore) gets the whole page.
    if request.htmx and request.htmx.target == "board":
        template += "#board"
    response = render(request, template, context, status=status)
    patch_vary_headers(response, ("HX-Request", "HX-Target"))
    return response


def _back_to_board(request: HttpRequest, release: Release, anchor: str) -> str:
    """The board as the person saw it (keeping their filter), at the row they acted on."""
    board_url = reverse("releases:board", args=[release.version])
    referer = request.headers.get("Referer", "")
    if referer and url_has_allowed_host_and_scheme(
        referer, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        parts = urlsplit(referer)
        if parts.path == board_url and parts.query:
            return f"{board_url}?{parts.query}{anchor}"
    return board_url + anchor


def _act(
    request: HtmxHttpRequest,
    release: Release,
    operation: Callable[[], str],
    *,
    item_ids: Collection[int] = (),
    anchor: str = "",
    typed: tuple[int, str, str] | None = None,
    kept: Kept | None = None,
) -> HttpResponse:
    """Run one workflow operation and answer the way the page asked.

    htmx gets the changed fragments and the message, out of band, with a status that
    says what happened (403 not allowed, 409 stale, 422 refused); a refused item row is
    re-rendered with its current state. The answer names the revision it brings the
    page to (X-Revision). Without htmx: back to the board with the message, except that
    a refusal for lack of permission is a 403 page.

    `typed` is the item, the action and what the person typed in its form; `kept`, what
    the operation kept of another form it refused. Refused (422), or stale (409: the form
    then holds the current version, so sending it again replaces the other change
    knowingly), it comes back in that form: in the fragments htmx gets, and without htmx
    on a board page of this request's own, since a redirect would lose it and the shared
    board must never show it to anyone else.
    """
    seen_revision = release.revision
    try:
        text, status = operation(), 200
    except PermissionDenied as error:
        text, status = str(error) or _("You are not allowed to do that."), 403
    except workflow.Conflict as error:
        text, status = error.message, 409
    except workflow.WorkflowError as error:
        text, status = error.message, 422
    if status != 200:
        level = messages.ERROR
    elif isinstance(text, Unchanged):
        level = messages.INFO
    else:
        level = messages.SUCCESS
    messages.add_message(request, level, text)
    current = Release.objects.get(pk=release.pk)
    refused = None
    put_back: Adjust | None = None
    if status in (409, 422) and typed is not None:
        item_id, action, value = typed
        refused = (item_id, Typed(action, value, text))
    if status in (409, 422) and kept is not None and kept.fields:
        values = {name: request.POST.get(name, "") for name in kept.fields}

        def put_back(context: dict[str, Any]) -> None:
            kept.put_back(context, values)

    if request.htmx:
        shown = _shown_revision(request, current.revision)
        context = board_context(current, _viewer(request, current))
        if refused is not None:
            show_typed(context, *refused)
        if put_back is not None:
            put_back(context)
        if shown is None:
            # htmx swaps the answer: what changed since this request read the release.
            html = render_fragments(
                context, "board", since_revision=seen_revision, item_ids=item_ids
            )
        else:
            # live.js applies the answer as it applies a stream update, in revision order:
            # everything since the revision the page shows, closed sections' headings too.
            html = render_fragments(
                context, "board", since_revision=shown, item_ids=item_ids, headings=True
            )
        html += render_to_string("base.html#messages", {"oob": True}, request=request)
        response = HttpResponse(html, status=status)
        response["X-Revision"] = str(current.revision)
        return response
    if status == 403:
        return _render_board(request, current, status=403)
    if refused is not None or put_back is not None:
        return _render_board(request, current, status=status, typed=refused, adjust=put_back)
    return redirect(_back_to_board(request, current, anchor))


def _shown_revision(request: HttpRequest, current: int) -> int | None:
    """The revision the acting page shows, which live.js sends with each action; None
    from a page without it. A page claiming a revision the release never had gets
    everything again."""
    try:
        shown = int(request.headers.get("X-Revision-Shown", ""))
    except ValueError:
        return None
    return shown if 0 <= shown <= current else 0


def _valid_data(form: NamedErrorsForm) -> dict[str, Any]:
    """What the form holds. One that does not hold is refused (422) like a rule saying
    no, with a message naming each wrong field and its limit."""
    if not form.is_valid():
        raise workflow.WorkflowError(form.refusal())
    return form.cleaned_data


# --- pages -----------------------------------------------------------------------------


@dataclass(frozen=True)
class CachedPage:
    """What a page request needs: the shared render's key and how to make it, and the
    shell's few per-request values."""

    key: Hashable
    render: Callable[[], str]
    title: str
    share_token: str = ""
    # A fragment (the filtered checklist for htmx) goes out without the shell.
    bare: bool = False


def _board_page(request: HtmxHttpRequest, version: str) -> CachedPage | HttpResponse:
    if not request.user.is_authenticated:
        return redirect_to_login(request.get_full_path())
    release = get_release_for_user(request, version)
    language = request.LANGUAGE_CODE
    viewer = _viewer(request, release)
    show = request.GET.get("show", "")
    show = show if show in dict(FILTERS) else ""
    # Only the filter links ask for the checklist alone; any other htmx request (a
    # boosted link, a history restore) gets the whole page.
    bare = bool(request.htmx and request.htmx.target == "board")
    part = "board" if bare else "page"

    def render_body() -> str:
        with translation.override(language):
            context = {
                **board_context(release, viewer),
                "show": show,
                "filters": FILTERS,
                "csrf_token": CSRF_PLACEHOLDER,
            }
            return render_to_string(f"releases/board.html#{part}", context)

    return CachedPage(
        key=("board", release.pk, release.revision, viewer, language, show, part),
        render=render_body,
        title=f"{release.version} · {_('Board')}",
        bare=bare,
    )


def _section_page(request: HtmxHttpRequest, version: str, index: int) -> CachedPage:
    """The rows of one section of a big board, asked for when the person opens it."""
    release = get_release_for_user(request, version)
    language = request.LANGUAGE_CODE
    viewer = _viewer(request, release)

    def render_body() -> str:
        with translation.override(language):
            context = section_context(release, viewer, index)
            if context is None:
                raise Http404(_("This release has no such section."))
            return render_to_string(
                "releases/board.html#section_rows", {**context, "csrf_token": CSRF_PLACEHOLDER}
            )

    return CachedPage(
        key=("section", release.pk, release.revision, viewer, language, index),
        render=render_body,
        title="",
        bare=True,
    )


def _status_page(request: HttpRequest, release: Release, viewer: Viewer, token: str) -> CachedPage:
    language = request.LANGUAGE_CODE

    def render_body() -> str:
        with translation.override(language):
            context = {
                **status_context(release, viewer),
                "share_token": token,
                "csrf_token": CSRF_PLACEHOLDER,
            }
            return render_to_string("releases/status.html#page", context)

    # The "now" block says how long each blocked item has been so: a reload gets it
    # right to the minute, however long the revision stands.
    minute = timezone.now().replace(second=0, microsecond=0)
    return CachedPage(
        # The share token is part of the page (its live URLs): one render per link.
        key=("status", release.pk, release.revision, viewer, language, token, minute),
        render=render_body,
        title=f"{release.version} · {_('Status')}",
        share_token=token,
    )


def _member_status_page(request: HtmxHttpRequest, version: str) -> CachedPage | HttpResponse:
    if not request.user.is_authenticated:
        return redirect_to_login(request.get_full_path())
    release = get_release_for_user(request, version)
    return _status_page(request, release, _viewer(request, release, read_only=True), "")


def _shared_status_page(request: HtmxHttpRequest, token: str) -> CachedPage:
    link = get_object_or_404(
        ShareLink.objects.active().select_related("release"),
        token_hash=ShareLink.hash_token(token),
    )
    # Whoever opens a share link sees what the link grants, even when logged in.
    viewer = viewer_for(
        AnonymousUser(),
        link.release,
        read_only=True,
        language=request.LANGUAGE_CODE,
        hides_personal=link.hides_personal,
    )
    return _status_page(request, link.release, viewer, token)


def _shell(request: HttpRequest, page: CachedPage, body: CutPage) -> HttpResponse:
    """The page around a shared body, rendered for this request by the context
    processors (the person, their messages, the CSRF token)."""
    # One masked token for the shell and the body: masking draws 32 random characters.
    token = get_token(request)
    context = {
        "page_title": page.title,
        "body": BODY_SLOT,
        "share_token": page.share_token,
        "csrf_token": token,
    }
    response = render(request, "releases/cached_page.html", context)
    # The body goes in as the bytes it is, not decoded into the shell's render and
    # encoded again. Nothing follows the slot but the closing tags, and what a person
    # typed is escaped before it, so the last one is the template's.
    before, _slot, after = response.content.rpartition(BODY_SLOT.encode())
    response.content = b"".join((before, _filled(body, token), after))
    return response


def _filled(page: CutPage, token: str) -> bytes:
    """A shared render with this request's CSRF token put in."""
    return page.filled({CSRF_PLACEHOLDER: token.encode()})


def _serve(
    request: HtmxHttpRequest,
    prepare: Callable[[HtmxHttpRequest, str], CachedPage | HttpResponse],
    key: str,
) -> HttpResponse:
    """Access (the login too) and the revision are read for this request; the body comes
    from the shared cache with this request's CSRF token put in, the page around it is
    rendered for the request."""
    page = prepare(request, key)
    if isinstance(page, HttpResponse):
        return page
    body = pages.get_or_render(page.key, lambda: CutPage(page.render().encode()))
    response = (
        HttpResponse(_filled(body, get_token(request)))
        if page.bare
        else _shell(request, page, body)
    )
    patch_vary_headers(response, ("HX-Request", "HX-Target"))
    return response


@require_GET
def board(request: HtmxHttpRequest, version: str) -> HttpResponse:
    return _serve(request, _board_page, version)


@login_required
@require_GET
def board_section(request: HtmxHttpRequest, version: str, index: int) -> HttpResponse:
    return _serve(request, lambda request, version: _section_page(request, version, index), version)


@require_GET
def status_page(request: HtmxHttpRequest, version: str) -> HttpResponse:
    return _serve(request, _member_status_page, version)


@require_GET
def shared_status(request: HtmxHttpRequest, token: str) -> HttpResponse:
    """The status page for whoever holds a share link; no account needed."""
    response = _serve(request, _shared_status_page, token)
    response["Referrer-Policy"] = "no-referrer"
    response["X-Robots-Tag"] = "noindex, nofollow"
    return response


# --- actions ---------------------------------------------------------------------------


# What the note and evidence link forms say: saved, emptied, or emptied where the item
# held none.
_ANNOTATIONS = {
    "note": (
        gettext_lazy("Saved the note on “%(text)s”."),
        gettext_lazy("Removed the note on “%(text)s”."),
        gettext_lazy("“%(text)s” has no note to remove: nothing changed."),
    ),
    "evidence": (
        gettext_lazy("Saved the evidence link on “%(text)s”."),
        gettext_lazy("Removed the evidence link on “%(text)s”."),
        gettext_lazy("“%(text)s” has no evidence link to remove: nothing changed."),
    ),
}


@login_required
@require_POST
def item_action(request: HtmxHttpRequest, version: str, item_id: int) -> HttpResponse:
    release = get_release_for_user(request, version)
    item = get_object_or_404(release.items, pk=item_id)
    form = ItemActionForm(request.POST)

    def operation() -> str:
        data = _valid_data(form)
        action: str = data["action"]
        seen: int = data["version"]
        common: dict[str, Any] = {"by": person(request), "expected_version": seen}
        text = {"text": item.text}

        def said(acted: ReleaseItem, done: str) -> str:
            """`done`, or, where the item's version did not move, that nothing changed."""
            if acted.version == seen:
                return Unchanged(
                    _("“%(text)s” is already %(state)s: nothing changed.")
                    % {**text, "state": acted.get_state_display().lower()}
                )
            return done % text

        if action in _ANNOTATIONS:
            field = TYPED_FIELDS[action]
            annotated = workflow.annotate_item(item, **{field: data[field]}, **common)
            saved, removed, absent = _ANNOTATIONS[action]
            if getattr(annotated, field):
                return saved % text
            # The item's version moves only when something changed.
            return Unchanged(absent % text) if annotated.version == seen else removed % text
        if action == "tick":
            return said(workflow.tick(item, **common), _("Marked “%(text)s” as done."))
        if action == "override":
            ticked = workflow.tick(item, override_reason=data["reason"], **common)
            return said(ticked, _("Ticked “%(text)s” over its failing check, with your reason."))
        if action == "untick":
            return said(workflow.untick(item, **common), _("Reopened “%(text)s”."))
        if action == "na":
            marked = workflow.mark_not_applicable(item, reason=data["reason"], **common)
            return said(marked, _("Marked “%(text)s” as not applicable."))
        marked = workflow.mark_blocked(item, reason=data["reason"], **common)
        return said(marked, _("Marked “%(text)s” as blocked."))

    typed = form.typed()
    return _act(
        request,
        release,
        operation,
        item_ids=[item.pk],
        anchor=f"#item-{item.pk}",
        typed=None if typed is None else (item.pk, *typed),
    )


@login_required
@require_POST
def signoff(request: HtmxHttpRequest, version: str) -> HttpResponse:
    release = get_release_for_user(request, version)
    form = SignOffForm(request.POST)

    def operation() -> str:
        data = _valid_data(form)
        role, phase = data["role"], data["phase"]
        names = {"role": Role(role).label, "phase": phase}
        if data["action"] == "sign":
            workflow.sign_off(release, role=role, phase=phase, by=person(request))
            return _("Signed off the %(role)s items of “%(phase)s”.") % names
        workflow.withdraw_sign_off(release, role=role, phase=phase, by=person(request))
        return _("Withdrew the %(role)s sign-off of “%(phase)s”.") % names

    # Back where the button was: a lead's own sign-off is under "My open items".
    own = form.is_valid() and form.cleaned_data["role"] in _viewer(request, release).roles
    return _act(request, release, operation, anchor="#mine-panel" if own else "#signoff-panel")


# One button of the go/no-go panel: what it does with what its form holds, and the
# message saying it did.
PanelAction = Callable[[HttpRequest, Release, dict[str, Any]], str]


def _panel_action(
    request: HtmxHttpRequest,
    version: str,
    form_class: type[NamedErrorsForm],
    action: PanelAction,
    kept: Kept | None = None,
) -> HttpResponse:
    release = get_release_for_user(request, version)
    form = form_class(request.POST)
    return _act(
        request,
        release,
        lambda: action(request, release, _valid_data(form)),
        anchor="#gonogo-panel",
        kept=kept,
    )


def _typed_revoke_reason(context: dict[str, Any], typed: Mapping[str, str]) -> None:
    context["gonogo"] = replace(context["gonogo"], revoke_typed=typed["reason"])


def _revoke_approval(request: HttpRequest, release: Release, data: dict[str, Any]) -> str:
    workflow.revoke_approval(release, by=person(request), reason=data["reason"])
    return _("Go-live approval revoked.")


def _nudge_role(request: HttpRequest, release: Release, data: dict[str, Any]) -> str:
    role = data["role"]
    workflow.nudge_role(release, role=role, by=person(request))
    return _("Nudged the %(role)s: their people are told go-live waits on them.") % {
        "role": Role(role).label
    }


def _set_reminders(request: HttpRequest, release: Release, data: dict[str, Any]) -> str:
    on = data["on"] == "1"
    workflow.edit_release(release, fields={"approval_reminders": on}, by=person(request))
    if on:
        return _("Approval reminders are on for this release.")
    return _("Approval reminders are off for this release.")


@login_required
@require_POST
def revoke(request: HtmxHttpRequest, version: str) -> HttpResponse:
    """Take back go-live's approval, with the reason typed beside the button. Approving,
    and every status move, is asked first on its confirmation page (rollout_views)."""
    return _panel_action(
        request, version, RevokeForm, _revoke_approval, Kept(("reason",), _typed_revoke_reason)
    )


@login_required
@require_POST
def nudge(request: HtmxHttpRequest, version: str) -> HttpResponse:
    """Remind a role's people that go-live waits on them (the product owner, staff)."""
    return _panel_action(request, version, NudgeForm, _nudge_role)


@login_required
@require_POST
def approval_reminders(request: HtmxHttpRequest, version: str) -> HttpResponse:
    """Staff turn the product owner's approval reminders for one release off or on."""
    return _panel_action(request, version, RemindersForm, _set_reminders)


routes: list[URLPattern] = [
    path("", release_list, name="list"),
    path("healthz", healthz, name="healthz"),
    path("releases/<str:version>/", board, name="board"),
    path("releases/<str:version>/sections/<int:index>/", board_section, name="section"),
    path("releases/<str:version>/items/<int:item_id>/", item_action, name="item"),
    path("releases/<str:version>/signoff/", signoff, name="signoff"),
    path("releases/<str:version>/approval/revoke/", revoke, name="revoke-approval"),
    path("releases/<str:version>/nudge/", nudge, name="nudge"),
    path(
        "releases/<str:version>/approval/reminders/",
        approval_reminders,
        name="approval-reminders",
    ),
    path("releases/<str:version>/status/", status_page, name="status"),
    path("s/<str:token>/", shared_status, name="shared-status"),
]
