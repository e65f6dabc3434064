"""Helpers for the dashboard tests: calls with transcripts, built through the domain functions."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

import pytest
from django.test import Client
from django.utils import timezone

from calls import services
from calls.models import TICKS_PER_MILLISECOND, Call, TranscriptSegment
from tests.calls.acs_servers import (  # noqa: F401 - fixtures for the ACS tests
    acs_app,
    acs_settings,
    emulator,
    emulator_key_path,
    emulator_tokens,
    end_calls,
)
from tests.streaming import acs_packets as acs

Say = Callable[..., TranscriptSegment]


def say(
    call: Call, participant: str, text: str, at_ms: int, *, confidence: float | None = 0.93, duration_ms: int = 2000
) -> TranscriptSegment:
    """Store a final segment as the media socket would, with evenly spread word timings."""
    tokens = text.split()
    step = duration_ms * TICKS_PER_MILLISECOND // max(len(tokens), 1)
    offset = at_ms * TICKS_PER_MILLISECOND
    (result,) = services.store_finals(
        [
            services.Final(
                call_id=call.id,
                stream_id=None,
                subscription_id=acs.TRANSCRIPTION_SUBSCRIPTION,
                participant_raw_id=participant,
                text=text,
                confidence=confidence,
                offset_ticks=offset,
                duration_ticks=duration_ms * TICKS_PER_MILLISECOND,
                words=[
                    {"text": token, "offset": offset + index * step, "duration": step}
                    for index, token in enumerate(tokens)
                ],
                received_at=timezone.now(),
            )
        ]
    )
    assert result.segment is not None
    return result.segment


def end(call: Call, *, minutes_ago: int = 0) -> Call:
    ended_at = timezone.now() - timedelta(minutes=minutes_ago)
    Call.objects.filter(pk=call.pk).update(state=Call.State.DISCONNECTED, ended_at=ended_at)
    call.refresh_from_db()
    return call


def new_call(caller: str = acs.CALLER, **fields: object) -> Call:
    call = services.create_call(direction=Call.Direction.INBOUND, caller=caller, callee=acs.AGENT)
    if fields:
        Call.objects.filter(pk=call.pk).update(**fields)
        call.refresh_from_db()
    return call


def logged_in(user: object) -> Client:
    client = Client()
    client.force_login(user)
    return client


@pytest.fixture
def alice_client(staff_user: object) -> Client:
    return logged_in(staff_user)


@pytest.fixture
def bob_client(supervisor: object) -> Client:
    return logged_in(supervisor)
