"""Pause for sensitive data: the rules, the JSON API and its tokens, the call page's buttons. The whole
loop through the emulator is in test_pause_flow.py."""

from __future__ import annotations

import re
from datetime import timedelta
from io import StringIO

import pytest
from django.contrib.auth.models import User
from django.core.management import CommandError, call_command
from django.db.models import F
from django.test import Client
from django.urls import reverse
from django.utils import timezone
from pytest_django.fixtures import Settings as SettingsWrapper

from calls import control, pause, recovery
from calls.acs import AcsError
from calls.api_tokens import create_token
from calls.models import AccessLog, ApiToken, Call, CallEvent, Gap, RecoveryJob
from calls.webhooks import store_callback_event
from emulator.testing import RunningEmulator
from tests.calls.acs_servers import rest_requests
from tests.calls.conftest import logged_in, new_call

pytestmark = pytest.mark.django_db

Status = Call.StreamStatus
Kind = RecoveryJob.Kind
UNKNOWN_TO_ACS = "not-known-to-acs"


def connected_call(**fields: object) -> Call:
    """A connected call; its connection id is one the emulator does not know, so any ACS request fails."""
    defaults = {
        "state": Call.State.CONNECTED,
        "call_connection_id": UNKNOWN_TO_ACS,
        "transcription_status": Status.ACTIVE,
    }
    return new_call(**{**defaults, **fields})


def not_transcribing() -> Call:
    """Connected, transcription stopped by staff: pausing and resuming it asks ACS nothing."""
    return connected_call(transcription_status=Status.INACTIVE, transcription_wanted=False)


def the_pause(call: Call) -> Gap:
    return Gap.objects.get(call=call, reason=Gap.Reason.SENSITIVE_PAUSE)


def job(call: Call, kind: str) -> RecoveryJob:
    return RecoveryJob.objects.get(call=call, kind=kind)


def as_if_paused_long_ago(call: Call, seconds: int) -> None:
    """Move the pause and its limit `seconds` into the past."""
    past = timedelta(seconds=seconds)
    Gap.objects.filter(call=call).update(started_at=F("started_at") - past)
    RecoveryJob.objects.filter(call=call).update(created_at=F("created_at") - past, due_at=F("due_at") - past)


# --- the rules -----------------------------------------------------------------------------------------


def test_a_pause_is_recorded_as_its_own_kind_of_gap_with_who_paused(staff_user: User) -> None:
    call = not_transcribing()

    pause.pause(call_id=call.id, user=staff_user)

    call.refresh_from_db()
    assert call.transcription_status == Status.PAUSED
    gap = the_pause(call)
    assert (gap.get_reason_display(), gap.ended_at) == ("Paused for sensitive data", None)
    assert gap.detail == "Transcription and audio capture paused for sensitive data by alice"
    event = CallEvent.objects.get(call=call, type="Callscribe.SensitivePauseStarted")
    assert (event.result_message, event.payload["user"]) == ("alice paused transcription and audio capture", "alice")


def test_a_stopped_stream_stays_stopped_after_the_pause_and_its_gap_stays_open(staff_user: User) -> None:
    call = not_transcribing()
    stopped = Gap.objects.create(
        call=call, reason=Gap.Reason.STOPPED_BY_STAFF, started_at=timezone.now(), detail="Transcription stopped."
    )

    pause.pause(call_id=call.id, user=staff_user)
    pause.resume(call_id=call.id, user=staff_user)

    call.refresh_from_db()
    assert (call.transcription_status, call.transcription_wanted) == (Status.INACTIVE, False)
    assert the_pause(call).detail.endswith("by alice; resumed by alice")
    stopped.refresh_from_db()
    assert stopped.ended_at is None


