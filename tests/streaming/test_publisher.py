"""Publishing live events: in order, many per Redis round trip, never waiting for Redis."""

from __future__ import annotations

import asyncio
import os
import threading
import time
import uuid

import redis
from asgiref.sync import sync_to_async
from channels.layers import channel_layers, get_channel_layer
from prometheus_client import REGISTRY

from calls import live_events
from compat import channels_redis as compat_channels_redis
from streaming import events, publisher
from tests.streaming.conftest import use_layer

CALLS = [uuid.uuid4(), uuid.uuid4()]


def partial(call_id: uuid.UUID, number: int) -> live_events.PartialText:
    return live_events.partial_event(call_id, "4:+14255550100", f"word {number}", number)


def unsent() -> float:
    return REGISTRY.get_sample_value("callscribe_live_events_unsent_total") or 0.0


async def viewer_of(*call_ids: uuid.UUID) -> str:
    layer = get_channel_layer()
    channel = await layer.new_channel()
    for call_id in call_ids:
        await layer.group_add(events.call_group(call_id), channel)
    return channel


async def texts_received(channel: str, count: int) -> list[tuple[str, str]]:
    layer = get_channel_layer()

    async def receive_all() -> list[tuple[str, str]]:
        messages = [await layer.receive(channel) for _ in range(count)]
        return [(message["event"]["call_id"], message["event"]["text"]) for message in messages]

    return await asyncio.wait_for(receive_all(), 10)


async def test_events_published_on_a_busy_loop_arrive_in_order_within_a_few_of_its_iterations(redis_layer) -> None:
    channel = await viewer_of(*CALLS)
    iterations = 0

    async def rest_of_the_server() -> None:  # 5 ms of other work per loop iteration
        nonlocal iterations
        while True:
            iterations += 1
            time.sleep(0.005)
            await asyncio.sleep(0)

    busy = asyncio.ensure_future(rest_of_the_server())
    await asyncio.sleep(0)
    for number in range(200):
        events.publish(partial(CALLS[number % 2], number))
    received = await texts_received(channel, 200)
    busy.cancel()

    assert received == [(str(CALLS[number % 2]), f"word {number}") for number in range(200)]
    # One channels_redis group_send per event took 742 iterations for these 200.
    assert iterations < 50


async def test_when_too_many_wait_the_oldest_are_dropped_and_counted(monkeypatch) -> None:
    channel = await viewer_of(CALLS[0])
    monkeypatch.setattr(publisher, "MAX_WAITING_MESSAGES", 5)
    unsent_before = unsent()

    for number in range(8):  # without yielding: the sender has not run yet
        events.publish(partial(CALLS[0], number))

    assert [text for _, text in await texts_received(channel, 5)] == [f"word {number}" for number in range(3, 8)]
    assert unsent() - unsent_before == 3


async def test_with_redis_away_publishing_neither_raises_nor_waits_and_the_loss_is_counted(settings) -> None:
    settings.REDIS_URL = "redis://127.0.0.1:9/0"  # the discard port: nothing listens
    use_layer(settings, compat_channels_redis.PUBSUB_BACKEND, {"hosts": [settings.REDIS_URL]})
    unsent_before = unsent()
    try:
        events.publish(partial(CALLS[0], 1))
        events.publish(partial(CALLS[0], 2))
        for _ in range(500):  # the sender gives up on Redis within its 2 s timeout
            if unsent() - unsent_before == 2:
                break
            await asyncio.sleep(0.01)
    finally:
        channel_layers.backends.clear()

    assert unsent() - unsent_before == 2


async def test_an_event_committed_in_a_thread_reaches_redis_while_the_event_loop_is_busy(redis_layer) -> None:
    """The finals writer, a request or a socket's database thread sends its events itself: a loop busy
    setting up a hundred calls does not hold them (docs/performance.md)."""
    layer = get_channel_layer()
    events.publish(partial(CALLS[0], 0))  # on the loop, as the server's first event is: names learned
    redis_channel = compat_channels_redis.group_channel_name(layer, events.call_group(CALLS[0]))
    listener = redis.Redis.from_url(os.environ["TEST_REDIS_URL"]).pubsub(ignore_subscribe_messages=True)
    listener.subscribe(redis_channel)
    started, loop_blocked, done = threading.Event(), threading.Event(), threading.Event()
    heard: list[str] = []

    def commit_and_listen() -> None:  # a database thread of the server's, as on commit
        started.set()
        loop_blocked.wait(5)
        events.publish(partial(CALLS[0], 1))
        deadline = time.monotonic() + 2
        while not heard and time.monotonic() < deadline:
            message = listener.get_message(timeout=0.2)
            if message:
                heard.append(layer.deserialize(message["data"])["event"]["text"])
        done.set()

    work = asyncio.ensure_future(sync_to_async(commit_and_listen, thread_sensitive=False)())
    while not started.is_set():
        await asyncio.sleep(0.001)
    loop_blocked.set()
    done.wait(5)  # the event loop runs nothing meanwhile, as a busy one would not in time
    await work
    listener.close()

    assert heard == ["word 1"]


async def test_from_a_thread_with_redis_away_nothing_waits_twice_and_the_loss_is_counted(settings) -> None:
    settings.REDIS_URL = "redis://127.0.0.1:9/0"  # the discard port: nothing listens
    use_layer(settings, compat_channels_redis.PUBSUB_BACKEND, {"hosts": [settings.REDIS_URL]})
    try:
        lost_on_the_loop = unsent() + 1
        events.publish(partial(CALLS[0], 0))  # on the loop: names learned (and this one lost, counted)
        for _ in range(300):
            if unsent() == lost_on_the_loop:
                break
            await asyncio.sleep(0.01)
        unsent_before = unsent()

        def from_a_thread() -> float:
            started = time.monotonic()
            for number in range(1, 4):
                events.publish(partial(CALLS[0], number))
            return time.monotonic() - started

        took = await sync_to_async(from_a_thread, thread_sensitive=False)()
        for _ in range(500):  # handed to the loop, whose sender gives up within its 2 s timeout
            if unsent() - unsent_before == 3:
                break
            await asyncio.sleep(0.01)
    finally:
        channel_layers.backends.clear()

    assert unsent() - unsent_before == 3
    # At most one try waits, and only up to THREAD_REDIS_TIMEOUT_SECONDS: the next go to the loop at once.
    assert took < publisher.THREAD_REDIS_TIMEOUT_SECONDS + 0.25
