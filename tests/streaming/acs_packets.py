"""ACS packets as ACS sends them (shared/acs-protocol.md section 1), for tests to put on the wire."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta

CALLER = "4:+14255550100"
AGENT = "8:acs:3d20e1de-0f28-41c5-9a00-000000000001"
AUDIO_SUBSCRIPTION = "89e8cb59-b991-48b0-b154-1db84f16a077"
TRANSCRIPTION_SUBSCRIPTION = "aaaa0a0a-bb1b-cc2c-dd3d-eeeeee4e4e4e"
START = datetime(2026, 11, 25, 9, 0, 0, tzinfo=UTC)


def audio_metadata(subscription_id: str = AUDIO_SUBSCRIPTION, sample_rate: int = 16000) -> str:
    return json.dumps(
        {
            "kind": "AudioMetadata",
            "audioMetadata": {
                "subscriptionId": subscription_id,
                "encoding": "PCM",
                "sampleRate": sample_rate,
                "channels": 1,
                "length": sample_rate // 50 * 2,
            },
        }
    )


def audio_data(participant: str, frame: int, *, silent: bool = False, pcm: bytes | None = None) -> str:
    timestamp = START + timedelta(milliseconds=20 * frame)
    pcm = pcm if pcm is not None else bytes([frame % 256, 0]) * 320
    return json.dumps(
        {
            "kind": "AudioData",
            "audioData": {
                "timestamp": timestamp.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
                "participantRawID": participant,
                "data": base64.b64encode(pcm).decode(),
                "silent": silent,
            },
        }
    )


def transcription_metadata(subscription_id: str = TRANSCRIPTION_SUBSCRIPTION, call_connection_id: str = "") -> str:
    return json.dumps(
        {
            "kind": "TranscriptionMetadata",
            "transcriptionMetadata": {
                "subscriptionId": subscription_id,
                "locale": "en-us",
                "callConnectionId": call_connection_id,
                "correlationId": "65c57654-f12c-4975-92a4-21668e61dd98",
            },
        }
    )


def transcription_data(
    participant: str, text: str, offset: int, duration: int = 9_200_000, *, final: bool = True
) -> str:
    payload = {
        "text": text,
        "format": "display",
        "offset": offset,
        "duration": duration,
        "participantRawID": participant,
        "resultStatus": "Final" if final else "Intermediate",
    }
    if final:
        words = text.split()
        step = duration // max(len(words), 1)
        payload["confidence"] = 0.93
        payload["words"] = [
            {"text": word, "offset": offset + index * step, "duration": step} for index, word in enumerate(words)
        ]
    return json.dumps({"kind": "TranscriptionData", "transcriptionData": payload})


def dtmf_data(tone: str) -> str:
    return json.dumps({"kind": "DtmfData", "dtmfData": {"data": tone}})
