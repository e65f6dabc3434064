"""Parse ACS media-streaming and transcription websocket packets into typed, immutable objects.

The wire format is in shared/acs-protocol.md, section 1. Every packet is one JSON object,
`{"kind": "<PascalCase>", "<camelCaseOfKind>": {...}}`, normally in a text frame. Key casing varies
between Microsoft's own SDKs (section 6.2), so keys and `kind` are matched case-insensitively.

`parse_packet` returns one of the packet classes below. A `kind` this module does not know becomes an
`UnknownPacket` (ACS adds kinds over time); anything malformed raises `PacketError`, whose message
names what was wrong.
"""

from __future__ import annotations

import binascii
import json
import math
from base64 import b64decode
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from calls.stored_text import NUL_ESCAPE, NUL_ESCAPE_BYTES

# Limits match the columns the values are stored in (calls/models.py), so a packet that parses
# can always be stored.
MAX_TEXT_LENGTH = 20_000
MAX_IDENTIFIER_LENGTH = 300  # participantRawID
MAX_SUBSCRIPTION_ID_LENGTH = 200  # subscriptionId, callConnectionId, correlationId
MAX_SHORT_LENGTH = 20  # encoding, locale
MAX_SAMPLE_RATE = 384_000
MAX_CHANNELS = 32
MAX_FRAME_LENGTH = 1 << 24
MAX_WORDS = 2_000


class PacketError(ValueError):
    """A frame that is not a valid ACS packet. The message says what was wrong."""


@dataclass(frozen=True, slots=True)
class AudioMetadata:
    subscription_id: str
    encoding: str
    sample_rate: int
    channels: int
    frame_length: int | None


@dataclass(frozen=True, slots=True)
class AudioData:
    timestamp: datetime | None
    participant_raw_id: str
    data: str  # base64 PCM16LE; decoded only when audio is captured (see `pcm`)
    silent: bool

    def pcm(self) -> bytes:
        try:
            return b64decode(self.data, validate=True)
        except binascii.Error as error:
            raise PacketError(f"AudioData.data is not valid base64: {error}") from None


@dataclass(frozen=True, slots=True)
class DtmfData:
    tone: str
    participant_raw_id: str
    timestamp: datetime | None


@dataclass(frozen=True, slots=True)
class TranscriptionMetadata:
    subscription_id: str
    locale: str
    call_connection_id: str
    correlation_id: str
    speech_model_endpoint_id: str


@dataclass(frozen=True, slots=True)
class Word:
    text: str
    offset_ticks: int
    duration_ticks: int


@dataclass(frozen=True, slots=True)
class TranscriptionData:
    text: str
    format: str
    confidence: float | None
    offset_ticks: int
    duration_ticks: int
    words: tuple[Word, ...]
    participant_raw_id: str
    result_status: str  # lower-cased: "final", "intermediate", or whatever new value ACS sends

    @property
    def is_final(self) -> bool:
        return self.result_status == "final"


@dataclass(frozen=True, slots=True)
class MarkData:
    """Preview-only (.NET beta "mark audio"); parsed so it is recognised, not acted on."""

    mark_id: str
    status: str


@dataclass(frozen=True, slots=True)
class UnknownPacket:
    kind: str


Packet = AudioMetadata | AudioData | DtmfData | TranscriptionMetadata | TranscriptionData | MarkData | UnknownPacket


def parse_packet(frame: str | bytes | bytearray) -> Packet:
    """Parse one websocket frame (text, or UTF-8 bytes) into a packet object."""
    envelope = _load_object(frame)
    lowered = {key.lower(): value for key, value in envelope.items()} if "kind" not in envelope else None
    kind = envelope.get("kind") if lowered is None else lowered.get("kind")
    if kind is None or kind == "":
        kind = _kind_from_payload_key(lowered if lowered is not None else envelope)
    if not isinstance(kind, str):
        raise PacketError(f"kind must be a string, got {_type_name(kind)}")
    parser = _PARSERS.get(kind.lower())
    if parser is None:
        return UnknownPacket(kind=kind[:MAX_IDENTIFIER_LENGTH])
    payload = _payload(envelope, kind)
    return parser(payload)


