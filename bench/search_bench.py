"""How fast is transcript search at 100,000 segments?

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres .venv/bin/python bench/search_bench.py

Creates (or reuses, with --reuse) a database `callscribe_bench` on that server, fills it with realistic
support-call segments, then times what the call list does for a search: count the matches, fetch the
best-ranked page of 20, and build highlighted snippets (ts_headline) for that page. Prints the median
and 95th percentile of each over --repeats runs. The database is left in place for --reuse.
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import time
from datetime import timedelta
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import psycopg

ROOT = Path(__file__).resolve().parent.parent
BENCH_DATABASE = "callscribe_bench"
TICKS_PER_SECOND = 10_000_000
PAGE = 20

DEVICES = ["router", "modem", "TV box", "phone", "laptop", "set-top box", "mesh extender", "landline"]
PROBLEMS = ["dropping out", "blinking orange", "restarting itself", "very slow", "not connecting", "freezing"]
TIMES = ["this morning", "last night", "Tuesday", "the weekend", "the storm", "the update"]
ACCOUNT = ["bill", "direct debit", "contract", "refund", "late fee", "credit", "upgrade", "discount"]
RARE = ["firmware", "fibre splice", "ombudsman", "porting code", "static IP", "line fault"]
TEMPLATES = [
    "My {device} keeps {problem} since {time}.",
    "Have you tried restarting the {device}?",
    "I'm calling about my {account}, it looks wrong.",
    "Let me check your {account} for you.",
    "The {device} was fine until {time}.",
    "Can you read me the light pattern on the {device}?",
    "I can see a {rare} on your account.",
    "I'll book an engineer to look at the {device}.",
    "Is there anything else I can help with today?",
    "Thanks, that's everything.",
    "Could you confirm the first line of your address?",
    "I've applied a {account} to your account.",
    "It says {problem} on the screen.",
    "We had a {rare} reported in your area {time}.",
]
SEARCHES = [
    ("one common word", "router", False),
    ("a rarer word", "firmware", False),
    ("two words", "engineer modem", False),
    ("a quoted phrase", '"line fault"', False),
    ("with an excluded word", "router -restarting", False),
    ("either word", "modem OR router", False),
    ("common word, last 7 days, ended calls", "router", True),
]


def sentence(rng: random.Random) -> str:
    return rng.choice(TEMPLATES).format(
        device=rng.choice(DEVICES),
        problem=rng.choice(PROBLEMS),
        time=rng.choice(TIMES),
        account=rng.choice(ACCOUNT),
        rare=rng.choice(RARE),
    )


def bench_database_url() -> str:
    base = os.environ.get("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/postgres")
    with psycopg.connect(base, autocommit=True) as connection:
        exists = connection.execute("SELECT 1 FROM pg_database WHERE datname = %s", [BENCH_DATABASE]).fetchone()
        if not exists:
            connection.execute(f"CREATE DATABASE {BENCH_DATABASE}")
    return urlunsplit(urlsplit(base)._replace(path=f"/{BENCH_DATABASE}"))


def setup_django() -> None:
    os.environ["DATABASE_URL"] = bench_database_url()
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    sys.path.insert(0, str(ROOT))
    import django
    from django.core.management import call_command

    django.setup()
    call_command("migrate", verbosity=0)


def generate(segments: int, calls: int, seed: int = 7) -> None:
    from django.db import connection, transaction
    from django.utils import timezone

    from calls.models import Call, Participant, TranscriptSegment

    rng = random.Random(seed)
    now = timezone.now()
    per_call = segments // calls
    with transaction.atomic():
        TranscriptSegment.objects.all().delete()
        Participant.objects.all().delete()
        Call.objects.all().delete()
        new_calls = Call.objects.bulk_create(
            Call(
                direction=Call.Direction.INBOUND,
                caller=f"4:+1425555{index:04}",
                callee="8:acs:agent",
                state=Call.State.DISCONNECTED if index % 20 else Call.State.CONNECTED,
                last_sequence=per_call,
            )
            for index in range(calls)
        )
        for index, call in enumerate(new_calls):  # created_at is auto_now_add: spread calls over 90 days
            call.created_at = now - timedelta(hours=index * 90 * 24 / calls)
            call.ended_at = call.created_at + timedelta(minutes=8) if call.state == Call.State.DISCONNECTED else None
        Call.objects.bulk_update(new_calls, ["created_at", "ended_at"], batch_size=1000)
        batch: list[TranscriptSegment] = []
        for call in new_calls:
            for sequence in range(1, per_call + 1):
                speaker = call.caller if sequence % 2 else "8:acs:agent"
                batch.append(
                    TranscriptSegment(
                        call=call,
                        subscription_id="bench",
                        participant_raw_id=speaker,
                        text=sentence(rng),
                        confidence=round(rng.uniform(0.5, 0.99), 2),
                        offset_ticks=sequence * 4 * TICKS_PER_SECOND,
                        duration_ticks=3 * TICKS_PER_SECOND,
                        received_at=call.created_at + timedelta(seconds=sequence * 4),
                        sequence=sequence,
                    )
                )
            if len(batch) >= 5000:
                TranscriptSegment.objects.bulk_create(batch)
                batch = []
        TranscriptSegment.objects.bulk_create(batch)
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE")


def timed(function) -> tuple[float, object]:
    start = time.perf_counter()
    result = function()
    return (time.perf_counter() - start) * 1000, result


def measure(text: str, filtered: bool, repeats: int) -> dict[str, list[float]]:
    from django.utils import timezone

    from calls.models import Call
    from calls.search import CallFilters, filter_calls, matching_segments, search_hits

    calls = Call.objects.all()
    if filtered:
        week_ago = timezone.localdate() - timedelta(days=7)
        calls = filter_calls(Call.objects.all(), CallFilters(date_from=week_ago, state=Call.State.DISCONNECTED))
    times: dict[str, list[float]] = {"count": [], "page of 20": [], "headlines": [], "total": []}
    for run in range(repeats + 1):
        segments = matching_segments(text, calls)
        count_ms, count = timed(segments.count)
        page_ms, page = timed(lambda segments=segments: list(segments[:PAGE]))
        headline_ms, _ = timed(lambda page=page: search_hits(text, page))
        if run == 0:  # warm-up
            times["matches"] = [count]
            continue
        for name, value in (("count", count_ms), ("page of 20", page_ms), ("headlines", headline_ms)):
            times[name].append(value)
        times["total"].append(count_ms + page_ms + headline_ms)
    return times


def p95(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--segments", type=int, default=100_000)
    parser.add_argument("--calls", type=int, default=1_000)
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--reuse", action="store_true", help="keep the segments already in callscribe_bench")
    options = parser.parse_args()
    setup_django()
    from calls.models import TranscriptSegment

    if not options.reuse or not TranscriptSegment.objects.exists():
        generate_ms, _ = timed(lambda: generate(options.segments, options.calls))
        print(f"generated {options.segments:,} segments in {options.calls:,} calls in {generate_ms / 1000:.1f} s")
    print(f"{TranscriptSegment.objects.count():,} segments; {options.repeats} runs each (after one warm-up)\n")
    print(f"{'search':<48} {'matches':>8}  {'count':>13}  {'page of 20':>13}  {'headlines':>13}  {'total':>13}")
    print(f"{'':<48} {'':>8}  {'median / p95 ms':>13}")
    for label, text, filtered in SEARCHES:
        times = measure(text, filtered, options.repeats)
        cells = [
            f"{statistics.median(times[name]):6.1f} /{p95(times[name]):6.1f}"
            for name in ("count", "page of 20", "headlines", "total")
        ]
        name = f"{label}: {text}"
        print(f"{name:<48} {times['matches'][0]:>8,}  " + "  ".join(cells))


if __name__ == "__main__":
    main()
