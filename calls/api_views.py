"""The JSON API for integrations (an agent desktop, an IVR): pause a call for sensitive data, and resume it.
The call is named by Callscribe's id or by ACS's callConnectionId, which is what an IVR knows.

A caller sends `Authorization: Bearer <API token>` (calls/api_tokens.py), never a session cookie, so
these views need no CSRF token. The token acts as its staff user, who needs calls.control_call, as on
the call page. Answers, all JSON: 200 done, 401 no valid token, 403 no permission, 404 no such call,
405 not a POST, 409 the call's state does not allow it, 502 ACS refused or could not be reached. Each
action that reaches a call goes to the access log, with the token's name.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from functools import wraps
from typing import Any

from django.db.models import Q
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.csrf import csrf_exempt

from calls import api_tokens, audit, control, display, pause
from calls.acs import AcsError
from calls.models import ApiToken, Call, parse_uuid
from calls.permissions import User, can_control, visible_calls

logger = logging.getLogger(__name__)


def _error(status: int, message: str) -> JsonResponse:
    response = JsonResponse({"ok": False, "message": message}, status=status)
    if status == 401:
        response["WWW-Authenticate"] = 'Bearer realm="callscribe"'
    return response


def token_required(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    """A POST with a valid API token of a user who may control calls; `request.api_token` is the token."""

    @wraps(view)
    @csrf_exempt
    def guarded(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        if request.method != "POST":
            response = _error(405, "Use POST.")
            response["Allow"] = "POST"
            return response
        token = api_tokens.authenticate(request.headers.get("Authorization"))
        if token is None:
            logger.warning("API request to %s refused: no valid API token", request.path)
            return _error(401, "Send a valid API token as Authorization: Bearer <key>.")
        if not can_control(token.user):
            return _error(403, f"{token.user.get_username()} may not control calls.")
        request.user, request.api_token = token.user, token
        return view(request, *args, **kwargs)

    return guarded


@token_required
def pause_call(request: HttpRequest, call_ref: str) -> JsonResponse:
    return _run(request, call_ref, "pause", pause.pause, "Paused for sensitive data.")


@token_required
def resume_call(request: HttpRequest, call_ref: str) -> JsonResponse:
    return _run(request, call_ref, "resume", pause.resume, "Resumed.")


def _find_call(user: User, call_ref: str) -> Call | None:
    """The call in `user`'s scope with Callscribe's id `call_ref`, or ACS's callConnectionId (both are
    unique). A call out of scope is not found, as a call that does not exist."""
    condition = Q(call_connection_id=call_ref)
    if (call_id := parse_uuid(call_ref)) is not None:
        condition |= Q(pk=call_id)
    return visible_calls(user).filter(condition).first()


def _run(request: HttpRequest, call_ref: str, action_name: str, action: Callable[..., Call], done: str) -> JsonResponse:
    call = _find_call(request.user, call_ref)
    if call is None:
        return _error(404, "No such call.")
    call_id = call.id
    status, message = 200, done
    try:
        action(call_id=call_id, user=request.user)
    except control.WrongState as error:
        status, message = 409, error.message
    except AcsError as error:
        status, message = 502, error.message
    token: ApiToken = request.api_token  # type: ignore[attr-defined]
    detail = f"api: {token.name}" + (f": {message}" if status != 200 else "")
    audit.record_access(request.user, call, action_name, detail)
    return JsonResponse({"ok": status == 200, "message": message, "call": _call_summary(call_id)}, status=status)


def _call_summary(call_id: uuid.UUID) -> dict[str, Any]:
    call = Call.objects.prefetch_related("gaps").get(pk=call_id)
    return {
        "id": str(call.id),
        "call_connection_id": call.call_connection_id or "",
        "state": call.state,
        "transcription_status": call.transcription_status,
        **display.pause_state(call),
    }