def _load_object(frame: str | bytes | bytearray) -> dict[str, Any]:
    # PostgreSQL cannot store U+0000 in text or jsonb: a final carrying it would fail to store forever.
    if (NUL_ESCAPE if isinstance(frame, str) else NUL_ESCAPE_BYTES) in frame:
        raise PacketError("frame contains a NUL character (\\u0000), which cannot be stored")
    try:
        envelope = json.loads(frame)
    except UnicodeDecodeError:
        raise PacketError("binary frame is not UTF-8") from None
    except RecursionError:
        raise PacketError("JSON is nested too deeply") from None
    except ValueError as error:  # JSONDecodeError, and integers too long to convert
        raise PacketError(f"frame is not valid JSON: {error}") from None
    if not isinstance(envelope, dict):
        raise PacketError(f"packet must be a JSON object, got {_type_name(envelope)}")
    return envelope


def _kind_from_payload_key(envelope: dict[str, Any]) -> str:
    """Java's parser ignores `kind` and dispatches on the payload key; do the same when `kind` is missing."""
    for key in envelope:
        if key.lower() in _PARSERS:
            return key
    raise PacketError("packet has no kind and no known payload key")


def _payload(envelope: dict[str, Any], kind: str) -> dict[str, Any]:
    key = kind[0].lower() + kind[1:]
    payload = envelope.get(key)
    if payload is None:
        wanted = kind.lower()
        payload = next((value for name, value in envelope.items() if name.lower() == wanted), None)
    if payload is None:
        payload = {}
    if not isinstance(payload, dict):
        raise PacketError(f"{kind} payload must be an object, got {_type_name(payload)}")
    return {name.lower(): value for name, value in payload.items()}


def _parse_audio_metadata(payload: dict[str, Any]) -> AudioMetadata:
    return AudioMetadata(
        subscription_id=_string(payload, "subscriptionid", "AudioMetadata", MAX_SUBSCRIPTION_ID_LENGTH),
        encoding=_string(payload, "encoding", "AudioMetadata", MAX_SHORT_LENGTH) or "PCM",
        sample_rate=_integer(payload, "samplerate", "AudioMetadata", default=16000, minimum=1, maximum=MAX_SAMPLE_RATE),
        channels=_integer(payload, "channels", "AudioMetadata", default=1, minimum=1, maximum=MAX_CHANNELS),
        frame_length=_optional_integer(payload, "length", "AudioMetadata", maximum=MAX_FRAME_LENGTH),
    )


def _parse_audio_data(payload: dict[str, Any]) -> AudioData:
    data = payload.get("data")
    if data is None:
        data = ""  # .NET tolerates null or blank data (reference 1.4)
    elif not isinstance(data, str):
        raise PacketError(f"AudioData.data must be a base64 string, got {_type_name(data)}")
    silent = payload.get("silent", False)
    if silent is None:
        silent = False
    elif not isinstance(silent, bool):
        raise PacketError(f"AudioData.silent must be a boolean, got {_type_name(silent)}")
    return AudioData(
        timestamp=_timestamp(payload, "AudioData"),
        participant_raw_id=_string(payload, "participantrawid", "AudioData"),
        data=data,
        silent=silent,
    )


def _parse_dtmf_data(payload: dict[str, Any]) -> DtmfData:
    return DtmfData(
        tone=_string(payload, "data", "DtmfData"),
        participant_raw_id=_string(payload, "participantrawid", "DtmfData"),
        timestamp=_timestamp(payload, "DtmfData"),
    )


def _parse_transcription_metadata(payload: dict[str, Any]) -> TranscriptionMetadata:
    where = "TranscriptionMetadata"
    return TranscriptionMetadata(
        subscription_id=_string(payload, "subscriptionid", where, MAX_SUBSCRIPTION_ID_LENGTH),
        locale=_string(payload, "locale", where, MAX_SHORT_LENGTH),
        call_connection_id=_string(payload, "callconnectionid", where, MAX_SUBSCRIPTION_ID_LENGTH),
        correlation_id=_string(payload, "correlationid", where, MAX_SUBSCRIPTION_ID_LENGTH),
        speech_model_endpoint_id=_string(payload, "speechrecognitionmodelendpointid", where),
    )


