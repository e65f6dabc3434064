"""ACS's two webhooks: mid-call callbacks (`POST /api/callbacks`) and Event Grid's IncomingCall
(`POST /api/incoming-call`). Neither is a browser form, so both are CSRF-exempt; each has its own check.

Both reply fast. A callback only touches the database. Answering an incoming call is a REST round
trip to ACS, so the webhook records the ring and calls/answering.py answers it after commit.

Both are retried by their senders on any non-2xx answer, so a webhook that cannot get a database
connection in time answers 503 with Retry-After (config/middleware.py), never 500; each event is
stored in one transaction, and a redelivered event is recognised by its id, so a retry never stores
anything twice.
"""

from __future__ import annotations

import hmac
import json
import logging
import math
import time
import uuid
from datetime import UTC, datetime
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.utils import timezone
from django.utils.dateparse import parse_datetime
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_http_methods, require_POST

from calls import answering, call_reads, control, deletion, live_events, participants, recovery, stream_state
from calls.acs import ConnectionInfo
from calls.authentication import AcsAuthenticationError, jwt_verification_enabled, verify_acs_authorization
from calls.models import Call, CallEvent
from calls.participants import Presence
from calls.stored_text import NUL_ESCAPE_BYTES
from calls.stream_state import MEDIA, TRANSCRIPTION, StreamKind
from calls.tokens import unsign_callback_token

logger = logging.getLogger(__name__)

Status = Call.StreamStatus
EVENT_PREFIX = "Microsoft.Communication."
SUBSCRIPTION_VALIDATION = "Microsoft.EventGrid.SubscriptionValidationEvent"
INCOMING_CALL = "Microsoft.Communication.IncomingCall"


def _error(status: int, message: str) -> JsonResponse:
    return JsonResponse({"error": message}, status=status)


def _too_large(request: HttpRequest) -> JsonResponse | None:
    """A 413 for a body over MAX_WEBHOOK_BYTES, before it is parsed. ACS and Event Grid post a
    handful of events; _json_events caps their number (MAX_WEBHOOK_EVENTS)."""
    declared = request.META.get("CONTENT_LENGTH") or "0"
    limit = settings.MAX_WEBHOOK_BYTES
    if (declared.isdigit() and int(declared) > limit) or len(request.body) > limit:
        return _error(413, f"The body is larger than {limit} bytes.")
    return None


def _json_events(body: bytes) -> list[dict[str, Any]]:
    """A JSON array of event objects (a single object is taken as an array of one), checked before
    anything is stored: a value the database cannot hold is a clear 400, never a 500 halfway through."""
    if NUL_ESCAPE_BYTES in body:
        raise ValueError("The body contains a NUL character (\\u0000), which cannot be stored.")
    try:
        parsed = json.loads(body, parse_float=_finite_float, parse_constant=_refuse_constant)
    except RecursionError:
        raise ValueError("The body is nested too deeply.") from None
    except ValueError as error:
        raise ValueError(f"The body is not valid JSON: {error}") from None
    items = parsed if isinstance(parsed, list) else [parsed]
    if len(items) > settings.MAX_WEBHOOK_EVENTS:
        # One signed body of 180,000 events once kept a worker inserting for minutes.
        raise ValueError(f"{len(items)} events in one request; at most {settings.MAX_WEBHOOK_EVENTS} are accepted.")
    if not all(isinstance(item, dict) for item in items):
        raise ValueError("Expected a JSON array of event objects.")
    for index, item in enumerate(items):
        _check_event(item, f"Event {index}")
    return items


def _finite_float(text: str) -> float:
    number = float(text)
    if not math.isfinite(number):
        raise ValueError(f"the number {text[:20]} is out of range")
    return number


def _refuse_constant(name: str) -> float:
    raise ValueError(f"{name} is not a JSON number")


MAX_ID_LENGTH = 200  # CallEvent.type and event_id, Call.call_connection_id and correlation_id
MAX_RAW_ID_LENGTH = 300  # Participant.raw_id, Call.caller, callee and caller_display_name


