"""Sends this process's live events to the channel layer: many per Redis round trip, in order.

channels_redis' pub/sub layer sends each `group_send` in a round trip of its own, one at a time under
a lock per process. On a busy event loop each took several loop iterations: about 40 a second with
5 ms of other work per iteration, where a hundred calls publish about 250 a second, so under load
live events queued for seconds (docs/performance.md). Here everything published since the last round trip goes
in the next one, as one pipeline of PUBLISH commands to the channels the layer's subscribers listen
on, in the order published, so one call's sequence numbers still arrive in order. Other layers (in
memory, channels_redis' core layer) get one `group_send` per message.

Publishing never waits for Redis. When Redis is away the events are dropped and counted (viewers
resync from the database); when more than MAX_WAITING_MESSAGES pile up, the oldest are.
"""

from __future__ import annotations

import asyncio
import logging
import time
import weakref
from collections import deque
from typing import Any

from channels.layers import get_channel_layer
from channels_redis.pubsub import RedisPubSubChannelLayer
from django.conf import settings
from redis import asyncio as redis

from compat import channels_redis
from streaming import metrics

logger = logging.getLogger(__name__)

MAX_WAITING_MESSAGES = 10_000
REDIS_TIMEOUT_SECONDS = 2.0

Message = tuple[str, dict[str, Any]]  # (group, message)


class Publisher:
    """One event loop's messages waiting to be sent, and the one task that sends them."""

    def __init__(self) -> None:
        self.waiting: deque[Message] = deque()
        self.sender: asyncio.Task[None] | None = None
        self.redis: redis.Redis | None = None

    def add(self, messages: list[Message]) -> None:
        self.waiting.extend(messages)
        overflow = len(self.waiting) - MAX_WAITING_MESSAGES
        if overflow > 0:
            for _ in range(overflow):
                self.waiting.popleft()
            _count_unsent(overflow, "more than MAX_WAITING_MESSAGES waiting")
        if self.sender is None or self.sender.done():
            self.sender = asyncio.ensure_future(self._send_waiting())

    async def _send_waiting(self) -> None:
        layer = get_channel_layer()
        while self.waiting:
            batch = list(self.waiting)
            self.waiting.clear()
            try:
                await self._send(layer, batch)
            except Exception as error:  # Redis is away: ingest and storage go on without viewers
                _count_unsent(len(batch), error)

    async def _send(self, layer: Any, batch: list[Message]) -> None:
        if not isinstance(layer, RedisPubSubChannelLayer):
            await _group_send_each(layer, batch)
            return
        if self.redis is None:
            # The layer is configured with this one host (config/settings.py), so every group's
            # subscribers listen on it.
            self.redis = redis.Redis.from_url(
                settings.REDIS_URL,
                socket_connect_timeout=REDIS_TIMEOUT_SECONDS,
                socket_timeout=REDIS_TIMEOUT_SECONDS,
            )
        async with self.redis.pipeline(transaction=False) as pipeline:
            for group, message in batch:
                pipeline.publish(
                    channels_redis.group_channel_name(layer, group), channels_redis.serialize(layer, message)
                )
            await pipeline.execute()


_publishers: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Publisher] = weakref.WeakKeyDictionary()


def send_soon(messages: list[Message]) -> None:
    """Queue messages for their groups on the running event loop's publisher."""
    loop = asyncio.get_running_loop()
    publisher = _publishers.get(loop)
    if publisher is None:
        publisher = _publishers[loop] = Publisher()
    publisher.add(messages)


async def send_now(messages: list[Message]) -> None:
    """Send messages before returning, one `group_send` each: for code outside a server."""
    try:
        await _group_send_each(get_channel_layer(), messages)
    except Exception as error:
        _count_unsent(len(messages), error)


async def _group_send_each(layer: Any, messages: list[Message]) -> None:
    for group, message in messages:
        await layer.group_send(group, message)


_last_failure_log = 0.0


def _count_unsent(count: int, reason: object) -> None:
    global _last_failure_log
    metrics.live_events_unsent.inc(count)
    now = time.monotonic()
    if now - _last_failure_log > 10:
        _last_failure_log = now
        logger.warning("%d live event(s) not published (viewers will resync): %s", count, reason)
