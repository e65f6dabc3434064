"""The aiohttp application: the Call Automation REST subset (acs-protocol.md 5), the signing keys,
and the emulator's own control API (see control.py)."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

import aiohttp
from aiohttp import web

from emulator import control, hmac_auth
from emulator.appkeys import REGISTRY, REPEATED_REQUESTS, REQUEST_LOG, SERVICES
from emulator.calls import Call, OperationError, Services
from emulator.config import EmulatorConfig
from emulator.registry import CallRegistry
from emulator.script import ScriptLibrary
from emulator.tokens import TokenIssuer

log = logging.getLogger(__name__)

REST_PREFIX = "/calling/callConnections"
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def create_app(config: EmulatorConfig) -> web.Application:
    app = web.Application(middlewares=[acs_rest_middleware])
    app[REQUEST_LOG] = []
    app[REPEATED_REQUESTS] = {}
    app.cleanup_ctx.append(_services_context(config))
    app.router.add_get("/calling/keys", keys)
    app.router.add_get("/calling/.well-known/acsopenidconfiguration", openid_configuration)
    app.router.add_post(REST_PREFIX, create_call)
    app.router.add_post(f"{REST_PREFIX}:answer", answer_call)
    app.router.add_get(REST_PREFIX + "/{call_id:[^/:]+}", get_call)
    app.router.add_delete(REST_PREFIX + "/{call_id:[^/:]+}", leave_call)
    app.router.add_post(REST_PREFIX + "/{call_id:[^/:]+}:{action}", call_action)
    control.add_routes(app)
    return app


def _services_context(config: EmulatorConfig):
    async def context(app: web.Application):
        tokens = TokenIssuer(config.issuer, config.resource_id, config.private_key_path)
        # No cap on connections (aiohttp's default is 100): Event Grid and the callbacks of a burst
        # of calls go out in parallel, as from Azure, not queued behind one another here.
        connector = aiohttp.TCPConnector(limit=0)
        timeout = aiohttp.ClientTimeout(total=30)
        async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
            services = Services(config, tokens, ScriptLibrary(config.script_dir), session)
            app[SERVICES] = services
            app[REGISTRY] = CallRegistry(services)
            # Render the default script in the background so the first call connects without a pause.
            warm_up = asyncio.create_task(_warm_up(services.scripts, config.default_script))
            yield
            warm_up.cancel()
            await app[REGISTRY].shutdown()

    return context


async def _warm_up(scripts: ScriptLibrary, name: str) -> None:
    try:
        await asyncio.to_thread(scripts.rendered, name, 16000)
    except Exception:
        log.exception("could not render the default script %r", name)


def acs_error(status: int, code: str, message: str) -> web.Response:
    return web.json_response({"error": {"code": code, "message": message}}, status=status)


@web.middleware
async def acs_rest_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Log, authenticate and version-check every Call Automation REST request, and make errors ACS-shaped."""
    if not request.path.startswith(REST_PREFIX):
        return await handler(request)
    body = await request.read()
    entry = _log_entry(request, body)
    request.app[REQUEST_LOG].append(entry)
    access_key = request.app[SERVICES].config.access_key
    try:
        hmac_auth.verify(access_key, request.method, request.raw_path, request.headers, body, datetime.now(UTC))
    except hmac_auth.HmacError as error:
        log.warning("rejected %s %s: %s", request.method, request.raw_path, error)
        response: web.StreamResponse = acs_error(401, "Denied", f"Denied by the HMAC authentication policy: {error}")
    else:
        entry["hmac_valid"] = True
        response = await _once(request, handler)
    entry["status"] = response.status
    if "x-ms-client-request-id" in request.headers:
        response.headers["x-ms-client-request-id"] = request.headers["x-ms-client-request-id"]
    return response


