"""ACS's media socket, driven through the real ASGI application into the real database."""

from __future__ import annotations

import asyncio
import json
import uuid
import wave

import pytest
from channels.db import database_sync_to_async
from channels.testing import WebsocketCommunicator
from django.core import signing
from prometheus_client import REGISTRY
from pytest_django.fixtures import Settings as SettingsWrapper

from calls.models import Call, MediaStream, Participant, TranscriptSegment
from calls.tokens import MEDIA_SALT
from config.asgi import application
from tests.conftest import media_path
from tests.streaming import acs_packets as acs
from tests.streaming.busy_threads import handshake_threads_busy

pytestmark = pytest.mark.django_db(transaction=True)


async def open_media_socket(call: Call, headers: list[tuple[bytes, bytes]] | None = None) -> WebsocketCommunicator:
    communicator = WebsocketCommunicator(application, media_path(call.id), headers=headers or [])
    connected, _ = await communicator.connect()
    assert connected
    return communicator


async def stream_frames(communicator: WebsocketCommunicator, frames: list[str | bytes]) -> None:
    for frame in frames:
        if isinstance(frame, bytes):
            await communicator.send_to(bytes_data=frame)
        else:
            await communicator.send_to(text_data=frame)


def stored(call: Call) -> list[tuple[str, str, int]]:
    return list(
        TranscriptSegment.objects.filter(call=call)
        .order_by("sequence")
        .values_list("participant_raw_id", "text", "offset_ticks")
    )


async def test_it_stores_every_packet_kind(call: Call) -> None:
    media = await open_media_socket(call)
    await stream_frames(
        media,
        [acs.audio_metadata()]
        + [acs.audio_data(acs.CALLER, frame) for frame in range(10)]
        + [acs.audio_data(acs.AGENT, frame, silent=True) for frame in range(10)]
        + [acs.dtmf_data("5")],
    )
    transcription = await open_media_socket(call)
    await stream_frames(
        transcription,
        [
            acs.transcription_metadata(call_connection_id="acs-call-1"),
            acs.transcription_data(acs.CALLER, "my internet", 50_000_000, final=False),
            acs.transcription_data(acs.CALLER, "My internet is down.", 50_000_000),
            acs.transcription_data(acs.AGENT, "Let me check that for you.", 80_000_000),
        ],
    )
    await media.disconnect()
    await transcription.disconnect()

    @database_sync_to_async
    def check() -> None:
        call.refresh_from_db()
        assert call.call_connection_id == "acs-call-1"
        assert stored(call) == [
            (acs.CALLER, "My internet is down.", 50_000_000),
            (acs.AGENT, "Let me check that for you.", 80_000_000),
        ]
        segment = TranscriptSegment.objects.get(call=call, participant_raw_id=acs.CALLER)
        assert segment.confidence == pytest.approx(0.93)
        assert segment.offset_ms == 5000 and segment.duration_ms == 920
        assert [word["text"] for word in segment.words] == ["My", "internet", "is", "down."]
        assert segment.participant.kind == Participant.Kind.PHONE
        audio = MediaStream.objects.get(call=call, kind=MediaStream.Kind.AUDIO)
        assert (audio.subscription_id, audio.sample_rate, audio.frame_length) == (acs.AUDIO_SUBSCRIPTION, 16000, 640)
        assert (audio.audio_frame_count, audio.silent_frame_count, audio.dtmf_count) == (20, 10, 1)
        assert audio.packet_count == 22 and audio.gap_count == 0
        assert audio.disconnected_at is not None
        text = MediaStream.objects.get(call=call, kind=MediaStream.Kind.TRANSCRIPTION)
        assert (text.subscription_id, text.locale) == (acs.TRANSCRIPTION_SUBSCRIPTION, "en-us")
        assert (text.intermediate_count, text.final_count) == (1, 2)
        assert set(Participant.objects.filter(call=call).values_list("raw_id", flat=True)) == {acs.CALLER, acs.AGENT}

    await check()


