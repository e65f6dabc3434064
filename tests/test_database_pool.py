"""A daphne process never holds more database connections than its pool allows, whatever the request
rate; requests never take the connections the media path keeps; and a request that cannot get one in
time is answered 503 with Retry-After, storing nothing.

Each test runs its own daphne with a small pool and an application_name of its own, so its
connections can be counted in pg_stat_activity.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager

import psycopg
import pytest
import requests
from django.db import connection
from websockets.sync.client import connect

from calls import services
from calls.models import Call, CallEvent, TranscriptSegment
from tests.calls.acs_servers import incoming_call_event, wait_for
from tests.conftest import media_path, session_cookie
from tests.servers import AppServer, run_app_server
from tests.servers import test_database_url as database_url
from tests.streaming import acs_packets as acs

pytestmark = pytest.mark.django_db(transaction=True)

POOL_MAX = 10  # with one answer worker and one socket database thread: 6 kept for the media path (with the two
# handshake threads), 1 for the worker, 3 for requests: two for webhooks (one of them kept for rings, IncomingCall),
# one for everything else
INCOMING_CALL_SECRET = "pool-test-secret"


@contextmanager
def small_pool_server(**environment: str) -> Iterator[tuple[AppServer, str]]:
    application_name = f"callscribe-pool-test-{uuid.uuid4().hex[:8]}"
    settings = {
        "DATABASE_URL": f"{database_url()}?application_name={application_name}",
        "DATABASE_POOL_MIN_SIZE": "1",
        "DATABASE_POOL_MAX_SIZE": str(POOL_MAX),
        "INCOMING_CALL_SECRET": INCOMING_CALL_SECRET,
        "ACS_VERIFY_JWT": "False",
        "ANSWER_WORKERS": "1",
        "SOCKET_DATABASE_THREADS": "1",
    }
    with run_app_server(**{**settings, **environment}) as server:
        yield server, application_name


def waiting_on_locks(application_name: str) -> int:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE application_name = %s AND wait_event_type = 'Lock'",
            [application_name],
        )
        return cursor.fetchone()[0]


def server_connections(application_name: str) -> int:
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM pg_stat_activity WHERE application_name = %s", [application_name])
        return cursor.fetchone()[0]


@contextmanager
def peak_connections(application_name: str) -> Iterator[Callable[[], int]]:
    """Samples the server's connections every 20 ms on a connection of its own; yields the peak so far."""
    peak = 0
    stop = threading.Event()

    def sample() -> None:
        nonlocal peak
        with psycopg.connect(database_url(), autocommit=True) as own:
            while not stop.is_set():
                (count,) = own.execute(
                    "SELECT count(*) FROM pg_stat_activity WHERE application_name = %s", [application_name]
                ).fetchone()
                peak = max(peak, count)
                time.sleep(0.02)

    sampler = threading.Thread(target=sample)
    sampler.start()
    try:
        yield lambda: peak
    finally:
        stop.set()
        sampler.join()


def wrong_password_attempt(server: AppServer, number: int) -> int:
    session = requests.Session()
    session.get(f"{server.base_url}/accounts/login/", timeout=30)
    response = session.post(
        f"{server.base_url}/accounts/login/",
        data={
            "username": f"intruder-{number}",
            "password": "not the password",
            "csrfmiddlewaretoken": session.cookies.get("csrftoken", ""),
        },
        timeout=30,
    )
    return response.status_code


def test_a_flood_of_anonymous_logins_leaves_the_connections_bounded_and_the_watchers_served(supervisor) -> None:
    with small_pool_server() as (server, application_name), peak_connections(application_name) as peak:
        with ThreadPoolExecutor(max_workers=30) as senders:
            statuses = list(senders.map(lambda number: wrong_password_attempt(server, number), range(300)))
        watcher = requests.get(f"{server.base_url}/calls/", headers={"Cookie": session_cookie(supervisor)}, timeout=30)

        assert 500 not in statuses
        assert watcher.status_code == 200
        assert peak() <= POOL_MAX
        assert server_connections(application_name) <= POOL_MAX


def ring(server: AppServer, event_id: str) -> requests.Response:
    return requests.post(
        f"{server.base_url}/api/incoming-call?secret={INCOMING_CALL_SECRET}",
        json=[incoming_call_event(event_id)],
        timeout=60,
    )


def connected_call(call_connection_id: str) -> Call:
    call = services.create_call(direction=Call.Direction.INBOUND)
    Call.objects.filter(pk=call.pk).update(call_connection_id=call_connection_id)
    call.call_connection_id = call_connection_id
    return call


def callback(server: AppServer, call: Call, event_id: str) -> requests.Response:
    event = {
        "id": event_id,
        "type": "Microsoft.Communication.ParticipantsUpdated",
        "time": "2026-12-06T09:00:01Z",
        "data": {"callConnectionId": call.call_connection_id, "participants": [], "sequenceNumber": 1},
    }
    return requests.post(f"{server.base_url}/api/callbacks", json=[event], timeout=60)


def test_more_concurrent_webhooks_than_the_pool_holds_all_succeed_within_the_pool() -> None:
    calls = [connected_call(f"connection-{number}") for number in range(10)]

    with small_pool_server() as (server, application_name), peak_connections(application_name) as peak:
        with ThreadPoolExecutor(max_workers=40) as senders:
            rings = senders.map(lambda number: ring(server, f"ring-{number}").status_code, range(40))
            callbacks = senders.map(
                lambda number: callback(server, calls[number % 10], f"callback-{number}").status_code, range(40)
            )
            statuses = [*rings, *callbacks]

        assert statuses == [200] * 80
        assert peak() <= POOL_MAX
    assert CallEvent.objects.filter(event_id__startswith="ring-").count() == 40
    assert CallEvent.objects.filter(event_id__startswith="callback-").count() == 40


