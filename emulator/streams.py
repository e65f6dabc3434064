"""The emulator dials the app's media and transcription sockets and streams the script in real time
(acs-protocol.md 1.1-1.7). Each subscription has its own connection, even when the URLs are equal."""

from __future__ import annotations

import asyncio
import json
import logging
import math
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import websockets
from websockets.asyncio.client import ClientConnection

from emulator import events
from emulator.script import FRAME_SECONDS, RenderedScript, Utterance
from emulator.tokens import TokenIssuer

log = logging.getLogger(__name__)

TICKS_PER_SECOND = 10_000_000  # transcription offsets are 100 ns ticks (acs-protocol.md 1.7)
INTERMEDIATE_LATENCY = 0.12
FINAL_LATENCY = 0.45
RECONNECT_ATTEMPTS = 3
RECONNECT_DELAY = 1.0
CONNECT_ERRORS = (OSError, TimeoutError, websockets.exceptions.WebSocketException)

Notify = Callable[[str, dict[str, Any]], None]
_UNSET = object()


@dataclass
class Timeline:
    """Script time runs from CallConnected; streams join wherever it is now."""

    rendered: RenderedScript
    mono_start: float
    wall_start: datetime
    participants: dict[str, str]  # script raw id -> raw id on this call

    def raw_id(self, script_raw_id: str) -> str:
        return self.participants.get(script_raw_id, script_raw_id)

    def now(self) -> float:
        return time.monotonic() - self.mono_start

    def wall(self, script_seconds: float) -> datetime:
        return self.wall_start + timedelta(seconds=script_seconds)


@dataclass(frozen=True)
class StreamTarget:
    call_id: str
    correlation_id: str
    url: str
    subscription_id: str


