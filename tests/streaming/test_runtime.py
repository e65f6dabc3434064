"""The process-wide runtime (streaming/runtime.py) starts with the application's first connection, under
the tests' communicators exactly as under daphne: before, only a daphne process started it."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from channels.db import database_sync_to_async
from channels.testing import HttpCommunicator

from calls.models import Call, TranscriptSegment
from config.asgi import application
from streaming import journal
from tests.calls.test_final_segments import final

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
