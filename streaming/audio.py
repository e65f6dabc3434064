"""Capture each participant's audio to a WAV file, written off the event loop in batches.

Frames are appended to an in-memory buffer on the hot path, each with the time it arrived;
`AudioRecorder.flush` writes what may be written, every participant in one executor job. Frames that
arrived during a pause for sensitive data (calls/pause.py) are written as silence of the same length, so
the caller's card number never reaches the disk and the file stays in step with the call. The WAV
header's sizes are rewritten after each write, so a file can be played while the call is still going.

With redaction on (REDACTION is not off), no speech reaches the disk before the transcript has decided
it, because only the final says which words were a card number (calls/audio_redaction.py):

- a participant's audio is written up to where their latest stored final ends; the words redaction
  replaced in it are written as silence;
- frames ACS marks silent (and the silence padding gaps) carry no speech and are written without
  waiting, up to the first speech no final has covered yet;
- speech still undecided after AUDIO_REDACTION_HOLD_SECONDS, or when the socket closes (after waiting
  up to TRANSCRIPT_WAIT_ON_CLOSE seconds for a transcription socket still open), is written as silence:
  speech that no transcript decided is never written as it was;
- speech that arrived during a pause needs no transcript (none comes: transcription is stopped) and
  is written as silence without waiting.

What this holds in memory is in docs/architecture.md ("Audio capture and redaction").
"""

from __future__ import annotations

import asyncio
import math
import time
import uuid
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from django.conf import settings
from django.db import DatabaseError

from calls import audio_redaction
from calls.audio_files import BYTES_PER_SAMPLE, WAV_HEADER_BYTES, audio_directory, audio_file_name, wav_header
from streaming import metrics
from streaming.database import database_sync_to_async
from streaming.socket_log import SocketLog

MAX_SILENCE_PADDING_MS = 60_000
TRANSCRIPT_WAIT_ON_CLOSE = 5.0  # as long as a closing transcription socket may take to store its finals
TRANSCRIPT_POLL_SECONDS = 0.25

Span = tuple[float, float]  # (start, end) in time.time() seconds; the end is math.inf while it lasts


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


class _Track:
    """One participant's audio not written yet. Positions count samples from this socket's first frame
    of the participant, which arrived at `origin` (time.time())."""

    __slots__ = ("arrivals", "first", "origin", "pcm", "speech")

    def __init__(self, origin: float) -> None:
        self.pcm = bytearray()
        self.first = 0  # the position of pcm[0]
        self.origin = origin
        self.speech: list[list[int]] = []  # [start, end) of frames not marked silent, merged, not written yet
        # (position, time.time()) of each frame not written yet as it arrived: a pause silences what arrived
        # during it, whatever the frame's place in the audio.
        self.arrivals: list[tuple[int, float]] = []

    @property
    def end(self) -> int:
        return self.first + len(self.pcm) // BYTES_PER_SAMPLE

    def frames(self) -> list[tuple[int, int, float]]:
        """(start, end, arrived) of each frame not written yet."""
        ends = [start for start, _ in self.arrivals[1:]] + [self.end]
        return [(start, end, arrived) for (start, arrived), end in zip(self.arrivals, ends, strict=True)]

    def arrived_within(self, spans: Sequence[Span]) -> list[tuple[int, int]]:
        """[start, end) of the frames not written yet that arrived within one of `spans`, merged."""
        ranges: list[tuple[int, int]] = []
        for start, end, arrived in self.frames() if spans else ():
            if any(first <= arrived < last for first, last in spans):
                if ranges and ranges[-1][1] == start:
                    start = ranges.pop()[0]
                ranges.append((start, end))
        return ranges

    def drop_speech(self, ranges: list[tuple[int, int]]) -> None:
        """Count `ranges` as no speech: nothing in them waits for the transcript."""
        for cut_start, cut_end in ranges:
            kept: list[list[int]] = []
            for start, end in self.speech:
                if start < cut_start:
                    kept.append([start, min(end, cut_start)])
                if end > cut_end:
                    kept.append([max(start, cut_end), end])
            self.speech = kept

    def take(self, cut: int) -> bytearray:
        """Cut the audio before position `cut` off the track (the speech noted in it stays, for the caller)."""
        self.arrivals = [(max(start, cut), arrived) for start, end, arrived in self.frames() if end > cut]
        taken = self.pcm[: (cut - self.first) * BYTES_PER_SAMPLE]
        del self.pcm[: (cut - self.first) * BYTES_PER_SAMPLE]
        return taken

    def note_speech(self, samples: int) -> None:
        end = self.end
        if self.speech and self.speech[-1][1] == end:
            self.speech[-1][1] = end + samples
        else:
            self.speech.append([end, end + samples])


