"""What one ACS media socket does with the frames it receives: `MediaSession.receive(frame)`.

Each frame goes one way: the admission gate (streaming/admission.py) → `parse_packet` → by packet
type, the socket's streams and counters here, or, for a final, the socket's finals queue
(streaming/finals_queue.py). `receive` returns a close code when the socket must close.

The audio path is admit + parse + count + buffer: no ORM call, channel-layer send, metric, log line
or thread hop per frame (50 frames a second per participant). Counters reach Prometheus every
STREAM_STATS_INTERVAL seconds and the database with every other socket's (`StreamCounters`), and
audio files are written in batches off the event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import random
import time
import uuid
from collections import Counter
from collections.abc import Callable, Coroutine
from datetime import UTC, datetime
from typing import Any

from django.conf import settings
from django.core.exceptions import ObjectDoesNotExist
from django.db import DatabaseError
from django.utils import timezone

from calls import live_events, participants, pause, redaction_rules, services
from calls.models import Call, MediaStream
from streaming import events, metrics, runtime
from streaming.admission import ACCEPT, CLOSE, FrameGate
from streaming.audio import AudioRecorder, Span
from streaming.database import database_sync_to_async
from streaming.finals_queue import DRAIN_TIMEOUT, FinalsQueue
from streaming.live_redaction import LiveRedaction
from streaming.packets import (
    AudioData,
    AudioMetadata,
    DtmfData,
    MarkData,
    PacketError,
    TranscriptionData,
    TranscriptionMetadata,
    UnknownPacket,
    parse_packet,
)
from streaming.socket_log import SocketLog
from streaming.storage import stream_counters

logger = logging.getLogger(__name__)

AUDIO = MediaStream.Kind.AUDIO
TRANSCRIPTION = MediaStream.Kind.TRANSCRIPTION
DEFAULT_FRAME_MS = 20
RECORDED_GAP_MS = 1000  # audio gaps this long also become a Gap row the call page shows

# daphne (autobahn) lets an application close a socket only with 1000 or 3000-4999, so RFC 6455's
# 1001 (going away) and 1008 (policy violation) are sent as 4001 and 4008.
CLOSE_GOING_AWAY = 4001
CLOSE_POLICY_VIOLATION = 4008


class _Stream:
    """A socket's view of one MediaStream record: its id and the counters not yet written."""

    def __init__(self, record: MediaStream) -> None:
        self.id = record.pk
        self.subscription_id = record.subscription_id
        self.sample_rate = record.sample_rate or 16000
        self.offset_base_ticks = 0  # added to transcription offsets: ACS restarts them after a pause
        self.counters: Counter[str] = Counter()  # counted since the last flush
        self.unsaved: Counter[str] = Counter()  # flushed to metrics, not yet written to the database


