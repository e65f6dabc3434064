"""The whole call lifecycle under load: Callscribe on one daphne process, driven by the ACS emulator.

    .venv/bin/python bench/lifecycle_load.py --calls 100 --arrival burst --seconds 40
    .venv/bin/python bench/lifecycle_load.py --calls 100 --arrival ramp --ramp-seconds 20 --seconds 60
    .venv/bin/python bench/lifecycle_load.py --calls 50 --arrival ramp --seconds 60 --purge-calls 200 --purge-at 25

Production's path, end to end: the emulator (`python -m emulator serve`, pinned to core 0 with this
generator) rings the app through Event Grid (one validation handshake, then an IncomingCall per call), the app
answers through the Call Automation SDK, the emulator sends signed callbacks and dials the media and
transcription sockets with a JWT the app checks, plays `bench_call` (two participants, a final every
few seconds each) and hangs up when the script ends (CallDisconnected). daphne runs pinned to core 1
with DEBUG off, the recovery worker on, the Redis channel layer; one staff viewer per call plus three on
the call list. A bare baseline (bench/baseline_server.py fed the same calls by bench/load.py) runs in
the same invocation, for CPU per packet as a ratio. With --purge-calls, the database starts with that
many calls whose transcripts expired long ago (bench/purge_fixture.py), and `manage.py purge_expired`
deletes them --purge-at seconds after the first ring, on the generator's core, while the calls stream.
See docs/performance.md, "Through the whole call lifecycle".
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import aiohttp
import websockets
from websockets.asyncio.client import ClientConnection, connect

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import purge_fixture
from bench.common import (
    BENCH_METRICS_TOKEN,
    BENCH_SECRET_KEY,
    GENERATOR_CORE,
    SERVER_CORE,
    fresh_bench_database,
    migrate,
    percentile,
    scrape_metrics,
    setup_django,
    viewer_cookie,
)
from bench.load import CallTarget, LoadPlan
from bench.media_load import drive, start_profiler, summarise
from bench.servers import Server, cpu_seconds, memory_kib, start_baseline, start_daphne
from emulator.testing import RunningEmulator, run_emulator_in_subprocess

BENCH_DATABASE = "callscribe_lifecycle_bench"  # re-created by each invocation
BENCH_APPLICATION_NAME = "callscribe-bench"  # the bench's own PostgreSQL connections, left out of the count
INCOMING_CALL_SECRET = "bench-incoming-call-secret"
SCRIPT_NAME = "bench_call"
LIST_VIEWERS = 3  # staff on the call list (ws/calls/), besides one viewer per call
VIEWER_RECONNECT_DELAYS = (0.5, 1.0, 2.0, 4.0, 8.0)  # seconds, as static/calls/live.js waits
SETTLE_SECONDS = 3.0  # after the last call is answered, before the streaming window starts
END_MARGIN = 2.0  # the streaming window ends this long before the first call's script does
VIEWER_GRACE = 5.0  # how long viewers may take to receive the last finals
PG_SAMPLE_SECONDS = 0.1
LATENCY_SLICE_SECONDS = 5.0


# --- the call script ------------------------------------------------------------------------------


def bench_call_script(seconds: float, final_every: float) -> dict[str, Any]:
    """Two participants taking turns: each says one short, numbered line every `final_every` seconds,
    until the call has lasted about `seconds`. Every line's text is unique within the call, so a final
    seen by a viewer or stored in the database matches one the emulator sent."""
    lead_in, line_seconds = 1.0, 1.5  # a line takes ~1.2 s to say, with either synthesizer
    turns = int((seconds - lead_in - 1.0 - final_every / 2 - line_seconds) / final_every) + 1
    utterances = []
    for turn in range(turns):
        start = lead_in + turn * final_every
        utterances.append({"speaker": "customer", "text": f"Caller line {turn} here.", "start": start})
        utterances.append({"speaker": "agent", "text": f"Agent line {turn} now.", "start": start + final_every / 2})
    # Silence after the last line, so the call (and its audio) lasts the run's length.
    tail = round(max(1.0, seconds - utterances[-1]["start"] - line_seconds), 2)
    agent_id = "8:acs:00000000-0000-0000-0000-00000000ac5e_00000021-3c8e-5d3a-85f4-0000000be4c4"
    return {
        "name": SCRIPT_NAME,
        "description": "Benchmark call (bench/lifecycle_load.py writes one per run length): two parties, turns.",
        "locale": "en-US",
        "sample_rate": 16000,
        "caller": "customer",
        "callee": "agent",
        "participants": [
            {"key": "customer", "raw_id": "4:+14255550199", "display_name": "Bench Caller", "pitch": 200},
            {"key": "agent", "raw_id": agent_id, "display_name": "Bench Agent", "pitch": 120},
        ],
        "lead_in": lead_in,
        "pause": 0.3,
        "tail": tail,
        "utterances": utterances,
    }


def write_bench_script(directory: Path, seconds: float, final_every: float) -> None:
    text = json.dumps(bench_call_script(seconds, final_every), indent=2)
    (directory / f"{SCRIPT_NAME}.json").write_text(text + "\n")


# --- the server ------------------------------------------------------------------------------------


def server_settings(args: argparse.Namespace, emulator: RunningEmulator, log_dir: Path) -> dict[str, str]:
    """Production settings (as bin/demo sets them, with DEBUG off), JWT checks on against the emulator."""
    settings = {
        "DATABASE_URL": args.database_url,
        "SECRET_KEY": BENCH_SECRET_KEY,
        "DEBUG": "False",
        "ALLOWED_HOSTS": "127.0.0.1,localhost",
        "LOG_LEVEL": "WARNING",
        "METRICS_TOKEN": BENCH_METRICS_TOKEN,
        "ACS_CONNECTION_STRING": emulator.connection_string,
        "ACS_RESOURCE_ID": emulator.resource_id,
        "ACS_JWT_ISSUER": emulator.issuer,
        "ACS_JWKS_URL": emulator.jwks_url,
        "ACS_VERIFY_JWT": "True",
        "INCOMING_CALL_SECRET": INCOMING_CALL_SECRET,
        "COGNITIVE_SERVICES_ENDPOINT": "https://emulated.cognitiveservices.azure.com/",
        "RECOVERY_WORKER": "True",
        "REDIS_URL": args.redis_url,
        "CHANNEL_LAYER_PREFIX": f"callscribe-lifecycle-bench-{os.getpid()}",
        "FINALS_JOURNAL_DIR": str(log_dir / "journal"),
        "AUDIO_CAPTURE": "False",
    }
    # DATABASE_POOL_* and anything else given with --server-env go to the server as they are.
    settings |= {name: value for name, value in os.environ.items() if name.startswith("DATABASE_POOL_")}
    settings |= dict(item.split("=", 1) for item in args.server_env)
    return settings


# --- samplers ----------------------------------------------------------------------------------------


class ConnectionSampler(threading.Thread):
    """Counts the bench database's PostgreSQL backends every 100 ms on a connection of its own (not
    counted, nor are the bench's other connections): what the server process holds."""

    def __init__(self, admin_url: str, database: str) -> None:
        super().__init__(daemon=True)
        self.url, self.database = admin_url, database
        self.peak = 0
        self.peak_by_state: dict[str, int] = {}
        self.server_peak = 0  # every database's backends: is PostgreSQL itself full (max_connections)?
        self.max_connections = 0
        self.samples = 0
        self.stop = threading.Event()

    def run(self) -> None:
        import psycopg

        query = (
            "SELECT coalesce(state, 'none'), count(*) FROM pg_stat_activity WHERE datname = %s "
            "AND pid <> pg_backend_pid() AND application_name NOT LIKE %s GROUP BY 1"
        )
        url = f"{self.url}?application_name={BENCH_APPLICATION_NAME}-sampler"
        with psycopg.connect(url, autocommit=True) as connection:
            self.max_connections = int(connection.execute("SHOW max_connections").fetchone()[0])
            while not self.stop.wait(PG_SAMPLE_SECONDS):
                by_state = dict(connection.execute(query, [self.database, BENCH_APPLICATION_NAME + "%"]).fetchall())
                everyone = connection.execute("SELECT count(*) FROM pg_stat_activity WHERE datname IS NOT NULL")
                self.server_peak = max(self.server_peak, everyone.fetchone()[0])
                self.samples += 1
                if sum(by_state.values()) > self.peak:
                    self.peak, self.peak_by_state = sum(by_state.values()), by_state


