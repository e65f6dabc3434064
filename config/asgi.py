"""ASGI entry point: `daphne config.asgi:application`."""

from __future__ import annotations

import asyncio
import gc
import os
from typing import Any

import django

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
# Initialise Django before importing consumers, which import models (what get_asgi_application does).
django.setup(set_prefix=False)

from compat.django_asgi import CyclelessASGIHandler  # noqa: E402

django_asgi_application = CyclelessASGIHandler()

from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from django.conf import settings  # noqa: E402

from calls.recovery import start_worker_thread  # noqa: E402
from compat import autobahn, daphne  # noqa: E402
from config import database_pool  # noqa: E402
from config.request_threads import RequestThreads  # noqa: E402
from streaming import metrics, runtime  # noqa: E402
from streaming.routing import websocket_urlpatterns  # noqa: E402

start_worker_thread()  # only when settings.RECOVERY_WORKER is on
database_pool.start_stats_thread()
daphne.install()
if settings.WEBSOCKET_SIMPLE_FRAMES:
    autobahn.install()

# What is loaded by now lives as long as the process: frozen, the garbage collector's full passes skip
# it, and a larger youngest generation makes them rarer. With the defaults, those passes paused the
# event loop for up to ~40 ms under load (docs/performance.md, "Garbage collection"). Every pause is
# timed on /metrics: in a burst of calls setting up, the youngest generation's take 61-228 ms.
gc.freeze()
gc.set_threshold(100_000, 20, 100)
gc.callbacks.append(metrics.gc_pauses.hook)


class StartRuntime:
    """Starts the media sockets' process-wide work (streaming/runtime.py) before the first connection
    is served: its tasks need the running event loop, which daphne runs only once it serves. The
    tests' communicators call this same application, so they run the same lifecycle (each test has
    its own event loop: the runtime starts again on a new one)."""

    def __init__(self, application: Any) -> None:
        self.application = application
        self.started_on: asyncio.AbstractEventLoop | None = None

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        loop = asyncio.get_running_loop()
        if self.started_on is not loop:
            runtime.start()
            self.started_on = loop
        await self.application(scope, receive, send)


application = StartRuntime(
    ProtocolTypeRouter(
        {
            "http": RequestThreads(django_asgi_application),
            "websocket": URLRouter(websocket_urlpatterns),
        }
    )
)