async def _once(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Replay the first answer to a repeated Repeatability-Request-ID (SDK retries of create/answer/terminate)."""
    key = request.headers.get("Repeatability-Request-ID")
    if key is None:
        return await _versioned(request, handler)
    replies = request.app[REPEATED_REQUESTS]
    if key in replies:
        status, body, content_type = replies[key]
        return web.Response(status=status, body=body, content_type=content_type if body else None)
    response = await _versioned(request, handler)
    if isinstance(response, web.Response) and response.status < 500:
        replies[key] = (response.status, response.body, response.content_type)
    return response


async def _versioned(request: web.Request, handler: Handler) -> web.StreamResponse:
    if not request.query.get("api-version"):
        message = "The api-version query parameter (?api-version=) is required for all requests."
        return acs_error(400, "MissingApiVersionParameter", message)
    try:
        return await handler(request)
    except OperationError as error:
        return acs_error(error.status, error.code, error.message)
    except web.HTTPException as error:
        return acs_error(error.status, str(error.status), error.reason)


def _log_entry(request: web.Request, body: bytes) -> dict[str, Any]:
    try:
        parsed = json.loads(body) if body else None
    except ValueError:
        parsed = body.decode(errors="replace")
    return {
        "time": datetime.now(UTC).isoformat(),
        "method": request.method,
        "path": request.path,
        "query": dict(request.query),
        "body": parsed,
        "hmac_valid": False,
        "status": None,
    }


async def _json_body(request: web.Request) -> dict[str, Any]:
    body = await request.read()
    try:
        parsed = json.loads(body) if body else {}
    except ValueError as error:
        raise OperationError(400, "BadRequest", "The request body is not valid JSON.") from error
    if not isinstance(parsed, dict):
        raise OperationError(400, "BadRequest", "The request body must be a JSON object.")
    return parsed


# Signing keys (acs-protocol.md 2.2)


async def keys(request: web.Request) -> web.Response:
    return web.json_response(request.app[SERVICES].tokens.jwks())


async def openid_configuration(request: web.Request) -> web.Response:
    base_url = f"{request.scheme}://{request.host}"
    return web.json_response(request.app[SERVICES].tokens.openid_configuration(base_url))


# Call Automation REST (acs-protocol.md 5.2)


async def create_call(request: web.Request) -> web.Response:
    call = request.app[REGISTRY].create_call(await _json_body(request))
    return web.json_response(call.properties(), status=201)


async def answer_call(request: web.Request) -> web.Response:
    call = request.app[REGISTRY].answer_call(await _json_body(request))
    return web.json_response(call.properties(), status=200)


async def get_call(request: web.Request) -> web.Response:
    call = request.app[REGISTRY].live_call(request.match_info["call_id"])
    return web.json_response(call.properties())


async def leave_call(request: web.Request) -> web.Response:
    # The app's bot was the only one on the emulated call, so leaving ends it.
    call = request.app[REGISTRY].live_call(request.match_info["call_id"])
    call.spawn(call.disconnect("The call was hung up."))
    return web.Response(status=204)


async def call_action(request: web.Request) -> web.Response:
    call = request.app[REGISTRY].live_call(request.match_info["call_id"])
    action = request.match_info["action"]
    if action == "terminate":
        call.spawn(call.disconnect("The call was terminated for everyone."))
        return web.Response(status=204)
    operation = _operations(call).get(action)
    if operation is None:
        raise OperationError(404, "NotFound", f"The emulator does not implement :{action}.")
    body = await _json_body(request)
    try:
        operation(body)
    except OperationError as error:
        if error.failed_event:
            call.post_failure(error, body)
        raise
    return web.Response(status=202)


def _operations(call: Call) -> dict[str, Callable[[dict[str, Any]], None]]:
    return {
        "startMediaStreaming": call.start_media_streaming,
        "stopMediaStreaming": call.stop_media_streaming,
        "startTranscription": call.start_transcription,
        "stopTranscription": call.stop_transcription,
        "updateTranscription": call.update_transcription,
    }