@dataclass
class Moment:
    """CPU seconds of the server, the emulator and this process, and the server's counters, at one time."""

    wall: float  # time.monotonic()
    clock: float  # time.time(), the emulator's clock for when it sent a final
    server_cpu: float
    emulator_cpu: float
    bench_cpu: float
    metrics: dict[str, float]

    @classmethod
    def now(cls, server: Server, emulator: RunningEmulator) -> Moment:
        return cls(
            wall=time.monotonic(),
            clock=time.time(),
            server_cpu=cpu_seconds(server.pid),
            emulator_cpu=cpu_seconds(emulator.process.pid),
            bench_cpu=time.process_time(),
            metrics=scrape_metrics(server),
        )


def packets_received(metrics: dict[str, float]) -> float:
    """Media-socket packets that reached the server: parsed ones by kind, plus audio shed unparsed."""
    return metrics.get("callscribe_packets_total", 0.0) + metrics.get("callscribe_shed_audio_frames_total", 0.0)


# --- one run --------------------------------------------------------------------------------------


@dataclass
class Observed:
    rings: list[dict[str, Any]] = field(default_factory=list)  # the control API's answer to each ring
    ring_seconds: list[float] = field(default_factory=list)  # from asking the emulator to the app answering it
    ring_errors: Counter[str] = field(default_factory=Counter)
    app_call_ids: dict[str, str] = field(default_factory=dict)  # correlation id -> Callscribe call id
    live_finals: dict[tuple[str, str], list[float]] = field(default_factory=dict)  # (call id, text) -> seen at
    # (call id, text) -> when the server's media socket took the final (its segment's received_at)
    server_received: dict[tuple[str, str], float] = field(default_factory=dict)
    finals_in_snapshots: int = 0  # finals a viewer first saw in its snapshot or a resync, untimed
    viewer_errors: int = 0
    viewer_error_kinds: Counter[str] = field(default_factory=Counter)
    viewers_never_in: int = 0  # viewers whose every handshake failed, reconnecting until the run ended
    list_viewer_messages: int = 0
    first_ring: float = 0.0  # time.monotonic()
    last_answered: float = 0.0