def _check_event(event: dict[str, Any], where: str) -> None:
    for key in ("id", "type", "eventType"):
        _check_text(event.get(key), f"{where}: `{key}`", MAX_ID_LENGTH, numbers_allowed=key == "id")
    data = event.get("data")
    if not isinstance(data, dict):
        return
    for key in ("callConnectionId", "correlationId"):
        _check_text(data.get(key), f"{where}: `data.{key}`", MAX_ID_LENGTH)
    _check_text(data.get("callerDisplayName"), f"{where}: `data.callerDisplayName`", MAX_RAW_ID_LENGTH)
    participants = data.get("participants")
    if participants is not None and not isinstance(participants, list):
        raise ValueError(f"{where}: `data.participants` must be a list.")
    identifiers = [entry.get("identifier") for entry in participants or [] if isinstance(entry, dict)]
    for identifier in [*identifiers, data.get("from"), data.get("to")]:
        if len(_raw_id(identifier)) > MAX_RAW_ID_LENGTH:
            raise ValueError(f"{where}: a participant's raw id is longer than {MAX_RAW_ID_LENGTH} characters.")


def _check_text(value: object, what: str, max_length: int, *, numbers_allowed: bool = False) -> None:
    if value is None or (numbers_allowed and isinstance(value, int) and not isinstance(value, bool)):
        value = "" if value is None else str(value)
    if not isinstance(value, str):
        raise ValueError(f"{what} must be a string.")
    if len(value) > max_length:
        raise ValueError(f"{what} is longer than {max_length} characters.")


# --- mid-call callbacks --------------------------------------------------------------------------------


@csrf_exempt
@require_POST
def callbacks(request: HttpRequest) -> JsonResponse:
    """ACS posts a JSON array of CloudEvents about a call (reference 3.1), with a Bearer JWT (2.2)."""
    if jwt_verification_enabled():
        try:
            verify_acs_authorization(request.headers.get("Authorization"))
        except AcsAuthenticationError as error:
            logger.warning("Callback refused: %s", error)
            return _error(401, f"ACS authentication failed: {error}")
    if refusal := _too_large(request):
        return refusal
    try:
        cloud_events = _json_events(request.body)
    except ValueError as error:
        return _error(400, str(error))
    if not all(isinstance(event.get("type"), str) for event in cloud_events):
        return _error(400, "Every CloudEvent needs a string `type`.")
    call_id = _call_id_from_token(request.GET.get("token", ""))
    stored = sum(store_callback_event(event, call_id=call_id) for event in cloud_events)
    return JsonResponse({"received": len(cloud_events), "stored": stored})


def _call_id_from_token(token: str) -> uuid.UUID | None:
    if not token:
        return None
    call_id = unsign_callback_token(token)
    if call_id is None:
        logger.warning("Callback with a bad or expired token; finding the call by its callConnectionId")
    return call_id


def store_callback_event(event: dict[str, Any], *, call_id: uuid.UUID | None) -> bool:
    """Store one CloudEvent in the call's history and apply it. A redelivered event (same id) is
    stored and applied once: the unique event_id makes the second insert fail, not a read-then-write."""
    data = event.get("data") if isinstance(event.get("data"), dict) else {}
    try:
        with transaction.atomic():
            return _store_and_apply(event, data, call_id)
    except IntegrityError:
        if _already_stored(event):
            return False  # the first delivery stored and applied it; this one rolled back whole
        raise


def _store_and_apply(event: dict[str, Any], data: dict[str, Any], call_id: uuid.UUID | None) -> bool:
    call = call_reads.locked_call_heard_from(call_id, str(data.get("callConnectionId") or ""), timezone.now())
    # Only an ended call can have been deleted (a live one is refused): no query for the others.
    if call is not None and not call.is_live and deletion.is_deleted(call.pk):
        logger.info("Callback %s for deleted call %s ignored", event["type"], call.pk)
        transaction.set_rollback(True)  # a deleted call's history stays gone, its tombstone as it was
        return False
    # First after the lock, with no savepoint of its own: a redelivery fails here, before it changes anything.
    _create_event(event, data, call)
    if call is None:
        logger.warning("Callback %s for an unknown call %s stored", event["type"], data.get("callConnectionId"))
        return True
    _apply(call, event["type"].removeprefix(EVENT_PREFIX), data)
    return True


def _already_stored(event: dict[str, Any]) -> bool:
    """Whether an event that failed a uniqueness check was a redelivery; any other failure is a bug to see."""
    return bool(event.get("id")) and CallEvent.objects.filter(event_id=str(event["id"])).exists()


