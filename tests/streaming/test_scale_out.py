"""Two real daphne processes sharing live events through the real Redis channel layer."""

from __future__ import annotations

import asyncio
import json
import os
import uuid

import pytest
import websockets
from channels.db import database_sync_to_async
from django.contrib.auth.models import User

from calls.models import Call, TranscriptSegment
from tests.conftest import media_path, session_cookie
from tests.servers import run_app_server
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


async def test_media_on_one_process_reaches_viewers_on_another_across_a_reconnect(call: Call, staff_user: User) -> None:
    redis = {"REDIS_URL": os.environ["TEST_REDIS_URL"], "CHANNEL_LAYER_PREFIX": f"test-{uuid.uuid4().hex[:8]}"}
    cookie = await database_sync_to_async(session_cookie)(staff_user)
    with run_app_server(**redis) as first, run_app_server(**redis) as second:
        viewer_headers = {"Origin": second.base_url, "Cookie": cookie}
        async with websockets.connect(
            f"{second.ws_base_url}/ws/calls/{call.id}/", additional_headers=viewer_headers
        ) as viewer:
            assert json.loads(await viewer.recv())["type"] == "snapshot"

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
