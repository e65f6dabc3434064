"""Redis goes away: ingest and storage go on; live viewers degrade and recover from the database."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import websockets

from tests.faults.conftest import PrivatePostgres, PrivateRedis, manage, new_call, stored_texts, wait_until
from tests.servers import AppServer, run_app_server
from tests.streaming import acs_packets as acs

CREATE_VIEWER = """
from django.contrib.auth.models import Permission, User
from django.test import Client
user, _ = User.objects.get_or_create(username="viewer", defaults={"is_staff": True})
user.user_permissions.set(Permission.objects.filter(codename__in=["watch_call", "view_all_calls"]))
client = Client()
client.force_login(user)
print(client.cookies["sessionid"].value)
"""


def viewer_cookie(database: PrivatePostgres) -> str:
    output = manage("shell", "-c", CREATE_VIEWER, database_url=database.url)
    return "sessionid=" + output.strip().splitlines()[-1]


async def open_viewer(server: AppServer, call_id: object, cookie: str, after: int | None = None):
    query = f"?after={after}" if after is not None else ""
    headers = {"Origin": server.base_url, "Cookie": cookie}
    return await websockets.connect(f"{server.ws_base_url}/ws/calls/{call_id}/{query}", additional_headers=headers)


async def next_message(viewer, *types: str) -> dict:
    while True:
        message = json.loads(await asyncio.wait_for(viewer.recv(), timeout=15))
        if message["type"] in types:
            return message


def final(text: str, offset: int) -> str:
    return acs.transcription_data(acs.CALLER, text, offset * 10_000_000)


async def test_ingest_goes_on_without_redis_and_viewers_catch_up_when_it_returns(
    private_postgres: PrivatePostgres, private_redis: PrivateRedis, tmp_path: Path
) -> None:
    call_id, path = new_call(private_postgres)
    cookie = viewer_cookie(private_postgres)
    settings = {
        "DATABASE_URL": private_postgres.url,
        "REDIS_URL": private_redis.url,
        "RECOVERY_WORKER": "False",
        "FINALS_JOURNAL_DIR": str(tmp_path / "journal"),
    }
    with run_app_server(**settings) as server:
        viewer = await open_viewer(server, call_id, cookie)
        snapshot = await next_message(viewer, "snapshot")
        async with websockets.connect(server.ws_base_url + path) as media:
            await media.send(acs.transcription_metadata())
            await media.send(final("Before Redis went away.", 1))
            seen = await next_message(viewer, "segment")
            assert seen["segment"]["text"] == "Before Redis went away."

            private_redis.stop()
            await media.send(final("While Redis was down.", 2))
            await media.send(final("Still down.", 3))
            expected = ["Before Redis went away.", "While Redis was down.", "Still down."]
            assert await asyncio.to_thread(wait_until, lambda: stored_texts(private_postgres, call_id) == expected)
            await asyncio.wait_for(await media.ping(), 10)  # the media socket is unaffected

            private_redis.start()
            # The page reconnects (as its script does on close or silence) and resumes after what it saw.
            await viewer.close()
            viewer = await open_viewer(server, call_id, cookie, after=seen["sequence"])
            resumed = await next_message(viewer, "resume")
            assert [segment["text"] for segment in resumed["segments"]] == expected[1:]

            # Live delivery works again.
            await media.send(final("After Redis came back.", 4))
            assert (await next_message(viewer, "segment"))["segment"]["text"] == "After Redis came back."
        await viewer.close()
    assert snapshot["segments"] == []
    assert stored_texts(private_postgres, call_id) == [*expected, "After Redis came back."]
