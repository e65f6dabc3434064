"""The channel layer the server runs (compat/channels_redis.py `PubSubLayer`): a viewer that ends while the
layer's Redis connection is busy, cancelled twice as daphne cancels a slow application, leaves no error
and, once the connection is free, no subscription behind."""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest
from channels.layers import get_channel_layer
from redis import asyncio as redis

pytestmark = pytest.mark.django_db(transaction=True)


async def subscribed_channels(prefix: str) -> set[str]:
    client = redis.Redis.from_url(os.environ["TEST_REDIS_URL"])
    try:
        return {name.decode() for name in await client.pubsub_channels(f"{prefix}*")}
    finally:
        await client.aclose()


async def until(condition: object, what: str) -> None:
    deadline = time.monotonic() + 10
    while not await condition():  # type: ignore[operator]
        assert time.monotonic() < deadline, f"waited 10 s for {what}"
        await asyncio.sleep(0.05)


@asynccontextmanager
async def layer_busy_subscribing_others() -> AsyncIterator[None]:
    """What a burst does to the layer: its Redis connection subscribes hundreds of viewers, one at a time
    under its one lock, each waiting its turn on a busy event loop. Here the lock is simply held."""
    shards = get_channel_layer()._get_layer()._shards  # channels_redis' internals, as compat/channels_redis.py
    for shard in shards:
        await shard._lock.acquire()
    try:
        yield
    finally:
        for shard in shards:
            shard._lock.release()


async def test_a_viewer_killed_while_the_layer_is_busy_leaves_no_error_and_no_subscription(
    redis_layer: str, caplog: pytest.LogCaptureFixture
) -> None:
    """daphne cancels an application that outlives its connection by ten seconds, and again every second
    until it ends: a receive cancelled twice while the stock layer waited to unsubscribe logged an error
    and stayed subscribed."""
    layer = get_channel_layer()
    channel = await layer.new_channel()
    await until(lambda: _subscribed(redis_layer, channel), "the channel's subscription")
    async with layer_busy_subscribing_others():
        receiving = asyncio.ensure_future(layer.receive(channel))
        await asyncio.sleep(0.01)
        receiving.cancel()
        await asyncio.sleep(0.01)
        receiving.cancel()
        with pytest.raises(asyncio.CancelledError):
            await receiving

    await until(lambda: _unsubscribed(redis_layer, channel), "the channel's unsubscription")
    assert [record for record in caplog.records if record.levelno >= logging.ERROR] == []


async def _subscribed(prefix: str, name_end: str) -> bool:
    return any(name.endswith(name_end) for name in await subscribed_channels(prefix))


async def _unsubscribed(prefix: str, name_end: str) -> bool:
    return not await _subscribed(prefix, name_end)
