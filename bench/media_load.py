"""Media-socket load benchmark: Callscribe on one daphne process against a bare websockets baseline.

    .venv/bin/python bench/media_load.py --calls 100 --participants 2 --seconds 30 --repeats 3

Each repeat runs the same load twice: against daphne serving Callscribe (DEBUG off, JWT checks off,
the database `callscribe_media_bench`, re-created empty for each invocation, on the local
PostgreSQL, Redis channel layer) and against
bench/baseline_server.py. Both servers are pinned to core 1 with taskset, the generator to core 0.
See docs/performance.md for what is reported and the results.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import dataclasses
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

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
from bench.load import CallTarget, Load, LoadPlan, LoadResult, final_id_of
from bench.servers import Server, cpu_seconds, memory_kib, start_baseline, start_daphne

START_MARGIN = 1.0  # seconds between the last socket connecting and the first frame
VIEWER_GRACE = 5.0  # how long viewers may take to receive the last finals
BENCH_DATABASE = "callscribe_media_bench"  # re-created by each invocation; bench/search_bench.py has its own


def create_calls(count: int) -> list[str]:
    from calls import services

    return [str(services.create_call(caller=f"4:+1425{i:06d}").id) for i in range(count)]


def media_token(call_id: str) -> str:
    import uuid

    from calls.tokens import MEDIA_SALT, sign_call_id

    return sign_call_id(uuid.UUID(call_id), salt=MEDIA_SALT)


@dataclass
class Stored:
    finals: int
    duplicates: int
    missing: int
    audio_frames: int
    streams_open: int


def stored_results(call_ids: list[str], finals_sent: set[str], wait: float = 30.0) -> Stored:
    """What the server stored, once every stream of these calls is closed (or `wait` runs out)."""
    from django.db.models import Sum

    from calls.models import MediaStream, TranscriptSegment

    deadline = time.monotonic() + wait
    streams = MediaStream.objects.filter(call_id__in=call_ids)
    while streams.filter(disconnected_at__isnull=True).exists() and time.monotonic() < deadline:
        time.sleep(0.5)
    texts = list(TranscriptSegment.objects.filter(call_id__in=call_ids).values_list("text", flat=True))
    ids = [final_id_of(text) for text in texts]
    audio = streams.filter(kind=MediaStream.Kind.AUDIO).aggregate(frames=Sum("audio_frame_count"))["frames"] or 0
    return Stored(
        finals=len(texts),
        duplicates=len(ids) - len(set(ids)),
        missing=len(finals_sent - set(ids)),
        audio_frames=audio,
        streams_open=streams.filter(disconnected_at__isnull=True).count(),
    )


# --- one run against one server --------------------------------------------------------------------


async def drive(
    server: Server,
    targets: list[CallTarget],
    plan: LoadPlan,
    cookie: str,
    extra: tuple[list[CallTarget], LoadPlan] | None = None,
    flood_seconds: float = 0.0,
    forged: tuple[float, float, float] = (0.0, 0.0, 0.0),
) -> tuple[LoadResult, dict[str, float]]:
    """Run the load; return what was sent and seen, and the server's CPU and memory during it."""
    result = LoadResult()
    loop = asyncio.get_running_loop()
    load = Load(result)
    headers = {"Cookie": cookie, "Origin": f"http://127.0.0.1:{server.port}"}
    viewer_urls = [target.viewer_url for target in targets if target.viewer_url]
    connected = [asyncio.Event() for _ in viewer_urls]
    viewers = [
        asyncio.ensure_future(load.view(url, headers, ready)) for url, ready in zip(viewer_urls, connected, strict=True)
    ]
    for ready in connected:
        await ready.wait()
    await load.connect(targets, plan)
    if extra is not None:
        await load.connect(*extra)
    load.start = loop.time() + START_MARGIN
    samples: dict[str, float] = {}

    async def sample() -> None:
        await asyncio.sleep(load.start - loop.time())
        samples["cpu_start"], samples["wall_start"] = cpu_seconds(server.pid), time.monotonic()
        samples["loop_cpu_start"] = cpu_seconds(server.pid, thread=server.pid)
        samples["generator_cpu_start"] = time.process_time()
        result.start_perf = time.perf_counter()
        lags: list[float] = []
        watcher = asyncio.ensure_future(watch_loop_lag(server, lags))
        await asyncio.sleep(plan.seconds)
        watcher.cancel()
        samples["loop_lag_max_ms"] = round(1000 * max(lags, default=0.0), 1)
        samples["loop_lag_median_ms"] = round(1000 * statistics.median(lags), 1) if lags else 0.0
        samples["cpu_end"], samples["wall_end"] = cpu_seconds(server.pid), time.monotonic()
        samples["loop_cpu_end"] = cpu_seconds(server.pid, thread=server.pid)
        samples["generator_cpu_end"] = time.process_time()
        samples["rss_end_kib"] = memory_kib(server.pid, "VmRSS")

    sampler = asyncio.ensure_future(sample())
    flooder = [load.flood(targets[0].media_url, flood_seconds)] if flood_seconds else []
    per_second, after, seconds = forged
    forger = [load.forge(forged_url(targets[0].media_url), per_second, after, seconds)] if per_second else []
    await asyncio.gather(load.run(), *flooder, *forger)
    await sampler
    await asyncio.sleep(1.0)  # frames still queued in the server are part of the load's cost
    samples["cpu_settled"] = cpu_seconds(server.pid)
    deadline = loop.time() + VIEWER_GRACE
    while len(result.finals_seen_by_viewers) < result.viewer_expected_finals and loop.time() < deadline:
        await asyncio.sleep(0.1)
    await load.close()
    load.stop_viewers.set()
    await asyncio.gather(*viewers)
    return result, samples


