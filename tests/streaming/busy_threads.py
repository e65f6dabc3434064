"""The sockets' handshake threads kept busy, as a burst of sockets opening together keeps them."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator

from django.conf import settings

from streaming import database


@contextlib.contextmanager
def handshake_threads_busy() -> Iterator[None]:
    """Every handshake thread taken until the block ends."""
    busy = threading.Event()
    holds = [database._handshake_threads.submit(busy.wait) for _ in range(settings.SOCKET_HANDSHAKE_THREADS)]
    try:
        yield
    finally:
        busy.set()
        for hold in holds:
            hold.result()
