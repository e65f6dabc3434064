"""Silencing spans of captured audio in place: redacted words must not stay audible in the WAV.

Files are PCM16 mono with a 44-byte header (calls/audio_files.py). A span is zeroed sample by sample
where it lies; nothing is read or rewritten around it, so a file still being appended to keeps its
other audio.
"""

from __future__ import annotations

from pathlib import Path

from calls.audio_files import WAV_HEADER_BYTES, wav_sample_rate

BYTES_PER_SAMPLE = 2


def silence_span(path: Path, start_ms: int, end_ms: int) -> int:
    """Zero the samples from start_ms to end_ms (clipped to the file); returns how many were zeroed."""
    sample_rate = wav_sample_rate(path)
    data_bytes = path.stat().st_size - WAV_HEADER_BYTES
    first = max(0, start_ms) * sample_rate // 1000
    last = min(data_bytes // BYTES_PER_SAMPLE, -(-max(0, end_ms) * sample_rate // 1000))
    if last <= first:
        return 0
    with open(path, "r+b") as wav:
        wav.seek(WAV_HEADER_BYTES + first * BYTES_PER_SAMPLE)
        wav.write(bytes((last - first) * BYTES_PER_SAMPLE))
    return last - first
