"""ASGI entry point: `daphne config.asgi:application`."""

from __future__ import annotations

import gc
import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
# Initialise Django before importing consumers, which import models.
django_asgi_application = get_asgi_application()

from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from django.conf import settings  # noqa: E402

from calls.recovery import start_worker_thread  # noqa: E402
from compat import autobahn  # noqa: E402
from config import database_pool  # noqa: E402
from streaming.routing import websocket_urlpatterns  # noqa: E402

start_worker_thread()  # only when settings.RECOVERY_WORKER is on
database_pool.start_stats_thread()
if settings.WEBSOCKET_SIMPLE_FRAMES:
    autobahn.install()

# What is loaded by now lives as long as the process: frozen, the garbage collector's full passes skip
# it, and a larger youngest generation makes them rarer. With the defaults, those passes paused the
# event loop for up to ~40 ms under load (docs/performance.md, "Garbage collection").
gc.freeze()
gc.set_threshold(100_000, 20, 100)

application = ProtocolTypeRouter(
    {
        "http": django_asgi_application,
        "websocket": URLRouter(websocket_urlpatterns),
    }
)
