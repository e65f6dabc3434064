"""Stream counters: a process writes every open stream's counts together, as increments."""

from __future__ import annotations

import pytest

from calls import services
from calls.models import MediaStream
from tests.calls.conftest import new_call

pytestmark = pytest.mark.django_db


def test_counts_of_several_streams_are_added_in_one_statement(django_assert_num_queries) -> None:
    call = new_call()
    audio = MediaStream.objects.create(call=call, kind=MediaStream.Kind.AUDIO, subscription_id="a")
    transcription = MediaStream.objects.create(call=call, kind=MediaStream.Kind.TRANSCRIPTION, subscription_id="t")
    untouched = MediaStream.objects.create(call=new_call(), kind=MediaStream.Kind.AUDIO, subscription_id="u")

    with django_assert_num_queries(1):
        services.add_stream_counters(
            {
                audio.id: {"packet_count": 250, "audio_frame_count": 250, "silent_frame_count": 40},
                transcription.id: {"packet_count": 7, "final_count": 2, "intermediate_count": 5},
            }
        )
    services.add_stream_counters({audio.id: {"packet_count": 50, "audio_frame_count": 50, "gap_count": 1}})

    audio.refresh_from_db()
    transcription.refresh_from_db()
    untouched.refresh_from_db()
    assert (audio.packet_count, audio.audio_frame_count, audio.silent_frame_count, audio.gap_count) == (300, 300, 40, 1)
    assert (transcription.packet_count, transcription.final_count, transcription.intermediate_count) == (7, 2, 5)
    assert (untouched.packet_count, untouched.audio_frame_count) == (0, 0)
