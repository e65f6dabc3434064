"""Domain actions shared by the media consumer, the webhooks, the views and the admin.

Plain synchronous ORM code with keyword-only arguments. Each action that changes what a live viewer
shows takes the call's next sequence number in its transaction and publishes after commit, so a
viewer never sees a change that was rolled back.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import uuid
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from django.db import DataError, IntegrityError, connection, transaction
from django.utils import timezone

from calls import call_reads, live_events, participants, stream_state
from calls.models import Call, Gap, MediaStream, Participant, TranscriptSegment
from compat import django_db

logger = logging.getLogger(__name__)

STREAM_COUNTER_FIELDS = (
    "packet_count",
    "audio_frame_count",
    "silent_frame_count",
    "gap_count",
    "missing_audio_ms",
    "dtmf_count",
    "intermediate_count",
    "final_count",
    "malformed_packet_count",
    "unknown_packet_count",
)

REDELIVERY_CONSTRAINT = "unique_final_segment"  # TranscriptSegment's key of a final result


# Finals take their live-feed numbers inside their insert (`_INSERT_FINALS`), one statement for many
# calls; every other change takes its number with `live_events.save_with_sequence`.
# Takes `counts[i]` numbers for call `call_ids[i]` and returns (id, the number before the block). The
# calls are locked in id order, so two processes storing finals of the same calls cannot deadlock,
# and FOR NO KEY UPDATE, as `call_reads.locked_call`.
_NUMBERED = """numbered AS (
    UPDATE calls_call AS call SET last_sequence = call.last_sequence + taken.count
    FROM (
        SELECT id FROM calls_call WHERE id = ANY(%(call_ids)s::uuid[]) ORDER BY id FOR NO KEY UPDATE
    ) AS locked,
        unnest(%(call_ids)s::uuid[], %(counts)s::bigint[]) AS taken(id, count)
    WHERE call.id = locked.id AND call.id = taken.id
    RETURNING call.id, call.last_sequence - taken.count AS before
)"""


def _numbered_parameters(counts: Mapping[uuid.UUID, int]) -> dict[str, list[Any]]:
    return {"call_ids": list(counts), "counts": list(counts.values())}


def create_call(
    *,
    direction: str = Call.Direction.UNKNOWN,
    caller: str = "",
    callee: str = "",
    caller_display_name: str = "",
    locale: str = "",
    **fields: Any,
) -> Call:
    """A new call in one INSERT, as live-feed event number 1 ("created"), published after commit: a
    burst of rings is a burst of these. `fields` are any other of the call's fields to start with."""
    call = Call(
        direction=direction,
        caller=caller,
        callee=callee,
        caller_display_name=caller_display_name,
        locale=locale,
        last_sequence=1,
        **fields,
    )
    call.save(force_insert=True)
    live_events.publish_on_commit(live_events.call_event(call, "created"))
    return call


@dataclass(frozen=True)
class StreamMetadata:
    encoding: str = ""
    sample_rate: int | None = None
    channels: int | None = None
    frame_length: int | None = None
    locale: str = ""


@transaction.atomic
def open_stream(
    *,
    call_id: uuid.UUID,
    kind: str,
    subscription_id: str | None,
    metadata: StreamMetadata | None = None,
    call_connection_id: str = "",
    correlation_id: str = "",
) -> MediaStream:
    """Record that a media or transcription socket is streaming for a call.

    A reconnect with the same subscription continues the same stream record. Without a subscription
    id (a reconnect that did not resend metadata) the call's latest stream of that kind is continued.
    Whether the stream is now active, and whether the gap a drop left closes, is
    `stream_state.Event.SOCKET_OPENED`'s rule.

    Streams are opened and closed only with their call locked, so the stream row needs no lock or
    get_or_create of its own, and the call's ids, status and next live-feed number go in one UPDATE:
    six or seven round trips instead of twelve to fourteen.
    """
    now = timezone.now()
    call = call_reads.locked_call(call_id)
    stream = _find_stream(call, kind, subscription_id)
    if stream is None:
        stream = MediaStream(call=call, kind=kind, subscription_id=subscription_id or "")
    # Before the stream is saved: a new record has no gaps to close, and no query is spent on them.
    _, changed_status = stream_state.apply(
        call, stream_state.kind_of(kind), stream_state.Event.SOCKET_OPENED, record=stream
    )
    changed_stream_fields = ["connected_at", "disconnected_at", "connection_count"]
    if metadata is not None:
        for field, value in vars(metadata).items():
            if value not in ("", None):
                setattr(stream, field, value)
                changed_stream_fields.append(field)
    stream.connected_at = stream.connected_at or now
    stream.disconnected_at = None
    stream.connection_count += 1
    stream.save(update_fields=changed_stream_fields if stream.pk else None)

    changed_call_fields = learn_acs_ids(call, call_connection_id=call_connection_id, correlation_id=correlation_id)
    changed_call_fields += changed_status
    live_events.save_with_sequence(call, changed_call_fields, stream=stream)
    return stream


