"""ACS's webhooks: callbacks signed as the emulator signs them (checked against its JWKS over HTTP), and
a real incoming call rung by the emulator, answered through the SDK and transcribed."""

from __future__ import annotations

import json
import uuid
from datetime import timedelta
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
from django.test import Client
from django.utils import timezone
from pytest_django.fixtures import Settings as SettingsWrapper

from calls.models import Call, CallEvent, Gap, Participant, RecoveryJob, TranscriptSegment
from calls.tokens import callback_url, unsign_media_token
from calls.webhooks import INCOMING_CALL
from emulator.testing import RunningEmulator
from emulator.tokens import TokenIssuer
from tests.calls.acs_servers import INCOMING_CALL_SECRET, foreign_token, ring, signed_callback_headers, wait_for
from tests.calls.conftest import new_call
from tests.servers import AppServer

pytestmark = pytest.mark.django_db

Status = Call.StreamStatus
CALLER = "4:+14255550123"
AGENT = "8:acs:agent-1"


def cloud_event(name: str, call_connection_id: str = "acs-call-1", **data: Any) -> dict[str, Any]:
    return {
        "id": str(uuid.uuid4()),
        "source": f"calling/callConnections/{call_connection_id}",
        "type": f"Microsoft.Communication.{name}",
        "data": {"callConnectionId": call_connection_id, "serverCallId": "server-1", "correlationId": "corr-1", **data},
        "time": "2026-11-25T10:00:00.1234567+00:00",
        "specversion": "1.0",
        "datacontenttype": "application/json",
    }


def callback_path(call: Call | None = None) -> str:
    if call is None:
        return "/api/callbacks"
    return "/api/callbacks?" + urlsplit(callback_url(call.id)).query


def post_events(client: Client, events: list[dict[str, Any]], path: str, **headers: str) -> Any:
    return client.post(path, data=json.dumps(events), content_type="application/json", **headers)


def participants(sequence: int, *raw_ids: str, muted: tuple[str, ...] = ()) -> dict[str, Any]:
    entries = [{"identifier": {"rawId": raw}, "isMuted": raw in muted, "isOnHold": False} for raw in raw_ids]
    return {"participants": entries, "sequenceNumber": sequence}


def media_update(status: str, details: str = "subscriptionStarted") -> dict[str, Any]:
    return {
        "mediaStreamingUpdate": {
            "contentType": "Audio",
            "mediaStreamingStatus": status,
            "mediaStreamingStatusDetails": details,
        }
    }


@pytest.fixture
def signed(acs_settings: SettingsWrapper, emulator_tokens: TokenIssuer) -> dict[str, str]:
    """Headers for a callback signed with the emulator's key, as ACS signs them."""
    return signed_callback_headers(emulator_tokens)


@pytest.fixture
def live_call(db: None) -> Call:
    return new_call(state=Call.State.CONNECTING, media_streaming_status=Status.STARTING)


# --- callbacks -----------------------------------------------------------------------------------------


def test_a_callback_without_a_jwt_is_refused_and_changes_nothing(
    client: Client, acs_settings: SettingsWrapper, live_call: Call
) -> None:
    response = post_events(client, [cloud_event("CallConnected")], callback_path(live_call))

    assert response.status_code == 401
    assert "missing Bearer token" in response.json()["error"]
    assert not CallEvent.objects.exists()
    assert Call.objects.get(pk=live_call.pk).state == Call.State.CONNECTING


@pytest.mark.parametrize("problem", ["foreign key", "wrong audience"])
def test_a_callback_with_a_bad_jwt_is_refused_and_changes_nothing(
    client: Client, acs_settings: SettingsWrapper, emulator_tokens: TokenIssuer, live_call: Call, problem: str
) -> None:
    if problem == "foreign key":
        token = foreign_token(acs_settings.ACS_RESOURCE_ID, acs_settings.ACS_JWT_ISSUER)
    else:
        token = _token_for_audience(emulator_tokens, "another-resource")

    response = post_events(
        client, [cloud_event("CallConnected")], callback_path(live_call), HTTP_AUTHORIZATION=f"Bearer {token}"
    )

    assert response.status_code == 401
    assert not CallEvent.objects.exists()
    assert Call.objects.get(pk=live_call.pk).state == Call.State.CONNECTING


def _token_for_audience(tokens: TokenIssuer, audience: str) -> str:
    original, tokens.audience = tokens.audience, audience
    try:
        return tokens.callback_token()
    finally:
        tokens.audience = original


