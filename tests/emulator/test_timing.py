"""What the emulator records for benchmarks: when it rang, when the answer came, when each final went
out (bench/lifecycle_load.py times a call's answer and a final's way to a viewer from these), and that
the cheaper audio path still sends the same packets."""

from __future__ import annotations

import asyncio
import json
import time

from emulator.streams import audio_data_packet
from tests.emulator.conftest import FakeApp
from tests.emulator.test_ring_and_faults import ring


async def test_a_call_reports_when_it_was_rung_answered_connected_and_each_final_sent(acs, app: FakeApp) -> None:
    rung_at = time.time()
    call_id = await ring(acs, app)
    [transcription] = app.sockets_for("transcription", call_id)
    await app.wait_for(
        lambda: (
            transcription.of_kind("TranscriptionData")
            and any(
                p["transcriptionData"]["resultStatus"] == "Final" for p in transcription.of_kind("TranscriptionData")
            )
        )
    )
    received_at = time.time()
    snapshot = await asyncio.to_thread(acs.call, call_id)
    timing = snapshot["timing"]
    assert rung_at <= timing["incoming_call_sent_at"] <= timing["answer_requested_at"] <= timing["connected_at"]
    assert timing["disconnected_at"] is None
    [first, *_] = snapshot["transcription"]["finals_sent"]
    assert timing["connected_at"] < first["sent_at"] <= received_at
    await asyncio.to_thread(acs.hang_up, call_id)
    ended = await asyncio.to_thread(acs.call, call_id)
    assert ended["timing"]["disconnected_at"] >= first["sent_at"]


async def test_ringing_reports_the_status_of_each_event_grid_delivery(acs, app: FakeApp) -> None:
    url = f"{app.base_url}/api/incoming-call?secret=XYZ"
    result = await asyncio.to_thread(acs.ring, url, "short_call")
    assert (result["validation_status"], result["notification_status"]) == (200, 200)
    await app.wait_for(lambda: app.answered)
    await asyncio.to_thread(acs.hang_up, app.answered[0].call_connection_id)


async def test_audio_packets_are_the_text_json_dumps_would_give(acs, app: FakeApp) -> None:
    call_id = await ring(acs, app)
    [media] = app.sockets_for("media", call_id)
    await app.wait_for(lambda: len(media.of_kind("AudioData")) >= 10)
    audio = [text for text in media.raw if '"AudioData"' in text]
    assert {json.loads(text)["audioData"]["silent"] for text in audio} <= {True, False}
    assert all(text == json.dumps(json.loads(text)) for text in audio)
    await asyncio.to_thread(acs.hang_up, call_id)


def test_an_audio_packet_escapes_the_participant_id_as_json_does() -> None:
    raw_id = 'odd "id" \\ é'
    packet = audio_data_packet("2026-12-06T10:00:00.000Z", raw_id, "AAAA", silent=True)
    expected = {
        "kind": "AudioData",
        "audioData": {
            "timestamp": "2026-12-06T10:00:00.000Z",
            "participantRawID": raw_id,
            "data": "AAAA",
            "silent": True,
        },
    }
    assert packet == json.dumps(expected)
