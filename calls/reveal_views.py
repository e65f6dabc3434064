"""Revealing redacted data from the dashboard: one segment's original, or the call's original transcript,
each after the staff member gives a reason (calls/reveal.py decides and logs). Only calls in the user's
scope (calls/permissions.py) are found: any other call or its segments answer 404.

Answers are never cached (staff_watch_required sends Cache-Control no-store) and go to the one user who
asked; nothing here touches the live feed.
"""

from __future__ import annotations

import uuid

from django import forms
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, render
from django.views.decorators.http import require_http_methods

from calls import reveal
from calls.exports import CONTENT_TYPES, FORMATS
from calls.models import TranscriptSegment
from calls.permissions import visible_calls
from calls.views import staff_watch_required


class RevealForm(forms.Form):
    reason = forms.CharField(
        label="Why do you need to see it?",
        max_length=reveal.REASON_MAX_LENGTH,
        error_messages={"required": reveal.REASON_REQUIRED},
    )


class OriginalExportForm(RevealForm):
    export_format = forms.ChoiceField(label="Format", choices=[(name, name) for name in FORMATS], initial="txt")


def _check_permission(request: HttpRequest) -> None:
    """Before any lookup, so that someone without the permission learns nothing of what exists."""
    if not reveal.can_reveal(request.user):
        raise PermissionDenied


@require_http_methods(["GET", "POST"])
@staff_watch_required
def reveal_segment(request: HttpRequest, call_id: uuid.UUID, segment_id: int) -> HttpResponse:
    _check_permission(request)
    segments = TranscriptSegment.objects.filter(call__in=visible_calls(request.user))
    segment = get_object_or_404(segments.select_related("call", "participant"), pk=segment_id, call_id=call_id)
    form = RevealForm(request.POST or None)
    original = refusal = None
    try:
        reveal.check_revealable(segment)
        if request.method == "POST" and form.is_valid():
            original = reveal.reveal_segment(segment, request=request, reason=form.cleaned_data["reason"])
    except reveal.RevealRefused as refused:
        refusal = str(refused)
    context = {"call": segment.call, "segment": segment, "form": form, "original": original, "refusal": refusal}
    return render(request, "calls/reveal.html", context, status=409 if refusal and request.method == "POST" else 200)


@require_http_methods(["GET", "POST"])
@staff_watch_required
def original_transcript(request: HttpRequest, call_id: uuid.UUID) -> HttpResponse:
    _check_permission(request)
    call = get_object_or_404(visible_calls(request.user), pk=call_id)
    form = OriginalExportForm(request.POST or None)
    originals = reveal.call_originals(call)
    refusal = None
    try:
        reveal.check_original_export(originals)
        if request.method == "POST" and form.is_valid():
            export_format = form.cleaned_data["export_format"]
            text = reveal.original_transcript(
                call, request=request, export_format=export_format, reason=form.cleaned_data["reason"]
            )
            response = HttpResponse(text, content_type=CONTENT_TYPES[export_format])
            response["Content-Disposition"] = f'attachment; filename="call-{call.id}-original.{export_format}"'
            return response
    except reveal.RevealRefused as refused:
        refusal = str(refused)
    context = {"call": call, "form": form, "originals": originals, "refusal": refusal}
    status = 409 if refusal and request.method == "POST" else 200
    return render(request, "calls/original_export.html", context, status=status)
