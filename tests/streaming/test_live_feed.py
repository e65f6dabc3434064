"""Staff live feeds: a snapshot on connect, then ordered deltas; resume after a sequence; staff only."""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import AsyncIterator

import pytest
from autobahn.exception import Disconnected
from channels.db import database_sync_to_async
from channels.layers import get_channel_layer
from channels.testing import WebsocketCommunicator
from django.conf import settings
from django.contrib.auth.models import User
from django.db import transaction
from django.utils import timezone
from pytest_django.fixtures import Settings as SettingsWrapper

from calls import call_reads, live_events, services
from calls.models import AccessLog, Call
from config.asgi import application
from streaming import events, live_feed
from streaming.database import database_sync_to_async as socket_database
from tests.conftest import abrowser_headers, media_path
from tests.streaming import acs_packets as acs
from tests.streaming.busy_threads import handshake_threads_busy

pytestmark = pytest.mark.django_db(transaction=True)


async def watch(path: str, user: User | None) -> WebsocketCommunicator:
    viewer = WebsocketCommunicator(application, path, headers=await abrowser_headers(user))
    connected, _ = await viewer.connect()
    assert connected
    return viewer


async def stream_transcript(call: Call, frames: list[str]) -> None:
    media = WebsocketCommunicator(application, media_path(call.id))
    assert (await media.connect())[0]
    for frame in frames:
        await media.send_to(text_data=frame)
    await media.disconnect()


def store_final(call: Call, text: str, offset: int) -> None:
    services.store_finals(
        [
            services.Final(
                call_id=call.id,
                stream_id=None,
                subscription_id="s",
                participant_raw_id=acs.CALLER,
                text=text,
                confidence=0.9,
                offset_ticks=offset,
                duration_ticks=1,
                words=[],
                received_at=timezone.now(),
            )
        ]
    )


async def receive_until(viewer: WebsocketCommunicator, event_type: str) -> dict:
    while True:
        event = await viewer.receive_json_from(timeout=5)
        if event["type"] == event_type:
            return event


async def test_a_viewer_gets_a_snapshot_then_intermediate_and_final_text(call: Call, staff_user: User) -> None:
    viewer = await watch(f"/ws/calls/{call.id}/", staff_user)
    snapshot = await viewer.receive_json_from()
    assert (snapshot["type"], snapshot["segments"], snapshot["call"]["caller"]) == ("snapshot", [], "4:+14255550100")
    assert snapshot["call"]["label"] == "+14255550100"

    await stream_transcript(
        call,
        [
            acs.transcription_metadata(),
            acs.transcription_data(acs.CALLER, "my bill", 1000, final=False),
            acs.transcription_data(acs.CALLER, "My bill is wrong.", 1000),
        ],
    )
    partial = await receive_until(viewer, "partial")
    assert (partial["participant"], partial["speaker"], partial["text"]) == (acs.CALLER, "+14255550100", "my bill")
    final = await receive_until(viewer, "segment")
    assert final["segment"]["text"] == "My bill is wrong."
    assert final["segment"]["start_ms"] == 0.1 and final["segment"]["speaker"] == "Customer +14255550100"
    assert final["sequence"] > snapshot["sequence"]
    await viewer.disconnect()


async def test_a_late_joiner_sees_the_whole_call_so_far(call: Call, staff_user: User) -> None:
    await stream_transcript(
        call,
        [acs.transcription_metadata()]
        + [acs.transcription_data(acs.CALLER, f"Sentence {n}.", n * 10_000_000) for n in range(5)],
    )
    viewer = await watch(f"/ws/calls/{call.id}/", staff_user)
    snapshot = await viewer.receive_json_from()
    assert [segment["text"] for segment in snapshot["segments"]] == [f"Sentence {n}." for n in range(5)]
    sequences = [segment["sequence"] for segment in snapshot["segments"]]
    assert sequences == sorted(sequences) and snapshot["sequence"] >= sequences[-1]
    await viewer.disconnect()


