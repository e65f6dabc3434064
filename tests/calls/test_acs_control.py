"""calls/acs.py and calls/control.py: the real Call Automation SDK against the ACS emulator."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import pytest
from pytest_django.fixtures import Settings as SettingsWrapper

from calls import acs, control
from calls.models import Call, CallEvent
from calls.tokens import unsign_callback_token, unsign_media_token
from emulator.testing import RunningEmulator, free_port
from tests.calls.acs_servers import rest_requests
from tests.calls.conftest import new_call

Status = Call.StreamStatus


def connected_call(call_connection_id: str, **fields: object) -> Call:
    return new_call(state=Call.State.CONNECTED, call_connection_id=call_connection_id, **fields)


def test_it_keeps_an_http_endpoint_and_drops_the_trailing_slash() -> None:
    endpoint, key = acs.parse_connection_string("endpoint=http://127.0.0.1:8089/;accesskey=c2VjcmV0")
    assert (endpoint, key) == ("http://127.0.0.1:8089", "c2VjcmV0")


def test_it_explains_a_missing_connection_string(settings: SettingsWrapper) -> None:
    settings.ACS_CONNECTION_STRING = ""
    with pytest.raises(acs.AcsError, match="ACS_CONNECTION_STRING must look like"):
        acs.get_call_properties("some-call")


def _callback_call_id(request: dict) -> object:
    """Our call id, from the signed token in a create/answer request's callbackUri."""
    callback_uri = (request["body"] or {}).get("callbackUri") if isinstance(request["body"], dict) else None
    token = parse_qs(urlsplit(callback_uri).query).get("token", [""])[0] if callback_uri else ""
    return unsign_callback_token(token) if token else None


@pytest.mark.django_db
def test_it_places_a_call_with_streaming_and_transcription_to_signed_urls(
    acs_settings: SettingsWrapper, emulator: RunningEmulator
) -> None:
    call = control.create_outbound_call(target="+14255550199", source_caller_id_number="+14255550100")
    call = control.place_call(call_id=call.id)

    call.refresh_from_db()
    assert call.call_connection_id
    request = next(r for r in emulator.requests() if _callback_call_id(r) == call.id and r["method"] == "POST")
    body = request["body"]
    assert request["hmac_valid"] is True
    assert body["targets"][0]["rawId"] == "4:+14255550199"
    assert body["sourceCallerIdNumber"] == {"value": "+14255550100"}
    media, transcription = body["mediaStreamingOptions"], body["transcriptionOptions"]
    assert media["transportType"] == "websocket" and media["audioChannelType"] == "unmixed"
    assert media["contentType"] == "audio" and media["startMediaStreaming"] is True
    assert unsign_media_token(media["transportUrl"].rstrip("/").rsplit("/", 1)[1]) == call.id
    assert transcription["transportUrl"] == media["transportUrl"]
    assert transcription["locale"] == "en-US" and transcription["enableIntermediateResults"] is True
    assert call.events.filter(type="Callscribe.CallCreated").exists()

    control.hang_up(call_id=call.id)
    assert ("POST", f"/calling/callConnections/{call.call_connection_id}:terminate") in rest_requests(
        emulator, call.call_connection_id
    )
    assert Call.objects.get(pk=call.id).state == Call.State.DISCONNECTING  # CallDisconnected confirms it


@pytest.mark.django_db
def test_it_refuses_a_target_it_cannot_call(acs_settings: SettingsWrapper) -> None:
    with pytest.raises(control.InvalidRequest, match=r"\+E\.164"):
        control.create_outbound_call(target="call mum")
    assert not Call.objects.exists()


@pytest.mark.django_db
def test_a_call_acs_refuses_to_place_is_marked_failed(acs_settings: SettingsWrapper) -> None:
    acs_settings.ACS_CONNECTION_STRING = f"endpoint=http://127.0.0.1:{free_port()}/;accesskey=c2VjcmV0"
    call = control.create_outbound_call(target="+14255550199")

    with pytest.raises(acs.AcsError, match="could not be reached"):
        control.place_call(call_id=call.id)

    call.refresh_from_db()
    assert call.state == Call.State.FAILED
    assert "could not be reached" in call.end_reason
    assert call.events.filter(type="Callscribe.AcsError").exists()


@pytest.mark.django_db
def test_it_reports_a_call_acs_does_not_know_as_gone(acs_settings: SettingsWrapper) -> None:
    with pytest.raises(acs.AcsError) as caught:
        acs.get_call_properties("no-such-call")
    assert caught.value.call_is_gone
    assert "HTTP 404" in caught.value.message and "Call not found" in caught.value.message


@pytest.mark.django_db
def test_stopping_streaming_that_is_not_active_is_the_wrong_state(acs_settings: SettingsWrapper) -> None:
    call = connected_call("call-1", media_streaming_status=Status.INACTIVE)
    with pytest.raises(control.WrongState, match="Media streaming is not active"):
        control.stop_media_streaming(call_id=call.id)


@pytest.mark.django_db
def test_it_refuses_to_act_on_an_ended_call(acs_settings: SettingsWrapper) -> None:
    call = new_call(state=Call.State.DISCONNECTED, call_connection_id="call-2")
    for action in (control.start_media_streaming, control.start_transcription, control.hang_up):
        with pytest.raises(control.WrongState, match="ended"):
            action(call_id=call.id)


@pytest.mark.django_db
def test_it_refuses_to_start_streaming_before_the_call_connects(acs_settings: SettingsWrapper) -> None:
    call = new_call(state=Call.State.CONNECTING, media_streaming_status=Status.INACTIVE)
    with pytest.raises(control.WrongState, match="not connected yet"):
        control.start_media_streaming(call_id=call.id)


@pytest.mark.django_db
def test_an_acs_failure_puts_the_status_back_and_is_recorded(acs_settings: SettingsWrapper) -> None:
    call = connected_call("unknown-to-acs", transcription_status=Status.ACTIVE)

    with pytest.raises(acs.AcsError, match="Stopping transcription failed: ACS answered HTTP 404"):
        control.stop_transcription(call_id=call.id)

    call.refresh_from_db()
    assert (call.transcription_status, call.transcription_wanted) == (Status.ACTIVE, True)
    error = CallEvent.objects.get(call=call, type="Callscribe.AcsError")
    assert "Call not found" in error.result_message
    assert not call.gaps.exists()


@pytest.mark.django_db
def test_stopping_a_failed_stream_stops_wanting_it_without_asking_acs(
    acs_settings: SettingsWrapper, emulator: RunningEmulator
) -> None:
    call = connected_call("failed-stream-call", media_streaming_status=Status.FAILED)
    emulator.clear_requests()

    control.stop_media_streaming(call_id=call.id)

    call.refresh_from_db()
    assert (call.media_streaming_status, call.media_streaming_wanted) == (Status.INACTIVE, False)
    assert rest_requests(emulator) == []


@pytest.mark.django_db
def test_it_refuses_a_locale_without_a_region(acs_settings: SettingsWrapper) -> None:
    call = connected_call("call-3", transcription_status=Status.ACTIVE)
    with pytest.raises(control.InvalidRequest, match="region"):
        control.update_transcription_locale(call_id=call.id, locale="en")
