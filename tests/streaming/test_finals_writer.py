"""The process's finals writer (streaming/storage.py): many sockets' finals in one store, and one
socket's bad data kept from holding up the others."""

from __future__ import annotations

import asyncio
import time

import pytest
from asgiref.sync import sync_to_async
from django.db import connection

from calls.models import TranscriptSegment
from streaming.storage import finals_writer
from tests.calls.conftest import new_call
from tests.calls.test_final_segments import final

pytestmark = pytest.mark.django_db(transaction=True)


async def test_finals_from_many_sockets_are_stored_together_and_all_land() -> None:
    calls = [await sync_to_async(new_call)() for _ in range(5)]

    outcomes = await asyncio.gather(
        *(
            finals_writer.store([final(call, f"{n} from {index}", n) for n in range(1, 4)])
            for index, call in enumerate(calls)
        )
    )

    assert outcomes == [(3, None)] * 5
    assert await TranscriptSegment.objects.acount() == 15


async def test_one_sockets_bad_final_does_not_hold_up_the_others() -> None:
    good_call, bad_call = await sync_to_async(new_call)(), await sync_to_async(new_call)()
    bad = [final(bad_call, "fine", 1), final(bad_call, "a NUL \x00 the database refuses", 2), final(bad_call, "x", 3)]

    (stored_bad, error), good_outcome = await asyncio.gather(
        finals_writer.store(bad), finals_writer.store([final(good_call, "Hello.", 1)])
    )

    assert good_outcome == (1, None)
    assert stored_bad == 1 and error is not None  # stored up to the bad one; the socket retries the rest
    texts = [segment.text async for segment in TranscriptSegment.objects.order_by("call_id", "sequence")]
    assert sorted(texts) == ["Hello.", "fine"]


async def test_the_writer_reconnects_once_its_connection_is_older_than_conn_max_age() -> None:
    call = await sync_to_async(new_call)()
    await finals_writer.store([final(call, "One.", 1)])
    first_backend = await finals_writer_backend()

    await finals_writer_connection_expires()
    await finals_writer.store([final(call, "Two.", 2)])

    assert await finals_writer_backend() != first_backend
    assert await TranscriptSegment.objects.filter(call=call).acount() == 2


def _on_writer_thread(function):
    return sync_to_async(function, thread_sensitive=False, executor=finals_writer._executor)


async def finals_writer_backend() -> int:
    def backend() -> int:
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_backend_pid()")
            return cursor.fetchone()[0]

    return await _on_writer_thread(backend)()


async def finals_writer_connection_expires() -> None:
    def expire() -> None:
        connection.close_at = time.monotonic() - 1  # as CONN_MAX_AGE makes it, once that age has passed

    await _on_writer_thread(expire)()
