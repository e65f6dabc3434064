"""The process's database connection pool, seen from outside: how many requests may use it at once,
what a request that cannot get a connection answers, and the pool's numbers on /metrics.

Every request borrows a connection from psycopg's pool (config/settings.py, DATABASE_POOL_*). At most
DATABASE_REQUEST_SLOTS requests run at once, so however many arrive, the media path and the answer
workers keep the connections they need: a burst of webhooks or a flood of logins waits its turn
instead of stalling every call's transcript behind it. ACS's webhooks have DATABASE_WEBHOOK_SLOTS of
them to themselves, so a flood of logins never keeps a caller from being answered, and they wait
WEBHOOK_SLOT_TIMEOUT for one. IncomingCall may take any of those; callbacks always leave
DATABASE_RING_RESERVE of them to it, so a burst of callbacks never holds up a ring, and once the rings
of a burst are answered its callbacks get the rest. Other requests share the remaining slots and wait
DATABASE_POOL_TIMEOUT. A request that waits that long for its turn or its connection, or finds the
database away, answers 503 with Retry-After instead of 500: ACS and Event Grid deliver a webhook again
after any non-2xx answer (a 500 would too, but it says "our bug" and pages someone), and a person can
reload.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from django.conf import settings
from django.db import OperationalError
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.urls import reverse
from prometheus_client import Counter, Gauge
from psycopg_pool import PoolTimeout

from compat import django_db

logger = logging.getLogger(__name__)

RETRY_AFTER_SECONDS = 5
STATS_INTERVAL = 5.0

busy_responses = Counter(
    "callscribe_busy_responses_total",
    "Requests answered 503 because no database connection could be had, by cause: no request slot, no pooled "
    "connection, the database away.",
    ["cause"],
)
pool_connections = Gauge(
    "callscribe_db_pool_connections", "Connections the pool holds open, lent out or idle.", multiprocess_mode="livesum"
)
pool_idle_connections = Gauge(
    "callscribe_db_pool_idle_connections", "Pooled connections free to lend now.", multiprocess_mode="livesum"
)
pool_waiting = Gauge(
    "callscribe_db_pool_waiting_requests", "Requests waiting for a pooled connection now.", multiprocess_mode="livesum"
)
pool_waits = Counter("callscribe_db_pool_waits_total", "Connection requests that had to wait for a free connection.")
pool_wait_seconds = Counter("callscribe_db_pool_wait_seconds_total", "Time spent waiting for pooled connections.")
pool_timeouts = Counter(
    "callscribe_db_pool_timeouts_total", "Connection requests that got none within DATABASE_POOL_TIMEOUT."
)


class DatabaseBusyMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response
        webhooks = settings.DATABASE_WEBHOOK_SLOTS
        self.webhook_slots = threading.BoundedSemaphore(webhooks)
        # A callback takes one of these before its webhook slot: at most this many callbacks hold or wait
        # for webhook slots, so the ring reserve is never theirs.
        self.callback_share = threading.BoundedSemaphore(webhooks - settings.DATABASE_RING_RESERVE)
        self.other_slots = threading.BoundedSemaphore(settings.DATABASE_REQUEST_SLOTS - webhooks)

    def __call__(self, request: HttpRequest) -> HttpResponse:
        taken = self._take_slots(request.path_info)
        if taken is None:
            busy_responses.labels("request_slots").inc()
            logger.warning("%s %s answered 503: every request slot stayed taken", request.method, request.path)
            return busy_response(request)
        try:
            return self.get_response(request)
        finally:
            for slots in reversed(taken):
                slots.release()

    def _take_slots(self, path: str) -> list[threading.BoundedSemaphore] | None:
        """The semaphores this request now holds, in the order taken; None if one stayed taken until its
        timeout (then nothing is held)."""
        if path == reverse("acs-incoming-call"):
            needed, timeout = [self.webhook_slots], settings.WEBHOOK_SLOT_TIMEOUT
        elif path == reverse("acs-callbacks"):
            needed, timeout = [self.callback_share, self.webhook_slots], settings.WEBHOOK_SLOT_TIMEOUT
        else:
            needed, timeout = [self.other_slots], settings.DATABASE_POOL_TIMEOUT
        deadline = time.monotonic() + timeout
        taken: list[threading.BoundedSemaphore] = []
        for slots in needed:
            if not slots.acquire(timeout=max(0.0, deadline - time.monotonic())):
                for held in reversed(taken):
                    held.release()
                return None
            taken.append(slots)
        return taken

    def process_exception(self, request: HttpRequest, exception: Exception) -> HttpResponse | None:
        if not isinstance(exception, OperationalError):
            return None
        cause = "pool_timeout" if isinstance(exception.__cause__, PoolTimeout) else "database_unavailable"
        busy_responses.labels(cause).inc()
        logger.warning("%s %s answered 503 (%s): %s", request.method, request.path, cause, exception)
        return busy_response(request)


def busy_response(request: HttpRequest) -> HttpResponse:
    message = "The server is busy; try again shortly."
    if request.path.startswith("/api/"):
        response: HttpResponse = JsonResponse({"error": message}, status=503)
    else:
        response = HttpResponse(message + "\n", status=503, content_type="text/plain")
    response["Retry-After"] = str(RETRY_AFTER_SECONDS)
    return response


def copy_pool_stats() -> None:
    """Move what the pool counted since the last copy into the Prometheus metrics."""
    pool = django_db.connection_pool()
    if pool is None:
        return
    stats = pool.pop_stats()
    pool_connections.set(stats.get("pool_size", 0))
    pool_idle_connections.set(stats.get("pool_available", 0))
    pool_waiting.set(stats.get("requests_waiting", 0))
    pool_waits.inc(stats.get("requests_queued", 0))
    pool_wait_seconds.inc(stats.get("requests_wait_ms", 0) / 1000)
    pool_timeouts.inc(stats.get("requests_errors", 0))


def start_stats_thread() -> threading.Thread:
    """Copy the pool's numbers every STATS_INTERVAL, so every process's reach /metrics (with several
    processes, /metrics is served by one of them from the files all of them write)."""
    thread = threading.Thread(target=_copy_stats_forever, name="callscribe-pool-stats", daemon=True)
    thread.start()
    return thread


def _copy_stats_forever() -> None:
    while True:
        time.sleep(STATS_INTERVAL)
        try:
            copy_pool_stats()
        except Exception:  # the metrics must never take the process down
            logger.exception("Copying the database pool's numbers failed")