def test_malformed_json_gets_a_clear_400(client: Client, signed: dict[str, str], live_call: Call) -> None:
    response = client.post(callback_path(live_call), data="[{not json", content_type="application/json", **signed)

    assert response.status_code == 400
    assert response.json()["error"].startswith("The body is not valid JSON")


def test_a_callback_with_too_many_events_is_refused_and_stores_nothing(
    client: Client, signed: dict[str, str], live_call: Call
) -> None:
    events = [{"type": "Microsoft.Communication.PlayCompleted", "id": f"e{index}"} for index in range(101)]

    response = post_events(client, events, callback_path(live_call), **signed)

    assert response.status_code == 400
    assert response.json()["error"] == "101 events in one request; at most 100 are accepted."
    assert not CallEvent.objects.exists()


def test_a_callback_body_over_the_size_cap_gets_413_and_stores_nothing(
    client: Client, signed: dict[str, str], live_call: Call, settings: SettingsWrapper
) -> None:
    settings.MAX_WEBHOOK_BYTES = 2000
    events = [cloud_event("PlayCompleted", note="x" * 3000)]

    response = post_events(client, events, callback_path(live_call), **signed)

    assert response.status_code == 413
    assert response.json()["error"] == "The body is larger than 2000 bytes."
    assert not CallEvent.objects.exists()


HOSTILE_CALLBACKS = {
    "nested too deeply": "[" * 5000 + "]" * 5000,
    "NUL character": json.dumps([cloud_event("CallConnected", correlationId="a\u0000b")]),
    "`type` is longer than 200": json.dumps([{**cloud_event("CallConnected"), "type": "X" * 500}]),
    "`id` is longer than 200": json.dumps([{**cloud_event("CallConnected"), "id": "i" * 500}]),
    "is out of range": json.dumps([cloud_event("CallConnected")]).replace('"specversion"', '"n": 1e400, "specversion"'),
    "NaN is not a JSON number": json.dumps([cloud_event("CallConnected", resultInformation={"code": float("nan")})]),
    "`id` must be a string": json.dumps([{**cloud_event("CallConnected"), "id": {"a": 1}}]),
    "`data.callConnectionId` is longer": json.dumps([cloud_event("CallConnected", "c" * 500)]),
    "`data.participants` must be a list": json.dumps([cloud_event("ParticipantsUpdated", participants=5)]),
    "raw id is longer than 300": json.dumps([cloud_event("ParticipantsUpdated", **participants(1, "4:" + "9" * 400))]),
}


@pytest.mark.parametrize(("problem", "body"), HOSTILE_CALLBACKS.items(), ids=HOSTILE_CALLBACKS.keys())
def test_a_callback_the_database_cannot_hold_gets_a_clear_400_and_changes_nothing(
    client: Client, signed: dict[str, str], live_call: Call, problem: str, body: str
) -> None:
    good_event = cloud_event("CallConnected")
    batch = body[:-1] + ", " + json.dumps(good_event) + "]" if body.startswith("[{") else body

    response = client.post(callback_path(live_call), data=batch, content_type="application/json", **signed)

    assert response.status_code == 400
    assert problem in response.json()["error"]
    assert not CallEvent.objects.exists()  # not even the good event beside it
    assert Call.objects.get(pk=live_call.pk).state == Call.State.CONNECTING


def test_out_of_range_result_codes_are_kept_in_the_payload_only(
    client: Client, signed: dict[str, str], live_call: Call
) -> None:
    event = cloud_event("CallConnected", resultInformation={"code": 10**20, "subCode": "8523x", "message": "odd"})
    assert post_events(client, [event], callback_path(live_call), **signed).status_code == 200
    stored = CallEvent.objects.get()
    assert (stored.result_code, stored.result_subcode, stored.result_message) == (None, None, "odd")
    assert stored.payload["data"]["resultInformation"]["code"] == 10**20


