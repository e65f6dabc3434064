"""What one ACS media socket does with the packets it receives.

The audio path is parse + count + buffer: no ORM call, channel-layer send, log line or thread hop per
frame (50 frames a second per participant). Counters reach the database every few seconds, audio
files are written in batches off the event loop, and final transcript segments, the only per-packet
database work, go through a per-socket writer that retries while the database is unavailable.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections import Counter, deque
from datetime import datetime

from channels.db import database_sync_to_async
from django.conf import settings
from django.db import DatabaseError
from django.utils import timezone

from calls import services
from calls.models import MediaStream
from streaming import events
from streaming.audio import AudioRecorder
from streaming.packets import (
    AudioData,
    AudioMetadata,
    DtmfData,
    MarkData,
    Packet,
    PacketError,
    TranscriptionData,
    TranscriptionMetadata,
    UnknownPacket,
)

logger = logging.getLogger(__name__)

AUDIO = MediaStream.Kind.AUDIO
TRANSCRIPTION = MediaStream.Kind.TRANSCRIPTION
DEFAULT_FRAME_MS = 20
RECORDED_GAP_MS = 1000  # audio gaps this long also become a Gap row the call page shows
STORE_RETRY_DELAYS = (0.2, 0.5, 1.0, 2.0, 5.0)
DRAIN_TIMEOUT = 10.0


class _Stream:
    """A socket's view of one MediaStream record: its id and the counters not yet written."""

    def __init__(self, record: MediaStream) -> None:
        self.id = record.pk
        self.subscription_id = record.subscription_id
        self.sample_rate = record.sample_rate or 16000
        self.counters: Counter[str] = Counter()