async def test_a_page_that_reconnects_resumes_after_the_last_sequence_it_saw(call: Call, staff_user: User) -> None:
    frames = [acs.transcription_metadata()] + [
        acs.transcription_data(acs.CALLER, f"Line {n}.", n * 10_000_000) for n in range(4)
    ]
    await stream_transcript(call, frames)
    first = await watch(f"/ws/calls/{call.id}/", staff_user)
    seen = (await first.receive_json_from())["segments"]
    await first.disconnect()
    last_seen = seen[1]["sequence"]  # the page had only rendered the first two lines

    viewer = await watch(f"/ws/calls/{call.id}/?after={last_seen}", staff_user)
    resumed = await viewer.receive_json_from()
    assert resumed["type"] == "resume"
    assert [segment["text"] for segment in resumed["segments"]] == ["Line 2.", "Line 3."]
    await viewer.send_json_to({"type": "resume", "after": seen[2]["sequence"]})
    assert [segment["text"] for segment in (await viewer.receive_json_from())["segments"]] == ["Line 3."]
    await viewer.disconnect()


async def test_a_viewer_that_missed_a_delta_is_refilled_from_the_database(call: Call, staff_user: User) -> None:
    viewer = await watch(f"/ws/calls/{call.id}/", staff_user)
    await viewer.receive_json_from()
    layer = get_channel_layer()
    group = events.call_group(call.id)
    (viewer_channel,) = layer.groups[group]

    # A channel layer drops messages for a receiver that is full or briefly gone: this one misses "Lost.".
    await layer.group_discard(group, viewer_channel)
    await database_sync_to_async(store_final)(call, "Lost.", 1)
    await layer.group_add(group, viewer_channel)
    await database_sync_to_async(store_final)(call, "Kept.", 2)

    refill = await viewer.receive_json_from()
    assert refill["type"] == "resume"
    assert [segment["text"] for segment in refill["segments"]] == ["Lost.", "Kept."]
    assert await viewer.receive_nothing()  # the "Kept." delta itself is not sent twice
    await viewer.disconnect()


async def test_the_call_list_feed_streams_every_calls_changes(staff_user: User) -> None:
    viewer = await watch("/ws/calls/", staff_user)
    assert (await viewer.receive_json_from())["type"] == "calls"
    new_call = await database_sync_to_async(services.create_call)(caller="4:+14255550199")
    created = await receive_until(viewer, "call")
    assert (created["change"], created["call"]["id"]) == ("created", str(new_call.id))
    await stream_transcript(new_call, [acs.transcription_metadata(), acs.transcription_data(acs.CALLER, "Hi.", 5)])
    assert (await receive_until(viewer, "segment"))["segment"]["text"] == "Hi."
    await viewer.disconnect()


@pytest.mark.parametrize("path", ["/ws/calls/", "/ws/calls/{call_id}/"])
async def test_anyone_but_watching_staff_is_refused(call: Call, outsider: User, path: str) -> None:
    for user in (None, outsider):
        communicator = WebsocketCommunicator(
            application, path.format(call_id=call.id), headers=await abrowser_headers(user)
        )
        connected, _ = await communicator.connect()
        assert not connected


async def test_a_foreign_origin_is_refused(call: Call, staff_user: User) -> None:
    headers = [
        (name, b"https://evil.example" if name == b"origin" else value)
        for name, value in await abrowser_headers(staff_user)
    ]
    communicator = WebsocketCommunicator(application, f"/ws/calls/{call.id}/", headers=headers)
    connected, _ = await communicator.connect()
    assert not connected


@contextlib.asynccontextmanager
async def sockets_database_threads_busy() -> AsyncIterator[None]:
    """Every one of the sockets' database threads taken until the block ends, as in a burst of calls."""
    busy = threading.Event()
    holds = [asyncio.ensure_future(socket_database(busy.wait)()) for _ in range(settings.SOCKET_DATABASE_THREADS)]
    try:
        yield
    finally:
        busy.set()
        await asyncio.gather(*holds)


async def test_call_events_arriving_while_the_database_threads_are_busy_share_one_read_of_the_newest_state(
    call: Call,
) -> None:
    """A hundred calls starting together give each a dozen call and stream events within seconds: the
    events that arrive while their call's view waits for a database thread share that read, and what it
    reads is the call as it is when the read begins, so it shows every one of those events."""
    async with sockets_database_threads_busy():
        reads = [asyncio.ensure_future(live_feed.shared_call_view(str(call.id), n)) for n in (1, 2, 3)]
        await asyncio.sleep(0.05)
        await database_sync_to_async(Call.objects.filter(pk=call.pk).update)(
            state=Call.State.CONNECTED, connected_at=timezone.now()
        )
    views = await asyncio.gather(*reads)

    assert [view["state"] for view in views] == ["Connected"] * 3
    assert views[0] is views[1] is views[2]  # one read for the three events
    await database_sync_to_async(Call.objects.filter(pk=call.pk).update)(state=Call.State.DISCONNECTING)
    later = await live_feed.shared_call_view(str(call.id), 4)
    assert later["state"] == "Disconnecting"  # an event after that read began gets a read of its own


