"""The reads in fixed SQL (calls/call_reads.py) read what the ORM read: the call page's description
and snapshot as prefetching gave them, the relations in the same order and nothing more afterwards, and
a call locked for a change with every field as the ORM reads it."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
from django.db import transaction
from django.utils import timezone

from calls import call_reads, display
from calls.models import Call, Gap, MediaStream, Participant
from streaming import live
from tests.calls.conftest import new_call
from tests.streaming import acs_packets as acs

pytestmark = pytest.mark.django_db


def busy_call() -> Call:
    """Two participants, two streams (one of them never connected), a closed gap and an open pause: rows
    whose order and nulls the description depends on."""
    call = new_call(state=Call.State.CONNECTED, connected_at=timezone.now() - timedelta(minutes=3))
    Participant.objects.create(call=call, raw_id=acs.AGENT, display_name="Alice", role=Participant.Role.AGENT)
    Participant.objects.create(call=call, raw_id=acs.CALLER)
    audio = MediaStream.objects.create(
        call=call, kind=MediaStream.Kind.AUDIO, connected_at=timezone.now() - timedelta(minutes=2)
    )
    MediaStream.objects.create(call=call, kind=MediaStream.Kind.TRANSCRIPTION)
    started = timezone.now() - timedelta(minutes=1)
    ended = started + timedelta(seconds=5)
    Gap.objects.create(call=call, stream=audio, reason=Gap.Reason.AUDIO_GAP, started_at=started, ended_at=ended)
    Gap.objects.create(call=call, reason=Gap.Reason.SENSITIVE_PAUSE, started_at=timezone.now(), detail="Card number")
    return call


def prefetched(call: Call) -> Call:
    return Call.objects.prefetch_related("participants", "streams", "gaps").get(pk=call.pk)


def test_the_description_is_the_one_the_orm_read_gives() -> None:
    call = busy_call()

    read = call_reads.call_with_parts(call.pk)

    assert display.call_view(read) == display.call_view(prefetched(call))
    assert display.call_view(read)["pause"].startswith("Card number")


def test_the_call_and_its_parts_are_read_in_four_statements_and_nothing_after(django_assert_num_queries) -> None:
    call = busy_call()
    orm = prefetched(call)

    with django_assert_num_queries(4):
        read = call_reads.call_with_parts(str(call.pk))
        display.call_view(read)
        participants, streams, gaps = list(read.participants.all()), list(read.streams.all()), list(read.gaps.all())
        assert all(part.call is read for part in [*participants, *streams, *gaps])

    assert [p.pk for p in participants] == [p.pk for p in orm.participants.all()]
    assert [s.pk for s in streams] == [s.pk for s in orm.streams.all()]
    assert [g.pk for g in gaps] == [g.pk for g in orm.gaps.all()]
    assert [(p.raw_id, p.label) for p in participants] == [(p.raw_id, p.label) for p in orm.participants.all()]


def test_the_snapshot_reads_the_same_call() -> None:
    call = busy_call()

    snapshot = live.call_state(str(call.pk), None)

    assert snapshot["view"] == display.call_view(prefetched(call))
    assert [p["raw_id"] for p in snapshot["participants"]] == [acs.AGENT, acs.CALLER]
    assert len(snapshot["streams"]) == 2


def test_a_call_that_is_not_there_reads_as_none() -> None:
    assert call_reads.call_with_parts(uuid.uuid4()) is None
    assert live.call_view(str(uuid.uuid4())) is None
    with pytest.raises(Call.DoesNotExist):
        live.call_state(str(uuid.uuid4()), None)


def test_a_locked_call_reads_as_the_orm_reads_it() -> None:
    call = busy_call()
    Call.objects.filter(pk=call.pk).update(call_connection_id="connection-1")
    orm = Call.objects.get(pk=call.pk)

    heard_at = timezone.now()

    with transaction.atomic():
        by_id = call_reads.locked_call(str(call.pk))
        by_connection = call_reads.locked_call_heard_from(None, "connection-1", heard_at)

    fields = [field.attname for field in Call._meta.concrete_fields]
    assert [getattr(by_id, name) for name in fields] == [getattr(orm, name) for name in fields]
    orm.last_event_at = heard_at
    assert by_connection is not None
    assert [getattr(by_connection, name) for name in fields] == [getattr(orm, name) for name in fields]


def test_a_locked_call_that_is_not_there() -> None:
    with transaction.atomic():
        with pytest.raises(Call.DoesNotExist):
            call_reads.locked_call(uuid.uuid4())
        assert call_reads.locked_call_heard_from(uuid.uuid4(), "no-such-connection", timezone.now()) is None