def test_call_connected_is_stored_and_connects_the_call(
    client: Client, signed: dict[str, str], live_call: Call
) -> None:
    event = cloud_event("CallConnected", "acs-call-7", resultInformation={"code": 200, "subCode": 0, "message": "ok"})

    response = post_events(client, [event], callback_path(live_call), **signed)

    assert response.status_code == 200
    call = Call.objects.get(pk=live_call.pk)
    assert call.state == Call.State.CONNECTED and call.connected_at is not None
    assert (call.call_connection_id, call.server_call_id, call.correlation_id) == ("acs-call-7", "server-1", "corr-1")
    stored = CallEvent.objects.get(event_id=event["id"])
    assert (stored.call_id, stored.type, stored.result_code, stored.result_message) == (
        call.id,
        "Microsoft.Communication.CallConnected",
        200,
        "ok",
    )
    assert stored.payload == event
    assert call.last_event_at is not None


def test_without_a_token_the_call_is_found_by_its_call_connection_id(client: Client, signed: dict[str, str]) -> None:
    call = new_call(state=Call.State.CONNECTED, call_connection_id="acs-call-8")

    post_events(client, [cloud_event("CallDisconnected", "acs-call-8")], callback_path(), **signed)

    call.refresh_from_db()
    assert call.state == Call.State.DISCONNECTED and call.ended_at is not None


def test_a_redelivered_event_is_stored_and_applied_once(
    client: Client, signed: dict[str, str], live_call: Call
) -> None:
    event = cloud_event("ParticipantsUpdated", **participants(1, CALLER, AGENT))

    first = post_events(client, [event], callback_path(live_call), **signed)
    again = post_events(client, [event, event], callback_path(live_call), **signed)

    assert first.json() == {"received": 1, "stored": 1}
    assert again.json() == {"received": 2, "stored": 0}
    assert CallEvent.objects.filter(event_id=event["id"]).count() == 1


def test_an_older_participants_update_never_overwrites_a_newer_one(
    client: Client, signed: dict[str, str], live_call: Call
) -> None:
    newer = cloud_event("ParticipantsUpdated", **participants(5, CALLER, muted=(CALLER,)))
    older = cloud_event("ParticipantsUpdated", **participants(4, CALLER, AGENT))

    post_events(client, [newer, older], callback_path(live_call), **signed)

    rows = {p.raw_id: p for p in Participant.objects.filter(call=live_call)}
    assert list(rows) == [CALLER]
    assert rows[CALLER].is_muted and rows[CALLER].kind == Participant.Kind.PHONE
    assert Call.objects.get(pk=live_call.pk).participants_sequence == 5
    assert CallEvent.objects.filter(call=live_call, type__endswith="ParticipantsUpdated").count() == 2


def test_a_participant_missing_from_the_list_has_left(client: Client, signed: dict[str, str], live_call: Call) -> None:
    post_events(
        client,
        [cloud_event("ParticipantsUpdated", **participants(1, CALLER, AGENT))],
        callback_path(live_call),
        **signed,
    )
    post_events(
        client, [cloud_event("ParticipantsUpdated", **participants(2, AGENT))], callback_path(live_call), **signed
    )

    in_call = dict(Participant.objects.filter(call=live_call).values_list("raw_id", "in_call"))
    assert in_call == {CALLER: False, AGENT: True}


def test_a_participant_listed_twice_is_stored_once_and_a_rejoin_brings_them_back(
    client: Client, signed: dict[str, str], live_call: Call
) -> None:
    twice = participants(1, CALLER, AGENT, CALLER, muted=(CALLER,))
    twice["participants"][0]["isMuted"] = False  # the later entry for the same person counts
    seen = []
    for event in (twice, participants(2, AGENT), participants(3, CALLER, AGENT)):
        update = cloud_event("ParticipantsUpdated", **event)
        assert post_events(client, [update], callback_path(live_call), **signed).status_code == 200
        seen.append({p.raw_id: (p.in_call, p.is_muted) for p in Participant.objects.filter(call=live_call)})

    assert seen == [
        {CALLER: (True, True), AGENT: (True, False)},
        {CALLER: (False, True), AGENT: (True, False)},
        {CALLER: (True, False), AGENT: (True, False)},
    ]


def test_call_disconnected_ends_the_call_and_closes_its_gaps(
    client: Client, signed: dict[str, str], live_call: Call
) -> None:
    Call.objects.filter(pk=live_call.pk).update(state=Call.State.CONNECTED, transcription_status=Status.ACTIVE)
    dropped_at = timezone.now() - timedelta(minutes=1)  # a drop ACS never came back from, not the end's own
    gap = Gap.objects.create(call=live_call, reason=Gap.Reason.SOCKET_DROP, started_at=dropped_at)
    event = cloud_event("CallDisconnected", resultInformation={"code": 200, "subCode": 0, "message": "Hung up."})

    post_events(client, [event], callback_path(live_call), **signed)

    call = Call.objects.get(pk=live_call.pk)
    assert (call.state, call.end_reason) == (Call.State.DISCONNECTED, "Hung up.")
    assert (call.media_streaming_status, call.transcription_status) == (Status.INACTIVE, Status.INACTIVE)
    gap.refresh_from_db()
    assert gap.ended_at is not None


