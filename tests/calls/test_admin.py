"""The Django admin: the call list without N+1 queries, transcript search, the live panel, exports, the access log."""

from __future__ import annotations

import io
import json
import re
import zipfile

import pytest
from django.contrib.auth.models import Permission, User
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from calls.models import AccessLog, Call, CallEvent, Gap
from tests.calls.conftest import end, logged_in, new_call, say
from tests.streaming import acs_packets as acs

pytestmark = pytest.mark.django_db


@pytest.fixture
def admin_user() -> User:
    return User.objects.create_superuser("erin", password="x")


@pytest.fixture
def admin_client(admin_user: User) -> Client:
    return logged_in(admin_user)


def changelist(client: Client, **params: str) -> str:
    response = client.get(reverse("admin:calls_call_changelist"), params)
    assert response.status_code == 200
    return response.content.decode()


def test_the_call_list_takes_a_fixed_number_of_queries(admin_client: Client, django_assert_max_num_queries) -> None:
    for index in range(25):
        call = new_call(f"4:+1425555{index:04}")
        say(call, acs.CALLER, "Hello there.", 1000)
        say(call, acs.AGENT, "Hi, how can I help?", 3000)
        Gap.objects.create(call=call, reason=Gap.Reason.AUDIO_GAP, started_at=timezone.now())
    with django_assert_max_num_queries(12):
        page = changelist(admin_client)
    assert page.count('class="action-checkbox"') >= 25
    assert "+14255550024" in page


def test_the_call_list_searches_transcripts_and_numbers(admin_client: Client) -> None:
    modem = new_call("4:+14255550101")
    say(modem, acs.CALLER, "The modem lights are all off.", 1000)
    other = new_call("4:+14255550202")
    say(other, acs.CALLER, "I want to cancel.", 1000)
    found = changelist(admin_client, q="modems")
    assert str(modem.id) in found and str(other.id) not in found
    by_number = changelist(admin_client, q="+14255550202")
    assert str(other.id) in by_number and str(modem.id) not in by_number


def test_the_call_list_filters_calls_with_gaps(admin_client: Client) -> None:
    gappy, clean = new_call(), new_call()
    Gap.objects.create(call=gappy, reason=Gap.Reason.STOPPED_BY_STAFF, started_at=timezone.now())
    page = changelist(admin_client, has_gaps="yes")
    assert str(gappy.id) in page and str(clean.id) not in page


def test_the_change_page_has_the_live_transcript_panel_and_history(
    admin_client: Client, admin_user: User, call: Call
) -> None:
    say(call, acs.CALLER, "<script>alert(1)</script> Hello.", 1000)
    CallEvent.objects.create(call=call, type="CallConnected", time=timezone.now())
    response = admin_client.get(reverse("admin:calls_call_change", args=[call.id]))
    page = response.content.decode()
    assert response.status_code == 200
    assert f'data-call-id="{call.id}"' in page
    assert 'aria-live="polite"' in page
    assert "/static/calls/live.js" in page
    assert "CallConnected" in page
    assert "<script>alert(1)" not in page
    assert AccessLog.objects.filter(user=admin_user, call=call, action="view", detail="admin").exists()


def test_the_export_action_zips_each_selected_transcript(admin_client: Client, admin_user: User) -> None:
    first, second = end(new_call()), end(new_call())
    say(first, acs.CALLER, "First call.", 1000)
    say(second, acs.CALLER, "Second call.", 1000)
    response = admin_client.post(
        reverse("admin:calls_call_changelist"),
        {"action": "export_transcripts", "_selected_action": [str(first.id), str(second.id)]},
    )
    assert response["Content-Type"] == "application/zip"
    archive = zipfile.ZipFile(io.BytesIO(response.content))
    assert sorted(archive.namelist()) == sorted([f"call-{first.id}.json", f"call-{second.id}.json"])
    document = json.loads(archive.read(f"call-{first.id}.json"))
    assert [segment["text"] for segment in document["segments"]] == ["First call."]
    assert AccessLog.objects.filter(user=admin_user, action="export").count() == 2