def _create_event(event: dict[str, Any], data: dict[str, Any], call: Call | None) -> CallEvent:
    result = data.get("resultInformation") if isinstance(data.get("resultInformation"), dict) else {}
    return CallEvent.objects.create(
        call=call,
        event_id=str(event["id"]) if event.get("id") else None,
        type=event["type"],
        time=_event_time(event.get("time")),
        result_code=_int(result.get("code")),
        result_subcode=_int(result.get("subCode")),
        result_message=str(result.get("message") or ""),
        payload=event,
    )


def _event_time(value: object) -> datetime:
    moment = parse_datetime(value) if isinstance(value, str) else None
    if moment is None:
        return timezone.now()
    return moment if timezone.is_aware(moment) else moment.replace(tzinfo=UTC)


def _int(value: object) -> int | None:
    """An integer that fits a 32-bit column (result codes, sequence numbers), else None."""
    try:
        number = int(value)  # type: ignore[call-overload]
    except (TypeError, ValueError, OverflowError):
        return None
    return number if -(2**31) <= number < 2**31 else None


def _result_message(data: dict[str, Any]) -> str:
    result = data.get("resultInformation")
    return str(result.get("message") or "") if isinstance(result, dict) else ""


# --- what each callback changes ------------------------------------------------------------------------


def _apply(call: Call, name: str, data: dict[str, Any]) -> None:
    if name == "CallConnected":
        _call_connected(call, data)
    elif name == "CallDisconnected":
        if call.is_live:
            control.end_call(call, state=Call.State.DISCONNECTED, reason=_result_message(data) or "The call ended.")
    elif name in ("AnswerFailed", "CreateCallFailed", "ConnectFailed"):
        if call.is_live:
            control.end_call(call, state=Call.State.FAILED, reason=_result_message(data) or name)
    elif name == "ParticipantsUpdated":
        _participants_updated(call, data)
    elif stream_event := STREAM_EVENTS.get(name):
        stream, outcome = stream_event
        if call.is_live:
            outcome(call, stream, data)
    # Any other type (TranscriptionUpdated, PlayCompleted, types ACS adds later) is history only.


def _call_connected(call: Call, data: dict[str, Any]) -> None:
    info = ConnectionInfo(
        call_connection_id=str(data.get("callConnectionId") or ""),
        server_call_id=str(data.get("serverCallId") or ""),
        correlation_id=str(data.get("correlationId") or ""),
        state="connected",
    )
    fields = control.learn_connection(call, info)
    # Callbacks may arrive out of order: a late CallConnected never reopens an ended or ending call.
    if call.state in (Call.State.UNKNOWN, Call.State.CONNECTING):
        call.state = Call.State.CONNECTED
        call.connected_at = call.connected_at or timezone.now()
        fields += ["state", "connected_at"]
    if fields:
        live_events.save_with_sequence(call, fields, "state")


def _participants_updated(call: Call, data: dict[str, Any]) -> None:
    present = []
    for entry in data.get("participants") or []:
        raw_id = _raw_id(entry.get("identifier")) if isinstance(entry, dict) else ""
        if raw_id:
            present.append(
                Presence(raw_id, is_muted=bool(entry.get("isMuted")), is_on_hold=bool(entry.get("isOnHold")))
            )
    participants.update_roster(call, present, _int(data.get("sequenceNumber")))


def _raw_id(identifier: object) -> str:
    if not isinstance(identifier, dict):
        return ""
    if identifier.get("rawId"):
        return str(identifier["rawId"])
    if isinstance(identifier.get("phoneNumber"), dict):
        return f"4:{identifier['phoneNumber'].get('value', '')}"
    if isinstance(identifier.get("communicationUser"), dict):
        return str(identifier["communicationUser"].get("id", ""))
    return ""


def _stream_started(call: Call, stream: StreamKind, data: dict[str, Any]) -> None:
    transition, _ = stream_state.apply(call, stream, stream_state.Event.ACS_STARTED)
    if transition.state.status != Status.ACTIVE:
        return  # a late notice for a stream staff have since asked to stop (see calls/stream_state.py)
    live_events.save_with_sequence(call, [stream.status_field], stream.change)
    control.finish_recovery_jobs(call, f"{stream.label} is running again.", control.stream_job_kind(stream))


def _stream_stopped(call: Call, stream: StreamKind, data: dict[str, Any]) -> None:
    _stream_ended(call, stream, stream_state.Event.ACS_STOPPED, "stopped without being asked to")