class Run:
    def __init__(
        self,
        args: argparse.Namespace,
        emulator: RunningEmulator,
        server: Server,
        server_env: dict[str, str],
        cookie: str,
    ) -> None:
        self.args, self.emulator, self.server, self.server_env = args, emulator, server, server_env
        self.window: tuple[Moment, Moment] | None = None  # the moments around the streaming window
        self.peak_rss_mib = 0.0
        self.headers = {"Cookie": cookie, "Origin": f"http://127.0.0.1:{server.port}"}
        self.base = f"127.0.0.1:{server.port}"
        self.observed = Observed()
        self.stop_viewers = asyncio.Event()
        self.viewers: list[asyncio.Task] = []
        self.purge: dict[str, Any] = {}

    async def go(self) -> tuple[Moment, Moment]:
        """Ring every call, stream, hang up; return the moments the run started and ended."""
        args = self.args
        start = Moment.now(self.server, self.emulator)
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as session:
            list_ready = [asyncio.Event() for _ in range(LIST_VIEWERS)]
            self.viewers += [asyncio.ensure_future(self.view_list(ready)) for ready in list_ready]
            for ready in list_ready:
                await ready.wait()
            self.observed.first_ring = time.monotonic()
            purging = asyncio.ensure_future(self.purge_expired()) if args.purge_calls else None
            spacing = args.ramp_seconds / args.calls if args.arrival == "ramp" else 0.0
            rings = []
            for index in range(args.calls):
                delay = self.observed.first_ring + index * spacing - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
                rings.append(asyncio.ensure_future(self.ring(session, index)))
            await asyncio.gather(*rings)
        window_start = self.observed.last_answered + SETTLE_SECONDS
        window_end = self.observed.first_ring + args.seconds - END_MARGIN
        if window_end - max(window_start, time.monotonic()) >= 5:
            await asyncio.sleep(max(0.0, window_start - time.monotonic()))
            opened = await asyncio.to_thread(Moment.now, self.server, self.emulator)
            await asyncio.sleep(max(0.0, window_end - time.monotonic()))
            self.window = (opened, await asyncio.to_thread(Moment.now, self.server, self.emulator))
        else:
            print("no streaming window: make --seconds longer than the ramp plus 10 s", file=sys.stderr)
        await self.wait_for_hang_ups()
        if purging is not None:
            await purging
        await asyncio.sleep(VIEWER_GRACE)
        end = await asyncio.to_thread(Moment.now, self.server, self.emulator)
        self.stop_viewers.set()
        await asyncio.gather(*self.viewers)
        return start, end

    async def purge_expired(self) -> None:
        """`manage.py purge_expired` against the server's database, --purge-at seconds after the first ring."""
        await asyncio.sleep(max(0.0, self.observed.first_ring + self.args.purge_at - time.monotonic()))
        environment = {**os.environ, **self.server_env, "LOG_LEVEL": "WARNING"}
        started = time.monotonic()
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "manage.py",
            "purge_expired",
            env=environment,
            cwd=Path(__file__).resolve().parent.parent,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        output, _ = await process.communicate()
        self.purge = {
            "started_after_first_ring_s": round(started - self.observed.first_ring, 1),
            "seconds": round(time.monotonic() - started, 1),
            "returncode": process.returncode,
            "output_tail": output.decode(errors="replace").strip().splitlines()[-3:],
        }

    async def ring(self, session: aiohttp.ClientSession, index: int) -> None:
        url = f"http://{self.base}/api/incoming-call?secret={INCOMING_CALL_SECRET}"
        # Event Grid validates a subscription once, when it is created, not before every call.
        body = {"incoming_call_url": url, "script": SCRIPT_NAME, "validate": index == 0}
        asked = time.monotonic()
        try:
            async with session.post(f"{self.emulator.base_url}/emulator/ring", json=body) as response:
                answer = await response.json()
            if index:  # the first ring carries the validation handshake too
                self.observed.ring_seconds.append(time.monotonic() - asked)
        except (aiohttp.ClientError, TimeoutError, ValueError) as error:
            self.observed.ring_errors[type(error).__name__] += 1
            return
        self.observed.rings.append(answer)
        if not 200 <= (answer.get("notification_status") or 0) < 300:
            statuses = f"validation {answer.get('validation_status')}, IncomingCall {answer.get('notification_status')}"
            self.observed.ring_errors[statuses] += 1
            return  # the app refused the IncomingCall: it will not answer
        correlation_id = answer["correlation_id"]
        call_id = await asyncio.to_thread(app_call_id, correlation_id)
        if call_id is None:
            self.observed.ring_errors["no call in the database"] += 1
            return
        self.observed.app_call_ids[correlation_id] = call_id
        self.observed.last_answered = time.monotonic()
        ready = asyncio.Event()
        self.viewers.append(asyncio.ensure_future(self.view_call(call_id, ready)))
        await ready.wait()

    async def view_call(self, call_id: str, ready: asyncio.Event) -> None:
        """A staff browser on the call's page: times each final pushed live; counts those in snapshots."""

        def take(raw: str | bytes) -> None:
            message, seen_at = json.loads(raw), time.time()
            if message.get("type") == "segment":
                key = (call_id, message["segment"]["text"])
                self.observed.live_finals.setdefault(key, []).append(seen_at)
                received_at = datetime.fromisoformat(message["segment"]["received_at"]).timestamp()
                self.observed.server_received.setdefault(key, received_at)
            elif message.get("type") in ("snapshot", "resume"):
                self.observed.finals_in_snapshots += len(message.get("segments", []))

        await self.keep_viewing(f"/ws/calls/{call_id}/", take, ready)

    async def view_list(self, ready: asyncio.Event) -> None:
        def take(raw: str | bytes) -> None:
            self.observed.list_viewer_messages += 1

        await self.keep_viewing("/ws/calls/", take, ready)

    async def keep_viewing(self, path: str, take: Callable[[str | bytes], None], ready: asyncio.Event) -> None:
        """Connected until the run ends, reconnecting after a failed handshake or a dropped socket with the
        delays of a staff page (static/calls/live.js), so that a refused viewer still costs the server what a
        browser's would. Every failure is counted; a viewer that never got in is counted once more."""
        failures, connected = 0, False
        while not self.stop_viewers.is_set():
            try:
                async with connect(f"ws://{self.base}{path}", additional_headers=self.headers, max_size=None) as viewer:
                    failures, connected = 0, True
                    ready.set()
                    async for raw in self.messages(viewer):
                        take(raw)
                    return
            except (OSError, websockets.WebSocketException) as error:
                self.viewer_failed(error)
            ready.set()  # the call's ring goes on whether or not its viewer got in
            delay = VIEWER_RECONNECT_DELAYS[min(failures, len(VIEWER_RECONNECT_DELAYS) - 1)]
            failures += 1
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.stop_viewers.wait(), delay)
        if not connected:
            self.observed.viewers_never_in += 1

    def viewer_failed(self, error: Exception) -> None:
        """Counted, and by kind: a refused or timed-out handshake reads differently from a socket dropped later."""
        self.observed.viewer_errors += 1
        self.observed.viewer_error_kinds[f"{type(error).__name__}: {str(error)[:80]}"] += 1

    async def messages(self, viewer: ClientConnection) -> AsyncIterator[str | bytes]:
        """The viewer's messages until the run ends."""
        stop = asyncio.ensure_future(self.stop_viewers.wait())
        while True:
            receive = asyncio.ensure_future(viewer.recv())
            done, _ = await asyncio.wait({receive, stop}, return_when=asyncio.FIRST_COMPLETED)
            if receive not in done:
                receive.cancel()
                return
            yield receive.result()

    async def wait_for_hang_ups(self) -> None:
        """Until every call the emulator answered has ended (its script over) and said so."""
        deadline = self.observed.first_ring + self.args.seconds + self.args.ramp_seconds + 60
        await asyncio.sleep(max(0.0, self.observed.first_ring + self.args.seconds - time.monotonic()))
        while time.monotonic() < deadline:
            calls = await asyncio.to_thread(self.emulator.calls)
            if all(call["state"] == "disconnected" for call in calls):
                return
            await asyncio.sleep(1.0)


