"""Storing several final segments at once: what the media sockets' shared writer relies on."""

from __future__ import annotations

from typing import Any

import pytest
from django.db import connection
from django.utils import timezone

from calls import live_events, services
from calls.models import Call, Participant, TranscriptSegment
from tests.calls.conftest import new_call
from tests.streaming import acs_packets as acs

pytestmark = pytest.mark.django_db


def final(call: Call, text: str, offset: int, participant: str = acs.CALLER, **fields: Any) -> services.Final:
    return services.Final(
        **{
            "call_id": call.id,
            "stream_id": None,
            "subscription_id": acs.TRANSCRIPTION_SUBSCRIPTION,
            "participant_raw_id": participant,
            "text": text,
            "confidence": 0.9,
            "offset_ticks": offset,
            "duration_ticks": 5,
            "words": [{"text": text, "offset": offset, "duration": 5}],
            "received_at": timezone.now(),
            **fields,
        }
    )


def segments(finals: list[services.Final]) -> list[TranscriptSegment | None]:
    return [result.segment for result in services.store_finals(finals)]


def transcript(call: Call) -> list[tuple[int, str, str]]:
    return list(
        TranscriptSegment.objects.filter(call=call)
        .order_by("sequence")
        .values_list("sequence", "text", "participant__raw_id")
    )


def test_finals_of_several_calls_are_numbered_per_call_in_arrival_order() -> None:
    first, second = new_call(), new_call()
    first_start, second_start = first.last_sequence, second.last_sequence

    stored = segments(
        [
            final(first, "A one", 1),
            final(second, "B one", 1),
            final(first, "A two", 2, participant=acs.AGENT),
            final(second, "B two", 2),
            final(first, "A three", 3),
        ]
    )

    assert all(segment is not None for segment in stored)
    assert transcript(first) == [
        (first_start + 1, "A one", acs.CALLER),
        (first_start + 2, "A two", acs.AGENT),
        (first_start + 3, "A three", acs.CALLER),
    ]
    assert transcript(second) == [(second_start + 1, "B one", acs.CALLER), (second_start + 2, "B two", acs.CALLER)]
    first.refresh_from_db()
    assert first.last_sequence == first_start + 3
    assert Participant.objects.filter(call=first).count() == 2


