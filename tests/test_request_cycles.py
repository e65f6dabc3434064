"""A finished request is freed by reference counting, leaving nothing for the garbage collector, whose
collections pause the event loop and every thread (config/request_cycles.py, compat/django_asgi.py).

Requests go through the process's own ASGI application, from a client that hangs up as soon as it has
the response, as Event Grid, ACS's callbacks and browsers do."""

from __future__ import annotations

import asyncio
import gc
import json
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import pytest
from django.contrib.auth.models import User
from django.http import HttpRequest

from calls.models import Call
from calls.tokens import callback_url
from config.asgi import application
from tests.acs_keys import AcsKeys
from tests.conftest import browser_headers

pytestmark = pytest.mark.django_db(transaction=True)


async def hang_up_on_response(method: str, path: str, headers: list[tuple[bytes, bytes]], body: bytes = b"") -> int:
    """One request; the client disconnects the moment the response's last byte is sent."""
    path, _, query = path.partition("?")
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": query.encode(),
        "root_path": "",
        "headers": headers,
        "client": ("127.0.0.1", 40000),
        "server": ("127.0.0.1", 8000),
    }
    inbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    inbox.put_nowait({"type": "http.request", "body": body})
    status = 0

    async def send(message: dict[str, Any]) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = message["status"]
        elif not message.get("more_body"):
            inbox.put_nowait({"type": "http.disconnect"})

    await application(scope, inbox.get, send)
    return status


@pytest.fixture
def saved_garbage() -> Iterator[list[object]]:
    """What the garbage collector finds unreachable from here on, kept for inspection."""
    gc.collect()
    gc.set_debug(gc.DEBUG_SAVEALL)
    try:
        yield gc.garbage
    finally:
        gc.set_debug(0)
        gc.garbage.clear()


def test_requests_leave_nothing_for_the_garbage_collector(
    staff_user: User, call: Call, acs_keys: AcsKeys, saved_garbage: list[object]
) -> None:
    staff = browser_headers(staff_user)
    acs = [(b"host", b"127.0.0.1"), (b"authorization", f"Bearer {acs_keys.token()}".encode())]
    callback = json.dumps([{"id": "event-1", "type": "Microsoft.Communication.CallConnected", "data": {}}]).encode()

    async def requests() -> list[int]:
        return [
            # a staff user's request: the session, request.user, the messages storage and csp's nonce
            await hang_up_on_response("GET", f"/calls/{call.id}/transcript.txt", staff),
            # an ACS callback, checked against its JWT
            await hang_up_on_response("POST", "/api/callbacks?" + urlsplit(callback_url(call.id)).query, acs, callback),
            await hang_up_on_response("GET", "/healthz", [(b"host", b"127.0.0.1")]),
        ]

    statuses = asyncio.run(requests())
    gc.collect()

    assert statuses == [200, 200, 200]
    left = [type(thing).__name__ for thing in saved_garbage if isinstance(thing, (HttpRequest, BaseException))]
    assert left == []