def app_call_id(correlation_id: str, wait: float = 10.0) -> str | None:
    """Callscribe's id for the call the emulator rang (the webhook created it before answering 200)."""
    from django.db import OperationalError, close_old_connections, connection

    from calls.models import Call

    deadline = time.monotonic() + wait
    try:
        while time.monotonic() < deadline:
            try:
                found = Call.objects.filter(correlation_id=correlation_id).values_list("id", flat=True).first()
            except OperationalError:  # PostgreSQL full (max_connections): the server's problem, not ours
                connection.close()
                found = None
            if found is not None:
                return str(found)
            time.sleep(0.05)
        return None
    finally:
        close_old_connections()


# --- the report -----------------------------------------------------------------------------------


def stored_finals(call_ids: list[str]) -> tuple[dict[str, Counter[str]], Counter[str], int]:
    """Finals stored per call (text -> rows), calls by state, and audio frames counted."""
    from django.db.models import Sum

    from calls.models import Call, MediaStream, TranscriptSegment

    stored: dict[str, Counter[str]] = {call_id: Counter() for call_id in call_ids}
    for call_id, text in TranscriptSegment.objects.filter(call_id__in=call_ids).values_list("call_id", "text"):
        stored[str(call_id)][text] += 1
    states = Counter(Call.objects.filter(id__in=call_ids).values_list("state", flat=True))
    audio = MediaStream.objects.filter(call_id__in=call_ids, kind=MediaStream.Kind.AUDIO)
    frames = audio.aggregate(frames=Sum("audio_frame_count"))["frames"] or 0
    return stored, states, frames


def ms(values: list[float]) -> dict[str, float]:
    return {
        "count": len(values),
        "p50": round(1000 * percentile(values, 0.50), 1),
        "p99": round(1000 * percentile(values, 0.99), 1),
        "max": round(1000 * max(values, default=float("nan")), 1),
    }


SETUP_CALLBACKS = ("CallConnected", "ParticipantsUpdated", "MediaStreamingStarted", "TranscriptionStarted")


def setup_moments(calls: list[dict[str, Any]], window: tuple[Moment, Moment] | None) -> dict[str, float | None]:
    """When the calls' setup work ended (the app answered the last of their setup callbacks), and when the
    streaming window started, in seconds after the first ring: setup still running in the window is work
    the window's finals shared the core with."""
    rung = [call["timing"]["incoming_call_sent_at"] for call in calls if call["timing"]["incoming_call_sent_at"]]
    answered = [
        delivery["answered_at"]
        for call in calls
        for delivery in call["callbacks"]
        if delivery["type"].rsplit(".", 1)[-1] in SETUP_CALLBACKS and delivery.get("answered_at")
    ]
    if not rung:
        return {"setup_ended_after_first_ring_s": None, "window_started_after_first_ring_s": None}
    first_ring = min(rung)
    return {
        "setup_ended_after_first_ring_s": round(max(answered) - first_ring, 2) if answered else None,
        "window_started_after_first_ring_s": round(window[0].clock - first_ring, 2) if window else None,
    }


