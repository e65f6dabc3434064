"""Coverage: the share of a call that was streamed and transcribed."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from calls.coverage import call_coverage
from calls.models import Call, Gap, MediaStream

pytestmark = pytest.mark.django_db

START = datetime(2026, 11, 25, 9, 0, tzinfo=UTC)


def minutes(value: float) -> datetime:
    return START + timedelta(minutes=value)


def test_gaps_and_late_starts_reduce_coverage(call: Call) -> None:
    call.connected_at, call.ended_at = minutes(0), minutes(10)
    audio = MediaStream(pk=1, call=call, kind="audio", connected_at=minutes(1), disconnected_at=minutes(10))
    text = MediaStream(pk=2, call=call, kind="transcription", connected_at=minutes(0), disconnected_at=None)
    gaps = [
        Gap(stream_id=1, reason=Gap.Reason.SOCKET_DROP, started_at=minutes(2), ended_at=minutes(3)),
        Gap(stream_id=1, reason=Gap.Reason.AUDIO_GAP, started_at=minutes(2.5), ended_at=minutes(4)),
        Gap(stream_id=None, reason=Gap.Reason.STOPPED_BY_STAFF, started_at=minutes(8), ended_at=None),
    ]
    coverage = call_coverage(call, [audio, text], gaps)
    assert coverage.duration == timedelta(minutes=10)
    assert coverage.streamed == pytest.approx(0.5)  # 1-2 and 4-8
    assert coverage.transcribed == pytest.approx(0.8)  # 0-8


def test_a_call_that_never_streamed_has_no_coverage(call: Call) -> None:
    call.connected_at, call.ended_at = minutes(0), minutes(5)
    coverage = call_coverage(call, [], [])
    assert (coverage.streamed, coverage.transcribed) == (0.0, 0.0)


def test_a_pause_for_sensitive_data_is_neither_transcribed_nor_missed(call: Call) -> None:
    call.connected_at, call.ended_at = minutes(0), minutes(10)
    audio = MediaStream(pk=1, call=call, kind="audio", connected_at=minutes(0), disconnected_at=None)
    text = MediaStream(pk=2, call=call, kind="transcription", connected_at=minutes(0), disconnected_at=None)
    gaps = [
        Gap(stream_id=2, reason=Gap.Reason.SENSITIVE_PAUSE, started_at=minutes(2), ended_at=minutes(4)),
        Gap(stream_id=2, reason=Gap.Reason.SOCKET_DROP, started_at=minutes(3), ended_at=minutes(6)),  # ends after
        Gap(stream_id=None, reason=Gap.Reason.SENSITIVE_PAUSE, started_at=minutes(9), ended_at=None),  # still on
    ]
    coverage = call_coverage(call, [audio, text], gaps)
    assert coverage.paused == timedelta(minutes=3)
    assert coverage.transcribed == pytest.approx(5 / 7)  # of the 7 minutes not paused, 4-6 was lost
    assert coverage.streamed == 1.0  # audio streams on through a pause (only its capture stops)


def test_a_call_paused_throughout_has_no_transcription_share(call: Call) -> None:
    call.connected_at, call.ended_at = minutes(0), minutes(1)
    pause = Gap(stream_id=None, reason=Gap.Reason.SENSITIVE_PAUSE, started_at=minutes(0), ended_at=minutes(1))
    assert call_coverage(call, [], [pause]).transcribed is None
