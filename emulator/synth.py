"""Speech for the scripts: espeak-ng when it is installed, otherwise a deterministic formant-like tone per word.

Both return 16-bit mono PCM at the requested rate plus where each word sits in it, so transcription
word offsets line up with the audio.
"""

from __future__ import annotations

import array
import io
import math
import random
import re
import shutil
import subprocess
import sys
import zlib
from dataclasses import dataclass
from typing import Protocol

_TABLE_SIZE = 256
_PEAK = 9000  # about -11 dBFS: clearly audible, far from clipping


@dataclass(frozen=True)
class Voice:
    name: str  # espeak-ng voice, e.g. "en-us+f3"
    pitch: float  # Hz, for the tone fallback
    wpm: int = 165


@dataclass(frozen=True)
class Clip:
    pcm: bytes  # PCM16LE mono
    words: tuple[tuple[float, float], ...]  # (start, end) seconds within the clip, one per token


class Synthesizer(Protocol):
    def synthesize(self, tokens: list[str], voice: Voice, sample_rate: int) -> Clip: ...


def default_synthesizer() -> Synthesizer:
    return EspeakSynthesizer() if shutil.which("espeak-ng") else ToneSynthesizer()


class EspeakSynthesizer:
    def synthesize(self, tokens: list[str], voice: Voice, sample_rate: int) -> Clip:
        text = " ".join(tokens).lstrip("-")
        command = ["espeak-ng", "--stdout", "-v", voice.name, "-s", str(voice.wpm), text]
        wav = subprocess.run(command, capture_output=True, check=True, timeout=60).stdout
        source_rate, samples = read_wav(wav)
        samples = trim_silence(samples, source_rate)
        samples = resample(samples, source_rate, sample_rate)
        duration = len(samples) / sample_rate
        return Clip(_little_endian(samples), spread_words(tokens, duration))


class ToneSynthesizer:
    """A voiced buzz per word, shaped by two formants picked from the word, so speakers sound distinct."""

    def synthesize(self, tokens: list[str], voice: Voice, sample_rate: int) -> Clip:
        samples = array.array("h")
        spans = []
        for position, token in enumerate(tokens):
            start = len(samples) / sample_rate
            seed = zlib.crc32(f"{voice.name}|{token}|{position}".encode())
            rng = random.Random(seed)  # noqa: S311 - seeded for repeatable audio, not for secrets
            samples.extend(_tone_word(token, voice, sample_rate, rng, position / max(len(tokens), 1)))
            spans.append((start, len(samples) / sample_rate))
            samples.extend(array.array("h", bytes(2 * int(_gap_after(token) * sample_rate))))
        while samples and samples[-1] == 0:
            samples.pop()
        return Clip(_little_endian(samples), tuple(spans))


def word_duration(token: str) -> float:
    letters = sum(ch.isalnum() for ch in token)
    return min(0.7, max(0.16, 0.08 + 0.045 * letters))


def _gap_after(token: str) -> float:
    if token.endswith((".", "?", "!")):
        return 0.32
    if token.endswith((",", ";", ":")):
        return 0.18
    return 0.07


def _tone_word(token: str, voice: Voice, sample_rate: int, rng: random.Random, progress: float) -> array.array:
    duration = word_duration(token)
    count = int(duration * sample_rate)
    f0 = voice.pitch * (1.08 - 0.16 * progress) * rng.uniform(0.94, 1.06)  # falling intonation across the utterance
    table = _wavetable(f0, formant1=rng.uniform(350, 850), formant2=rng.uniform(1000, 2400))
    syllables = max(1, len(re.findall(r"[aeiouy]+", token.lower())))
    out = array.array("h", bytes(2 * count))
    phase = 0.0
    step = f0 * _TABLE_SIZE / sample_rate
    attack, release = 0.015 * sample_rate, 0.04 * sample_rate
    for i in range(count):
        envelope = min(1.0, i / attack, (count - i) / release)
        syllable_shape = 0.65 + 0.35 * abs(math.sin(math.pi * syllables * i / count))
        out[i] = int(_PEAK * envelope * syllable_shape * table[int(phase) % _TABLE_SIZE])
        phase += step * (1.0 - 0.05 * i / count)
    return out


def _wavetable(f0: float, formant1: float, formant2: float) -> list[float]:
    harmonics = [
        (
            h,
            math.exp(-(((h * f0 - formant1) / 250) ** 2))
            + 0.6 * math.exp(-(((h * f0 - formant2) / 350) ** 2))
            + 0.15 / h,
        )
        for h in range(1, 16)
        if h * f0 < 3800
    ]
    table = [sum(a * math.sin(2 * math.pi * h * i / _TABLE_SIZE) for h, a in harmonics) for i in range(_TABLE_SIZE)]
    peak = max(abs(v) for v in table) or 1.0
    return [v / peak for v in table]


def spread_words(tokens: list[str], duration: float) -> tuple[tuple[float, float], ...]:
    """Word spans proportional to word length, for audio whose word boundaries are unknown (espeak output)."""
    weights = [sum(ch.isalnum() for ch in token) + 1 for token in tokens]
    total = sum(weights) or 1
    spans, start = [], 0.0
    for weight in weights:
        end = start + duration * weight / total
        spans.append((start, end))
        start = end
    return tuple(spans)


def read_wav(data: bytes) -> tuple[int, array.array]:
    """Rate and samples of a 16-bit mono WAV. espeak-ng writes bogus chunk sizes on stdout, so sizes are clamped."""
    stream = io.BytesIO(data)
    if stream.read(4) != b"RIFF" or stream.read(8)[4:] != b"WAVE":
        raise ValueError("not a WAV file")
    rate = 0
    while header := stream.read(8):
        chunk_id, size = header[:4], int.from_bytes(header[4:], "little")
        if chunk_id == b"fmt ":
            fmt = stream.read(size)
            rate = int.from_bytes(fmt[4:8], "little")
        elif chunk_id == b"data":
            payload = stream.read(size)
            samples = array.array("h", payload[: len(payload) // 2 * 2])
            if sys.byteorder == "big":
                samples.byteswap()
            return rate, samples
        else:
            stream.read(size)
    raise ValueError("WAV file has no data chunk")


def trim_silence(samples: array.array, rate: int, threshold: int = 200) -> array.array:
    start = next((i for i, v in enumerate(samples) if abs(v) > threshold), 0)
    end = next((i for i in range(len(samples) - 1, -1, -1) if abs(samples[i]) > threshold), len(samples) - 1)
    margin = int(0.01 * rate)
    return samples[max(0, start - margin) : min(len(samples), end + margin + 1)]


def resample(samples: array.array, source_rate: int, target_rate: int) -> array.array:
    """Linear interpolation: plenty for speech that is only ever transcribed by a fake recognizer."""
    if source_rate == target_rate or not samples:
        return array.array("h", samples)
    count = int(len(samples) * target_rate / source_rate)
    ratio = source_rate / target_rate
    last = len(samples) - 1
    out = array.array("h", bytes(2 * count))
    for i in range(count):
        position = i * ratio
        left = int(position)
        right = min(left + 1, last)
        fraction = position - left
        out[i] = int(samples[left] + (samples[right] - samples[left]) * fraction)
    return out


def _little_endian(samples: array.array) -> bytes:
    if sys.byteorder == "big":
        samples = array.array("h", samples)
        samples.byteswap()
    return samples.tobytes()
