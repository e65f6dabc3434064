"""Ringing the app through Event Grid, and the faults the control API can inject."""

from __future__ import annotations

import asyncio
import base64
import time

import pytest
from azure.communication.callautomation import PhoneNumberIdentifier
from azure.core.exceptions import HttpResponseError

from emulator.control_client import ControlAPIError
from tests.emulator.conftest import FakeApp, Socket


async def ring(acs, app: FakeApp) -> str:
    """Ring the app, which answers with streaming and transcription; return the call id."""
    result = await _in_thread(acs.ring, f"{app.base_url}/api/incoming-call?secret=XYZ", "short_call")
    assert result["notification_status"] == 200
    await app.wait_for(lambda: app.answered)
    call_id = app.answered[0].call_connection_id
    await app.wait_for(lambda: {"MediaStreamingStarted", "TranscriptionStarted"} <= set(app.types(call_id)))
    return call_id


async def _in_thread(function, *args, **kwargs):
    # The control API is blocking (urllib) and the fake app runs on this loop, so call it off the loop.
    return await asyncio.to_thread(function, *args, **kwargs)


async def test_it_rings_the_app_which_answers(acs, app: FakeApp) -> None:
    call_id = await ring(acs, app)
    [event] = app.incoming
    assert event["eventType"] == "Microsoft.Communication.IncomingCall"
    assert event["data"]["from"] == {
        "rawId": "4:+14255550123",
        "kind": "phoneNumber",
        "phoneNumber": {"value": "+14255550123"},
    }
    assert event["data"]["to"]["kind"] == "communicationUser"
    assert event["data"]["callerDisplayName"] == "Dana Whitfield"
    answered = app.answered[0]
    assert answered.server_call_id == event["data"]["serverCallId"]
    assert answered.correlation_id == event["data"]["correlationId"]
    assert app.types(call_id)[:2] == ["CallConnected", "ParticipantsUpdated"]
    snapshot = await _in_thread(acs.call, call_id)
    assert snapshot["state"] == "connected"
    assert snapshot["media_streaming"]["state"] == "active"
    [media] = app.sockets_for("media", call_id)
    await app.wait_for(lambda: len(media.packets) > 1)
    assert media.packets[0]["audioMetadata"]["sampleRate"] == 24000
    assert media.packets[0]["audioMetadata"]["length"] == 960
    assert len(base64.b64decode(media.packets[1]["audioData"]["data"])) == 960

    with pytest.raises(HttpResponseError) as reused:
        await app.client.answer_call(event["data"]["incomingCallContext"], app.callback_url)
    assert reused.value.status_code == 400

    await _in_thread(acs.hang_up, call_id)
    await app.wait_for(lambda: "CallDisconnected" in app.types(call_id))
    assert (await _in_thread(acs.call, call_id))["state"] == "disconnected"


async def test_it_reports_a_failed_subscription_validation(acs, app: FakeApp) -> None:
    with pytest.raises(ControlAPIError) as error:
        await _in_thread(acs.ring, f"{app.base_url}/api/no-such-endpoint", "short_call")
    assert error.value.status == 502


async def test_it_reconnects_dropped_sockets_with_a_new_token(acs, app: FakeApp) -> None:
    call_id = await ring(acs, app)
    [first_media] = app.sockets_for("media", call_id)
    [first_transcription] = app.sockets_for("transcription", call_id)

    await _in_thread(acs.fault, call_id, "drop_socket", which="media", reconnect_after=0.2)
    await _in_thread(acs.fault, call_id, "drop_socket", which="transcription", reconnect_after=0.2)
    await app.wait_for(lambda: len(app.sockets_for("media", call_id)) == 2)
    await app.wait_for(lambda: "TranscriptionResumed" in app.types(call_id))
    second_media = app.sockets_for("media", call_id)[1]
    assert first_media.closed
    assert first_transcription.closed
    assert second_media.headers["Authorization"] != first_media.headers["Authorization"]
    await app.wait_for(lambda: len(second_media.packets) > 5)
    assert second_media.packets[0]["kind"] == "AudioMetadata"
    resumed = app.callback("TranscriptionResumed", call_id).data["transcriptionUpdate"]
    assert resumed == {
        "transcriptionStatus": "transcriptionResumed",
        "transcriptionStatusDetails": "streamConnectionReestablished",
    }
    snapshot = await _in_thread(acs.call, call_id)
    assert snapshot["media_streaming"]["connections_opened"] == 2

    await _in_thread(acs.fault, call_id, "malformed_packet", which="media")
    await app.wait_for(lambda: "this is not JSON {" in second_media.raw)
    await app.wait_for(lambda: second_media.of_kind("AudioData")[-1]["audioData"]["participantRawID"] != 42)

    await _in_thread(acs.fault, call_id, "fail_streaming")
    await app.wait_for(lambda: "MediaStreamingFailed" in app.types(call_id))
    failed = app.callback("MediaStreamingFailed", call_id).data
    assert failed["resultInformation"]["code"] == 500
    assert failed["resultInformation"]["subCode"] == 8603
    assert failed["mediaStreamingUpdate"]["mediaStreamingStatus"] == "mediaStreamingFailed"
    await app.wait_for(lambda: second_media.closed)
    properties = await app.client.get_call_connection(call_id).get_call_properties()
    assert properties.media_streaming_subscription.state == "inactive"
    assert properties.transcription_subscription.state == "active"

    await _in_thread(acs.fault, call_id, "fail_transcription")
    await app.wait_for(lambda: "TranscriptionFailed" in app.types(call_id))
    failed = app.callback("TranscriptionFailed", call_id).data
    assert (failed["resultInformation"]["code"], failed["resultInformation"]["subCode"]) == (500, 8578)
    await app.wait_for(lambda: app.sockets_for("transcription", call_id)[-1].closed)

    await app.client.get_call_connection(call_id).hang_up(is_for_everyone=True)
    await app.wait_for(lambda: "CallDisconnected" in app.types(call_id))


