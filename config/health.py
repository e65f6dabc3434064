"""Probes for load balancers and orchestrators, and the Prometheus metrics page.

/healthz: the process answers. /readyz: it can do its job (database and channel layer reachable,
not shutting down); a load balancer stops sending it new sockets on 503. /metrics: Prometheus
text format, only with `Authorization: Bearer <METRICS_TOKEN>`, and 404 while no token is set.
"""

from __future__ import annotations

import asyncio
import hmac
import time

from asgiref.sync import sync_to_async
from channels.layers import get_channel_layer
from django.conf import settings
from django.db import connection
from django.http import Http404, HttpRequest, HttpResponse
from django.views.decorators.cache import never_cache

from config import database_pool
from streaming import events, metrics, runtime

CHECK_TIMEOUT = 2.0


@never_cache
def healthz(request: HttpRequest) -> HttpResponse:
    return HttpResponse("ok\n", content_type="text/plain")


@never_cache
async def readyz(request: HttpRequest) -> HttpResponse:
    problems = ["shutting down"] if runtime.shutting_down() else []
    problems += await _dependency_problems()
    if problems:
        return HttpResponse("\n".join(problems) + "\n", status=503, content_type="text/plain")
    return HttpResponse("ready\n", content_type="text/plain")


# /readyz is public: every probe used to open a PostgreSQL connection of its own, so a flood of
# probes could use up the server's connections. Now one check runs at a time, and its answer
# serves every probe for READINESS_CACHE_SECONDS.
READINESS_CACHE_SECONDS = 1.0
_last_answer: tuple[float, list[str]] = (float("-inf"), [])
_running_check: asyncio.Future[list[str]] | None = None


async def _dependency_problems() -> list[str]:
    global _running_check
    checked_at, problems = _last_answer
    if time.monotonic() - checked_at < READINESS_CACHE_SECONDS:
        return problems
    if _running_check is None or _running_check.done() or _running_check.get_loop() is not asyncio.get_running_loop():
        _running_check = asyncio.ensure_future(_check_dependencies())
    return await asyncio.shield(_running_check)


async def _check_dependencies() -> list[str]:
    global _last_answer
    problems = []
    if not await _database_reachable():
        problems.append("database unreachable")
    if not await _channel_layer_reachable():
        problems.append("channel layer unreachable")
    _last_answer = (time.monotonic(), problems)
    return problems


def _select_one() -> None:
    # Closed, not kept: probes run on executor threads, and a connection kept per thread is one
    # more held connection per thread.
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
    finally:
        connection.close()


async def _database_reachable() -> bool:
    # Its own thread: the shared database thread may be busy storing transcripts.
    try:
        await asyncio.wait_for(sync_to_async(_select_one, thread_sensitive=False)(), CHECK_TIMEOUT)
    except Exception:  # any failure to answer means not ready
        return False
    return True


async def _channel_layer_reachable() -> bool:
    layer = get_channel_layer()
    if layer is None:
        return True
    try:  # a send to an empty group touches Redis and delivers nothing
        probe = layer.group_send(events.READINESS_PROBE_GROUP, {"type": "readiness.probe"})
        await asyncio.wait_for(probe, CHECK_TIMEOUT)
    except Exception:
        return False
    return True


@never_cache
def metrics_page(request: HttpRequest) -> HttpResponse:
    token = settings.METRICS_TOKEN
    if not token:
        raise Http404("metrics are off")
    offered = request.headers.get("Authorization", "")
    if not hmac.compare_digest(offered.encode(), f"Bearer {token}".encode()):
        return HttpResponse("metrics need the bearer token\n", status=401, content_type="text/plain")
    database_pool.copy_pool_stats()
    body, content_type = metrics.exposition()
    return HttpResponse(body, content_type=content_type)
