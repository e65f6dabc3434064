"""Replaying the finals journal: what a process does with finals it could not store when they came."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from calls import services
from calls.models import TranscriptSegment
from streaming import journal
from tests.calls.conftest import new_call
from tests.calls.test_final_segments import final

pytestmark = pytest.mark.django_db(transaction=True)  # foreign keys are checked at commit, as in production


def test_journaled_finals_are_kept_unless_their_call_was_deleted(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    kept, deleted = new_call(), new_call()
    stream = services.open_stream(call_id=kept.id, kind="transcription", subscription_id="subscription")
    entries = [
        final(deleted, "Nobody hears this.", 1),
        final(kept, "Still here.", 1),
        final(kept, "Its stream is gone.", 2, stream_id=stream.id),
    ]
    journal.append([journal.entry_for(entry) for entry in entries], tmp_path)
    deleted_id = deleted.id
    deleted.delete()
    stream.delete()

    assert journal.replay(directory=tmp_path) == 3
    assert list(TranscriptSegment.objects.order_by("sequence").values_list("text", "stream")) == [
        ("Still here.", None),
        ("Its stream is gone.", None),
    ]
    assert f"call {deleted_id} dropped: the call no longer exists" in caplog.text
    assert journal.pending_files(tmp_path) == []


def test_a_journal_written_before_finals_had_a_type_still_replays(tmp_path: Path) -> None:
    call = new_call()
    # A line as the code before `services.Final` wrote it: store_final_segment's keyword arguments.
    line = (
        f'{{"call_id":"{call.id}","stream_id":null,"subscription_id":"subscription","participant_raw_id":"4:+1425",'
        '"text":"Written long ago.","confidence":0.9,"offset_ticks":10,"duration_ticks":5,'
        '"words":[{"text":"Written","offset":10,"duration":5}],"received_at":"2026-12-01T10:00:00.123456+00:00"}\n'
    )
    (tmp_path / "finals-oldhost-1.jsonl").write_text(line)

    assert journal.replay(directory=tmp_path) == 1
    segment = TranscriptSegment.objects.get(call=call)
    assert (segment.text, segment.participant_raw_id, segment.words) == (
        "Written long ago.",
        "4:+1425",
        [{"text": "Written", "offset": 10, "duration": 5}],
    )
    assert segment.received_at.isoformat() == "2026-12-01T10:00:00.123456+00:00"


def test_an_entry_holds_every_field_of_a_final(tmp_path: Path) -> None:
    call = new_call()
    original = final(call, "Round trip.", 7, confidence=None)

    journal.append([journal.entry_for(original)], tmp_path)

    (line,) = next(tmp_path.iterdir()).read_text().splitlines()
    assert journal.final_from(json.loads(line)) == original
