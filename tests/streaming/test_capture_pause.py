"""What a pause for sensitive data does on the media socket and the live feed: audio that arrives while
paused is written as silence (with redaction on too, without waiting for a transcript), lines after a
resume carry on along the call's timeline and the capture silences what they redact there, and viewers
see the pause and the resume as they happen."""

from __future__ import annotations

import asyncio
import time
import wave
from datetime import timedelta
from pathlib import Path

import pytest
from channels.db import database_sync_to_async
from channels.testing import WebsocketCommunicator
from django.contrib.auth.models import User
from django.utils import timezone

from calls import audio_redaction, pause
from calls.audio_files import audio_file_name
from calls.models import TICKS_PER_MILLISECOND, Call, Gap, MediaStream, TranscriptSegment
from config.asgi import application
from tests.calls.conftest import CARD_LINE, new_call
from tests.conftest import abrowser_headers, media_path
from tests.streaming import acs_packets as acs

pytestmark = pytest.mark.django_db(transaction=True)

SPEECH = bytes([7, 1]) * 320  # one 20 ms frame that is not silence


def connected_call() -> Call:
    """Transcription stopped by staff, so pausing and resuming ask ACS nothing."""
    return new_call(
        state=Call.State.CONNECTED,
        call_connection_id="connection-1",
        transcription_status=Call.StreamStatus.INACTIVE,
        transcription_wanted=False,
    )


async def open_media_socket(call: Call) -> WebsocketCommunicator:
    socket = WebsocketCommunicator(application, media_path(call.id))
    assert (await socket.connect())[0]
    return socket


async def send(socket: WebsocketCommunicator, frames: range) -> None:
    for frame in frames:
        for participant in (acs.CALLER, acs.AGENT):
            await socket.send_to(text_data=acs.audio_data(participant, frame, pcm=SPEECH))
    await asyncio.sleep(0.2)  # received and buffered by now


async def test_audio_that_arrives_while_paused_is_written_as_silence(settings, tmp_path: Path) -> None:
    """With redaction off, so that only the pause decides (with it on, see the next test)."""
    settings.AUDIO_CAPTURE, settings.AUDIO_CAPTURE_DIR, settings.REDACTION = True, tmp_path, "off"
    call = await database_sync_to_async(connected_call)()
    media = await open_media_socket(call)
    await media.send_to(text_data=acs.audio_metadata())

    await send(media, range(1, 11))
    await database_sync_to_async(pause.pause)(call_id=call.id)
    await send(media, range(11, 21))
    await database_sync_to_async(pause.resume)(call_id=call.id)
    await send(media, range(21, 31))
    await media.disconnect()

    for participant in (acs.CALLER, acs.AGENT):
        with wave.open(str(tmp_path / str(call.id) / audio_file_name(participant))) as wav:
            frames = [wav.readframes(320) for _ in range(30)]
        assert frames[:10] == [SPEECH] * 10
        assert frames[10:20] == [bytes(640)] * 10  # the same length, so the file stays in step
        assert frames[20:] == [SPEECH] * 10


async def test_with_redaction_on_paused_speech_is_written_as_silence_without_waiting_for_a_transcript(
    settings, tmp_path: Path
) -> None:
    """No final comes for what is said while paused (transcription is stopped): it is silence at the next
    write, while the socket is still open, not held until AUDIO_REDACTION_HOLD_SECONDS."""
    settings.AUDIO_CAPTURE, settings.AUDIO_CAPTURE_DIR, settings.STREAM_STATS_INTERVAL = True, tmp_path, 0.1
    assert settings.REDACTION != "off" and settings.AUDIO_REDACTION_HOLD_SECONDS >= 30
    call = await database_sync_to_async(connected_call)()
    wav = tmp_path / str(call.id) / audio_file_name(acs.CALLER)
    await database_sync_to_async(pause.pause)(call_id=call.id)
    media = await open_media_socket(call)
    await media.send_to(text_data=acs.audio_metadata())

    await send(media, range(1, 26))
    deadline = time.monotonic() + 5
    while not (wav.exists() and wav.stat().st_size >= 44 + 25 * 640) and time.monotonic() < deadline:
        await media.receive_nothing(timeout=0.05)

    with wave.open(str(wav)) as written:
        assert written.readframes(written.getnframes()) == bytes(25 * 640)
    await media.disconnect()


@database_sync_to_async
def pause_a_minute_in(call: Call) -> Gap:
    """As if transcription had connected a minute ago, the pause begun 10 s ago and ended now."""
    MediaStream.objects.filter(call=call).update(connected_at=timezone.now() - timedelta(minutes=1))
    pause.pause(call_id=call.id)
    Gap.objects.filter(call=call).update(started_at=timezone.now() - timedelta(seconds=10))
    pause.resume(call_id=call.id)
    return Gap.objects.get(call=call, reason=Gap.Reason.SENSITIVE_PAUSE)


