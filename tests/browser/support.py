"""Helpers for driving the dashboard in Debian's headless Chromium, used by the browser tests and by
docs/screenshots/make_screenshots.py. Playwright drives /usr/bin/chromium; `playwright install` is never run."""

from __future__ import annotations

import math
import struct
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

from django.db import connections
from django.test import Client, override_settings
from websockets.sync.client import ClientConnection, connect

from calls.models import MediaStream
from calls.tokens import media_socket_url
from tests.servers import AppServer
from tests.streaming import acs_packets as acs

T = TypeVar("T")

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--autoplay-policy=no-user-gesture-required",
]
FRAME_MS = 20
SAMPLE_RATE = 16000


@contextmanager
def chromium() -> Iterator[object]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


def session_cookie(user: object, server: AppServer) -> dict[str, str]:
    """A logged-in session for `user`, as a cookie for the browser."""
    client = Client()
    client.force_login(user)
    return {"name": "sessionid", "value": client.cookies["sessionid"].value, "url": server.base_url}


@contextmanager
def logged_in_page(browser: Any, server: AppServer, user: object, **context_options: Any) -> Iterator[Any]:
    """A page logged in as `user`; a JavaScript error on it fails the test when the page closes."""
    context = browser.new_context(base_url=server.base_url, **context_options)
    context.add_cookies([session_cookie(user, server)])
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    yield page
    context.close()
    assert errors == [], f"JavaScript errors: {errors}"


@contextmanager
def media_socket(server: AppServer, call_id: object) -> Iterator[ClientConnection]:
    """Be ACS: open the call's signed media-socket URL on the running server."""
    with override_settings(PUBLIC_BASE_URL=server.base_url):
        url = media_socket_url(call_id)
    with connect(url, open_timeout=10) as socket:
        yield socket
    _wait_until_the_server_closed_its_streams(call_id)


def _wait_until_the_server_closed_its_streams(call_id: object, timeout: float = 10.0) -> None:
    """The server records a socket's end (its streams, counters, gaps) just after the socket is gone. A
    test that ended first would empty the tables under those writes: a deadlock in its teardown."""
    deadline = time.monotonic() + timeout
    streams = MediaStream.objects.filter(call_id=call_id, disconnected_at__isnull=True)
    while streams.exists() and time.monotonic() < deadline:
        time.sleep(0.05)


def tone(frame: int, frequency: float = 440.0) -> bytes:
    """One 20 ms frame of a sine tone, PCM16 mono at 16 kHz."""
    samples_per_frame = SAMPLE_RATE * FRAME_MS // 1000
    start = frame * samples_per_frame
    return struct.pack(
        f"<{samples_per_frame}h",
        *(
            int(8000 * math.sin(2 * math.pi * frequency * (start + index) / SAMPLE_RATE))
            for index in range(samples_per_frame)
        ),
    )


def send_audio(socket: ClientConnection, participant: str, seconds: float, frequency: float = 440.0) -> None:
    socket.send(acs.audio_metadata())
    for frame in range(int(seconds * 1000 / FRAME_MS)):
        socket.send(acs.audio_data(participant, frame, pcm=tone(frame, frequency)))


def wait_until(condition: Callable[[], object], timeout: float = 10.0, message: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out waiting for {message}")
        time.sleep(0.05)


def off_the_loop(function: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """Run domain code in a thread of its own. Playwright's sync API keeps an event loop running on the
    test's thread, where the after-commit publish (async_to_sync) cannot run."""

    def run() -> T:
        try:
            return function(*args, **kwargs)
        finally:
            connections.close_all()

    with ThreadPoolExecutor(max_workers=1) as executor:
        return executor.submit(run).result()
