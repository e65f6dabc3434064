"""A local append-only journal for final transcript segments the database could not take.

While PostgreSQL is down a media socket keeps its finals in memory; past MAX_BUFFERED_FINALS, or
when the socket closes before the database is back, they are appended here (JSON lines, fsync'd)
and stored later by `replay`, which every process runs when it starts serving and every few
seconds while journal files exist. Storing is idempotent (a final's unique key makes a second
store a no-op), so a crash between storing and deleting a file loses nothing and duplicates nothing.

Each process appends to its own file. `replay` claims a file by renaming it, then takes its lock,
so it never reads a file while a writer is still appending; a writer that finds its file renamed
away starts a new one.
"""

from __future__ import annotations

import dataclasses
import fcntl
import json
import logging
import os
import socket
import uuid
from collections.abc import Callable, Iterable
from datetime import datetime
from pathlib import Path
from typing import Any

from django.conf import settings
from django.db import DatabaseError

from calls import services
from streaming import metrics

logger = logging.getLogger(__name__)

SUFFIX = ".jsonl"
CLAIMED = ".replaying-"


def journal_directory() -> Path:
    return Path(settings.FINALS_JOURNAL_DIR)


def _own_file(directory: Path) -> Path:
    return directory / f"finals-{socket.gethostname()}-{os.getpid()}{SUFFIX}"


def append(entries: Iterable[dict[str, Any]], directory: Path | None = None) -> None:
    """Append entries durably (fsync) to this process's journal file. Blocking: run it in a thread."""
    lines = "".join(json.dumps(entry, separators=(",", ":")) + "\n" for entry in entries).encode()
    if not lines:
        return
    directory = directory or journal_directory()
    directory.mkdir(parents=True, exist_ok=True)
    path = _own_file(directory)
    while True:
        descriptor = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX)
            if not _still_named(path, descriptor):
                continue  # claimed by a replay since we opened it: write a new file
            os.write(descriptor, lines)
            os.fsync(descriptor)
            return
        finally:
            os.close(descriptor)


def _still_named(path: Path, descriptor: int) -> bool:
    try:
        return os.stat(path).st_ino == os.fstat(descriptor).st_ino
    except FileNotFoundError:
        return False


def pending_files(directory: Path | None = None) -> list[Path]:
    """Journal files waiting to be replayed, including ones a dead process had claimed."""
    directory = directory or journal_directory()
    if not directory.is_dir():
        return []
    files = []
    for path in sorted(directory.iterdir()):
        if path.name.endswith(SUFFIX) or (
            CLAIMED in path.name and not _process_alive(int(path.name.rsplit(CLAIMED, 1)[1]))
        ):
            files.append(path)
    return files


def _claimer_alive(path: Path) -> bool:
    return _process_alive(int(path.name.rsplit(CLAIMED, 1)[1]))


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def replay(store: Callable[[dict[str, Any]], None] | None = None, directory: Path | None = None) -> int:
    """Store every journaled final; return how many entries were replayed. Blocking, uses the ORM.

    Stops at the first database error and keeps what is left for the next attempt.
    """
    store = store or store_entry
    replayed = 0
    for path in pending_files(directory):
        claimed = path.with_name(f"{path.name.split(CLAIMED)[0]}{CLAIMED}{os.getpid()}")
        try:
            path.rename(claimed)
        except FileNotFoundError:
            continue  # another process claimed it first
        done, finished = _replay_file(claimed, store)
        replayed += done
        if not finished:
            return replayed
    return replayed


def _replay_file(path: Path, store: Callable[[dict[str, Any]], None]) -> tuple[int, bool]:
    with open(path, "rb") as journal:
        fcntl.flock(journal, fcntl.LOCK_EX)  # wait for a writer that opened it before the rename
        lines = journal.read().splitlines()
    done = 0
    for index, line in enumerate(lines):
        try:
            entry = json.loads(line)
        except ValueError:
            logger.error("Skipped a damaged line in the finals journal %s", path)  # a torn write at a crash
            continue
        try:
            store(entry)
        except DatabaseError as error:
            logger.warning("Finals journal replay paused (%s); %d entries left", error, len(lines) - index)
            append((json.loads(rest) for rest in lines[index:] if rest.strip()), path.parent)
            path.unlink()
            return done, False
        done += 1
    path.unlink()
    return done, True


def entry_for(final: services.Final) -> dict[str, Any]:
    """A journal entry: the final's fields, as JSON. Entries written before `services.Final` existed
    (store_final_segment's keyword arguments) have the same keys, so they replay all the same."""
    return {
        **{field.name: getattr(final, field.name) for field in dataclasses.fields(final)},
        "call_id": str(final.call_id),
        "received_at": final.received_at.isoformat(),
    }


def final_from(entry: dict[str, Any]) -> services.Final:
    return services.Final(
        **{**entry, "call_id": uuid.UUID(entry["call_id"]), "received_at": datetime.fromisoformat(entry["received_at"])}
    )


def store_entry(entry: dict[str, Any]) -> None:
    """Store one journaled final; one whose call was deleted meanwhile, or that the database refuses,
    is dropped (logged and counted), not retried."""
    (result,) = services.store_finals([final_from(entry)])
    if result.dropped:
        metrics.finals_dropped.labels(result.outcome).inc()
