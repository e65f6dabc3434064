"""The load generator: ACS's media and transcription sockets for N calls, plus staff live viewers.

Each call has two sockets, as ACS opens them: a media-streaming socket carrying every participant's
20 ms AudioData frames (unmixed audio, interleaved), and a transcription socket carrying intermediate
and final TranscriptionData.

The generator must cost far less than the server it loads, so ACS's sockets are spoken by hand
(`RawSocket`): the handshake once, then pre-built, client-masked text frames written straight to the
transport. The mask key is all zeros (RFC 6455 requires a key, not a random-looking one), so masking
costs nothing. Audio is sent by one scheduler that wakes once per millisecond slot of the 20 ms
tick and writes every frame due in that slot; times are absolute from one start instant, so a late
wake-up never shifts later frames (no drift). How late the generator ran is reported.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from urllib.parse import urlsplit

import websockets
from websockets.asyncio.client import ClientConnection, connect

FRAME_SECONDS = 0.020
GOLDEN_RATIO = 0.6180339887  # spreads call phases evenly over an interval, for any number of calls
SLOTS = 20  # calls are spread over the 20 one-millisecond slots of a tick, as independent calls would be
SAMPLE_RATE = 16000
TICKS_PER_SECOND = 10_000_000
PCM_FRAME = bytes(range(256)) * 2 + bytes(128)  # 640 bytes: 20 ms of 16 kHz PCM16 mono
AUDIO_DATA = base64.b64encode(PCM_FRAME).decode()
MAX_UNSENT_BYTES = 4 * 1024 * 1024  # past this the server is not reading: wait for it (flooding only)


@dataclass
class CallTarget:
    index: int
    media_url: str  # ws://…/ws/media/<token>/ (the same URL serves both of a call's sockets)
    viewer_url: str  # ws://…/ws/calls/<id>/, or "" when the server under test has no live feed


@dataclass
class LoadPlan:
    participants: int = 2
    seconds: float = 30.0
    final_every: float = 3.0  # one final per participant this often, preceded by intermediates
    intermediates: int = 2
    # False: each call speaks at its own moment, as independent calls do. True: every call's finals
    # arrive in the same 20 ms (the worst case: a burst of one final per call at once).
    synchronised_finals: bool = False
    audio_only: bool = False
    start_delay: float = 0.0  # seconds after the common start before this group of calls begins


@dataclass
class LoadResult:
    audio_frames_sent: int = 0
    transcription_packets_sent: int = 0
    flood_frames_sent: int = 0
    finals_sent: dict[str, float] = field(default_factory=dict)  # final id -> perf_counter when sent
    finals_seen_by_viewers: dict[str, float] = field(default_factory=dict)  # final id -> latency (s)
    viewer_expected_finals: int = 0
    viewer_resyncs: int = 0
    viewer_errors: int = 0
    lateness: list[float] = field(default_factory=list)  # how late each audio slot was served (s)
    closes: Counter[str] = field(default_factory=Counter)  # sockets refused or closed by the server
    forged_handshake_seconds: list[float] = field(default_factory=list)  # how long each forged attempt took
    start_perf: float = 0.0  # perf_counter when the first frame was due

    @property
    def packets_sent(self) -> int:
        return self.audio_frames_sent + self.transcription_packets_sent + self.flood_frames_sent


# --- packets -----------------------------------------------------------------------------------------


def participant_id(call: int, participant: int) -> str:
    return f"4:+1425{call:06d}" if participant == 0 else f"8:acs:bench-{call}-{participant}"


def audio_metadata() -> str:
    payload = {"subscriptionId": "bench-audio", "encoding": "PCM", "sampleRate": SAMPLE_RATE, "channels": 1}
    return json.dumps({"kind": "AudioMetadata", "audioMetadata": {**payload, "length": 640}})


def transcription_metadata(call: int) -> str:
    payload = {"subscriptionId": "bench-text", "locale": "en-us", "callConnectionId": f"bench-{call}"}
    return json.dumps({"kind": "TranscriptionMetadata", "transcriptionMetadata": payload})


def timestamp_text(timestamp: datetime) -> bytes:
    return timestamp.isoformat(timespec="milliseconds").replace("+00:00", "Z").encode()


class AudioFrames:
    """A participant's AudioData packet in two halves around the timestamp, built once."""

    def __init__(self, participant: str) -> None:
        self.before = b'{"kind":"AudioData","audioData":{"timestamp":"'
        self.after = f'","participantRawID":"{participant}","data":"{AUDIO_DATA}","silent":false}}}}'.encode()

    def frame(self, stamp: bytes) -> bytes:
        return text_frame(self.before + stamp + self.after)


