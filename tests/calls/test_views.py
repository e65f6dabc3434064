"""The staff dashboard: who may see what, the call list, the call page, exports and the access log."""

from __future__ import annotations

import io
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from axes.models import AccessAttempt
from axes.models import AccessLog as AxesAccessLog
from django.contrib.auth.models import User
from django.core.cache import cache
from django.core.management import call_command
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from calls.models import AccessLog, Call, Gap, MediaStream
from tests.calls.conftest import end, logged_in, new_call, say
from tests.streaming import acs_packets as acs

pytestmark = pytest.mark.django_db

HOSTILE = '<script>alert("x")</script><img src=x onerror=alert(1)>'


# --- who may see what ---------------------------------------------------------------------------


def test_anonymous_visitors_are_sent_to_log_in(client: Client, call: Call) -> None:
    for url in (reverse("calls-list"), reverse("calls-detail", args=[call.id])):
        response = client.get(url)
        assert response.status_code == 302
        assert response["Location"].startswith(reverse("login"))


def test_non_staff_users_are_refused(outsider: User, call: Call) -> None:
    client = logged_in(outsider)
    for url in (
        reverse("calls-list"),
        reverse("calls-detail", args=[call.id]),
        reverse("calls-transcript", args=[call.id, "txt"]),
    ):
        assert client.get(url).status_code == 403
    assert not AccessLog.objects.exists()


def test_staff_without_the_watch_permission_are_refused(call: Call) -> None:
    staff = User.objects.create_user("dave", password="x", is_staff=True)
    assert logged_in(staff).get(reverse("calls-detail", args=[call.id])).status_code == 403


def test_an_unknown_call_is_not_found(alice_client: Client) -> None:
    assert alice_client.get("/calls/00000000-0000-0000-0000-000000000000/").status_code == 404


def test_watchers_see_controls_only_with_the_control_permission(
    alice_client: Client, bob_client: Client, call: Call
) -> None:
    url = reverse("calls-detail", args=[call.id])
    alice_page = alice_client.get(url).content.decode()
    assert "Hang up" in alice_page
    assert f'action="/calls/{call.id}/hangup"' in alice_page
    assert 'name="csrfmiddlewaretoken"' in alice_page
    bob_page = bob_client.get(url)
    assert bob_page.status_code == 200
    assert "Hang up" not in bob_page.content.decode()


def test_call_data_is_never_kept_in_a_browser_cache(alice_client: Client) -> None:
    call = new_call("4:+14255550111")
    say(call, "4:+14255550111", "My account number is 1234.", 1000)
    for url in (
        reverse("calls-list"),
        reverse("calls-list") + "?q=account",
        reverse("calls-detail", args=[call.id]),
        reverse("calls-transcript", args=[call.id, "txt"]),
    ):
        response = alice_client.get(url)
        assert response.status_code == 200, url
        assert "no-store" in response["Cache-Control"], url


# --- logging in ------------------------------------------------------------------------------------


def _log_in(client: Client, password: str, address: str = "10.0.0.1", username: str = "alice") -> int:
    response = client.post(reverse("login"), {"username": username, "password": password}, REMOTE_ADDR=address)
    return response.status_code


def test_logging_in_takes_staff_to_the_call_list(client: Client, staff_user: User) -> None:
    response = client.post(reverse("login"), {"username": "alice", "password": "correct horse battery staple"})
    assert response.status_code == 302
    assert response["Location"] == reverse("calls-list")


RIGHT = "correct horse battery staple"


@pytest.fixture
def fresh_lockouts() -> Iterator[None]:
    cache.clear()
    yield
    cache.clear()


def test_five_failed_logins_lock_the_username_out_from_that_address(
    client: Client, staff_user: User, fresh_lockouts: None
) -> None:
    for _ in range(4):
        assert _log_in(client, "wrong") == 200
    fifth = client.post(reverse("login"), {"username": "alice", "password": "wrong"}, REMOTE_ADDR="10.0.0.1")
    assert fifth.status_code == 429
    assert "Too many failed attempts" in fifth.content.decode()
    assert int(fifth["Retry-After"]) > 0
    assert _log_in(client, RIGHT) == 429  # even with the right password
    # Another address is not locked out, and a success there clears its own counter.
    assert _log_in(Client(), RIGHT, address="10.0.0.2") == 302


def test_a_successful_login_resets_the_failure_count(client: Client, staff_user: User, fresh_lockouts: None) -> None:
    for _ in range(4):
        _log_in(client, "wrong")
    assert _log_in(Client(), RIGHT) == 302
    for _ in range(4):
        assert _log_in(client, "wrong") == 200


def test_guesses_from_many_addresses_lock_the_username_out(staff_user: User, fresh_lockouts: None) -> None:
    """The probe's attack: a new (forged) address for every guess never met the per-address limit."""
    answers = [_log_in(Client(), "wrong", address=f"198.51.100.{number}") for number in range(1, 31)]
    assert answers[:19] == [200] * 19
    assert set(answers[19:]) == {429}
    assert _log_in(Client(), RIGHT, address="203.0.113.7") == 429


