"""Redacting calls stored before redaction was on, or before a rule was added (`manage.py redact_existing`).

Each call's segments are read speaker by speaker in order through one Redactor, so a card number split
across two finals is caught as it would be live. Changes are written in small transactions, each row
only if its text is still what was read (so nothing written meanwhile is overwritten and live ingest is
never locked out). Captured audio of the redacted spans is silenced in place.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from django.db import transaction

from calls import original_text
from calls.audio_files import audio_shift_ms, mixdown_path, participant_audio_path
from calls.audio_silence import silence_span
from calls.models import TICKS_PER_MILLISECOND, Call, Participant, TranscriptSegment
from calls.redaction import Redactor, Rules
from calls.redaction_rules import count_redacted

_SEGMENT_FIELDS = ["id", "sequence", "participant_raw_id", "text", "words", "offset_ticks", "duration_ticks"]
_SEGMENT_FIELDS += ["redacted_types", "original_encrypted"]


@dataclass
class SegmentChange:
    segment_id: int
    sequence: int
    old_text: str
    text: str
    words: list[dict[str, Any]]
    types: set[str]
    original: tuple[str, list[dict[str, Any]]] | None  # to encrypt, when originals are kept and none is yet


@dataclass
class Report:
    calls: int = 0
    segments: int = 0
    counts: Counter[str] = field(default_factory=Counter)
    silenced_samples: int = 0
    reencrypted: int = 0


@dataclass
class _Span:
    participant_raw_id: str
    start_ticks: int
    end_ticks: int


def redact_existing(
    rules: Rules, *, dry_run: bool, batch_size: int = 200, say: Callable[[str], None] = lambda line: None
) -> Report:
    report = Report()
    for call in Call.objects.order_by("created_at").iterator(chunk_size=100):
        changes, spans, counts = call_changes(call, rules)
        if changes:
            report.calls += 1
            report.counts.update(counts)
            say(
                f"call {call.id}: {len(changes)} segment(s), "
                + ", ".join(f"{n} {t}" for t, n in sorted(counts.items()))
            )
        if not dry_run:
            report.segments += write_changes(changes, batch_size)
            count_redacted(counts)
            report.silenced_samples += _silence_audio(call, spans)
            report.reencrypted += _reencrypt(call, batch_size)
        else:
            report.segments += len(changes)
    return report


def call_changes(call: Call, rules: Rules) -> tuple[list[SegmentChange], list[_Span], Counter[str]]:
    """What redaction would change in one call's stored segments, and the audio spans it covers."""
    redactor = Redactor(rules)
    segments = {segment.id: segment for segment in _segments(call)}
    changes: dict[int, SegmentChange] = {}
    spans: list[_Span] = []
    counts: Counter[str] = Counter()
    for segment in segments.values():
        result = redactor.redact(segment.participant_raw_id, segment.text, segment.words, final=True, key=segment.id)
        if result.changed:
            counts.update(result.counts)
            _change(changes, segment, result.text, result.words, result.types)
            spans += [_span(segment, entity) for entity in result.entities]
        if result.earlier is not None:
            earlier = segments[result.earlier.key]
            _change(changes, earlier, result.earlier.text, result.earlier.words, ["CARD"])
            spans += [_span(earlier, entity) for entity in result.earlier.entities]
    return sorted(changes.values(), key=lambda change: change.sequence), spans, counts


def _segments(call: Call) -> Iterator[TranscriptSegment]:
    return (
        TranscriptSegment.objects.filter(call=call)
        .only(*_SEGMENT_FIELDS)
        .order_by("participant_raw_id", "sequence")
        .iterator(chunk_size=500)
    )


def _change(changes: dict[int, SegmentChange], segment: TranscriptSegment, text: str, words, types) -> None:
    change = changes.get(segment.id)
    if change is None:
        keep = original_text.keep_originals() and segment.original_encrypted is None
        change = changes[segment.id] = SegmentChange(
            segment.id,
            segment.sequence,
            segment.text,
            text,
            words,
            set(segment.redacted_types),
            (segment.text, segment.words) if keep else None,
        )
    change.text, change.words = text, words
    change.types.update(types)


def _span(segment: TranscriptSegment, entity) -> _Span:
    """When the words had no timings, the whole segment is silenced: too much rather than too little."""
    if entity.start_ticks is not None and entity.end_ticks is not None:
        return _Span(segment.participant_raw_id, entity.start_ticks, entity.end_ticks)
    return _Span(segment.participant_raw_id, segment.offset_ticks, segment.offset_ticks + segment.duration_ticks)


def write_changes(changes: list[SegmentChange], batch_size: int) -> int:
    """Store the changes, a batch per transaction, each only if its segment's text is still as read."""
    written = 0
    for start in range(0, len(changes), batch_size):
        with transaction.atomic():
            for change in changes[start : start + batch_size]:
                encrypted = original_text.encrypt(*change.original) if change.original else None
                fields: dict[str, Any] = {"text": change.text, "words": change.words}
                fields["redacted_types"] = sorted(change.types)
                if encrypted is not None:
                    fields["original_encrypted"] = encrypted
                written += TranscriptSegment.objects.filter(pk=change.segment_id, text=change.old_text).update(**fields)
    return written


def _silence_audio(call: Call, spans: list[_Span]) -> int:
    if not spans:
        return 0
    shift = audio_shift_ms(call)
    silenced = 0
    for span in spans:
        path = participant_audio_path(Participant(call_id=call.id, raw_id=span.participant_raw_id))
        if span.participant_raw_id and path.is_file():
            start_ms = span.start_ticks // TICKS_PER_MILLISECOND + shift
            end_ms = -(-span.end_ticks // TICKS_PER_MILLISECOND) + shift
            silenced += silence_span(path, start_ms, end_ms)
    if silenced:
        mixdown_path(call).unlink(missing_ok=True)  # rebuilt from the silenced tracks on the next listen
    return silenced


def _reencrypt(call: Call, batch_size: int) -> int:
    """Originals still under an older key move to the first one (key rotation, calls/original_text.py)."""
    if not original_text.keep_originals():
        return 0
    stale = [
        (segment_id, token)
        for segment_id, token in TranscriptSegment.objects.filter(call=call, original_encrypted__isnull=False)
        .values_list("id", "original_encrypted")
        .iterator()
        if not original_text.is_current(token)
    ]
    for start in range(0, len(stale), batch_size):
        with transaction.atomic():
            for segment_id, token in stale[start : start + batch_size]:
                TranscriptSegment.objects.filter(pk=segment_id).update(original_encrypted=original_text.rotate(token))
    return len(stale)
