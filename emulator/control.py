"""The emulator's control API under /emulator/ (not part of ACS): ring the app, inspect calls and
requests, inject faults, and hang up as the remote party."""

from __future__ import annotations

import json
import logging
import uuid
from typing import Any

import aiohttp
from aiohttp import web
from yarl import URL

from emulator import events
from emulator.appkeys import REGISTRY, REQUEST_LOG, SERVICES
from emulator.calls import Call, Services
from emulator.registry import CallRegistry, IncomingCall

log = logging.getLogger(__name__)


def add_routes(app: web.Application) -> None:
    app.router.add_post("/emulator/ring", ring)
    app.router.add_get("/emulator/scripts", scripts)
    app.router.add_get("/emulator/calls", list_calls)
    app.router.add_get("/emulator/calls/{call_id}", call_detail)
    app.router.add_post("/emulator/calls/{call_id}/faults", inject_fault)
    app.router.add_post("/emulator/calls/{call_id}/hangup", hang_up)
    app.router.add_get("/emulator/requests", list_requests)
    app.router.add_delete("/emulator/requests", clear_requests)


def _error(status: int, message: str) -> web.Response:
    return web.json_response({"error": message}, status=status)


async def _body(request: web.Request) -> dict[str, Any]:
    try:
        body = await request.json() if request.can_read_body else {}
    except json.JSONDecodeError as error:
        raise web.HTTPBadRequest(
            text=json.dumps({"error": "body is not JSON"}), content_type="application/json"
        ) from error
    return body if isinstance(body, dict) else {}


def _registry(request: web.Request) -> CallRegistry:
    return request.app[REGISTRY]


def _services(request: web.Request) -> Services:
    return request.app[SERVICES]


async def ring(request: web.Request) -> web.Response:
    body = await _body(request)
    url = body.get("incoming_call_url")
    if not url:
        return _error(400, "incoming_call_url is required")
    registry = _registry(request)
    try:
        incoming = registry.ring(body.get("script"))
    except KeyError as error:
        return _error(404, f"no script named {error.args[0]!r}")
    services = _services(request)
    result: dict[str, Any] = {
        "incoming_call_context": incoming.context,
        "script": incoming.script,
        "caller": incoming.caller,
        "callee": incoming.callee,
        "server_call_id": incoming.server_call_id,
        "correlation_id": incoming.correlation_id,
        "validation_status": None,  # the app's HTTP status for each Event Grid delivery (None: not sent)
        "notification_status": None,
    }
    try:
        if body.get("validate", True):
            result["validation_status"] = await _validate_subscription(services.session, url)
        registry.note_notified(incoming.context)
        result["notification_status"] = await _notify_incoming_call(services.session, url, incoming, services)
    except (RingError, aiohttp.ClientError, TimeoutError) as error:
        registry.forget(incoming.context)
        log.warning("ring %s failed: %s", url, error)
        if isinstance(error, RingError) and error.status is not None:
            result[f"{error.delivery}_status"] = error.status
        return web.json_response({**result, "error": f"ringing {url} failed: {error}"}, status=502)
    return web.json_response(result)


class RingError(Exception):
    def __init__(self, message: str, delivery: str, status: int | None = None) -> None:
        super().__init__(message)
        self.delivery = delivery  # "validation" or "notification"
        self.status = status


def _event_grid_headers(event_type: str, event_id: str) -> dict[str, str]:
    return {
        "aeg-event-type": event_type,
        "aeg-subscription-name": "CALLSCRIBE-INCOMING-CALLS",
        "aeg-delivery-count": "0",
        "aeg-data-version": "1.0",
        "aeg-metadata-version": "1",
        "Content-Type": "application/json",
        "x-emulator-event-id": event_id,
    }


async def _validate_subscription(session: aiohttp.ClientSession, url: str) -> int:
    """Event Grid's handshake (acs-protocol.md 3.5): the app must echo the code with a 200."""
    code = str(uuid.uuid4())
    payload = events.subscription_validation(code)
    headers = _event_grid_headers("SubscriptionValidation", payload[0]["id"])
    async with session.post(URL(url, encoded=True), data=json.dumps(payload), headers=headers) as response:
        text = await response.text()
    if response.status != 200:
        message = f"subscription validation got HTTP {response.status}, expected 200"
        raise RingError(message, "validation", response.status)
    try:
        answer = json.loads(text).get("validationResponse")
    except (ValueError, AttributeError):
        answer = None
    if answer != code:
        message = f"subscription validation answered {text[:200]!r}, expected validationResponse {code}"
        raise RingError(message, "validation", response.status)
    return response.status


async def _notify_incoming_call(
    session: aiohttp.ClientSession, url: str, incoming: IncomingCall, services: Services
) -> int:
    payload = events.incoming_call(
        incoming.caller,
        incoming.caller_name,
        incoming.callee,
        incoming.context,
        incoming.server_call_id,
        incoming.correlation_id,
        services.config.resource_id,
    )
    headers = _event_grid_headers("Notification", payload[0]["id"])
    async with session.post(URL(url, encoded=True), data=json.dumps(payload), headers=headers) as response:
        await response.read()
    if not 200 <= response.status < 300:
        raise RingError(f"IncomingCall notification got HTTP {response.status}", "notification", response.status)
    return response.status


async def scripts(request: web.Request) -> web.Response:
    return web.json_response({"scripts": _services(request).scripts.names()})


async def list_calls(request: web.Request) -> web.Response:
    return web.json_response({"calls": [call.snapshot() for call in _registry(request).calls.values()]})


def _call(request: web.Request) -> Call:
    call = _registry(request).calls.get(request.match_info["call_id"])
    if call is None:
        raise web.HTTPNotFound(text=json.dumps({"error": "no such call"}), content_type="application/json")
    return call


async def call_detail(request: web.Request) -> web.Response:
    return web.json_response(_call(request).snapshot())


async def inject_fault(request: web.Request) -> web.Response:
    call = _call(request)
    fault = await _body(request)
    try:
        await call.inject_fault(fault)
    except (ValueError, RuntimeError) as error:
        return _error(400, str(error))
    log.info("call %s: injected fault %s", call.call_id, fault)
    return web.json_response({"ok": True, "fault": fault})


async def hang_up(request: web.Request) -> web.Response:
    call = _call(request)
    if call.state == "disconnected":
        return _error(409, "the call has already ended")
    await call.disconnect("The remote party hung up.")
    return web.json_response(call.snapshot())


async def list_requests(request: web.Request) -> web.Response:
    return web.json_response({"requests": request.app[REQUEST_LOG]})


async def clear_requests(request: web.Request) -> web.Response:
    request.app[REQUEST_LOG].clear()
    return web.Response(status=204)
