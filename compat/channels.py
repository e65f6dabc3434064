"""Channels' consumer internals: a media socket's lean receive loop and the live feed's dispatch shortcut.

Media sockets get up to 50 frames a second per participant. Channels' `AsyncConsumer.__call__` would
subscribe each to the channel layer (nothing is ever sent to a media socket), run two receive tasks
per message (`await_many_dispatch`) and, in `dispatch`, hop to the database thread to close stale
connections (`aclose_old_connections`) before every handler. `serve_without_channel_layer` is that
loop trimmed; `dispatch_without_database_hop` is `dispatch` without the hop, for handlers that touch
the database only through database_sync_to_async, which closes stale connections itself. Both follow
Channels' code, so `check()` fails when that code changes.

`daphne_backlog` reads daphne's per-connection queue behind `receive` (its size is the socket's backlog).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from channels.consumer import AsyncConsumer, get_handler_name
from channels.exceptions import StopConsumer
from channels.generic.websocket import AsyncWebsocketConsumer

from compat import require_method, require_source

# sha256 of the Channels code the two functions below follow (compat.source_fingerprint), channels 4.3.2.
CALL_FINGERPRINT = "e52238720872dbc3"
DISPATCH_FINGERPRINT = "39f34e7d4fb0f655"


async def serve_without_channel_layer(
    consumer: AsyncWebsocketConsumer, scope: dict[str, Any], receive: Any, send: Any
) -> None:
    """`AsyncConsumer.__call__` for a consumer that needs no channel layer, with websocket frames
    handed straight to `consumer.receive`."""
    consumer.scope = scope
    consumer.channel_layer = None
    consumer.base_send = send
    try:
        while True:
            message = await receive()
            if message["type"] == "websocket.receive":
                await consumer.receive(message.get("text"), message.get("bytes"))
            else:
                await consumer.dispatch(message)
    except StopConsumer:
        pass


async def dispatch_without_database_hop(consumer: AsyncConsumer, message: dict[str, Any]) -> None:
    handler = getattr(consumer, get_handler_name(message), None)
    if handler is None:
        raise ValueError(f"No handler for message type {message['type']}")
    await handler(message)


def daphne_backlog(receive: Any) -> Callable[[], int] | None:
    """How many messages daphne has queued for this connection, unread; None under another server."""
    queue = getattr(receive, "__self__", None)
    return queue.qsize if isinstance(queue, asyncio.Queue) else None


def check() -> None:
    require_source("channels", AsyncConsumer.__call__, CALL_FINGERPRINT)
    require_source("channels", AsyncConsumer.dispatch, DISPATCH_FINGERPRINT)
    require_method("channels", AsyncWebsocketConsumer, "receive", ("self", "text_data", "bytes_data"))
