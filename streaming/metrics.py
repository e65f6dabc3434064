"""Prometheus metrics of the media and live-feed sockets, served at /metrics (see config/health.py).

Several daphne processes on one host report as one: with PROMETHEUS_MULTIPROC_DIR set in their
environment, prometheus-client keeps every process's values in files there and /metrics adds them
up (docs/deployment.md). Without it (development, tests) each process reports its own.

The media socket's hot path never touches a metric: a session counts packets in plain integers and
adds them here every STREAM_STATS_INTERVAL seconds, when it hands its counters on to the database.
"""

from __future__ import annotations

import asyncio
import atexit
import os
import time
from collections import deque
from collections.abc import Mapping
from typing import Any

from prometheus_client import REGISTRY as PROCESS_REGISTRY
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest, multiprocess

MULTIPROCESS = bool(os.environ.get("PROMETHEUS_MULTIPROC_DIR"))
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)

open_sockets = Gauge("callscribe_open_sockets", "Websockets open now, by kind.", ["kind"], multiprocess_mode="livesum")
refused_sockets = Counter(
    "callscribe_refused_media_sockets_total", "Media sockets refused at the handshake, by reason.", ["reason"]
)
packets = Counter("callscribe_packets_total", "Media-socket packets received, by kind.", ["kind"])
parse_errors = Counter("callscribe_parse_errors_total", "Media-socket frames that were not valid ACS packets.")
oversized_frames = Counter(
    "callscribe_oversized_frames_total", "Media-socket frames refused for being over MAX_MEDIA_MESSAGE_BYTES."
)
shed_audio_frames = Counter(
    "callscribe_shed_audio_frames_total",
    "AudioData frames dropped unparsed to protect the process, by reason.",
    ["reason"],
)
closed_media_sockets = Counter(
    "callscribe_media_sockets_closed_total", "Media sockets the server closed, by reason.", ["reason"]
)
audio_silenced_seconds = Counter(
    "callscribe_audio_silenced_seconds_total",
    "Seconds of captured audio written as silence, by reason: redacted (words redaction replaced) or undecided"
    " (speech no stored final covered within AUDIO_REDACTION_HOLD_SECONDS, or when its socket closed).",
    ["reason"],
)
finals_stored = Counter("callscribe_finals_stored_total", "Final transcript segments stored.")
finals_dropped = Counter(
    "callscribe_finals_dropped_total",
    "Final transcript segments not stored, by reason: call_deleted (their call was deleted), refused (the database"
    " cannot take them).",
    ["reason"],
)
final_store_seconds = Histogram(
    "callscribe_final_store_seconds", "From a final segment's arrival to its commit.", buckets=LATENCY_BUCKETS
)
final_buffer_depth = Gauge(
    "callscribe_final_buffer_depth", "Final segments received and not stored yet.", multiprocess_mode="livesum"
)
finals_journaled = Counter(
    "callscribe_finals_journaled_total", "Final segments written to the local journal while the database was down."
)
finals_replayed = Counter("callscribe_finals_replayed_total", "Journaled final segments stored on recovery.")
live_latency_seconds = Histogram(
    "callscribe_live_latency_seconds",
    "From publishing a live event to sending it to a viewer.",
    buckets=LATENCY_BUCKETS,
)
live_events_unsent = Counter(
    "callscribe_live_events_unsent_total",
    "Live event messages dropped unsent (Redis away, or too many waiting); viewers resync.",
)
gc_pause_seconds = Histogram(
    "callscribe_gc_pause_seconds",
    "How long each garbage collection paused the process (the event loop and every thread), by generation.",
    ["generation"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0),
)
event_loop_lag_seconds = Gauge(
    "callscribe_event_loop_lag_seconds", "How late the event loop ran a timer, lately.", multiprocess_mode="livemax"
)

