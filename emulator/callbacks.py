"""Delivers callback events to the app in order, one queue per call, with a few retries."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from typing import Any

import aiohttp
from yarl import URL

from emulator.tokens import TokenIssuer

log = logging.getLogger(__name__)

RETRY_DELAYS = (0.25, 0.5, 1.0)
DRAIN_TIMEOUT = 5.0


class CallbackSender:
    def __init__(self, session: aiohttp.ClientSession, tokens: TokenIssuer, call_id: str) -> None:
        self.session = session
        self.tokens = tokens
        self.call_id = call_id
        self.deliveries: list[dict[str, Any]] = []
        self._queue: asyncio.Queue[tuple[str, dict[str, Any]] | None] = asyncio.Queue()
        self._task = asyncio.create_task(self._run(), name=f"callbacks-{call_id}")

    def post(self, url: str, event: dict[str, Any]) -> None:
        self._queue.put_nowait((url, event))

    async def close(self) -> None:
        """Send what is queued, then stop."""
        self._queue.put_nowait(None)
        try:
            await asyncio.wait_for(asyncio.shield(self._task), DRAIN_TIMEOUT)
        except TimeoutError:
            self._task.cancel()

    async def _run(self) -> None:
        while (item := await self._queue.get()) is not None:
            url, event = item
            attempts: list[int | None] = []  # the app's HTTP status for each try (None: no answer)
            try:
                status = await self._deliver(url, event, attempts)
            except Exception:  # a bad callback URL must never take the emulator down
                log.exception("call %s: callback %s could not be sent", self.call_id, event["type"])
                status = None
            # answered_at: the wall clock (time.time()) when the last try ended, for a benchmark on this machine.
            delivery = {
                "type": event["type"],
                "url": url,
                "status": status,
                "time": event["time"],
                "answered_at": time.time(),
            }
            self.deliveries.append({**delivery, "attempts": attempts})

    async def _deliver(self, url: str, event: dict[str, Any], attempts: list[int | None]) -> int | None:
        body = json.dumps([event])
        status = None
        for attempt, delay in enumerate((0.0, *RETRY_DELAYS)):
            await asyncio.sleep(delay)
            headers = {"Content-Type": "application/json", "Authorization": f"Bearer {self.tokens.callback_token()}"}
            try:
                # encoded=True keeps the app's query string (often a signed token) byte for byte.
                async with self.session.post(URL(url, encoded=True), data=body, headers=headers) as response:
                    status = response.status
                    attempts.append(status)
                    if 200 <= status < 300:
                        return status
            except (aiohttp.ClientError, TimeoutError) as error:
                attempts.append(None)
                log.warning(
                    "call %s: callback %s attempt %d failed: %s", self.call_id, event["type"], attempt + 1, error
                )
                continue
            log.warning("call %s: callback %s attempt %d got HTTP %s", self.call_id, event["type"], attempt + 1, status)
        log.error("call %s: gave up on callback %s to %s", self.call_id, event["type"], url)
        return status