async def test_it_gives_up_when_a_dropped_socket_cannot_reconnect(acs, app: FakeApp) -> None:
    properties = await app.client.create_call(
        PhoneNumberIdentifier("+14255550123"), app.callback_url, transcription=app.transcription_options()
    )
    call_id = properties.call_connection_id
    await app.wait_for(lambda: "TranscriptionStarted" in app.types(call_id))
    await _in_thread(acs.fault, call_id, "drop_socket", which="transcription", reconnect_after=None)
    await app.wait_for(lambda: "TranscriptionFailed" in app.types(call_id))
    failed = app.callback("TranscriptionFailed", call_id).data
    assert failed["resultInformation"]["code"] == 500
    assert failed["transcriptionUpdate"]["transcriptionStatusDetails"] == "streamConnectionUnsuccessful"
    with pytest.raises(ControlAPIError):
        await _in_thread(acs.fault, call_id, "drop_socket", which="media")
    await _in_thread(acs.hang_up, call_id)


async def test_it_stops_and_starts_transcription_mid_call_as_acs_does(acs, app: FakeApp) -> None:
    await _in_thread(acs.ring, f"{app.base_url}/api/incoming-call?secret=XYZ", "support_call")
    await app.wait_for(lambda: app.answered)
    call_id = app.answered[-1].call_connection_id
    await app.wait_for(lambda: "TranscriptionStarted" in app.types(call_id))
    [first] = app.sockets_for("transcription", call_id)
    await app.wait_for(lambda: finals(first), timeout=10)
    connection = app.client.get_call_connection(call_id)

    await connection.stop_transcription(operation_context="pause")
    stopped_at = time.time()

    await app.wait_for(lambda: "TranscriptionStopped" in app.types(call_id) and first.closed)
    stopped = app.callback("TranscriptionStopped", call_id).data
    assert stopped["operationContext"] == "pause"
    assert stopped["transcriptionUpdate"] == {
        "transcriptionStatus": "transcriptionStopped",
        "transcriptionStatusDetails": "subscriptionStopped",
    }
    assert (await connection.get_call_properties()).transcription_subscription.state == "inactive"
    await asyncio.sleep(2.5)  # the script speaks on; nothing of it is transcribed
    snapshot = (await _in_thread(acs.call, call_id))["transcription"]
    assert snapshot["finals_sent"] and all(final["sent_at"] < stopped_at for final in snapshot["finals_sent"])
    assert len(app.sockets_for("transcription", call_id)) == 1

    await connection.start_transcription(operation_context="resume")
    restarted_at = time.time()

    await app.wait_for(lambda: len(app.sockets_for("transcription", call_id)) == 2)
    second = app.sockets_for("transcription", call_id)[1]
    [final, *_] = await app.wait_for(lambda: finals(second), timeout=10)
    started = [c.data.get("operationContext") for c in app.callbacks if c.type == "TranscriptionStarted"]
    assert started == [None, "resume"]
    metadata = second.packets[0]["transcriptionMetadata"]
    assert metadata["subscriptionId"] == first.packets[0]["transcriptionMetadata"]["subscriptionId"]
    assert final["offset"] <= (time.time() - restarted_at) * 10_000_000  # offsets start again at zero
    assert (await connection.get_call_properties()).transcription_subscription.state == "active"
    await connection.hang_up(is_for_everyone=True)
    await app.wait_for(lambda: "CallDisconnected" in app.types(call_id))


def finals(socket: Socket) -> list[dict]:
    results = [packet["transcriptionData"] for packet in socket.of_kind("TranscriptionData")]
    return [result for result in results if result["resultStatus"] == "Final"]