def test_an_admin_can_lift_a_usernames_lockout(staff_user: User, fresh_lockouts: None) -> None:
    for number in range(20):
        _log_in(Client(), "wrong", address=f"198.51.100.{number}")
    assert _log_in(Client(), RIGHT, address="10.0.0.1") == 429
    call_command("axes_reset_username", "alice", stdout=io.StringIO())
    assert _log_in(Client(), RIGHT, address="10.0.0.1") == 302


def test_a_few_wrong_tries_by_a_stranger_do_not_lock_a_colleague_out(staff_user: User, fresh_lockouts: None) -> None:
    stranger = Client()
    for _ in range(5):
        _log_in(stranger, "wrong", address="198.51.100.66")
    assert _log_in(stranger, RIGHT, address="198.51.100.66") == 429
    assert _log_in(Client(), RIGHT, address="10.0.0.1") == 302


def test_the_lockout_counts_only_in_the_cache(client: Client, staff_user: User, fresh_lockouts: None) -> None:
    """Failed logins by strangers must not cost a database row each."""
    for _ in range(6):
        _log_in(client, "wrong", username="nobody-we-know")
    assert not AccessAttempt.objects.exists()
    assert not AxesAccessLog.objects.exists()


def test_the_admin_login_goes_through_the_staff_login_and_its_lockout(client: Client) -> None:
    response = client.get("/admin/login/?next=/admin/")
    assert response.status_code == 302
    assert response["Location"] == f"{reverse('login')}?next=/admin/"


# --- the call list ---------------------------------------------------------------------------------


def test_the_call_list_shows_live_calls_with_their_last_words_and_past_calls(alice_client: Client) -> None:
    live = new_call("4:+14255550111")
    say(live, "4:+14255550111", "My router keeps dropping.", 1000)
    past = end(new_call("4:+14255550199"))
    page = alice_client.get(reverse("calls-list")).content.decode()
    live_section, past_section = page.split('id="past-heading"')
    assert f'data-call-id="{live.id}"' in live_section
    assert "+14255550111: My router keeps dropping." in live_section
    assert str(past.id) in past_section
    assert "+14255550199" in past_section


def test_past_calls_are_paged(alice_client: Client) -> None:
    for index in range(30):
        end(new_call(f"4:+1425555{index:04}"))
    first = alice_client.get(reverse("calls-list")).content.decode()
    assert "Page 1 of 2" in first
    second = alice_client.get(reverse("calls-list"), {"page": 2}).content.decode()
    assert "Page 2 of 2" in second
    assert second.count('<th scope="row" data-label="Caller">') == 5


def test_past_calls_filter_by_state_direction_number_gaps_and_date(alice_client: Client) -> None:
    plain = end(new_call("4:+14255550100"))
    failed = new_call("4:+14255550222", state=Call.State.FAILED, direction=Call.Direction.OUTBOUND)
    gappy = end(new_call("4:+14255550333"))
    Gap.objects.create(call=gappy, reason=Gap.Reason.SOCKET_DROP, started_at=timezone.now())
    old = end(new_call("4:+14255550444"))
    Call.objects.filter(pk=old.pk).update(created_at=timezone.now() - timedelta(days=10))

    def listed(**params: str) -> set[str]:
        page = alice_client.get(reverse("calls-list"), params).content.decode().split('id="past-heading"')[1]
        return {str(call.id) for call in (plain, failed, gappy, old) if str(call.id) in page}

    assert listed(state="failed") == {str(failed.id)}
    assert listed(direction="outbound") == {str(failed.id)}
    assert listed(participant="+1 (425) 555-0222") == {str(failed.id)}
    assert listed(has_gaps="on") == {str(gappy.id)}
    since = (timezone.localdate() - timedelta(days=2)).isoformat()
    assert listed(date_from=since) == {str(plain.id), str(failed.id), str(gappy.id)}


def test_a_backwards_date_range_is_explained(alice_client: Client) -> None:
    page = alice_client.get(reverse("calls-list"), {"date_from": "2026-02-01", "date_to": "2026-01-01"})
    assert page.status_code == 200
    assert "The start date is after the end date." in page.content.decode()


# --- the call page ----------------------------------------------------------------------------------


def test_the_call_page_shows_turns_with_times_and_timed_words(alice_client: Client, call: Call) -> None:
    say(call, acs.CALLER, "My internet is down.", 5000)
    say(call, acs.CALLER, "Since this morning.", 8000)
    say(call, acs.AGENT, "Let me check.", 65_000)
    page = alice_client.get(reverse("calls-detail", args=[call.id])).content.decode()
    assert page.count('class="turn"') == 2
    assert '<span class="time">0:05</span>' in page
    assert '<span class="time">1:05</span>' in page
    assert '<span class="word" data-start-ms="5000" data-end-ms="5500">My</span>' in page
    assert 'aria-live="polite"' in page
    assert f'data-after="{Call.objects.get(pk=call.pk).last_sequence}"' in page


