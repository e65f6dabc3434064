"""Staff controls: start/stop streaming and transcription, pause and resume for sensitive data, hang up,
place a call.

Each action is a POST (CSRF-protected) by logged-in staff with calls.control_call, on a call in their
scope (calls/permissions.py; any other answers 404). A fetch request
(Accept: application/json or X-Requested-With: fetch) gets JSON with 200, 409 for the wrong state or
502 when ACS failed; a plain form post is redirected to the call page with a message. Every action is
written to the access log.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from functools import wraps
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_http_methods, require_POST

from calls import audit, control, pause
from calls.acs import AcsError
from calls.models import Call
from calls.permissions import can_control, visible_calls

Action = Callable[..., Call]


def control_required(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    """Logged-in, active staff with calls.control_call; anyone else logged in gets 403."""

    @wraps(view)
    @login_required
    def guarded(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        if not can_control(request.user):
            raise PermissionDenied
        return view(request, *args, **kwargs)

    return guarded


def wants_json(request: HttpRequest) -> bool:
    return "application/json" in request.headers.get("Accept", "") or request.headers.get("X-Requested-With") == "fetch"


def _run(request: HttpRequest, call_id: uuid.UUID, action_name: str, action: Action, done: str) -> HttpResponse:
    call = get_object_or_404(visible_calls(request.user), pk=call_id)
    try:
        call = action(call_id=call.id, user=request.user)
    except control.WrongState as error:
        return _respond(request, call, action_name, 409, error.message)
    except AcsError as error:
        return _respond(request, call, action_name, 502, error.message)
    return _respond(request, call, action_name, 200, done)


def _respond(request: HttpRequest, call: Call, action_name: str, status: int, message: str) -> HttpResponse:
    audit.record_request(request, call, action_name, message if status != 200 else "")
    if wants_json(request):
        call.refresh_from_db()
        return JsonResponse({"ok": status == 200, "message": message, "call": _call_summary(call)}, status=status)
    (messages.success if status == 200 else messages.error)(request, message)
    return redirect(call)


def _call_summary(call: Call) -> dict[str, str]:
    return {
        "id": str(call.id),
        "state": call.state,
        "media_streaming_status": call.media_streaming_status,
        "transcription_status": call.transcription_status,
    }


@control_required
@require_POST
def start_streaming(request: HttpRequest, call_id: uuid.UUID) -> HttpResponse:
    return _run(request, call_id, "streaming_start", control.start_media_streaming, "Media streaming is starting.")


@control_required
@require_POST
def stop_streaming(request: HttpRequest, call_id: uuid.UUID) -> HttpResponse:
    return _run(request, call_id, "streaming_stop", control.stop_media_streaming, "Media streaming is stopping.")


@control_required
@require_POST
def start_transcription(request: HttpRequest, call_id: uuid.UUID) -> HttpResponse:
    return _run(request, call_id, "transcription_start", control.start_transcription, "Transcription is starting.")


@control_required
@require_POST
def stop_transcription(request: HttpRequest, call_id: uuid.UUID) -> HttpResponse:
    return _run(request, call_id, "transcription_stop", control.stop_transcription, "Transcription is stopping.")


@control_required
@require_POST
def pause_call(request: HttpRequest, call_id: uuid.UUID) -> HttpResponse:
    done = "Paused for sensitive data: nothing is transcribed or recorded until you resume."
    return _run(request, call_id, "pause", pause.pause, done)


@control_required
@require_POST
def resume_call(request: HttpRequest, call_id: uuid.UUID) -> HttpResponse:
    return _run(request, call_id, "resume", pause.resume, "Resumed: transcription is starting again.")


@control_required
@require_POST
def hang_up(request: HttpRequest, call_id: uuid.UUID) -> HttpResponse:
    return _run(request, call_id, "hangup", control.hang_up, "Hanging up.")


class NewCallForm(forms.Form):
    target = forms.CharField(
        label="Number or ACS user to call",
        max_length=300,
        help_text="A phone number in +E.164 form, like +14255550100, or an ACS user id (8:acs:...).",
    )
    caller_id = forms.CharField(
        label="Caller ID number",
        max_length=20,
        required=False,
        help_text="The ACS phone number the call comes from; needed when calling a phone.",
    )


@control_required
@require_http_methods(["GET", "POST"])
def new_call(request: HttpRequest) -> HttpResponse:
    form = NewCallForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            call = control.create_outbound_call(
                target=form.cleaned_data["target"],
                source_caller_id_number=form.cleaned_data["caller_id"],
                user=request.user,
            )
        except control.InvalidRequest as error:
            form.add_error(None, error.message)
        else:
            return _place(request, call)
    status = 400 if request.method == "POST" else 200
    return render(request, "calls/call_new.html", {"form": form}, status=status)


def _place(request: HttpRequest, call: Call) -> HttpResponse:
    try:
        control.place_call(call_id=call.id)
    except AcsError as error:
        audit.record_request(request, call, "call_place", error.message)
        messages.error(request, error.message)
    else:
        audit.record_request(request, call, "call_place")
        messages.success(request, f"Calling {call.callee}.")
    return redirect(call)


# --- the same actions in the admin's call list (calls/admin.py adds them to CallAdmin) ----------------


def _control_each(request: HttpRequest, queryset: QuerySet[Call], action: Action, action_name: str) -> None:
    for call in queryset:
        try:
            action(call_id=call.pk, user=request.user)
        except (control.WrongState, AcsError) as error:
            audit.record_request(request, call, action_name, f"admin: {error.message}")
            messages.error(request, f"{call}: {error.message}")
        else:
            audit.record_request(request, call, action_name, "admin")
            messages.success(request, f"{call}: done.")


@admin.action(description="Stop media streaming", permissions=["control"])
def stop_streaming_action(modeladmin: admin.ModelAdmin, request: HttpRequest, queryset: QuerySet[Call]) -> None:
    _control_each(request, queryset, control.stop_media_streaming, "streaming_stop")


@admin.action(description="Stop transcription", permissions=["control"])
def stop_transcription_action(modeladmin: admin.ModelAdmin, request: HttpRequest, queryset: QuerySet[Call]) -> None:
    _control_each(request, queryset, control.stop_transcription, "transcription_stop")


@admin.action(description="Hang up for everyone", permissions=["control"])
def hang_up_action(modeladmin: admin.ModelAdmin, request: HttpRequest, queryset: QuerySet[Call]) -> None:
    _control_each(request, queryset, control.hang_up, "hangup")


# Need `has_control_permission(request)` on the ModelAdmin (calls.control_call).
ADMIN_ACTIONS = [stop_streaming_action, stop_transcription_action, hang_up_action]
