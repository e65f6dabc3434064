"""The packet parser, against every example in shared/acs-protocol.md and against hostile input."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from streaming.packets import (
    AudioData,
    AudioMetadata,
    DtmfData,
    MarkData,
    PacketError,
    TranscriptionData,
    TranscriptionMetadata,
    UnknownPacket,
    Word,
    parse_packet,
)

# --- the reference's examples, verbatim -------------------------------------------------------


def test_it_parses_the_reference_audio_metadata() -> None:
    frame = """{"kind": "AudioMetadata", "audioMetadata": {"subscriptionId": "89e8cb59-b991-48b0-b154-1db84f16a077",
               "encoding": "PCM", "sampleRate": 16000, "channels": 1, "length": 640}}"""
    assert parse_packet(frame) == AudioMetadata("89e8cb59-b991-48b0-b154-1db84f16a077", "PCM", 16000, 1, 640)


def test_it_parses_the_reference_audio_data() -> None:
    frame = """{"kind": "AudioData", "audioData": {"timestamp": "2024-11-15T19:16:12.925Z",
               "participantRawID": "8:acs:3d20e1de-0f28-41c5", "data": "5ADwAOMA6AD0A", "silent": false}}"""
    packet = parse_packet(frame)
    assert packet == AudioData(
        timestamp=datetime(2024, 11, 15, 19, 16, 12, 925000, tzinfo=UTC),
        participant_raw_id="8:acs:3d20e1de-0f28-41c5",
        data="5ADwAOMA6AD0A",
        silent=False,
    )


def test_it_parses_the_reference_dtmf_data() -> None:
    assert parse_packet('{ "kind": "DtmfData", "dtmfData": { "data": "3" } }') == DtmfData("3", "", None)


def test_it_parses_the_reference_transcription_metadata() -> None:
    frame = """{"kind": "TranscriptionMetadata", "transcriptionMetadata": {
        "subscriptionId": "aaaa0a0a-bb1b-cc2c-dd3d-eeeeee4e4e4e", "locale": "en-us",
        "callConnectionId": "65c57654-f12c-4975-92a4-21668e61dd98",
        "correlationId": "65c57654-f12c-4975-92a4-21668e61dd98",
        "speechRecognitionModelEndpointId": "custom-model"}}"""
    assert parse_packet(frame) == TranscriptionMetadata(
        "aaaa0a0a-bb1b-cc2c-dd3d-eeeeee4e4e4e",
        "en-us",
        "65c57654-f12c-4975-92a4-21668e61dd98",
        "65c57654-f12c-4975-92a4-21668e61dd98",
        "custom-model",
    )


def test_it_parses_the_reference_final_transcription() -> None:
    frame = """{"kind": "TranscriptionData", "transcriptionData": {"text": "Testing transcription.",
        "format": "display", "confidence": 0.695223331451416, "offset": 49876484, "duration": 9200000,
        "words": [{"text": "testing", "offset": 49876484, "duration": 4000000},
                  {"text": "transcription", "offset": 53876484, "duration": 5200000}],
        "participantRawID": "4:+15551230000", "resultStatus": "Final"}}"""
    packet = parse_packet(frame)
    assert packet == TranscriptionData(
        text="Testing transcription.",
        format="display",
        confidence=0.695223331451416,
        offset_ticks=49876484,
        duration_ticks=9200000,
        words=(Word("testing", 49876484, 4000000), Word("transcription", 53876484, 5200000)),
        participant_raw_id="4:+15551230000",
        result_status="final",
    )
    assert packet.is_final


def test_it_parses_the_reference_intermediate_transcription_without_words_or_confidence() -> None:
    frame = (
        '{"kind":"TranscriptionData","transcriptionData":{"text":"store hours","format":"display",'
        '"offset":49876484,"duration":9200000,"participantRawID":"abc12345","resultStatus":"Intermediate"}}'
    )
    packet = parse_packet(frame.encode())  # and as a binary frame
    assert isinstance(packet, TranscriptionData)
    assert (packet.text, packet.confidence, packet.words, packet.is_final) == ("store hours", None, (), False)


def test_it_recognises_preview_mark_data() -> None:
    assert parse_packet('{"kind":"MarkData","markData":{"id":"m1","status":"Completed"}}') == MarkData(
        "m1", "Completed"
    )


# --- tolerance ---------------------------------------------------------------------------------


@pytest.mark.parametrize("status", ["Final", "final", "FINAL"])
def test_result_status_matches_in_any_case(status: str) -> None:
    frame = json.dumps({"kind": "TranscriptionData", "transcriptionData": {"text": "hi", "resultStatus": status}})
    assert parse_packet(frame).is_final


def test_key_casing_does_not_matter() -> None:
    frame = json.dumps({"Kind": "audioData", "AudioData": {"Timestamp": None, "ParticipantRawId": "4:+1", "Data": ""}})
    assert parse_packet(frame) == AudioData(None, "4:+1", "", False)


def test_kind_may_be_missing_when_the_payload_key_says_it() -> None:
    frame = json.dumps({"audioMetadata": {"subscriptionId": "s", "sampleRate": 24000, "channels": 1}})
    assert parse_packet(frame) == AudioMetadata("s", "PCM", 24000, 1, None)


def test_optional_fields_may_be_missing_or_null() -> None:
    mixed_audio = json.dumps({"kind": "AudioData", "audioData": {"timestamp": "2024-11-15T19:16:12Z", "data": None}})
    assert parse_packet(mixed_audio) == AudioData(datetime(2024, 11, 15, 19, 16, 12, tzinfo=UTC), "", "", False)
    no_words = json.dumps(
        {"kind": "TranscriptionData", "transcriptionData": {"text": "x", "words": None, "resultStatus": "Final"}}
    )
    assert parse_packet(no_words).words == ()


def test_ticks_beyond_two_to_the_31_are_kept_exactly() -> None:
    frame = json.dumps(
        {
            "kind": "TranscriptionData",
            "transcriptionData": {
                "text": "x",
                "offset": 2516998782481234400,
                "duration": 2**40,
                "resultStatus": "Final",
            },
        }
    )
    packet = parse_packet(frame)
    assert (packet.offset_ticks, packet.duration_ticks) == (2516998782481234400, 2**40)


def test_extra_fields_are_ignored() -> None:
    frame = json.dumps({"kind": "DtmfData", "dtmfData": {"data": "#", "future": [1, 2]}, "version": "2026"})
    assert parse_packet(frame) == DtmfData("#", "", None)


def test_an_unknown_kind_is_a_value_not_an_error() -> None:
    assert parse_packet('{"kind": "SentimentData", "sentimentData": {}}') == UnknownPacket("SentimentData")


def test_audio_data_decodes_its_pcm_on_request() -> None:
    packet = parse_packet('{"kind": "AudioData", "audioData": {"data": "AAABAA=="}}')
    assert packet.pcm() == b"\x00\x00\x01\x00"
    with pytest.raises(PacketError, match="base64"):
        parse_packet('{"kind": "AudioData", "audioData": {"data": "not base64!"}}').pcm()


# --- hostile input: one error type, with a message that names the problem -----------------------


@pytest.mark.parametrize(
    ("frame", "message"),
    [
        ("not json at all", "not valid JSON"),
        (b"\xff\xfe\xfd", "not UTF-8"),
        ("[1, 2, 3]", "must be a JSON object"),
        ('"a string"', "must be a JSON object"),
        ("{}", "no kind"),
        ('{"kind": 7}', "kind must be a string"),
        ('{"kind": "AudioData", "audioData": []}', "payload must be an object"),
        ('{"kind": "AudioData", "audioData": {"data": 12}}', "AudioData.data must be a base64 string"),
        ('{"kind": "AudioData", "audioData": {"silent": "no"}}', "AudioData.silent must be a boolean"),
        ('{"kind": "AudioData", "audioData": {"timestamp": "yesterday"}}', "timestamp is not ISO-8601"),
        ('{"kind": "AudioData", "audioData": {"timestamp": "2024-11-15T19:16:12"}}', "no time zone"),
        ('{"kind": "AudioMetadata", "audioMetadata": {"sampleRate": "16000"}}', "samplerate must be an integer"),
        ('{"kind": "AudioMetadata", "audioMetadata": {"sampleRate": true}}', "samplerate must be an integer"),
        ('{"kind": "AudioMetadata", "audioMetadata": {"sampleRate": 0}}', "at least 1"),
        ('{"kind": "AudioMetadata", "audioMetadata": {"sampleRate": 1099511627776}}', "samplerate is out of range"),
        ('{"kind": "AudioMetadata", "audioMetadata": {"length": -640}}', "length must be at least 1"),
        ('{"kind": "AudioMetadata", "audioMetadata": {"encoding": "' + "E" * 21 + '"}}', "encoding is 21 characters"),
        (
            '{"kind": "TranscriptionMetadata", "transcriptionMetadata": {"subscriptionId": "' + "s" * 201 + '"}}',
            "subscriptionid is 201 characters long, more than 200",
        ),
        ('{"kind": "TranscriptionMetadata", "transcriptionMetadata": {"locale": "' + "x" * 50 + '"}}', "locale is 50"),
        ('{"kind": "TranscriptionData", "transcriptionData": {"text": "x"}}', "resultStatus is missing"),
        (
            '{"kind": "TranscriptionData", "transcriptionData": {"text": 5, "resultStatus": "Final"}}',
            "text must be a string",
        ),
        (
            '{"kind": "TranscriptionData", "transcriptionData": {"offset": -5, "resultStatus": "Final"}}',
            "offset must be at least 0",
        ),
        (
            '{"kind": "TranscriptionData", "transcriptionData": {"offset": 1e300, "resultStatus": "Final"}}',
            "offset is out of range",
        ),
        (
            '{"kind": "TranscriptionData", "transcriptionData": {"confidence": NaN, "resultStatus": "Final"}}',
            "confidence must be a number",
        ),
        (
            '{"kind": "TranscriptionData", "transcriptionData": {"confidence": 7, "resultStatus": "Final"}}',
            "between 0 and 1",
        ),
        (
            '{"kind": "TranscriptionData", "transcriptionData": {"words": {"a": 1}, "resultStatus": "Final"}}',
            "words must be a list",
        ),
        (
            '{"kind": "TranscriptionData", "transcriptionData": {"words": ["a"], "resultStatus": "Final"}}',
            r"words\[0\] must be an object",
        ),
    ],
)
def test_malformed_packets_raise_packet_error_naming_the_problem(frame: str | bytes, message: str) -> None:
    with pytest.raises(PacketError, match=message):
        parse_packet(frame)


def test_deeply_nested_junk_is_refused() -> None:
    with pytest.raises(PacketError, match=r"nested too deeply|not valid JSON"):
        parse_packet("[" * 200_000 + "]" * 200_000)
    nested = '{"kind": "DtmfData", "dtmfData": {"data": ' + "[" * 5000 + "]" * 5000 + "}}"
    with pytest.raises(PacketError):
        parse_packet(nested)


def test_huge_numbers_are_refused() -> None:
    with pytest.raises(PacketError, match="not valid JSON"):
        parse_packet('{"kind": "AudioMetadata", "audioMetadata": {"sampleRate": ' + "9" * 10_000 + "}}")
    with pytest.raises(PacketError, match="out of range"):
        parse_packet('{"kind": "AudioMetadata", "audioMetadata": {"sampleRate": ' + "9" * 100 + "}}")


def test_one_megabyte_strings_are_refused_where_they_cannot_be_stored() -> None:
    megabyte = "x" * 1_000_000
    for payload in (
        {"kind": "AudioData", "audioData": {"participantRawID": megabyte}},
        {"kind": "TranscriptionData", "transcriptionData": {"text": megabyte, "resultStatus": "Final"}},
        {"kind": "TranscriptionMetadata", "transcriptionMetadata": {"subscriptionId": megabyte}},
    ):
        with pytest.raises(PacketError, match="characters long"):
            parse_packet(json.dumps(payload))
    unknown = parse_packet(json.dumps({"kind": megabyte}))
    assert isinstance(unknown, UnknownPacket) and len(unknown.kind) <= 300