async def test_a_transcript_line_after_a_call_event_never_waits_for_the_pages_description(
    call: Call, staff_user: User
) -> None:
    """The description of the call that follows a call event is read on the sockets' database threads,
    which a burst of calls keeps busy: the events behind it go out meanwhile, and the description
    follows when it has been read."""
    viewer = await watch(f"/ws/calls/{call.id}/", staff_user)
    await viewer.receive_json_from()

    def connect_the_call() -> None:
        with transaction.atomic():
            locked = call_reads.locked_call(call.pk)
            locked.state = Call.State.CONNECTED
            live_events.save_with_sequence(locked, ["state"], "state")

    async with sockets_database_threads_busy():
        await database_sync_to_async(connect_the_call)()
        await database_sync_to_async(store_final)(call, "Hello, I need help.", 1)
        connected, line = await viewer.receive_json_from(timeout=5), await viewer.receive_json_from(timeout=5)
        assert (connected["type"], connected["call"]["state"]) == ("call", "connected")
        assert (line["type"], line["segment"]["text"]) == ("segment", "Hello, I need help.")

    described = await viewer.receive_json_from(timeout=5)
    assert (described["type"], described["view"]["state"]) == ("view", "Connected")
    assert await viewer.receive_nothing()
    await viewer.disconnect()


async def test_a_viewer_is_let_in_while_the_sockets_database_threads_are_busy(call: Call, staff_user: User) -> None:
    """In a burst the sockets' database threads have seconds of work queued, and daphne gives a handshake
    five: whether a viewer may connect is checked on threads of its own; the snapshot follows once read."""
    async with sockets_database_threads_busy():
        viewer = WebsocketCommunicator(application, f"/ws/calls/{call.id}/", headers=await abrowser_headers(staff_user))
        connected, _ = await viewer.connect(timeout=2)
        assert connected
        assert await viewer.receive_nothing(timeout=0.2)  # the snapshot waits for a database thread

    assert (await viewer.receive_json_from(timeout=5))["type"] == "snapshot"
    await viewer.disconnect()


async def test_a_viewer_whose_check_waited_past_the_handshake_limit_is_refused_unchecked(
    call: Call, staff_user: User, settings: SettingsWrapper
) -> None:
    """daphne refuses a socket it has waited WEBSOCKET_CONNECT_TIMEOUT for; a check still queued by then
    is skipped, so the work of sockets already gone never holds up the next ones, and no look is logged."""
    settings.WEBSOCKET_CONNECT_TIMEOUT = 0.2
    with handshake_threads_busy():
        viewer = WebsocketCommunicator(application, f"/ws/calls/{call.id}/", headers=await abrowser_headers(staff_user))
        handshake = asyncio.ensure_future(viewer.connect(timeout=5))
        await asyncio.sleep(0.5)
    connected, _ = await handshake

    assert not connected
    assert not await database_sync_to_async(AccessLog.objects.filter(call=call).exists)()
    await watch(f"/ws/calls/{call.id}/", staff_user)  # on time, the same viewer gets in


async def test_a_send_to_a_viewer_already_leaving_goes_nowhere_without_an_error() -> None:
    """A page closed while its snapshot is read: until daphne sees the connection drop, a send finds the
    socket closing and daphne lets autobahn's Disconnected through, which ended the consumer with an
    error and a traceback in the log. The disconnect that follows ends it now; any other failure still
    surfaces."""
    viewer = live_feed.LiveFeedConsumer()

    async def socket_closing(message: dict) -> None:
        raise Disconnected("Attempt to send on a closed protocol")  # autobahn's sendMessage, socket not open

    viewer.base_send = socket_closing
    await viewer.send_json({"type": "snapshot"})

    async def not_accepted(message: dict) -> None:
        raise ValueError("Socket has not been accepted, so cannot send over it")  # daphne's handle_reply

    viewer.base_send = not_accepted
    with pytest.raises(ValueError):
        await viewer.send_json({"type": "snapshot"})
