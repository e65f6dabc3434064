"""The process's finals writer (streaming/storage.py): many sockets' finals in one store, and one
socket's bad data kept from holding up the others."""

from __future__ import annotations

import asyncio

import pytest
from asgiref.sync import sync_to_async
from django.db import DatabaseError, connection

from calls.models import Call, TranscriptSegment
from calls.services import Outcome
from streaming.storage import finals_writer
from tests.calls.conftest import new_call
from tests.calls.test_final_segments import final

pytestmark = pytest.mark.django_db(transaction=True)

STORED, REFUSED, CALL_DELETED = Outcome.STORED, Outcome.REFUSED, Outcome.CALL_DELETED


def outcomes(results) -> list[Outcome]:
    return [result.outcome for result in results]


async def test_finals_from_many_sockets_are_stored_together_and_all_land() -> None:
    calls = [await sync_to_async(new_call)() for _ in range(5)]

    results = await asyncio.gather(
        *(
            finals_writer.store([final(call, f"{n} from {index}", n) for n in range(1, 4)])
            for index, call in enumerate(calls)
        )
    )

    assert [outcomes(request) for request in results] == [[STORED] * 3] * 5
    assert await TranscriptSegment.objects.acount() == 15


async def test_one_sockets_bad_final_does_not_hold_up_the_others() -> None:
    good_call, bad_call = await sync_to_async(new_call)(), await sync_to_async(new_call)()
    bad = [final(bad_call, "fine", 1), final(bad_call, "a NUL \x00 the database refuses", 2), final(bad_call, "x", 3)]

    bad_results, good_results = await asyncio.gather(
        finals_writer.store(bad), finals_writer.store([final(good_call, "Hello.", 1)])
    )

    assert outcomes(good_results) == [STORED]
    assert outcomes(bad_results) == [STORED, REFUSED, STORED]  # refused for good: retrying would never end
    texts = [segment.text async for segment in TranscriptSegment.objects.order_by("call_id", "sequence")]
    assert sorted(texts) == ["Hello.", "fine", "x"]


async def test_a_deleted_call_and_bad_data_in_one_batch_hold_up_no_other_socket() -> None:
    """Issue #13: a deleted call's finals, stored one by one after another socket's bad final broke the
    batch, used to fail the whole batch with Call.DoesNotExist, and every socket in it lost its writer."""
    good_call, bad_call, deleted_call = [await sync_to_async(new_call)() for _ in range(3)]
    await Call.objects.filter(pk=deleted_call.pk).adelete()
    garbled = final(bad_call, "A word PostgreSQL's JSON cannot hold.", 2, words=[{"text": "\ud800", "offset": 2}])

    good, deleted, bad = await asyncio.gather(
        finals_writer.store([final(good_call, "Hello.", 1), final(good_call, "Still here.", 2)]),
        finals_writer.store([final(deleted_call, "Nobody hears this.", 1)]),
        finals_writer.store([final(bad_call, "Fine.", 1), garbled]),
    )

    assert (outcomes(good), outcomes(deleted), outcomes(bad)) == ([STORED, STORED], [CALL_DELETED], [STORED, REFUSED])
    texts = [segment.text async for segment in TranscriptSegment.objects.order_by("call_id", "sequence")]
    assert sorted(texts) == ["Fine.", "Hello.", "Still here."]


async def test_an_unexpected_error_with_one_sockets_finals_fails_only_that_socket() -> None:
    good_call, bad_call = await sync_to_async(new_call)(), await sync_to_async(new_call)()
    unserialisable = final(bad_call, "Words that are not JSON.", 1, words=[{"text": {"a set"}}])

    good, bad = await asyncio.gather(
        finals_writer.store([final(good_call, "Hello.", 1)]),
        finals_writer.store([unserialisable]),
        return_exceptions=True,
    )

    assert outcomes(good) == [STORED]
    assert isinstance(bad, TypeError)  # that socket keeps its final and retries (streaming/finals_queue.py)
    assert [segment.text async for segment in TranscriptSegment.objects.all()] == ["Hello."]


async def test_the_writer_keeps_its_connection_between_stores_and_takes_a_new_one_after_an_error() -> None:
    call = await sync_to_async(new_call)()
    await finals_writer.store([final(call, "One.", 1)])
    first_backend = await finals_writer_backend()
    await finals_writer.store([final(call, "Two.", 2)])
    assert await finals_writer_backend() == first_backend  # no reconnect, no health check per store

    await sync_to_async(terminate_backend)(first_backend)  # PostgreSQL restarted, a proxy dropped it
    with pytest.raises(DatabaseError):
        await finals_writer.store([final(call, "Three.", 3)])  # the socket keeps it and retries
    results = await finals_writer.store([final(call, "Three.", 3), final(call, "Four.", 4)])

    assert outcomes(results) == [STORED, STORED]
    assert await finals_writer_backend() != first_backend
    texts = [segment.text async for segment in TranscriptSegment.objects.filter(call=call).order_by("sequence")]
    assert texts == ["One.", "Two.", "Three.", "Four."]


def _on_writer_thread(function):
    return sync_to_async(function, thread_sensitive=False, executor=finals_writer._executor)


async def finals_writer_backend() -> int:
    def backend() -> int:
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_backend_pid()")
            return cursor.fetchone()[0]

    return await _on_writer_thread(backend)()


def terminate_backend(pid: int) -> None:
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_terminate_backend(%s)", [pid])
