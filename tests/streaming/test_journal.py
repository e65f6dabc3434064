"""Replaying the finals journal: what a process does with finals it could not store when they came."""

from __future__ import annotations

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
        {**final(kept, "Its stream is gone.", 2), "stream_id": stream.id},
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
