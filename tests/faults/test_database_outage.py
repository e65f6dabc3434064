"""PostgreSQL goes away mid-call: finals are kept (memory, then the local journal) and stored once."""

from __future__ import annotations

import asyncio
import urllib.request
from pathlib import Path

import websockets

from tests.faults.conftest import PrivatePostgres, new_call, stored_texts, wait_until
from tests.servers import run_app_server
from tests.streaming import acs_packets as acs


def server_settings(database: PrivatePostgres, journal: Path) -> dict[str, str]:
    return {
        "DATABASE_URL": database.url,
        "RECOVERY_WORKER": "False",
        "FINALS_JOURNAL_DIR": str(journal),
        "MAX_BUFFERED_FINALS": "3",
        "STREAM_STATS_INTERVAL": "0.5",
        # While PostgreSQL is down a store waits this long for a pooled connection before it fails and
        # the socket retries (journaling past MAX_BUFFERED_FINALS): shorter than the outages below.
        "DATABASE_POOL_TIMEOUT": "0.5",
    }


def final(text: str, offset: int) -> str:
    return acs.transcription_data(acs.CALLER, text, offset * 10_000_000)


def transcription_packets(database: PrivatePostgres, call_id: object) -> int:
    rows = database.query(
        "SELECT packet_count FROM calls_mediastream WHERE call_id = %s AND kind = 'transcription'", call_id
    )
    return rows[0][0] if rows else 0


async def eventually(condition, timeout: float = 30.0) -> bool:
    return await asyncio.to_thread(wait_until, condition, timeout)


async def test_finals_sent_while_postgres_restarts_are_stored_once_and_the_socket_stays_open(
    private_postgres: PrivatePostgres, tmp_path: Path
) -> None:
    call_id, path = new_call(private_postgres)
    during = [f"Said while the database was down, number {n}." for n in range(6)]
    with run_app_server(**server_settings(private_postgres, tmp_path / "journal")) as server:
        async with websockets.connect(server.ws_base_url + path) as media:
            await media.send(acs.transcription_metadata())
            await media.send(final("Before the outage.", 1))
            assert await eventually(lambda: stored_texts(private_postgres, call_id) == ["Before the outage."])

            private_postgres.stop()
            for n, text in enumerate(during):
                await media.send(final(text, 10 + n))
            await asyncio.sleep(2)  # the server tries, fails, and journals past MAX_BUFFERED_FINALS
            private_postgres.start()
            await media.send(final("After the outage.", 30))

            expected = ["Before the outage.", *during, "After the outage."]
            assert await eventually(lambda: sorted(stored_texts(private_postgres, call_id)) == sorted(expected))
            # The counters that could not be written meanwhile are, without waiting for the socket to close.
            assert await eventually(lambda: transcription_packets(private_postgres, call_id) == 1 + len(expected))
            await asyncio.wait_for(await media.ping(), 10)  # the socket is still open
        assert "journaled until the database is back" in server.log()
    assert len(stored_texts(private_postgres, call_id)) == len(expected)  # once each
    assert list((tmp_path / "journal").glob("*")) == []


async def test_finals_journaled_when_a_socket_closes_during_an_outage_are_stored_by_the_next_process(
    private_postgres: PrivatePostgres, tmp_path: Path
) -> None:
    call_id, path = new_call(private_postgres)
    journal = tmp_path / "journal"
    with run_app_server(**server_settings(private_postgres, journal)) as first:
        async with websockets.connect(first.ws_base_url + path) as media:
            await media.send(acs.transcription_metadata())
            await media.send(final("Stored at once.", 1))
            assert await eventually(lambda: stored_texts(private_postgres, call_id) == ["Stored at once."])
            private_postgres.stop()
            await media.send(final("Kept in the journal.", 2))
            await media.send(final("Also kept in the journal.", 3))
        assert await eventually(lambda: any(journal.glob("*.jsonl")))
    private_postgres.start()

    with run_app_server(**server_settings(private_postgres, journal)) as second:
        # A load balancer's first readiness probe starts the replay; so would the first media socket.
        urllib.request.urlopen(f"{second.base_url}/readyz", timeout=10).read()
        expected = ["Stored at once.", "Kept in the journal.", "Also kept in the journal."]
        assert await eventually(lambda: stored_texts(private_postgres, call_id) == expected)
    assert list(journal.glob("*")) == []
