"""The real Call Automation SDK against the emulator: create a call, stream, transcribe, stop, hang up."""

from __future__ import annotations

import asyncio
import base64
import itertools
import json
import time
from datetime import UTC, datetime
from email.utils import formatdate

import pytest
import requests
from azure.communication.callautomation import PhoneNumberIdentifier
from azure.communication.callautomation.aio import CallAutomationClient
from azure.core.credentials import AzureKeyCredential
from azure.core.exceptions import ClientAuthenticationError, HttpResponseError, ResourceNotFoundError

from emulator import hmac_auth
from tests.emulator.conftest import CALLBACK_SECRET, FakeApp

CUSTOMER = "+14255550123"
AGENT = "8:acs:00000000-0000-0000-0000-00000000ac5e_00000021-3c8e-5d3a-85f4-343a0d00a1b2"


async def create_call(app: FakeApp, **options):
    options.setdefault("media_streaming", app.media_options())
    options.setdefault("transcription", app.transcription_options())
    return await app.client.create_call(
        PhoneNumberIdentifier(CUSTOMER),
        app.callback_url,
        source_caller_id_number=PhoneNumberIdentifier("+18005550100"),
        operation_context="create-ctx",
        **options,
    )


async def test_it_connects_streams_and_transcribes_a_created_call(acs, app: FakeApp) -> None:
    acs.clear_requests()
    properties = await create_call(app)
    call_id = properties.call_connection_id
    assert properties.call_connection_state == "connecting"
    assert properties.media_streaming_subscription.state == "inactive"

    await app.wait_for(lambda: {"MediaStreamingStarted", "TranscriptionStarted"} <= set(app.types(call_id)))
    types = app.types(call_id)
    assert types[:2] == ["CallConnected", "ParticipantsUpdated"]
    assert app.callback("CallConnected", call_id).data["operationContext"] == "create-ctx"
    participants = app.callback("ParticipantsUpdated", call_id).data
    assert participants["sequenceNumber"] == 1
    assert {p["identifier"]["rawId"] for p in participants["participants"]} == {f"4:{CUSTOMER}", AGENT}
    started = app.callback("MediaStreamingStarted", call_id)
    assert started.data["mediaStreamingUpdate"] == {
        "contentType": "Audio",
        "mediaStreamingStatus": "mediaStreamingStarted",
        "mediaStreamingStatusDetails": "subscriptionStarted",
    }
    assert started.data["resultInformation"] == {"code": 200, "subCode": 0, "message": "Action completed successfully."}
    assert started.event["source"] == f"calling/callConnections/{call_id}"
    assert started.event["specversion"] == "1.0"
    assert started.query_string == f"token={CALLBACK_SECRET}"
    assert {c.claims["exp"] - c.claims["iat"] for c in app.callbacks} == {300}
    assert app.auth_errors == []

    [media] = app.sockets_for("media", call_id)
    [transcription] = app.sockets_for("transcription", call_id)
    assert media.headers["x-ms-call-correlation-id"] == properties.correlation_id
    assert media.claims["exp"] - media.claims["iat"] == 24 * 3600
    assert media.packets[0] == {
        "kind": "AudioMetadata",
        "audioMetadata": {
            "subscriptionId": properties.media_streaming_subscription.id,
            "encoding": "PCM",
            "sampleRate": 16000,
            "channels": 1,
            "length": 640,
        },
    }
    metadata = transcription.packets[0]["transcriptionMetadata"]
    assert metadata["callConnectionId"] == call_id
    assert metadata["locale"] == "en-us"

    def results() -> list[dict]:
        return [p["transcriptionData"] for p in transcription.of_kind("TranscriptionData")]

    final = await app.wait_for(lambda: next((r for r in results() if r["resultStatus"] == "Final"), None), timeout=6)
    results_so_far = results()
    intermediates = [
        r for r in results_so_far[: results_so_far.index(final)] if r["participantRawID"] == final["participantRawID"]
    ]
    assert [len(r["text"].split()) for r in intermediates] == list(range(1, len(final["words"]) + 1))
    assert all("words" not in r and "confidence" not in r for r in intermediates)
    assert final["text"] == "Contoso support, this is Sam."
    assert final["participantRawID"] == AGENT
    assert [w["text"] for w in final["words"]] == ["contoso", "support", "this", "is", "sam"]
    assert final["offset"] == final["words"][0]["offset"]
    assert 0 < final["confidence"] <= 1
    assert final["words"][-1]["offset"] + final["words"][-1]["duration"] == final["offset"] + final["duration"]

    audio = media.of_kind("AudioData")
    speakers = {p["audioData"]["participantRawID"] for p in audio}
    assert speakers == {f"4:{CUSTOMER}", AGENT}
    agent_frames = [p["audioData"] for p in audio if p["audioData"]["participantRawID"] == AGENT]
    assert all(len(base64.b64decode(f["data"])) == 640 for f in agent_frames)
    assert any(not f["silent"] for f in agent_frames)
    customer_frames = [p["audioData"] for p in audio if p["audioData"]["participantRawID"] == f"4:{CUSTOMER}"]
    assert all(f["silent"] and base64.b64decode(f["data"]) == bytes(640) for f in customer_frames[:10])

    connection = app.client.get_call_connection(call_id)
    live = await connection.get_call_properties()
    assert live.call_connection_state == "connected"
    assert live.media_streaming_subscription.state == "active"
    assert live.transcription_subscription.state == "active"

    await connection.stop_media_streaming(operation_context="stop-media")
    await app.wait_for(lambda: "MediaStreamingStopped" in app.types(call_id))
    stopped = app.callback("MediaStreamingStopped", call_id)
    assert stopped.data["operationContext"] == "stop-media"
    assert stopped.data["mediaStreamingUpdate"]["mediaStreamingStatus"] == "mediaStreamingStopped"
    await app.wait_for(lambda: media.closed)
    assert not transcription.closed

    await connection.hang_up(is_for_everyone=True)
    await app.wait_for(lambda: "CallDisconnected" in app.types(call_id))
    await app.wait_for(lambda: transcription.closed)
    with pytest.raises(ResourceNotFoundError):
        await connection.get_call_properties()

    made = [(r["method"], r["path"].replace(call_id, "{id}"), r["status"]) for r in acs.requests()]
    assert made == [
        ("POST", "/calling/callConnections", 201),
        ("GET", "/calling/callConnections/{id}", 200),
        ("POST", "/calling/callConnections/{id}:stopMediaStreaming", 202),
        ("POST", "/calling/callConnections/{id}:terminate", 204),
        ("GET", "/calling/callConnections/{id}", 404),
    ]
    assert all(r["hmac_valid"] and r["query"]["api-version"] == "2026-03-12" for r in acs.requests())
    assert acs.requests()[0]["body"]["mediaStreamingOptions"]["audioChannelType"] == "unmixed"