def test_a_late_call_connected_does_not_reopen_an_ended_call(
    client: Client, signed: dict[str, str], live_call: Call
) -> None:
    post_events(
        client,
        [cloud_event("CallDisconnected"), cloud_event("CallConnected")],
        callback_path(live_call),
        **signed,
    )
    assert Call.objects.get(pk=live_call.pk).state == Call.State.DISCONNECTED


def test_answer_failed_marks_the_call_failed(client: Client, signed: dict[str, str], live_call: Call) -> None:
    event = cloud_event("AnswerFailed", resultInformation={"code": 400, "subCode": 8523, "message": "Bad context"})
    post_events(client, [event], callback_path(live_call), **signed)

    call = Call.objects.get(pk=live_call.pk)
    assert (call.state, call.end_reason) == (Call.State.FAILED, "Bad context")


def test_streaming_started_and_stopped_on_request_set_the_status(
    client: Client, signed: dict[str, str], live_call: Call
) -> None:
    Call.objects.filter(pk=live_call.pk).update(state=Call.State.CONNECTED)
    post_events(
        client,
        [cloud_event("MediaStreamingStarted", **media_update("mediaStreamingStarted"))],
        callback_path(live_call),
        **signed,
    )
    assert Call.objects.get(pk=live_call.pk).media_streaming_status == Status.ACTIVE

    Call.objects.filter(pk=live_call.pk).update(media_streaming_status=Status.STOPPING, media_streaming_wanted=False)
    stopped = cloud_event("MediaStreamingStopped", **media_update("mediaStreamingStopped", "subscriptionStopped"))
    post_events(client, [stopped], callback_path(live_call), **signed)

    assert Call.objects.get(pk=live_call.pk).media_streaming_status == Status.INACTIVE
    assert not RecoveryJob.objects.exists()


def test_a_stream_failure_while_wanted_schedules_recovery_and_opens_a_gap(
    client: Client, signed: dict[str, str], live_call: Call
) -> None:
    Call.objects.filter(pk=live_call.pk).update(state=Call.State.CONNECTED, media_streaming_status=Status.ACTIVE)
    failed = cloud_event(
        "MediaStreamingFailed",
        resultInformation={"code": 500, "subCode": 8603, "message": "not able to establish websocket connection"},
        **media_update("mediaStreamingFailed", "streamConnectionUnsuccessful"),
    )

    post_events(client, [failed], callback_path(live_call), **signed)

    assert Call.objects.get(pk=live_call.pk).media_streaming_status == Status.FAILED
    job = RecoveryJob.objects.get(call=live_call)
    assert job.kind == RecoveryJob.Kind.MEDIA_STREAMING and job.finished_at is None
    gap = Gap.objects.get(call=live_call)
    assert gap.reason == Gap.Reason.ACS_FAILURE and "websocket" in gap.detail
    assert CallEvent.objects.filter(call=live_call, type="Callscribe.RecoveryScheduled").exists()


def test_acs_starting_a_lost_stream_again_ends_its_gap_and_recovery_and_nothing_of_the_other_stream(
    client: Client, signed: dict[str, str], live_call: Call
) -> None:
    Call.objects.filter(pk=live_call.pk).update(
        state=Call.State.CONNECTED, media_streaming_status=Status.ACTIVE, transcription_status=Status.ACTIVE
    )
    lost = [
        cloud_event("MediaStreamingFailed", **media_update("mediaStreamingFailed", "streamConnectionUnsuccessful")),
        cloud_event("TranscriptionStopped", transcriptionUpdate={"transcriptionStatus": "transcriptionStopped"}),
    ]
    post_events(client, lost, callback_path(live_call), **signed)
    assert Gap.objects.filter(call=live_call, ended_at__isnull=True).count() == 2

    started = cloud_event("MediaStreamingStarted", **media_update("mediaStreamingStarted"))
    post_events(client, [started], callback_path(live_call), **signed)

    assert Call.objects.get(pk=live_call.pk).media_streaming_status == Status.ACTIVE
    still_open = Gap.objects.get(call=live_call, ended_at__isnull=True)
    assert still_open.detail.startswith("Transcription")
    assert Gap.objects.get(call=live_call, detail__startswith="Media streaming").ended_at is not None
    jobs = RecoveryJob.objects.filter(call=live_call)
    assert jobs.get(kind=RecoveryJob.Kind.MEDIA_STREAMING).finished_at is not None
    assert jobs.get(kind=RecoveryJob.Kind.TRANSCRIPTION).finished_at is None


