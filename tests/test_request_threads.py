"""Requests run on threads kept from one request to the next (config/request_threads.py): a stream of
requests starts no thread of its own, where asgiref alone started two for each (one to run it, one to
join that one), each start holding up the event loop."""

from __future__ import annotations

import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from tests.servers import run_app_server

pytestmark = pytest.mark.django_db(transaction=True)


def threads_seen_while(pid: int, work) -> set[str]:
    """Every thread id of the process seen, sampling every millisecond, while `work` runs."""
    seen: set[str] = set()
    done = threading.Event()

    def sample() -> None:
        while not done.is_set():
            seen.update(os.listdir(f"/proc/{pid}/task"))
            time.sleep(0.001)

    sampler = threading.Thread(target=sample)
    sampler.start()
    try:
        work()
    finally:
        done.set()
        sampler.join()
    return seen


def test_a_stream_of_requests_reuses_the_same_few_threads() -> None:
    with run_app_server() as server:
        health = f"{server.base_url}/healthz"

        def burst() -> None:
            with ThreadPoolExecutor(max_workers=4) as senders:
                assert set(senders.map(lambda _: requests.get(health, timeout=10).status_code, range(8))) == {200}

        burst()  # the first requests start the threads the next ones borrow
        before = set(os.listdir(f"/proc/{server.process.pid}/task"))

        def many() -> None:
            for _ in range(10):
                burst()

        seen = threads_seen_while(server.process.pid, many)

    # A request can arrive before the one its client just got an answer to has given its thread back, so
    # a few more may start; asgiref alone starts two per request (123 were counted here on the code before).
    assert len(seen - before) <= 8, f"{len(seen - before)} threads started for 80 requests"
