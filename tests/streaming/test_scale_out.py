"""Two real daphne processes sharing live events through the real Redis channel layer."""

from __future__ import annotations

import asyncio
import json
import os
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest
import websockets
from channels.db import database_sync_to_async
from django.contrib.auth.models import User

from calls.models import Call, TranscriptSegment
from tests.conftest import media_path, session_cookie
from tests.servers import AppServer, run_app_server
from tests.streaming import acs_packets as acs

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(not os.environ.get("TEST_REDIS_URL"), reason="TEST_REDIS_URL is not set (bin/test sets it)"),
]


async def next_of_type(viewer: websockets.ClientConnection, event_type: str) -> dict:
    while True:
        event = json.loads(await asyncio.wait_for(viewer.recv(), timeout=10))
        if event["type"] == event_type:
            return event


@asynccontextmanager
async def two_processes_and_a_viewer(
    call: Call, staff_user: User
) -> AsyncIterator[tuple[AppServer, AppServer, websockets.ClientConnection]]:
    """Two daphne processes sharing one Redis channel layer, and a staff viewer of the call on the second."""
    redis = {"REDIS_URL": os.environ["TEST_REDIS_URL"], "CHANNEL_LAYER_PREFIX": f"test-{uuid.uuid4().hex[:8]}"}
    cookie = await database_sync_to_async(session_cookie)(staff_user)
    with run_app_server(**redis) as first, run_app_server(**redis) as second:
        viewer_headers = {"Origin": second.base_url, "Cookie": cookie}
        async with websockets.connect(
            f"{second.ws_base_url}/ws/calls/{call.id}/", additional_headers=viewer_headers
        ) as viewer:
            assert json.loads(await viewer.recv())["type"] == "snapshot"
            yield first, second, viewer


async def test_media_on_one_process_reaches_viewers_on_another_across_a_reconnect(call: Call, staff_user: User) -> None:
    async with two_processes_and_a_viewer(call, staff_user) as (first, second, viewer):
        async with websockets.connect(first.ws_base_url + media_path(call.id)) as media:
            await media.send(acs.transcription_metadata())
            await media.send(acs.transcription_data(acs.CALLER, "one", 1000, final=False))
            await media.send(acs.transcription_data(acs.CALLER, "One.", 1000))
            assert (await next_of_type(viewer, "partial"))["text"] == "one"
            assert (await next_of_type(viewer, "segment"))["segment"]["text"] == "One."

        # ACS reconnects, this time to the other process, and redelivers the last final.
        async with websockets.connect(second.ws_base_url + media_path(call.id)) as media:
            await media.send(acs.transcription_metadata())
            await media.send(acs.transcription_data(acs.CALLER, "One.", 1000))
            await media.send(acs.transcription_data(acs.AGENT, "Two.", 20_000_000))
            two = await next_of_type(viewer, "segment")
            assert two["segment"]["text"] == "Two."

    texts = await database_sync_to_async(
        lambda: list(TranscriptSegment.objects.filter(call=call).order_by("sequence").values_list("text", flat=True))
    )()
    assert texts == ["One.", "Two."]


async def segments_until(viewer: websockets.ClientConnection, *texts: str) -> list[tuple[int, str]]:
    """(sequence, text) of every segment a viewer was sent, live or in a resync, until it has seen all of `texts`."""
    seen: list[tuple[int, str]] = []
    while not set(texts) <= {text for _, text in seen}:
        message = json.loads(await asyncio.wait_for(viewer.recv(), timeout=10))
        if message["type"] == "segment":
            seen.append((message["segment"]["sequence"], message["segment"]["text"]))
        elif message["type"] in ("resume", "snapshot"):
            seen.extend((segment["sequence"], segment["text"]) for segment in message["segments"])
    return seen


async def test_audio_and_finals_survive_a_reconnect_to_the_other_process_exactly_once(
    call: Call, staff_user: User
) -> None:
    async with two_processes_and_a_viewer(call, staff_user) as (first, second, viewer):
        async with websockets.connect(first.ws_base_url + media_path(call.id)) as media:
            await media.send(acs.audio_metadata())
            await media.send(acs.transcription_metadata())
            for frame in range(50):
                await media.send(acs.audio_data(acs.CALLER, frame))
            await media.send(acs.transcription_data(acs.CALLER, "First.", 1000))
            await media.send(acs.transcription_data(acs.AGENT, "Second.", 20_000_000))
        # ACS reconnects to the other process, resends metadata, and redelivers the last final.
        async with websockets.connect(second.ws_base_url + media_path(call.id)) as media:
            await media.send(acs.audio_metadata())
            await media.send(acs.transcription_metadata())
            for frame in range(50, 100):
                await media.send(acs.audio_data(acs.CALLER, frame))
            await media.send(acs.transcription_data(acs.AGENT, "Second.", 20_000_000))
            await media.send(acs.transcription_data(acs.CALLER, "Third.", 40_000_000))
            seen = await segments_until(viewer, "First.", "Second.", "Third.")
        # The first process may store its last finals after the second stored newer ones: the
        # order of sequence numbers is the order of storing. Each is sent once all the same.
        assert sorted(text for _, text in seen) == ["First.", "Second.", "Third."]

    @database_sync_to_async
    def stored() -> tuple[list[str], int, int]:
        from calls.models import MediaStream

        audio = MediaStream.objects.get(call=call, kind=MediaStream.Kind.AUDIO)
        texts = sorted(TranscriptSegment.objects.filter(call=call).values_list("text", flat=True))
        return texts, audio.audio_frame_count, audio.connection_count

    assert await stored() == (["First.", "Second.", "Third."], 100, 2)
