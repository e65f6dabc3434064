"""`manage.py export_transcript` and `manage.py media_url`."""

from __future__ import annotations

import json
from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone

from calls import participants, services
from calls.models import Call, Gap, MediaStream
from calls.tokens import unsign_media_token
from tests.conftest import make_agent

pytestmark = pytest.mark.django_db


def add_final(call: Call, participant: str, text: str, offset: int, duration: int, subscription: str = "sub-1") -> None:
    stream = services.open_stream(call_id=call.id, kind="transcription", subscription_id=subscription)
    services.store_finals(
        [
            services.Final(
                call_id=call.id,
                stream_id=stream.id,
                subscription_id=subscription,
                participant_raw_id=participant,
                text=text,
                confidence=0.875,
                offset_ticks=offset,
                duration_ticks=duration,
                words=[
                    {"text": word, "offset": offset + n * 1000, "duration": 1000} for n, word in enumerate(text.split())
                ],
                received_at=timezone.now(),
            )
        ]
    )


def export(identifier: str, export_format: str) -> str:
    out = StringIO()
    call_command("export_transcript", identifier, "--format", export_format, stdout=out)
    return out.getvalue()


@pytest.fixture
def transcribed_call(call: Call) -> Call:
    call.call_connection_id = "acs-connection-1"
    call.save()
    make_agent("dana", "8:acs:agent", full_name="Dana Reyes")
    participants.ensure_participant(call_id=call.id, raw_id="8:acs:agent")
    add_final(call, "4:+14255550100", "Hello, my bill is wrong.", 49_876_484, 9_200_000)
    add_final(call, "8:acs:agent", "Sorry to hear that.", 10_000_000, 5_000_000)  # stored later, earlier offset
    return call


def test_json_export_has_the_documented_shape_in_call_order(transcribed_call: Call) -> None:
    document = json.loads(export("acs-connection-1", "json"))
    assert document["call"]["id"] == str(transcribed_call.id)
    assert document["call"]["call_connection_id"] == "acs-connection-1"
    assert document["call"]["state"] == "connecting"
    first, second = document["segments"]
    assert first == {
        "participant": "8:acs:agent",
        "role": "agent",
        "speaker": "Agent Dana Reyes",
        "text": "Sorry to hear that.",
        "start_ms": 1000,
        "end_ms": 1500,
        "confidence": 0.875,
        "words": [
            {"text": "Sorry", "start_ms": 1000, "end_ms": 1000.1},
            {"text": "to", "start_ms": 1000.1, "end_ms": 1000.2},
            {"text": "hear", "start_ms": 1000.2, "end_ms": 1000.3},
            {"text": "that.", "start_ms": 1000.3, "end_ms": 1000.4},
        ],
    }
    assert (second["participant"], second["start_ms"], second["end_ms"]) == ("4:+14255550100", 4987.6484, 5907.6484)
    assert (second["role"], second["speaker"]) == ("customer", "Customer +14255550100")


def test_segments_of_a_restarted_subscription_follow_the_earlier_ones(call: Call) -> None:
    add_final(call, "4:+1", "Before.", 50_000_000, 10, subscription="first")
    add_final(call, "4:+1", "After.", 1_000, 10, subscription="second")
    assert [segment["text"] for segment in json.loads(export(str(call.id), "json"))["segments"]] == [
        "Before.",
        "After.",
    ]


def test_text_webvtt_and_srt_exports(transcribed_call: Call) -> None:
    assert export("acs-connection-1", "txt") == (
        "[00:00:01.000] Agent Dana Reyes: Sorry to hear that.\n"
        "[00:00:04.987] Customer +14255550100: Hello, my bill is wrong.\n"
    )
    assert export("acs-connection-1", "vtt") == (
        "WEBVTT\n\n00:00:01.000 --> 00:00:01.500\n<v Agent Dana Reyes>Sorry to hear that.\n\n"
        "00:00:04.987 --> 00:00:05.907\n<v Customer +14255550100>Hello, my bill is wrong.\n\n"
    )
    assert export("acs-connection-1", "srt") == (
        "1\n00:00:01,000 --> 00:00:01,500\nAgent Dana Reyes: Sorry to hear that.\n\n"
        "2\n00:00:04,987 --> 00:00:05,907\nCustomer +14255550100: Hello, my bill is wrong.\n\n"
    )


def test_webvtt_escapes_markup_in_transcript_text(call: Call) -> None:
    add_final(call, "4:+1", "<b>bold</b> & co", 0, 10)
    assert "&lt;b&gt;bold&lt;/b&gt; &amp; co" in export(str(call.id), "vtt")


def test_an_unknown_call_is_a_clear_error() -> None:
    with pytest.raises(CommandError, match="No call with callConnectionId or id 'nope'"):
        export("nope", "json")


def test_media_url_creates_a_call_and_prints_a_signed_socket_url() -> None:
    out = StringIO()
    call_command("media_url", stdout=out)
    url = out.getvalue().strip()
    assert url.startswith("ws://127.0.0.1:8000/ws/media/")
    call_id = unsign_media_token(url.split("/")[-2])
    assert Call.objects.filter(pk=call_id).exists()
    again = StringIO()
    call_command("media_url", str(call_id), stdout=again)
    assert unsign_media_token(again.getvalue().strip().split("/")[-2]) == call_id


def test_a_pause_for_sensitive_data_shows_where_it_happened_in_every_export(call: Call) -> None:
    start = timezone.now() - timedelta(minutes=5)
    add_final(call, "4:+1", "My card number is", 10_000_000, 20_000_000)
    stream = MediaStream.objects.get(call=call)
    MediaStream.objects.filter(pk=stream.pk).update(connected_at=start)
    Gap.objects.create(
        call=call,
        stream=stream,
        reason=Gap.Reason.SENSITIVE_PAUSE,
        started_at=start + timedelta(seconds=4),
        ended_at=start + timedelta(seconds=34),
        detail="Transcription and audio capture paused for sensitive data by alice; resumed by alice",
    )
    add_final(call, "4:+1", "Thanks, that went through.", 350_000_000, 20_000_000)  # after the pause, at 35 s
    note = "[Transcription and audio capture paused for sensitive data by alice; resumed by alice]"

    assert export(str(call.id), "txt") == (
        f"[00:00:01.000] Customer +1: My card number is\n[00:00:04.000] {note}\n"
        "[00:00:35.000] Customer +1: Thanks, that went through.\n"
    )
    assert f"2\n00:00:04,000 --> 00:00:34,000\n{note}\n\n3\n00:00:35,000" in export(str(call.id), "srt")
    assert f"00:00:04.000 --> 00:00:34.000\n{note}\n\n" in export(str(call.id), "vtt")
    document = json.loads(export(str(call.id), "json"))
    assert [segment["text"] for segment in document["segments"]] == ["My card number is", "Thanks, that went through."]
    [gap] = document["gaps"]
    assert (gap["reason"], gap["reason_label"]) == ("sensitive_pause", "Paused for sensitive data")
    assert gap["detail"].endswith("by alice; resumed by alice") and gap["ended_at"]