def test_a_pause_holds_a_restart_recovery_had_scheduled_and_resuming_asks_acs_to_start(
    acs_settings: SettingsWrapper, emulator: RunningEmulator, staff_user: User
) -> None:
    call = connected_call(transcription_status=Status.FAILED)
    recovery.schedule_restart(call, control.TRANSCRIPTION, "Transcription failed")
    emulator.clear_requests()

    pause.pause(call_id=call.id, user=staff_user)

    assert rest_requests(emulator) == []  # nothing was running: nothing to stop
    assert job(call, Kind.TRANSCRIPTION).outcome == "Paused for sensitive data by alice."
    limit = job(call, Kind.PAUSE_LIMIT)
    assert limit.finished_at is None
    assert limit.due_at - limit.created_at == pytest.approx(timedelta(seconds=180), abs=timedelta(seconds=1))

    # ACS does not know the call: the pause ends, transcription failed again, and recovery retries it.
    with pytest.raises(AcsError, match="The pause has ended, but transcription did not start again"):
        pause.resume(call_id=call.id, user=staff_user)

    call.refresh_from_db()
    assert call.transcription_status == Status.FAILED
    assert rest_requests(emulator) == [("POST", f"/calling/callConnections/{UNKNOWN_TO_ACS}:startTranscription")]
    assert the_pause(call).ended_at is not None
    assert Gap.objects.get(call=call, reason=Gap.Reason.ACS_FAILURE, ended_at__isnull=True)
    assert RecoveryJob.objects.filter(call=call, kind=Kind.TRANSCRIPTION, finished_at__isnull=True).exists()
    assert job(call, Kind.PAUSE_LIMIT).outcome == "Resumed by alice."


def test_when_acs_will_not_stop_transcribing_nothing_is_paused(acs_settings: SettingsWrapper, staff_user: User) -> None:
    call = connected_call()

    with pytest.raises(AcsError, match="Stopping transcription failed: ACS answered HTTP 404"):
        pause.pause(call_id=call.id, user=staff_user)

    call.refresh_from_db()
    assert (call.transcription_status, call.transcription_wanted) == (Status.ACTIVE, True)
    assert not Gap.objects.filter(call=call).exists()
    assert job(call, Kind.PAUSE_LIMIT).finished_at is not None
    assert "Call not found" in CallEvent.objects.get(call=call, type="Callscribe.AcsError").result_message


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"state": Call.State.CONNECTING}, "The call is not connected yet."),
        ({"state": Call.State.DISCONNECTED}, "The call has ended."),
        ({"transcription_status": Status.PAUSED}, "Transcription is already paused."),
        ({"transcription_status": Status.STOPPING}, "Transcription is still stopping; try again in a moment."),
    ],
)
def test_a_pause_the_call_does_not_allow_is_refused(fields: dict, message: str) -> None:
    call = connected_call(**fields)
    with pytest.raises(control.WrongState, match=re.escape(message)):
        pause.pause(call_id=call.id)
    assert not Gap.objects.filter(call=call).exists()


def test_only_a_paused_call_resumes() -> None:
    with pytest.raises(control.WrongState, match=r"Transcription is not paused\."):
        pause.resume(call_id=connected_call().id)


def test_while_paused_staff_resume_rather_than_start_or_stop_transcription(staff_user: User) -> None:
    call = not_transcribing()
    pause.pause(call_id=call.id, user=staff_user)
    for action in (control.start_transcription, control.stop_transcription):
        with pytest.raises(control.WrongState, match="paused for sensitive data; resume it instead"):
            action(call_id=call.id)
    assert Call.objects.get(pk=call.pk).transcription_status == Status.PAUSED


def test_acs_reporting_the_stop_or_a_late_start_leaves_the_pause_alone(staff_user: User) -> None:
    call = connected_call(transcription_status=Status.INACTIVE)
    pause.pause(call_id=call.id, user=staff_user)
    for name in ("TranscriptionStopped", "TranscriptionFailed", "TranscriptionStarted", "TranscriptionResumed"):
        event = {"id": name, "type": f"Microsoft.Communication.{name}", "data": {}}
        store_callback_event(event, call_id=call.id)  # as ACS's POST to /api/callbacks is applied

    call.refresh_from_db()
    assert call.transcription_status == Status.PAUSED
    assert the_pause(call).ended_at is None
    assert list(Gap.objects.filter(call=call).values_list("reason", flat=True)) == [Gap.Reason.SENSITIVE_PAUSE]
    assert not RecoveryJob.objects.filter(call=call, kind=Kind.TRANSCRIPTION).exists()


