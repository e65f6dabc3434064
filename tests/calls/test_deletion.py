"""Deleting one call (issue #15): a typed confirmation and a reason, the purge's own path (files too),
a receipt; refused for a held or live call; the admin's delete goes the same way; a deleted call's
late callbacks store nothing."""

from __future__ import annotations

import pytest
from channels.db import database_sync_to_async
from channels.testing import WebsocketCommunicator
from django.contrib.auth.models import Permission, User
from django.test import Client

from calls import deletion, holds
from calls.audio_files import audio_directory
from calls.models import AccessLog, Call, CallEvent, DeletionReceipt, LegalHold, Participant, TranscriptSegment
from config.asgi import application
from emulator.tokens import TokenIssuer
from tests.calls.acs_servers import signed_callback_headers
from tests.calls.conftest import logged_in, new_call
from tests.calls.test_retention import INTACT, audio_dir, ended_call, everything_of  # noqa: F401 - fixture
from tests.calls.test_webhooks import callback_path, cloud_event, participants, post_events
from tests.conftest import media_path

pytestmark = pytest.mark.django_db


@pytest.fixture
def records_officer(db: None) -> User:
    """Frank keeps the records: he may watch every call and delete them."""
    user = User.objects.create_user("frank", password="x", is_staff=True)
    user.user_permissions.set(
        Permission.objects.filter(
            content_type__app_label="calls", codename__in=["watch_call", "delete_calls", "view_all_calls"]
        )
    )
    return user


def delete_page(call: Call) -> str:
    return f"/calls/{call.id}/delete"


def test_only_staff_with_the_permission_may_delete(staff_user: User) -> None:
    call = ended_call(1)
    client = logged_in(staff_user)
    assert "data-delete-call" not in client.get(call.get_absolute_url()).content.decode()
    assert client.get(delete_page(call)).status_code == 403
    assert client.post(delete_page(call), {"confirmation": str(call.id), "reason": "asked"}).status_code == 403
    assert everything_of(call) == INTACT


def test_a_wrong_confirmation_deletes_nothing(records_officer: User) -> None:
    call = ended_call(1)
    response = logged_in(records_officer).post(delete_page(call), {"confirmation": "yes", "reason": "asked"})
    assert response.status_code == 200
    assert "not this call&#x27;s id" in response.content.decode()
    assert everything_of(call) == INTACT
    response = logged_in(records_officer).post(delete_page(call), {"confirmation": str(call.id), "reason": " "})
    assert everything_of(call) == INTACT


def test_deleting_a_call_leaves_a_tombstone_and_a_receipt(records_officer: User) -> None:
    call = ended_call(1)
    AccessLog.objects.create(user=records_officer, call=call, action="view")
    client = logged_in(records_officer)
    assert "data-delete-call" in client.get(call.get_absolute_url()).content.decode()

    response = client.post(delete_page(call), {"confirmation": str(call.id), "reason": "Customer's request, ticket 42"})

    assert response.status_code == 302 and response.url == call.get_absolute_url()
    assert everything_of(call) == {"segments": 0, "participants": 0, "events": 0, "files": 0}
    assert not audio_directory(call.id).exists()
    receipt = DeletionReceipt.objects.get()
    assert (receipt.kind, receipt.user, receipt.call_ids) == ("deletion", records_officer, [str(call.id)])
    assert receipt.rule == "Deleted by frank: Customer's request, ticket 42"
    assert (receipt.segments, receipt.participants, receipt.events, receipt.audio_files) == (2, 2, 1, 3)
    call.refresh_from_db()
    assert (call.caller, call.callee, call.direction) == ("", "", "inbound")
    assert AccessLog.objects.filter(call=call).count() >= 1  # who saw it stays on record
    page = client.get(call.get_absolute_url()).content.decode()
    assert f"Deleted by frank (receipt {receipt.pk})" in page
    assert "My card number" not in page
    assert "already been deleted" in client.get(delete_page(call)).content.decode()