def transcription(participant: str, text: str, offset: int, *, final: bool) -> str:
    payload: dict[str, object] = {
        "text": text,
        "format": "display",
        "offset": offset,
        "duration": 20_000_000,
        "participantRawID": participant,
        "resultStatus": "Final" if final else "Intermediate",
    }
    if final:
        words = text.split()
        payload["confidence"] = 0.9
        payload["words"] = [
            {"text": word, "offset": offset + i * 1_000_000, "duration": 900_000} for i, word in enumerate(words)
        ]
    return json.dumps({"kind": "TranscriptionData", "transcriptionData": payload})


def final_id_of(text: str) -> str | None:
    """Final texts start `bench <id> …`; anything else on the feed is not ours."""
    parts = text.split(maxsplit=2)
    return parts[1] if len(parts) > 1 and parts[0] == "bench" else None


# --- a hand-spoken client websocket ------------------------------------------------------------------


def text_frame(payload: bytes, opcode: int = 0x1) -> bytes:
    """A final, client-masked frame with an all-zero mask key (the payload goes out as is)."""
    size = len(payload)
    if size < 126:
        header = bytes([0x80 | opcode, 0x80 | size])
    elif size < 65536:
        header = bytes([0x80 | opcode, 0x80 | 126]) + size.to_bytes(2, "big")
    else:
        header = bytes([0x80 | opcode, 0x80 | 127]) + size.to_bytes(8, "big")
    return header + b"\0\0\0\0" + payload


class Refused(Exception):
    pass


