"""Django's ASGI handler, without the reference cycle it leaves behind each request (Django ticket #36700).

`ASGIHandler.handle` races the view against `listen_for_disconnect`, which raises RequestAborted when
daphne reports the client gone. Every client that closes its connection on receiving the response
(Event Grid, ACS's callbacks, a browser's closed tab) makes it raise. The exception's traceback then
holds `handle`'s frame, whose `tasks` hold the task that holds the exception. That cycle kept the
request, its body, its session, the parsed events and daphne's connection state alive until a
collection found them: over a hundred objects per request, a burst's worth of which made the collections
that paused the process (config/request_cycles.py has the other half of the story).

In Django 5.2 `handle` does the same whether the listener raised or returned: it looks at which task
finished first, cancels the other, and ignores RequestAborted from the listener. So here the
listener returns. `check()` holds both methods to the code this was read from.
"""

from __future__ import annotations

from typing import Any

from django.core.handlers.asgi import ASGIHandler

from compat import require_source

# sha256 of the Django 5.2.19 code this relies on (compat.source_fingerprint).
HANDLE_FINGERPRINT = "98faeb5bef800331"
LISTEN_FINGERPRINT = "c729aa315c734f98"


class CyclelessASGIHandler(ASGIHandler):
    async def listen_for_disconnect(self, receive: Any) -> None:
        message = await receive()
        if message["type"] == "http.disconnect":
            return  # `handle` cancels the view, as it would on RequestAborted
        # Django's own check: the client may send nothing after the request's body.
        raise AssertionError(f"Invalid ASGI message after request body: {message['type']}")


def check() -> None:
    require_source("Django", ASGIHandler.handle, HANDLE_FINGERPRINT)
    require_source("Django", ASGIHandler.listen_for_disconnect, LISTEN_FINGERPRINT)
