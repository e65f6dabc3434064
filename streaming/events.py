"""The live feed's contract: group names, the shapes of the events staff browsers receive, and the one
function that publishes them (streaming/publisher.py sends them). Nothing else spells a group name.

Every event that changes what a viewer shows (a call's state, a stream, a final segment) carries the
call's next `sequence` number, allocated in the same transaction as the change. A viewer that sees a
number jump (a channel layer drops messages when a receiver's queue is full) resyncs from the
database. Intermediate text carries no number: it is replaced by the final anyway.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Literal, TypedDict

from asgiref.sync import async_to_sync

from calls import display, exports
from calls.models import TICKS_PER_MILLISECOND, Call, MediaStream, TranscriptSegment, raw_id_label
from compat import asgiref
from streaming import publisher

CALLS_GROUP = "calls"
READINESS_PROBE_GROUP = "readiness-probe"  # /readyz sends to it to see Redis answer; nobody listens
HANDLER_TYPE = "live.event"  # handled by `live_event` on the live-feed consumers


def call_group(call_id: uuid.UUID | str) -> str:
    return f"call-{call_id}"


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


def ticks_to_ms(ticks: int) -> float:
    return ticks / TICKS_PER_MILLISECOND


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


def _groups(event: LiveEvent) -> list[str]:
    # The call list shows state and the last utterance, not text still being recognised.
    if event["type"] == "partial":
        return [call_group(event["call_id"])]
    return [call_group(event["call_id"]), CALLS_GROUP]


def publish(event: LiveEvent) -> None:
    """Send an event to every viewer of its call (and of the call list), from any thread, without
    waiting for delivery. Domain functions run it from `transaction.on_commit`.

    In a server, sending is the event loop's publisher's job (streaming/publisher.py). Domain functions
    run in database_sync_to_async's worker thread, which hands the event to the loop and returns: waiting
    there for Redis would hold up every database call of the process. Outside a server (management
    commands, sync tests) the event is sent before returning. A channel-layer failure (Redis down) is
    logged, never raised: ingest and storage must go on without live viewers.
    """
    messages = _messages(event)
    if _in_event_loop():
        publisher.send_soon(messages)
        return
    loop = asgiref.calling_event_loop()
    if loop is not None:
        try:
            loop.call_soon_threadsafe(publisher.send_soon, messages)
            return
        except RuntimeError:  # the loop has closed
            pass
    async_to_sync(publisher.send_now)(messages)


def _messages(event: LiveEvent) -> list[publisher.Message]:
    message = {"type": HANDLER_TYPE, "event": event, "published_at": time.time()}
    return [(group, message) for group in _groups(event)]


def _in_event_loop() -> bool:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True