async def test_it_stores_a_redelivered_final_once(call: Call) -> None:
    first = await open_media_socket(call)
    await stream_frames(first, [acs.transcription_metadata(), acs.transcription_data(acs.CALLER, "Hello there.", 1000)])
    await first.disconnect()
    # ACS reconnects and delivers the same final again, then a new one.
    second = await open_media_socket(call)
    await stream_frames(
        second,
        [
            acs.transcription_metadata(),
            acs.transcription_data(acs.CALLER, "Hello there.", 1000),
            acs.transcription_data(acs.CALLER, "How can I help?", 20_000_000),
        ],
    )
    await second.disconnect()
    assert await database_sync_to_async(stored)(call) == [
        (acs.CALLER, "Hello there.", 1000),
        (acs.CALLER, "How can I help?", 20_000_000),
    ]


async def test_a_new_subscription_with_restarted_offsets_is_not_a_duplicate(call: Call) -> None:
    media = await open_media_socket(call)
    await stream_frames(
        media,
        [
            acs.transcription_metadata("subscription-1"),
            acs.transcription_data(acs.CALLER, "Before the restart.", 1000),
            acs.transcription_metadata("subscription-2"),
            acs.transcription_data(acs.CALLER, "After the restart.", 1000),
        ],
    )
    await media.disconnect()
    assert [text for _, text, _ in await database_sync_to_async(stored)(call)] == [
        "Before the restart.",
        "After the restart.",
    ]


async def test_it_never_stores_intermediate_results(call: Call) -> None:
    media = await open_media_socket(call)
    await stream_frames(
        media,
        [acs.transcription_metadata()]
        + [acs.transcription_data(acs.CALLER, text, 1000, final=False) for text in ("my", "my bill", "my bill is")],
    )
    await media.disconnect()
    assert await database_sync_to_async(stored)(call) == []


async def test_bad_frames_leave_the_socket_open_and_lose_nothing(call: Call) -> None:
    media = await open_media_socket(call)
    await stream_frames(
        media,
        [
            acs.transcription_metadata(),
            acs.transcription_data(acs.CALLER, "First.", 1000),
            "this is not json",
            json.dumps({"kind": "TranscriptionData", "transcriptionData": {"text": 42, "resultStatus": "Final"}}),
            json.dumps({"kind": "SentimentData", "sentimentData": {"sentiment": "positive"}}),
            b"\xff\xfe not utf-8",
            "[" * 100_000,
            "x" * 200_000,
            acs.transcription_data(acs.CALLER, "Second.", 30_000_000).encode(),  # a binary frame
            acs.transcription_data("4:+19995550123", "A participant never seen before.", 60_000_000),
        ],
    )
    assert await media.receive_nothing()  # still open: no close frame
    await media.disconnect()

    @database_sync_to_async
    def check() -> None:
        assert [text for _, text, _ in stored(call)] == ["First.", "Second.", "A participant never seen before."]
        stream = MediaStream.objects.get(call=call)
        assert stream.malformed_packet_count == 5
        assert stream.unknown_packet_count == 1

    await check()


async def test_metadata_the_database_cannot_hold_is_refused_and_the_socket_goes_on(call: Call) -> None:
    media = await open_media_socket(call)
    too_long = {"kind": "TranscriptionMetadata", "transcriptionMetadata": {"subscriptionId": "s" * 250}}
    too_fast = {"kind": "AudioMetadata", "audioMetadata": {"subscriptionId": "a", "sampleRate": 2**40}}
    await stream_frames(
        media,
        [
            json.dumps(too_long),
            json.dumps(too_fast),
            acs.transcription_metadata(),
            acs.transcription_data(acs.CALLER, "Still here.", 5),
        ],
    )
    assert await media.receive_nothing()
    await media.disconnect()

    @database_sync_to_async
    def check() -> None:
        assert [text for _, text, _ in stored(call)] == ["Still here."]
        assert MediaStream.objects.get(call=call).malformed_packet_count == 2

    await check()


