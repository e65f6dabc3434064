"""A call deleted (in the admin, say) while ACS still streams it: its finals are dropped and counted,
and no other call's socket loses anything (issues #13 and #15)."""

from __future__ import annotations

import asyncio

import psycopg
import pytest
from channels.db import database_sync_to_async
from django.contrib.auth.models import User
from django.db import connection
from prometheus_client import REGISTRY

from calls.models import Call, MediaStream, TranscriptSegment
from tests.calls.conftest import new_call
from tests.streaming import acs_packets as acs
from tests.streaming.test_live_feed import receive_until, watch
from tests.streaming.test_media_consumer import open_media_socket

pytestmark = pytest.mark.django_db(transaction=True)


def dropped_for_deleted_calls() -> float:
    return REGISTRY.get_sample_value("callscribe_finals_dropped_total", {"reason": "call_deleted"}) or 0.0


@database_sync_to_async
def texts(call: Call) -> list[str]:
    return list(TranscriptSegment.objects.filter(call=call).order_by("sequence").values_list("text", flat=True))


async def wait_for_texts(call: Call, count: int) -> list[str]:
    for _ in range(100):
        stored = await texts(call)
        if len(stored) >= count:
            return stored
        await asyncio.sleep(0.05)
    return await texts(call)


async def test_a_call_deleted_mid_stream_loses_no_other_calls_finals(staff_user: User) -> None:
    watched, other, doomed = [await database_sync_to_async(new_call)() for _ in range(3)]
    viewer = await watch(f"/ws/calls/{watched.id}/", staff_user)
    await receive_until(viewer, "snapshot")
    sockets = {call.id: await open_media_socket(call) for call in (watched, other, doomed)}
    for media in sockets.values():
        await media.send_to(text_data=acs.transcription_metadata())
        await media.send_to(text_data=acs.transcription_data(acs.CALLER, "Before.", 1))
    for call in (watched, other, doomed):
        assert await wait_for_texts(call, 1) == ["Before."]
    assert (await receive_until(viewer, "segment"))["segment"]["text"] == "Before."
    dropped_before = dropped_for_deleted_calls()

    await database_sync_to_async(Call.objects.filter(pk=doomed.id).delete)()
    # Every socket goes on at once, so the deleted call's finals share the writer's batches with the others'.
    for n in range(2, 6):
        for media in sockets.values():
            await media.send_to(text_data=acs.transcription_data(acs.CALLER, f"Line {n}.", n * 10_000_000))
    await sockets[doomed.id].send_to(text_data=acs.transcription_metadata("a-new-subscription"))
    await sockets[doomed.id].send_to(text_data=acs.transcription_data(acs.AGENT, "Still talking.", 90_000_000))

    expected = ["Before.", "Line 2.", "Line 3.", "Line 4.", "Line 5."]
    assert await wait_for_texts(watched, 5) == expected
    assert await wait_for_texts(other, 5) == expected
    assert [(await receive_until(viewer, "segment"))["segment"]["text"] for _ in range(4)] == expected[1:]
    assert await sockets[doomed.id].receive_nothing()  # neither crashed nor closed
    for media in sockets.values():
        await media.disconnect()  # raises if the application failed
    assert dropped_for_deleted_calls() - dropped_before == 5  # Line 2-5 and "Still talking."
    assert not await Call.objects.filter(pk=doomed.id).aexists()
    await viewer.disconnect()


async def test_a_deleted_calls_finals_next_to_a_bad_final_stop_no_other_socket() -> None:
    """Issue #13's failure: a bad final (a word PostgreSQL's JSON cannot hold) breaks the writer's
    batch, so it is stored one by one; the deleted call's finals then raised Call.DoesNotExist for the
    whole batch, and every socket in it lost its writer: nothing they sent later was stored."""
    blocker, kept, garbled, doomed = [await database_sync_to_async(new_call)() for _ in range(4)]
    sockets = {call.id: await open_media_socket(call) for call in (blocker, kept, garbled, doomed)}
    for media in sockets.values():
        await media.send_to(text_data=acs.transcription_metadata())
    for call in (blocker, kept, garbled, doomed):
        await wait_until(lambda call=call: MediaStream.objects.filter(call=call).exists())
    await database_sync_to_async(Call.objects.filter(pk=doomed.id).delete)()
    bad_word = acs.transcription_data(acs.CALLER, "A bad word.", 1).replace('"text": "A"', '"text": "\\ud800"', 1)

    # While the writer waits for a lock on the blocker's call, the other three sockets' finals queue up
    # and then go to the database together, in one batch.
    async with await psycopg.AsyncConnection.connect(**connection_settings()) as lock:
        await lock.execute("SELECT 1 FROM calls_call WHERE id = %s FOR NO KEY UPDATE", [blocker.id])
        await sockets[blocker.id].send_to(text_data=acs.transcription_data(acs.CALLER, "Line 1.", 1))
        await wait_until(writer_waits_for_a_lock)
        await sockets[garbled.id].send_to(text_data=bad_word)
        for n in range(1, 4):
            for call, media in sockets.items():
                if call != blocker.id:
                    await media.send_to(text_data=acs.transcription_data(acs.CALLER, f"Line {n}.", n * 10_000_000))
        await asyncio.sleep(0.2)
    for n in range(4, 6):  # and later ones still get stored
        for media in sockets.values():
            await media.send_to(text_data=acs.transcription_data(acs.CALLER, f"Line {n}.", n * 10_000_000))

    lines = [f"Line {n}." for n in range(1, 6)]
    assert await wait_for_texts(kept, 5) == lines
    assert await wait_for_texts(garbled, 5) == lines  # its bad final refused (logged, counted), not retried forever
    assert await wait_for_texts(blocker, 3) == ["Line 1.", "Line 4.", "Line 5."]
    for media in sockets.values():
        await media.disconnect()


def connection_settings() -> dict[str, object]:
    settings = connection.settings_dict
    return {
        "dbname": settings["NAME"],
        "user": settings["USER"],
        "host": settings["HOST"],
        "port": settings["PORT"] or 5432,
        "autocommit": False,
    }


def writer_waits_for_a_lock() -> bool:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'"
            " AND query LIKE %s",
            ["%INSERT INTO calls_transcriptsegment%"],
        )
        return cursor.fetchone()[0] > 0


async def wait_until(condition) -> None:
    for _ in range(100):
        if await database_sync_to_async(condition)():
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"{condition.__name__} never came true")