@dataclass
class _Write:
    participant: str
    pcm: bytearray
    silence: list[tuple[int, int]] = field(default_factory=list)  # sample ranges within pcm to zero


class AudioRecorder:
    """Buffers one socket's audio per participant; `flush` writes what may be written in a worker thread."""

    def __init__(
        self,
        call_id: uuid.UUID,
        sample_rate: int,
        *,
        hold_for_redaction: bool = False,
        started_at: float | None = None,
        log: SocketLog | None = None,
    ) -> None:
        self.call_id = call_id
        self.directory = audio_directory(call_id)
        self.sample_rate = sample_rate
        self.hold = hold_for_redaction
        self.hold_samples = int(settings.AUDIO_REDACTION_HOLD_SECONDS * sample_rate)
        self.log = log or SocketLog(call_id)
        self._tracks: dict[str, _Track] = {}
        # When the socket's audio began (time.time(), taken as its first packet arrived, before any database
        # work could delay it) and ACS's timestamp of its first frame: a participant's audio begins at
        # started_at plus how much later ACS stamped their first frame.
        self.started_at = started_at
        self._first_timestamp: datetime | None = None
        # What the stored transcript decided so far (calls/audio_redaction.py), in time.time() seconds.
        self._read_up_to = 0
        self._decided_until: dict[str, float] = {}
        self._redacted: defaultdict[str, list[tuple[float, float]]] = defaultdict(list)
        self._transcribing = False
        self._writing = asyncio.Lock()  # one flush at a time, so files are appended in order

    def add(
        self, participant_raw_id: str, pcm: bytes, *, silent: bool = False, timestamp: datetime | None = None
    ) -> None:
        track = self._tracks.get(participant_raw_id)
        if track is None:
            track = self._tracks[participant_raw_id] = _Track(self._origin(timestamp))
        if self.hold and not silent:
            track.note_speech(len(pcm) // BYTES_PER_SAMPLE)
        track.arrivals.append((track.end, time.time()))
        track.pcm += pcm

    def _origin(self, timestamp: datetime | None) -> float:
        if self.started_at is None or timestamp is None:
            return time.time()
        self._first_timestamp = self._first_timestamp or timestamp
        return self.started_at + (timestamp - self._first_timestamp).total_seconds()

    def add_silence(self, participant_raw_id: str, milliseconds: int) -> None:
        """Keep a participant's file in step with the call when frames went missing."""
        milliseconds = min(milliseconds, MAX_SILENCE_PADDING_MS)
        samples = self.sample_rate * milliseconds // 1000
        self.add(participant_raw_id, bytes(samples * BYTES_PER_SAMPLE), silent=True)

    @property
    def buffered_bytes(self) -> int:
        return sum(len(track.pcm) for track in self._tracks.values())

    @property
    def oldest_arrival(self) -> float | None:
        """When the earliest frame not yet written arrived; None when nothing is buffered."""
        return min((track.arrivals[0][1] for track in self._tracks.values() if track.arrivals), default=None)

    async def flush(
        self, paused: Sequence[Span] = (), *, closing: bool = False, transcript_may_follow: bool = False
    ) -> None:
        """Write what may be written; a frame that arrived within a `paused` span is written as silence.
        Closing, write everything left (undecided speech as silence), after waiting a little for the
        transcript when another socket carries it (`transcript_may_follow`)."""
        async with self._writing:
            self._paused_ranges(paused)
            if self.hold and self._undecided_speech():
                await self._read_transcript(wait=closing and transcript_may_follow)
            paused_ranges = self._paused_ranges(paused)  # again: frames arrived while the transcript was read
            writes = [
                write
                for name, track in self._tracks.items()
                if (write := self._take(name, track, closing, paused_ranges[name]))
            ]
            if writes:
                await asyncio.get_running_loop().run_in_executor(None, self._write, writes)

    def _paused_ranges(self, paused: Sequence[Span]) -> dict[str, list[tuple[int, int]]]:
        """Per participant, the frames held that arrived while paused; they no longer count as speech."""
        ranges = {name: track.arrived_within(paused) for name, track in self._tracks.items()}
        for name, track in self._tracks.items():
            track.drop_speech(ranges[name])
        return ranges

    # --- what the transcript decided ----------------------------------------------------------

    async def _read_transcript(self, *, wait: bool) -> None:
        deadline = time.monotonic() + (TRANSCRIPT_WAIT_ON_CLOSE if wait else 0)
        while True:
            try:
                progress = await database_sync_to_async(audio_redaction.transcript_progress)(
                    call_id=self.call_id, after_sequence=self._read_up_to
                )
            except DatabaseError as error:  # keep holding; the hold limit still applies
                self.log.problem("audio held: the transcript could not be read: %s", error)
                return
            self._learn(progress)
            if not (wait and self._transcribing and self._undecided_speech()) or time.monotonic() >= deadline:
                return
            await asyncio.sleep(TRANSCRIPT_POLL_SECONDS)

    def _learn(self, progress: audio_redaction.TranscriptProgress) -> None:
        self._read_up_to = progress.last_sequence
        self._transcribing = progress.transcribing
        for participant, until in progress.decided_until.items():
            self._decided_until[participant] = max(self._decided_until.get(participant, 0.0), until.timestamp())
        for span in progress.redacted:
            self._redacted[span.participant_raw_id].append((span.start.timestamp(), span.end.timestamp()))

    def _undecided_speech(self) -> bool:
        return any(self._decided(name, track) < track.end for name, track in self._tracks.items())

    def _position(self, track: _Track, moment: float, rounding: Callable[[float], int] = math.floor) -> int:
        return int(rounding((moment - track.origin) * self.sample_rate))

    def _decided(self, participant: str, track: _Track) -> int:
        """Up to where the participant's audio may be written as it is."""
        if not self.hold:
            return track.end
        decided = track.first
        until = self._decided_until.get(participant)
        if until is not None:
            decided = max(decided, min(track.end, self._position(track, until)))
        for start, end in track.speech:  # silence needs no transcript: on to the next undecided speech
            if end > decided:
                return max(decided, start)
        return track.end

    # --- writing --------------------------------------------------------------------------------

    def _take(self, participant: str, track: _Track, closing: bool, paused: list[tuple[int, int]]) -> _Write | None:
        """Cut what may be written off the front of the track, noting what in it to write as silence."""
        decided = self._decided(participant, track)
        cut = track.end if closing else max(decided, track.end - self.hold_samples)
        if cut <= track.first:
            return None
        write = _Write(participant, track.take(cut))
        for start, end in paused:
            start, end = max(start, track.first), min(end, cut)
            if start < end:
                write.silence.append((start - track.first, end - track.first))
        redacted = 0
        for start, end in self._redacted_positions(participant, track):
            start, end = max(start, track.first), min(end, decided, cut)
            if start < end:
                write.silence.append((start - track.first, end - track.first))
                redacted += end - start
        undecided = 0
        for start, end in track.speech:  # speech undecided for too long, or when the socket is closing
            start, end = max(start, decided), min(end, cut)
            if start < end:
                write.silence.append((start - track.first, end - track.first))
                undecided += end - start
        if undecided:
            self._note_undecided(undecided)
        if redacted:
            metrics.audio_silenced_seconds.labels("redacted").inc(redacted / self.sample_rate)
        track.first = cut
        track.speech = [[max(start, cut), end] for start, end in track.speech if end > cut]
        self._forget_spans_before(participant, track)
        return write

    def _redacted_positions(self, participant: str, track: _Track) -> list[tuple[int, int]]:
        return [
            (self._position(track, start), self._position(track, end, math.ceil))
            for start, end in self._redacted.get(participant, ())
        ]

    def _forget_spans_before(self, participant: str, track: _Track) -> None:
        written_until = track.origin + track.first / self.sample_rate
        if participant in self._redacted:
            self._redacted[participant] = [span for span in self._redacted[participant] if span[1] > written_until]

    def _note_undecided(self, samples: int) -> None:
        seconds = samples / self.sample_rate
        metrics.audio_silenced_seconds.labels("undecided").inc(seconds)
        # The participant's raw id is a phone number: the log names the call only (SocketLog).
        self.log.problem("%.2f s of speech no transcript decided was written as silence", seconds)

    def _write(self, writes: list[_Write]) -> None:
        for write in writes:
            for start, end in write.silence:
                write.pcm[start * BYTES_PER_SAMPLE : end * BYTES_PER_SAMPLE] = bytes((end - start) * BYTES_PER_SAMPLE)
            append_pcm(self.directory / audio_file_name(write.participant), self.sample_rate, bytes(write.pcm))