def test_the_access_log_is_read_only(admin_client: Client, admin_user: User, call: Call) -> None:
    log = AccessLog.objects.create(user=admin_user, call=call, action="view")
    page = admin_client.get(reverse("admin:calls_accesslog_changelist")).content.decode()
    assert "erin" in page and "view" in page
    assert admin_client.get(reverse("admin:calls_accesslog_add")).status_code == 403
    assert admin_client.post(reverse("admin:calls_accesslog_delete", args=[log.pk])).status_code == 403


def test_staff_who_may_watch_calls_read_them_in_the_admin_without_changing_them(
    bob_client: Client, supervisor: User, call: Call
) -> None:
    say(call, acs.CALLER, "Hello from the admin.", 1000)
    CallEvent.objects.create(call=call, type="CallConnected", time=timezone.now())

    assert "Calls" in bob_client.get(reverse("admin:index")).content.decode()
    assert str(call.id) in changelist(bob_client)
    response = bob_client.get(reverse("admin:calls_call_change", args=[call.id]))
    page = response.content.decode()
    assert response.status_code == 200
    assert "Hello from the admin." in shown_text(page) and "CallConnected" in page
    assert AccessLog.objects.filter(user=supervisor, call=call, action="view", detail="admin").exists()
    assert bob_client.post(reverse("admin:calls_call_change", args=[call.id]), {"state": "failed"}).status_code == 403
    assert bob_client.get(reverse("admin:calls_participant_changelist")).status_code == 403


def test_staff_who_may_not_watch_calls_do_not_see_them_in_the_admin(call: Call) -> None:
    client = logged_in(User.objects.create_user("dave", is_staff=True))
    assert client.get(reverse("admin:calls_call_changelist")).status_code == 403
    assert client.get(reverse("admin:calls_call_change", args=[call.id])).status_code == 403


def shown_text(page: str) -> str:
    """The page's text as a reader sees it (the transcript panel puts each word in a span of its own)."""
    return " ".join(re.sub(r"<[^>]+>", " ", page).split())


def row_of(page: str, call: Call) -> str:
    return next(row for row in re.findall(r"<tr>.*?</tr>", page, re.DOTALL) if str(call.id) in row)


def test_the_gaps_column_says_yes_for_a_call_with_gaps(admin_client: Client) -> None:
    gappy, clean = new_call(), new_call()
    Gap.objects.create(call=gappy, reason=Gap.Reason.SOCKET_DROP, started_at=timezone.now())
    page = changelist(admin_client)
    assert '<td class="field-has_gaps">Yes</td>' in row_of(page, gappy)
    assert '<td class="field-has_gaps">No</td>' in row_of(page, clean)


def test_the_change_page_is_titled_with_the_caller_and_the_id_its_address_uses(admin_client: Client) -> None:
    call = new_call(call_connection_id="acs-connection-7", caller_display_name="Ada Lovelace")
    page = admin_client.get(reverse("admin:calls_call_change", args=[call.id])).content.decode()
    title = re.search(r"<title>(.*?)</title>", page, re.DOTALL).group(1)
    assert "Ada Lovelace" in title and str(call.id) in title
    assert "acs-connection-7" not in title


def test_watchers_read_the_transcript_once_on_the_change_page(admin_client: Client, call: Call) -> None:
    say(call, acs.CALLER, "Is my modem on fire?", 1000, confidence=0.898)
    page = admin_client.get(reverse("admin:calls_call_change", args=[call.id])).content.decode()
    assert shown_text(page).count("Is my modem on fire?") == 1  # in the live panel, not again in an inline


def test_model_viewers_who_may_not_watch_read_the_transcript_with_its_confidence_as_a_percentage(call: Call) -> None:
    say(call, acs.CALLER, "Is my modem on fire?", 1000, confidence=0.898)
    auditor = User.objects.create_user("frank", is_staff=True)
    auditor.user_permissions.set(
        Permission.objects.filter(
            codename__in=["view_call", "view_transcriptsegment", "view_gap", "view_callevent", "view_all_calls"]
        )
    )
    page = logged_in(auditor).get(reverse("admin:calls_call_change", args=[call.id])).content.decode()
    assert "Is my modem on fire?" in page
    assert "90%" in page and "0.89799" not in page