def forged_url(media_url: str) -> str:
    """The media URL with its signed token replaced by random text of about the same length."""
    base, token = media_url.rstrip("/").rsplit("/", 1)
    return f"{base}/{base64.urlsafe_b64encode(os.urandom(len(token) * 3 // 4)).decode()}/"


async def watch_loop_lag(server: Server, lags: list[float]) -> None:
    """Scrape the server's event-loop lag once a second (off the measurement's clock)."""
    while server.name == "daphne":
        await asyncio.sleep(1.0)
        metrics = await asyncio.to_thread(scrape_metrics, server)
        lags.append(metrics.get("callscribe_event_loop_lag_seconds", 0.0))


def run_once(args: argparse.Namespace, kind: str, cookie: str, log_dir: Path) -> dict[str, object]:
    if kind == "baseline":
        server = start_baseline(core=SERVER_CORE, log_dir=log_dir)
    elif kind == "bare-daphne":
        server = start_daphne({}, core=SERVER_CORE, log_dir=log_dir, application="bench.bare_asgi:application")
    else:
        server = start_daphne(server_settings(args, log_dir), core=SERVER_CORE, log_dir=log_dir)
    try:
        call_ids = create_calls(args.calls + args.overload_calls) if kind == "callscribe" else []
        targets, extra = build_targets(args, server, call_ids, kind)
        plan = LoadPlan(
            participants=args.participants,
            seconds=args.seconds,
            final_every=args.final_every,
            audio_only=args.audio_only,
            synchronised_finals=args.synchronised_finals,
        )
        extra_load = None
        if extra:
            extra_plan = dataclasses.replace(plan, seconds=args.overload_seconds, start_delay=args.overload_after)
            extra_load = (extra, extra_plan)
        profiler = start_profiler(server, args.seconds, log_dir) if kind == "callscribe" and args.profile else None
        forged = (args.forged_per_second, args.forged_after, args.forged_seconds) if kind == "callscribe" else (0, 0, 0)
        result, samples = asyncio.run(drive(server, targets, plan, cookie, extra_load, args.flood_seconds, forged))
        if profiler is not None:
            profiler.wait()
        report = summarise(kind, result, samples)
        report["peak_rss_mib"] = round(memory_kib(server.pid, "VmHWM") / 1024, 1)
        if kind == "callscribe" and args.overload_calls:
            overload_end = args.overload_after + args.overload_seconds
            report["recovered_after_s"] = recovery_seconds(result, args.overload_after, overload_end)
            report["normal_calls_live_latency_by_second"] = latency_by_second(result, calls=args.calls)
        if kind == "callscribe" and args.forged_per_second:
            forged_end = args.forged_after + args.forged_seconds
            report["recovered_after_s"] = recovery_seconds(result, args.forged_after, forged_end)
            report["forged_attempts"] = len(result.forged_handshake_seconds)
            report["forged_handshake_ms"] = {
                "p50": round(1000 * percentile(result.forged_handshake_seconds, 0.50), 1),
                "p99": round(1000 * percentile(result.forged_handshake_seconds, 0.99), 1),
            }
        if kind == "callscribe":
            stored = stored_results(call_ids, set(result.finals_sent))
            report.update(
                finals_stored=stored.finals,
                finals_missing=stored.missing,
                finals_duplicated=stored.duplicates,
                audio_frames_counted=stored.audio_frames,
                streams_left_open=stored.streams_open,
            )
            metrics = scrape_metrics(server)
            report["audio_frames_shed"] = int(metrics.get("callscribe_shed_audio_frames_total", 0))
            report["sockets_closed_for_flooding"] = int(metrics.get("callscribe_media_sockets_closed_total", 0))
            report["server_side_ms"] = {
                key.removeprefix("callscribe_"): value for key, value in metrics.items() if key.endswith("_ms")
            }
            report["event_loop_lag_ms"] = {"median": samples["loop_lag_median_ms"], "max": samples["loop_lag_max_ms"]}
            # A flooding socket's frames still in flight when the server closed it are discarded unread.
            report["audio_frames_unaccounted"] = (
                report["audio_frames_sent"]
                + report["flood_frames_sent"]
                - report["audio_frames_counted"]
                - report["audio_frames_shed"]
            )
        return report
    finally:
        server.stop()