class MediaSession:
    def __init__(self, call_id: uuid.UUID, *, call_connection_id: str = "", correlation_id: str = "") -> None:
        self.call_id = call_id
        self.call_connection_id = call_connection_id
        self.correlation_id = correlation_id
        self.streams: dict[str, _Stream] = {}
        self.unattributed: Counter[str] = Counter()  # counted before the socket's stream was known
        self.participants_seen: set[str] = set()
        self.last_frame_at: dict[str, datetime] = {}
        self.frame_ms = DEFAULT_FRAME_MS
        self.recorder: AudioRecorder | None = None
        self.finals: deque[tuple[TranscriptionData, datetime]] = deque()
        self._finals_ready = asyncio.Event()
        self._store_lock = asyncio.Lock()
        self._tasks: set[asyncio.Task[None]] = set()
        self._problems_logged = 0

    # --- lifecycle ---------------------------------------------------------------------------

    def start(self) -> None:
        self._spawn(self._flush_periodically())
        self._spawn(self._write_finals())

    async def close(self) -> None:
        """Store what is pending, flush counters and audio, and record the socket's streams as closed."""
        await self._drain_finals()
        for task in self._tasks:
            task.cancel()
        if self.recorder is not None:
            await self.recorder.flush()
        for stream in self.streams.values():
            counters, stream.counters = dict(stream.counters), Counter()
            await database_sync_to_async(services.close_stream)(stream_id=stream.id, counters=counters)

    # --- packets -----------------------------------------------------------------------------

    async def handle(self, packet: Packet) -> None:
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
            self._log_problem("ignored packet of kind %s", getattr(packet, "kind", "MarkData"))

    def note_malformed(self, error: PacketError) -> None:
        self._counters_for(None)["malformed_packet_count"] += 1
        self._log_problem("malformed packet: %s", error)

    def note_oversized(self, size: int) -> None:
        self._counters_for(None)["malformed_packet_count"] += 1
        self._log_problem("frame of %d bytes refused: larger than MAX_MEDIA_MESSAGE_BYTES", size)

    async def _on_audio(self, packet: AudioData) -> None:
        stream = self.streams.get(AUDIO) or await self._open(AUDIO, None, None)
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
                self.recorder.add(participant, packet.pcm())
            except PacketError as error:
                self.note_malformed(error)

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
        if packet.is_final:
            stream.counters["final_count"] += 1
            self.finals.append((packet, timezone.now()))
            self._finals_ready.set()
        else:
            stream.counters["intermediate_count"] += 1
            event = events.partial_event(self.call_id, packet.participant_raw_id, packet.text, packet.offset_ticks)
            await events.apublish(event)

    async def _on_audio_metadata(self, packet: AudioMetadata) -> None:
        metadata = services.StreamMetadata(
            encoding=packet.encoding,
            sample_rate=packet.sample_rate,
            channels=packet.channels,
            frame_length=packet.frame_length,
        )
        stream = await self._open(AUDIO, packet.subscription_id, metadata)
        stream.counters["packet_count"] += 1
        if packet.frame_length:
            self.frame_ms = max(1, round(packet.frame_length * 1000 / (2 * packet.sample_rate)))

    async def _on_transcription_metadata(self, packet: TranscriptionMetadata) -> None:
        self.call_connection_id = self.call_connection_id or packet.call_connection_id
        self.correlation_id = self.correlation_id or packet.correlation_id
        metadata = services.StreamMetadata(locale=packet.locale)
        stream = await self._open(TRANSCRIPTION, packet.subscription_id, metadata)
        stream.counters["packet_count"] += 1

    async def _open(self, kind: str, subscription_id: str | None, metadata: services.StreamMetadata | None) -> _Stream:
        previous = self.streams.get(kind)
        if previous is not None and previous.subscription_id == subscription_id:
            return previous
        record = await database_sync_to_async(services.open_stream)(
            call_id=self.call_id,
            kind=kind,
            subscription_id=subscription_id,
            metadata=metadata,
            call_connection_id=self.call_connection_id,
            correlation_id=self.correlation_id,
        )
        stream = self.streams[kind] = _Stream(record)
        stream.counters.update(self.unattributed)
        self.unattributed.clear()
        if previous is not None:  # a new subscription on the same socket: close the old record
            await database_sync_to_async(services.close_stream)(stream_id=previous.id, counters=dict(previous.counters))
        if kind == AUDIO and settings.AUDIO_CAPTURE and self.recorder is None:
            self.recorder = AudioRecorder(self.call_id, stream.sample_rate)
        return stream

    def _counters_for(self, kind: str | None) -> Counter[str]:
        stream = self.streams.get(kind) if kind else next(iter(self.streams.values()), None)
        return stream.counters if stream is not None else self.unattributed

    def _first_seen(self, participant: str) -> None:
        self.participants_seen.add(participant)
        if participant:
            self._spawn(database_sync_to_async(services.ensure_participant)(call_id=self.call_id, raw_id=participant))

    # --- background work ---------------------------------------------------------------------

    async def _write_finals(self) -> None:
        while True:
            await self._finals_ready.wait()
            await self._store_pending_finals()

    async def _store_pending_finals(self) -> None:
        """Store queued finals in arrival order, retrying while the database is unavailable."""
        async with self._store_lock:  # the background writer and the closing drain share the queue
            await self._store_queued_finals()

    async def _store_queued_finals(self) -> None:
        attempt = 0
        while self.finals:
            packet, received_at = self.finals[0]
            try:
                await database_sync_to_async(self._store_final)(packet, received_at)
            except DatabaseError as error:
                delay = STORE_RETRY_DELAYS[min(attempt, len(STORE_RETRY_DELAYS) - 1)]
                attempt += 1
                self._log_problem("final segment not stored yet (%s); retrying in %.1f s", error, delay)
                await asyncio.sleep(delay)
                continue
            attempt = 0
            self.finals.popleft()
        self._finals_ready.clear()

    def _store_final(self, packet: TranscriptionData, received_at: datetime) -> None:
        stream = self.streams.get(TRANSCRIPTION)
        services.store_final_segment(
            call_id=self.call_id,
            stream_id=stream.id if stream else None,
            subscription_id=stream.subscription_id if stream else "",
            participant_raw_id=packet.participant_raw_id,
            text=packet.text,
            confidence=packet.confidence,
            offset_ticks=packet.offset_ticks,
            duration_ticks=packet.duration_ticks,
            words=[
                {"text": word.text, "offset": word.offset_ticks, "duration": word.duration_ticks}
                for word in packet.words
            ],
            received_at=received_at,
        )

    async def _drain_finals(self) -> None:
        if not self.finals:
            return
        try:
            await asyncio.wait_for(self._store_pending_finals(), timeout=DRAIN_TIMEOUT)
        except TimeoutError:
            logger.error(
                "call %s: %d final segments could not be stored before the socket closed",
                self.call_id,
                len(self.finals),
            )

    async def _flush_periodically(self) -> None:
        while True:
            await asyncio.sleep(settings.STREAM_STATS_INTERVAL)
            try:
                await self.flush()
            except DatabaseError as error:
                self._log_problem("stream counters not saved yet: %s", error)

    async def flush(self) -> None:
        if self.recorder is not None:
            await self.recorder.flush()
        for stream in self.streams.values():
            counters, stream.counters = dict(stream.counters), Counter()
            try:
                await database_sync_to_async(services.add_stream_counters)(stream_id=stream.id, counters=counters)
            except DatabaseError:
                stream.counters.update(counters)
                raise

    def _spawn(self, coroutine) -> None:
        task = asyncio.ensure_future(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)

    def _task_done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            self._log_problem("background work failed: %r", task.exception())

    def _log_problem(self, message: str, *args: object) -> None:
        """Log the first few problems of a socket, then one in a hundred, so a bad peer cannot flood the log."""
        self._problems_logged += 1
        if self._problems_logged <= 5 or self._problems_logged % 100 == 0:
            logger.warning(
                f"call %s: {message} (problem #%d on this socket)", self.call_id, *args, self._problems_logged
            )