def learn_acs_ids(
    call: Call, *, call_connection_id: str = "", server_call_id: str = "", correlation_id: str = ""
) -> list[str]:
    """Fill in ACS's ids on a (locked) call where they are still missing; returns the changed fields.

    Media sockets, callbacks and answer/create each learn them; whichever arrives first wins.
    """
    changed = []
    if (
        call_connection_id
        and not call.call_connection_id
        and not Call.objects.filter(call_connection_id=call_connection_id).exists()
    ):
        call.call_connection_id = call_connection_id
        changed.append("call_connection_id")
    for field, value in (("server_call_id", server_call_id), ("correlation_id", correlation_id)):
        if value and not getattr(call, field):
            setattr(call, field, value)
            changed.append(field)
    return changed


def _find_stream(call: Call, kind: str, subscription_id: str | None) -> MediaStream | None:
    streams = call.streams.filter(kind=kind)
    if subscription_id is None:
        return streams.order_by("-connected_at", "-id").first()
    return streams.filter(subscription_id=subscription_id).first()


def add_stream_counters(counters: Mapping[int, Mapping[str, int]]) -> None:
    """Add what sockets counted since their last write to their stream records (stream id → counters),
    in one statement and without a read: a process writes every open stream's counters together."""
    if not counters:
        return
    ids = sorted(counters)
    table = MediaStream._meta.db_table
    fields = STREAM_COUNTER_FIELDS
    with connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {table} AS stream SET "  # noqa: S608 - table and column names only
            + ", ".join(f"{field} = stream.{field} + added.{field}" for field in fields)
            + f" FROM unnest(%s::bigint[], {', '.join(['%s::bigint[]'] * len(fields))})"
            + f" AS added(id, {', '.join(fields)}) WHERE stream.id = added.id",
            [ids, *([counters[stream_id].get(field, 0) for stream_id in ids] for field in fields)],
        )


@transaction.atomic
def close_stream(*, stream_id: int, counters: dict[str, int]) -> None:
    """Record that a stream's socket closed: a drop while the stream was active opens a gap
    (`stream_state.Event.SOCKET_CLOSED`), closed when it is active again."""
    now = timezone.now()
    stream = MediaStream.objects.get(pk=stream_id)
    # Lock the call first (as open_stream and the webhooks do), so a drop racing ACS's failure
    # callback sees the status that callback set and the outage gets one gap, not two.
    call = call_reads.locked_call(stream.call_id)
    add_stream_counters({stream_id: counters})
    stream.disconnected_at = now
    stream.save(update_fields=["disconnected_at"])
    stream_state.apply(call, stream_state.kind_of(stream.kind), stream_state.Event.SOCKET_CLOSED, record=stream)
    live_events.save_with_sequence(call, [], stream=stream)


def record_audio_gap(
    *, call_id: uuid.UUID, stream_id: int, started_at: datetime, missing_ms: int, participant: str
) -> Gap:
    """A stretch of audio that never arrived, found from the frames' timestamps."""
    return Gap.objects.create(
        call_id=call_id,
        stream_id=stream_id,
        reason=Gap.Reason.AUDIO_GAP,
        started_at=started_at,
        ended_at=started_at + timedelta(milliseconds=missing_ms),
        detail=f"{missing_ms} ms of audio missing from {participant or 'mixed audio'}",
    )


@dataclass(frozen=True)
class Final:
    """A final transcription result waiting to be stored: what a media socket heard, what the journal
    keeps while the database is away (streaming/journal.py), and what `store_finals` takes."""

    call_id: uuid.UUID
    stream_id: int | None
    subscription_id: str
    participant_raw_id: str
    text: str
    confidence: float | None
    offset_ticks: int
    duration_ticks: int
    words: list[dict[str, Any]]  # [{text, offset, duration}] in ticks, as TranscriptSegment.words
    received_at: datetime
    # Set by redaction at ingest (streaming/live_redaction.py): the placeholders' types and, under
    # REDACTION=redact_keep_original, the Fernet token of the original (ASCII, so the journal keeps it as JSON).
    redacted_types: list[str] = dataclasses.field(default_factory=list)
    original_encrypted: str | None = None


