"""How much of a call was streamed and transcribed: stream connection spans minus recorded gaps.

A pause for sensitive data is intended, not a fault: the time it lasted is left out of the call's
transcription altogether (neither transcribed nor missed) and reported on its own. Audio keeps
streaming through a pause (only its capture stops), so a pause does not touch the streamed share.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.utils import timezone

from calls.models import Call, Gap, MediaStream

Interval = tuple[datetime, datetime]


@dataclass(frozen=True)
class Coverage:
    duration: timedelta
    streamed: float | None  # share of the call's duration, 0.0 to 1.0; None before the call has any duration
    transcribed: float | None  # share of the call's duration outside pauses
    paused: timedelta = timedelta(0)  # paused for sensitive data, in all


def call_span(call: Call, now: datetime | None = None) -> Interval:
    start = call.connected_at or call.created_at
    end = call.ended_at or now or timezone.now()
    return start, max(start, end)


def call_coverage(
    call: Call, streams: Iterable[MediaStream], gaps: Iterable[Gap], now: datetime | None = None
) -> Coverage:
    """Needs the call's streams and gaps (prefetched). A gap without a stream counts against both kinds."""
    span = call_span(call, now)
    streams = list(streams)
    kinds = {stream.pk: stream.kind for stream in streams}
    pauses = _merge(_clip([_interval(gap, span) for gap in gaps if gap.reason == Gap.Reason.SENSITIVE_PAUSE], span))
    faults = [gap for gap in gaps if gap.reason != Gap.Reason.SENSITIVE_PAUSE]

    def share(kind: str, left_out: list[Interval]) -> float | None:
        covered = [
            (stream.connected_at, stream.disconnected_at or span[1])
            for stream in streams
            if stream.kind == kind and stream.connected_at
        ]
        missing = [_interval(gap, span) for gap in faults if kinds.get(gap.stream_id, kind) == kind]
        return _share(span, covered, missing, left_out)

    return Coverage(
        duration=span[1] - span[0],
        streamed=share(MediaStream.Kind.AUDIO, []),
        transcribed=share(MediaStream.Kind.TRANSCRIPTION, pauses),
        paused=_length(pauses),
    )


def _interval(gap: Gap, span: Interval) -> Interval:
    return gap.started_at, gap.ended_at or span[1]


def _share(span: Interval, covered: list[Interval], missing: list[Interval], left_out: list[Interval]) -> float | None:
    """The share of `span` outside `left_out` that `covered` covers, less `missing`."""
    total = ((span[1] - span[0]) - _length(left_out)).total_seconds()
    if total <= 0:
        return None
    holes = _merge(_clip(missing, span) + left_out)
    kept = _subtract(_merge(_clip(covered, span)), holes)
    return min(1.0, _length(kept).total_seconds() / total)


def _length(intervals: list[Interval]) -> timedelta:
    """The total length of intervals that do not overlap (merged)."""
    return sum((end - start for start, end in intervals), timedelta(0))


def _clip(intervals: list[Interval], span: Interval) -> list[Interval]:
    clipped = [(max(start, span[0]), min(end, span[1])) for start, end in intervals]
    return [(start, end) for start, end in clipped if end > start]


def _merge(intervals: list[Interval]) -> list[Interval]:
    merged: list[Interval] = []
    for start, end in sorted(intervals):
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], end))
        else:
            merged.append((start, end))
    return merged


def _subtract(intervals: list[Interval], holes: list[Interval]) -> list[Interval]:
    result = []
    for start, end in intervals:
        for hole_start, hole_end in holes:
            if hole_end <= start or hole_start >= end:
                continue
            if hole_start > start:
                result.append((start, hole_start))
            start = max(start, hole_end)
        if end > start:
            result.append((start, end))
    return result