def test_recovery_leaves_a_paused_stream_alone(acs_settings: SettingsWrapper, emulator: RunningEmulator) -> None:
    call = not_transcribing()
    pause.pause(call_id=call.id)
    restart = RecoveryJob.objects.create(call=call, kind=Kind.TRANSCRIPTION, due_at=timezone.now())
    Call.objects.filter(pk=call.pk).update(transcription_wanted=True)
    emulator.clear_requests()

    recovery.run_due_jobs()

    restart.refresh_from_db()
    assert restart.outcome == "Paused for sensitive data."
    assert rest_requests(emulator) == []


def test_a_pause_nobody_ends_is_ended_by_the_worker_once_due(staff_user: User) -> None:
    call = not_transcribing()
    pause.pause(call_id=call.id, user=staff_user)

    assert recovery.run_due_jobs() == 0  # not due yet
    as_if_paused_long_ago(call, 180)
    assert recovery.run_due_jobs() == 1

    call.refresh_from_db()
    assert call.transcription_status == Status.INACTIVE  # staff had stopped it before the pause
    assert the_pause(call).detail.endswith("by alice; resumed by itself after 180 s")
    assert job(call, Kind.PAUSE_LIMIT).outcome == "Resumed after 180 s."
    ended = CallEvent.objects.get(call=call, type="Callscribe.SensitivePauseEnded")
    assert ended.result_message == "Transcription and audio capture resumed by itself after 180 s"


def test_an_old_limit_never_ends_a_newer_pause(staff_user: User) -> None:
    call = not_transcribing()
    pause.pause(call_id=call.id, user=staff_user)
    first = job(call, Kind.PAUSE_LIMIT)
    pause.resume(call_id=call.id, user=staff_user)
    pause.pause(call_id=call.id, user=staff_user)
    # As if a worker had held the first job while staff resumed (so it was not finished) and ran it now.
    RecoveryJob.objects.filter(pk=first.pk).update(finished_at=None, due_at=timezone.now())

    recovery.run_due_jobs()

    first.refresh_from_db()
    assert first.outcome == "The pause had ended."
    assert Call.objects.get(pk=call.pk).transcription_status == Status.PAUSED


def test_the_end_of_the_call_ends_the_pause_and_its_limit(staff_user: User) -> None:
    call = not_transcribing()
    pause.pause(call_id=call.id, user=staff_user)

    with pause.transaction.atomic():
        control.end_call(control.locked_call(call.id), state=Call.State.DISCONNECTED, reason="Hung up.")

    assert the_pause(call).ended_at is not None
    assert job(call, Kind.PAUSE_LIMIT).outcome == "The call ended."


# --- the JSON API ----------------------------------------------------------------------------------------


@pytest.fixture
def ivr_key(staff_user: User) -> str:
    return create_token(user=staff_user, name="IVR payment flow")[1]


def api(client: Client, call_id: object, action: str = "pause", key: str | None = None, **extra: str):
    headers = {"HTTP_AUTHORIZATION": f"Bearer {key}"} if key else {}
    return client.post(f"/api/calls/{call_id}/{action}", **headers, **extra)


def test_an_integration_pauses_and_resumes_a_call_with_its_token(client: Client, ivr_key: str) -> None:
    call = not_transcribing()

    paused = api(client, call.id, "pause", ivr_key)

    assert paused.status_code == 200
    body = paused.json()
    assert (body["ok"], body["message"]) == (True, "Paused for sensitive data.")
    assert (body["call"]["transcription_status"], body["call"]["paused"]) == (Status.PAUSED, True)
    assert the_pause(call).detail.endswith("by alice")

    resumed = api(client, call.id, "resume", ivr_key)

    assert resumed.status_code == 200
    assert resumed.json()["call"] == {**resumed.json()["call"], "paused": False, "paused_since": None}
    logs = AccessLog.objects.filter(call=call).order_by("id")
    assert [(log.user.username, log.action, log.detail) for log in logs] == [
        ("alice", "pause", "api: IVR payment flow"),
        ("alice", "resume", "api: IVR payment flow"),
    ]
    assert ApiToken.objects.get().last_used_at is not None


