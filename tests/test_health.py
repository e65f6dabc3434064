"""Probes and metrics: /healthz, /readyz (database, channel layer) and the token-protected /metrics."""

from __future__ import annotations

import gc
import os
import re
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import websockets
from channels.layers import get_channel_layer
from django.db import connection
from django.test import AsyncClient, Client

from calls.models import Call
from streaming import events, metrics
from tests.conftest import media_path
from tests.servers import AppServer, free_port, run_app_server
from tests.streaming import acs_packets as acs


def get(server: AppServer, path: str, token: str | None = None) -> tuple[int, str]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    request = urllib.request.Request(server.base_url + path, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


def test_healthz_says_the_process_is_up(client: Client) -> None:
    response = client.get("/healthz")
    assert (response.status_code, response.content) == (200, b"ok\n")


@pytest.mark.django_db
def test_readyz_is_ready_when_the_database_and_channel_layer_answer(client: Client) -> None:
    response = client.get("/readyz")
    assert (response.status_code, response.content) == (200, b"ready\n")


@pytest.mark.django_db(transaction=True)
async def test_readyz_probes_the_channel_layer_on_the_group_the_live_feed_contract_names() -> None:
    layer = get_channel_layer()
    listener = await layer.new_channel()
    await layer.group_add(events.READINESS_PROBE_GROUP, listener)
    response = await AsyncClient().get("/readyz")
    assert response.status_code == 200
    assert (await layer.receive(listener))["type"] == "readiness.probe"


def test_readyz_names_what_is_unreachable(django_db_setup: None) -> None:
    unreachable = {
        "DATABASE_URL": f"postgres://postgres@127.0.0.1:{free_port()}/nowhere",
        "REDIS_URL": f"redis://127.0.0.1:{free_port()}/0",
        "RECOVERY_WORKER": "False",
    }
    with run_app_server(**unreachable) as server:
        status, body = get(server, "/readyz")
    assert status == 503
    assert body.splitlines() == ["database unreachable", "channel layer unreachable"]


@pytest.mark.django_db
def test_a_flood_of_readyz_probes_opens_almost_no_database_connections(app_server: AppServer) -> None:
    """/readyz is public: a probe must not cost a PostgreSQL connection of its own."""
    before = _sessions_so_far()
    with ThreadPoolExecutor(max_workers=8) as pool:
        answers = list(pool.map(lambda _: get(app_server, "/readyz")[0], range(200)))
    assert answers == [200] * 200
    time.sleep(1.5)  # PostgreSQL reports a backend's session counts when it exits
    assert _sessions_so_far() - before <= 5


def _sessions_so_far() -> int:
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_stat_clear_snapshot()")
        cursor.execute("SELECT sessions FROM pg_stat_database WHERE datname = current_database()")
        return cursor.fetchone()[0]


def test_metrics_are_off_without_a_token_and_need_it_when_on(client: Client, settings) -> None:
    settings.METRICS_TOKEN = ""
    assert client.get("/metrics").status_code == 404
    settings.METRICS_TOKEN = "s3cret-scrape-token"
    assert client.get("/metrics").status_code == 401
    assert client.get("/metrics", HTTP_AUTHORIZATION="Bearer wrong").status_code == 401
    response = client.get("/metrics", HTTP_AUTHORIZATION="Bearer s3cret-scrape-token")
    assert response.status_code == 200
    assert b"callscribe_packets_total" in response.content


def test_metrics_time_every_garbage_collection(client: Client, settings) -> None:
    """A collection holds the event loop and every thread until it ends: /metrics says how long each took."""
    import config.asgi  # noqa: F401 - daphne's application: it sets the collector up

    settings.METRICS_TOKEN = "s3cret-scrape-token"
    before = _full_collections_timed(client)
    gc.collect()
    metrics.gc_pauses.report()  # what the event loop's lag monitor does once a second
    assert _full_collections_timed(client) >= before + 1


def _full_collections_timed(client: Client) -> int:
    page = client.get("/metrics", HTTP_AUTHORIZATION="Bearer s3cret-scrape-token").content.decode()
    found = re.search(r'^callscribe_gc_pause_seconds_count\{generation="2"\} (\S+)$', page, re.MULTILINE)
    return int(float(found.group(1))) if found else 0


@pytest.mark.django_db(transaction=True)
async def test_metrics_add_up_across_processes(call: Call, tmp_path: Path, django_db_setup: None) -> None:
    shared = {
        "METRICS_TOKEN": "s3cret-scrape-token",
        "PROMETHEUS_MULTIPROC_DIR": str(tmp_path),
        "STREAM_STATS_INTERVAL": "0.2",
        "RECOVERY_WORKER": "False",
    }
    if os.environ.get("TEST_REDIS_URL"):
        shared["REDIS_URL"] = os.environ["TEST_REDIS_URL"]
    with run_app_server(**shared) as first, run_app_server(**shared) as second:
        async with (
            websockets.connect(first.ws_base_url + media_path(call.id)) as one,
            websockets.connect(second.ws_base_url + media_path(call.id)) as other,
        ):
            for media in (one, other):
                await media.send(acs.audio_metadata())
                for frame in range(10):
                    await media.send(acs.audio_data(acs.CALLER, frame))
            await media.ping()
            page = await _wait_for_metric(first, 'callscribe_packets_total{kind="AudioData"} 20.0')
            assert 'callscribe_open_sockets{kind="media"} 2.0' in page
        page = await _wait_for_metric(second, 'callscribe_open_sockets{kind="media"} 0.0')
        assert 'callscribe_packets_total{kind="AudioData"} 20.0' in page


async def _wait_for_metric(server: AppServer, line: str) -> str:
    import asyncio

    page = ""
    for _ in range(50):
        status, page = await asyncio.to_thread(get, server, "/metrics", "s3cret-scrape-token")
        if status == 200 and line in page.splitlines():
            return page
        await asyncio.sleep(0.2)
    raise AssertionError(f"{line!r} not in:\n{page}")