async def test_it_refuses_operations_in_the_wrong_state(acs, app: FakeApp) -> None:
    properties = await create_call(app, media_streaming=app.media_options(start=False))
    connection = app.client.get_call_connection(properties.call_connection_id)
    with pytest.raises(HttpResponseError) as not_established:
        await connection.start_media_streaming()
    assert not_established.value.status_code == 400
    assert "8501" in str(not_established.value)

    await app.wait_for(lambda: "ParticipantsUpdated" in app.types(properties.call_connection_id))
    with pytest.raises(HttpResponseError) as not_active:
        await connection.stop_media_streaming()
    assert not_active.value.status_code == 400
    await connection.start_media_streaming(operation_context="late-start")
    await app.wait_for(lambda: "MediaStreamingStarted" in app.types(properties.call_connection_id))
    assert app.callback("MediaStreamingStarted").data["operationContext"] == "late-start"
    with pytest.raises(HttpResponseError, match="already active"):
        await connection.start_media_streaming()
    with pytest.raises(HttpResponseError) as bad_locale:
        await connection.update_transcription(locale="en")
    assert bad_locale.value.status_code == 400
    await app.wait_for(lambda: "TranscriptionFailed" in app.types())
    assert app.callback("TranscriptionFailed").data["resultInformation"]["subCode"] == 8523

    await connection.update_transcription(locale="en-GB", operation_context="locale")
    await app.wait_for(lambda: "TranscriptionUpdated" in app.types())
    update = app.callback("TranscriptionUpdated").data["transcriptionUpdate"]
    assert update == {
        "transcriptionStatus": "transcriptionUpdated",
        "transcriptionStatusDetails": "transcriptionLocaleUpdated",
    }
    await connection.hang_up(is_for_everyone=False)
    await app.wait_for(lambda: "CallDisconnected" in app.types())
    with pytest.raises(ResourceNotFoundError, match="8522"):
        await app.client.get_call_connection("no-such-call").get_call_properties()


async def test_it_rejects_a_wrong_access_key(acs) -> None:
    wrong_key = base64.b64encode(b"not-the-emulator-key-0123456789ab").decode()
    async with CallAutomationClient(acs.base_url, AzureKeyCredential(wrong_key)) as client:
        with pytest.raises(ClientAuthenticationError) as error:
            await client.get_call_connection("any").get_call_properties()
    assert error.value.status_code == 401
    assert acs.requests()[-1]["hmac_valid"] is False