def start_profiler(server: Server, seconds: float, log_dir: Path) -> subprocess.Popen[bytes]:
    """py-spy (pip install py-spy) samples the server during the run; collapsed stacks go to the log dir."""
    output = log_dir / f"profile-{server.pid}.txt"
    print(f"profile: {output}", file=sys.stderr)
    command = ["py-spy", "record", "--nonblocking", "--threads", "-f", "raw", "-r", "200", "-o", str(output)]
    command += ["-d", str(int(seconds)), "-p", str(server.pid)]
    py_spy = Path(sys.executable).parent / "py-spy"
    command[0] = str(py_spy) if py_spy.exists() else "py-spy"
    return subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def server_settings(args: argparse.Namespace, log_dir: Path) -> dict[str, str]:
    settings = {
        "DATABASE_URL": args.database_url,
        "SECRET_KEY": BENCH_SECRET_KEY,
        "DEBUG": "False",
        "ACS_VERIFY_JWT": "False",
        "ALLOWED_HOSTS": "127.0.0.1,localhost",
        "LOG_LEVEL": "WARNING",
        "METRICS_TOKEN": BENCH_METRICS_TOKEN,
        "RECOVERY_WORKER": "False",
        "CHANNEL_LAYER_BACKEND": args.channel_layer,
        "AUDIO_CAPTURE": str(args.audio_capture),
        "AUDIO_CAPTURE_DIR": str(log_dir / "audio"),
        "FINALS_JOURNAL_DIR": str(log_dir / "journal"),
    }
    if args.redis_url:
        settings["REDIS_URL"] = args.redis_url
        settings["CHANNEL_LAYER_PREFIX"] = f"callscribe-bench-{os.getpid()}"
    return settings


def build_targets(
    args: argparse.Namespace, server: Server, call_ids: list[str], kind: str
) -> tuple[list[CallTarget], list[CallTarget]]:
    base = f"ws://127.0.0.1:{server.port}"
    targets = []
    for index in range(args.calls + args.overload_calls):
        if kind != "callscribe":
            targets.append(CallTarget(index, f"{base}/ws/media/baseline-{index}/", ""))
            continue
        call_id = call_ids[index]
        watched = index < args.viewers
        viewer = f"{base}/ws/calls/{call_id}/" if watched else ""
        targets.append(CallTarget(index, f"{base}/ws/media/{media_token(call_id)}/", viewer))
    return targets[: args.calls], targets[args.calls :]