def test_an_unrequested_transcription_stop_schedules_recovery(
    client: Client, signed: dict[str, str], live_call: Call
) -> None:
    Call.objects.filter(pk=live_call.pk).update(state=Call.State.CONNECTED, transcription_status=Status.ACTIVE)
    stopped = cloud_event(
        "TranscriptionStopped",
        transcriptionUpdate={
            "transcriptionStatus": "transcriptionStopped",
            "transcriptionStatusDetails": "subscriptionStopped",
        },
    )
    post_events(client, [stopped], callback_path(live_call), **signed)

    assert RecoveryJob.objects.get(call=live_call).kind == RecoveryJob.Kind.TRANSCRIPTION


def test_an_unknown_event_type_is_stored_not_rejected(client: Client, signed: dict[str, str], live_call: Call) -> None:
    event = cloud_event("HologramProjectionStarted", hologram={"colour": "blue"})

    response = post_events(client, [event], callback_path(live_call), **signed)

    assert response.status_code == 200
    assert CallEvent.objects.get(call=live_call).type == "Microsoft.Communication.HologramProjectionStarted"


def test_an_event_for_an_unknown_call_is_kept(client: Client, signed: dict[str, str]) -> None:
    post_events(client, [cloud_event("CallConnected", "nobody-knows")], callback_path(), **signed)
    assert CallEvent.objects.get().call is None


# --- Event Grid: incoming calls ------------------------------------------------------------------------


def test_an_incoming_call_without_the_secret_is_refused(client: Client, acs_settings: SettingsWrapper) -> None:
    assert client.post("/api/incoming-call", data="[]", content_type="application/json").status_code == 401
    wrong = client.post("/api/incoming-call?secret=guess", data="[]", content_type="application/json")
    assert wrong.status_code == 401
    assert not Call.objects.exists()


def test_with_no_secret_configured_incoming_calls_are_refused_unless_debug(
    client: Client, settings: SettingsWrapper
) -> None:
    settings.INCOMING_CALL_SECRET = ""
    settings.DEBUG = False
    assert client.post("/api/incoming-call", data="[]", content_type="application/json").status_code == 401
    settings.DEBUG = True
    assert client.post("/api/incoming-call", data="[]", content_type="application/json").status_code == 200


def test_it_answers_the_event_grid_validation_handshake(client: Client, acs_settings: SettingsWrapper) -> None:
    validation = [
        {
            "id": "2d1781af",
            "eventType": "Microsoft.EventGrid.SubscriptionValidationEvent",
            "data": {"validationCode": "512d38b6-c7b8-40c8-89fe-f46f9e9622b6"},
        }
    ]
    response = post_events(client, validation, f"/api/incoming-call?secret={INCOMING_CALL_SECRET}")

    assert response.status_code == 200
    assert response.json() == {"validationResponse": "512d38b6-c7b8-40c8-89fe-f46f9e9622b6"}


def test_it_allows_event_grid_cloudevents_delivery(client: Client, acs_settings: SettingsWrapper) -> None:
    response = client.options(
        f"/api/incoming-call?secret={INCOMING_CALL_SECRET}", HTTP_WEBHOOK_REQUEST_ORIGIN="eventgrid.azure.net"
    )
    assert response.status_code == 200
    assert response["WebHook-Allowed-Origin"] == "eventgrid.azure.net"


def test_an_incoming_call_with_an_overlong_caller_name_gets_a_clear_400(
    client: Client, acs_settings: SettingsWrapper
) -> None:
    event = {
        "id": "incoming-long",
        "eventType": "Microsoft.Communication.IncomingCall",
        "data": {"from": {"rawId": CALLER}, "callerDisplayName": "D" * 1000, "incomingCallContext": "blob"},
    }
    response = post_events(client, [event], f"/api/incoming-call?secret={INCOMING_CALL_SECRET}")

    assert response.status_code == 400
    assert "callerDisplayName` is longer than 300" in response.json()["error"]
    assert not Call.objects.exists()


