"""A staff live feed lasts only as long as the login that opened it."""

from __future__ import annotations

import pytest
from channels.db import database_sync_to_async
from channels.testing import WebsocketCommunicator
from django.contrib.auth.models import Permission, User
from django.contrib.sessions.models import Session
from django.test import Client, override_settings

from calls.models import Call
from config.asgi import application

pytestmark = pytest.mark.django_db(transaction=True)


def _login(user: User) -> list[tuple[bytes, bytes]]:
    client = Client()
    client.force_login(user)
    cookie = f"sessionid={client.cookies['sessionid'].value}"
    return [(b"origin", b"http://127.0.0.1"), (b"host", b"127.0.0.1"), (b"cookie", cookie.encode())]


async def watch(call: Call, user: User) -> WebsocketCommunicator:
    viewer = WebsocketCommunicator(
        application, f"/ws/calls/{call.id}/", headers=await database_sync_to_async(_login)(user)
    )
    assert (await viewer.connect())[0]
    assert (await viewer.receive_json_from())["type"] == "snapshot"
    return viewer


async def closed_with(viewer: WebsocketCommunicator) -> int:
    message = await viewer.receive_output(timeout=3)
    assert message["type"] == "websocket.close"
    await viewer.disconnect()
    return message["code"]


@override_settings(LIVE_SESSION_CHECK_SECONDS=0.1)
async def test_the_feed_stays_open_while_the_session_is_valid(call: Call, staff_user: User) -> None:
    viewer = await watch(call, staff_user)
    assert await viewer.receive_nothing(timeout=0.5)
    await viewer.disconnect()


@override_settings(LIVE_SESSION_CHECK_SECONDS=0.1)
async def test_logging_out_closes_the_feed(call: Call, staff_user: User) -> None:
    viewer = await watch(call, staff_user)
    await database_sync_to_async(lambda: Session.objects.all().delete())()
    assert await closed_with(viewer) == 4401


@override_settings(LIVE_SESSION_CHECK_SECONDS=0.1)
async def test_losing_the_watch_permission_closes_the_feed(call: Call, supervisor: User) -> None:
    viewer = await watch(call, supervisor)

    def revoke() -> None:
        supervisor.user_permissions.remove(Permission.objects.get(codename="watch_call"))

    await database_sync_to_async(revoke)()
    assert await closed_with(viewer) == 4401


@override_settings(LIVE_SESSION_CHECK_SECONDS=0.1)
async def test_a_password_change_closes_the_feed(call: Call, staff_user: User) -> None:
    viewer = await watch(call, staff_user)

    def change_password() -> None:
        staff_user.set_password("a new long passphrase")
        staff_user.save()

    await database_sync_to_async(change_password)()
    assert await closed_with(viewer) == 4401