def test_identities_without_a_name_are_shown_short_with_the_whole_id_on_hover(alice_client: Client) -> None:
    agent = "8:acs:1b5cc06b-f352-4571-b1e6-d9b259b7c776_00000006-7ce1-3f5c-85f4-343a0d00a1b2"
    call = new_call(callee=agent)
    say(call, agent, "Thanks for calling.", 1000)
    page = alice_client.get(reverse("calls-detail", args=[call.id])).content.decode()
    assert f'<p class="speaker" title="{agent}">Customer ACS user …0d00a1b2</p>' in page  # no Agent answers as it
    assert f'<dd title="{agent}">ACS user …0d00a1b2</dd>' in page


def test_low_confidence_lines_are_marked(alice_client: Client, call: Call) -> None:
    say(call, acs.CALLER, "Clearly heard.", 1000, confidence=0.95)
    say(call, acs.CALLER, "Mumbled words.", 3000, confidence=0.31)
    page = alice_client.get(reverse("calls-detail", args=[call.id])).content.decode()
    assert page.count('class="line low-confidence"') == 1
    assert "low confidence (31%)" in page


def test_hostile_transcript_text_is_shown_as_text(alice_client: Client, call: Call) -> None:
    say(call, acs.CALLER, HOSTILE, 1000)
    Call.objects.filter(pk=call.pk).update(caller_display_name="<b>Mallory</b>")
    for url in (reverse("calls-detail", args=[call.id]), reverse("calls-list")):
        page = alice_client.get(url).content.decode()
        assert "<script>alert" not in page
        assert "<img src=x" not in page
        assert "&lt;script&gt;" in page
        assert "<b>Mallory</b>" not in page


def test_the_call_page_shows_coverage_and_gaps(alice_client: Client, call: Call) -> None:
    start = timezone.now() - timedelta(minutes=10)
    Call.objects.filter(pk=call.pk).update(
        connected_at=start, ended_at=start + timedelta(minutes=10), state=Call.State.DISCONNECTED
    )
    audio = MediaStream.objects.create(
        call=call, kind="audio", connected_at=start, disconnected_at=start + timedelta(minutes=10)
    )
    MediaStream.objects.create(
        call=call, kind="transcription", connected_at=start, disconnected_at=start + timedelta(minutes=5)
    )
    Gap.objects.create(
        call=call,
        stream=audio,
        reason=Gap.Reason.SOCKET_DROP,
        started_at=start + timedelta(minutes=2),
        ended_at=start + timedelta(minutes=3),
        detail="ACS reconnected",
    )
    page = alice_client.get(reverse("calls-detail", args=[call.id])).content.decode()
    assert "streamed 90%, transcribed 50%" in page
    assert "Socket Drop" in page
    assert "ACS reconnected" in page


def test_each_call_page_view_is_in_the_access_log(alice_client: Client, staff_user: User, call: Call) -> None:
    alice_client.get(reverse("calls-detail", args=[call.id]))
    alice_client.get(reverse("calls-detail", args=[call.id]))
    assert list(AccessLog.objects.values_list("user", "call", "action")) == [(staff_user.pk, call.pk, "view")] * 2


# --- exports -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("export_format", "expected"),
    [
        ("txt", "[00:00:05.000] Customer +14255550100: My internet is down."),
        ("json", '"text": "My internet is down."'),
        ("vtt", "WEBVTT"),
        ("srt", "00:00:05,000 --> 00:00:07,000"),
    ],
)
def test_each_export_downloads_and_is_logged(
    alice_client: Client, staff_user: User, call: Call, export_format: str, expected: str
) -> None:
    say(call, acs.CALLER, "My internet is down.", 5000)
    response = alice_client.get(reverse("calls-transcript", args=[call.id, export_format]))
    assert response.status_code == 200
    assert f'filename="call-{call.id}.{export_format}"' in response["Content-Disposition"]
    assert expected in response.content.decode()
    assert AccessLog.objects.get().detail == export_format
    assert AccessLog.objects.get().action == "export"


def test_an_unknown_export_format_is_not_found(alice_client: Client, call: Call) -> None:
    assert alice_client.get(reverse("calls-transcript", args=[call.id, "docx"])).status_code == 404


def test_the_date_filter_takes_days_in_the_configured_time_zone(alice_client: Client, settings: object) -> None:
    settings.TIME_ZONE = "America/New_York"
    late_evening = end(new_call("4:+14255550142"))  # 21:30 on 6 December in New York, already the 7th in UTC
    Call.objects.filter(pk=late_evening.pk).update(created_at=datetime(2026, 12, 7, 2, 30, tzinfo=UTC))

    def listed(**filters: str) -> bool:
        return str(late_evening.id) in alice_client.get(reverse("calls-list"), filters).content.decode()

    assert listed(date_from="2026-12-06", date_to="2026-12-06")
    assert not listed(date_from="2026-12-07")
    assert not listed(date_to="2026-12-05")
