"""Opening and closing a call's stream records, as its media and transcription sockets connect and drop."""

from __future__ import annotations

import pytest

from calls import services
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
