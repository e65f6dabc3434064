"""What one ACS media socket does with the frames it receives.

The audio path is admit + parse + count + buffer: no ORM call, channel-layer send, metric, log line
or thread hop per frame (50 frames a second per participant). Counters reach Prometheus every
STREAM_STATS_INTERVAL seconds and the database with every other socket's (`StreamCounters`), audio
files are written in batches off the event loop, and final transcript segments, the only per-packet
database work, are queued per socket (retried while the database is unavailable, spilled to a local
journal, streaming/journal.py, when that lasts) and stored by the process's one `FinalsWriter`.

Overload policy (docs/performance.md): `admit` runs before parsing. It refuses frames over
MAX_MEDIA_MESSAGE_BYTES, sheds AudioData (never transcription) beyond the socket's audio rate cap
or while the process is behind, and closes a socket that floods (4008: policy violation). Every refused or shed
frame is counted.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
import random
import time
import uuid
import weakref
from collections import Counter, deque
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import NamedTuple

from channels.db import database_sync_to_async
from django.conf import settings
from django.core.exceptions import ObjectDoesNotExist
from django.db import DatabaseError
from django.utils import timezone

from calls import live_events, participants, services
from calls.models import Call, MediaStream
from compat import twisted
from streaming import events, journal, metrics
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
from streaming.storage import finals_writer, stream_counters

logger = logging.getLogger(__name__)

AUDIO = MediaStream.Kind.AUDIO
TRANSCRIPTION = MediaStream.Kind.TRANSCRIPTION
DEFAULT_FRAME_MS = 20
RECORDED_GAP_MS = 1000  # audio gaps this long also become a Gap row the call page shows
STORE_RETRY_DELAYS = (0.2, 0.5, 1.0, 2.0, 5.0)
DRAIN_TIMEOUT = 5.0  # how long a closing socket waits for its finals to be stored before journaling them
SHUTDOWN_TIMEOUT = 20.0  # keep systemd's TimeoutStopSec above this
FLOOD_WINDOWS = 2  # consecutive one-second windows over MEDIA_FLOOD_FRAMES_PER_SECOND before closing
AUDIO_PEEK = 48  # an ACS AudioData frame names its kind (or its payload key) within its first 48 characters


class Admission(enum.Enum):
    """What `MediaSession.admit` says to do with a frame, before it is parsed."""

    ACCEPT = "accept"
    DROP = "drop"  # counted
    CLOSE = "close"  # the socket floods


ACCEPT, DROP, CLOSE = Admission.ACCEPT, Admission.DROP, Admission.CLOSE  # module names: read for every frame

_shutting_down = False
_live_sessions: weakref.WeakSet[MediaSession] = weakref.WeakSet()


def shutting_down() -> bool:
    return _shutting_down


def begin_shutdown() -> None:
    """SIGTERM: refuse new media sockets and report not ready, while open ones finish storing."""
    global _shutting_down
    if not _shutting_down:
        logger.warning("Shutting down: media sockets store what they have and close")
    _shutting_down = True


def _shut_down_sessions() -> object:
    """daphne's "before shutdown" trigger: Twisted waits for the returned Deferred before it drops
    connections. daphne's own trigger, which cancels every application, fails when a connection
    has no application (an idle keep-alive, a port probe), so this one does that job too."""
    begin_shutdown()
    done = twisted.deferred_from(asyncio.ensure_future(_stop_everything()))
    return done.addErrback(lambda failure: logger.error("Shutdown did not finish cleanly: %s", failure.value))


async def _stop_everything() -> None:
    sessions = [session.shut_down() for session in list(_live_sessions)]
    if sessions:
        await asyncio.wait_for(asyncio.gather(*sessions, return_exceptions=True), SHUTDOWN_TIMEOUT)
    await stream_counters.write()  # what a failed write kept; closed sockets wrote their own share
    others = [task for task in asyncio.all_tasks() if task is not asyncio.current_task()]
    for task in others:
        task.cancel()
    if others:
        await asyncio.wait(others, timeout=5)


def _looks_like_audio(frame: str | bytes) -> bool:
    head = frame[:AUDIO_PEEK]
    return ("udioData" in head) if isinstance(head, str) else (b"udioData" in head)


class _Stream:
    """A socket's view of one MediaStream record: its id and the counters not yet written."""

    def __init__(self, record: MediaStream) -> None:
        self.id = record.pk
        self.subscription_id = record.subscription_id
        self.sample_rate = record.sample_rate or 16000
        self.counters: Counter[str] = Counter()  # counted since the last flush
        self.unsaved: Counter[str] = Counter()  # flushed to metrics, not yet written to the database


