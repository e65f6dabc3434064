"""How a call's transcript is laid out on the call page and the admin change page: speaker turns of
segments, each split into words with timings where ACS gave them."""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.utils import dateformat, timezone

from calls import original_text, stream_state
from calls.audio_files import audio_shift_ms, audio_tracks
from calls.coverage import Coverage, call_coverage
from calls.exports import speaker
from calls.models import Call, Gap, TranscriptSegment, ticks_to_ms
from calls.stream_state import TRANSCRIPTION, Event


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
    original: str = ""  # original_text.state: whether a redacted segment's original was kept


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
        turns[-1].lines.append(
            Line(segment, segment_words(segment), is_low_confidence(segment.confidence), original_text.state(segment))
        )
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
    """Which control buttons apply to the call as it stands: none once it has ended."""
    status = Call.StreamStatus
    startable = (status.INACTIVE, status.FAILED)
    stoppable = (status.ACTIVE, status.STARTING)
    live = call.is_live
    return {
        "streaming_start": live and call.media_streaming_status in startable,
        "streaming_stop": live and call.media_streaming_status in stoppable,
        "transcription_start": live and call.transcription_status in startable,
        "transcription_stop": live and call.transcription_status in stoppable,
        "pause": live and call.state == Call.State.CONNECTED and _allows(call, Event.STAFF_PAUSE),
        "resume": live and _allows(call, Event.RESUME),
        "hangup": live,
    }


def _allows(call: Call, event: Event) -> bool:
    transcription = stream_state.state_of(call, TRANSCRIPTION)
    return not stream_state.next_state(transcription, event, stream_state.facts(call)).refused


def current_pause(call: Call) -> Gap | None:
    """The call's pause for sensitive data while it lasts (from its prefetched gaps)."""
    return next((gap for gap in call.gaps.all() if gap.reason == Gap.Reason.SENSITIVE_PAUSE and not gap.ended_at), None)


def pause_state(call: Call) -> dict[str, Any]:
    """Whether the call is paused for sensitive data, since when, and when it resumes by itself at the
    latest (ISO 8601), as the JSON API reports it. Needs the call's gaps prefetched."""
    pause = current_pause(call)
    if pause is None:
        return {"paused": False, "paused_since": None, "resumes_by": None}
    resumes_by = pause.started_at + timedelta(seconds=settings.SENSITIVE_PAUSE_MAX_SECONDS)
    return {"paused": True, "paused_since": pause.started_at.isoformat(), "resumes_by": resumes_by.isoformat()}


def _pause_text(call: Call) -> str:
    """The pause while it lasts, as the call page says it: who paused, since when, until when at the latest."""
    pause = current_pause(call)
    if pause is None:
        return ""
    resumes_by = pause.started_at + timedelta(seconds=settings.SENSITIVE_PAUSE_MAX_SECONDS)
    since, until = _time_of_day(pause.started_at), _time_of_day(resumes_by)
    return f"{pause.detail} at {since}; resumes by itself at {until} at the latest"


def _percent(share: float | None) -> str:
    return "n/a" if share is None else f"{share:.0%}"


def _coverage_text(coverage: Coverage) -> str:
    text = f"streamed {_percent(coverage.streamed)}, transcribed {_percent(coverage.transcribed)}"
    if coverage.paused:
        text += f" (paused {clock(coverage.paused.total_seconds() * 1000)} for sensitive data)"
    return text


def _time_of_day(moment: datetime) -> str:
    return dateformat.format(timezone.localtime(moment), "H:i:s")


def call_view(call: Call) -> dict[str, Any]:
    """The call page's description of the call: every fact, label and rule the page shows outside the
    transcript, as text. The page renders it when it loads (templates/calls/call_detail.html) and
    static/calls/live.js renders the same description from the live feed's snapshots and call and
    stream events, so a page watched live reads like the page reloaded. Needs the call's
    participants, streams and gaps prefetched (or costs a query each)."""
    streams, gaps = list(call.streams.all()), list(call.gaps.all())
    coverage = call_coverage(call, streams, gaps)
    return {
        "live": call.is_live,
        "state": call.get_state_display(),
        "media_streaming_status": call.get_media_streaming_status_display(),
        "transcription_status": call.get_transcription_status_display(),
        "ended_at": shown_time(call.ended_at),
        "ended_at_iso": call.ended_at.isoformat() if call.ended_at else "",
        "end_reason": call.end_reason,
        "since": (call.connected_at or call.created_at).isoformat(),
        "duration": clock(coverage.duration.total_seconds() * 1000),
        "coverage": _coverage_text(coverage),
        "controls": control_states(call),
        "pause": _pause_text(call),
        "participants": [
            {"raw_id": participant.raw_id, "label": participant.label} for participant in call.participants.all()
        ],
        "audio_tracks": [asdict(track) for track in audio_tracks(call)],
        "gaps": [
            {
                "reason": gap.reason,
                "reason_label": gap.get_reason_display(),
                "from": _time_of_day(gap.started_at),
                "to": _time_of_day(gap.ended_at) if gap.ended_at else "still open",
                "detail": gap.detail,
            }
            for gap in gaps
        ],
    }


def call_page_context(call: Call) -> dict[str, Any]:
    """What the call page and the admin's live panel render. Needs the call's participants, streams and
    gaps prefetched. Its segments are the live feed's snapshot of the call as read (`Call.snapshot_segments`),
    so the live feed resumes `?after=` exactly there without losing or repeating a line."""
    return {
        "call": call,
        "view": call_view(call),
        "turns": speaker_turns(call.snapshot_segments()),
        "audio_shift_ms": audio_shift_ms(call),
        "audio_capture": settings.AUDIO_CAPTURE,  # without it no track can appear while the page is open
        "low_confidence_threshold": settings.LOW_CONFIDENCE_THRESHOLD,
    }
