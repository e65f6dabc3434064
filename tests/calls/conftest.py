"""Helpers for the dashboard tests: calls with transcripts, built through the domain functions."""

from __future__ import annotations

import io
from collections.abc import Callable
from datetime import timedelta

import pytest
from django.core.management import call_command
from django.test import Client, override_settings
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


CARD_LINE = "My card is 4111 1111 1111 1111, expiry 09/28, code 123."


def card_call(*, keys: list[str] | None) -> Call:
    """An ended call whose customer read a card number, redacted as the backfill redacts it: with its
    original kept under `keys` (REDACTION=redact_keep_original), or not kept at all when keys is None."""
    call = end(new_call())
    say(call, acs.CALLER, "Hello, I'd like to pay my bill.", at_ms=1000)
    say(call, acs.AGENT, "Sure, go ahead.", at_ms=3000)
    say(call, acs.CALLER, CARD_LINE, at_ms=5000, duration_ms=6000)
    mode = {"REDACTION": "redact_keep_original", "REDACTION_KEYS": keys} if keys else {"REDACTION": "redact"}
    with override_settings(**mode):
        call_command("redact_existing", stdout=io.StringIO())
    return call


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


def bulk_segments(call: Call, count: int, line: str = "Old line {n} with some words to index.") -> None:
    """`count` stored lines at once (`line` formatted with their number), for tests that need many."""
    TranscriptSegment.objects.bulk_create(
        TranscriptSegment(
            call=call,
            subscription_id="bulk",
            participant_raw_id=acs.CALLER,
            text=line.format(n=n),
            offset_ticks=n * 10_000_000,
            duration_ticks=10_000_000,
            received_at=timezone.now(),
            sequence=1000 + n,
        )
        for n in range(count)
    )