def report(run: Run, moments: tuple[Moment, Moment], pg: ConnectionSampler) -> dict[str, Any]:
    args, observed = run.args, run.observed
    start, end = moments
    calls = run.emulator.calls()
    answered = [call for call in calls if call["timing"]["answer_requested_at"] is not None]
    to_answer = [
        call["timing"]["answer_requested_at"] - call["timing"]["incoming_call_sent_at"]
        for call in answered
        if call["timing"]["incoming_call_sent_at"] is not None
    ]
    streamed = [
        call
        for call in calls
        if call["media_streaming"].get("connections_opened") and call["transcription"].get("connections_opened")
    ]
    hung_up = [
        call
        for call in calls
        if any(c["type"].endswith(".CallDisconnected") and 200 <= (c["status"] or 0) < 300 for c in call["callbacks"])
    ]
    # Every try counts: a 500 the emulator retried into a 200 is still a 500 the app answered.
    deliveries = [(d["type"].rsplit(".", 1)[-1], d["attempts"]) for call in calls for d in call["callbacks"]]
    webhooks = Counter(str(status) for _, attempts in deliveries for status in attempts)
    failed_webhooks = Counter(
        f"{name} {status}" for name, attempts in deliveries for status in attempts if not 200 <= (status or 0) < 300
    )
    webhooks_given_up = Counter(
        name for name, attempts in deliveries if not attempts or not 200 <= (attempts[-1] or 0) < 300
    )
    setup_timing = setup_moments(calls, run.window)
    event_grid = Counter(
        f"{kind} {ring.get(f'{kind}_status')}"
        for ring in observed.rings
        for kind in ("validation", "notification")
        if ring.get(f"{kind}_status") is not None
    )

    app_ids = {call["correlation_id"]: observed.app_call_ids.get(call["correlation_id"]) for call in calls}
    stored, states, audio_counted = stored_finals([call_id for call_id in app_ids.values() if call_id])
    sent_finals = lost = duplicated = 0
    latencies: list[float] = []
    window_latencies: list[float] = []
    window_slices: dict[int, list[float]] = {}  # 5-second slices of the window: when the slow ones happened
    window_finals: list[tuple[float, float]] = []  # (seconds into the window when sent, latency)
    # Each final's latency in two legs: emulator -> server (until the media socket took it; the event
    # loop's lag is most of it) and server -> viewer (storing, publishing, Redis, the viewer's socket).
    to_server: list[float] = []
    through_server: list[float] = []
    window = run.window
    for call in calls:
        call_id = app_ids.get(call["correlation_id"])
        for final in call["transcription"].get("finals_sent", []):
            sent_finals += 1
            rows = stored.get(call_id or "", Counter()).get(final["text"], 0)
            lost += rows == 0
            duplicated += max(0, rows - 1)
            seen = observed.live_finals.get((call_id or "", final["text"]))
            if seen:
                latencies.append(seen[0] - final["sent_at"])
                received_at = observed.server_received.get((call_id or "", final["text"]))
                if received_at is not None:
                    to_server.append(received_at - final["sent_at"])
                    through_server.append(seen[0] - received_at)
                if window and window[0].clock <= final["sent_at"] <= window[1].clock:
                    window_latencies.append(seen[0] - final["sent_at"])
                    window_finals.append((final["sent_at"] - window[0].clock, seen[0] - final["sent_at"]))
                    slice_index = int((final["sent_at"] - window[0].clock) // LATENCY_SLICE_SECONDS)
                    window_slices.setdefault(slice_index, []).append(seen[0] - final["sent_at"])
    audio_sent = sum(sum(call["media_streaming"].get("frames_sent", {}).values()) for call in calls)
    transcription_sent = sum(
        call["transcription"].get("intermediates_sent", 0) + len(call["transcription"].get("finals_sent", []))
        for call in calls
    )
    metrics = end.metrics
    pool = {name: value for name, value in run.server_env.items() if name.startswith("DATABASE_POOL_")}
    shed = {key: int(value) for key, value in metrics.items() if key.startswith("callscribe_shed_audio_frames_total{")}
    result: dict[str, Any] = {
        "arrival": args.arrival,
        "calls_rung": args.calls,
        "calls_answered": len(answered),
        "calls_streamed": len(streamed),
        "calls_ended": sum(call["state"] == "disconnected" for call in calls),  # the script ran out
        "calls_hung_up": len(hung_up),  # ...and the app took CallDisconnected with a 2xx
        "app_calls_by_state": dict(states),
        "ring_errors": dict(observed.ring_errors),
        "time_to_answer_ms": ms(to_answer),
        "incoming_call_response_ms": ms(observed.ring_seconds),
        **setup_timing,
        "event_grid_by_status": dict(event_grid),
        "webhooks_by_status": dict(webhooks),
        "webhooks_not_2xx": dict(failed_webhooks),
        "webhooks_given_up": dict(webhooks_given_up),
        "pg_connections_peak": pg.peak,
        "pg_connections_peak_by_state": pg.peak_by_state,
        "pg_samples": pg.samples,
        "pg_connections_all_databases_peak": pg.server_peak,
        "pg_max_connections": pg.max_connections,
        "pool_settings": pool,
        "pg_connections_over_pool_max": pg.peak > int(pool["DATABASE_POOL_MAX_SIZE"])
        if "DATABASE_POOL_MAX_SIZE" in pool
        else None,
        "finals_sent": sent_finals,
        "finals_lost": lost,
        "finals_duplicated": duplicated,
        "finals_seen_live": len(latencies),
        "finals_seen_in_snapshots": observed.finals_in_snapshots,
        "live_latency_ms": ms(latencies),
        "live_latency_window_ms": ms(window_latencies),
        "live_latency_to_server_ms": ms(to_server),
        "live_latency_through_server_ms": ms(through_server),
        "live_latency_window_p99_ms_by_slice": [ms(window_slices[index])["p99"] for index in sorted(window_slices)],
        "live_latency_window_slowest": slowest(window_finals),
        "viewers": len(observed.app_call_ids),
        "list_viewers": LIST_VIEWERS,
        "viewer_errors": observed.viewer_errors,
        "viewer_error_kinds": dict(observed.viewer_error_kinds),
        "viewers_never_in": observed.viewers_never_in,
        "audio_frames_sent": audio_sent,
        "audio_frames_counted": audio_counted,
        "audio_frames_shed": shed,
        "audio_frames_unaccounted": audio_sent
        - audio_counted
        - int(metrics.get("callscribe_shed_audio_frames_total", 0)),
        # Transcription is never shed: every TranscriptionData packet sent must have been read.
        "transcription_packets_sent": transcription_sent,
        "transcription_packets_unaccounted": transcription_sent
        - int(metrics.get('callscribe_packets_total{kind="TranscriptionData"}', 0)),
        "packets_by_kind": {
            key: int(value) for key, value in metrics.items() if key.startswith("callscribe_packets_total{")
        },
        "refused_media_sockets": {
            key: int(value) for key, value in metrics.items() if key.startswith("callscribe_refused_media_sockets")
        },
        "whole_run_server_cpu_percent": round(100 * (end.server_cpu - start.server_cpu) / (end.wall - start.wall), 1),
        "whole_run_gc_pauses": gc_pauses(start.metrics, end.metrics),
        "peak_rss_mib": run.peak_rss_mib,
        "load_average": os.getloadavg()[0],
    }
    if args.purge_calls:
        from calls.models import TranscriptSegment

        left = TranscriptSegment.objects.filter(subscription_id=purge_fixture.EXPIRED_SUBSCRIPTION).count()
        result["purge"] = {**run.purge, "expired_segments_left": left}
    if window:
        opened, closed = window
        seconds = closed.wall - opened.wall
        packets = packets_received(closed.metrics) - packets_received(opened.metrics)
        result["window"] = {
            "seconds": round(seconds, 1),
            "packets_received": int(packets),
            "server_cpu_percent": round(100 * (closed.server_cpu - opened.server_cpu) / seconds, 1),
            "cpu_us_per_packet": round(1e6 * (closed.server_cpu - opened.server_cpu) / packets, 1) if packets else None,
            "emulator_cpu_percent": round(100 * (closed.emulator_cpu - opened.emulator_cpu) / seconds, 1),
            "bench_process_cpu_percent": round(100 * (closed.bench_cpu - opened.bench_cpu) / seconds, 1),
            "gc_pauses": gc_pauses(opened.metrics, closed.metrics),
        }
    return result


def gc_pauses(before: dict[str, float], after: dict[str, float]) -> dict[str, float | None]:
    """The server's garbage-collection pauses between two scrapes (callscribe_gc_pause_seconds): how
    many, how many over 25 / 50 / 100 ms, and the bucket bound the longest was under (ms)."""
    name = "callscribe_gc_pause_seconds_bucket"

    def count(bound: str) -> float:
        return after.get(f"{name}{{le={bound}}}", 0.0) - before.get(f"{name}{{le={bound}}}", 0.0)

    bounds = sorted({key.split("{le=")[1][:-1] for key in after if key.startswith(name + "{")}, key=float)
    pauses = count("+Inf")
    longest = next((float(bound) * 1000 for bound in bounds if pauses and count(bound) >= pauses), None)
    return {
        "count": int(pauses),
        "over_25_ms": int(pauses - count("0.025")),
        "over_50_ms": int(pauses - count("0.05")),
        "over_100_ms": int(pauses - count("0.1")),
        "longest_under_ms": longest,
    }


def describe_pauses(pauses: dict[str, float | None]) -> str:
    return (
        f"{pauses['count']} pauses, over 25 / 50 / 100 ms: {pauses['over_25_ms']} / {pauses['over_50_ms']} / "
        f"{pauses['over_100_ms']}, the longest under {pauses['longest_under_ms']} ms"
    )


def slowest(finals: list[tuple[float, float]], count: int = 10) -> list[list[float]]:
    """The window's slowest finals as [seconds into the window when sent, latency in ms]: whether a high
    p99 is a moment (the calls' setup ending, a collection) or spread through the window."""
    return [[round(at, 2), round(latency * 1000, 1)] for at, latency in sorted(finals, key=lambda f: -f[1])[:count]]


def headline(result: dict[str, Any]) -> str:
    """The figures the targets are about, one per line, for a reader (the JSON has everything)."""
    window = result.get("window", {})
    answer, live, live_window = result["time_to_answer_ms"], result["live_latency_ms"], result["live_latency_window_ms"]
    pool = result["pool_settings"].get("DATABASE_POOL_MAX_SIZE", "not set")
    lines = [
        f"calls answered / streamed / ended / hang-up taken: {result['calls_answered']} / "
        f"{result['calls_streamed']} / {result['calls_ended']} / {result['calls_hung_up']} of {result['calls_rung']} "
        f"({result['arrival']}); in the app's database: {result['app_calls_by_state']}",
        f"time to answer (IncomingCall sent -> answer received): p50 {answer['p50']} ms, p99 {answer['p99']} ms; "
        f"the app's answer to the IncomingCall itself p50 {result['incoming_call_response_ms']['p50']} ms, "
        f"p99 {result['incoming_call_response_ms']['p99']} ms",
        f"the calls' setup ended (last setup callback answered) {result.get('setup_ended_after_first_ring_s')} s "
        f"after the first ring; the streaming window started {result.get('window_started_after_first_ring_s')} s "
        "after it",
        f"Event Grid deliveries by status: {result['event_grid_by_status']}",
        f"callback tries by status: {result['webhooks_by_status']}; not 2xx: {result['webhooks_not_2xx']}; "
        f"given up: {result['webhooks_given_up']}",
        f"PostgreSQL connections at peak: {result['pg_connections_peak']} (DATABASE_POOL_MAX_SIZE {pool}); "
        f"all databases {result.get('pg_connections_all_databases_peak')} of {result.get('pg_max_connections')} "
        f"({result['pg_samples']} samples)",
        f"finals sent / lost / duplicated: {result['finals_sent']} / {result['finals_lost']} / "
        f"{result['finals_duplicated']}; seen live by viewers {result['finals_seen_live']}",
        f"viewers: {result['viewers']} on calls, {result['list_viewers']} on the list; errors (refused or dropped, "
        f"each followed by a reconnect) {result['viewer_errors']} {result.get('viewer_error_kinds') or ''}; never got "
        f"in {result.get('viewers_never_in', '-')}",
        f"live latency (emulator send -> viewer): p50 {live['p50']} ms, p99 {live['p99']} ms; "
        f"in the streaming window p50 {live_window['p50']} ms, p99 {live_window['p99']} ms; p99 by 5 s of the "
        f"window: {result['live_latency_window_p99_ms_by_slice']}; the slowest [s into the window, ms]: "
        f"{result.get('live_latency_window_slowest', '-')}; in two legs, p50/p99: emulator -> server "
        f"{result['live_latency_to_server_ms']['p50']}/{result['live_latency_to_server_ms']['p99']} ms, "
        f"server -> viewer {result['live_latency_through_server_ms']['p50']}/"
        f"{result['live_latency_through_server_ms']['p99']} ms",
        f"transcription packets sent {result['transcription_packets_sent']}, "
        f"unaccounted {result['transcription_packets_unaccounted']}",
        f"audio frames sent / counted / shed / unaccounted: {result['audio_frames_sent']} / "
        f"{result['audio_frames_counted']} / {sum(result['audio_frames_shed'].values())} / "
        f"{result['audio_frames_unaccounted']}",
    ]
    if (errors := result.get("server_log_errors")) is not None:
        lines.append(f"errors in the server's log: {errors['count']} {errors['first'] or ''}")
    if purge := result.get("purge"):
        lines.append(
            f"purge: started {purge.get('started_after_first_ring_s')} s after the first ring, took "
            f"{purge.get('seconds')} s, exit {purge.get('returncode')}, expired segments left "
            f"{purge['expired_segments_left']}"
        )
    if window:
        lines.append(
            f"streaming window {window['seconds']} s: server {window['server_cpu_percent']} % of its core, "
            f"{window['cpu_us_per_packet']} us CPU/packet; baseline {result.get('baseline_cpu_us_per_packet')} us; "
            f"ratio {result.get('cpu_per_packet_ratio_to_baseline')}x"
        )
        lines.append(
            f"generator core: emulator {window['emulator_cpu_percent']} %, this process "
            f"{window['bench_process_cpu_percent']} %"
            + (" (the emulator may be the bottleneck)" if window["emulator_cpu_percent"] > 85 else "")
        )
        if pauses := window.get("gc_pauses"):
            lines.append(f"garbage collection in the window: {describe_pauses(pauses)}")
    if pauses := result.get("whole_run_gc_pauses"):
        lines.append(f"garbage collection over the whole run: {describe_pauses(pauses)}")
    return "\n".join(lines)


# --- the invocation ---------------------------------------------------------------------------------


def run_lifecycle(args: argparse.Namespace, cookie: str, log_dir: Path) -> dict[str, Any]:
    script_dir = log_dir / "scripts"
    script_dir.mkdir()
    write_bench_script(script_dir, args.seconds, args.final_every)
    # The emulator inherits this process's core (the generator's); the server gets the other one.
    with run_emulator_in_subprocess(
        script_dir=script_dir, default_script=SCRIPT_NAME, log_level="WARNING", connect_delay=0.5
    ) as emulator:
        print(f"emulator log: {emulator.log_path}", file=sys.stderr)
        settings = server_settings(args, emulator, log_dir)
        server = start_daphne(settings, core=SERVER_CORE, log_dir=log_dir)
        pg = ConnectionSampler(args.admin_database_url, args.database_name)
        profiler = start_profiler(server, args.seconds + args.ramp_seconds, log_dir) if args.profile else None
        try:
            pg.start()
            run = Run(args, emulator, server, settings, cookie)
            moments = asyncio.run(run.go())
            if profiler is not None:
                profiler.wait()
            run.peak_rss_mib = round(memory_kib(server.pid, "VmHWM") / 1024, 1)
        finally:
            pg.stop.set()
            server.stop()  # first: its connections would leave none for the report's queries
        pg.join()
        return {**report(run, moments, pg), "server_log_errors": log_errors(server.log_path)}


def log_errors(log_path: Path) -> dict[str, Any]:
    """ERROR and CRITICAL records in the server's log (LOG_LEVEL=WARNING): a run that logged any is not
    a clean run, whatever its figures; the first few distinct ones, without their timestamps."""
    records = [
        line.split(" ", 2)[2]
        for line in log_path.read_text(errors="replace").splitlines()
        if line[:4].isdigit() and line.split(" ", 3)[2:3] in (["ERROR"], ["CRITICAL"])
    ]
    return {"count": len(records), "first": list(dict.fromkeys(record[:160] for record in records))[:3]}


def run_baseline(args: argparse.Namespace, window_seconds: float, log_dir: Path) -> dict[str, Any]:
    """bench/baseline_server.py fed by bench/load.py: the same calls and participants, as long as the
    lifecycle run's streaming window, with a final every `final_every` seconds per participant."""
    server = start_baseline(core=SERVER_CORE, log_dir=log_dir)
    try:
        targets = [CallTarget(i, f"ws://127.0.0.1:{server.port}/ws/media/baseline-{i}/", "") for i in range(args.calls)]
        plan = LoadPlan(participants=2, seconds=window_seconds, final_every=args.final_every)
        result, samples = asyncio.run(drive(server, targets, plan, cookie=""))
        return summarise("baseline", result, samples)
    finally:
        server.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=100)
    parser.add_argument("--arrival", choices=("burst", "ramp"), default="burst", help="all rung at once, or paced")
    parser.add_argument("--ramp-seconds", type=float, default=20.0, help="with --arrival ramp: ring over this long")
    parser.add_argument("--seconds", type=float, default=40.0, help="how long each call lasts (its script)")
    parser.add_argument("--final-every", type=float, default=3.0, help="seconds between a participant's finals")
    parser.add_argument("--no-baseline", action="store_true")
    parser.add_argument(
        "--server-env", action="append", default=[], metavar="NAME=VALUE", help="extra server setting (repeatable)"
    )
    parser.add_argument("--database-name", default=BENCH_DATABASE, help="re-created empty by each invocation")
    parser.add_argument("--admin-database-url", default="postgres://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/5")
    parser.add_argument("--output", type=Path, help="append the run's JSON report to this file")
    parser.add_argument("--purge-calls", type=int, default=0, help="expired calls to purge while the calls stream")
    parser.add_argument("--purge-segments-per-call", type=int, default=500)
    parser.add_argument("--purge-at", type=float, default=25.0, help="seconds after the first ring")
    parser.add_argument("--profile", action="store_true", help="sample the server with py-spy during the calls")
    parser.add_argument("--show", type=Path, help="print the headline of each run in an --output file, and exit")
    args = parser.parse_args()
    if args.show:
        for line in args.show.read_text().splitlines():
            run = json.loads(line)
            print(f"# {run['args']['calls']} calls, {run['arrival']}, at {run.get('finished_at', '?')}")
            print(headline(run) + "\n")
        return
    if args.arrival == "burst":
        args.ramp_seconds = 0.0

    os.sched_setaffinity(0, {GENERATOR_CORE})
    args.database_url = fresh_bench_database(args.admin_database_url, args.database_name, keep=False)
    setup_django(f"{args.database_url}?application_name={BENCH_APPLICATION_NAME}")
    migrate()
    if args.purge_calls:
        stored = purge_fixture.fill(args.purge_calls, args.purge_segments_per_call)
        print(f"{args.purge_calls} expired calls with {stored} segments to purge", file=sys.stderr)
    cookie = viewer_cookie()
    log_dir = Path(tempfile.mkdtemp(prefix="callscribe-lifecycle-bench-"))
    print(f"server logs in {log_dir}", file=sys.stderr)
    result: dict[str, Any] = {"server": "callscribe-lifecycle", **run_lifecycle(args, cookie, log_dir)}
    result["finished_at"] = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime())
    window = result.get("window")
    if window and not args.no_baseline:
        baseline = run_baseline(args, window["seconds"], log_dir)
        result["baseline"] = {key: baseline[key] for key in ("packets_sent", "server_cpu_percent", "early_closes")}
        result["baseline_cpu_us_per_packet"] = baseline["cpu_us_per_packet"]
        if baseline["cpu_us_per_packet"] and window["cpu_us_per_packet"]:
            ratio = window["cpu_us_per_packet"] / baseline["cpu_us_per_packet"]
            result["cpu_per_packet_ratio_to_baseline"] = round(ratio, 2)
    print(json.dumps(result, indent=2), flush=True)
    print(headline(result), file=sys.stderr)
    if args.output:
        with open(args.output, "a") as output:
            output.write(json.dumps({"args": vars(args) | {"output": str(args.output)}, **result}) + "\n")


if __name__ == "__main__":
    main()
