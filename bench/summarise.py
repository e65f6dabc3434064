"""Medians of `media_load.py --output` files, as a Markdown table for docs/performance.md.

.venv/bin/python bench/summarise.py results/*.jsonl
"""

from __future__ import annotations

import json
import math
import statistics
import sys
from collections import defaultdict
from pathlib import Path

COLUMNS = (
    ("server CPU %", "server_cpu_percent"),
    ("loop thread CPU %", "server_loop_thread_cpu_percent"),
    ("µs CPU/packet", "cpu_us_per_packet"),
    ("packets/s", "packets_per_second"),
    ("live p50 ms", ("live_latency_ms", "p50")),
    ("live p99 ms", ("live_latency_ms", "p99")),
    ("loop lag median ms", ("event_loop_lag_ms", "median")),
    ("normal again after s", "recovered_after_s"),
    ("peak RSS MiB", "peak_rss_mib"),
    ("finals sent", "finals_sent"),
    ("finals missing", "finals_missing"),
    ("finals duplicated", "finals_duplicated"),
    ("audio sent", "audio_frames_sent"),
    ("audio counted", "audio_frames_counted"),
    ("audio shed", "audio_frames_shed"),
    ("audio unaccounted", "audio_frames_unaccounted"),
)


def value(row: dict, key: str | tuple[str, str]) -> float | None:
    found = row.get(key[0], {}).get(key[1]) if isinstance(key, tuple) else row.get(key)
    return float(found) if isinstance(found, int | float) and not math.isnan(found) else None


def main(paths: list[str]) -> None:
    groups: dict[tuple[str, str], list[dict]] = defaultdict(list)
    for path in paths:
        for line in Path(path).read_text().splitlines():
            row = json.loads(line)
            groups[(Path(path).stem, row["server"])].append(row)
    print("| run | server | repeats | " + " | ".join(name for name, _ in COLUMNS) + " |")
    print("|---" * (len(COLUMNS) + 3) + "|")
    for (run, server), rows in groups.items():
        cells = []
        for _, key in COLUMNS:
            values = [found for row in rows if (found := value(row, key)) is not None]
            cells.append(f"{statistics.median(values):g}" if values else "")
        print(f"| {run} | {server} | {len(rows)} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main(sys.argv[1:])
