"""An ASGI app that echoes every websocket message: served by daphne in test_websocket_frames.py to
see exactly which messages the websocket layer hands the application."""

from __future__ import annotations

import os
from typing import Any

from compat import autobahn

if os.environ.get("WEBSOCKET_SIMPLE_FRAMES") == "True":
    autobahn.install()


async def application(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] != "websocket":
        return
    while True:
        message = await receive()
        if message["type"] == "websocket.connect":
            await send({"type": "websocket.accept"})
        elif message.get("text") is not None:  # prefixed, so that an empty message is echoed too
            await send({"type": "websocket.send", "text": "echo:" + message["text"]})
        elif message.get("bytes") is not None:
            await send({"type": "websocket.send", "bytes": b"echo:" + message["bytes"]})
        elif message["type"] == "websocket.disconnect":
            return