def test_a_held_call_is_refused_with_a_clear_message(records_officer: User, staff_user: User) -> None:
    call = ended_call(1)
    holds.place(LegalHold(call=call, reason="Litigation", case_reference="CASE-1"), staff_user)
    client = logged_in(records_officer)
    assert "under legal hold" in client.get(delete_page(call)).content.decode()
    response = client.post(delete_page(call), {"confirmation": str(call.id), "reason": "asked"})
    assert response.status_code == 409
    assert "under legal hold and cannot be deleted" in response.content.decode()
    assert everything_of(call) == INTACT
    assert not DeletionReceipt.objects.exists()


def test_a_live_call_is_refused(records_officer: User) -> None:
    call = new_call()
    response = logged_in(records_officer).post(delete_page(call), {"confirmation": str(call.id), "reason": "asked"})
    assert response.status_code == 409
    assert "still live" in response.content.decode()
    assert Call.objects.get(pk=call.pk).caller


@pytest.fixture
def superuser_client(db: None) -> Client:
    return logged_in(User.objects.create_superuser("erin", password="x"))


def test_the_admins_delete_goes_the_same_way(superuser_client: Client, staff_user: User) -> None:
    doomed, held, live = ended_call(1), ended_call(1), new_call()
    holds.place(LegalHold(call=held, reason="Litigation", case_reference="CASE-1"), staff_user)
    view = AccessLog.objects.create(user=staff_user, call=doomed, action="view")

    single = superuser_client.get(f"/admin/calls/call/{doomed.pk}/delete/")
    assert single.status_code == 302 and single.url == delete_page(doomed)  # the typed confirmation

    selected = [doomed.pk, held.pk, live.pk]
    confirm = superuser_client.post("/admin/calls/call/", {"action": "delete_selected", "_selected_action": selected})
    assert "a tombstone stays" in confirm.content.decode()
    response = superuser_client.post(
        "/admin/calls/call/", {"action": "delete_selected", "_selected_action": selected, "post": "yes"}, follow=True
    )
    assert [status for _, status in response.redirect_chain] == [302]

    assert everything_of(doomed) == {"segments": 0, "participants": 0, "events": 0, "files": 0}
    assert not audio_directory(doomed.id).exists()
    view.refresh_from_db()
    assert view.call_id == doomed.pk  # the access log keeps pointing at the tombstone
    assert everything_of(held) == INTACT
    assert TranscriptSegment.objects.filter(call=live).count() == 0 and Call.objects.get(pk=live.pk).caller
    (receipt,) = DeletionReceipt.objects.all()
    assert receipt.call_ids == [str(doomed.pk)]
    assert "Not deleted: 2 calls (1 under legal hold)" in response.content.decode()  # the page's message


def test_a_deleted_calls_late_callbacks_store_nothing(
    records_officer: User, acs_settings: object, emulator_tokens: TokenIssuer
) -> None:
    call = ended_call(1)
    logged_in(records_officer).post(delete_page(call), {"confirmation": str(call.id), "reason": "asked"})
    tombstone = Call.objects.get(pk=call.pk)
    late = [cloud_event("ParticipantsUpdated", **participants(9, "4:+14255550100")), cloud_event("CallDisconnected")]

    response = post_events(Client(), late, callback_path(call), **signed_callback_headers(emulator_tokens))

    assert response.status_code == 200
    assert response.json() == {"received": 2, "stored": 0}
    assert not CallEvent.objects.filter(call=call).exists()
    assert not Participant.objects.filter(call=call).exists()
    assert Call.objects.get(pk=call.pk).last_event_at == tombstone.last_event_at


@pytest.mark.django_db(transaction=True)
async def test_a_deleted_calls_media_socket_is_refused(records_officer: User) -> None:
    call = await database_sync_to_async(ended_call)(1)
    await database_sync_to_async(deletion.delete_call)(call, user=records_officer, reason="asked")

    connected, _ = await WebsocketCommunicator(application, media_path(call.id)).connect()

    assert not connected
