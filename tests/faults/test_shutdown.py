"""SIGTERM mid-stream: daphne's sessions store and flush what they have, then close with 4001 (going away)."""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path

import websockets

from tests.faults.conftest import PrivatePostgres, new_call, stored_texts, wait_until
from tests.servers import run_app_server
from tests.streaming import acs_packets as acs


async def test_sigterm_mid_call_loses_nothing_the_server_had_received(
    private_postgres: PrivatePostgres, tmp_path: Path
) -> None:
    call_id, path = new_call(private_postgres)
    settings = {
        "DATABASE_URL": private_postgres.url,
        "RECOVERY_WORKER": "False",
        "FINALS_JOURNAL_DIR": str(tmp_path / "journal"),
        "STREAM_STATS_INTERVAL": "3600",  # counters live only in memory until the socket closes
        "MEDIA_MAX_AUDIO_FRAMES_PER_SECOND": "100000",  # the frames below arrive in one burst: keep them all
    }
    with run_app_server(**settings) as server:
        media = await websockets.connect(server.ws_base_url + path)
        await media.send(acs.audio_metadata())
        await media.send(acs.transcription_metadata())
        for frame in range(500):
            await media.send(acs.audio_data(acs.CALLER, frame))
        await media.send(acs.transcription_data(acs.CALLER, "Received before the signal.", 10_000_000))
        # The final is stored only after every frame before it on this socket was handled.
        assert await asyncio.to_thread(
            wait_until, lambda: stored_texts(private_postgres, call_id) == ["Received before the signal."]
        )

        server.process.send_signal(signal.SIGTERM)
        await asyncio.wait_for(media.wait_closed(), timeout=30)
        assert media.close_code == 4001  # going away: ACS reconnects, through the balancer, elsewhere
        assert await asyncio.to_thread(server.process.wait, 30) == 0

    (frames, closed) = private_postgres.query(
        "SELECT audio_frame_count, disconnected_at IS NOT NULL FROM calls_mediastream"
        " WHERE call_id = %s AND kind = 'audio'",
        call_id,
    )[0]
    assert (frames, closed) == (500, True)
