"""Captured audio: per-participant WAVs served with HTTP Range, a mixed-down WAV, and the audit of listens."""

from __future__ import annotations

import struct
from pathlib import Path

import pytest
from asgiref.sync import async_to_sync
from django.test import Client, override_settings
from django.urls import reverse

from calls import participants, services
from calls.audio_files import audio_directory, audio_file_name
from calls.models import AccessLog, Call, Participant
from streaming.audio import append_pcm
from tests.calls.conftest import logged_in
from tests.streaming import acs_packets as acs

pytestmark = pytest.mark.django_db

SAMPLE_RATE = 16000


@pytest.fixture(autouse=True)
def audio_dir(tmp_path: Path):
    with override_settings(AUDIO_CAPTURE=True, AUDIO_CAPTURE_DIR=tmp_path):
        yield tmp_path


def pcm(*samples: int) -> bytes:
    return struct.pack(f"<{len(samples)}h", *samples)


@pytest.fixture
def caller(call: Call) -> Participant:
    participant = participants.ensure_participant(call_id=call.id, raw_id=acs.CALLER)
    append_pcm(audio_directory(call.id) / audio_file_name(acs.CALLER), SAMPLE_RATE, pcm(*range(1000)))
    return participant


def body(response) -> bytes:
    """Read the streamed body the way daphne does: as an async iterator."""

    async def read() -> bytes:
        return b"".join([chunk async for chunk in response.streaming_content])

    return async_to_sync(read)()


def test_a_participants_audio_downloads_whole(alice_client: Client, call: Call, caller: Participant) -> None:
    response = alice_client.get(reverse("calls-audio", args=[call.id, caller.pk]))
    assert response.status_code == 200
    assert response["Content-Type"] == "audio/wav"
    assert response["Accept-Ranges"] == "bytes"
    assert response["Content-Length"] == str(44 + 2000)
    assert "no-store" in response["Cache-Control"]  # a call's audio stays out of the browser's cache
    content = body(response)
    assert content[:4] == b"RIFF" and content[44:] == pcm(*range(1000))


@pytest.mark.parametrize(
    ("header", "content_range", "first", "last"),
    [
        ("bytes=44-53", "bytes 44-53/2044", 44, 53),
        ("bytes=2000-", "bytes 2000-2043/2044", 2000, 2043),
        ("bytes=-4", "bytes 2040-2043/2044", 2040, 2043),
        ("bytes=2040-99999", "bytes 2040-2043/2044", 2040, 2043),
    ],
)
def test_a_range_request_gets_partial_content(
    alice_client: Client, call: Call, caller: Participant, header: str, content_range: str, first: int, last: int
) -> None:
    whole = body(alice_client.get(reverse("calls-audio", args=[call.id, caller.pk])))
    response = alice_client.get(reverse("calls-audio", args=[call.id, caller.pk]), HTTP_RANGE=header)
    assert response.status_code == 206
    assert response["Content-Range"] == content_range
    assert response["Content-Length"] == str(last - first + 1)
    assert body(response) == whole[first : last + 1]


def test_an_unsatisfiable_range_is_refused(alice_client: Client, call: Call, caller: Participant) -> None:
    response = alice_client.get(reverse("calls-audio", args=[call.id, caller.pk]), HTTP_RANGE="bytes=5000-")
    assert response.status_code == 416
    assert response["Content-Range"] == "bytes */2044"


def test_only_a_listen_from_the_start_is_logged(
    alice_client: Client, staff_user, call: Call, caller: Participant
) -> None:
    url = reverse("calls-audio", args=[call.id, caller.pk])
    alice_client.get(url, HTTP_RANGE="bytes=0-")
    alice_client.get(url, HTTP_RANGE="bytes=1000-")  # the player seeking
    assert list(AccessLog.objects.values_list("user", "action", "detail")) == [(staff_user.pk, "audio", acs.CALLER)]


def test_audio_needs_the_watch_permission(outsider, call: Call, caller: Participant) -> None:
    assert logged_in(outsider).get(reverse("calls-audio", args=[call.id, caller.pk])).status_code == 403


def test_a_participant_of_another_call_is_not_found(alice_client: Client, caller: Participant) -> None:
    other = services.create_call()
    assert alice_client.get(reverse("calls-audio", args=[other.id, caller.pk])).status_code == 404


def test_no_audio_when_capture_is_off(alice_client: Client, call: Call, caller: Participant) -> None:
    with override_settings(AUDIO_CAPTURE=False):
        assert alice_client.get(reverse("calls-audio", args=[call.id, caller.pk])).status_code == 404
        assert "<audio" not in alice_client.get(reverse("calls-detail", args=[call.id])).content.decode()


def test_the_mix_sums_participants_and_clips(alice_client: Client, call: Call) -> None:
    participants.ensure_participant(call_id=call.id, raw_id=acs.CALLER)
    participants.ensure_participant(call_id=call.id, raw_id=acs.AGENT)
    folder = audio_directory(call.id)
    append_pcm(folder / audio_file_name(acs.CALLER), SAMPLE_RATE, pcm(100, 30000, -30000, 5))
    append_pcm(folder / audio_file_name(acs.AGENT), SAMPLE_RATE, pcm(1, 10000, -10000))
    response = alice_client.get(reverse("calls-audio-mix", args=[call.id]))
    assert response.status_code == 200
    assert body(response)[44:] == pcm(101, 32767, -32768, 5)


def test_the_call_page_offers_a_player_per_participant_and_a_mix(alice_client: Client, call: Call) -> None:
    for raw_id in (acs.CALLER, acs.AGENT):
        participant = participants.ensure_participant(call_id=call.id, raw_id=raw_id)
        append_pcm(audio_directory(call.id) / audio_file_name(raw_id), SAMPLE_RATE, pcm(1, 2, 3))
    page = alice_client.get(reverse("calls-detail", args=[call.id])).content.decode()
    assert page.count("<option value=") == 3
    assert f"/audio/{participant.pk}.wav" in page
    assert "/audio/mixed.wav" in page
    assert "<audio" in page