async def test_text_with_a_nul_character_is_refused_and_does_not_hold_up_later_finals(call: Call) -> None:
    # PostgreSQL cannot store U+0000 in text or jsonb: let through, the final would be retried forever.
    media = await open_media_socket(call)
    await stream_frames(
        media,
        [
            acs.transcription_metadata(),
            acs.transcription_data(acs.CALLER, "Bad \u0000 text.", 5),
            acs.transcription_data(acs.CALLER, "Good text.", 10_000_000),
        ],
    )
    assert await media.receive_nothing()
    await media.disconnect()

    @database_sync_to_async
    def check() -> None:
        assert [text for _, text, _ in stored(call)] == ["Good text."]
        assert MediaStream.objects.get(call=call).malformed_packet_count == 1

    await check()


async def test_it_detects_gaps_in_audio_from_timestamps(call: Call) -> None:
    media = await open_media_socket(call)
    frames = [acs.audio_metadata()] + [acs.audio_data(acs.CALLER, frame) for frame in (*range(5), *range(60, 65))]
    await stream_frames(media, frames)
    await media.disconnect()

    @database_sync_to_async
    def check() -> None:
        stream = MediaStream.objects.get(call=call)
        assert (stream.gap_count, stream.missing_audio_ms) == (1, 55 * 20)
        assert call.gaps.filter(reason="audio_gap").count() == 1

    await check()


async def test_a_reconnecting_socket_continues_the_same_call_and_records_the_drop(call: Call) -> None:
    first = await open_media_socket(call)
    await stream_frames(first, [acs.audio_metadata(), acs.audio_data(acs.CALLER, 0)])
    await first.disconnect()
    second = await open_media_socket(call)
    await stream_frames(second, [acs.audio_data(acs.CALLER, 1)])  # no metadata resent
    await second.disconnect()

    @database_sync_to_async
    def check() -> None:
        stream = MediaStream.objects.get(call=call)
        assert (stream.connection_count, stream.audio_frame_count) == (2, 2)
        drop, still_open = call.gaps.filter(reason="socket_drop").order_by("started_at")
        assert drop.ended_at is not None  # closed when ACS reconnected
        assert still_open.ended_at is None  # the call is still live and nothing reconnected yet

    await check()


async def test_it_captures_each_participants_audio_to_a_wav_file(call: Call, settings, tmp_path) -> None:
    """With redaction off, every frame is written as it came (with it on, see test_audio_redaction.py)."""
    settings.AUDIO_CAPTURE = True
    settings.AUDIO_CAPTURE_DIR = tmp_path
    settings.REDACTION = "off"
    media = await open_media_socket(call)
    frames = [acs.audio_data(participant, n) for n in range(25) for participant in (acs.CALLER, acs.AGENT)]
    await stream_frames(media, [acs.audio_metadata(), *frames])
    await media.disconnect()

    files = sorted((tmp_path / str(call.id)).iterdir())
    assert [path.name for path in files] == ["4_+14255550100.wav", "8_acs_3d20e1de-0f28-41c5-9a00-000000000001.wav"]
    with wave.open(str(files[0])) as wav:
        assert (wav.getframerate(), wav.getnchannels(), wav.getsampwidth(), wav.getnframes()) == (16000, 1, 2, 25 * 320)
        assert [wav.readframes(320) for _ in range(3)] == [bytes([n, 0]) * 320 for n in range(3)]  # in order


def signed_token(call: Call) -> str:
    return media_path(call.id).split("/")[3]


@pytest.mark.parametrize(
    "make_path",
    [
        lambda call: "/ws/media/not-a-token/",
        lambda call: f"/ws/media/{signed_token(call)}x/",
        lambda call: f"/ws/media/{signing.TimestampSigner(key='not-our-key', salt=MEDIA_SALT).sign(call.id.hex)}/",
        lambda call: f"/ws/media/{signing.TimestampSigner(salt='another-purpose').sign(call.id.hex)}/",
    ],
    ids=["unsigned", "tampered", "forged", "signed-for-another-purpose"],
)
async def test_it_refuses_sockets_without_a_valid_signed_url(call: Call, make_path) -> None:
    communicator = WebsocketCommunicator(application, make_path(call))
    connected, _ = await communicator.connect()
    assert not connected


async def test_it_refuses_an_expired_url(call: Call, settings) -> None:
    path = media_path(call.id)
    settings.MEDIA_TOKEN_MAX_AGE = -1
    connected, _ = await WebsocketCommunicator(application, path).connect()
    assert not connected


