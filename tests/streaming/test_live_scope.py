"""The live sockets show each viewer only the calls in their scope (calls/permissions.py): a call page
socket out of scope is refused as one for a call that does not exist; the call list sends only the
events of calls in scope, and a call the moment an agent of the viewer's joins it."""

from __future__ import annotations

import pytest
from channels.db import database_sync_to_async
from channels.testing import WebsocketCommunicator
from django.contrib.auth.models import User
from django.test import override_settings

from calls import participants
from calls.models import AccessLog, Call
from config.asgi import application
from tests.calls.conftest import new_call
from tests.conftest import KIM, SAM, SUPPORT_LINE, ContactCentre, abrowser_headers, media_path
from tests.streaming import acs_packets as acs

pytestmark = pytest.mark.django_db(transaction=True)

CUSTOMER = "4:+14255550101"


async def connect(path: str, user: User, client: str = "10.1.2.3") -> WebsocketCommunicator:
    viewer = WebsocketCommunicator(application, path, headers=await abrowser_headers(user))
    viewer.scope["client"] = (client, 50000)  # as daphne gives it
    return viewer


async def watch(path: str, user: User) -> WebsocketCommunicator:
    viewer = await connect(path, user)
    assert (await viewer.connect())[0]
    return viewer


async def speak(call: Call, *lines: tuple[str, str, int]) -> None:
    """A transcription socket that sends these finals (speaker, text, offset in ms), then closes."""
    media = WebsocketCommunicator(application, media_path(call.id))
    assert (await media.connect())[0]
    await media.send_to(text_data=acs.transcription_metadata())
    for speaker, text, at_ms in lines:
        await media.send_to(text_data=acs.transcription_data(speaker, text, at_ms * 10_000))
    await media.disconnect()


async def receive_until(viewer: WebsocketCommunicator, wanted: str, call: Call | None = None) -> dict:
    while True:
        event = await viewer.receive_json_from(timeout=5)
        if event["type"] == wanted and (call is None or event.get("call_id") == str(call.id)):
            return event


@database_sync_to_async
def call_with(caller: str, *agents: str, callee: str = acs.AGENT) -> Call:
    call = new_call(caller, callee=callee)
    for raw_id in agents:
        participants.ensure_participant(call_id=call.id, raw_id=raw_id)
    return call


async def test_a_call_page_socket_out_of_scope_is_refused_as_for_a_missing_call(centre: ContactCentre) -> None:
    sams_call = await call_with(CUSTOMER, SAM)

    refused = await connect(f"/ws/calls/{sams_call.id}/", centre.bill)
    assert not (await refused.connect())[0]
    missing = await connect("/ws/calls/00000000-0000-0000-0000-000000000000/", centre.bill)
    assert not (await missing.connect())[0]

    for user in (centre.sam.user, centre.sue, centre.quinn):
        viewer = await watch(f"/ws/calls/{sams_call.id}/", user)
        assert (await viewer.receive_json_from())["type"] == "snapshot"
        await viewer.disconnect()
    logged = AccessLog.objects.filter(call=sams_call, action="live").values_list("user__username", "ip")
    assert sorted([entry async for entry in logged]) == [(name, "10.1.2.3") for name in ("quinn", "sam", "sue")]


async def test_the_call_list_sends_each_viewer_only_the_calls_in_their_scope(centre: ContactCentre) -> None:
    sams_call, kims_call = await call_with(CUSTOMER, SAM), await call_with("4:+14255550102", KIM)
    lists = {name: await watch("/ws/calls/", user) for name, user in [("bill", centre.bill), ("quinn", centre.quinn)]}
    snapshots = {name: await viewer.receive_json_from() for name, viewer in lists.items()}
    assert [call["id"] for call in snapshots["bill"]["calls"]] == [str(kims_call.id)]
    assert {call["id"] for call in snapshots["quinn"]["calls"]} == {str(sams_call.id), str(kims_call.id)}

    await speak(sams_call, (CUSTOMER, "The aardvark is loose.", 100))
    await speak(kims_call, (KIM, "Billing, this is Kim.", 100))

    seen = await receive_until(lists["quinn"], "segment", sams_call)
    assert seen["segment"]["text"] == "The aardvark is loose."
    bills = await receive_until(lists["bill"], "segment")
    assert (bills["call_id"], bills["segment"]["text"]) == (str(kims_call.id), "Billing, this is Kim.")
    while not await lists["bill"].receive_nothing(timeout=0.3):
        assert (await lists["bill"].receive_json_from())["call_id"] == str(kims_call.id)
    for viewer in lists.values():
        await viewer.disconnect()


async def test_a_live_call_enters_a_supervisors_list_when_their_agent_joins_it(centre: ContactCentre) -> None:
    bill, sue = await watch("/ws/calls/", centre.bill), await watch("/ws/calls/", centre.sue)
    assert (await bill.receive_json_from())["calls"] == (await sue.receive_json_from())["calls"] == []
    call = await call_with(CUSTOMER)

    await speak(call, (CUSTOMER, "Is anybody there?", 100))
    assert await bill.receive_nothing(timeout=0.5)  # not his call yet: not even that it exists

    await speak(call, (KIM, "Kim from billing here.", 2000))  # Kim joins mid-call
    joined = await receive_until(bill, "call", call)
    assert (joined["change"], joined["call"]["agent_ids"]) == ("participants", [centre.kim.pk])

    await speak(call, (CUSTOMER, "I was charged twice.", 4000))
    lines = [(await receive_until(bill, "segment", call))["segment"]]
    while lines[-1]["text"] != "I was charged twice.":  # Kim's own line may come just before or after she joined
        lines.append((await receive_until(bill, "segment", call))["segment"])
    assert "Is anybody there?" not in [line["text"] for line in lines]
    assert lines[-1]["speaker"] == "Customer +14255550101"
    assert await sue.receive_nothing(timeout=0.5)  # another team's call, throughout
    await bill.disconnect()
    await sue.disconnect()


@override_settings(LIVE_SESSION_CHECK_SECONDS=0.1)
async def test_a_supervisor_given_a_team_gets_its_live_calls_at_the_next_check(centre: ContactCentre) -> None:
    line_call = await call_with(CUSTOMER, callee=SUPPORT_LINE)  # to the support line: Support's, no agent yet
    bill = await watch("/ws/calls/", centre.bill)
    assert (await bill.receive_json_from())["calls"] == []

    await centre.support.supervisors.aadd(centre.bill)

    fresh = await receive_until(bill, "calls")
    assert [call["id"] for call in fresh["calls"]] == [str(line_call.id)]
    await speak(line_call, (CUSTOMER, "Hello, support?", 100))
    assert (await receive_until(bill, "segment", line_call))["segment"]["text"] == "Hello, support?"
    await bill.disconnect()


@override_settings(LIVE_SESSION_CHECK_SECONDS=0.1)
async def test_a_call_page_closes_when_its_call_leaves_the_viewers_scope(centre: ContactCentre) -> None:
    sams_call = await call_with(CUSTOMER, SAM)
    sue = await watch(f"/ws/calls/{sams_call.id}/", centre.sue)
    assert (await sue.receive_json_from())["type"] == "snapshot"

    await centre.support.supervisors.aremove(centre.sue)

    closed = await sue.receive_output(timeout=3)
    assert (closed["type"], closed["code"]) == ("websocket.close", 4404)
    await sue.disconnect()