def _parse_transcription_data(payload: dict[str, Any]) -> TranscriptionData:
    where = "TranscriptionData"
    status = _string(payload, "resultstatus", where)
    if not status:
        raise PacketError("TranscriptionData.resultStatus is missing")
    return TranscriptionData(
        text=_string(payload, "text", where, max_length=MAX_TEXT_LENGTH),
        format=_string(payload, "format", where) or "display",
        confidence=_confidence(payload.get("confidence")),
        offset_ticks=_integer(payload, "offset", where, default=0, minimum=0),
        duration_ticks=_integer(payload, "duration", where, default=0, minimum=0),
        words=_words(payload.get("words")),
        participant_raw_id=_string(payload, "participantrawid", where),
        result_status=status.lower(),
    )


def _parse_mark_data(payload: dict[str, Any]) -> MarkData:
    return MarkData(mark_id=_string(payload, "id", "MarkData"), status=_string(payload, "status", "MarkData"))


_PARSERS = {
    "audiometadata": _parse_audio_metadata,
    "audiodata": _parse_audio_data,
    "dtmfdata": _parse_dtmf_data,
    "transcriptionmetadata": _parse_transcription_metadata,
    "transcriptiondata": _parse_transcription_data,
    "markdata": _parse_mark_data,
}


def _string(payload: dict[str, Any], key: str, where: str, max_length: int = MAX_IDENTIFIER_LENGTH) -> str:
    value = payload.get(key)
    if value is None:
        return ""
    if not isinstance(value, str):
        raise PacketError(f"{where}.{key} must be a string, got {_type_name(value)}")
    if len(value) > max_length:
        raise PacketError(f"{where}.{key} is {len(value)} characters long, more than {max_length}")
    return value


def _integer(
    payload: dict[str, Any], key: str, where: str, default: int, minimum: int, maximum: int = 2**63 - 1
) -> int:
    value = _optional_integer(payload, key, where, minimum, maximum)
    return default if value is None else value


def _optional_integer(
    payload: dict[str, Any], key: str, where: str, minimum: int = 1, maximum: int = 2**63 - 1
) -> int | None:
    value = payload.get(key)
    if value is None:
        return None
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        raise PacketError(f"{where}.{key} must be an integer, got {_type_name(value)}")
    if value.bit_length() > 63 or value > maximum:
        raise PacketError(f"{where}.{key} is out of range: {value}")
    if value < minimum:
        raise PacketError(f"{where}.{key} must be at least {minimum}, got {value}")
    return value


def _confidence(value: Any) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise PacketError(f"TranscriptionData.confidence must be a number, got {value!r:.40}")
    if not 0.0 <= value <= 1.0:
        raise PacketError(f"TranscriptionData.confidence must be between 0 and 1, got {value}")
    return float(value)


def _words(value: Any) -> tuple[Word, ...]:
    if value is None:
        return ()
    if not isinstance(value, list):
        raise PacketError(f"TranscriptionData.words must be a list, got {_type_name(value)}")
    if len(value) > MAX_WORDS:
        raise PacketError(f"TranscriptionData.words has {len(value)} entries, more than {MAX_WORDS}")
    words = []
    for index, item in enumerate(value):
        if not isinstance(item, dict):
            raise PacketError(f"TranscriptionData.words[{index}] must be an object, got {_type_name(item)}")
        word = {name.lower(): field for name, field in item.items()}
        where = f"TranscriptionData.words[{index}]"
        words.append(
            Word(
                text=_string(word, "text", where, max_length=MAX_TEXT_LENGTH),
                offset_ticks=_integer(word, "offset", where, default=0, minimum=0),
                duration_ticks=_integer(word, "duration", where, default=0, minimum=0),
            )
        )
    return tuple(words)


def _timestamp(payload: dict[str, Any], where: str) -> datetime | None:
    value = payload.get("timestamp")
    if value is None or value == "":
        return None
    if not isinstance(value, str) or len(value) > 64:
        raise PacketError(f"{where}.timestamp must be an ISO-8601 string, got {value!r:.40}")
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise PacketError(f"{where}.timestamp is not ISO-8601: {value!r}") from None
    if parsed.tzinfo is None:
        raise PacketError(f"{where}.timestamp has no time zone: {value!r}")
    return parsed


def _type_name(value: Any) -> str:
    return "null" if value is None else type(value).__name__