class SocketStream:
    kind = ""
    failure = (500, 8603, "Action failed, not able to establish websocket connection.")
    initial_failure = (400, 8581, "Action failed, Transport url is not valid or web socket server is not operational.")

    def __init__(self, target: StreamTarget, tokens: TokenIssuer, timeline: Timeline, notify: Notify) -> None:
        self.target = target
        self.tokens = tokens
        self.timeline = timeline
        self.notify = notify
        self.connection: ClientConnection | None = None
        self.connections_opened = 0
        self.packets_sent = 0
        self.messages_received = 0
        self.failed = False
        self.stopped = False
        self._connected = asyncio.Event()
        self._delay_override: object = _UNSET
        self._supervisor: asyncio.Task | None = None
        self._producer: asyncio.Task | None = None

    def start(self) -> None:
        self._supervisor = asyncio.create_task(self._supervise(), name=f"{self.kind}-{self.target.call_id}")

    @property
    def active(self) -> bool:
        return not (self.failed or self.stopped)

    def fail_now(self) -> None:
        self._fail(self.failure, "streamConnectionUnsuccessful")

    async def stop(self, reason: str = "subscription stopped") -> None:
        self.stopped = True
        for task in (self._producer, self._supervisor):
            if task is not None and task is not asyncio.current_task():
                task.cancel()
        await asyncio.gather(*(t for t in (self._producer, self._supervisor) if t), return_exceptions=True)
        if self.connection is not None:
            await self.connection.close(1000, reason)
            self.connection = None

    @property
    def is_open(self) -> bool:
        return self.connection is not None

    def drop(self, reconnect_after: float | None) -> None:
        """Kill the TCP connection without a closing handshake, as a network failure would."""
        if self.connection is None:
            raise RuntimeError(f"the {self.kind} socket is not open")
        self._delay_override = reconnect_after
        self.connection.transport.abort()

    async def send_malformed(self) -> None:
        if self.connection is None:
            raise RuntimeError(f"the {self.kind} socket is not open")
        await self._send("this is not JSON {")
        await self._send(self.badly_typed_packet())

    async def _supervise(self) -> None:
        try:
            await self._open()
        except CONNECT_ERRORS as error:
            log.warning("call %s: %s socket to %s failed: %s", self.target.call_id, self.kind, self.target.url, error)
            self._fail(self.initial_failure, _initial_failure_details(error, self.initial_failure_details))
            return
        self.notify(*self.started_event())
        self._producer = asyncio.create_task(self.produce())
        while True:
            await self._pump()
            if not await self._reconnect():
                self._producer.cancel()
                self._fail(self.failure, "streamConnectionUnsuccessful")
                return
            self.on_reconnected()

    async def _open(self) -> None:
        headers = {
            "Authorization": f"Bearer {self.tokens.websocket_token()}",
            "x-ms-call-connection-id": self.target.call_id,
            "x-ms-call-correlation-id": self.target.correlation_id,
        }
        connection = await websockets.connect(
            self.target.url, additional_headers=headers, proxy=None, compression=None, open_timeout=5, close_timeout=2
        )
        self.connections_opened += 1
        log.info("call %s: %s socket #%d open", self.target.call_id, self.kind, self.connections_opened)
        # Every connection starts with its metadata packet (acs-protocol.md 1.1), before any data.
        await connection.send(json.dumps(self.metadata()))
        self.packets_sent += 1
        self.connection = connection
        self._connected.set()

    async def _pump(self) -> None:
        """Read (and count) what the app sends until the socket closes."""
        connection = self.connection
        assert connection is not None
        try:
            async for _ in connection:
                self.messages_received += 1
        except websockets.exceptions.ConnectionClosed:
            pass
        self.connection = None
        self._connected.clear()
        log.warning("call %s: %s socket closed (code %s)", self.target.call_id, self.kind, connection.close_code)

    async def _reconnect(self) -> bool:
        for attempt in range(1, RECONNECT_ATTEMPTS + 1):
            delay, self._delay_override = self._delay_override, _UNSET
            if delay is None:
                return False
            await asyncio.sleep(RECONNECT_DELAY if delay is _UNSET else delay)
            try:
                await self._open()
                return True
            except CONNECT_ERRORS as error:
                log.warning("call %s: %s reconnect %d failed: %s", self.target.call_id, self.kind, attempt, error)
        return False

    def _fail(self, failure: tuple[int, int, str], details: str) -> None:
        self.failed = True
        code, sub_code, message = failure
        self.notify(*self.failed_event(events.result_information(code, sub_code, message), details))

    async def _send(self, packet: dict[str, Any] | str) -> bool:
        """Send one text frame; a closed socket is left to the supervisor, which reconnects. Nothing is
        sent once the subscription is stopped, though its socket closes a moment later."""
        connection = self.connection
        if connection is None or self.stopped:
            return False
        try:
            await connection.send(packet if isinstance(packet, str) else json.dumps(packet))
        except websockets.exceptions.ConnectionClosed:
            return False
        self.packets_sent += 1
        return True

    async def _sleep_until(self, mono: float) -> None:
        await asyncio.sleep(max(0.0, mono - time.monotonic()))

    # Hooks for the two kinds of stream.
    initial_failure_details = "streamConnectionUnsuccessful"

    def metadata(self) -> dict[str, Any]:
        raise NotImplementedError

    def badly_typed_packet(self) -> dict[str, Any]:
        raise NotImplementedError

    def started_event(self) -> tuple[str, dict[str, Any]]:
        raise NotImplementedError

    def failed_event(self, result: dict[str, Any], details: str) -> tuple[str, dict[str, Any]]:
        raise NotImplementedError

    def on_reconnected(self) -> None:
        pass

    async def produce(self) -> None:
        raise NotImplementedError

    def snapshot(self) -> dict[str, Any]:
        return {
            "socket_open": self.is_open,
            "connections_opened": self.connections_opened,
            "packets_sent": self.packets_sent,
            "messages_received": self.messages_received,
            "failed": self.failed,
        }


