"""A call's final transcript as JSON, plain text, WebVTT or SRT.

Used by `manage.py export_transcript` and the dashboard's download links. Times are ACS's offsets
converted from 100 ns ticks to milliseconds, not re-based to the start of the call (after a pause for
sensitive data the media socket carries them on along the call: calls/pause.py). Exports hold the
segments as stored, so redacted ones keep their placeholders; calls/reveal.py passes the originals in
instead for the audited "original" export.

The JSON lists the call's gaps too. The text, WebVTT and SRT exports mark each pause for sensitive data
where it happened, "[Transcription and audio capture paused for sensitive data by alice; resumed by
alice]", as a line or a cue of its own lasting the pause.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from django.db.models import Min
from django.utils import timezone

from calls.models import TICKS_PER_MILLISECOND, Call, Gap, MediaStream, TranscriptSegment, raw_id_label

FORMATS = ("json", "txt", "vtt", "srt")
CONTENT_TYPES = {
    "json": "application/json",
    "txt": "text/plain; charset=utf-8",
    "vtt": "text/vtt; charset=utf-8",
    "srt": "application/x-subrip; charset=utf-8",
}


def transcript_segments(call: Call) -> list[TranscriptSegment]:
    """Final segments in call order: by stream (each transcription subscription restarts its offsets), then offset."""
    return list(
        call.segments.select_related("participant", "stream").order_by(
            "stream__connected_at", "stream_id", "offset_ticks", "sequence"
        )
    )


@dataclass(frozen=True)
class PauseNote:
    """A pause for sensitive data, placed on the transcript's timeline."""

    offset_ticks: int
    end_ticks: int
    text: str


Entry = TranscriptSegment | PauseNote


def transcript_entries(call: Call, segments: list[TranscriptSegment]) -> list[Entry]:
    """The call's final segments given (in call order), with each pause for sensitive data among them
    where it began: on the stream record it interrupted, at the time since the call's first transcription
    connection (the origin the media socket gives offsets after a pause)."""
    streams = call.streams.filter(kind=MediaStream.Kind.TRANSCRIPTION).order_by("connected_at", "id")
    rank = {pk: index for index, pk in enumerate(streams.values_list("pk", flat=True))}
    keyed: list[tuple[tuple[int, int, int], Entry]] = [
        ((rank.get(segment.stream_id, len(rank)), segment.offset_ticks, 1), segment) for segment in segments
    ]
    keyed += [((rank.get(gap.stream_id, -1), note.offset_ticks, 0), note) for gap, note in _pause_notes(call)]
    return [entry for _, entry in sorted(keyed, key=lambda item: item[0])]


def _pause_notes(call: Call) -> list[tuple[Gap, PauseNote]]:
    pauses = call.gaps.filter(reason=Gap.Reason.SENSITIVE_PAUSE).order_by("started_at")
    origin = call.streams.filter(kind=MediaStream.Kind.TRANSCRIPTION).aggregate(first=Min("connected_at"))["first"]
    origin = origin or call.connected_at or call.created_at
    return [
        (gap, PauseNote(_ticks_since(origin, gap.started_at), _ticks_since(origin, gap.ended_at), f"[{gap.detail}]"))
        for gap in pauses
    ]


def _ticks_since(origin: datetime, moment: datetime | None) -> int:
    elapsed = (moment or timezone.now()) - origin
    return max(0, round(elapsed.total_seconds() * 1000)) * TICKS_PER_MILLISECOND


def exact_ms(ticks: int) -> int | Decimal:
    """Exact milliseconds: an integer when whole, else a decimal (ticks are 1/10,000 ms)."""
    whole, remainder = divmod(ticks, TICKS_PER_MILLISECOND)
    return whole if remainder == 0 else Decimal(ticks) / TICKS_PER_MILLISECOND


def speaker(segment: TranscriptSegment) -> str:
    if segment.participant is not None:
        return segment.participant.label
    return raw_id_label(segment.participant_raw_id) or "Unknown speaker"