class _Final(NamedTuple):
    """A final waiting to be stored (it names the stream it arrived on: a later metadata packet may
    start a new subscription before it is stored), and when it arrived, for the store-latency metric."""

    final: services.Final
    received_monotonic: float


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
        self.backlog = backlog or (lambda: 0)  # frames daphne has queued for this socket, unread
        self.streams: dict[str, _Stream] = {}
        self.unattributed: Counter[str] = Counter()  # counted before the socket's stream was known
        self.counts: Counter[str] = Counter()  # for metrics only: refused, shed and metadata frames
        self.participants_seen: set[str] = set()
        self.last_frame_at: dict[str, datetime] = {}
        self.frame_ms = DEFAULT_FRAME_MS
        self.recorder: AudioRecorder | None = None
        self.finals: deque[_Final] = deque()
        self._finals_ready = asyncio.Event()
        self._closing = False
        self._closing_task: asyncio.Future[None] | None = None
        self._closed = asyncio.Event()
        self.on_shutdown: Callable[[], Awaitable[None]] | None = None  # set by the consumer
        self._failing_since: float | None = None
        self._loops: list[asyncio.Task[None]] = []  # the periodic flush and the finals writer
        self._tasks: set[asyncio.Task[None]] = set()  # one-off database writes, awaited on close
        self._problems_logged = 0
        self.call_deleted = False  # learnt from the database: from then on finals are dropped
        # admission
        self.max_bytes = settings.MAX_MEDIA_MESSAGE_BYTES
        self.audio_cap = settings.MEDIA_MAX_AUDIO_FRAMES_PER_SECOND
        self.flood_limit = settings.MEDIA_FLOOD_FRAMES_PER_SECOND
        self.overload_lag = settings.OVERLOAD_LOOP_LAG
        self._window_end = 0.0
        self._window_frames = 0
        self._window_backlog = 0
        self._flood_windows = 0
        self._flooded = False

    # --- lifecycle ---------------------------------------------------------------------------

    def start(self) -> None:
        start_background_work()
        _live_sessions.add(self)
        self._loops = [asyncio.ensure_future(self._flush_periodically()), asyncio.ensure_future(self._write_finals())]

    async def close(self) -> None:
        """Store what is pending (journaling what cannot be), flush counters and audio, and record
        the socket's streams as closed. Safe to call again: later calls wait for the first."""
        if self._closing_task is None:
            self._closing_task = asyncio.ensure_future(self._close())
        await asyncio.shield(self._closing_task)

    async def shut_down(self) -> None:
        """The server is stopping: close, then let the consumer say goodbye (`on_shutdown`)."""
        await self.close()
        if self.on_shutdown is not None:
            await self.on_shutdown()

    async def _close(self) -> None:
        self._closing = True
        self._closed.set()
        self._finals_ready.set()
        try:
            if self._loops:
                await asyncio.wait(self._loops, timeout=DRAIN_TIMEOUT)
            if self.finals:
                await self._spill()
            if self._tasks:
                await asyncio.wait(list(self._tasks), timeout=DRAIN_TIMEOUT)
            if self.recorder is not None:
                await self.recorder.flush()
            self._report_counts()
            for stream in self.streams.values():
                await self._close_stream(stream)
        except asyncio.CancelledError:
            self._spill_now()  # daphne gave up waiting: keep the finals at least
            raise
        finally:
            for task in self._loops:
                task.cancel()
            _live_sessions.discard(self)  # only now: a shutdown waits for sessions still closing

    async def _close_stream(self, stream: _Stream) -> None:
        counters = stream.unsaved + stream.counters + stream_counters.take(stream.id)
        try:
            await database_sync_to_async(services.close_stream)(stream_id=stream.id, counters=dict(counters))
        except ObjectDoesNotExist:  # the stream, or its whole call, was deleted while the socket was open
            logger.warning("call %s: stream %s not recorded as closed: it was deleted", self.call_id, stream.id)
        except DatabaseError as error:
            logger.error("call %s: stream %s not recorded as closed: %s", self.call_id, stream.id, error)
            stream_counters.add(stream.id, counters)  # written with the others when the database is back

    # --- admission: before parsing -----------------------------------------------------------

    def admit(self, frame: str | bytes) -> Admission:
        """ACCEPT, DROP (counted) or CLOSE (flooding). Cheap: no parsing."""
        if len(frame) > self.max_bytes:
            self.counts["oversized_frames"] += 1
            self._counters_for(None)["malformed_packet_count"] += 1
            self._log_problem("frame of %d bytes refused: larger than MAX_MEDIA_MESSAGE_BYTES", len(frame))
            return DROP
        if self._flooded:  # told to close; what it sent meanwhile is still read, but not its audio
            if _looks_like_audio(frame):
                self.counts["shed_closing"] += 1
                return DROP
            return ACCEPT
        now = time.monotonic()
        if now >= self._window_end and self._end_window(now):
            self._flooded = True
            return CLOSE
        self._window_frames += 1
        if self._window_frames > self.audio_cap:
            if _looks_like_audio(frame):
                self.counts["shed_rate"] += 1
                return DROP
        elif self._behind() and _looks_like_audio(frame):
            self.counts["shed_overload"] += 1
            return DROP
        return ACCEPT

    def _behind(self) -> bool:
        """The process's event loop is late, or this socket has over a second of frames unread."""
        return metrics.loop_lag.lag > self.overload_lag or self.backlog() > self.audio_cap

    def _end_window(self, now: float) -> bool:
        """Close a one-second window; True when the socket has flooded for FLOOD_WINDOWS in a row.

        Frames that arrived = frames read + growth of daphne's queue, so a socket whose backlog is
        being drained quickly after a stall is not mistaken for a flooding one.
        """
        backlog = self.backlog()
        arrived = self._window_frames + backlog - self._window_backlog
        self._flood_windows = self._flood_windows + 1 if arrived > self.flood_limit else 0
        self._window_end, self._window_frames, self._window_backlog = now + 1.0, 0, backlog
        if self._flood_windows >= FLOOD_WINDOWS:
            logger.warning(
                "call %s: media socket closed (4008, flooding): %d frames in one second, more than %d",
                self.call_id,
                arrived,
                self.flood_limit,
            )
            metrics.closed_media_sockets.labels("flood").inc()
            return True
        return False

    # --- packets -----------------------------------------------------------------------------

    async def handle(self, packet: Packet) -> None:
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
                self._log_problem("ignored packet of kind %s", getattr(packet, "kind", "MarkData"))
        except Call.DoesNotExist:  # deleted (in the admin, say) while ACS still streams it: no stream opens
            self._note_call_deleted()

    def note_malformed(self, error: PacketError) -> None:
        self._counters_for(None)["malformed_packet_count"] += 1
        self.counts["parse_errors"] += 1
        self._log_problem("malformed packet: %s", error)

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
            if self.call_deleted:
                metrics.finals_dropped.labels(services.Outcome.CALL_DELETED).inc()
                return
            self.finals.append(_Final(self._final(packet, stream), time.monotonic()))
            metrics.final_buffer_depth.inc()
            self._finals_ready.set()
        else:
            stream.counters["intermediate_count"] += 1
            event = live_events.partial_event(self.call_id, packet.participant_raw_id, packet.text, packet.offset_ticks)
            events.publish(event)

    def _final(self, packet: TranscriptionData, stream: _Stream) -> services.Final:
        return services.Final(
            call_id=self.call_id,
            stream_id=stream.id,
            subscription_id=stream.subscription_id,
            participant_raw_id=packet.participant_raw_id,
            text=packet.text,
            confidence=packet.confidence,
            offset_ticks=packet.offset_ticks,
            duration_ticks=packet.duration_ticks,
            words=[
                {"text": word.text, "offset": word.offset_ticks, "duration": word.duration_ticks}
                for word in packet.words
            ],
            received_at=timezone.now(),
        )

    async def _on_audio_metadata(self, packet: AudioMetadata) -> None:
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
        if self.call_deleted:
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
        stream.counters.update(self.unattributed)
        self.unattributed.clear()
        if previous is not None:  # a new subscription on the same socket: close the old record
            await self._close_stream(previous)
        if kind == AUDIO and settings.AUDIO_CAPTURE and self.recorder is None:
            self.recorder = AudioRecorder(self.call_id, stream.sample_rate)
        return stream

    def _counters_for(self, kind: str | None) -> Counter[str]:
        stream = self.streams.get(kind) if kind else next(iter(self.streams.values()), None)
        return stream.counters if stream is not None else self.unattributed

    def _first_seen(self, participant: str) -> None:
        self.participants_seen.add(participant)
        if participant:
            self._spawn(database_sync_to_async(participants.note_participant)(call_id=self.call_id, raw_id=participant))

    # --- final segments ----------------------------------------------------------------------

    async def _write_finals(self) -> None:
        while not (self._closing and not self.finals):
            await self._finals_ready.wait()
            self._finals_ready.clear()
            try:
                await self._store_queued_finals()
            except Exception as error:  # a bug: keep the finals and this task, try again shortly
                self._log_problem("storing final segments failed (%r); retrying", error)
                self._failing_since = self._failing_since or time.monotonic()
                self._finals_ready.set()
                await asyncio.sleep(STORE_RETRY_DELAYS[-1])
            if self._closing and self._failing_since is not None:
                return  # the database is down: close() journals the rest

    async def _store_queued_finals(self) -> None:
        """Store queued finals in arrival order, in batches (one thread hop each), retrying while they
        cannot be stored and journaling once more than MAX_BUFFERED_FINALS are waiting.

        Whatever goes wrong, this socket keeps its finals and its writer: an error other than the
        database's is logged (rate-limited) and retried like an outage, never left to end this task.
        """
        attempt = 0
        while self.finals:
            batch = list(self.finals)
            try:
                results = await finals_writer.store([queued.final for queued in batch])
            except Exception as error:
                self._failing_since = self._failing_since or time.monotonic()
                if self._closing:
                    return
                if len(self.finals) > settings.MAX_BUFFERED_FINALS:
                    await self._spill()
                delay = STORE_RETRY_DELAYS[min(attempt, len(STORE_RETRY_DELAYS) - 1)]
                attempt += 1
                reason = error if isinstance(error, DatabaseError) else repr(error)
                self._log_problem("final segments not stored yet (%s); retrying in %.1f s", reason, delay)
                await asyncio.sleep(delay)
                continue
            self._forget_stored(batch, results)
            if self._failing_since is not None:
                logger.warning("call %s: final segments stored again", self.call_id)
                self._failing_since = None
                replayer.wake()
            attempt = 0

    def _forget_stored(self, batch: list[_Final], results: list[services.FinalResult]) -> None:
        now = time.monotonic()
        stored, dropped = 0, Counter()
        for queued, result in zip(batch, results, strict=True):
            # A spill, or learning that the call was deleted, may have emptied the queue meanwhile
            # (and counted what it took).
            still_queued = bool(self.finals) and self.finals[0] is queued
            if still_queued:
                self.finals.popleft()
                metrics.final_buffer_depth.dec()
            if result.outcome is services.Outcome.STORED:
                stored += 1
                metrics.final_store_seconds.observe(now - queued.received_monotonic)
            elif result.dropped and still_queued:
                dropped[result.outcome] += 1
        if stored:
            metrics.finals_stored.inc(stored)
        for outcome, count in dropped.items():
            metrics.finals_dropped.labels(outcome).inc(count)
        if any(result.outcome is services.Outcome.CALL_DELETED for result in results):
            self._note_call_deleted()

    def _note_call_deleted(self) -> None:
        """The call is gone: nothing this socket receives can be stored any more. Its finals are
        dropped (and counted) from now on, and no new stream is opened for it, until ACS closes the
        socket; the process and every other socket carry on."""
        if not self.call_deleted:
            self.call_deleted = True
            logger.warning("call %s: the call was deleted; its media socket's finals are dropped", self.call_id)
        if self.finals:
            metrics.finals_dropped.labels(services.Outcome.CALL_DELETED).inc(len(self.finals))
            metrics.final_buffer_depth.dec(len(self.finals))
            self.finals.clear()

    async def _spill(self) -> None:
        """Move every queued final to the journal (durably) and out of memory."""
        pending, self.finals = list(self.finals), deque()
        entries = [journal.entry_for(queued.final) for queued in pending]
        try:
            await asyncio.get_running_loop().run_in_executor(None, journal.append, entries)
        except OSError as error:
            self.finals.extendleft(reversed(pending))
            logger.error("call %s: %d final segments could not be journaled: %s", self.call_id, len(pending), error)
            return
        self._journaled(len(pending))

    def _spill_now(self) -> None:
        """`_spill` without awaiting, for when this task is being cancelled."""
        if not self.finals:
            return
        pending, self.finals = list(self.finals), deque()
        try:
            journal.append(journal.entry_for(queued.final) for queued in pending)
        except OSError as error:
            logger.error("call %s: %d final segments lost: %s", self.call_id, len(pending), error)
            return
        self._journaled(len(pending))

    def _journaled(self, count: int) -> None:
        metrics.final_buffer_depth.dec(count)
        metrics.finals_journaled.inc(count)
        logger.warning("call %s: %d final segments journaled until the database is back", self.call_id, count)
        replayer.wake()

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
            await self.flush()

    async def flush(self) -> None:
        """Write buffered audio, and hand the counters to the metrics and to `stream_counters`."""
        if self.recorder is not None:
            await self.recorder.flush()
        self._report_counts()
        for stream in self.streams.values():
            if stream.unsaved:
                stream_counters.add(stream.id, stream.unsaved)
                stream.unsaved = Counter()

    def _report_counts(self) -> None:
        """Add what was counted since the last report to the metrics; the database write follows."""
        counts, self.counts = self.counts, Counter()
        for stream in self.streams.values():
            counts.update(stream.counters)
            stream.unsaved.update(stream.counters)
            stream.counters = Counter()
        metrics.add_session_counts(counts)

    # --- helpers -----------------------------------------------------------------------------

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


