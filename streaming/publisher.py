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

Events committed in a thread (the finals writer, a request, a socket's database thread: every event
with a sequence number) are sent by that thread itself, a pipeline per event, once a loop has learnt
the layer's group names (`send_from_thread`): handing them to the loop cost a final 25-45 ms of the
loop's turns while a hundred calls set up (docs/performance.md). Such a thread waits for Redis at most
THREAD_REDIS_TIMEOUT_SECONDS once; after a failure the threads hand their events to the loop again
for REDIS_AWAY_SECONDS, so an outage costs them no more waiting and Redis's return is seen at once.
"""

from __future__ import annotations

import asyncio
import logging
import time
import weakref
from collections import deque
from collections.abc import Callable
from typing import Any

import redis as sync_redis
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
        _learn_group_names(layer)
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


# --- from the threads that commit events (see the module's docstring) ------------------------------

THREAD_REDIS_TIMEOUT_SECONDS = 0.25
REDIS_AWAY_SECONDS = 5.0  # a Redis that drops packets costs a thread one timeout per 5 s

_group_namers: weakref.WeakKeyDictionary[Any, Callable[[str], str]] = weakref.WeakKeyDictionary()


class ThreadRedis:
    """One Redis server as the threads see it: a client (thread-safe, pooled) and, after a failure,
    until when to leave publishing to the loop."""

    def __init__(self, url: str) -> None:
        self.client = sync_redis.Redis.from_url(
            url, socket_connect_timeout=THREAD_REDIS_TIMEOUT_SECONDS, socket_timeout=THREAD_REDIS_TIMEOUT_SECONDS
        )
        self.away_until = 0.0


_thread_redis: dict[str, ThreadRedis] = {}


def _learn_group_names(layer: RedisPubSubChannelLayer) -> None:
    """Once per layer, on the loop's first batch: from then on threads publish themselves."""
    if layer not in _group_namers:
        _group_namers[layer] = channels_redis.group_channel_namer(layer)


def send_from_thread(messages: list[Message]) -> bool:
    """Publish now, from a thread without an event loop. False when this layer's group names are not
    known yet (no loop has published through it), or Redis failed this thread path less than
    REDIS_AWAY_SECONDS ago: then the caller hands the messages to a loop, whose publisher sends them,
    or drops and counts them, as it does its own."""
    layer = get_channel_layer()
    group_channel_name = _group_namers.get(layer)
    if group_channel_name is None:
        return False
    redis_server = _thread_redis.get(settings.REDIS_URL) or _thread_redis.setdefault(
        settings.REDIS_URL, ThreadRedis(settings.REDIS_URL)
    )
    if time.monotonic() < redis_server.away_until:
        return False
    try:
        with redis_server.client.pipeline(transaction=False) as pipeline:
            for group, message in messages:
                pipeline.publish(group_channel_name(group), channels_redis.serialize(layer, message))
            pipeline.execute()
    except sync_redis.RedisError as error:
        redis_server.away_until = time.monotonic() + REDIS_AWAY_SECONDS
        logger.warning(
            "Redis failed a thread's publish (%s); the event loop publishes for %d s", error, REDIS_AWAY_SECONDS
        )
        return False
    return True


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
