"""Staff dashboard views. Thin: fetch and authorise, call a domain function or a query, render."""

from __future__ import annotations

import uuid

from django.contrib.auth.decorators import login_required, permission_required
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render

from calls.exports import CONTENT_TYPES, FORMATS, export_transcript, transcript_segments
from calls.models import Call

watch_required = permission_required("calls.watch_call", raise_exception=True)


def home(request: HttpRequest) -> HttpResponse:
    return redirect("calls-list")


def _get_call_for_viewer(call_id: uuid.UUID) -> Call:
    return get_object_or_404(Call.objects.prefetch_related("participants", "streams", "gaps"), pk=call_id)


@login_required
@watch_required
def call_list(request: HttpRequest) -> HttpResponse:
    return render(
        request,
        "calls/call_list.html",
        {"live_calls": Call.objects.live()[:200], "past_calls": Call.objects.ended()[:50]},
    )


@login_required
@watch_required
def call_detail(request: HttpRequest, call_id: uuid.UUID) -> HttpResponse:
    call = _get_call_for_viewer(call_id)
    return render(request, "calls/call_detail.html", {"call": call, "segments": transcript_segments(call)})


@login_required
@watch_required
def transcript_download(request: HttpRequest, call_id: uuid.UUID, export_format: str) -> HttpResponse:
    if export_format not in FORMATS:
        raise Http404("Unknown transcript format")
    call = _get_call_for_viewer(call_id)
    response = HttpResponse(export_transcript(call, export_format), content_type=CONTENT_TYPES[export_format])
    response["Content-Disposition"] = f'attachment; filename="call-{call.id}.{export_format}"'
    return response