async def test_a_url_signed_with_a_rotated_key_stays_valid(call: Call, settings) -> None:
    path = media_path(call.id)
    settings.SECRET_KEY_FALLBACKS = [settings.SECRET_KEY]
    settings.SECRET_KEY = "a-brand-new-secret-key-after-rotation"
    communicator = WebsocketCommunicator(application, path)
    connected, _ = await communicator.connect()
    assert connected
    await communicator.disconnect()


async def test_it_refuses_sockets_for_a_call_that_does_not_exist() -> None:
    communicator = WebsocketCommunicator(application, media_path(uuid.uuid4()))
    connected, _ = await communicator.connect()
    assert not connected


async def test_it_refuses_a_new_socket_for_a_call_that_has_ended(call: Call) -> None:
    """The URL is valid for days and was seen in access logs: after the call it must open nothing."""
    refused_before = _refused("call_ended")
    await Call.objects.filter(pk=call.pk).aupdate(state=Call.State.DISCONNECTED)

    communicator = WebsocketCommunicator(application, media_path(call.id))
    connected, _ = await communicator.connect()

    assert not connected
    assert _refused("call_ended") == refused_before + 1
    assert not await MediaStream.objects.filter(call=call).aexists()


async def test_a_socket_whose_check_waited_past_the_handshake_limit_is_refused_unchecked(
    call: Call, settings: SettingsWrapper
) -> None:
    """In a burst the handshake threads fall behind: a check that reaches its thread after daphne has
    refused the socket is not run, and the refusal is counted."""
    settings.WEBSOCKET_CONNECT_TIMEOUT = 0.2
    refused_before = _refused("too_late")
    with handshake_threads_busy():
        communicator = WebsocketCommunicator(application, media_path(call.id))
        handshake = asyncio.ensure_future(communicator.connect(timeout=5))
        await asyncio.sleep(0.5)
    connected, _ = await handshake

    assert not connected
    assert _refused("too_late") == refused_before + 1
    assert not await MediaStream.objects.filter(call=call).aexists()


async def test_a_socket_open_when_the_call_ends_still_delivers_its_last_finals(call: Call) -> None:
    media = await open_media_socket(call)
    await stream_frames(media, [acs.transcription_metadata()])
    await Call.objects.filter(pk=call.pk).aupdate(state=Call.State.DISCONNECTED)

    await stream_frames(media, [acs.transcription_data(acs.CALLER, "thanks, bye", 10_000_000)])
    await media.disconnect()

    assert await database_sync_to_async(stored)(call) == [(acs.CALLER, "thanks, bye", 10_000_000)]


def _refused(reason: str) -> float:
    return REGISTRY.get_sample_value("callscribe_refused_media_sockets_total", {"reason": reason}) or 0.0


@pytest.mark.parametrize(
    ("authorization", "accepted"),
    [
        (lambda keys: f"Bearer {keys.token()}", True),
        (lambda keys: None, False),
        (lambda keys: keys.token(), False),  # no "Bearer " prefix
        (lambda keys: f"Bearer {keys.token(audience='another-resource')}", False),
        (lambda keys: f"Bearer {keys.token(issuer='https://evil.example')}", False),
        (lambda keys: f"Bearer {keys.token(expires_in=-3600)}", False),
        (lambda keys: f"Bearer {keys.token(signed_by_stranger=True)}", False),
        (lambda keys: f"Bearer {keys.token(kid='unknown-key')}", False),
    ],
    ids=["valid", "missing", "not-bearer", "wrong-audience", "wrong-issuer", "expired", "foreign-key", "unknown-kid"],
)
async def test_with_a_resource_id_set_it_requires_acs_jwt(call: Call, acs_keys, authorization, accepted) -> None:
    header = authorization(acs_keys)
    headers = [(b"authorization", header.encode())] if header else []
    communicator = WebsocketCommunicator(application, media_path(call.id), headers=headers)
    connected, _ = await communicator.connect()
    assert connected is accepted
    if connected:
        await communicator.disconnect()
