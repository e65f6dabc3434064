"""Every call the emulator knows about, and the incoming calls still waiting to be answered."""

from __future__ import annotations

import asyncio
import base64
import time
import uuid
from dataclasses import dataclass
from typing import Any

from emulator import events
from emulator.calls import Call, CallSetup, OperationError, Services, new_server_call_id, not_found

ANSWER_DELAY = 0.1  # answered calls are already ringing, so they connect almost at once


@dataclass(frozen=True)
class IncomingCall:
    context: str
    script: str
    caller: str
    caller_name: str
    callee: str
    server_call_id: str
    correlation_id: str


class CallRegistry:
    def __init__(self, services: Services) -> None:
        self.services = services
        self.calls: dict[str, Call] = {}
        self.incoming: dict[str, IncomingCall] = {}
        # When each IncomingCall went out (time.time()), so a call can report its time to answer.
        self.notified_at: dict[str, float] = {}
        self.bot_id = f"8:acs:{services.config.resource_id}_{uuid.uuid4()}"

    def live_call(self, call_id: str) -> Call:
        """A call the REST API can act on; ACS forgets calls once they end."""
        call = self.calls.get(call_id)
        if call is None or call.state == "disconnected":
            raise not_found()
        return call

    def ring(self, script_name: str | None) -> IncomingCall:
        name = script_name or self.services.config.default_script
        script = self.services.scripts.load(name)
        # Opaque to the app, like the real (JWT-looking) context; it only has to round-trip to answer_call.
        context = base64.urlsafe_b64encode(f"emulator-incoming-call:{uuid.uuid4()}".encode()).decode().rstrip("=")
        incoming = IncomingCall(
            context=context,
            script=name,
            caller=script.caller.raw_id,
            caller_name=script.caller.display_name,
            callee=script.callee.raw_id,
            server_call_id=new_server_call_id(),
            correlation_id=str(uuid.uuid4()),
        )
        self.incoming[context] = incoming
        return incoming

    def note_notified(self, context: str) -> None:
        """The IncomingCall for `context` is being delivered now."""
        self.notified_at[context] = time.time()

    def forget(self, context: str) -> None:
        self.incoming.pop(context, None)
        self.notified_at.pop(context, None)

    def answer_call(self, body: dict[str, Any]) -> Call:
        answer_requested_at = time.time()
        context = body.get("incomingCallContext") or ""
        incoming = self.incoming.pop(context, None)
        if incoming is None:
            raise OperationError(400, "8523", "Invalid request: the incoming call context is unknown or was used.")
        script = self.services.scripts.load(incoming.script)
        setup = self._setup(body, incoming.script, {p.raw_id: p.raw_id for p in script.participants})
        setup.source = events.identifier(incoming.caller)
        setup.targets = [events.identifier(incoming.caller)]
        setup.extra_properties = {"answeredBy": events.identifier(self.bot_id)}
        call = Call(self.services, setup, incoming.server_call_id, incoming.correlation_id)
        call.timing.update(
            incoming_call_sent_at=self.notified_at.pop(context, None), answer_requested_at=answer_requested_at
        )
        return self._start(call, ANSWER_DELAY)

    def create_call(self, body: dict[str, Any]) -> Call:
        targets = body.get("targets") or []
        if not targets:
            raise OperationError(400, "BadRequest", "Invalid request: at least one target is required.")
        name = self.services.config.default_script
        script = self.services.scripts.load(name)
        participants = {p.raw_id: p.raw_id for p in script.participants}
        # The script's caller plays the person being called.
        participants[script.caller.raw_id] = events.raw_id_of(targets[0])
        setup = self._setup(body, name, participants)
        setup.source = events.identifier(self.bot_id)
        setup.targets = targets
        setup.extra_properties = {
            key: body[key] for key in ("sourceCallerIdNumber", "sourceDisplayName") if body.get(key) is not None
        }
        call = Call(self.services, setup, new_server_call_id(), str(uuid.uuid4()))
        return self._start(call, self.services.config.connect_delay)

    def _setup(self, body: dict[str, Any], script: str, participants: dict[str, str]) -> CallSetup:
        if not body.get("callbackUri"):
            raise OperationError(400, "BadRequest", "Invalid request: callbackUri is required.")
        for key in ("mediaStreamingOptions", "transcriptionOptions"):
            if body.get(key) is not None and not body[key].get("transportUrl"):
                raise OperationError(400, "8581", f"Invalid request: {key}.transportUrl is required.")
        return CallSetup(
            callback_uri=body["callbackUri"],
            script=script,
            participants=participants,
            source={},
            targets=[],
            operation_context=body.get("operationContext"),
            media_options=body.get("mediaStreamingOptions"),
            transcription_options=body.get("transcriptionOptions"),
        )

    def _start(self, call: Call, delay: float) -> Call:
        self.calls[call.call_id] = call
        call.begin(delay)
        return call

    async def shutdown(self) -> None:
        live = [call for call in self.calls.values() if call.state != "disconnected"]
        await asyncio.gather(*(call.disconnect("The emulator is shutting down.") for call in live))
