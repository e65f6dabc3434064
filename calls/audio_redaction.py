"""What a call's stored transcript has decided about its audio, for the media socket that captures it
(streaming/audio.py holds audio in memory until this says what may be written, and what as silence).

Two facts per speaker: until when their speech is decided (the end of their latest stored final: a
final is stored only once redaction has run on it), and when the words redaction replaced were said.
Both are wall-clock times, so an audio socket on another process than the transcription socket, or
one that reconnected, places them in its own audio.

A final's words are timed from the start of its transcription subscription (acs-protocol.md 1.7),
which began when that stream first connected here (MediaStream.connected_at): a word at offset t was
said at connected_at + t. After a pause for sensitive data the media socket stores offsets along the
call instead (calls/pause.py): a word of a final received after a resume was said at the call's first
transcription connection + t, whichever stream carried it. The audio socket times its samples from its
own first frame the same way.
Both clocks are approximations, so each decision keeps MARGIN to spare: a redacted span is silenced
MARGIN wider on each side, and speech counts as decided only up to MARGIN before the final's end.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.db.models import Case, F, JSONField, Value, When

from calls.models import Gap, MediaStream, TranscriptSegment
from calls.redaction import is_placeholder

MARGIN = timedelta(milliseconds=200)


@dataclass(frozen=True)
class Span:
    participant_raw_id: str
    start: datetime
    end: datetime


@dataclass
class TranscriptProgress:
    last_sequence: int  # the call's segments up to this number are accounted for
    decided_until: dict[str, datetime] = field(default_factory=dict)  # per speaker
    redacted: list[Span] = field(default_factory=list)
    transcribing: bool = False  # a transcription socket of the call is open: more finals may come


def transcript_progress(*, call_id: uuid.UUID, after_sequence: int) -> TranscriptProgress:
    """What the call's segments numbered above `after_sequence` decide (three queries)."""
    streams = list(
        MediaStream.objects.filter(call_id=call_id, kind=MediaStream.Kind.TRANSCRIPTION, connected_at__isnull=False)
        .order_by("connected_at")
        .values_list("id", "connected_at", "disconnected_at")
    )
    started = {stream_id: connected_at for stream_id, connected_at, _ in streams}
    resumes = _resumes(call_id, after=streams[0][1]) if streams else []
    progress = TranscriptProgress(after_sequence, transcribing=any(gone is None for _, _, gone in streams))
    segments = (
        TranscriptSegment.objects.filter(call_id=call_id, sequence__gt=after_sequence)
        .order_by("sequence")
        .values(
            "sequence",
            "participant_raw_id",
            "stream_id",
            "offset_ticks",
            "duration_ticks",
            "redacted_types",
            "received_at",
        )
        # The words only of redacted segments: the placeholders' timings are all that is read of them.
        .annotate(redacted_words=Case(When(redacted_types=[], then=Value([], JSONField())), default=F("words")))
    )
    for segment in segments:
        progress.last_sequence = segment["sequence"]
        # A segment stored without its stream (a journal replay after the stream was deleted) is placed
        # on the call's first subscription; with none at all it cannot be placed and decides nothing.
        first = streams[0][1] if streams else None
        start = started.get(segment["stream_id"]) or first
        if any(resumed <= segment["received_at"] for resumed in resumes):
            start = first  # its offsets carry on along the call (calls/pause.py `offset_base_ticks`)
        if start is not None:
            _learn(progress, segment, start)
    return progress


def _resumes(call_id: uuid.UUID, *, after: datetime) -> list[datetime]:
    """When the call's pauses for sensitive data ended, of those that ended after its first transcription
    connection: finals received since carry offsets along the call."""
    pauses = Gap.objects.filter(call_id=call_id, reason=Gap.Reason.SENSITIVE_PAUSE, ended_at__gt=after)
    return list(pauses.values_list("ended_at", flat=True))


def _learn(progress: TranscriptProgress, segment: dict[str, Any], start: datetime) -> None:
    speaker = segment["participant_raw_id"]
    begins = start + _ticks(segment["offset_ticks"])
    ends = begins + _ticks(segment["duration_ticks"])
    previous = progress.decided_until.get(speaker)
    progress.decided_until[speaker] = max(previous, ends - MARGIN) if previous else ends - MARGIN
    if segment["redacted_types"]:
        # Placeholder words span the words they replaced; without timings, the whole segment goes.
        spans = _placeholder_spans(segment["redacted_words"], start, ends) or [(begins, ends)]
        progress.redacted += [Span(speaker, first - MARGIN, last + MARGIN) for first, last in spans]


def _placeholder_spans(words: list[dict[str, Any]], start: datetime, ends: datetime) -> list[tuple[datetime, datetime]]:
    spans = []
    for word in words:
        if is_placeholder(str(word.get("text", ""))) and word.get("offset") is not None:
            first = start + _ticks(word["offset"])
            spans.append((first, first + _ticks(word["duration"]) if word.get("duration") else ends))
    return spans


def _ticks(ticks: int) -> timedelta:
    return timedelta(microseconds=ticks // 10)
