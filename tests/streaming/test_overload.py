"""Overload protection on the media socket: oversized, excess and flooding frames are refused cheaply,
always counted, and transcription is never shed."""

from __future__ import annotations

import asyncio
import urllib.request
import uuid

import pytest
import websockets
from channels.db import database_sync_to_async
from channels.testing import WebsocketCommunicator
from django.test import override_settings
from prometheus_client import REGISTRY

from calls.models import Call, MediaStream, TranscriptSegment
from config.asgi import application
from streaming.admission import Admission, FrameGate
from tests.conftest import media_path
from tests.servers import free_port, run_app_server
from tests.streaming import acs_packets as acs

pytestmark = pytest.mark.django_db(transaction=True)


def metric(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def shed_frames() -> float:
    return sum(metric("callscribe_shed_audio_frames_total", reason=reason) for reason in ("rate", "overload"))


@override_settings(MEDIA_MAX_AUDIO_FRAMES_PER_SECOND=20)
async def test_audio_beyond_the_rate_cap_is_shed_and_counted_but_transcription_is_never_shed(call: Call) -> None:
    shed_before = shed_frames()
    media = WebsocketCommunicator(application, media_path(call.id))
    assert (await media.connect())[0]
    frames = [acs.audio_metadata()]
    for frame in range(100):
        frames.append(acs.audio_data(acs.CALLER, frame))
        if frame % 25 == 0:
            frames.append(acs.transcription_data(acs.CALLER, f"Said at frame {frame}.", frame * 200_000))
    for frame in frames:  # all within one second: far beyond 20 frames a second
        await media.send_to(text_data=frame)
    await media.disconnect()

    counted = await database_sync_to_async(
        lambda: MediaStream.objects.get(call=call, kind=MediaStream.Kind.AUDIO).audio_frame_count
    )()
    shed = shed_frames() - shed_before
    assert counted < 100 and counted + shed == 100  # nothing lost silently
    texts = await database_sync_to_async(
        lambda: list(TranscriptSegment.objects.filter(call=call).values_list("text", flat=True))
    )()
    assert sorted(texts) == sorted(f"Said at frame {frame}." for frame in (0, 25, 50, 75))


@override_settings(MEDIA_FLOOD_FRAMES_PER_SECOND=50, MEDIA_MAX_AUDIO_FRAMES_PER_SECOND=20)
async def test_a_socket_that_floods_is_closed_with_a_policy_violation(call: Call) -> None:
    closed_before = metric("callscribe_media_sockets_closed_total", reason="flood")
    media = WebsocketCommunicator(application, media_path(call.id))
    assert (await media.connect())[0]
    frame = acs.audio_data(acs.CALLER, 1)
    for _ in range(12):  # 100 frames every 0.25 s: 400 a second, for three seconds
        for _ in range(100):
            await media.send_to(text_data=frame)
        await asyncio.sleep(0.25)
    closed = await media.receive_output(timeout=5)
    assert (closed["type"], closed["code"]) == ("websocket.close", 4008)
    assert metric("callscribe_media_sockets_closed_total", reason="flood") - closed_before == 1
    await media.wait()


async def test_oversized_frames_are_refused_and_counted(call: Call) -> None:
    before = metric("callscribe_oversized_frames_total")
    media = WebsocketCommunicator(application, media_path(call.id))
    assert (await media.connect())[0]
    await media.send_to(text_data=acs.transcription_metadata())
    await media.send_to(text_data="x" * 200_000)
    await media.send_to(text_data=acs.transcription_data(acs.CALLER, "Still here.", 1000))
    assert await media.receive_nothing()  # the socket stays open
    await media.disconnect()
    assert metric("callscribe_oversized_frames_total") - before == 1
    assert await database_sync_to_async(lambda: TranscriptSegment.objects.filter(call=call).count())() == 1


async def test_unauthenticated_sockets_are_refused_without_touching_the_database() -> None:
    # The server's database does not exist: a refusal that needed a query would fail differently.
    nowhere = f"postgres://postgres@127.0.0.1:{free_port()}/nowhere"
    with run_app_server(DATABASE_URL=nowhere, RECOVERY_WORKER="False") as server:
        for attempt in range(200):
            with pytest.raises(websockets.InvalidStatus) as refused:
                async with websockets.connect(f"{server.ws_base_url}/ws/media/forged-token-{attempt}/"):
                    pass
            assert refused.value.response.status_code == 403
        health = urllib.request.urlopen(f"{server.base_url}/healthz", timeout=10).read()
        assert health == b"ok\n"
        assert "Traceback" not in server.log()


def test_admission_says_what_to_do_with_a_frame_as_an_enum(settings) -> None:
    settings.MAX_MEDIA_MESSAGE_BYTES = 100
    gate = FrameGate(uuid.uuid4())
    assert gate.admit(acs.transcription_metadata()[:100]) is Admission.ACCEPT
    assert gate.admit("x" * 101) is Admission.DROP