def test_an_incoming_call_post_with_too_many_events_or_bytes_is_refused(
    client: Client, acs_settings: SettingsWrapper
) -> None:
    ring_event = {"eventType": INCOMING_CALL, "data": {"from": {"rawId": CALLER}, "incomingCallContext": "blob"}}
    path = f"/api/incoming-call?secret={INCOMING_CALL_SECRET}"
    many = [{**ring_event, "id": f"ring-{index}"} for index in range(101)]
    assert post_events(client, many, path).status_code == 400
    acs_settings.MAX_WEBHOOK_BYTES = 100
    assert post_events(client, [{**ring_event, "id": "ring-big"}], path).status_code == 413
    assert not Call.objects.exists()
    assert not CallEvent.objects.exists()


def test_a_redelivered_incoming_call_creates_one_call(client: Client, acs_settings: SettingsWrapper) -> None:
    event = {
        "id": "incoming-1",
        "eventType": "Microsoft.Communication.IncomingCall",
        "eventTime": "2026-11-25T10:00:00Z",
        "data": {
            "from": {"rawId": CALLER, "kind": "phoneNumber", "phoneNumber": {"value": CALLER[2:]}},
            "to": {"rawId": AGENT},
            "callerDisplayName": "Dana Whitfield",
            "incomingCallContext": "context-blob",
            "serverCallId": "server-9",
        },
    }
    path = f"/api/incoming-call?secret={INCOMING_CALL_SECRET}"
    post_events(client, [event], path)
    post_events(client, [event], path)

    call = Call.objects.get()
    assert (call.direction, call.caller, call.callee, call.caller_display_name) == (
        Call.Direction.INBOUND,
        CALLER,
        AGENT,
        "Dana Whitfield",
    )
    assert call.participants.get(raw_id=CALLER).label == "Customer Dana Whitfield"


# --- end to end: the emulator rings the app server ----------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_an_incoming_call_is_answered_streamed_and_transcribed(acs_app: AppServer, emulator: RunningEmulator) -> None:
    rang = ring(emulator, acs_app, script="short_call")

    call = wait_for(lambda: Call.objects.filter(server_call_id=rang["server_call_id"]).first(), what="the call")
    answer = wait_for(
        lambda: next(
            (
                r
                for r in emulator.requests()
                if (r["body"] or {}).get("incomingCallContext") == rang["incoming_call_context"]
            ),
            None,
        ),
        what="the answer request",
    )
    body = answer["body"]
    media, transcription = body["mediaStreamingOptions"], body["transcriptionOptions"]
    assert (media["transportType"], media["contentType"], media["audioChannelType"]) == (
        "websocket",
        "audio",
        "unmixed",
    )
    assert media["transportUrl"].startswith(f"{acs_app.ws_base_url}/ws/media/")
    assert unsign_media_token(media["transportUrl"].rstrip("/").rsplit("/", 1)[1]) == call.id
    assert media["startMediaStreaming"] is True
    assert transcription["transportUrl"] == media["transportUrl"]
    assert (transcription["locale"], transcription["enableIntermediateResults"]) == ("en-US", True)
    assert transcription["startTranscription"] is True
    assert parse_qs(urlsplit(body["callbackUri"]).query)["token"]

    wait_for(lambda: Call.objects.get(pk=call.pk).state == Call.State.CONNECTED, what="CallConnected")
    assert CallEvent.objects.filter(call=call, type="Microsoft.Communication.CallConnected").exists()
    wait_for(lambda: TranscriptSegment.objects.filter(call=call).count() >= 3, timeout=15, what="three final segments")
    wait_for(lambda: Call.objects.get(pk=call.pk).state == Call.State.DISCONNECTED, timeout=10, what="the script's end")

    call.refresh_from_db()
    assert call.call_connection_id and call.caller == rang["caller"]
    texts = list(TranscriptSegment.objects.filter(call=call).order_by("sequence").values_list("text", flat=True))
    assert texts[0].startswith("Contoso support")
    assert set(Participant.objects.filter(call=call).values_list("raw_id", flat=True)) >= {
        rang["caller"],
        rang["callee"],
    }
    assert not requests.post(f"{acs_app.base_url}/api/callbacks", json=[], timeout=5).ok  # still needs a JWT
