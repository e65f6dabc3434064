"""The live feed's transport: group names, and the one function that publishes an event to them
(streaming/publisher.py sends it). Nothing else spells a group name.

What an event holds and when it is published (after its change commits, with the call's next number)
is the domain's: calls/live_events.py. It hands committed events to `publish` here, which
streaming/apps.py registers with it at start-up.
"""

from __future__ import annotations

import asyncio
import time
import uuid

from asgiref.sync import async_to_sync

from calls.live_events import LiveEvent
from compat import asgiref
from streaming import publisher

CALLS_GROUP = "calls"
READINESS_PROBE_GROUP = "readiness-probe"  # /readyz sends to it to see Redis answer; nobody listens
HANDLER_TYPE = "live.event"  # handled by `live_event` on the live-feed consumers


def call_group(call_id: uuid.UUID | str) -> str:
    return f"call-{call_id}"


def _groups(event: LiveEvent) -> list[str]:
    # The call list shows state and the last utterance, not text still being recognised.
    if event["type"] == "partial":
        return [call_group(event["call_id"])]
    return [call_group(event["call_id"]), CALLS_GROUP]


def publish(event: LiveEvent) -> None:
    """Send an event to every viewer of its call (and of the call list), from any thread, without
    waiting for delivery. calls/live_events.py runs it from `transaction.on_commit`.

    In a server, an event published on the event loop (intermediate text) goes to the loop's publisher;
    one committed in a thread (the finals writer, a request, a socket's database thread) is sent by that
    thread, one pipeline to Redis, rather than waiting for the loop's turns (streaming/publisher.py).
    Before any loop has published (the layer's group names are learnt there), or outside a server
    (management commands, sync tests), it goes to the calling loop, or is sent before returning.
    A channel-layer failure (Redis down) is logged, never raised: ingest and storage must go on
    without live viewers.
    """
    messages = _messages(event)
    if _in_event_loop():
        publisher.send_soon(messages)
        return
    if publisher.send_from_thread(messages):
        return
    loop = asgiref.calling_event_loop()
    if loop is not None:
        try:
            loop.call_soon_threadsafe(publisher.send_soon, messages)
            return
        except RuntimeError:  # the loop has closed
            pass
    # On a loop of our own: asgiref would otherwise hand it to the loop this thread was called from
    # even once that loop has stopped (a server shutting down), and wait for it forever.
    async_to_sync(publisher.send_now, force_new_loop=True)(messages)


def _messages(event: LiveEvent) -> list[publisher.Message]:
    message = {"type": HANDLER_TYPE, "event": event, "published_at": time.time()}
    return [(group, message) for group in _groups(event)]


def _in_event_loop() -> bool:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True