# Counter names a media session keeps, and the packet kind each one counts (see streaming/session.py).
PACKET_KINDS = {
    "audio_frame_count": "AudioData",
    "dtmf_count": "DtmfData",
    "intermediate_count": "TranscriptionData",
    "final_count": "TranscriptionData",
    "metadata_count": "Metadata",
    "unknown_packet_count": "Unknown",
}


def add_session_counts(counts: Mapping[str, int]) -> None:
    """Add what one media session counted since its last flush."""
    for name, kind in PACKET_KINDS.items():
        if counts.get(name):
            packets.labels(kind).inc(counts[name])
    if counts.get("parse_errors"):
        parse_errors.inc(counts["parse_errors"])
    if counts.get("oversized_frames"):
        oversized_frames.inc(counts["oversized_frames"])
    for reason in ("rate", "overload", "closing"):
        if counts.get(f"shed_{reason}"):
            shed_audio_frames.labels(reason).inc(counts[f"shed_{reason}"])


def exposition() -> tuple[bytes, str]:
    """The metrics page: every process's values in multiprocess mode, else this process's."""
    from prometheus_client import CONTENT_TYPE_LATEST

    if MULTIPROCESS:
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        return generate_latest(registry), CONTENT_TYPE_LATEST
    return generate_latest(PROCESS_REGISTRY), CONTENT_TYPE_LATEST


def _forget_this_process() -> None:
    """A stopped process's live gauges (open sockets, buffered finals) must stop counting."""
    multiprocess.mark_process_dead(os.getpid())


if MULTIPROCESS:
    atexit.register(_forget_this_process)


class GcPauses:
    """Times every garbage collection of the process: the collector holds the GIL throughout, so the
    event loop and every thread wait as long as it runs (docs/performance.md, "Garbage collection").

    `hook` goes in `gc.callbacks` and only appends to a deque: a collection can start inside any
    allocation, including one made while this thread holds a metric's lock, so observing the histogram
    from the hook could deadlock. `report` moves what was timed into the histogram, from the event
    loop (LoopLagMonitor, once a second).
    """

    def __init__(self) -> None:
        self.timed: deque[tuple[int, float]] = deque(maxlen=10_000)
        self._started = 0.0

    def hook(self, phase: str, info: Mapping[str, Any]) -> None:
        if phase == "start":
            self._started = time.perf_counter()
        else:
            self.timed.append((info["generation"], time.perf_counter() - self._started))

    def report(self) -> None:
        while self.timed:
            generation, seconds = self.timed.popleft()
            gc_pause_seconds.labels(str(generation)).observe(seconds)


gc_pauses = GcPauses()


class LoopLagMonitor:
    """Measures how late the event loop runs a short timer: the process's overload signal.

    Under overload daphne queues every frame it reads (it has no inbound back-pressure), so the
    loop falls behind; the media sessions read `lag` to decide whether to shed audio.
    """

    INTERVAL = 0.05

    def __init__(self) -> None:
        self.lag = 0.0
        self._task: asyncio.Task[None] | None = None

    def ensure_running(self) -> None:
        loop = asyncio.get_running_loop()
        if self._task is not None and self._task.get_loop() is not loop:
            self.lag = 0.0  # the lag of an earlier loop (each test has its own) says nothing of this one
        if self._task is None or self._task.done() or self._task.get_loop() is not loop:
            self._task = asyncio.ensure_future(self._measure())

    async def _measure(self) -> None:
        worst, reported_at = 0.0, time.monotonic()
        while True:
            started = time.monotonic()
            await asyncio.sleep(self.INTERVAL)
            late = time.monotonic() - started - self.INTERVAL
            # The lag falls back slowly, so shedding does not flap on and off every tick.
            self.lag = max(late, self.lag * 0.8)
            worst = max(worst, late)
            if started - reported_at >= 1.0:
                event_loop_lag_seconds.set(worst)
                gc_pauses.report()
                worst, reported_at = 0.0, started


loop_lag = LoopLagMonitor()