class RawSocket:
    """A client websocket that only sends, answers pings, and notes how the server closed it."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, what: str, result: LoadResult):
        self.reader, self.writer, self.what, self.result = reader, writer, what, result
        self.closed_code: int | None = None
        self.closing = False
        self.listener = asyncio.ensure_future(self._listen())

    @classmethod
    async def open(cls, url: str, what: str, result: LoadResult) -> RawSocket | None:
        parts = urlsplit(url)
        try:
            reader, writer = await asyncio.wait_for(asyncio.open_connection(parts.hostname, parts.port), 30)
            key = base64.b64encode(os.urandom(16)).decode()
            writer.write(
                f"GET {parts.path} HTTP/1.1\r\nHost: {parts.hostname}:{parts.port}\r\nUpgrade: websocket\r\n"
                f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n".encode()
            )
            response = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 30)
            if not response.startswith(b"HTTP/1.1 101"):
                writer.close()
                raise Refused(response.split(b"\r\n", 1)[0].decode(errors="replace"))
        except (OSError, TimeoutError, asyncio.IncompleteReadError, Refused) as error:
            result.closes[f"{what} refused: {error or type(error).__name__}"] += 1
            return None
        return cls(reader, writer, what, result)

    @property
    def open_for_sending(self) -> bool:
        return self.closed_code is None and not self.writer.is_closing()

    def send(self, frames: bytes) -> None:
        if self.open_for_sending:
            self.writer.write(frames)

    @property
    def unsent_bytes(self) -> int:
        return self.writer.transport.get_write_buffer_size()

    async def _listen(self) -> None:
        try:
            while True:
                first, second = await self.reader.readexactly(2)
                size = second & 0x7F
                if size == 126:
                    size = int.from_bytes(await self.reader.readexactly(2), "big")
                elif size == 127:
                    size = int.from_bytes(await self.reader.readexactly(8), "big")
                payload = await self.reader.readexactly(size)
                opcode = first & 0x0F
                if opcode == 0x9:  # ping: daphne closes sockets that do not answer
                    self.send(text_frame(payload, opcode=0xA))
                elif opcode == 0x8 and self.closing:
                    return
                elif opcode == 0x8:
                    self.closed_code = int.from_bytes(payload[:2], "big") if len(payload) >= 2 else 1005
                    self.result.closes[f"{self.what} closed by server: {self.closed_code}"] += 1
                    return
        except (asyncio.IncompleteReadError, OSError):
            if self.closed_code is None:
                self.closed_code = 1006
                self.result.closes[f"{self.what} dropped by server"] += 1

    async def close(self) -> None:
        if self.open_for_sending:
            self.send(text_frame((1000).to_bytes(2, "big"), opcode=0x8))
            self.closing = True
            try:
                await asyncio.wait_for(self.writer.drain(), 10)
                await asyncio.wait_for(asyncio.shield(self.listener), 10)
            except (TimeoutError, OSError):
                pass
        self.listener.cancel()
        self.writer.close()


# --- the load ----------------------------------------------------------------------------------------


@dataclass
class _AudioSender:
    socket: RawSocket
    frames: list[AudioFrames]
    first_tick: int
    last_tick: int


class Load:
    def __init__(self, result: LoadResult) -> None:
        self.result = result
        self.start = 0.0  # loop.time() at which the first frame is due
        self.audio: list[list[_AudioSender]] = [[] for _ in range(SLOTS)]
        self.transcriptions: list[tuple[RawSocket, CallTarget, LoadPlan]] = []
        self.sockets: list[RawSocket] = []
        self.stop_viewers = asyncio.Event()
        self.last_tick = 0

    async def connect(self, targets: list[CallTarget], plan: LoadPlan) -> None:
        """Open every call's sockets and send their metadata; sending starts with `run`."""
        await asyncio.gather(*(self._connect_call(target, plan) for target in targets))

    async def _connect_call(self, target: CallTarget, plan: LoadPlan) -> None:
        audio = await RawSocket.open(target.media_url, "media", self.result)
        if audio is not None:
            self.sockets.append(audio)
            audio.send(text_frame(audio_metadata().encode()))
            first = round(plan.start_delay / FRAME_SECONDS)
            last = first + round(plan.seconds / FRAME_SECONDS) - 1
            frames = [AudioFrames(participant_id(target.index, p)) for p in range(plan.participants)]
            self.audio[target.index % SLOTS].append(_AudioSender(audio, frames, first, last))
            self.last_tick = max(self.last_tick, last)
        if not plan.audio_only:
            text = await RawSocket.open(target.media_url, "transcription", self.result)
            if text is not None:
                self.sockets.append(text)
                text.send(text_frame(transcription_metadata(target.index).encode()))
                self.result.transcription_packets_sent += 1
                self.transcriptions.append((text, target, plan))

    async def run(self) -> None:
        texts = [self._transcription(*args) for args in self.transcriptions]
        await asyncio.gather(self._send_audio(), *texts)

    async def close(self) -> None:
        await asyncio.gather(*(socket.close() for socket in self.sockets))

    async def _sleep_until(self, due: float) -> float:
        delay = due - asyncio.get_running_loop().time()
        if delay > 0:
            await asyncio.sleep(delay)
            return 0.0
        return -delay

    async def _send_audio(self) -> None:
        first_timestamp = datetime.now(UTC)
        for tick in range(self.last_tick + 1):
            stamp = timestamp_text(first_timestamp + timedelta(milliseconds=20 * tick))
            for slot in range(SLOTS):
                due = self.start + tick * FRAME_SECONDS + slot * FRAME_SECONDS / SLOTS
                self.result.lateness.append(await self._sleep_until(due))
                for sender in self.audio[slot]:
                    if sender.first_tick <= tick <= sender.last_tick and sender.socket.open_for_sending:
                        sender.socket.send(b"".join(frames.frame(stamp) for frames in sender.frames))
                        self.result.audio_frames_sent += len(sender.frames)

    def _transcription_schedule(self, target: CallTarget, plan: LoadPlan) -> list[tuple[float, bytes, str | None]]:
        """(due time, frame, final id) for every transcription packet of a call, in time order."""
        schedule = []
        every = plan.final_every
        call_phase = 0.0 if plan.synchronised_finals else every * ((target.index * GOLDEN_RATIO) % 1.0)
        for p in range(plan.participants):
            participant = participant_id(target.index, p)
            phase = call_phase + every * (p + 1) / plan.participants
            utterance = 0
            while phase + utterance * every <= plan.seconds:
                due = phase + utterance * every
                offset_ticks = int(due * TICKS_PER_SECOND)
                final_id = f"{target.index}.{p}.{utterance}"
                text = f"bench {final_id} speaker {p} says hello again at utterance {utterance}"
                for i in range(plan.intermediates):
                    partial = transcription(participant, " ".join(text.split()[: 3 + i]), offset_ticks, final=False)
                    at = max(0.0, due - (plan.intermediates - i) * 0.5)
                    schedule.append((plan.start_delay + at, text_frame(partial.encode()), None))
                final = transcription(participant, text, offset_ticks, final=True)
                schedule.append((plan.start_delay + due, text_frame(final.encode()), final_id))
                utterance += 1
        return sorted(schedule, key=lambda item: item[0])

    async def _transcription(self, socket: RawSocket, target: CallTarget, plan: LoadPlan) -> None:
        offset = (target.index % SLOTS) * FRAME_SECONDS / SLOTS
        for due, frame, final_id in self._transcription_schedule(target, plan):
            await self._sleep_until(self.start + offset + due)
            if not socket.open_for_sending:
                return
            socket.send(frame)
            self.result.transcription_packets_sent += 1
            if final_id is not None:
                self.result.finals_sent[final_id] = time.perf_counter()
                if target.viewer_url:
                    self.result.viewer_expected_finals += 1

    # --- a flooding client ---------------------------------------------------------------------

    async def flood(self, url: str, seconds: float) -> None:
        """One socket sending audio as fast as the server reads it, for `seconds` after the start."""
        socket = await RawSocket.open(url, "flood", self.result)
        if socket is None:
            return
        self.sockets.append(socket)
        frames = AudioFrames("4:+19999999999")
        stamp = timestamp_text(datetime.now(UTC))
        batch = b"".join(frames.frame(stamp) for _ in range(100))
        await self._sleep_until(self.start)
        deadline = self.start + seconds
        loop = asyncio.get_running_loop()
        try:
            while loop.time() < deadline and socket.open_for_sending:
                socket.send(batch)
                self.result.flood_frames_sent += 100
                if socket.unsent_bytes > MAX_UNSENT_BYTES:
                    await socket.writer.drain()
                else:
                    await asyncio.sleep(0)
        except ConnectionError:
            self.result.closes["flood dropped by server"] += 1

    # --- unauthenticated connection attempts ---------------------------------------------------

    async def forge(self, url: str, per_second: float, after: float, seconds: float) -> None:
        """Media-socket handshakes with a forged token, `per_second` of them for `seconds` from `after`
        seconds into the run: what a scanner or anyone without the signing key would send. Each
        outcome is counted in `closes` ("forged refused: HTTP/1.1 403 …")."""
        attempts = []
        for number in range(round(per_second * seconds)):
            await self._sleep_until(self.start + after + number / per_second)
            attempts.append(asyncio.ensure_future(self._forged_handshake(url)))
        await asyncio.gather(*attempts)

    async def _forged_handshake(self, url: str) -> None:
        began = time.perf_counter()
        socket = await RawSocket.open(url, "forged", self.result)
        self.result.forged_handshake_seconds.append(time.perf_counter() - began)
        if socket is not None:
            self.result.closes["forged accepted"] += 1
            await socket.close()

    # --- viewers -------------------------------------------------------------------------------

    async def view(self, url: str, headers: dict[str, str], connected: asyncio.Event) -> None:
        try:
            async with connect(url, additional_headers=headers, max_size=None, ping_interval=None) as viewer:
                connected.set()
                await self._watch(viewer)
        except (OSError, websockets.WebSocketException):
            self.result.viewer_errors += 1
            connected.set()

    async def _watch(self, viewer: ClientConnection) -> None:
        stop = asyncio.ensure_future(self.stop_viewers.wait())
        while True:
            receive = asyncio.ensure_future(viewer.recv())
            done, _ = await asyncio.wait({receive, stop}, return_when=asyncio.FIRST_COMPLETED)
            if receive not in done:
                receive.cancel()
                return
            received_at = time.perf_counter()
            message = json.loads(receive.result())
            if message["type"] == "segment":
                self._final_seen(message["segment"]["text"], received_at)
            elif message["type"] == "resume":
                self.result.viewer_resyncs += 1
                for segment in message["segments"]:
                    self._final_seen(segment["text"], received_at)

    def _final_seen(self, text: str, received_at: float) -> None:
        final_id = final_id_of(text)
        sent_at = self.result.finals_sent.get(final_id or "")
        if sent_at is not None and final_id not in self.result.finals_seen_by_viewers:
            self.result.finals_seen_by_viewers[final_id] = received_at - sent_at