class Outcome(StrEnum):
    """What became of one final given to `store_finals`."""

    STORED = "stored"
    REDELIVERED = "redelivered"  # stored before: ACS redelivers after a reconnect
    CALL_DELETED = "call_deleted"  # dropped: its call was deleted, nothing is left to attach it to
    REFUSED = "refused"  # dropped: PostgreSQL can never take it (logged as an error)


@dataclass(frozen=True)
class FinalResult:
    outcome: Outcome
    segment: TranscriptSegment | None = None  # the stored segment, published after commit

    @property
    def dropped(self) -> bool:
        return self.outcome in (Outcome.CALL_DELETED, Outcome.REFUSED)


def store_finals(finals: Sequence[Final]) -> list[FinalResult]:
    """Store final results, in order, and publish each after commit: the one way finals are stored.

    Usually one statement for all of them (`_INSERT_FINALS`): it takes their calls' sequence numbers,
    names their speakers and inserts them, one database round trip. When any one of them cannot go in
    with the others, every one is stored on its own, so that one does not hold the others back:

    - a redelivery (the unique constraint) is skipped: REDELIVERED, not an error;
    - a final whose stream row was deleted (in the admin, while its socket is live) is stored without it;
    - a final whose call was deleted is dropped: CALL_DELETED, one log line per call;
    - a final PostgreSQL can never take (bad data) is dropped: REFUSED, logged as an error.

    Only a database that cannot be used (unreachable, or failing for every final alike) raises, with
    nothing lost: storing again later stores what is missing and skips what is there.
    """
    try:
        segments = _insert_finals(finals)
    except (IntegrityError, DataError, ValueError):  # ValueError: a value psycopg cannot send
        results = [_store_alone(final) for final in finals]
    else:
        results = [
            FinalResult(Outcome.STORED, segment) if segment is not None else FinalResult(Outcome.CALL_DELETED)
            for segment in segments
        ]
    deleted = Counter(
        final.call_id for final, result in zip(finals, results, strict=True) if result.outcome is Outcome.CALL_DELETED
    )
    for call_id, count in deleted.items():
        logger.warning("%d final segment(s) of call %s dropped: the call no longer exists", count, call_id)
    return results


def _store_alone(final: Final) -> FinalResult:
    try:
        (segment,) = _insert_finals([final])
    except IntegrityError as error:
        if _violated_constraint(error) == REDELIVERY_CONSTRAINT:
            return FinalResult(Outcome.REDELIVERED)
        if not Call.objects.filter(pk=final.call_id).exists():
            return FinalResult(Outcome.CALL_DELETED)  # deleted mid-store: its foreign key failed
        if final.stream_id is None or MediaStream.objects.filter(pk=final.stream_id).exists():
            return _refused(final, error)
        logger.warning(
            "call %s: final segment stored without its stream %s, which was deleted", final.call_id, final.stream_id
        )
        return _store_alone(replace(final, stream_id=None))
    except (DataError, ValueError) as error:
        return _refused(final, error)
    if segment is None:
        return FinalResult(Outcome.CALL_DELETED)
    return FinalResult(Outcome.STORED, segment)


def _refused(final: Final, error: Exception) -> FinalResult:
    logger.error(
        "call %s: final segment dropped, the database refuses it (%s): %.80r", final.call_id, error, final.text
    )
    return FinalResult(Outcome.REFUSED)


def _violated_constraint(error: IntegrityError) -> str:
    return getattr(getattr(error.__cause__, "diag", None), "constraint_name", None) or ""


def _insert_finals(finals: Sequence[Final]) -> list[TranscriptSegment | None]:
    """Insert `finals` with `_INSERT_FINALS` and publish each after commit; None for a final whose
    call is gone. Raises IntegrityError, inserting none, when any one of them breaks a constraint."""
    if not finals:
        return []
    counts = Counter(final.call_id for final in finals)
    positions, seen = [], Counter()
    for final in finals:
        seen[final.call_id] += 1
        positions.append(seen[final.call_id])
    columns = {name: [getattr(final, name) for final in finals] for name in _FINAL_COLUMNS}
    columns["words"] = [json.dumps(words) for words in columns["words"]]
    columns["redacted_types"] = [",".join(final.redacted_types) for final in finals]
    columns["original_encrypted"] = [final.original_encrypted for final in finals]
    # Outside a transaction the statement is its own: no BEGIN and COMMIT round trips. Inside one, a
    # savepoint keeps a failed insert from spoiling the caller's transaction.
    savepoint = transaction.atomic() if connection.in_atomic_block else contextlib.nullcontext()
    with savepoint:
        rows = _fetch_prepared(_INSERT_FINALS, {**columns, "position": positions, **_numbered_parameters(counts)})
    stored = {(row[1], row[3]): row for row in rows}
    segments = []
    for final, position in zip(finals, positions, strict=True):
        row = stored.get((final.call_id, position))
        segments.append(_stored_segment(final, *row) if row else None)
    for segment in segments:
        if segment is not None:
            live_events.publish_on_commit(live_events.segment_event(segment))
    return segments


