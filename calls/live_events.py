"""The live feed's events, as the domain decides them: the shape of each event staff browsers receive,
the call's next live-feed number taken with each change, and publishing after commit.

Every event that changes what a viewer shows (a call's state, a stream, a final segment) carries the
call's next `sequence` number, allocated in the same transaction as the change. A viewer that sees a
number jump (a channel layer drops messages when a receiver's queue is full) resyncs from the
database. Intermediate text carries no number: it is replaced by the final anyway.

Sending is the transport's job (streaming/events.py, which also names the groups). `calls` never imports
`streaming`: the transport registers itself here at start-up (`set_transport`, from
streaming/apps.py), and committed events are handed to it.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable, Iterable
from typing import Literal, TypedDict

from django.db import transaction

from calls import display, exports, original_text
from calls.models import Call, MediaStream, TranscriptSegment, raw_id_label, ticks_to_ms

logger = logging.getLogger(__name__)


class WordPayload(TypedDict):
    text: str
    start_ms: float
    end_ms: float


class SegmentPayload(TypedDict):
    id: int
    sequence: int
    participant: str
    speaker: str
    text: str
    confidence: float | None
    start_ms: float
    end_ms: float
    clock: str  # start_ms as the page shows it (calls.display.clock)
    words: list[WordPayload]
    received_at: str
    original: str  # original_text.state: "" (nothing redacted), "kept" or "not_kept"; never the original itself


class StreamPayload(TypedDict):
    kind: str
    subscription_id: str
    connected: bool
    packets: int
    audio_frames: int
    gaps: int


class CallPayload(TypedDict):
    id: str
    call_connection_id: str
    state: str
    direction: str
    caller: str
    callee: str
    caller_display_name: str
    label: str  # what staff call the call (Call.label)
    media_streaming_status: str
    transcription_status: str
    created_at: str
    connected_at: str | None
    ended_at: str | None
    end_reason: str  # why the call ended or never connected, in words
    ended_at_shown: str  # as the call page shows it (calls.display.shown_time); empty while live
    last_sequence: int
    # Who may see the call (calls/permissions.py Scope.includes, with `callee`): the live call list
    # sends each viewer only the calls in their scope, deciding from the event alone.
    agent_ids: list[int]


class CallChanged(TypedDict):
    type: Literal["call"]
    call_id: str
    sequence: int
    change: str  # created, state, streaming, transcription, participants
    call: CallPayload


class StreamChanged(TypedDict):
    type: Literal["stream"]
    call_id: str
    sequence: int
    stream: StreamPayload


class SegmentStored(TypedDict):
    type: Literal["segment"]
    call_id: str
    sequence: int
    segment: SegmentPayload


class PartialText(TypedDict):
    type: Literal["partial"]
    call_id: str
    participant: str
    speaker: str  # from the raw id alone: a page that knows the participant's display name shows that
    text: str
    start_ms: float
    clock: str  # start_ms as the page shows it (calls.display.clock)
    sent_at: float  # time.time() when published, so the benchmark can measure live latency


LiveEvent = CallChanged | StreamChanged | SegmentStored | PartialText


def segment_payload(segment: TranscriptSegment) -> SegmentPayload:
    """Needs `segment.participant` loaded (select_related) to name the speaker without a query."""
    return {
        "id": segment.pk,
        "sequence": segment.sequence,
        "participant": segment.participant_raw_id,
        "speaker": exports.speaker(segment),
        "text": segment.text,
        "confidence": segment.confidence,
        "start_ms": ticks_to_ms(segment.offset_ticks),
        "end_ms": ticks_to_ms(segment.end_ticks),
        "clock": display.clock(ticks_to_ms(segment.offset_ticks)),
        "words": [
            {
                "text": word.get("text", ""),
                "start_ms": ticks_to_ms(word.get("offset", 0)),
                "end_ms": ticks_to_ms(word.get("offset", 0) + word.get("duration", 0)),
            }
            for word in segment.words
        ],
        "received_at": segment.received_at.isoformat(),
        "original": original_text.state(segment),
    }


def call_payload(call: Call) -> CallPayload:
    return {
        "id": str(call.id),
        "call_connection_id": call.call_connection_id or "",
        "state": call.state,
        "direction": call.direction,
        "caller": call.caller,
        "callee": call.callee,
        "caller_display_name": call.caller_display_name,
        "label": call.label,
        "media_streaming_status": call.media_streaming_status,
        "transcription_status": call.transcription_status,
        "created_at": call.created_at.isoformat(),
        "connected_at": call.connected_at.isoformat() if call.connected_at else None,
        "ended_at": call.ended_at.isoformat() if call.ended_at else None,
        "end_reason": call.end_reason,
        "ended_at_shown": display.shown_time(call.ended_at),
        "last_sequence": call.last_sequence,
        "agent_ids": list(call.agent_ids),
    }


def stream_payload(stream: MediaStream) -> StreamPayload:
    return {
        "kind": stream.kind,
        "subscription_id": stream.subscription_id,
        "connected": stream.disconnected_at is None and stream.connected_at is not None,
        "packets": stream.packet_count,
        "audio_frames": stream.audio_frame_count,
        "gaps": stream.gap_count,
    }


def call_event(call: Call, change: str) -> CallChanged:
    return {
        "type": "call",
        "call_id": str(call.id),
        "sequence": call.last_sequence,
        "change": change,
        "call": call_payload(call),
    }


def stream_event(stream: MediaStream, sequence: int) -> StreamChanged:
    return {"type": "stream", "call_id": str(stream.call_id), "sequence": sequence, "stream": stream_payload(stream)}


def segment_event(segment: TranscriptSegment) -> SegmentStored:
    return {
        "type": "segment",
        "call_id": str(segment.call_id),
        "sequence": segment.sequence,
        "segment": segment_payload(segment),
    }


def partial_event(call_id: uuid.UUID, participant: str, text: str, offset_ticks: int) -> PartialText:
    return {
        "type": "partial",
        "call_id": str(call_id),
        "participant": participant,
        "speaker": raw_id_label(participant) or "Unknown speaker",
        "text": text,
        "start_ms": ticks_to_ms(offset_ticks),
        "clock": display.clock(ticks_to_ms(offset_ticks)),
        "sent_at": time.time(),
    }


Transport = Callable[[LiveEvent], None]
_transport: Transport | None = None


def set_transport(send: Transport) -> None:
    """Where committed events go: streaming/apps.py sets `streaming.events.publish` at start-up."""
    global _transport
    _transport = send


def _send(event: LiveEvent) -> None:
    if _transport is None:
        logger.warning("No live-feed transport is set (is `streaming` in INSTALLED_APPS?): %s dropped", event["type"])
        return
    _transport(event)


def publish_on_commit(event: LiveEvent) -> None:
    """Publish once the surrounding transaction commits, so a viewer never sees a change that was rolled back."""
    transaction.on_commit(lambda: _send(event))


def save_with_sequence(
    call: Call, fields: Iterable[str], change: str = "", *, stream: MediaStream | None = None
) -> None:
    """Save a call's changed fields with its next live-feed number, in one UPDATE, and publish after
    commit: the stream's new state when `stream` is given, else the call's (`change` says what changed).

    The call must have been read under its row lock in this transaction (`call_reads.locked_call`), or created
    in it: the lock orders the changes of one call across every process, so the number read with it is
    the latest. Finals are numbered inside their own insert (`services._INSERT_FINALS`), under the same lock.
    """
    call.last_sequence += 1
    call.save(update_fields=[*fields, "last_sequence"])
    publish_on_commit(stream_event(stream, call.last_sequence) if stream is not None else call_event(call, change))
