"""Participants as the media sockets and the callbacks learn of them."""

from __future__ import annotations

import pytest

from calls import participants
from calls.agent_identities import is_agent_identity
from calls.models import Participant, raw_id_label
from tests.calls.conftest import new_call
from tests.streaming import acs_packets as acs

pytestmark = pytest.mark.django_db


def test_a_participant_first_heard_on_a_socket_is_recorded_in_one_statement(django_assert_num_queries) -> None:
    call = new_call()
    is_agent_identity(acs.AGENT)  # the process's set of agent identities, read once (calls/agent_identities.py)

    with django_assert_num_queries(1):
        participants.note_participant(call_id=call.id, raw_id=acs.AGENT)

    participant = Participant.objects.get(call=call, raw_id=acs.AGENT)
    assert participant.kind == Participant.Kind.ACS_USER


def test_noting_a_known_participant_again_changes_nothing() -> None:
    call = new_call()
    participants.ensure_participant(call_id=call.id, raw_id=acs.CALLER, display_name="Dana")

    participants.note_participant(call_id=call.id, raw_id=acs.CALLER)
    participants.note_participant(call_id=call.id, raw_id=acs.CALLER)

    assert list(Participant.objects.filter(call=call).values_list("raw_id", "display_name")) == [(acs.CALLER, "Dana")]


@pytest.mark.parametrize(
    ("raw_id", "label"),
    [
        ("4:+14255550100", "+14255550100"),
        ("8:acs:1b5cc06b-f352-4571-b1e6-d9b259b7c776_00000006-7ce1-3f5c-85f4-343a0d00a1b2", "ACS user …0d00a1b2"),
        ("8:orgid:5c4b6e8a-1d2f-4a5b-9c3d-7e6f8a9b0c1d", "Teams user …8a9b0c1d"),
        ("8:teamsvisitor:0f6ab2c9-3d41-4e7a-b5c8-2d9e1f0a7b63", "Teams guest …1f0a7b63"),
        ("28:9d7e2f4c-0001-4b3a-8e5f-6a7b8c9d0e1f", "Teams app …8c9d0e1f"),
        ("someone-else", "someone-else"),
        ("", ""),
    ],
)
def test_identities_without_a_display_name_are_labelled_by_kind_and_the_end_of_their_id(raw_id, label) -> None:
    assert raw_id_label(raw_id) == label


def test_a_display_name_wins_over_the_id_and_mixed_audio_has_a_name_of_its_own() -> None:
    call = new_call()
    named = participants.ensure_participant(call_id=call.id, raw_id=acs.CALLER, display_name="Dana")
    mixed = participants.ensure_participant(call_id=call.id, raw_id="")
    assert (named.label, mixed.label) == ("Customer Dana", "Mixed audio")
