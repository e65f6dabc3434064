"""A running emulator, and a stand-in for the Callscribe app that it calls back and streams to."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import jwt
import pytest
from aiohttp import WSMsgType, web
from azure.communication.callautomation import MediaStreamingOptions, TranscriptionOptions
from azure.communication.callautomation.aio import CallAutomationClient
from azure.core.credentials import AzureKeyCredential

from emulator.testing import RunningEmulator, run_emulator_in_subprocess

CALLBACK_SECRET = "s3cr%2Fet+token"  # already URL-encoded; must come back byte for byte


@pytest.fixture(scope="session")
def acs() -> Iterator[RunningEmulator]:
    with run_emulator_in_subprocess(default_script="short_call", connect_delay=0.3) as emulator:
        yield emulator


@dataclass
class Callback:
    type: str
    data: dict[str, Any]
    event: dict[str, Any]
    claims: dict[str, Any]
    query_string: str
    path: str


@dataclass
class Socket:
    path: str
    headers: dict[str, str]
    claims: dict[str, Any]
    raw: list[str] = field(default_factory=list)
    opened_at: float = field(default_factory=time.monotonic)
    closed: bool = False

    @property
    def packets(self) -> list[dict[str, Any]]:
        packets = []
        for text in self.raw:
            try:
                packets.append(json.loads(text))
            except ValueError:
                continue
        return packets

    def of_kind(self, kind: str) -> list[dict[str, Any]]:
        return [p for p in self.packets if p.get("kind") == kind]


class FakeApp:
    """Receives callbacks, media sockets and Event Grid events the way Callscribe would, checking every JWT."""

    def __init__(self, acs: RunningEmulator) -> None:
        self.acs = acs
        self.callbacks: list[Callback] = []
        self.sockets: list[Socket] = []
        self.auth_errors: list[str] = []
        self.incoming: list[dict[str, Any]] = []
        self.answered: list[Any] = []
        self.jwks = jwt.PyJWKSet.from_dict(acs.get("/calling/keys"))
        self.client = CallAutomationClient(acs.base_url, AzureKeyCredential(acs.access_key))
        self.port = 0
        self.failing_callbacks = 0  # answer this many callback POSTs with 503 to exercise retries
        self._open_sockets: set[web.WebSocketResponse] = set()

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/api/callbacks", self._callback)
        app.router.add_post("/api/operations", self._callback)
        app.router.add_post("/api/incoming-call", self._incoming_call)
        app.router.add_get("/ws/{kind}", self._socket)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        for ws in list(self._open_sockets):
            await ws.close()
        await self.client.close()
        await self._runner.cleanup()

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def callback_url(self) -> str:
        return f"{self.base_url}/api/callbacks?token={CALLBACK_SECRET}"

    def media_options(self, start: bool = True, **options: Any) -> MediaStreamingOptions:
        return MediaStreamingOptions(
            transport_url=f"ws://127.0.0.1:{self.port}/ws/media",
            transport_type="websocket",
            content_type="audio",
            audio_channel_type="unmixed",
            start_media_streaming=start,
            **options,
        )

    def transcription_options(self, start: bool = True) -> TranscriptionOptions:
        return TranscriptionOptions(
            transport_url=f"ws://127.0.0.1:{self.port}/ws/transcription",
            transport_type="websocket",
            locale="en-US",
            start_transcription=start,
            enable_intermediate_results=True,
        )

    def verify(self, authorization: str) -> dict[str, Any]:
        token = authorization.removeprefix("Bearer ")
        key = self.jwks[jwt.get_unverified_header(token)["kid"]]
        return jwt.decode(token, key, algorithms=["RS256"], issuer=self.acs.issuer, audience=self.acs.resource_id)

    async def _callback(self, request: web.Request) -> web.Response:
        if self.failing_callbacks > 0:
            self.failing_callbacks -= 1
            return web.Response(status=503)
        try:
            claims = self.verify(request.headers.get("Authorization", ""))
        except (jwt.PyJWTError, KeyError) as error:
            self.auth_errors.append(f"callback: {error!r}")
            return web.Response(status=401)
        for event in await request.json():
            name = event["type"].removeprefix("Microsoft.Communication.")
            raw_query = request.raw_path.partition("?")[2]
            self.callbacks.append(Callback(name, event["data"], event, claims, raw_query, request.path))
        return web.Response(status=200)

    async def _socket(self, request: web.Request) -> web.WebSocketResponse:
        try:
            claims = self.verify(request.headers.get("Authorization", ""))
        except (jwt.PyJWTError, KeyError) as error:
            self.auth_errors.append(f"socket: {error!r}")
            raise web.HTTPUnauthorized() from error
        socket = Socket(request.path, dict(request.headers), claims)
        self.sockets.append(socket)
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        self._open_sockets.add(ws)
        async for message in ws:
            if message.type == WSMsgType.TEXT:
                socket.raw.append(message.data)
        self._open_sockets.discard(ws)
        socket.closed = True
        return ws

    async def _incoming_call(self, request: web.Request) -> web.Response:
        body = await request.json()
        if request.headers.get("aeg-event-type") == "SubscriptionValidation":
            return web.json_response({"validationResponse": body[0]["data"]["validationCode"]})
        for event in body:
            self.incoming.append(event)
            properties = await self.client.answer_call(
                event["data"]["incomingCallContext"],
                self.callback_url,
                media_streaming=self.media_options(audio_format="pcm24KMono"),
                transcription=self.transcription_options(),
            )
            self.answered.append(properties)
        return web.Response(status=200)

    # Helpers for tests

    def types(self, call_id: str | None = None) -> list[str]:
        return [c.type for c in self.callbacks if call_id is None or c.data.get("callConnectionId") == call_id]

    def callback(self, name: str, call_id: str | None = None) -> Callback:
        return next(
            c for c in self.callbacks if c.type == name and (call_id is None or c.data["callConnectionId"] == call_id)
        )

    def sockets_for(self, kind: str, call_id: str) -> list[Socket]:
        return [
            s for s in self.sockets if s.path == f"/ws/{kind}" and s.headers.get("x-ms-call-connection-id") == call_id
        ]

    async def wait_for(self, condition: Callable[[], Any], timeout: float = 5.0) -> Any:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if result := condition():
                return result
            await asyncio.sleep(0.02)
        raise AssertionError(f"timed out after {timeout} s waiting for {condition}; callbacks: {self.types()}")


@pytest.fixture
async def app(acs: RunningEmulator) -> AsyncIterator[FakeApp]:
    fake = FakeApp(acs)
    await fake.start()
    yield fake
    await fake.stop()
