"""Opening and closing a call's stream records, as its media and transcription sockets connect and drop."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import transaction
from django.utils import timezone

from calls import control, services, stream_state
from calls.models import Call, Gap, MediaStream
from tests.calls.conftest import new_call

pytestmark = pytest.mark.django_db

PCM = services.StreamMetadata(encoding="PCM", sample_rate=16000, channels=1)


def test_a_new_stream_takes_a_handful_of_queries(django_assert_max_num_queries) -> None:
    call = new_call(state=Call.State.CONNECTED)

    # Lock the call, look for the stream, insert it, check the connection id is free, update the
    # call (ids, status and live-feed number together), and the savepoint pair standing for BEGIN and
    # COMMIT: when a hundred calls start together, this runs two hundred times on one thread.
    with django_assert_max_num_queries(7):
        stream = services.open_stream(
            call_id=call.id, kind="audio", subscription_id="sub-1", metadata=PCM, call_connection_id="connection-1"
        )

    call.refresh_from_db()
    assert (stream.sample_rate, stream.connection_count, stream.disconnected_at) == (16000, 1, None)
    assert call.media_streaming_status == Call.StreamStatus.ACTIVE
    assert call.call_connection_id == "connection-1"


def test_a_reconnect_continues_the_stream_closes_its_gap_and_keeps_its_counts() -> None:
    call = new_call(state=Call.State.CONNECTED)
    first = services.open_stream(call_id=call.id, kind="audio", subscription_id="sub-1", metadata=PCM)
    services.add_stream_counters({first.id: {"audio_frame_count": 500}})
    services.close_stream(stream_id=first.id, counters={"audio_frame_count": 20})
    before = Call.objects.get(pk=call.id).last_sequence

    again = services.open_stream(call_id=call.id, kind="audio", subscription_id=None)

    assert again.id == first.id
    stored = MediaStream.objects.get(pk=first.id)
    assert (stored.connection_count, stored.audio_frame_count, stored.sample_rate) == (2, 520, 16000)
    assert stored.disconnected_at is None
    assert Gap.objects.get(stream=first).ended_at is not None
    assert Call.objects.get(pk=call.id).last_sequence == before + 1


def end_the_call(call: Call) -> None:
    """What ACS's CallDisconnected callback does."""
    with transaction.atomic():
        control.end_call(control.locked_call(call.id), state=Call.State.DISCONNECTED, reason="The call ended.")


def streaming_call() -> tuple[Call, MediaStream, MediaStream]:
    call = new_call(state=Call.State.CONNECTED)
    audio = services.open_stream(call_id=call.id, kind="audio", subscription_id="sub-1", metadata=PCM)
    transcription = services.open_stream(call_id=call.id, kind="transcription", subscription_id="sub-2")
    return call, audio, transcription


def test_sockets_that_acs_closes_just_before_telling_the_call_ended_are_no_gap() -> None:
    call, audio, transcription = streaming_call()
    services.close_stream(stream_id=audio.id, counters={})
    services.close_stream(stream_id=transcription.id, counters={})

    end_the_call(call)

    assert not Gap.objects.filter(call=call).exists()


def test_sockets_that_close_after_the_call_ended_are_no_gap() -> None:
    call, audio, transcription = streaming_call()

    end_the_call(call)
    services.close_stream(stream_id=audio.id, counters={})
    services.close_stream(stream_id=transcription.id, counters={})

    assert not Gap.objects.filter(call=call).exists()


def test_a_drop_acs_never_came_back_from_stays_a_gap_when_the_call_ends() -> None:
    call, audio, _ = streaming_call()
    services.close_stream(stream_id=audio.id, counters={})
    dropped_at = timezone.now() - stream_state.CALL_END_GRACE - timedelta(seconds=30)
    Gap.objects.filter(call=call).update(started_at=dropped_at)

    end_the_call(call)

    gap = Gap.objects.get(call=call)
    assert (gap.reason, gap.started_at) == (Gap.Reason.SOCKET_DROP, dropped_at)
    assert gap.ended_at is not None
