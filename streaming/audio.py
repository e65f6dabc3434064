"""Capture each participant's audio to a WAV file, written off the event loop in batches.

Frames are appended to an in-memory buffer on the hot path, each with the time it arrived;
`AudioRecorder.flush` writes every buffered participant in one executor job. Frames that arrived
during a pause for sensitive data (calls/pause.py) are written as silence of the same length, so the
caller's card number never reaches the disk and the file stays in step with the call. The WAV header's
sizes are rewritten after each write, so a file can be played while the call is still going.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Sequence
from pathlib import Path

from calls.audio_files import BYTES_PER_SAMPLE, WAV_HEADER_BYTES, audio_directory, audio_file_name, wav_header

MAX_SILENCE_PADDING_MS = 60_000


def append_pcm(path: Path, sample_rate: int, pcm: bytes) -> None:
    """Append PCM to a WAV file (creating it), then fix the header's sizes. Blocking: run in a thread."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "r+b" if path.exists() else "w+b") as wav:
        wav.seek(0, 2)
        size = wav.tell()
        if size < WAV_HEADER_BYTES:
            wav.seek(0)
            wav.write(wav_header(sample_rate, 0))
            size = WAV_HEADER_BYTES
        wav.write(pcm)
        wav.seek(0)
        wav.write(wav_header(sample_rate, size - WAV_HEADER_BYTES + len(pcm)))


Span = tuple[float, float]  # (start, end) in time.time() seconds; the end is math.inf while it lasts


class AudioRecorder:
    """Buffers one socket's audio per participant; `flush` writes it out in a worker thread."""

    def __init__(self, call_id: uuid.UUID, sample_rate: int) -> None:
        self.directory = audio_directory(call_id)
        self.sample_rate = sample_rate
        self._buffers: dict[str, list[tuple[float, bytes]]] = {}  # (arrived at, PCM) per participant

    def add(self, participant_raw_id: str, pcm: bytes) -> None:
        buffer = self._buffers.get(participant_raw_id)
        if buffer is None:
            buffer = self._buffers[participant_raw_id] = []
        buffer.append((time.time(), pcm))

    def add_silence(self, participant_raw_id: str, milliseconds: int) -> None:
        """Keep a participant's file in step with the call when frames went missing."""
        milliseconds = min(milliseconds, MAX_SILENCE_PADDING_MS)
        self.add(participant_raw_id, bytes(self.sample_rate * BYTES_PER_SAMPLE * milliseconds // 1000))

    @property
    def oldest_arrival(self) -> float | None:
        """When the earliest frame not yet written arrived; None when nothing is buffered."""
        return min((buffer[0][0] for buffer in self._buffers.values() if buffer), default=None)

    async def flush(self, paused: Sequence[Span] = ()) -> None:
        """Write what is buffered; a frame that arrived within a `paused` span is written as silence."""
        if self.oldest_arrival is None:
            return
        batches, self._buffers = self._buffers, {}
        await asyncio.get_running_loop().run_in_executor(None, self._write, batches, paused)

    def _write(self, batches: dict[str, list[tuple[float, bytes]]], paused: Sequence[Span]) -> None:
        for participant, frames in batches.items():
            pcm = b"".join(bytes(len(data)) if _within(arrived, paused) else data for arrived, data in frames)
            if pcm:
                append_pcm(self.directory / audio_file_name(participant), self.sample_rate, pcm)


def _within(moment: float, spans: Sequence[Span]) -> bool:
    return any(start <= moment < end for start, end in spans)
