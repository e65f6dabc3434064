"""channels_redis' pub/sub layer: the Redis channel a group's messages go to, how they are encoded,
and `PubSubLayer`, the layer Callscribe runs, whose consumers' channels are unsubscribed however their
receive ends.

streaming/publisher.py sends many live events per Redis round trip, as one pipeline of PUBLISH
commands, where the layer's `group_send` makes a round trip per event (docs/performance.md). It
publishes exactly what `group_send` would, so the layer's subscribers receive the messages as theirs.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

from channels_redis.pubsub import RedisPubSubChannelLayer, RedisPubSubLoopLayer, RedisSingleShardConnection

from compat import require_attributes, require_method, require_source

logger = logging.getLogger(__name__)

PUBSUB_BACKEND = "compat.channels_redis.PubSubLayer"  # the only layer whose internals are used

# sha256 (compat.source_fingerprint) of channels_redis 4.3.0's code: what `group_send` publishes (the
# publisher does the same), the layer's own `receive` (PubSubLayer replaces it for the channels the
# layer made) and the unsubscription it runs.
GROUP_SEND_FINGERPRINT = "5d5f908ce40f335b"
RECEIVE_FINGERPRINT = "2d3fa7938ba6e0a6"
UNSUBSCRIBE_FINGERPRINT = "e2b9f0f1ff880674"


class PubSubLayer(RedisPubSubChannelLayer):
    """channels_redis' pub/sub layer, but a consumer's channel is unsubscribed from Redis in a task of
    its own when its receive is cancelled (the consumer is ending), so a second cancellation cannot cut
    the unsubscription short.

    The stock layer unsubscribes inside the cancelled receive, waiting for its Redis connection's one
    lock. In a burst that lock has seconds of other viewers' subscriptions queued, and daphne cancels
    an application that outlives its connection by ten seconds again every second until it ends: the
    second cancellation landed in that wait, and channels_redis logged an ERROR with a traceback and
    left the channel subscribed, 314 times in one burst of 150 calls (docs/performance.md, "Faults").
    """

    async def receive(self, channel: str) -> dict[str, Any]:
        layer = self._get_layer()
        queue = layer.channels.get(channel)
        if queue is None:  # not subscribed yet: the stock receive subscribes first
            return await layer.receive(channel)
        try:
            message = await queue.get()
        except asyncio.CancelledError:
            if layer.channels.pop(channel, None) is not None:
                _unsubscribe_soon(layer, channel)
            raise
        return self.deserialize(message)


_unsubscribing: set[asyncio.Task[None]] = set()  # held until done: the loop keeps only weak references


def _unsubscribe_soon(layer: RedisPubSubLoopLayer, channel: str) -> None:
    task = asyncio.ensure_future(layer._get_shard(channel).unsubscribe(channel))
    _unsubscribing.add(task)
    task.add_done_callback(_unsubscribed)


def _unsubscribed(task: asyncio.Task[None]) -> None:
    _unsubscribing.discard(task)
    if not task.cancelled() and task.exception() is not None:  # cancelled: the process is shutting down
        logger.warning("A channel-layer channel could not be unsubscribed from Redis: %s", task.exception())


def group_channel_name(layer: RedisPubSubChannelLayer, group: str) -> str:
    return layer._get_group_channel_name(group)


def group_channel_namer(layer: RedisPubSubChannelLayer) -> Callable[[str], str]:
    """The layer's naming of group channels, for threads: the layer builds a layer per event loop and
    answers only inside one, so this is taken on a loop; the name depends on the layer's prefix alone."""
    return layer._get_group_channel_name


def serialize(layer: RedisPubSubChannelLayer, message: dict[str, Any]) -> bytes:
    return layer.serialize(message)


def check() -> None:
    require_method("channels-redis", RedisPubSubLoopLayer, "_get_group_channel_name", ("self", "group"))
    require_method("channels-redis", RedisPubSubLoopLayer, "_get_shard", ("self", "channel_or_group_name"))
    require_method("channels-redis", RedisPubSubChannelLayer, "serialize", ("self", "message"))
    require_method("channels-redis", RedisPubSubChannelLayer, "deserialize", ("self", "message"))
    require_attributes("channels-redis", RedisPubSubChannelLayer, ("_get_layer",))
    require_source("channels-redis", RedisPubSubLoopLayer.group_send, GROUP_SEND_FINGERPRINT)
    require_source("channels-redis", RedisPubSubLoopLayer.receive, RECEIVE_FINGERPRINT)
    require_source("channels-redis", RedisSingleShardConnection.unsubscribe, UNSUBSCRIBE_FINGERPRINT)