@pytest.mark.parametrize(
    "authorization",
    [None, "Basic YWxpY2U6cGFzc3dvcmQ=", "Bearer ", "Bearer cs_not-a-key-anyone-was-given"],
    ids=["none", "basic", "empty", "unknown"],
)
def test_the_api_refuses_a_request_without_a_valid_token(client: Client, authorization: str | None) -> None:
    call = connected_call()
    headers = {"HTTP_AUTHORIZATION": authorization} if authorization else {}

    response = client.post(f"/api/calls/{call.id}/pause", **headers)

    assert response.status_code == 401
    assert response["WWW-Authenticate"].startswith("Bearer")
    assert response.json()["ok"] is False
    assert Call.objects.get(pk=call.pk).transcription_status == Status.ACTIVE
    assert not AccessLog.objects.exists()


def test_a_revoked_token_or_one_of_a_deactivated_user_no_longer_works(
    client: Client, staff_user: User, ivr_key: str
) -> None:
    call = not_transcribing()
    ApiToken.objects.update(revoked_at=timezone.now())
    assert api(client, call.id, key=ivr_key).status_code == 401

    ApiToken.objects.update(revoked_at=None)
    User.objects.filter(pk=staff_user.pk).update(is_active=False)
    assert api(client, call.id, key=ivr_key).status_code == 401


def test_a_logged_in_browser_session_is_not_an_api_token(alice_client: Client) -> None:
    # The API takes no CSRF token: a session cookie alone must never be enough.
    call = not_transcribing()
    assert api(alice_client, call.id).status_code == 401
    assert Call.objects.get(pk=call.pk).transcription_status == Status.INACTIVE


def test_a_token_of_someone_who_may_only_watch_gets_403(client: Client, supervisor: User) -> None:
    _, key = create_token(user=supervisor, name="wallboard")
    call = not_transcribing()
    response = api(client, call.id, key=key)
    assert response.status_code == 403
    assert response.json()["message"] == "bob may not control calls."
    assert Call.objects.get(pk=call.pk).transcription_status == Status.INACTIVE


def test_an_ivr_may_name_the_call_by_acs_call_connection_id(client: Client, ivr_key: str) -> None:
    call = not_transcribing()
    response = api(client, UNKNOWN_TO_ACS, key=ivr_key)
    assert response.status_code == 200
    named = response.json()["call"]
    assert (named["id"], named["call_connection_id"], named["paused"]) == (str(call.id), UNKNOWN_TO_ACS, True)


@pytest.mark.parametrize("call_ref", ["00000000-0000-0000-0000-000000000000", "some-other-connection"])
def test_an_unknown_call_is_404(client: Client, ivr_key: str, call_ref: str) -> None:
    not_transcribing()
    response = api(client, call_ref, key=ivr_key)
    assert response.status_code == 404
    assert response.json() == {"ok": False, "message": "No such call."}
    assert not AccessLog.objects.exists()


def test_the_api_is_post_only(client: Client, ivr_key: str) -> None:
    call = not_transcribing()
    response = client.get(f"/api/calls/{call.id}/pause", HTTP_AUTHORIZATION=f"Bearer {ivr_key}")
    assert (response.status_code, response["Allow"]) == (405, "POST")


def test_the_api_answers_409_for_the_wrong_state_and_502_when_acs_fails(
    client: Client, acs_settings: SettingsWrapper, ivr_key: str
) -> None:
    call = connected_call()

    not_paused = api(client, call.id, "resume", ivr_key)
    refused = api(client, call.id, "pause", ivr_key)

    assert (not_paused.status_code, not_paused.json()["message"]) == (409, "Transcription is not paused.")
    assert refused.status_code == 502
    assert "Stopping transcription failed" in refused.json()["message"]
    assert refused.json()["call"]["transcription_status"] == Status.ACTIVE
    details = list(AccessLog.objects.filter(call=call).order_by("id").values_list("detail", flat=True))
    assert details[0] == "api: IVR payment flow: Transcription is not paused."
    assert details[1].startswith("api: IVR payment flow: Stopping transcription failed")