def finals_statement_runs() -> int:
    """How often this connection ran the prepared finals insert (PostgreSQL counts a prepared statement's
    runs by the kind of plan each used)."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT coalesce(sum(generic_plans + custom_plans), 0) FROM pg_prepared_statements WHERE statement LIKE %s",
            ["%INSERT INTO calls_transcriptsegment%"],
        )
        return cursor.fetchone()[0]


def test_many_finals_are_stored_by_one_run_of_one_prepared_statement(django_assert_max_num_queries) -> None:
    calls = [new_call() for _ in range(4)]
    services.store_finals([final(call, "warm up", 0) for call in calls])  # speakers recorded
    runs = finals_statement_runs()

    # Besides the statement, only the savepoint and its release that stand in, inside the test's own
    # transaction, for the statement being a transaction of its own.
    with django_assert_max_num_queries(2):
        services.store_finals([final(call, f"line {n}", n) for n in range(1, 6) for call in calls])

    assert finals_statement_runs() == runs + 1
    assert [TranscriptSegment.objects.filter(call=call).count() for call in calls] == [6, 6, 6, 6]


def test_without_prepared_statements_finals_are_stored_all_the_same(monkeypatch) -> None:
    """DATABASE_PREPARED_STATEMENTS=False, behind a pooler that cannot keep prepared statements."""
    call = new_call()
    connection.ensure_connection()
    monkeypatch.setattr(connection.connection, "prepare_threshold", None)
    runs = finals_statement_runs()

    services.store_finals([final(call, "one", 1), final(call, "two", 2)])
    services.store_finals([final(call, "three", 3)])

    assert finals_statement_runs() == runs
    assert [text for _, text, _ in transcript(call)] == ["one", "two", "three"]


def test_a_redelivered_final_is_skipped_and_the_rest_of_the_batch_still_lands() -> None:
    call = new_call()
    services.store_finals([final(call, "Hello.", 1)])

    first, second = segments([final(call, "Hello.", 1), final(call, "Goodbye.", 2)])

    assert first is None
    assert second is not None and second.text == "Goodbye."
    assert [text for _, text, _ in transcript(call)] == ["Hello.", "Goodbye."]


@pytest.mark.django_db(transaction=True)  # foreign keys are checked at commit, as in production
def test_a_final_for_a_deleted_call_is_dropped_without_losing_the_others() -> None:
    kept, deleted = new_call(), new_call()
    doomed = final(deleted, "Nobody hears this.", 1)
    deleted.delete()

    results = services.store_finals([doomed, final(kept, "Still here.", 1)])

    assert [result.outcome for result in results] == [services.Outcome.CALL_DELETED, services.Outcome.STORED]
    assert [text for _, text, _ in transcript(kept)] == ["Still here."]


def test_a_display_name_given_meanwhile_names_the_next_final_live() -> None:
    call = new_call()
    services.store_finals([final(call, "Before.", 1)])
    Participant.objects.filter(call=call, raw_id=acs.CALLER).update(display_name="Dana")

    (segment,) = segments([final(call, "After.", 2)])

    assert segment is not None and live_events.segment_payload(segment)["speaker"] == "Customer Dana"


def test_a_speaker_not_recorded_yet_is_recorded_with_their_first_final() -> None:
    call = new_call()

    (segment,) = segments([final(call, "First words.", 1, participant=acs.AGENT)])

    agent = Participant.objects.get(call=call, raw_id=acs.AGENT)
    assert segment is not None and segment.participant == agent
    assert TranscriptSegment.objects.get(pk=segment.pk).participant == agent
    assert live_events.segment_payload(segment)["speaker"] == agent.label


@pytest.mark.django_db(transaction=True)
def test_a_final_whose_speaker_was_deleted_is_still_stored() -> None:
    call = new_call()
    services.store_finals([final(call, "Hello.", 1)])
    Participant.objects.filter(call=call).delete()  # in the admin, by another process

    (segment,) = segments([final(call, "Still heard.", 2)])

    assert segment is not None
    start = call.last_sequence
    assert transcript(call) == [(start + 1, "Hello.", None), (start + 2, "Still heard.", acs.CALLER)]


@pytest.mark.django_db(transaction=True)
def test_a_final_whose_stream_was_deleted_is_stored_without_it(caplog) -> None:
    call = new_call()
    stream = services.open_stream(call_id=call.id, kind="transcription", subscription_id=acs.TRANSCRIPTION_SUBSCRIPTION)
    stream_id = stream.id
    services.store_finals([final(call, "Hello.", 1, stream_id=stream_id)])
    stream.delete()  # in the admin, while its socket is still live

    new, redelivered = (
        final(call, "Still heard.", 2, stream_id=stream_id),
        final(call, "Hello.", 1, stream_id=stream_id),
    )
    results = segments([new, redelivered])

    assert results[0] is not None and results[1] is None  # stored, and the redelivery still recognised
    assert [text for _, text, _ in transcript(call)] == ["Hello.", "Still heard."]
    assert TranscriptSegment.objects.get(text="Still heard.").stream is None
    assert f"stream {stream_id}" in caplog.text


def test_a_final_of_mixed_audio_without_confidence_is_stored_without_a_speaker() -> None:
    call = new_call()

    (segment,) = segments([final(call, "Both at once.", 1, participant="", confidence=None)])

    stored = TranscriptSegment.objects.get(pk=segment.pk)
    assert (stored.participant, stored.confidence, stored.words) == (None, None, segment.words)
    assert live_events.segment_payload(segment)["speaker"] == "Unknown speaker"


@pytest.mark.django_db(transaction=True)  # foreign keys are checked at commit, as in production
def test_a_batch_with_a_redelivery_and_a_deleted_calls_final_stores_exactly_the_good_ones_once(caplog) -> None:
    call, deleted = new_call(), new_call()
    services.store_finals([final(call, "Hello.", 1)])
    deleted_id = deleted.id
    Call.objects.filter(pk=deleted_id).delete()
    batch = [
        final(call, "Hello.", 1),  # redelivered after a reconnect
        final(deleted, "Nobody hears this.", 1),
        final(call, "How are you?", 2),
        final(deleted, "Nor this.", 2),
        final(call, "Goodbye.", 3),
    ]

    results = services.store_finals(batch)

    assert [result.outcome for result in results] == [
        services.Outcome.REDELIVERED,
        services.Outcome.CALL_DELETED,
        services.Outcome.STORED,
        services.Outcome.CALL_DELETED,
        services.Outcome.STORED,
    ]
    assert [text for _, text, _ in transcript(call)] == ["Hello.", "How are you?", "Goodbye."]
    assert [segment.text for segment in (result.segment for result in results) if segment] == [
        "How are you?",
        "Goodbye.",
    ]
    assert not TranscriptSegment.objects.filter(call_id=deleted_id).exists()
    assert caplog.text.count(f"call {deleted_id} dropped: the call no longer exists") == 1  # one line, not one a final


def test_a_final_with_text_the_database_cannot_take_is_refused_and_the_rest_still_land(caplog) -> None:
    call = new_call()

    results = services.store_finals(
        [final(call, "Before.", 1), final(call, "A lone surrogate \ud800.", 2), final(call, "After.", 3)]
    )

    assert [result.outcome for result in results] == [
        services.Outcome.STORED,
        services.Outcome.REFUSED,
        services.Outcome.STORED,
    ]
    assert [text for _, text, _ in transcript(call)] == ["Before.", "After."]
    assert "final segment dropped, the database refuses it" in caplog.text
