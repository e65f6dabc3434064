"""The Redis channel layer the server runs (compat/channels_redis.py `PubSubLayer`), for tests that need
Redis itself between publishers and viewers."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import pytest
from channels.layers import channel_layers
from pytest_django.fixtures import Settings as SettingsWrapper

from compat import channels_redis


def use_layer(settings: SettingsWrapper, backend: str, config: dict) -> None:
    settings.CHANNEL_LAYERS = {"default": {"BACKEND": backend, "CONFIG": config}}
    channel_layers.backends.clear()  # built again from the settings on first use


@pytest.fixture
def redis_layer(settings: SettingsWrapper) -> Iterator[str]:
    """The layer's key prefix, unique to the test."""
    url = os.environ.get("TEST_REDIS_URL")
    if not url:
        pytest.skip("TEST_REDIS_URL is not set (bin/test sets it)")
    settings.REDIS_URL = url
    prefix = uuid.uuid4().hex
    use_layer(settings, channels_redis.PUBSUB_BACKEND, {"hosts": [url], "prefix": prefix})
    yield prefix
    channel_layers.backends.clear()
