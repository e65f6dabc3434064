"""The library internals Callscribe relies on (compat/): present in the pinned versions, and a loud
refusal to start, naming the library and its version, when one moves."""

from __future__ import annotations

import asyncio
from importlib import metadata

import psycopg
import pytest
from asgiref.sync import SyncToAsync, sync_to_async
from autobahn.twisted.websocket import WebSocketServerProtocol
from azure.communication.callautomation import CommunicationUserIdentifier, PhoneNumberIdentifier
from channels.consumer import AsyncConsumer
from channels_redis.pubsub import RedisPubSubLoopLayer, RedisSingleShardConnection
from daphne.http_protocol import HTTPFactory
from django.core.handlers.asgi import ASGIHandler
from twisted.internet.defer import Deferred

import compat
from compat import (
    IncompatibleLibrary,
    asgiref,
    autobahn,
    azure_sdk,
    channels,
    channels_redis,
    daphne,
    django_asgi,
    django_db,
    twisted,
)
from tests.test_requirements import pinned_version

SDK = "azure-communication-callautomation"
RELIED_ON = (
    "autobahn",
    "Twisted",
    "asgiref",
    "daphne",
    "channels",
    "channels-redis",
    "Django",
    "psycopg",
    "websockets",
    SDK,
)


def test_every_check_passes_on_the_installed_libraries() -> None:
    compat.check_all()


@pytest.mark.parametrize("distribution", RELIED_ON)
def test_libraries_whose_internals_are_relied_on_are_pinned_to_what_is_installed(distribution: str) -> None:
    assert pinned_version(distribution) == metadata.version(distribution)


def refused(check, monkeypatch: pytest.MonkeyPatch, owner: object, name: str, replacement: object = None) -> str:
    if replacement is None:
        monkeypatch.delattr(owner, name)
    else:
        monkeypatch.setattr(owner, name, replacement)
    with pytest.raises(IncompatibleLibrary) as refusal:
        check()
    return str(refusal.value)


def test_a_moved_autobahn_internal_is_named_with_its_version(monkeypatch: pytest.MonkeyPatch) -> None:
    defined_in = next(cls for cls in WebSocketServerProtocol.__mro__ if "_onMessage" in vars(cls))
    message = refused(compat.check_all, monkeypatch, defined_in, "_onMessage")
    assert message.startswith(f"autobahn {metadata.version('autobahn')}: ")
    assert "_onMessage" in message


def test_daphnes_stock_frame_path_needs_no_autobahn_internal(monkeypatch: pytest.MonkeyPatch, settings) -> None:
    """WEBSOCKET_SIMPLE_FRAMES=False is the way to keep serving while compat/autobahn.py is updated."""
    settings.WEBSOCKET_SIMPLE_FRAMES = False
    defined_in = next(cls for cls in WebSocketServerProtocol.__mro__ if "_onMessage" in vars(cls))
    monkeypatch.delattr(defined_in, "_onMessage")
    compat.check_all()


def test_an_autobahn_option_that_is_gone_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    options = tuple(name for name in WebSocketServerProtocol.CONFIG_ATTRS_COMMON if name != "logFrames")
    message = refused(autobahn.check, monkeypatch, WebSocketServerProtocol, "CONFIG_ATTRS_COMMON", options)
    assert "logFrames" in message


def test_twisted_without_deferreds_from_futures_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    message = refused(twisted.check, monkeypatch, Deferred, "fromFuture")
    assert message.startswith(f"Twisted {metadata.version('Twisted')}: ")


def test_a_changed_channels_consumer_loop_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    async def dispatch(self, message):  # what a new Channels release might do
        await self.handler(message)

    message = refused(channels.check, monkeypatch, AsyncConsumer, "dispatch", dispatch)
    assert message.startswith(f"channels {metadata.version('channels')}: ")


def test_channels_redis_without_group_channel_names_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    message = refused(channels_redis.check, monkeypatch, RedisPubSubLoopLayer, "_get_group_channel_name")
    assert message.startswith(f"channels-redis {metadata.version('channels-redis')}: ")


def test_a_changed_channels_redis_unsubscription_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    async def unsubscribe(self, channel):  # a release that unsubscribes another way
        await self._pubsub.unsubscribe(channel)

    message = refused(channels_redis.check, monkeypatch, RedisSingleShardConnection, "unsubscribe", unsubscribe)
    assert message.startswith(f"channels-redis {metadata.version('channels-redis')}: ")


def test_a_daphne_that_builds_its_requests_another_way_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    def build_protocol(self, addr):  # a release that no longer names its request class in a global
        return None

    message = refused(daphne.check, monkeypatch, HTTPFactory, "buildProtocol", build_protocol)
    assert message.startswith(f"daphne {metadata.version('daphne')}: ")


def test_a_changed_django_request_handler_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    async def handle(self, scope, receive, send):  # a release that stops ignoring the listener's result
        await self.listen_for_disconnect(receive)

    message = refused(django_asgi.check, monkeypatch, ASGIHandler, "handle", handle)
    assert message.startswith(f"Django {metadata.version('Django')}: ")


def test_asgiref_without_its_threadlocal_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    message = refused(asgiref.check, monkeypatch, SyncToAsync, "threadlocal", object())
    assert message.startswith(f"asgiref {metadata.version('asgiref')}: ")


def test_psycopg_that_cannot_prepare_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    def execute(self, query, params=None):
        return self

    message = refused(django_db.check, monkeypatch, psycopg.Cursor, "execute", execute)
    assert message.startswith(f"psycopg {metadata.version('psycopg')}: ")


def test_an_sdk_without_raw_id_parsing_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    from azure.communication.callautomation._shared import models

    message = refused(azure_sdk.check, monkeypatch, models, "identifier_from_raw_id")
    assert message.startswith(f"{SDK} {metadata.version(SDK)}: ")


def test_raw_ids_become_the_sdk_identifiers() -> None:
    assert azure_sdk.identifier_from_raw_id("4:+15551234567") == PhoneNumberIdentifier("+15551234567")
    user = azure_sdk.identifier_from_raw_id("8:acs:resource_user")
    assert isinstance(user, CommunicationUserIdentifier)


async def test_a_worker_thread_finds_the_event_loop_that_called_it() -> None:
    found = await sync_to_async(asgiref.calling_event_loop)()
    assert found is asyncio.get_running_loop()
    assert await sync_to_async(asgiref.calling_event_loop, thread_sensitive=False)() is asyncio.get_running_loop()
    assert asgiref.calling_event_loop() is None  # not a worker thread


def test_a_django_whose_related_managers_ignore_the_prefetch_cache_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    from django.contrib.auth.models import Permission
    from django.contrib.contenttypes.models import ContentType

    def uncached(self):
        return Permission.objects.filter(content_type=self.instance)

    manager = ContentType.permission_set.related_manager_cls
    message = refused(django_db.check, monkeypatch, manager, "get_queryset", uncached)
    assert message.startswith(f"Django {metadata.version('Django')}: ")
