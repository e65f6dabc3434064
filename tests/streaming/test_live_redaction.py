"""Redaction at ingest: what a caller reads out over the real media socket is redacted before it is
stored, searched, or sent to a viewer, intermediate results included."""

from __future__ import annotations

import json
import re
import time

import pytest
from channels.db import database_sync_to_async
from channels.testing import WebsocketCommunicator
from cryptography.fernet import Fernet
from django.contrib.auth.models import User
from django.test import Client, override_settings

from calls import original_text
from calls.models import Call, TranscriptSegment
from calls.search import matching_segments
from config.asgi import application
from tests.conftest import abrowser_headers, media_path
from tests.streaming import acs_packets as acs

pytestmark = pytest.mark.django_db(transaction=True)

CARD_UTTERANCE = "My card is 4111 1111 1111 1111, expiry 09/28, code 123."
REDACTED_UTTERANCE = "My card is [CARD], expiry [EXPIRY], code [CVV]."
ORIGINAL_DIGITS = re.compile(r"4111|1111|09/28|\b123\b")


async def watch(call: Call, user: User) -> WebsocketCommunicator:
    viewer = WebsocketCommunicator(application, f"/ws/calls/{call.id}/", headers=await abrowser_headers(user))
    assert (await viewer.connect())[0]
    assert (await viewer.receive_json_from())["type"] == "snapshot"
    return viewer


async def stream_transcript(call: Call, frames: list[str]) -> None:
    media = WebsocketCommunicator(application, media_path(call.id))
    assert (await media.connect())[0]
    for frame in frames:
        await media.send_to(text_data=frame)
    await media.disconnect()


async def events_until_segments(viewer: WebsocketCommunicator, count: int) -> list[dict]:
    received, segments = [], 0
    while segments < count:
        event = await viewer.receive_json_from(timeout=5)
        received.append(event)
        segments += event["type"] == "segment"
    return received


@database_sync_to_async
def stored(call: Call) -> list[TranscriptSegment]:
    return list(TranscriptSegment.objects.filter(call=call).order_by("sequence"))


async def test_a_card_read_out_is_redacted_live_stored_and_in_search(call: Call, staff_user: User) -> None:
    viewer = await watch(call, staff_user)
    await stream_transcript(
        call,
        [
            acs.transcription_metadata(),
            acs.transcription_data(acs.CALLER, "my card is 4111 1111", 1000, final=False),
            acs.transcription_data(acs.CALLER, "my card is 4111 1111 1111 1111 expiry 09/28", 1000, final=False),
            acs.transcription_data(acs.CALLER, CARD_UTTERANCE, 1000),
        ],
    )
    received = await events_until_segments(viewer, 1)
    await viewer.disconnect()

    partials = [event["text"] for event in received if event["type"] == "partial"]
    assert partials and "[CARD]" in partials[-1] and "[EXPIRY]" in partials[-1]
    assert not ORIGINAL_DIGITS.search(json.dumps(received))
    assert [event["segment"]["text"] for event in received if event["type"] == "segment"] == [REDACTED_UTTERANCE]
    (segment,) = await stored(call)
    assert segment.text == REDACTED_UTTERANCE
    assert not ORIGINAL_DIGITS.search(json.dumps(segment.words))
    assert sorted(segment.redacted_types) == ["CARD", "CVV", "EXPIRY"]
    assert segment.original_encrypted is None  # REDACTION=redact keeps no original

    @database_sync_to_async
    def search(text: str) -> int:
        return matching_segments(text, Call.objects.all()).filter(call=call).count()

    assert await search("4111") == 0
    assert await search("1111") == 0
    assert await search("card") == 1


async def test_spelled_out_digits_are_redacted(call: Call) -> None:
    spoken = "my card is four one one one one one one one one one one one one one one one thanks"
    await stream_transcript(call, [acs.transcription_metadata(), acs.transcription_data(acs.CALLER, spoken, 1000)])
    (segment,) = await stored(call)
    assert segment.text == "my card is [CARD] thanks"
    assert "four" not in segment.text and segment.redacted_types == ["CARD"]


async def test_a_card_split_across_two_finals_is_redacted_in_both(call: Call, staff_user: User) -> None:
    viewer = await watch(call, staff_user)
    await stream_transcript(
        call,
        [
            acs.transcription_metadata(),
            acs.transcription_data(acs.CALLER, "My card number is 4111 1111", 1000),
            acs.transcription_data(acs.CALLER, "1111 1111 and that's it.", 30_000_000),
            acs.transcription_data(acs.AGENT, "Thank you.", 60_000_000),
        ],
    )
    received = await events_until_segments(viewer, 3)
    await viewer.disconnect()

    assert not ORIGINAL_DIGITS.search(json.dumps(received))
    assert [segment.text for segment in await stored(call)] == [
        "My card number is [CARD]",
        "[CARD] and that's it.",
        "Thank you.",
    ]


async def test_an_ordinary_final_is_not_held_back(call: Call, staff_user: User) -> None:
    viewer = await watch(call, staff_user)
    media = WebsocketCommunicator(application, media_path(call.id))
    assert (await media.connect())[0]
    await media.send_to(text_data=acs.transcription_metadata())
    await media.send_to(text_data=acs.transcription_data(acs.CALLER, "My bill is wrong.", 1000))
    sent_at = time.monotonic()
    event = await viewer.receive_json_from(timeout=1)
    while event["type"] != "segment":
        event = await viewer.receive_json_from(timeout=1)
    assert time.monotonic() - sent_at < 1.0  # well before the hold-back's 1.5 s
    assert event["segment"]["text"] == "My bill is wrong."
    await media.disconnect()
    await viewer.disconnect()


async def test_with_redaction_off_the_original_is_stored(call: Call) -> None:
    with override_settings(REDACTION="off"):
        await stream_transcript(
            call, [acs.transcription_metadata(), acs.transcription_data(acs.CALLER, CARD_UTTERANCE, 1000)]
        )
    (segment,) = await stored(call)
    assert segment.text == CARD_UTTERANCE and segment.redacted_types == []


async def test_keep_original_stores_it_encrypted(call: Call) -> None:
    key = Fernet.generate_key().decode()
    with override_settings(REDACTION="redact_keep_original", REDACTION_KEYS=[key]):
        await stream_transcript(
            call, [acs.transcription_metadata(), acs.transcription_data(acs.CALLER, CARD_UTTERANCE, 1000)]
        )
        (segment,) = await stored(call)
        assert segment.text == REDACTED_UTTERANCE
        assert b"4111" not in bytes(segment.original_encrypted)
        original = original_text.decrypt(segment.original_encrypted)
    assert original["text"] == CARD_UTTERANCE
    assert [word["text"] for word in original["words"]][3:7] == ["4111", "1111", "1111", "1111,"]
    with override_settings(REDACTION_KEYS=[Fernet.generate_key().decode()]), pytest.raises(original_text.InvalidToken):
        original_text.decrypt(segment.original_encrypted)


async def test_metrics_count_what_the_live_path_redacted(call: Call, settings) -> None:
    await stream_transcript(
        call, [acs.transcription_metadata(), acs.transcription_data(acs.CALLER, CARD_UTTERANCE, 1000)]
    )
    settings.METRICS_TOKEN = "s3cret-scrape-token"

    @database_sync_to_async
    def scrape() -> bytes:
        return Client().get("/metrics", HTTP_AUTHORIZATION="Bearer s3cret-scrape-token").content

    content = await scrape()
    for entity_type in ("CARD", "EXPIRY", "CVV"):
        assert f'callscribe_entities_redacted_total{{type="{entity_type}"}}'.encode() in content