def test_a_token_is_made_by_command_and_its_key_shown_once(staff_user: User, outsider: User) -> None:
    out = StringIO()
    call_command("create_api_token", "alice", "--name", "Agent desktop", stdout=out)

    key = out.getvalue().split()[-1]
    token = ApiToken.objects.get()
    assert (token.user, token.name, token.prefix) == (staff_user, "Agent desktop", key[:10])
    assert key not in token.digest and len(token.digest) == 64
    assert api(Client(), not_transcribing().id, key=key).status_code == 200
    with pytest.raises(CommandError, match="No user named 'nobody'"):
        call_command("create_api_token", "nobody", "--name", "x")
    with pytest.raises(CommandError, match="not active staff"):
        call_command("create_api_token", "charlie", "--name", "x")


def test_tokens_are_listed_and_revoked_in_the_admin(ivr_key: str) -> None:
    admin = logged_in(User.objects.create_superuser("erin", password="x"))
    changelist = reverse("admin:calls_apitoken_changelist")
    token = ApiToken.objects.get()

    page = admin.get(changelist).content.decode()
    admin.post(changelist, {"action": "revoke", "_selected_action": [str(token.pk)]})

    assert "IVR payment flow" in page and ivr_key[:10] in page and ivr_key not in page
    assert admin.get(reverse("admin:calls_apitoken_add")).status_code == 403  # made by command only
    token.refresh_from_db()
    assert token.revoked_at is not None
    assert api(Client(), not_transcribing().id, key=ivr_key).status_code == 401


# --- the call page ---------------------------------------------------------------------------------------


def buttons(page: str) -> dict[str, bool]:
    """Each control button's label and whether it is enabled."""
    found = re.findall(r'data-control="(\w+)"[^>]*>.*?<button type="submit"[^>]*?( disabled)?>', page)
    return {name: not disabled for name, disabled in found}


def test_the_call_page_offers_pause_while_transcribing_and_resume_while_paused(alice_client: Client) -> None:
    call = not_transcribing()
    page = alice_client.get(call.get_absolute_url()).content.decode()
    assert "Pause for sensitive data</button>" in page
    assert (buttons(page)["pause"], buttons(page)["resume"]) == (True, False)

    response = alice_client.post(f"/calls/{call.id}/pause", follow=True)

    page = response.content.decode()
    assert "Paused for sensitive data: nothing is transcribed or recorded until you resume." in page
    assert (buttons(page)["pause"], buttons(page)["resume"]) == (False, True)
    assert (buttons(page)["transcription_start"], buttons(page)["transcription_stop"]) == (False, False)
    paused_fact = re.search(r'data-call-field="pause">([^<]*)<', page).group(1)
    assert paused_fact.startswith("Transcription and audio capture paused for sensitive data by alice at ")
    assert "resumes by itself at" in paused_fact
    assert '<td data-label="Reason">Paused for sensitive data</td>' in page

    page = alice_client.post(f"/calls/{call.id}/resume", follow=True).content.decode()
    assert (buttons(page)["pause"], buttons(page)["resume"]) == (True, False)
    assert 'hidden data-shown-with="pause"' in page


def test_a_call_not_yet_connected_cannot_be_paused_from_its_page(alice_client: Client) -> None:
    call = new_call(state=Call.State.CONNECTING)
    assert buttons(alice_client.get(call.get_absolute_url()).content.decode())["pause"] is False


@pytest.mark.parametrize("action", ["pause", "resume"])
def test_a_supervisor_who_may_only_watch_cannot_pause_or_resume(bob_client: Client, action: str) -> None:
    call = not_transcribing()
    assert "Pause for sensitive data" not in bob_client.get(call.get_absolute_url()).content.decode()
    assert bob_client.post(f"/calls/{call.id}/{action}").status_code == 403
    assert Call.objects.get(pk=call.pk).transcription_status == Status.INACTIVE


def test_pausing_from_the_page_needs_the_csrf_token(staff_user: User) -> None:
    browser = Client(enforce_csrf_checks=True)
    browser.force_login(staff_user)
    call = not_transcribing()
    assert browser.post(f"/calls/{call.id}/pause").status_code == 403
    assert Call.objects.get(pk=call.pk).transcription_status == Status.INACTIVE
