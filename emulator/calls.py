"""Calls and their state machine: connecting -> connected -> disconnected, with the callbacks ACS sends
on the way (acs-protocol.md 3.3, 5.4) and the media and transcription subscriptions."""

from __future__ import annotations

import asyncio
import base64
import logging
import time
import uuid
from collections.abc import Coroutine
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import aiohttp

from emulator import events
from emulator.callbacks import CallbackSender
from emulator.config import EmulatorConfig
from emulator.script import ScriptLibrary
from emulator.streams import MediaStream, Notify, SocketStream, StreamTarget, Timeline, TranscriptionStream
from emulator.tokens import TokenIssuer

log = logging.getLogger(__name__)

SAMPLE_RATES = {"pcm16kmono": 16000, "pcm24kmono": 24000}


class OperationError(Exception):
    """A REST call ACS would refuse; `failed_event` is the callback ACS also sends, if any."""

    def __init__(self, status: int, code: str, message: str, failed_event: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.failed_event = failed_event


def not_found() -> OperationError:
    return OperationError(404, "8522", "Call not found")


@dataclass
class Services:
    """What every call shares: configuration, signing key, scripts and the HTTP client session."""

    config: EmulatorConfig
    tokens: TokenIssuer
    scripts: ScriptLibrary
    session: aiohttp.ClientSession


@dataclass
class CallSetup:
    """What the answer/create request said, plus who is on the call."""

    callback_uri: str
    script: str
    participants: dict[str, str]  # script raw id -> raw id on this call
    source: dict[str, Any]
    targets: list[dict[str, Any]]
    operation_context: str | None = None
    media_options: dict[str, Any] | None = None
    transcription_options: dict[str, Any] | None = None
    extra_properties: dict[str, Any] = field(default_factory=dict)


class Call:
    def __init__(self, services: Services, setup: CallSetup, server_call_id: str, correlation_id: str) -> None:
        self.services = services
        self.setup = setup
        self.call_id = str(uuid.uuid4())
        self.server_call_id = server_call_id
        self.correlation_id = correlation_id
        self.state = "connecting"
        self.media_subscription_id = str(uuid.uuid4())
        self.transcription_subscription_id = str(uuid.uuid4())
        self.locale = (setup.transcription_options or {}).get("locale", "en-US")
        self.media: MediaStream | None = None
        self.transcription: TranscriptionStream | None = None
        self.timeline: Timeline | None = None
        self.sequence_number = 0
        self.sender = CallbackSender(services.session, services.tokens, self.call_id)
        # Wall-clock moments (time.time()) a benchmark on the same machine can line up with its own:
        # IncomingCall sent, answer request received, CallConnected, and the call's end.
        self.timing: dict[str, float | None] = dict.fromkeys(
            ("incoming_call_sent_at", "answer_requested_at", "connected_at", "disconnected_at")
        )
        self._tasks: set[asyncio.Task] = set()

    # Lifecycle

    def begin(self, delay: float) -> None:
        self.spawn(self._connect(delay))

    async def _connect(self, delay: float) -> None:
        await asyncio.sleep(delay)
        rendered = await asyncio.to_thread(self.services.scripts.rendered, self.setup.script, self._sample_rate())
        if self.state != "connecting":
            return
        self.timeline = Timeline(rendered, time.monotonic(), datetime.now(UTC), self.setup.participants)
        self.state = "connected"
        self.timing["connected_at"] = time.time()
        log.info("call %s: connected, playing script %s (%.1f s)", self.call_id, self.setup.script, rendered.duration)
        self.post_event("CallConnected", {}, context=self.setup.operation_context)
        self.sequence_number += 1
        self.post_event("ParticipantsUpdated", events.participants_update(self.participant_ids(), self.sequence_number))
        if (self.setup.media_options or {}).get("startMediaStreaming"):
            self._start_media(self.setup.operation_context, None)
        if (self.setup.transcription_options or {}).get("startTranscription"):
            self._start_transcription(self.setup.operation_context, None)
        self.spawn(self._end_with_script(rendered.duration))

    async def _end_with_script(self, duration: float) -> None:
        await asyncio.sleep(duration)
        await self.disconnect("The remote party hung up: the script has ended.")

    async def disconnect(self, message: str) -> None:
        if self.state == "disconnected":
            return
        self.state = "disconnected"
        self.timing["disconnected_at"] = time.time()
        log.info("call %s: disconnecting (%s)", self.call_id, message)
        for task in self._tasks:
            if task is not asyncio.current_task():
                task.cancel()
        await asyncio.gather(*(stream.stop("call ended") for stream in self._streams()), return_exceptions=True)
        self.post_event("CallDisconnected", {"resultInformation": events.result_information(message=message)})
        await self.sender.close()

    # Callbacks

    def post_event(self, name: str, data: dict[str, Any], context: str | None = None, url: str | None = None) -> None:
        ids = {
            "callConnectionId": self.call_id,
            "serverCallId": self.server_call_id,
            "correlationId": self.correlation_id,
        }
        if context is not None:
            data = {**data, "operationContext": context}
        log.info("call %s: callback %s", self.call_id, name)
        self.sender.post(url or self.setup.callback_uri, events.cloud_event(name, ids, data))

    def post_failure(self, error: OperationError, body: dict[str, Any]) -> None:
        """The Failed callback that accompanies a refused operation (acs-protocol.md 3.3, event codes)."""
        result = events.result_information(error.status, int(error.code), error.message)
        if error.failed_event == "MediaStreamingFailed":
            update = events.media_streaming_update(("mediaStreamingFailed", "badRequest"))
        else:
            update = events.transcription_update(("transcriptionFailed", "badRequest"))
        data = {"resultInformation": result, **update}
        self.post_event(error.failed_event or "", data, body.get("operationContext"), body.get("operationCallbackUri"))

    # Media streaming and transcription operations (REST, acs-protocol.md 5.2)

    def start_media_streaming(self, body: dict[str, Any]) -> None:
        self._require_connected("MediaStreamingFailed")
        if self.setup.media_options is None:
            raise OperationError(400, "8522", "Media streaming was not configured when the call was set up.")
        if self._active(self.media):
            raise OperationError(400, "8510", "Action failed, media streaming is already active.")
        self._start_media(body.get("operationContext"), body.get("operationCallbackUri"))

    def stop_media_streaming(self, body: dict[str, Any]) -> None:
        self._require_connected("MediaStreamingFailed")
        if not self._active(self.media):
            raise OperationError(400, "8510", "Action failed, media streaming is not active.")
        data = {"resultInformation": events.result_information(), **events.media_streaming_update(events.MEDIA_STOPPED)}
        self._stop_stream(self.media, "MediaStreamingStopped", data, body)

    def start_transcription(self, body: dict[str, Any]) -> None:
        self._require_connected("TranscriptionFailed")
        if self.setup.transcription_options is None:
            message = "Transcription was not configured when the call was set up."
            raise OperationError(405, "8522", message, "TranscriptionFailed")
        if self._active(self.transcription):
            raise OperationError(400, "8510", "Action failed, transcription is already active.")
        self.locale = self._checked_locale(body.get("locale") or self.locale)
        self._start_transcription(body.get("operationContext"), body.get("operationCallbackUri"))

    def stop_transcription(self, body: dict[str, Any]) -> None:
        self._require_connected("TranscriptionFailed")
        if not self._active(self.transcription):
            raise OperationError(400, "8510", "Action failed, transcription is not active.")
        result = events.result_information(message="Transcription stopped.")
        data = {"resultInformation": result, **events.transcription_update(events.TRANSCRIPTION_STOPPED)}
        self._stop_stream(self.transcription, "TranscriptionStopped", data, body)

    def update_transcription(self, body: dict[str, Any]) -> None:
        self._require_connected("TranscriptionFailed")
        if not self._active(self.transcription):
            raise OperationError(400, "8510", "Action failed, transcription is not active.")
        self.locale = self._checked_locale(body.get("locale") or "")
        assert self.transcription is not None
        self.transcription.locale = self.locale
        result = events.result_information(message="Transcription updated.")
        data = {"resultInformation": result, **events.transcription_update(events.TRANSCRIPTION_UPDATED)}
        self.post_event("TranscriptionUpdated", data, body.get("operationContext"), body.get("operationCallbackUri"))

    def _require_connected(self, failed_event: str) -> None:
        if self.state != "connected":
            raise OperationError(400, "8501", "Action is invalid when call is not in Established state.", failed_event)

    def _checked_locale(self, locale: str) -> str:
        # Locales need a region (acs-protocol.md 6.11): "en" is refused, "en-US" accepted.
        if "-" not in locale:
            message = "Invalid request, locale is missing or has no region."
            raise OperationError(400, "8523", message, "TranscriptionFailed")
        return locale

    def _start_media(self, context: str | None, url: str | None) -> None:
        assert self.timeline is not None and self.setup.media_options is not None
        target = self._target(self.setup.media_options, self.media_subscription_id)
        self.media = MediaStream(target, self.services.tokens, self.timeline, self._notifier(context, url))
        self.media.start()

    def _start_transcription(self, context: str | None, url: str | None) -> None:
        assert self.timeline is not None and self.setup.transcription_options is not None
        options = self.setup.transcription_options
        target = self._target(options, self.transcription_subscription_id)
        notify = self._notifier(context, url)
        intermediate = bool(options.get("enableIntermediateResults"))
        self.transcription = TranscriptionStream(
            target, self.services.tokens, self.timeline, notify, self.locale, intermediate
        )
        self.transcription.start()

    def _stop_stream(self, stream: SocketStream | None, event: str, data: dict[str, Any], body: dict) -> None:
        assert stream is not None
        stream.stopped = True
        self.post_event(event, data, body.get("operationContext"), body.get("operationCallbackUri"))
        self.spawn(stream.stop())

    def _target(self, options: dict[str, Any], subscription_id: str) -> StreamTarget:
        return StreamTarget(self.call_id, self.correlation_id, options["transportUrl"], subscription_id)

    def _notifier(self, context: str | None, url: str | None) -> Notify:
        return lambda name, data: self.post_event(name, data, context, url)

    # Faults and remote actions (control API)

    async def inject_fault(self, fault: dict[str, Any]) -> None:
        kind = fault.get("fault")
        if kind == "drop_socket":
            self._stream_for(fault.get("which", "media")).drop(fault.get("reconnect_after"))
        elif kind == "malformed_packet":
            await self._stream_for(fault.get("which", "media")).send_malformed()
        elif kind == "fail_streaming":
            await self._fail_stream(self._stream_for("media"))
        elif kind == "fail_transcription":
            await self._fail_stream(self._stream_for("transcription"))
        else:
            raise ValueError(f"unknown fault {kind!r}")

    def _stream_for(self, which: str) -> SocketStream:
        stream = {"media": self.media, "transcription": self.transcription}.get(which)
        if not self._active(stream):
            raise ValueError(f"{which} streaming is not active on call {self.call_id}")
        assert stream is not None
        return stream

    async def _fail_stream(self, stream: SocketStream) -> None:
        stream.fail_now()
        await stream.stop("stream failed")

    # Views

    def properties(self) -> dict[str, Any]:
        """CallConnectionProperties as the SDK deserialises it (acs-protocol.md 5.4)."""
        media_options, transcription_options = self.setup.media_options, self.setup.transcription_options
        return {
            "callConnectionId": self.call_id,
            "serverCallId": self.server_call_id,
            "targets": self.setup.targets,
            "callConnectionState": self.state,
            "callbackUri": self.setup.callback_uri,
            "source": self.setup.source,
            "correlationId": self.correlation_id,
            "mediaStreamingSubscription": {
                "id": self.media_subscription_id,
                "state": self._subscription_state(media_options, self.media),
                "subscribedContentTypes": ["audio"] if self._active(self.media) else [],
            },
            "transcriptionSubscription": {
                "id": self.transcription_subscription_id,
                "state": self._subscription_state(transcription_options, self.transcription),
                "subscribedResultTypes": self._result_types(),
                "locale": self.locale,
            },
            **self.setup.extra_properties,
        }

    def snapshot(self) -> dict[str, Any]:
        timeline = self.timeline
        return {
            "call_connection_id": self.call_id,
            "server_call_id": self.server_call_id,
            "correlation_id": self.correlation_id,
            "state": self.state,
            "script": self.setup.script,
            "script_time": round(timeline.now(), 3) if timeline and self.state == "connected" else None,
            "callback_uri": self.setup.callback_uri,
            "participants": self.participant_ids(),
            "media_streaming": self._stream_snapshot(self.setup.media_options, self.media),
            "transcription": self._stream_snapshot(self.setup.transcription_options, self.transcription),
            "callbacks": list(self.sender.deliveries),
            "timing": dict(self.timing),
        }

    def _result_types(self) -> list[str]:
        if not self._active(self.transcription):
            return []
        intermediate = (self.setup.transcription_options or {}).get("enableIntermediateResults")
        return ["final", "intermediate"] if intermediate else ["final"]

    def participant_ids(self) -> list[str]:
        return list(self.setup.participants.values())

    def _stream_snapshot(self, options: dict | None, stream: SocketStream | None) -> dict[str, Any]:
        status = {"state": self._subscription_state(options, stream), "options": options}
        return {**status, **(stream.snapshot() if stream else {})}

    def _subscription_state(self, options: dict | None, stream: SocketStream | None) -> str:
        if options is None:
            return "disabled"
        return "active" if self._active(stream) else "inactive"

    @staticmethod
    def _active(stream: SocketStream | None) -> bool:
        return stream is not None and stream.active

    def _streams(self) -> list[SocketStream]:
        return [stream for stream in (self.media, self.transcription) if stream is not None]

    def _sample_rate(self) -> int:
        audio_format = (self.setup.media_options or {}).get("audioFormat")
        if audio_format:
            return SAMPLE_RATES.get(audio_format.lower(), 16000)
        return self.services.scripts.load(self.setup.script).sample_rate

    def spawn(self, coroutine: Coroutine[Any, Any, Any]) -> None:
        task = asyncio.create_task(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)


def new_server_call_id() -> str:
    # Real ones are base64 of a conversation URL (acs-protocol.md 3.3: "aHR0cHM6Ly9...").
    url = f"https://api.emulator.local/conversations/{uuid.uuid4()}?i=10&e=638000000000000000"
    return base64.urlsafe_b64encode(url.encode()).decode().rstrip("=")
