"""Expired calls for the purge-while-streaming measurement (docs/performance.md, "Purging while calls stream").

    .venv/bin/python bench/purge_fixture.py --calls 200 --segments-per-call 500

Re-creates the media benchmark's database (bench/media_load.py's) and fills it with calls that ended
400 days ago, each with its transcript: with the default RETENTION_TRANSCRIPT_DAYS (365) every one of
them is due. Then `bench/media_load.py --keep-database` streams live calls into the same database
while `manage.py purge_expired` deletes them.
"""

from __future__ import annotations

import argparse
import sys
import time
from datetime import timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import fresh_bench_database, migrate, setup_django
from bench.media_load import BENCH_DATABASE

BATCH = 5000
EXPIRED_SUBSCRIPTION = "expired"  # the fixture's segments, told apart from live calls' ones


def fill(calls: int, segments_per_call: int) -> int:
    from django.utils import timezone

    from calls.models import Call, TranscriptSegment

    ended = timezone.now() - timedelta(days=400)
    created = Call.objects.bulk_create(
        Call(
            direction=Call.Direction.INBOUND,
            caller=f"4:+1425555{number:04d}",
            state=Call.State.DISCONNECTED,
            connected_at=ended - timedelta(minutes=5),
            ended_at=ended,
            last_sequence=segments_per_call,
        )
        for number in range(calls)
    )
    Call.objects.update(created_at=ended - timedelta(minutes=5))
    segments = (
        TranscriptSegment(
            call=call,
            subscription_id=EXPIRED_SUBSCRIPTION,
            participant_raw_id=call.caller,
            text=f"Line {number} of a call long over, said by the caller about the account.",
            confidence=0.9,
            offset_ticks=number * 30_000_000,
            duration_ticks=20_000_000,
            words=[],
            received_at=ended,
            sequence=number + 1,
        )
        for call in created
        for number in range(segments_per_call)
    )
    stored = 0
    batch: list[TranscriptSegment] = []
    for segment in segments:
        batch.append(segment)
        if len(batch) == BATCH:
            stored += len(TranscriptSegment.objects.bulk_create(batch))
            batch = []
    stored += len(TranscriptSegment.objects.bulk_create(batch))
    return stored


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=200)
    parser.add_argument("--segments-per-call", type=int, default=500)
    parser.add_argument("--admin-database-url", default="postgres://postgres@127.0.0.1:5432/postgres")
    args = parser.parse_args()
    database_url = fresh_bench_database(args.admin_database_url, BENCH_DATABASE, keep=False)
    setup_django(database_url)
    migrate()
    started = time.monotonic()
    stored = fill(args.calls, args.segments_per_call)
    print(f"{args.calls} expired calls, {stored} segments in {time.monotonic() - started:.1f} s: {database_url}")


if __name__ == "__main__":
    main()
