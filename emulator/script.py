"""Call scripts: who is on the call, who says what and when, and the audio that goes with it."""

from __future__ import annotations

import base64
import json
import re
import threading
from dataclasses import dataclass, field
from pathlib import Path

from emulator.synth import Synthesizer, Voice, default_synthesizer

FRAME_SECONDS = 0.02  # ACS streams 20 ms frames (acs-protocol.md 1.4)
SUPPORTED_RATES = (16000, 24000)


@dataclass(frozen=True)
class Participant:
    key: str  # how utterances name the speaker, e.g. "agent"
    raw_id: str
    display_name: str
    voice: Voice


@dataclass(frozen=True)
class Line:
    speaker: str
    text: str
    start: float | None  # None: after the previous line plus the script's pause


@dataclass(frozen=True)
class Script:
    name: str
    locale: str
    sample_rate: int
    caller: Participant
    callee: Participant
    participants: tuple[Participant, ...]
    lines: tuple[Line, ...]
    lead_in: float = 1.0
    pause: float = 0.6
    tail: float = 1.5

    def participant(self, key: str) -> Participant:
        return next(p for p in self.participants if key in (p.key, p.raw_id))


@dataclass(frozen=True)
class Word:
    display: str  # as written, e.g. "Hello,"
    lexical: str  # as a recognizer spells it, e.g. "hello"
    start: float  # seconds since the script started
    end: float


@dataclass(frozen=True)
class Utterance:
    speaker: str  # raw id
    text: str
    words: tuple[Word, ...]

    @property
    def start(self) -> float:
        return self.words[0].start

    @property
    def end(self) -> float:
        return self.words[-1].end


@dataclass
class RenderedScript:
    script: Script
    sample_rate: int
    utterances: tuple[Utterance, ...]
    duration: float
    tracks: dict[str, bytes] = field(repr=False)  # raw id -> PCM16LE for the whole script
    speaking: dict[str, bytearray] = field(repr=False)  # raw id -> 1 per frame while that participant talks
    # (raw id, frame index) -> the frame in base64; shared by every call playing this script
    _encoded: dict[tuple[str, int], tuple[str, bool]] = field(default_factory=dict, repr=False)

    @property
    def frame_bytes(self) -> int:
        return int(self.sample_rate * FRAME_SECONDS) * 2

    def encoded_frame(self, raw_id: str, index: int) -> tuple[str, bool]:
        """`frame` with the audio in base64, as AudioData carries it: encoded once, not once per call."""
        key = (raw_id, index)
        encoded = self._encoded.get(key)
        if encoded is None:
            data, silent = self.frame(raw_id, index)
            encoded = (base64.b64encode(data).decode(), silent)
            if 0 <= index < len(self.speaking[raw_id]):  # past the end the call is over: keep nothing
                self._encoded[key] = encoded
        return encoded

    def frame(self, raw_id: str, index: int) -> tuple[bytes, bool]:
        """The participant's audio for frame `index` and whether it is silent; zeros past the end."""
        size = self.frame_bytes
        data = self.tracks[raw_id][index * size : (index + 1) * size]
        flags = self.speaking[raw_id]
        speaking = 0 <= index < len(flags) and flags[index] == 1
        return data.ljust(size, b"\0"), not speaking


def load_script(path: Path) -> Script:
    raw = json.loads(path.read_text())
    participants = tuple(_participant(entry) for entry in raw["participants"])
    by_key = {p.key: p for p in participants}
    lines = tuple(Line(by_key[item["speaker"]].key, item["text"], item.get("start")) for item in raw["utterances"])
    return Script(
        name=raw.get("name", path.stem),
        locale=raw.get("locale", "en-US"),
        sample_rate=int(raw.get("sample_rate", 16000)),
        caller=by_key[raw["caller"]],
        callee=by_key[raw["callee"]],
        participants=participants,
        lines=lines,
        lead_in=float(raw.get("lead_in", 1.0)),
        pause=float(raw.get("pause", 0.6)),
        tail=float(raw.get("tail", 1.5)),
    )


def _participant(entry: dict) -> Participant:
    voice = Voice(entry.get("voice", "en-us"), float(entry.get("pitch", 140)), int(entry.get("wpm", 165)))
    return Participant(entry["key"], entry["raw_id"], entry["display_name"], voice)


def render(script: Script, sample_rate: int, synthesizer: Synthesizer) -> RenderedScript:
    if sample_rate not in SUPPORTED_RATES:
        raise ValueError(f"unsupported sample rate {sample_rate}")
    placed: list[tuple[Participant, int, bytes]] = []
    utterances = []
    clock = script.lead_in
    for line in script.lines:
        speaker = script.participant(line.speaker)
        tokens = line.text.split()
        clip = synthesizer.synthesize(tokens, speaker.voice, sample_rate)
        start = line.start if line.start is not None else clock
        offset = round(start * sample_rate)
        start = offset / sample_rate
        words = tuple(
            Word(token, _lexical(token), start + begin, start + end)
            for token, (begin, end) in zip(tokens, clip.words, strict=True)
        )
        utterances.append(Utterance(speaker.raw_id, line.text, words))
        placed.append((speaker, offset, clip.pcm))
        clock = start + len(clip.pcm) / 2 / sample_rate + script.pause
    duration = max(u.end for u in utterances) + script.tail
    tracks, speaking = _mix_tracks(script, placed, utterances, sample_rate, duration)
    return RenderedScript(script, sample_rate, tuple(utterances), duration, tracks, speaking)


def _mix_tracks(
    script: Script, placed: list, utterances: list[Utterance], sample_rate: int, duration: float
) -> tuple[dict[str, bytes], dict[str, bytearray]]:
    frames = int(duration / FRAME_SECONDS) + 1
    tracks = {p.raw_id: bytearray(frames * int(sample_rate * FRAME_SECONDS) * 2) for p in script.participants}
    for speaker, offset, pcm in placed:
        track = tracks[speaker.raw_id]
        end = min(len(track), 2 * offset + len(pcm))
        track[2 * offset : end] = pcm[: end - 2 * offset]
    speaking = {p.raw_id: bytearray(frames) for p in script.participants}
    for utterance in utterances:
        first, last = int(utterance.start / FRAME_SECONDS), int(utterance.end / FRAME_SECONDS)
        flags = speaking[utterance.speaker]
        flags[first : last + 1] = b"\1" * (min(last, frames - 1) - first + 1)
    return {key: bytes(track) for key, track in tracks.items()}, speaking


def _lexical(token: str) -> str:
    return re.sub(r"[^\w'-]", "", token).strip("'-").lower()


class ScriptLibrary:
    """Scripts in a directory, rendered once per (name, sample rate) and kept in memory."""

    def __init__(self, directory: Path, synthesizer: Synthesizer | None = None) -> None:
        self.directory = directory
        self.synthesizer = synthesizer or default_synthesizer()
        self._rendered: dict[tuple[str, int], RenderedScript] = {}
        self._lock = threading.Lock()  # rendering runs in worker threads

    def names(self) -> list[str]:
        return sorted(path.stem for path in self.directory.glob("*.json"))

    def load(self, name: str) -> Script:
        path = self.directory / f"{name}.json"
        if not path.is_file():
            raise KeyError(name)
        return load_script(path)

    def rendered(self, name: str, sample_rate: int) -> RenderedScript:
        with self._lock:
            key = (name, sample_rate)
            if key not in self._rendered:
                self._rendered[key] = render(self.load(name), sample_rate, self.synthesizer)
            return self._rendered[key]