async def test_it_streams_in_real_time_and_ends_with_the_script(acs, app: FakeApp) -> None:
    properties = await create_call(app, transcription=None)
    call_id = properties.call_connection_id
    media = (await app.wait_for(lambda: app.sockets_for("media", call_id)))[0]
    await asyncio.sleep(0.5)
    start_count, start = len(media.of_kind("AudioData")), time.monotonic()
    await asyncio.sleep(2.0)
    frames = len(media.of_kind("AudioData")) - start_count
    elapsed = time.monotonic() - start
    per_participant = frames / 2 / elapsed
    assert 45 <= per_participant <= 55, per_participant

    # Timestamps are wall-clock ISO-8601 with milliseconds and Z, 20 ms apart.
    stamps = sorted({p["audioData"]["timestamp"] for p in media.of_kind("AudioData")})
    assert all(s.endswith("Z") and len(s) == len("2024-11-15T19:16:12.925Z") for s in stamps)
    parsed = [datetime.fromisoformat(s) for s in stamps]
    steps = {round((b - a).total_seconds(), 3) for a, b in itertools.pairwise(parsed)}
    assert steps == {0.02}
    assert abs((datetime.now(UTC) - parsed[-1]).total_seconds()) < 1

    await app.wait_for(lambda: "CallDisconnected" in app.types(call_id), timeout=10)
    assert media.closed
    assert "MediaStreamingStopped" not in app.types(call_id)


async def test_it_reports_an_unreachable_media_socket(acs, app: FakeApp) -> None:
    media = app.media_options()
    media.transport_url = f"ws://127.0.0.1:{app.port}/no-such-socket"
    properties = await create_call(app, media_streaming=media, transcription=None)
    call_id = properties.call_connection_id
    await app.wait_for(lambda: "MediaStreamingFailed" in app.types(call_id))
    failed = app.callback("MediaStreamingFailed", call_id).data
    assert (failed["resultInformation"]["code"], failed["resultInformation"]["subCode"]) == (400, 8581)
    assert failed["mediaStreamingUpdate"]["mediaStreamingStatusDetails"] == "initialWebSocketConnectionFailed"
    await app.client.get_call_connection(call_id).hang_up(is_for_everyone=True)


async def test_it_retries_failed_callbacks_in_order(acs, app: FakeApp) -> None:
    app.failing_callbacks = 2
    properties = await create_call(app, media_streaming=None, transcription=None)
    call_id = properties.call_connection_id
    await app.wait_for(lambda: "ParticipantsUpdated" in app.types(call_id))
    assert app.types(call_id) == ["CallConnected", "ParticipantsUpdated"]
    deliveries = (await asyncio.to_thread(acs.call, call_id))["callbacks"]
    assert [(d["type"], d["status"]) for d in deliveries] == [
        ("Microsoft.Communication.CallConnected", 200),
        ("Microsoft.Communication.ParticipantsUpdated", 200),
    ]
    # Every try is kept, so a benchmark can count the app's 503s that a retry turned into a 200.
    assert [d["attempts"] for d in deliveries] == [[503, 503, 200], [200]]
    await app.client.get_call_connection(call_id).hang_up(is_for_everyone=True)


def signed_request(acs, method: str, path_and_query: str, body: bytes = b"", **headers: str) -> requests.Response:
    host = acs.base_url.removeprefix("http://")
    date = formatdate(usegmt=True)
    signed = hmac_auth.sign_headers(acs.access_key, method, path_and_query, host, body, date)
    return requests.request(method, acs.base_url + path_and_query, data=body, headers={**signed, **headers}, timeout=5)


def test_it_replays_a_repeated_request_and_requires_an_api_version(acs) -> None:
    body = json.dumps({"targets": [{"rawId": "4:+14255550199"}], "callbackUri": "http://127.0.0.1:9/unreachable"})
    path = "/calling/callConnections?api-version=2025-06-15"
    first = signed_request(acs, "POST", path, body.encode(), **{"Repeatability-Request-ID": "r-1"})
    again = signed_request(acs, "POST", path, body.encode(), **{"Repeatability-Request-ID": "r-1"})
    assert first.status_code == again.status_code == 201
    assert first.headers["Content-Type"].startswith("application/json")
    call_id = first.json()["callConnectionId"]
    assert again.json()["callConnectionId"] == call_id
    assert sum(c["call_connection_id"] == call_id for c in acs.calls()) == 1

    missing = signed_request(acs, "GET", f"/calling/callConnections/{call_id}")
    assert missing.status_code == 400
    assert missing.json()["error"]["code"] == "MissingApiVersionParameter"
    ended = signed_request(acs, "POST", f"/calling/callConnections/{call_id}:terminate?api-version=2025-06-15")
    assert ended.status_code == 204
