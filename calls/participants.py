"""Who is on a call: the one place participants are written, whoever learns of them (a media socket's
frames, a final's speaker, ACS's ParticipantsUpdated callback, an incoming call's caller)."""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass

from calls import live_events
from calls.models import Call, Participant, participant_kind


@dataclass(frozen=True)
class Presence:
    """One entry of ACS's participant list."""

    raw_id: str
    is_muted: bool = False
    is_on_hold: bool = False


def ensure_participant(*, call_id: uuid.UUID, raw_id: str, display_name: str = "") -> Participant:
    participant, created = Participant.objects.get_or_create(
        call_id=call_id,
        raw_id=raw_id,
        defaults={"kind": participant_kind(raw_id), "display_name": display_name},
    )
    if not created and display_name and not participant.display_name:
        participant.display_name = display_name
        participant.save(update_fields=["display_name"])
    return participant


def note_participant(*, call_id: uuid.UUID, raw_id: str) -> None:
    """Record that someone is on the call, in one statement that does nothing when they are known:
    what a media socket does on each participant's first frame, four times per two-party call
    (audio and transcription sockets), all at once when many calls start together."""
    Participant.objects.bulk_create(
        [Participant(call_id=call_id, raw_id=raw_id, kind=participant_kind(raw_id))], ignore_conflicts=True
    )


def update_roster(call: Call, present: Iterable[Presence], sequence: int | None) -> None:
    """Take ACS's list of everyone on a (locked) call now. `sequence` is the list's number: an older list
    arriving late is ignored (callbacks are not ordered, reference 3.1)."""
    if sequence is not None and call.participants_sequence is not None and sequence <= call.participants_sequence:
        return
    raw_ids = []
    for presence in present:
        raw_ids.append(presence.raw_id)
        Participant.objects.update_or_create(
            call=call,
            raw_id=presence.raw_id,
            defaults={
                "kind": participant_kind(presence.raw_id),
                "is_muted": presence.is_muted,
                "is_on_hold": presence.is_on_hold,
                "in_call": True,
            },
        )
    # Mixed audio (empty raw id) is not a participant: it is never on or off the list.
    call.participants.exclude(raw_id__in=raw_ids).exclude(raw_id="").update(in_call=False)
    if sequence is not None:
        call.participants_sequence = sequence
    live_events.save_with_sequence(call, ["participants_sequence"], "participants")