def summarise(kind: str, result: LoadResult, samples: dict[str, float]) -> dict[str, object]:
    wall = samples["wall_end"] - samples["wall_start"]
    busy = samples["cpu_end"] - samples["cpu_start"]
    total_cpu = samples["cpu_settled"] - samples["cpu_start"]
    latencies = [value * 1000 for value in result.finals_seen_by_viewers.values()]
    report: dict[str, object] = {
        "server": kind,
        "packets_sent": result.packets_sent,
        "packets_per_second": round(result.packets_sent / wall),
        "audio_frames_sent": result.audio_frames_sent,
        "flood_frames_sent": result.flood_frames_sent,
        "finals_sent": len(result.finals_sent),
        "load_average": os.getloadavg()[0],
        "server_cpu_percent": round(100 * busy / wall, 1),
        # the main thread runs the event loop; the others store to the database (the finals writer,
        # database_sync_to_async's thread) or write audio files
        "server_loop_thread_cpu_percent": round(100 * (samples["loop_cpu_end"] - samples["loop_cpu_start"]) / wall, 1),
        "cpu_us_per_packet": round(1e6 * total_cpu / max(result.packets_sent, 1), 1),
        "generator_late_p99_ms": round(percentile(result.lateness, 0.99) * 1000, 1),
        "generator_cpu_percent": round(100 * (samples["generator_cpu_end"] - samples["generator_cpu_start"]) / wall, 1),
        "early_closes": dict(result.closes),
    }
    if kind == "callscribe":
        report.update(
            finals_seen_by_viewers=len(result.finals_seen_by_viewers),
            viewer_expected_finals=result.viewer_expected_finals,
            viewer_resyncs=result.viewer_resyncs,
            viewer_errors=result.viewer_errors,
            live_latency_ms={
                "p50": round(percentile(latencies, 0.50), 1),
                "p95": round(percentile(latencies, 0.95), 1),
                "p99": round(percentile(latencies, 0.99), 1),
                "max": round(max(latencies, default=float("nan")), 1),
            },
            live_latency_by_second=latency_by_second(result),
        )
    return report


