"""What one read of a call page's description costs the core: the live feed's read (streaming.live.call_view,
fixed SQL through calls/call_reads.py) against the same description read through the ORM with the
call's participants, streams and gaps prefetched (how it was read before), alternating, in one process.
And the same for the read every callback, answer and stream change starts with, a call locked for a
change: calls/call_reads.locked_call against the ORM's select_for_update(no_key=True), each in a
transaction of its own (the transaction's BEGIN and COMMIT counted in both).

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres .venv/bin/python bench/description_read.py \\
        [--calls 100] [--rounds 10] [--output results/description_read.jsonl]

Re-creates a database of its own (`callscribe_description_bench`) with --calls connected calls shaped like
the lifecycle bench's: two participants, an audio and a transcription stream, and for every other call an
ended gap. Each round reads every call's description once each way, then locks every call once each
way; the report gives process CPU (and wall) time per read, the median over rounds, and the ratios. The
live feed reads a call's description at each call and stream event of a watched call, six times per call
in a burst; a call is locked about eleven times over its life (docs/performance.md).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import fresh_bench_database, migrate, setup_django

BENCH_DATABASE = "callscribe_description_bench"


def fill(calls: int) -> list[str]:
    from django.utils import timezone

    from calls import services
    from calls.models import Call, Gap, MediaStream, Participant

    ids = []
    for number in range(calls):
        call = services.create_call(direction=Call.Direction.INBOUND, caller=f"4:+1555000{number:04}")
        now = timezone.now()
        Call.objects.filter(pk=call.pk).update(state=Call.State.CONNECTED, connected_at=now)
        Participant.objects.create(call=call, raw_id=f"4:+1555000{number:04}")
        Participant.objects.create(call=call, raw_id="8:acs:agent", role=Participant.Role.AGENT)
        audio = MediaStream.objects.create(call=call, kind=MediaStream.Kind.AUDIO, connected_at=now)
        MediaStream.objects.create(call=call, kind=MediaStream.Kind.TRANSCRIPTION, connected_at=now)
        if number % 2:
            ended = now + timedelta(seconds=1)
            Gap.objects.create(call=call, stream=audio, reason=Gap.Reason.AUDIO_GAP, started_at=now, ended_at=ended)
        ids.append(str(call.pk))
    return ids


def orm_call_view(call_id: str) -> dict[str, Any] | None:
    from calls import display
    from calls.models import Call

    call = Call.objects.prefetch_related("participants", "streams", "gaps").filter(pk=call_id).first()
    return display.call_view(call) if call is not None else None


def orm_locked_call(call_id: str) -> Any:
    from django.db import transaction

    from calls.models import Call

    with transaction.atomic():
        return Call.objects.select_for_update(no_key=True).filter(pk=call_id).first()


def fixed_locked_call(call_id: str) -> Any:
    from django.db import transaction

    from calls import call_reads

    with transaction.atomic():
        return call_reads.locked_call(call_id)


def fields(call: Any) -> list[Any]:
    return [getattr(call, field.attname) for field in type(call)._meta.concrete_fields]


def per_read(read: Callable[[str], Any], ids: list[str]) -> tuple[float, float]:
    cpu, wall = time.process_time(), time.perf_counter()
    for call_id in ids:
        read(call_id)
    return (time.process_time() - cpu) * 1000 / len(ids), (time.perf_counter() - wall) * 1000 / len(ids)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--calls", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--database-name", default=BENCH_DATABASE)
    parser.add_argument(
        "--admin-database-url", default=os.environ.get("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/postgres")
    )
    parser.add_argument("--output", type=Path, help="append the run's JSON report to this file")
    options = parser.parse_args()

    os.environ.setdefault("DATABASE_POOL_MIN_SIZE", "1")
    setup_django(fresh_bench_database(options.admin_database_url, options.database_name, keep=False))
    migrate()
    from streaming import live

    ids = fill(options.calls)
    ways = {
        "orm_prefetch": orm_call_view,
        "fixed_sql": live.call_view,
        "orm_locked": orm_locked_call,
        "fixed_locked": fixed_locked_call,
    }
    if any(orm_call_view(call_id) != live.call_view(call_id) for call_id in ids):
        raise SystemExit("the two reads disagree: fix calls/call_reads.py before timing it")
    if any(fields(orm_locked_call(call_id)) != fields(fixed_locked_call(call_id)) for call_id in ids):
        raise SystemExit("the two locked reads disagree: fix calls/call_reads.py before timing it")
    times: dict[str, list[tuple[float, float]]] = {name: [] for name in ways}
    for _ in range(options.rounds):
        for name, read in ways.items():
            times[name].append(per_read(read, ids))
    result: dict[str, Any] = {"calls": options.calls, "rounds": options.rounds}
    for name in ways:
        result[f"{name}_cpu_ms"] = round(statistics.median(cpu for cpu, _ in times[name]), 3)
        result[f"{name}_wall_ms"] = round(statistics.median(wall for _, wall in times[name]), 3)
    result["cpu_ratio"] = round(result["fixed_sql_cpu_ms"] / result["orm_prefetch_cpu_ms"], 3)
    result["locked_cpu_ratio"] = round(result["fixed_locked_cpu_ms"] / result["orm_locked_cpu_ms"], 3)
    result["finished_at"] = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime())
    print(json.dumps(result, indent=2))
    if options.output:
        with open(options.output, "a") as output:
            output.write(json.dumps(result) + "\n")


if __name__ == "__main__":
    main()
