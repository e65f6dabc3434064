"""How a call's transcript is laid out on the call page and the admin change page: speaker turns of
segments, each split into words with timings where ACS gave them."""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from django.conf import settings
from django.utils import dateformat, timezone

from calls.audio_files import audio_shift_ms, audio_tracks
from calls.coverage import call_coverage
from calls.exports import speaker
from calls.models import Call, TranscriptSegment, ticks_to_ms


@dataclass(frozen=True)
class Word:
    text: str
    start_ms: int | None = None
    end_ms: int | None = None


@dataclass(frozen=True)
class Line:
    segment: TranscriptSegment
    words: list[Word]
    low_confidence: bool


@dataclass
class Turn:
    participant_raw_id: str
    speaker: str
    lines: list[Line] = field(default_factory=list)


def speaker_turns(segments: Iterable[TranscriptSegment]) -> list[Turn]:
    """Consecutive segments of one participant form a turn."""
    turns: list[Turn] = []
    for segment in segments:
        if not turns or turns[-1].participant_raw_id != segment.participant_raw_id:
            turns.append(Turn(segment.participant_raw_id, speaker(segment)))
        turns[-1].lines.append(Line(segment, segment_words(segment), is_low_confidence(segment.confidence)))
    return turns


def is_low_confidence(confidence: float | None) -> bool:
    return confidence is not None and confidence < settings.LOW_CONFIDENCE_THRESHOLD


def segment_words(segment: TranscriptSegment) -> list[Word]:
    """The display text's words, with ACS's word timings when they line up one to one.

    ACS's words are lexical ("testing") while the text is display form ("Testing."), so timings are paired
    by position only when the counts match; otherwise the text is shown without word timings. ACS gives
    words no confidence (reference 1.7): confidence is the segment's.
    """
    tokens = segment.text.split()
    timed: list[dict[str, Any]] = segment.words or []
    if len(timed) != len(tokens):
        return [Word(token) for token in tokens]
    return [
        Word(
            token,
            start_ms=math.floor(ticks_to_ms(word.get("offset", 0))),
            end_ms=math.floor(ticks_to_ms(word.get("offset", 0) + word.get("duration", 0))),
        )
        for token, word in zip(tokens, timed, strict=True)
    ]


def shown_time(moment: datetime | None) -> str:
    """A moment as the call page shows it (in TIME_ZONE); live events carry it in this form too, so a
    page updated live reads like the same page reloaded."""
    return dateformat.format(timezone.localtime(moment), "Y-m-d H:i:s") if moment else ""


def clock(milliseconds: int | float | None) -> str:
    """A transcript offset as M:SS, or H:MM:SS past an hour."""
    seconds = int((milliseconds or 0) // 1000)
    hours, rest = divmod(seconds, 3600)
    minutes, seconds = divmod(rest, 60)
    return f"{hours}:{minutes:02}:{seconds:02}" if hours else f"{minutes}:{seconds:02}"


def control_states(call: Call) -> dict[str, bool]:
    """Which control buttons apply to the call as it stands (static/calls/live.js mirrors this)."""
    status = Call.StreamStatus
    startable = (status.INACTIVE, status.FAILED)
    stoppable = (status.ACTIVE, status.STARTING)
    return {
        "streaming_start": call.media_streaming_status in startable,
        "streaming_stop": call.media_streaming_status in stoppable,
        "transcription_start": call.transcription_status in startable,
        "transcription_stop": call.transcription_status in stoppable,
        "hangup": call.is_live,
    }


def call_page_context(call: Call) -> dict[str, Any]:
    """What the call page and the admin's live panel render. Needs the call's participants, streams and
    gaps prefetched. Its segments are the live feed's snapshot of the call as read (`Call.snapshot_segments`),
    so the live feed resumes `?after=` exactly there without losing or repeating a line."""
    return {
        "call": call,
        "turns": speaker_turns(call.snapshot_segments()),
        "coverage": call_coverage(call, call.streams.all(), call.gaps.all()),
        "gaps": list(call.gaps.all()),
        "audio_tracks": audio_tracks(call),
        "audio_shift_ms": audio_shift_ms(call),
        "low_confidence_threshold": settings.LOW_CONFIDENCE_THRESHOLD,
        "controls": control_states(call),
        "state_labels": dict(Call.State.choices),
    }