class MediaSession:
    def __init__(
        self,
        call_id: uuid.UUID,
        *,
        call_connection_id: str = "",
        correlation_id: str = "",
        backlog: Callable[[], int] | None = None,
    ) -> None:
        self.call_id = call_id
        self.call_connection_id = call_connection_id
        self.correlation_id = correlation_id
        self.log = SocketLog(call_id)
        self.gate = FrameGate(call_id, backlog=backlog, log=self.log)
        self.finals = FinalsQueue(call_id, self.log)
        self.streams: dict[str, _Stream] = {}
        self.unattributed: Counter[str] = Counter()  # counted before the socket's stream was known
        self.counts: Counter[str] = Counter()  # for metrics only: parse errors and metadata frames
        self.participants_seen: set[str] = set()
        self.last_frame_at: dict[str, datetime] = {}
        self.frame_ms = DEFAULT_FRAME_MS
        self.recorder: AudioRecorder | None = None
        self.capture_pauses: list[Span] = []  # as last read, should the database not answer next time
        self.audio_started_at: float | None = None  # time.time() as the first audio packet arrived
        self.redaction: LiveRedaction | None = None  # made with the first transcription result, unless REDACTION=off
        self._closing = False
        self._closing_task: asyncio.Future[None] | None = None
        self._closed = asyncio.Event()
        self._flusher: asyncio.Task[None] | None = None
        self._tasks: set[asyncio.Task[None]] = set()  # one-off database writes, awaited on close

    # --- lifecycle ---------------------------------------------------------------------------

    def start(self) -> None:
        runtime.add_session(self)
        self.finals.start()
        self._flusher = asyncio.ensure_future(self._flush_periodically())

    async def close(self) -> None:
        """Store what is pending (journaling what cannot be), flush counters and audio, and record
        the socket's streams as closed. Safe to call again: later calls wait for the first."""
        if self._closing_task is None:
            self._closing_task = asyncio.ensure_future(self._close())
        await asyncio.shield(self._closing_task)

    async def _close(self) -> None:
        self._closing = True
        self._closed.set()
        try:
            if self.redaction is not None:
                self.redaction.release_all()
            await self.finals.close()
            if self._flusher is not None:
                await asyncio.wait([self._flusher], timeout=DRAIN_TIMEOUT)
            if self._tasks:
                await asyncio.wait(list(self._tasks), timeout=DRAIN_TIMEOUT)
            # This socket's own finals are stored by now; another socket's may still be on their way.
            await self._write_audio(closing=True, transcript_may_follow=TRANSCRIPTION not in self.streams)
            self._report_counts()
            for stream in self.streams.values():
                await self._close_stream(stream)
        except asyncio.CancelledError:
            self.finals.spill_now()  # daphne gave up waiting: keep the finals at least
            raise
        finally:
            if self._flusher is not None:
                self._flusher.cancel()
            runtime.remove_session(self)  # only now: a shutdown waits for sessions still closing

    async def _close_stream(self, stream: _Stream) -> None:
        counters = stream.unsaved + stream.counters + stream_counters.take(stream.id)
        try:
            await database_sync_to_async(services.close_stream)(stream_id=stream.id, counters=dict(counters))
        except ObjectDoesNotExist:  # the stream, or its whole call, was deleted while the socket was open
            logger.warning("call %s: stream %s not recorded as closed: it was deleted", self.call_id, stream.id)
        except DatabaseError as error:
            logger.error("call %s: stream %s not recorded as closed: %s", self.call_id, stream.id, error)
            stream_counters.add(stream.id, counters)  # written with the others when the database is back

    # --- one frame ---------------------------------------------------------------------------

    async def receive(self, frame: str | bytes) -> int | None:
        """Handle one frame; a close code when the socket must close (it floods), else None."""
        admission = self.gate.admit(frame)
        if admission is not ACCEPT:
            return CLOSE_POLICY_VIOLATION if admission is CLOSE else None
        try:
            packet = parse_packet(frame)
        except PacketError as error:
            self._note_malformed(error)
            return None
        try:  # free in Python 3.11 until something raises: the audio path pays nothing for it
            if type(packet) is AudioData:
                await self._on_audio(packet)
            elif type(packet) is TranscriptionData:
                await self._on_transcription(packet)
            elif type(packet) is AudioMetadata:
                await self._on_audio_metadata(packet)
            elif type(packet) is TranscriptionMetadata:
                await self._on_transcription_metadata(packet)
            elif type(packet) is DtmfData:
                self._counters_for(AUDIO)["dtmf_count"] += 1
                self._counters_for(AUDIO)["packet_count"] += 1
            elif type(packet) is UnknownPacket or type(packet) is MarkData:
                self._counters_for(None)["unknown_packet_count"] += 1
                self.log.problem("ignored packet of kind %s", getattr(packet, "kind", "MarkData"))
        except Call.DoesNotExist:  # deleted (in the admin, say) while ACS still streams it: no stream opens
            self.finals.note_call_deleted()
        return None

    def _note_malformed(self, error: PacketError) -> None:
        self._counters_for(None)["malformed_packet_count"] += 1
        self.counts["parse_errors"] += 1
        self.log.problem("malformed packet: %s", error)

    async def _on_audio(self, packet: AudioData) -> None:
        stream = self.streams.get(AUDIO)
        if stream is None:  # a reconnect that sent no metadata
            self.audio_started_at = self.audio_started_at or time.time()
            stream = await self._open(AUDIO, None, None)
        counters = stream.counters
        counters["packet_count"] += 1
        counters["audio_frame_count"] += 1
        if packet.silent:
            counters["silent_frame_count"] += 1
        participant = packet.participant_raw_id
        if participant not in self.participants_seen:
            self._first_seen(participant)
        if packet.timestamp is not None:
            self._check_for_gap(stream, participant, packet.timestamp)
        if self.recorder is not None:
            try:
                self.recorder.add(participant, packet.pcm(), silent=packet.silent, timestamp=packet.timestamp)
            except PacketError as error:
                self._note_malformed(error)

    def _check_for_gap(self, stream: _Stream, participant: str, timestamp: datetime) -> None:
        previous = self.last_frame_at.get(participant)
        self.last_frame_at[participant] = timestamp
        if previous is None:
            return
        elapsed_ms = (timestamp - previous).total_seconds() * 1000
        missing_frames = round(elapsed_ms / self.frame_ms) - 1
        if missing_frames < 1:
            return
        missing_ms = missing_frames * self.frame_ms
        stream.counters["gap_count"] += 1
        stream.counters["missing_audio_ms"] += missing_ms
        if self.recorder is not None:
            self.recorder.add_silence(participant, missing_ms)
        if missing_ms >= RECORDED_GAP_MS:
            self._spawn(
                database_sync_to_async(services.record_audio_gap)(
                    call_id=self.call_id,
                    stream_id=stream.id,
                    started_at=previous,
                    missing_ms=missing_ms,
                    participant=participant,
                )
            )

    async def _on_transcription(self, packet: TranscriptionData) -> None:
        stream = self.streams.get(TRANSCRIPTION) or await self._open(TRANSCRIPTION, None, None)
        stream.counters["packet_count"] += 1
        if packet.participant_raw_id not in self.participants_seen:
            self._first_seen(packet.participant_raw_id)
        if self.redaction is None and settings.REDACTION != "off":
            rules = await database_sync_to_async(redaction_rules.current_rules)()
            self.redaction = LiveRedaction(rules, self.finals.put)
        if packet.is_final:
            stream.counters["final_count"] += 1
            final = self._final(packet, stream)
            if self.redaction is None:
                self.finals.put(final)
            else:
                self.redaction.final(final)
        else:
            stream.counters["intermediate_count"] += 1
            text = (
                packet.text
                if self.redaction is None
                else self.redaction.partial(packet.participant_raw_id, packet.text)
            )
            offset = packet.offset_ticks + stream.offset_base_ticks
            event = live_events.partial_event(self.call_id, packet.participant_raw_id, text, offset)
            events.publish(event)

    def _final(self, packet: TranscriptionData, stream: _Stream) -> services.Final:
        base = stream.offset_base_ticks
        return services.Final(
            call_id=self.call_id,
            stream_id=stream.id,
            subscription_id=stream.subscription_id,
            participant_raw_id=packet.participant_raw_id,
            text=packet.text,
            confidence=packet.confidence,
            offset_ticks=packet.offset_ticks + base,
            duration_ticks=packet.duration_ticks,
            words=[
                {"text": word.text, "offset": word.offset_ticks + base, "duration": word.duration_ticks}
                for word in packet.words
            ],
            received_at=timezone.now(),
        )

    async def _on_audio_metadata(self, packet: AudioMetadata) -> None:
        self.audio_started_at = self.audio_started_at or time.time()
        metadata = services.StreamMetadata(
            encoding=packet.encoding,
            sample_rate=packet.sample_rate,
            channels=packet.channels,
            frame_length=packet.frame_length,
        )
        stream = await self._open(AUDIO, packet.subscription_id, metadata)
        stream.counters["packet_count"] += 1
        self.counts["metadata_count"] += 1
        if packet.frame_length:
            self.frame_ms = max(1, round(packet.frame_length * 1000 / (2 * packet.sample_rate)))

    async def _on_transcription_metadata(self, packet: TranscriptionMetadata) -> None:
        self.call_connection_id = self.call_connection_id or packet.call_connection_id
        self.correlation_id = self.correlation_id or packet.correlation_id
        metadata = services.StreamMetadata(locale=packet.locale)
        stream = await self._open(TRANSCRIPTION, packet.subscription_id, metadata)
        stream.counters["packet_count"] += 1
        self.counts["metadata_count"] += 1

    async def _open(self, kind: str, subscription_id: str | None, metadata: services.StreamMetadata | None) -> _Stream:
        previous = self.streams.get(kind)
        if previous is not None and previous.subscription_id == subscription_id:
            return previous
        if self.finals.call_deleted:
            raise Call.DoesNotExist  # known already: no query per packet
        record = await database_sync_to_async(services.open_stream)(
            call_id=self.call_id,
            kind=kind,
            subscription_id=subscription_id,
            metadata=metadata,
            call_connection_id=self.call_connection_id,
            correlation_id=self.correlation_id,
        )
        stream = self.streams[kind] = _Stream(record)
        if kind == TRANSCRIPTION:
            stream.offset_base_ticks = await database_sync_to_async(pause.offset_base_ticks)(call_id=self.call_id)
        stream.counters.update(self.unattributed)
        self.unattributed.clear()
        if previous is not None:  # a new subscription on the same socket: close the old record
            await self._close_stream(previous)
        if kind == AUDIO and settings.AUDIO_CAPTURE and self.recorder is None:
            hold = redaction_rules.redaction_on()  # audio waits for the transcript's redaction (streaming/audio.py)
            self.recorder = AudioRecorder(
                self.call_id,
                stream.sample_rate,
                hold_for_redaction=hold,
                started_at=self.audio_started_at,
                log=self.log,
            )
        return stream

    def _counters_for(self, kind: str | None) -> Counter[str]:
        stream = self.streams.get(kind) if kind else next(iter(self.streams.values()), None)
        return stream.counters if stream is not None else self.unattributed

    def _first_seen(self, participant: str) -> None:
        self.participants_seen.add(participant)
        if participant:
            self._spawn(database_sync_to_async(participants.note_participant)(call_id=self.call_id, raw_id=participant))

    # --- counters ----------------------------------------------------------------------------

    async def _flush_periodically(self) -> None:
        # Sockets that opened together (a deploy, a reconnect storm) would otherwise all flush at once.
        interval = settings.STREAM_STATS_INTERVAL * random.uniform(0.1, 1.0)  # noqa: S311 - not security
        while not self._closing:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._closed.wait(), interval)
            interval = settings.STREAM_STATS_INTERVAL
            if self._closing:
                return
            await self._flush()

    async def _flush(self) -> None:
        """Write buffered audio, and hand the counters to the metrics and to `stream_counters`."""
        await self._write_audio()
        self._report_counts()
        for stream in self.streams.values():
            if stream.unsaved:
                stream_counters.add(stream.id, stream.unsaved)
                stream.unsaved = Counter()

    async def _write_audio(self, *, closing: bool = False, transcript_may_follow: bool = False) -> None:
        """Write what of the buffered audio may be written (streaming/audio.py), as silence where it arrived
        during a pause for sensitive data. Which stretches were paused is read now, with the audio in hand,
        so a pause made through any process counts, from the moment staff asked for it."""
        if self.recorder is None or (since := self.recorder.oldest_arrival) is None:
            return
        try:
            pauses = await database_sync_to_async(pause.capture_pauses)(
                call_id=self.call_id, since=datetime.fromtimestamp(since, UTC)
            )
        except DatabaseError as error:
            self.log.problem("pauses not read (the last ones read apply): %s", error)
        else:
            self.capture_pauses = [(start.timestamp(), end.timestamp() if end else math.inf) for start, end in pauses]
        await self.recorder.flush(self.capture_pauses, closing=closing, transcript_may_follow=transcript_may_follow)

    def _report_counts(self) -> None:
        """Add what was counted since the last report to the metrics; the database write follows.

        Frames the gate refused for their size count as malformed on the socket's stream too."""
        counts, self.counts = self.counts, Counter()
        refused = self.gate.take_counts()
        if refused["oversized_frames"]:
            self._counters_for(None)["malformed_packet_count"] += refused["oversized_frames"]
        counts.update(refused)
        for stream in self.streams.values():
            counts.update(stream.counters)
            stream.unsaved.update(stream.counters)
            stream.counters = Counter()
        metrics.add_session_counts(counts)

    # --- helpers -----------------------------------------------------------------------------

    def _spawn(self, coroutine: Coroutine[Any, Any, None]) -> None:
        task = asyncio.ensure_future(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)

    def _task_done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            self.log.problem("background work failed: %r", task.exception())