class JournalReplayer:
    """Stores journaled finals: when a process starts serving, when a socket finds the database back,
    and every INTERVAL seconds while journal files exist."""

    INTERVAL = 5.0

    def __init__(self) -> None:
        self._task: asyncio.Task[None] | None = None
        self._wake: asyncio.Event | None = None

    def ensure_running(self) -> None:
        loop = asyncio.get_running_loop()
        if self._task is None or self._task.done() or self._task.get_loop() is not loop:
            self._wake = asyncio.Event()
            self._task = asyncio.ensure_future(self._run())

    def wake(self) -> None:
        if self._wake is not None:
            self._wake.set()

    async def _run(self) -> None:
        while True:
            if journal.pending_files():
                try:
                    replayed = await database_sync_to_async(journal.replay)()
                except Exception:
                    logger.exception("Finals journal replay failed")
                else:
                    if replayed:
                        metrics.finals_replayed.inc(replayed)
                        logger.warning("Stored %d journaled final segments", replayed)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.INTERVAL)
            self._wake.clear()


replayer = JournalReplayer()


def start_background_work() -> None:
    """The process-wide work media sockets rely on, in a daphne process (not under test
    communicators): loop-lag measurement, journal replay, and noticing that daphne is stopping.

    Under daphne, SIGTERM stops the Twisted reactor, whose "before shutdown" triggers run before the
    cancelled consumers do: from then on new media sockets are refused and /readyz says 503.
    """
    global _started_in
    reactor = twisted.running_reactor()
    if reactor is None:
        return
    metrics.loop_lag.ensure_running()
    replayer.ensure_running()
    stream_counters.ensure_running()
    if _started_in is not reactor:
        twisted.before_shutdown(reactor, _shut_down_sessions)
        _started_in = reactor


_started_in: object = None
