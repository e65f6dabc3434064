"""Staff controls on a call: who may use them, what they answer, and what ACS (the emulator) is asked."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from django.contrib.auth.models import Permission, User
from django.test import Client
from django.urls import reverse
from pytest_django.fixtures import Settings as SettingsWrapper

from calls import control
from calls.models import AccessLog, Call, CallEvent, Gap
from emulator.testing import RunningEmulator
from tests.calls.acs_servers import StaffBrowser, rest_requests, ring, wait_for
from tests.calls.conftest import logged_in, new_call
from tests.servers import AppServer

Status = Call.StreamStatus
ACTIONS = ("streaming/start", "streaming/stop", "transcription/start", "transcription/stop", "hangup")
JSON = {"HTTP_ACCEPT": "application/json"}


def control_url(call: Call, action: str) -> str:
    return f"/calls/{call.id}/{action}"


@pytest.fixture
def connected(db: None) -> Call:
    return new_call(
        state=Call.State.CONNECTED,
        call_connection_id="not-known-to-acs",
        media_streaming_status=Status.ACTIVE,
        transcription_status=Status.INACTIVE,
    )


@pytest.mark.parametrize("action", ACTIONS)
def test_a_supervisor_who_may_only_watch_gets_403(
    bob_client: Client, acs_settings: SettingsWrapper, connected: Call, action: str
) -> None:
    response = bob_client.post(control_url(connected, action), **JSON)

    assert response.status_code == 403
    connected.refresh_from_db()
    assert (connected.state, connected.media_streaming_status) == (Call.State.CONNECTED, Status.ACTIVE)
    assert not CallEvent.objects.filter(call=connected).exists()


def test_someone_who_is_not_staff_gets_403(outsider: User, connected: Call) -> None:
    assert logged_in(outsider).post(control_url(connected, "hangup"), **JSON).status_code == 403


def test_an_anonymous_visitor_is_sent_to_log_in(client: Client, connected: Call) -> None:
    response = client.post(control_url(connected, "hangup"))
    assert response.status_code == 302 and response["Location"].startswith("/accounts/login/")


def test_a_control_needs_the_csrf_token(staff_user: User, connected: Call) -> None:
    browser = Client(enforce_csrf_checks=True)
    browser.force_login(staff_user)
    assert browser.post(control_url(connected, "streaming/stop"), **JSON).status_code == 403


def test_a_control_is_post_only(alice_client: Client, connected: Call) -> None:
    assert alice_client.get(control_url(connected, "streaming/stop")).status_code == 405


def test_the_wrong_state_gets_409_with_a_message(alice_client: Client, connected: Call) -> None:
    response = alice_client.post(control_url(connected, "transcription/stop"), **JSON)

    assert response.status_code == 409
    assert response.json()["message"] == "Transcription is not active."
    assert response.json()["call"]["transcription_status"] == Status.INACTIVE
    log = AccessLog.objects.get(call=connected)
    assert (log.user.username, log.action) == ("alice", "transcription_stop")


def test_a_fetch_request_is_recognised_by_its_header(alice_client: Client, connected: Call) -> None:
    response = alice_client.post(control_url(connected, "transcription/stop"), HTTP_X_REQUESTED_WITH="fetch")
    assert response.status_code == 409 and response["Content-Type"] == "application/json"


def test_an_acs_failure_gets_502_and_is_recorded(
    alice_client: Client, acs_settings: SettingsWrapper, connected: Call
) -> None:
    response = alice_client.post(control_url(connected, "streaming/stop"), **JSON)

    assert response.status_code == 502
    assert "Stopping media streaming failed: ACS answered HTTP 404" in response.json()["message"]
    connected.refresh_from_db()
    assert connected.media_streaming_status == Status.ACTIVE
    assert "Call not found" in CallEvent.objects.get(call=connected, type="Callscribe.AcsError").result_message
    assert AccessLog.objects.filter(call=connected, action="streaming_stop").exists()


def test_a_form_post_is_redirected_to_the_call_page_with_a_message(alice_client: Client, connected: Call) -> None:
    response = alice_client.post(control_url(connected, "transcription/stop"), follow=True)

    assert response.redirect_chain[-1][0] == connected.get_absolute_url()
    assert "Transcription is not active." in [str(message) for message in response.context["messages"]]


def test_a_missing_call_is_404(alice_client: Client, db: None) -> None:
    assert alice_client.post("/calls/00000000-0000-0000-0000-000000000000/hangup", **JSON).status_code == 404


def test_the_admin_stop_action_uses_the_same_control(acs_settings: SettingsWrapper, connected: Call) -> None:
    erin = User.objects.create_superuser("erin", password="x")
    Call.objects.filter(pk=connected.pk).update(transcription_status=Status.ACTIVE)
    changelist = reverse("admin:calls_call_changelist")

    response = logged_in(erin).post(
        changelist, {"action": "stop_transcription_action", "_selected_action": [str(connected.pk)]}, follow=True
    )

    shown = [str(message) for message in response.context["messages"]]
    assert any("Stopping transcription failed: ACS answered HTTP 404" in message for message in shown)
    assert CallEvent.objects.filter(call=connected, type="Callscribe.TranscriptionStopRequested").exists()
    assert AccessLog.objects.get(call=connected, action="transcription_stop").user == erin


def test_the_admin_offers_control_actions_only_to_controllers(connected: Call) -> None:
    viewer = User.objects.create_user("vic", password="x", is_staff=True)
    viewer.user_permissions.set(Permission.objects.filter(codename__in=["view_call", "watch_call", "view_all_calls"]))

    response = logged_in(viewer).get(reverse("admin:calls_call_changelist"))

    assert response.status_code == 200
    assert "export_transcripts" in response.content.decode()
    assert "hang_up_action" not in response.content.decode()


# --- placing a call ------------------------------------------------------------------------------------


def test_the_new_call_form_is_for_controllers_only(alice_client: Client, bob_client: Client) -> None:
    assert alice_client.get("/calls/new").status_code == 200
    assert bob_client.get("/calls/new").status_code == 403


def test_a_target_that_cannot_be_called_is_explained(alice_client: Client) -> None:
    response = alice_client.post("/calls/new", {"target": "mum", "caller_id": ""})

    assert response.status_code == 400
    assert "+E.164" in response.content.decode()
    assert not Call.objects.exists()


def test_staff_place_a_call_through_acs(
    alice_client: Client, acs_settings: SettingsWrapper, emulator: RunningEmulator
) -> None:
    response = alice_client.post("/calls/new", {"target": "+1 425 555 0199", "caller_id": "+14255550100"})

    call = Call.objects.get()
    assert response.status_code == 302 and response["Location"] == call.get_absolute_url()
    assert (call.direction, call.callee, call.caller) == (Call.Direction.OUTBOUND, "4:+14255550199", "4:+14255550100")
    assert call.call_connection_id
    assert ("POST", "/calling/callConnections") in rest_requests(emulator)
    assert AccessLog.objects.get(call=call).action == "call_place"
    control.hang_up(call_id=call.id)


# --- the whole loop: a real call, the real app server, the emulator -----------------------------------


@pytest.mark.django_db(transaction=True)
def test_staff_stop_and_start_streaming_and_transcription_then_hang_up(
    acs_app: AppServer,
    acs_settings: SettingsWrapper,
    emulator: RunningEmulator,
    staff_user: User,
    end_calls: Callable[[Call], Call],
) -> None:
    rang = ring(emulator, acs_app)
    call = end_calls(
        wait_for(lambda: Call.objects.filter(server_call_id=rang["server_call_id"]).first(), what="the call")
    )
    wait_for(lambda: _statuses(call) == (Status.ACTIVE, Status.ACTIVE), what="both streams active")
    browser = StaffBrowser(acs_app, staff_user)
    connection_id = Call.objects.get(pk=call.pk).call_connection_id

    assert browser.post(control_url(call, "streaming/stop")).json()["ok"] is True
    wait_for(lambda: _statuses(call)[0] == Status.INACTIVE, what="streaming stopped")
    gap = Gap.objects.get(call=call, reason=Gap.Reason.STOPPED_BY_STAFF)
    assert gap.ended_at is None and "stopped by alice" in gap.detail

    assert browser.post(control_url(call, "transcription/stop")).status_code == 200
    wait_for(lambda: _statuses(call) == (Status.INACTIVE, Status.INACTIVE), what="transcription stopped")
    assert browser.post(control_url(call, "transcription/stop")).status_code == 409

    assert browser.post(control_url(call, "streaming/start")).status_code == 200
    assert browser.post(control_url(call, "transcription/start")).status_code == 200
    wait_for(lambda: _statuses(call) == (Status.ACTIVE, Status.ACTIVE), what="both streams active again")
    gap.refresh_from_db()
    assert gap.ended_at is not None
    control.update_transcription_locale(call_id=call.id, locale="en-GB", user=staff_user)
    wait_for(
        lambda: call.events.filter(type="Microsoft.Communication.TranscriptionUpdated"), what="TranscriptionUpdated"
    )
    assert Call.objects.get(pk=call.pk).locale == "en-GB"

    assert browser.post(control_url(call, "hangup"), fetch=False).status_code == 302
    wait_for(lambda: Call.objects.get(pk=call.pk).state == Call.State.DISCONNECTED, what="CallDisconnected")

    base = f"/calling/callConnections/{connection_id}"
    assert rest_requests(emulator, connection_id) == [
        ("POST", f"{base}:stopMediaStreaming"),
        ("POST", f"{base}:stopTranscription"),
        ("POST", f"{base}:startMediaStreaming"),
        ("POST", f"{base}:startTranscription"),
        ("POST", f"{base}:updateTranscription"),
        ("POST", f"{base}:terminate"),
    ]
    actions = list(AccessLog.objects.filter(call=call, user=staff_user).order_by("id").values_list("action", flat=True))
    assert actions == [
        "streaming_stop",
        "transcription_stop",
        "transcription_stop",
        "streaming_start",
        "transcription_start",
        "hangup",
    ]
    requested = CallEvent.objects.filter(call=call, type__startswith="Callscribe.").values_list("type", flat=True)
    assert "Callscribe.StreamingStopRequested" in requested and "Callscribe.HangUpRequested" in requested


def _statuses(call: Call) -> tuple[str, str]:
    call = Call.objects.get(pk=call.pk)
    return call.media_streaming_status, call.transcription_status
