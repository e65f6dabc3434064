"""The process-wide runtime (streaming/runtime.py) starts with the application's first connection, under
the tests' communicators exactly as under daphne: before, only a daphne process started it. And a
SIGTERM stops a process cleanly while staff watch."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import uuid
from pathlib import Path

import pytest
import websockets
from channels.db import database_sync_to_async
from channels.testing import HttpCommunicator
from django.contrib.auth.models import User

from calls.models import Call, TranscriptSegment
from config.asgi import application
from streaming import journal
from tests.calls.test_final_segments import final
from tests.conftest import session_cookie
from tests.servers import run_app_server

# Per page. The error the shutdown test looks for came from a race between cancellations that hit a few
# viewers in a hundred; with 20 + 20 it showed in every run before the fix.
VIEWERS_AT_SHUTDOWN = 20

pytestmark = pytest.mark.django_db(transaction=True)


async def test_the_first_request_stores_finals_an_earlier_run_left_in_the_journal(
    call: Call, settings, tmp_path: Path
) -> None:
    settings.FINALS_JOURNAL_DIR = tmp_path
    journal.append([journal.entry_for(final(call, "Kept through a restart.", 1))], tmp_path)

    response = await HttpCommunicator(application, "GET", "/healthz", headers=[(b"host", b"127.0.0.1")]).get_response()
    assert response["status"] == 200

    def stored() -> list[str]:
        return list(TranscriptSegment.objects.filter(call=call).values_list("text", flat=True))

    for _ in range(100):
        if await database_sync_to_async(stored)():
            break
        await asyncio.sleep(0.1)
    assert await database_sync_to_async(stored)() == ["Kept through a restart."]
    assert journal.pending_files(tmp_path) == []


@pytest.mark.skipif(not os.environ.get("TEST_REDIS_URL"), reason="TEST_REDIS_URL is not set (bin/test sets it)")
async def test_stopping_with_staff_watching_logs_no_error(call: Call, staff_user: User) -> None:
    """A deploy stops a process while staff watch calls: nothing of that is an error to page anyone about."""
    redis = {"REDIS_URL": os.environ["TEST_REDIS_URL"], "CHANNEL_LAYER_PREFIX": f"test-{uuid.uuid4().hex[:8]}"}
    cookie = await database_sync_to_async(session_cookie)(staff_user)
    with run_app_server(LOG_LEVEL="WARNING", **redis) as server:
        headers = {"Origin": server.base_url, "Cookie": cookie}
        viewers = [
            await websockets.connect(f"{server.ws_base_url}/ws/calls/{call.id}/", additional_headers=headers)
            for _ in range(VIEWERS_AT_SHUTDOWN)
        ]
        viewers += [
            await websockets.connect(f"{server.ws_base_url}/ws/calls/", additional_headers=headers)
            for _ in range(VIEWERS_AT_SHUTDOWN)
        ]
        for viewer in viewers:  # each page's first message: the call's snapshot, the list's calls
            assert json.loads(await asyncio.wait_for(viewer.recv(), timeout=10))["type"] in ("snapshot", "calls")
        server.process.send_signal(signal.SIGTERM)
        assert await asyncio.to_thread(server.process.wait, 30) == 0
        log = server.log()
        for viewer in viewers:
            await viewer.close()
    assert "Shutting down" in log
    assert " ERROR " not in log and "Traceback" not in log, log