class MediaStream(SocketStream):
    kind = "media"
    initial_failure_details = "initialWebSocketConnectionFailed"

    def __init__(self, target: StreamTarget, tokens: TokenIssuer, timeline: Timeline, notify: Notify) -> None:
        super().__init__(target, tokens, timeline, notify)
        self.frames_sent = {timeline.raw_id(raw_id): 0 for raw_id in timeline.rendered.tracks}

    def metadata(self) -> dict[str, Any]:
        rendered = self.timeline.rendered
        return {
            "kind": "AudioMetadata",
            "audioMetadata": {
                "subscriptionId": self.target.subscription_id,
                "encoding": "PCM",
                "sampleRate": rendered.sample_rate,
                "channels": 1,
                "length": rendered.frame_bytes,
            },
        }

    def badly_typed_packet(self) -> dict[str, Any]:
        return {
            "kind": "AudioData",
            "audioData": {"timestamp": 12345, "participantRawID": 42, "data": 7, "silent": "no"},
        }

    def started_event(self) -> tuple[str, dict[str, Any]]:
        return "MediaStreamingStarted", {
            "resultInformation": events.result_information(),
            **events.media_streaming_update(events.MEDIA_STARTED),
        }

    def failed_event(self, result: dict[str, Any], details: str) -> tuple[str, dict[str, Any]]:
        return "MediaStreamingFailed", {
            "resultInformation": result,
            **events.media_streaming_update(("mediaStreamingFailed", details)),
        }

    async def produce(self) -> None:
        """One unmixed frame per participant every 20 ms, scheduled on absolute time so it never drifts."""
        timeline = self.timeline
        index = math.ceil(timeline.now() / FRAME_SECONDS)
        while True:
            await self._sleep_until(timeline.mono_start + index * FRAME_SECONDS)
            behind = timeline.now() / FRAME_SECONDS - index
            if behind > 10:  # after a reconnect or a long stall: resume from now, as live audio would
                index = math.ceil(timeline.now() / FRAME_SECONDS)
            if self.connection is not None:
                await self._send_frames(index)
            index += 1

    async def _send_frames(self, index: int) -> None:
        """Every participant's frame for tick `index`, written to the socket together."""
        rendered = self.timeline.rendered
        timestamp = _iso_millis(self.timeline.wall(index * FRAME_SECONDS))
        raw_ids = [self.timeline.raw_id(raw_id) for raw_id in rendered.tracks]
        packets = [
            audio_data_packet(timestamp, raw_id, *rendered.encoded_frame(script_raw_id, index))
            for raw_id, script_raw_id in zip(raw_ids, rendered.tracks, strict=True)
        ]
        if await self._send_together(packets):
            for raw_id in raw_ids:
                self.frames_sent[raw_id] += 1

    async def _send_together(self, packets: list[str]) -> bool:
        """One text frame per packet, as `_send` sends them, but one write to the socket for all (a
        media socket carries a frame per participant every 20 ms: this keeps the emulator cheap)."""
        connection = self.connection
        if connection is None or self.stopped:
            return False
        try:
            async with connection.send_context():
                for packet in packets:
                    connection.protocol.send_text(packet.encode())
                # websockets writes each frame with a system call of its own; one for all of them halves
                # the emulator's CPU per frame. Only data frames are pending here (the socket is open).
                connection.transport.writelines(connection.protocol.data_to_send())
        except websockets.exceptions.ConnectionClosed:
            return False
        self.packets_sent += len(packets)
        return True

    def snapshot(self) -> dict[str, Any]:
        return {**super().snapshot(), "frames_sent": dict(self.frames_sent)}


