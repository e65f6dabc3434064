"""Staff dashboard views. Thin: fetch and authorise, call a domain function or a query, render."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from functools import wraps
from typing import Any

from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import Resolver404, resolve, reverse
from django.views.decorators.cache import never_cache

from calls import audit, reveal
from calls.display import call_page_context
from calls.exports import CONTENT_TYPES, FORMATS, export_transcript
from calls.forms import CallFilterForm
from calls.models import Call
from calls.pagination import LimitedCountPaginator
from calls.permissions import CONTROL_PERMISSION, can_watch, supervised_calls, visible_calls
from calls.search import CallFilters, filter_calls, matching_segments, search_hits, with_summary

PAGE_SIZE = 25
LIVE_CALLS_SHOWN = 200


def staff_watch_required(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    """Logged-in, active staff with calls.watch_call; anyone else logged in gets 403.

    Whatever they see holds call data (pages, search results, audio, exports): Cache-Control no-store,
    so it does not stay in the browser's cache after they log out.
    """

    @wraps(view)
    @never_cache
    @login_required
    def guarded(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        if not can_watch(request.user):
            raise PermissionDenied
        return view(request, *args, **kwargs)

    return guarded


def home(request: HttpRequest) -> HttpResponse:
    return redirect("calls-list")


def _get_call_for_viewer(request: HttpRequest, call_id: uuid.UUID) -> Call:
    """The call, if it is in the user's scope; 404 otherwise, as for a call that does not exist."""
    calls = visible_calls(request.user).prefetch_related("participants", "streams", "gaps")
    return get_object_or_404(calls, pk=call_id)


def _url_exists(path: str) -> bool:
    try:
        resolve(path)
    except Resolver404:
        return False
    return True


@staff_watch_required
def call_list(request: HttpRequest) -> HttpResponse:
    form = CallFilterForm(request.GET or None)
    filters = form.filters() if form.is_bound else CallFilters()
    text = form.search_text() if form.is_bound else ""
    calls = visible_calls(request.user)
    context: dict[str, Any] = {
        "form": form,
        "live_calls": with_summary(calls.live()).order_by("-created_at")[:LIVE_CALLS_SHOWN],
        "can_place_calls": request.user.has_perm(CONTROL_PERMISSION) and _url_exists("/calls/new"),
        "search_text": text,
        "state_labels": dict(Call.State.choices),
    }
    if text:
        audit.record_request(request, None, audit.SEARCH, form.describe_search())
        segments = matching_segments(text, filter_calls(calls, filters), spoken_by=form.speaker_role())
        page = LimitedCountPaginator(segments, PAGE_SIZE, request.GET.get("page")).requested()
        context.update(page=page, hits=search_hits(text, list(page)))
    else:
        past_calls = with_summary(filter_calls(calls.ended(), filters)).order_by("-created_at")
        context["page"] = LimitedCountPaginator(past_calls, PAGE_SIZE, request.GET.get("page")).requested()
    return render(request, "calls/call_list.html", context)


@staff_watch_required
def call_detail(request: HttpRequest, call_id: uuid.UUID) -> HttpResponse:
    call = _get_call_for_viewer(request, call_id)
    audit.record_request(request, call, audit.VIEW)
    context = {
        **call_page_context(call),
        "can_control": request.user.has_perm(CONTROL_PERMISSION),
        "can_read_access_history": supervised_calls(request.user).filter(pk=call.pk).exists(),
    }
    if reveal.can_reveal(request.user):
        context.update(
            can_reveal=True,
            has_redacted=call.segments.exclude(redacted_types=[]).exists(),
            # The reveal control for a segment that arrives live is cloned from this one (static/calls/live.js).
            reveal_url_template=reverse("calls-reveal-segment", args=[call.id, 0]),
        )
    return render(request, "calls/call_detail.html", context)


@staff_watch_required
def transcript_download(request: HttpRequest, call_id: uuid.UUID, export_format: str) -> HttpResponse:
    if export_format not in FORMATS:
        raise Http404("Unknown transcript format")
    call = _get_call_for_viewer(request, call_id)
    audit.record_request(request, call, audit.EXPORT, export_format)
    response = HttpResponse(export_transcript(call, export_format), content_type=CONTENT_TYPES[export_format])
    response["Content-Disposition"] = f'attachment; filename="call-{call.id}.{export_format}"'
    return response


@staff_watch_required
def access_history(request: HttpRequest, call_id: uuid.UUID) -> HttpResponse:
    """Who looked at a call and when: for its team's supervisors and all-calls users, not its agents."""
    call = get_object_or_404(supervised_calls(request.user), pk=call_id)
    audit.record_request(request, call, audit.ACCESS_HISTORY)
    page = Paginator(audit.history_of(call), PAGE_SIZE * 4).get_page(request.GET.get("page"))
    return render(request, "calls/access_history.html", {"call": call, "page": page})
