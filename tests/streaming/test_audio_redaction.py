"""Captured audio with redaction on: speech waits in memory for the transcript, the redacted words' spans
are silence in the WAV, and speech no transcript decided is never written as it was (#16)."""

from __future__ import annotations

import time
import wave
from collections.abc import Iterator
from pathlib import Path

import pytest
from channels.testing import WebsocketCommunicator
from django.test import override_settings
from websockets.sync.client import connect

from calls.audio_files import audio_file_name
from calls.models import Call, MediaStream
from calls.tokens import media_socket_url
from config.asgi import application
from tests.browser.support import tone, wait_until
from tests.calls.conftest import CARD_LINE
from tests.conftest import media_path
from tests.servers import AppServer, run_app_server
from tests.streaming import acs_packets as acs

pytestmark = pytest.mark.django_db(transaction=True)

SAMPLE_RATE = 16000
FRAME_SAMPLES = 320  # 20 ms
SECOND = 10_000_000  # ACS ticks


def samples(path: Path) -> memoryview:
    with wave.open(str(path), "rb") as wav:
        assert (wav.getframerate(), wav.getsampwidth(), wav.getnchannels()) == (SAMPLE_RATE, 2, 1)
        return memoryview(wav.readframes(wav.getnframes())).cast("h")


def between(audio: memoryview, start_s: float, end_s: float) -> memoryview:
    return audio[round(start_s * SAMPLE_RATE) : round(end_s * SAMPLE_RATE)]


def audible(audio: memoryview) -> float:
    """The share of samples that are not zero."""
    return sum(1 for sample in audio if sample) / len(audio)


@pytest.fixture(scope="module")
def capturing_server(
    django_db_setup: None, django_db_blocker: object, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[AppServer, Path]]:
    """A real daphne capturing audio, with redaction at its default (REDACTION=redact)."""
    audio_dir = tmp_path_factory.mktemp("audio")
    with run_app_server(AUDIO_CAPTURE="True", AUDIO_CAPTURE_DIR=str(audio_dir), STREAM_STATS_INTERVAL="0.5") as server:
        yield server, audio_dir


def test_a_card_number_read_live_is_silence_in_the_wav_and_never_reaches_the_disk_unredacted(
    call: Call, capturing_server: tuple[AppServer, Path]
) -> None:
    """As ACS does it: audio and transcription on two sockets, audio in real time. The customer speaks
    for six seconds (CARD_LINE, its words evenly timed), the agent listens; the final arrives after."""
    server, audio_dir = capturing_server
    caller_wav = audio_dir / str(call.id) / audio_file_name(acs.CALLER)
    agent_wav = audio_dir / str(call.id) / audio_file_name(acs.AGENT)
    with override_settings(PUBLIC_BASE_URL=server.base_url):
        url = media_socket_url(call.id)
    with connect(url) as audio, connect(url) as text:
        text.send(acs.transcription_metadata())
        audio.send(acs.audio_metadata())
        started = time.monotonic()
        for frame in range(350):  # 7 s: speech for 6 s, then frames ACS marks silent (with a little noise)
            time.sleep(max(0.0, started + frame * 0.02 - time.monotonic()))
            speaking = frame < 300
            caller_pcm = tone(frame) if speaking else b"\x03\x00" * FRAME_SAMPLES
            audio.send(acs.audio_data(acs.CALLER, frame, silent=not speaking, pcm=caller_pcm))
            audio.send(acs.audio_data(acs.AGENT, frame, silent=True, pcm=b"\x02\x00" * FRAME_SAMPLES))
            if frame == 290:  # 5.8 s of speech, flushed every 0.5 s: nothing of it is on disk yet
                assert not caller_wav.exists()
                assert agent_wav.stat().st_size >= 44 + 4 * SAMPLE_RATE * 2  # silence waits for nothing
            if frame == 315:
                text.send(acs.transcription_data(acs.CALLER, CARD_LINE, 0, 6 * SECOND))
    open_streams = MediaStream.objects.filter(call=call, disconnected_at__isnull=True)
    wait_until(lambda: not open_streams.exists(), message="both sockets closed and their audio written")

    audio = samples(caller_wav)
    assert len(audio) == 350 * FRAME_SAMPLES
    step = 6 / len(CARD_LINE.split())  # each word's share of the six seconds
    card, expiry, code = (3 * step, 7 * step), (8 * step, 9 * step), (10 * step, 11 * step)
    for start, end in (card, expiry, code):
        assert audible(between(audio, start, end)) == 0, (start, end)
    assert audible(between(audio, 0.05, card[0] - 0.3)) > 0.9  # "My card is" kept
    assert audible(between(audio, 6.3, 6.95)) == 1  # the silent frames after, as they came
    assert audible(samples(agent_wav)) == 1


async def open_media_socket(call: Call) -> WebsocketCommunicator:
    communicator = WebsocketCommunicator(application, media_path(call.id))
    connected, _ = await communicator.connect()
    assert connected
    return communicator


async def test_speech_no_transcript_decided_is_written_as_silence_when_the_socket_closes(
    call: Call, settings, tmp_path: Path
) -> None:
    settings.AUDIO_CAPTURE, settings.AUDIO_CAPTURE_DIR = True, tmp_path
    media = await open_media_socket(call)
    await media.send_to(text_data=acs.audio_metadata())
    for frame in range(25):  # 0.2 s that ACS marks silent, then 0.3 s of speech
        await media.send_to(text_data=acs.audio_data(acs.CALLER, frame, silent=frame < 10, pcm=tone(frame)))
    await media.disconnect()

    audio = samples(tmp_path / str(call.id) / audio_file_name(acs.CALLER))
    assert len(audio) == 25 * FRAME_SAMPLES
    assert list(audio[: 10 * FRAME_SAMPLES]) == list(memoryview(b"".join(tone(n) for n in range(10))).cast("h"))
    assert audible(audio[10 * FRAME_SAMPLES :]) == 0


async def test_speech_held_longer_than_the_hold_limit_is_written_as_silence_while_the_call_goes_on(
    call: Call, settings, tmp_path: Path
) -> None:
    """The hold limit bounds the memory a socket keeps when no final comes (transcription off, say)."""
    settings.AUDIO_CAPTURE, settings.AUDIO_CAPTURE_DIR = True, tmp_path
    settings.AUDIO_REDACTION_HOLD_SECONDS, settings.STREAM_STATS_INTERVAL = 0.5, 0.1
    wav = tmp_path / str(call.id) / audio_file_name(acs.CALLER)
    media = await open_media_socket(call)
    await media.send_to(text_data=acs.audio_metadata())
    for frame in range(100):  # two seconds of speech
        await media.send_to(text_data=acs.audio_data(acs.CALLER, frame, pcm=tone(frame)))
    deadline = time.monotonic() + 5
    while not wav.exists() and time.monotonic() < deadline:
        await media.receive_nothing(timeout=0.05)

    written = samples(wav)
    assert len(written) == round(1.5 * SAMPLE_RATE)  # all but the last 0.5 s, while the socket is open
    assert audible(written) == 0
    await media.disconnect()