def transcript_json(call: Call, segments: list[TranscriptSegment]) -> str:
    document = {
        "call": {
            "id": str(call.id),
            "call_connection_id": call.call_connection_id or "",
            "server_call_id": call.server_call_id,
            "correlation_id": call.correlation_id,
            "state": call.state,
            "direction": call.direction,
            "caller": call.caller,
            "callee": call.callee,
            "locale": call.locale,
            "created_at": call.created_at.isoformat(),
            "connected_at": call.connected_at.isoformat() if call.connected_at else None,
            "ended_at": call.ended_at.isoformat() if call.ended_at else None,
        },
        "segments": [_segment_json(segment) for segment in segments],
        "gaps": [_gap_json(gap) for gap in call.gaps.order_by("started_at", "id")],
    }
    return json.dumps(document, indent=2, default=_decimal, ensure_ascii=False) + "\n"


def _segment_json(segment: TranscriptSegment) -> dict[str, Any]:
    return {
        "participant": segment.participant_raw_id,
        "role": segment.participant.role if segment.participant is not None else "",
        "speaker": speaker(segment),
        "text": segment.text,
        "start_ms": exact_ms(segment.offset_ticks),
        "end_ms": exact_ms(segment.end_ticks),
        "confidence": segment.confidence,
        "words": [
            {
                "text": word.get("text", ""),
                "start_ms": exact_ms(word.get("offset", 0)),
                "end_ms": exact_ms(word.get("offset", 0) + word.get("duration", 0)),
            }
            for word in segment.words
        ],
    }


def _gap_json(gap: Gap) -> dict[str, Any]:
    return {
        "reason": gap.reason,
        "reason_label": gap.get_reason_display(),
        "started_at": gap.started_at.isoformat(),
        "ended_at": gap.ended_at.isoformat() if gap.ended_at else None,
        "detail": gap.detail,
    }


def _decimal(value: Any) -> Any:
    if isinstance(value, Decimal):
        return float(value)
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def transcript_text(call: Call, segments: list[TranscriptSegment]) -> str:
    lines = [f"[{_clock(entry.offset_ticks, '.')}] {_said(entry)}" for entry in transcript_entries(call, segments)]
    return "\n".join(lines) + ("\n" if lines else "")


def transcript_vtt(call: Call, segments: list[TranscriptSegment]) -> str:
    cues = [f"{_timing(entry, '.')}\n{_vtt_text(entry)}" for entry in transcript_entries(call, segments)]
    return "WEBVTT\n\n" + "".join(f"{cue}\n\n" for cue in cues)


def transcript_srt(call: Call, segments: list[TranscriptSegment]) -> str:
    cues = [
        f"{number}\n{_timing(entry, ',')}\n{_said(entry)}"
        for number, entry in enumerate(transcript_entries(call, segments), start=1)
    ]
    return "".join(f"{cue}\n\n" for cue in cues)


def _said(entry: Entry) -> str:
    return entry.text if isinstance(entry, PauseNote) else f"{speaker(entry)}: {entry.text}"


def _vtt_text(entry: Entry) -> str:
    if isinstance(entry, PauseNote):
        return _cue_text(entry.text)
    return f"<v {_cue_text(speaker(entry))}>{_cue_text(entry.text)}"


def _timing(entry: Entry, decimal_mark: str) -> str:
    return f"{_clock(entry.offset_ticks, decimal_mark)} --> {_clock(entry.end_ticks, decimal_mark)}"


def _clock(ticks: int, decimal_mark: str) -> str:
    total_ms = ticks // TICKS_PER_MILLISECOND
    hours, rest = divmod(total_ms, 3_600_000)
    minutes, rest = divmod(rest, 60_000)
    seconds, milliseconds = divmod(rest, 1000)
    return f"{hours:02}:{minutes:02}:{seconds:02}{decimal_mark}{milliseconds:03}"


def _cue_text(text: str) -> str:
    """WebVTT cue text must not carry raw markup characters or a blank line."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace("\n", " ")


RENDERERS: dict[str, Callable[[Call, list[TranscriptSegment]], str]] = {
    "json": transcript_json,
    "txt": transcript_text,
    "vtt": transcript_vtt,
    "srt": transcript_srt,
}


def export_transcript(call: Call, export_format: str, segments: list[TranscriptSegment] | None = None) -> str:
    """The call's transcript in one format: its stored segments, or the `segments` given (in call order)."""
    return RENDERERS[export_format](call, transcript_segments(call) if segments is None else segments)
