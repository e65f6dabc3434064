"""Participants as the media sockets and the callbacks learn of them."""

from __future__ import annotations

import pytest

from calls import services
from calls.models import Participant
from tests.calls.conftest import new_call
from tests.streaming import acs_packets as acs

pytestmark = pytest.mark.django_db


def test_a_participant_first_heard_on_a_socket_is_recorded_in_one_statement(django_assert_num_queries) -> None:
    call = new_call()

    with django_assert_num_queries(1):
        services.note_participant(call_id=call.id, raw_id=acs.AGENT)

    participant = Participant.objects.get(call=call, raw_id=acs.AGENT)
    assert participant.kind == Participant.Kind.ACS_USER


def test_noting_a_known_participant_again_changes_nothing() -> None:
    call = new_call()
    services.ensure_participant(call_id=call.id, raw_id=acs.CALLER, display_name="Dana")

    services.note_participant(call_id=call.id, raw_id=acs.CALLER)
    services.note_participant(call_id=call.id, raw_id=acs.CALLER)

    assert list(Participant.objects.filter(call=call).values_list("raw_id", "display_name")) == [(acs.CALLER, "Dana")]