def test_a_webhook_that_gets_no_connection_in_time_answers_503_and_stores_nothing() -> None:
    call = connected_call("held-call")

    with (
        small_pool_server(WEBHOOK_SLOT_TIMEOUT="0.5") as (server, _),
        psycopg.connect(database_url()) as holder,
    ):
        # Hold the call's row: the callbacks' one request slot goes to a callback waiting for it.
        holder.execute("SELECT 1 FROM calls_call WHERE id = %s FOR UPDATE", [call.pk])
        with ThreadPoolExecutor(max_workers=2) as senders:
            held = [senders.submit(callback, server, call, "held-0")]
            time.sleep(1.0)

            busy = callback(server, call, "callback-while-busy")
            assert busy.status_code == 503
            assert int(busy.headers["Retry-After"]) > 0
            assert "busy" in busy.json()["error"]
            # Rings have slots of their own: a burst of callbacks never keeps a caller waiting.
            assert ring(server, "ring-while-callbacks-wait").status_code == 200

            holder.rollback()  # the held callbacks go through
            assert [future.result().status_code for future in held] == [200]

        assert not CallEvent.objects.filter(event_id="callback-while-busy").exists()
        assert callback(server, call, "callback-while-busy").status_code == 200  # ACS delivers it again
    assert CallEvent.objects.filter(event_id="callback-while-busy").count() == 1
    assert Call.objects.filter(server_call_id="server-ring-while-callbacks-wait").count() == 1


def test_callbacks_use_the_webhook_slots_rings_do_not_need_but_never_the_rings_reserve() -> None:
    """With 12 connections, requests get 5 slots: 3 for webhooks, of which callbacks may hold 2 (the
    third is kept for rings), and 2 for everything else."""
    call = connected_call("held-call")

    with (
        small_pool_server(DATABASE_POOL_MAX_SIZE="12", WEBHOOK_SLOT_TIMEOUT="0.5") as (server, _),
        psycopg.connect(database_url()) as holder,
        ThreadPoolExecutor(max_workers=2) as senders,
    ):
        holder.execute("SELECT 1 FROM calls_call WHERE id = %s FOR UPDATE", [call.pk])
        held = [senders.submit(callback, server, call, f"held-{number}") for number in range(2)]
        time.sleep(1.0)  # both callbacks hold a webhook slot, waiting for the row; neither has timed out

        busy = callback(server, call, "third-callback")
        assert busy.status_code == 503
        assert ring(server, "ring-while-two-callbacks-wait").status_code == 200

        holder.rollback()
        assert [future.result().status_code for future in held] == [200, 200]
    assert CallEvent.objects.filter(event_id__startswith="held-").count() == 2
    assert not CallEvent.objects.filter(event_id="third-callback").exists()


def test_a_flood_of_logins_waiting_for_the_database_never_keeps_a_caller_from_being_answered() -> None:
    with (
        small_pool_server(DATABASE_POOL_TIMEOUT="0.5") as (server, application_name),
        psycopg.connect(database_url()) as holder,
        ThreadPoolExecutor(max_workers=10) as senders,
    ):
        # A login reads its user: while that table is locked, the login holding the pages' one slot waits.
        holder.execute("LOCK TABLE auth_user IN ACCESS EXCLUSIVE MODE")
        logins = [senders.submit(wrong_password_attempt, server, number) for number in range(10)]
        # On a busy machine the logins may take a while to arrive: the ring comes once one holds the slot.
        wait_for(lambda: waiting_on_locks(application_name), timeout=10, what="a login waiting on the lock")
        time.sleep(1.0)  # and the others have waited out DATABASE_POOL_TIMEOUT for that slot

        rang = ring(server, "ring-during-login-flood")
        holder.rollback()

        assert rang.status_code == 200
        assert 503 in {login.result() for login in logins}  # the pages' own slot was taken
    assert Call.objects.filter(server_call_id="server-ring-during-login-flood").count() == 1


def test_requests_waiting_for_the_database_never_take_the_connections_a_live_call_needs() -> None:
    held_call = connected_call("held-call")
    live_call = services.create_call(direction=Call.Direction.INBOUND)

    with (
        small_pool_server() as (server, _),
        psycopg.connect(database_url()) as holder,
        ThreadPoolExecutor(max_workers=10) as senders,
    ):
        holder.execute("SELECT 1 FROM calls_call WHERE id = %s FOR UPDATE", [held_call.pk])
        held = [senders.submit(callback, server, held_call, f"held-{number}") for number in range(10)]
        time.sleep(1.0)  # every request slot is taken by a callback waiting for the locked row

        with connect(server.ws_base_url + media_path(live_call.pk)) as media:
            media.send(acs.transcription_metadata())
            media.send(acs.transcription_data(acs.CALLER, "Still transcribed.", 10_000_000))
            stored = wait_for(
                lambda: TranscriptSegment.objects.filter(call=live_call).exists(), timeout=3, what="the final stored"
            )
        holder.rollback()

        assert stored
        assert {future.result().status_code for future in held} <= {200, 503}
