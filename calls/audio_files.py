"""Captured call audio on disk (written by streaming/audio.py): one PCM16 mono WAV per participant.

Paths are only ever built from Participant rows, never from request data.

Alignment with the transcript is approximate: transcript offsets count from the start of the
transcription session, and a participant's file starts at their first audio frame. The call page
shifts by the time between the first audio and transcription connections; that is usually within a
fraction of a second.
"""

from __future__ import annotations

import os
import re
import struct
import tempfile
import uuid
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from django.conf import settings
from django.urls import reverse

from calls.models import Call, MediaStream, Participant

WAV_HEADER_BYTES = 44
BYTES_PER_SAMPLE = 2  # ACS audio is PCM signed 16-bit little-endian, mono


def audio_directory(call_id: uuid.UUID) -> Path:
    return Path(settings.AUDIO_CAPTURE_DIR) / str(call_id)


def audio_file_name(participant_raw_id: str) -> str:
    safe = re.sub(r"[^A-Za-z0-9_.+-]", "_", participant_raw_id or "mixed")
    return f"{safe[:120]}.wav"


def wav_header(sample_rate: int, data_bytes: int) -> bytes:
    byte_rate = sample_rate * BYTES_PER_SAMPLE
    return struct.pack(
        "<4sI4s4sIHHIIHH4sI",
        b"RIFF",
        36 + data_bytes,
        b"WAVE",
        b"fmt ",
        16,
        1,  # PCM
        1,  # mono
        sample_rate,
        byte_rate,
        BYTES_PER_SAMPLE,
        BYTES_PER_SAMPLE * 8,
        b"data",
        data_bytes,
    )


@dataclass(frozen=True)
class AudioTrack:
    label: str
    url: str
    participant_raw_id: str  # empty for the mix of everyone


def participant_audio_path(participant: Participant) -> Path:
    return audio_directory(participant.call_id) / audio_file_name(participant.raw_id)


def mixdown_path(call: Call) -> Path:
    # A subfolder: participant files sit directly in the call's folder, so no raw id can collide with it.
    return audio_directory(call.id) / "mixdown" / "all.wav"


def audio_tracks(call: Call) -> list[AudioTrack]:
    """The call's playable tracks: each participant with a captured file, then a mix when there are several."""
    if not settings.AUDIO_CAPTURE:
        return []
    tracks = [
        AudioTrack(participant.label, reverse("calls-audio", args=[call.id, participant.pk]), participant.raw_id)
        for participant in call.participants.all()
        if participant.raw_id and participant_audio_path(participant).is_file()
    ]
    if len(tracks) > 1:
        tracks.append(AudioTrack("Everyone (mixed)", reverse("calls-audio-mix", args=[call.id]), ""))
    return tracks


def audio_shift_ms(call: Call) -> int:
    """Milliseconds to add to a transcript offset to find it in the audio (see the module docstring)."""
    first = {}
    for stream in call.streams.all():
        if stream.connected_at and (stream.kind not in first or stream.connected_at < first[stream.kind]):
            first[stream.kind] = stream.connected_at
    audio, transcription = first.get(MediaStream.Kind.AUDIO), first.get(MediaStream.Kind.TRANSCRIPTION)
    if audio is None or transcription is None:
        return 0
    return round((transcription - audio).total_seconds() * 1000)


def wav_sample_rate(path: Path) -> int:
    with open(path, "rb") as wav:
        header = wav.read(WAV_HEADER_BYTES)
    return int.from_bytes(header[24:28], "little") if len(header) == WAV_HEADER_BYTES else 16000


def mix_down(call: Call) -> Path | None:
    """Sum every participant's samples (clipped to 16 bits) into one WAV, regenerated when a source grew."""
    sources = [
        path
        for participant in call.participants.all()
        if participant.raw_id and (path := participant_audio_path(participant)).is_file()
    ]
    if not sources:
        return None
    target = mixdown_path(call)
    if target.is_file() and target.stat().st_mtime >= max(path.stat().st_mtime for path in sources):
        return target
    tracks = [_samples(path) for path in sources]
    mixed = np.zeros(max(len(track) for track in tracks), dtype=np.int32)
    for track in tracks:
        mixed[: len(track)] += track
    np.clip(mixed, -32768, 32767, out=mixed)
    pcm = mixed.astype("<i2").tobytes()
    target.parent.mkdir(parents=True, exist_ok=True)
    # Write then rename, so a concurrent request never serves a half-written mix.
    with tempfile.NamedTemporaryFile(dir=target.parent, delete=False) as temporary:
        temporary.write(wav_header(wav_sample_rate(sources[0]), len(pcm)) + pcm)
    os.replace(temporary.name, target)
    return target


def _samples(path: Path) -> np.ndarray:
    data = path.read_bytes()[WAV_HEADER_BYTES:]
    return np.frombuffer(data[: len(data) - len(data) % 2], dtype="<i2")