class TranscriptionStream(SocketStream):
    kind = "transcription"
    failure = (500, 8578, "Action failed, not able to establish websocket connection.")

    def __init__(
        self,
        target: StreamTarget,
        tokens: TokenIssuer,
        timeline: Timeline,
        notify: Notify,
        locale: str,
        intermediate_results: bool,
    ) -> None:
        super().__init__(target, tokens, timeline, notify)
        self.locale = locale
        self.intermediate_results = intermediate_results
        self.subscription_start = timeline.now()
        self.finals_sent: list[dict[str, Any]] = []
        self.intermediates_sent = 0

    def metadata(self) -> dict[str, Any]:
        return {
            "kind": "TranscriptionMetadata",
            "transcriptionMetadata": {
                "subscriptionId": self.target.subscription_id,
                "locale": self.locale.lower(),
                "callConnectionId": self.target.call_id,
                "correlationId": self.target.correlation_id,
            },
        }

    def badly_typed_packet(self) -> dict[str, Any]:
        return {"kind": "TranscriptionData", "transcriptionData": {"text": 5, "offset": "soon", "words": "none"}}

    def started_event(self) -> tuple[str, dict[str, Any]]:
        result = events.result_information(message="Transcription started successfully.")
        return "TranscriptionStarted", {
            "resultInformation": result,
            **events.transcription_update(events.TRANSCRIPTION_STARTED),
        }

    def failed_event(self, result: dict[str, Any], details: str) -> tuple[str, dict[str, Any]]:
        return "TranscriptionFailed", {
            "resultInformation": result,
            **events.transcription_update(("transcriptionFailed", details)),
        }

    def on_reconnected(self) -> None:
        self.notify(
            "TranscriptionResumed",
            {
                "resultInformation": events.result_information(message="Transcription resumed."),
                **events.transcription_update(events.TRANSCRIPTION_RESUMED),
            },
        )

    async def produce(self) -> None:
        """Hypotheses grow word by word as each word ends; the final follows the utterance.

        While the socket is down, intermediates are dropped and finals wait for the reconnect.
        """
        for due, packet in self._schedule():
            await self._sleep_until(self.timeline.mono_start + due)
            is_final = packet["transcriptionData"]["resultStatus"] == "Final"
            if not is_final and self.connection is None:
                continue
            if is_final:
                await self._connected.wait()
            sent_at = time.time()
            if await self._send(packet):
                self._record(packet["transcriptionData"], sent_at)

    def _record(self, data: dict[str, Any], sent_at: float) -> None:
        if data["resultStatus"] == "Final":
            keys = ("text", "offset", "duration", "participantRawID", "confidence")
            # sent_at (time.time() just before the send) lets a benchmark time the final's way to a viewer.
            self.finals_sent.append({**{key: data[key] for key in keys}, "sent_at": sent_at})
        else:
            self.intermediates_sent += 1

    def _schedule(self) -> list[tuple[float, dict[str, Any]]]:
        now = self.timeline.now()
        schedule = []
        for utterance in self.timeline.rendered.utterances:
            heard = [w for w in utterance.words if w.start >= self.subscription_start]
            if not heard:
                continue
            if self.intermediate_results:
                schedule += [
                    (w.end + INTERMEDIATE_LATENCY, self._intermediate(utterance, heard, i)) for i, w in enumerate(heard)
                ]
            schedule.append((heard[-1].end + FINAL_LATENCY, self._final(utterance, heard)))
        return sorted((item for item in schedule if item[0] >= now), key=lambda item: item[0])

    def _ticks(self, script_seconds: float) -> int:
        return round((script_seconds - self.subscription_start) * TICKS_PER_SECOND)

    def _intermediate(self, utterance: Utterance, heard: list, upto: int) -> dict[str, Any]:
        spoken = heard[: upto + 1]
        return _transcription_packet(
            {
                "text": " ".join(w.lexical for w in spoken),
                "format": "display",
                "offset": self._ticks(spoken[0].start),
                "duration": self._ticks(spoken[-1].end) - self._ticks(spoken[0].start),
                "participantRawID": self.timeline.raw_id(utterance.speaker),
                "resultStatus": "Intermediate",
            }
        )

    def _final(self, utterance: Utterance, heard: list) -> dict[str, Any]:
        words = [
            {"text": w.lexical, "offset": self._ticks(w.start), "duration": self._ticks(w.end) - self._ticks(w.start)}
            for w in heard
        ]
        text = " ".join(w.display for w in heard)
        return _transcription_packet(
            {
                "text": text[:1].upper() + text[1:],
                "format": "display",
                "confidence": 0.82 + (zlib.crc32(text.encode()) % 1500) / 10000,
                "offset": self._ticks(heard[0].start),
                "duration": self._ticks(heard[-1].end) - self._ticks(heard[0].start),
                "words": words,
                "participantRawID": self.timeline.raw_id(utterance.speaker),
                "resultStatus": "Final",
            }
        )

    def snapshot(self) -> dict[str, Any]:
        return {
            **super().snapshot(),
            "locale": self.locale,
            "intermediates_sent": self.intermediates_sent,
            "finals_sent": list(self.finals_sent),
        }


def _initial_failure_details(error: Exception, default: str) -> str:
    rejected = isinstance(error, websockets.exceptions.InvalidStatus) and error.response.status_code in (401, 403)
    return "authenticationFailure" if rejected else default


def _transcription_packet(data: dict[str, Any]) -> dict[str, Any]:
    return {"kind": "TranscriptionData", "transcriptionData": data}


def audio_data_packet(timestamp: str, raw_id: str, data: str, silent: bool) -> str:
    """An AudioData packet, the same text as json.dumps of its dict, built without json.dumps."""
    silent_text = "true" if silent else "false"
    return (
        f'{{"kind": "AudioData", "audioData": {{"timestamp": "{timestamp}", '
        f'"participantRawID": {json.dumps(raw_id)}, "data": "{data}", "silent": {silent_text}}}}}'
    )


def _iso_millis(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"