def latency_by_second(result: LoadResult, calls: int | None = None) -> dict[int, float]:
    """The worst live latency (ms) of the finals sent in each 5 s slice of the run, to see recovery;
    with `calls`, only the finals of the first `calls` calls (the normal load of an overload run)."""
    worst: dict[int, float] = {}
    for final_id, latency in result.finals_seen_by_viewers.items():
        if calls is not None and int(final_id.split(".")[0]) >= calls:
            continue
        second = int((result.finals_sent[final_id] - result.start_perf) // 5 * 5)
        worst[second] = max(worst.get(second, 0.0), round(latency * 1000, 1))
    return dict(sorted(worst.items()))


def recovery_seconds(result: LoadResult, overload_start: float, overload_end: float) -> float | None:
    """How long after the overload ended live latency stayed above normal: the time from the end to
    the send time of the last final slower than normal (twice the p99 before the overload, at least
    50 ms). 0 when no final sent after the end was slow; None without finals before the overload."""
    sent_at = {final_id: sent - result.start_perf for final_id, sent in result.finals_sent.items()}
    seen = result.finals_seen_by_viewers
    before = [latency for final_id, latency in seen.items() if sent_at[final_id] < overload_start]
    if not before:
        return None
    normal = max(0.05, 2 * percentile(before, 0.99))
    slow_after = [sent_at[final_id] - overload_end for final_id, latency in seen.items() if latency > normal]
    return round(max([0.0, *slow_after]), 1)


def median_latency(rows: list[dict[str, object]], key: str) -> float | None:
    return statistics.median(row["live_latency_ms"][key] for row in rows) if rows else None


def print_summary(reports: list[dict[str, object]]) -> None:
    ours = [report for report in reports if report["server"] == "callscribe"]
    baseline = [report for report in reports if report["server"] == "baseline"]
    floor = [report for report in reports if report["server"] == "bare-daphne"]

    def median(rows: list[dict[str, object]], key: str) -> float:
        return statistics.median(float(row[key]) for row in rows) if rows else float("nan")

    ratio = median(ours, "cpu_us_per_packet") / median(baseline, "cpu_us_per_packet") if baseline else float("nan")
    summary = {
        "repeats": len(ours),
        "median_server_cpu_percent": median(ours, "server_cpu_percent"),
        "median_cpu_us_per_packet": median(ours, "cpu_us_per_packet"),
        "median_baseline_cpu_us_per_packet": median(baseline, "cpu_us_per_packet"),
        "cpu_per_packet_ratio_to_baseline": round(ratio, 2),
        "median_bare_daphne_cpu_us_per_packet": median(floor, "cpu_us_per_packet"),
        "median_live_latency_p99_ms": statistics.median(row["live_latency_ms"]["p99"] for row in ours)
        if ours
        else None,
        "max_peak_rss_mib": max((row["peak_rss_mib"] for row in ours), default=None),
        "finals_missing_total": sum(row["finals_missing"] for row in ours),
        "finals_duplicated_total": sum(row["finals_duplicated"] for row in ours),
        "audio_frames_unaccounted_total": sum(row["audio_frames_unaccounted"] for row in ours),
    }
    print(json.dumps({"summary": summary}, indent=2))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=100)
    parser.add_argument("--participants", type=int, default=2)
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--viewers", type=int, default=None, help="live viewers (one per call); default: every call")
    parser.add_argument("--final-every", type=float, default=3.0, help="seconds between a participant's finals")
    parser.add_argument(
        "--synchronised-finals",
        action="store_true",
        help="every call sends its finals at the same moment (worst-case bursts); default: spread out",
    )
    parser.add_argument("--audio-only", action="store_true", help="no transcription socket, no viewers")
    parser.add_argument("--audio-capture", action="store_true", help="run the server with AUDIO_CAPTURE=True")
    parser.add_argument("--no-baseline", action="store_true")
    parser.add_argument("--floor", action="store_true", help="also run the load against bench/bare_asgi.py on daphne")
    parser.add_argument("--profile", action="store_true", help="sample the server with py-spy during each run")
    parser.add_argument("--overload-calls", type=int, default=0, help="extra calls added mid-run (overload test)")
    parser.add_argument("--overload-after", type=float, default=5.0)
    parser.add_argument("--overload-seconds", type=float, default=10.0)
    parser.add_argument("--flood-seconds", type=float, default=0.0, help="add one client flooding audio this long")
    parser.add_argument("--forged-per-second", type=float, default=0.0, help="add handshakes with a forged token")
    parser.add_argument("--forged-after", type=float, default=10.0)
    parser.add_argument("--forged-seconds", type=float, default=10.0)
    parser.add_argument("--admin-database-url", default="postgres://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/0", help="'' for the in-memory layer")
    parser.add_argument("--channel-layer", choices=("core", "pubsub"), default="pubsub", help="channels_redis backend")
    parser.add_argument("--output", type=Path, help="append each run's JSON report to this file")
    parser.add_argument(
        "--keep-database", action="store_true", help=f"reuse {BENCH_DATABASE} as it is instead of re-creating it"
    )
    args = parser.parse_args()
    args.viewers = args.calls if args.viewers is None else args.viewers
    if args.audio_only:
        args.viewers = 0

    os.sched_setaffinity(0, {GENERATOR_CORE})
    args.database_url = fresh_bench_database(args.admin_database_url, BENCH_DATABASE, keep=args.keep_database)
    setup_django(args.database_url)
    migrate()
    cookie = viewer_cookie()
    log_dir = Path(tempfile.mkdtemp(prefix="callscribe-bench-"))
    print(f"server logs in {log_dir}", file=sys.stderr)
    reports = []
    for repeat in range(args.repeats):
        kinds = ["callscribe"] + ([] if args.no_baseline else ["baseline"]) + (["bare-daphne"] if args.floor else [])
        for kind in kinds:
            report = {"repeat": repeat + 1, **run_once(args, kind, cookie, log_dir)}
            reports.append(report)
            print(json.dumps(report), flush=True)
            if args.output:
                with open(args.output, "a") as output:
                    output.write(json.dumps({"args": vars(args) | {"output": str(args.output)}, **report}) + "\n")
    print_summary(reports)


if __name__ == "__main__":
    main()