async def test_a_card_number_read_after_a_resume_is_silenced_where_it_was_said() -> None:
    """The lines after a resume carry their offsets on along the call; the audio capture places their
    redacted words there too (calls/audio_redaction.py), so it silences the card number as it was said,
    also when ACS transcribes on a subscription of its own after the resume."""
    call = await database_sync_to_async(connected_call)()
    first = await open_media_socket(call)
    await first.send_to(text_data=acs.transcription_metadata())
    await first.disconnect()

    resumed_at = (await pause_a_minute_in(call)).ended_at
    second = await open_media_socket(call)
    await second.send_to(text_data=acs.transcription_metadata(subscription_id="after-the-pause"))
    # The customer reads the card a second after the resume, for six seconds.
    await second.send_to(text_data=acs.transcription_data(acs.CALLER, CARD_LINE, 10_000_000, 60_000_000))
    await second.disconnect()

    progress = await database_sync_to_async(audio_redaction.transcript_progress)(call_id=call.id, after_sequence=0)

    step = 6 / len(CARD_LINE.split())  # each word's share of the six seconds
    card_said_at = resumed_at + timedelta(seconds=1 + 3 * step)  # "My card is" comes first
    first_span = min(span.start for span in progress.redacted)
    assert abs((first_span - card_said_at).total_seconds()) < 0.5
    speaking_until = progress.decided_until[acs.CALLER]
    assert abs((speaking_until - (resumed_at + timedelta(seconds=7))).total_seconds()) < 0.5


async def test_lines_after_a_resume_carry_on_along_the_call(settings) -> None:
    call = await database_sync_to_async(connected_call)()
    first = await open_media_socket(call)
    await first.send_to(text_data=acs.transcription_metadata())
    await first.send_to(text_data=acs.transcription_data(acs.CALLER, "Before the pause.", 20_000_000))
    await first.disconnect()

    await pause_a_minute_in(call)
    # ACS's offsets start again at zero on the socket it opens after the resume.
    second = await open_media_socket(call)
    await second.send_to(text_data=acs.transcription_metadata())
    await second.send_to(text_data=acs.transcription_data(acs.CALLER, "After the pause.", 10_000_000))
    await second.disconnect()

    @database_sync_to_async
    def offsets() -> dict[str, int]:
        return dict(TranscriptSegment.objects.filter(call=call).values_list("text", "offset_ticks"))

    stored = await offsets()
    assert stored["Before the pause."] == 20_000_000
    after_ms = stored["After the pause."] / TICKS_PER_MILLISECOND
    assert 60_000 + 1000 <= after_ms < 60_000 + 1000 + 2000  # a minute in, plus its own second


async def test_viewers_see_the_pause_and_the_resume_as_they_happen(staff_user: User) -> None:
    call = await database_sync_to_async(connected_call)()
    viewer = WebsocketCommunicator(application, f"/ws/calls/{call.id}/", headers=await abrowser_headers(staff_user))
    assert (await viewer.connect())[0]
    snapshot = await viewer.receive_json_from()
    assert (snapshot["view"]["controls"]["pause"], snapshot["view"]["controls"]["resume"]) == (True, False)

    await database_sync_to_async(pause.pause)(call_id=call.id, user=staff_user)

    paused = await viewer.receive_json_from(timeout=5)
    assert (paused["type"], paused["change"]) == ("call", "transcription")
    assert paused["call"]["transcription_status"] == "paused"
    described = await viewer.receive_json_from(timeout=5)  # the page's description follows each call event
    assert (described["type"], described["call_id"]) == ("view", str(call.id))
    view = described["view"]
    assert (view["controls"]["pause"], view["controls"]["resume"]) == (False, True)
    assert view["transcription_status"] == "Paused"
    assert view["pause"].startswith("Transcription and audio capture paused for sensitive data by alice at ")
    [gap] = view["gaps"]
    assert (gap["reason"], gap["reason_label"]) == ("sensitive_pause", "Paused for sensitive data")
    assert gap["to"] == "still open"

    await database_sync_to_async(pause.resume)(call_id=call.id, user=staff_user)

    resumed_event, resumed_view = [await viewer.receive_json_from(timeout=5) for _ in range(2)]
    assert (resumed_event["type"], resumed_view["type"]) == ("call", "view")
    resumed = resumed_view["view"]
    assert (resumed["controls"]["pause"], resumed["controls"]["resume"], resumed["pause"]) == (True, False, "")
    assert resumed["gaps"][0]["detail"].endswith("by alice; resumed by alice")
    assert resumed["gaps"][0]["to"] != "still open"
    await viewer.disconnect()
