"""channels_redis' pub/sub layer: the Redis channel a group's messages go to, and how they are encoded.

streaming/publisher.py sends many live events per Redis round trip, as one pipeline of PUBLISH
commands, where the layer's `group_send` makes a round trip per event (docs/performance.md). It
publishes exactly what `group_send` would, so the layer's subscribers receive the messages as theirs.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from channels_redis.pubsub import RedisPubSubChannelLayer, RedisPubSubLoopLayer

from compat import require_method, require_source

PUBSUB_BACKEND = "channels_redis.pubsub.RedisPubSubChannelLayer"  # the only layer whose internals are used

# sha256 of RedisPubSubLoopLayer.group_send (compat.source_fingerprint), channels_redis 4.3.0: the
# publisher does what it does.
GROUP_SEND_FINGERPRINT = "5d5f908ce40f335b"


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
    require_method("channels-redis", RedisPubSubChannelLayer, "serialize", ("self", "message"))
    require_source("channels-redis", RedisPubSubLoopLayer.group_send, GROUP_SEND_FINGERPRINT)