def _fetch_prepared(sql: str, params: Mapping[str, Any]) -> list[tuple[Any, ...]]:
    """Run `sql` as a prepared statement on Django's connection and return its rows.

    PostgreSQL then parses and plans it once per connection instead of on every run: for the finals
    insert that was half of PostgreSQL's work per final (docs/performance.md). Django's own cursors
    bind parameters on the client and are never prepared, and Django turns psycopg's preparing off
    unless the `prepare_threshold` option is set (config/settings.py); without it this runs unprepared.
    """
    with django_db.psycopg_cursor() as cursor:
        cursor.execute(sql, params, prepare=True)
        return cursor.fetchall()


_FINAL_COLUMNS = (
    "call_id",
    "stream_id",
    "subscription_id",
    "participant_raw_id",
    "text",
    "confidence",
    "offset_ticks",
    "duration_ticks",
    "words",
    "received_at",
)

# A final whose call is gone has no row in `numbered` and is not inserted. Its speaker is the
# Participant a media socket recorded when it first heard them (`participants.note_participant`).
_INSERT_FINALS = f"""
WITH {_NUMBERED}, inserted AS (
    INSERT INTO calls_transcriptsegment (
        call_id, stream_id, subscription_id, participant_id, participant_raw_id, text, confidence,
        offset_ticks, duration_ticks, words, result_status, received_at, sequence, redacted_types,
        original_encrypted
    )
    SELECT final.call_id, final.stream_id, final.subscription_id, speaker.id, final.participant_raw_id,
        final.text, final.confidence, final.offset_ticks, final.duration_ticks, final.words::jsonb, 'final',
        final.received_at, numbered.before + final.position, string_to_array(final.redacted_types, ','),
        convert_to(final.original_encrypted, 'UTF8')
    FROM unnest(
        %(call_id)s::uuid[], %(stream_id)s::bigint[], %(subscription_id)s::text[], %(participant_raw_id)s::text[],
        %(text)s::text[], %(confidence)s::float8[], %(offset_ticks)s::bigint[], %(duration_ticks)s::bigint[],
        %(words)s::text[], %(received_at)s::timestamptz[], %(position)s::bigint[], %(redacted_types)s::text[],
        %(original_encrypted)s::text[]
    ) AS final(
        call_id, stream_id, subscription_id, participant_raw_id, text, confidence, offset_ticks, duration_ticks,
        words, received_at, position, redacted_types, original_encrypted
    )
    JOIN numbered ON numbered.id = final.call_id
    LEFT JOIN calls_participant AS speaker
        ON speaker.call_id = final.call_id AND speaker.raw_id = final.participant_raw_id
        AND final.participant_raw_id <> ''
    RETURNING id, call_id, sequence, participant_id
)
SELECT inserted.id, inserted.call_id, inserted.sequence, inserted.sequence - numbered.before,
    speaker.id, speaker.raw_id, speaker.kind, speaker.display_name, speaker.role
FROM inserted
JOIN numbered ON numbered.id = inserted.call_id
LEFT JOIN calls_participant AS speaker ON speaker.id = inserted.participant_id
"""  # noqa: S608 - constants only


def _stored_segment(
    final: Final,
    segment_id: int,
    call_id: uuid.UUID,
    sequence: int,
    position: int,
    *speaker: Any,
) -> TranscriptSegment:
    """The TranscriptSegment `_INSERT_FINALS` stored, from its returned row. A speaker not recorded yet
    (their final came before the socket's `participants.note_participant`) is recorded now."""
    fields = {name: getattr(final, name) for name in _FINAL_COLUMNS}
    token = final.original_encrypted.encode() if final.original_encrypted is not None else None
    segment = TranscriptSegment(
        id=segment_id, **fields, sequence=sequence, redacted_types=final.redacted_types, original_encrypted=token
    )
    speaker_id, raw_id, kind, display_name, role = speaker
    if speaker_id is not None:
        segment.participant = Participant(
            id=speaker_id, call_id=call_id, raw_id=raw_id, kind=kind, display_name=display_name, role=role
        )
    elif final.participant_raw_id:
        segment.participant = participants.ensure_participant(call_id=call_id, raw_id=final.participant_raw_id)
        TranscriptSegment.objects.filter(pk=segment_id).update(participant=segment.participant)
    return segment