def _stream_failed(call: Call, stream: StreamKind, data: dict[str, Any]) -> None:
    what = f"failed: {_result_message(data) or 'no reason given'}"
    _stream_ended(call, stream, stream_state.Event.ACS_FAILED, what)


def _stream_ended(call: Call, stream: StreamKind, event: stream_state.Event, what: str) -> None:
    transition, _ = stream_state.apply(call, stream, event, detail=what)
    live_events.save_with_sequence(call, [stream.status_field], stream.change)
    if transition.recover:
        recovery.schedule_restart(call, stream, f"{stream.label} {what}")


STREAM_EVENTS = {
    "MediaStreamingStarted": (MEDIA, _stream_started),
    "MediaStreamingStopped": (MEDIA, _stream_stopped),
    "MediaStreamingFailed": (MEDIA, _stream_failed),
    "TranscriptionStarted": (TRANSCRIPTION, _stream_started),
    "TranscriptionResumed": (TRANSCRIPTION, _stream_started),
    "TranscriptionStopped": (TRANSCRIPTION, _stream_stopped),
    "TranscriptionFailed": (TRANSCRIPTION, _stream_failed),
}


# --- Event Grid: incoming calls ------------------------------------------------------------------------


def _incoming_call_secret_ok(given: str) -> bool:
    """`?secret=` must equal INCOMING_CALL_SECRET. With the setting empty every request is refused,
    except with DEBUG on, so a local demo works without configuring a secret."""
    expected = settings.INCOMING_CALL_SECRET
    if not expected:
        return settings.DEBUG
    return hmac.compare_digest(given.encode(), expected.encode())


@csrf_exempt
@require_http_methods(["POST", "OPTIONS"])
def incoming_call(request: HttpRequest) -> HttpResponse:
    """Event Grid delivers Microsoft.Communication.IncomingCall here (reference 3.4, 3.5)."""
    rang_at = time.monotonic()  # the caller has been ringing since about now: the answer deadline counts from it
    if not _incoming_call_secret_ok(request.GET.get("secret", "")):
        return _error(401, "Missing or wrong ?secret= for the incoming-call webhook.")
    if request.method == "OPTIONS":
        # CloudEvents abuse protection: allow the delivering origin (Event Grid) to post here.
        response = HttpResponse(status=200)
        response["WebHook-Allowed-Origin"] = request.headers.get("WebHook-Request-Origin", "*")
        return response
    if refusal := _too_large(request):
        return refusal
    try:
        grid_events = _json_events(request.body)
    except ValueError as error:
        return _error(400, str(error))
    for event in grid_events:
        event_type = event.get("eventType") or event.get("type")
        data = event.get("data") if isinstance(event.get("data"), dict) else {}
        if event_type == SUBSCRIPTION_VALIDATION:
            return JsonResponse({"validationResponse": data.get("validationCode")})
        if event_type == INCOMING_CALL:
            _ring(event, data, rang_at=rang_at)
    return JsonResponse({"received": len(grid_events)})


def _ring(event: dict[str, Any], data: dict[str, Any], *, rang_at: float) -> None:
    context = data.get("incomingCallContext")
    if not context:
        logger.warning("IncomingCall %s without an incomingCallContext ignored", event.get("id"))
        return
    try:
        with transaction.atomic():
            call = control.create_inbound_call(
                caller=_raw_id(data.get("from")),
                callee=_raw_id(data.get("to")),
                caller_display_name=str(data.get("callerDisplayName") or ""),
                server_call_id=str(data.get("serverCallId") or ""),
                correlation_id=str(data.get("correlationId") or ""),
            )
            # Last, so a redelivery's unique event id rolls the call back with it: fewer statements
            # per ring than recording the event first and pointing it at the call afterwards.
            _create_grid_event(event, call)
            transaction.on_commit(
                lambda: answering.answer_soon(call.id, str(context), locale=call.locale, rang_at=rang_at)
            )
    except IntegrityError:
        if not _already_stored(event):
            raise
        # Event Grid redelivered it: the call was created and answered the first time


def _create_grid_event(event: dict[str, Any], call: Call) -> CallEvent:
    return CallEvent.objects.create(
        call=call,
        event_id=str(event["id"]) if event.get("id") else None,
        type=INCOMING_CALL,
        time=_event_time(event.get("eventTime") or event.get("time")),
        payload=event,
    )
