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
from calls.permissions import can_watch
from calls.search import CallFilters, filter_calls, matching_segments, search_hits, with_summary

PAGE_SIZE = 25
LIVE_CALLS_SHOWN = 200
CONTROL_PERMISSION = "calls.control_call"


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


def _get_call_for_viewer(call_id: uuid.UUID) -> Call:
    return get_object_or_404(Call.objects.prefetch_related("participants", "streams", "gaps"), pk=call_id)


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
    context: dict[str, Any] = {
        "form": form,
        "live_calls": with_summary(Call.objects.live()).order_by("-created_at")[:LIVE_CALLS_SHOWN],
        "can_place_calls": request.user.has_perm(CONTROL_PERMISSION) and _url_exists("/calls/new"),
        "search_text": text,
        "state_labels": dict(Call.State.choices),
    }
    if text:
        calls = filter_calls(Call.objects.all(), filters) if filters != CallFilters() else None
        page = Paginator(matching_segments(text, calls), PAGE_SIZE).get_page(request.GET.get("page"))
        context.update(page=page, hits=search_hits(text, list(page)))
    else:
        past_calls = with_summary(filter_calls(Call.objects.ended(), filters)).order_by("-created_at")
        context["page"] = Paginator(past_calls, PAGE_SIZE).get_page(request.GET.get("page"))
    return render(request, "calls/call_list.html", context)


@staff_watch_required
def call_detail(request: HttpRequest, call_id: uuid.UUID) -> HttpResponse:
    call = _get_call_for_viewer(call_id)
    audit.record_access(request.user, call, audit.VIEW)
    context = {**call_page_context(call), "can_control": request.user.has_perm(CONTROL_PERMISSION)}
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
    call = _get_call_for_viewer(call_id)
    audit.record_access(request.user, call, audit.EXPORT, export_format)
    response = HttpResponse(export_transcript(call, export_format), content_type=CONTENT_TYPES[export_format])
    response["Content-Disposition"] = f'attachment; filename="call-{call.id}.{export_format}"'
    return response
