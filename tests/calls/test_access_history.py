"""The access log: every look at a call (page, export, audio, search, live subscription) with who, from
where and when; and a call's access history, for the supervisors of that call and all-calls users."""

from __future__ import annotations

import re
import struct
from pathlib import Path

import pytest
from django.test import override_settings
from django.urls import reverse

from calls import participants
from calls.audio_files import audio_directory, audio_file_name
from calls.models import AccessLog, Call
from streaming.audio import append_pcm
from tests.calls.conftest import end, logged_in, new_call, say
from tests.conftest import SAM, ContactCentre

pytestmark = pytest.mark.django_db

CUSTOMER = "4:+14255550101"


@pytest.fixture
def sams_call(centre: ContactCentre) -> Call:
    call = new_call(CUSTOMER)
    participants.ensure_participant(call_id=call.id, raw_id=SAM)
    say(call, CUSTOMER, "My aardvark escaped.", 1000)
    return end(call)


def log_of(call: Call | None = None) -> list[tuple[str, str, str, str]]:
    entries = AccessLog.objects.filter(call=call).order_by("id")
    return [(entry.user.username, entry.action, entry.detail, entry.ip) for entry in entries]


def test_every_look_at_a_call_is_logged_with_who_and_from_where(
    centre: ContactCentre, sams_call: Call, tmp_path: Path
) -> None:
    sam = logged_in(centre.sam.user)
    sam.get(sams_call.get_absolute_url(), REMOTE_ADDR="203.0.113.9")
    sam.get(reverse("calls-transcript", args=[sams_call.id, "vtt"]), REMOTE_ADDR="203.0.113.9")
    with override_settings(AUDIO_CAPTURE=True, AUDIO_CAPTURE_DIR=tmp_path):
        append_pcm(audio_directory(sams_call.id) / audio_file_name(CUSTOMER), 16000, struct.pack("<4h", 1, 2, 3, 4))
        assert sam.get(reverse("calls-audio-mix", args=[sams_call.id]), REMOTE_ADDR="203.0.113.9").status_code == 200

    assert log_of(sams_call) == [
        ("sam", "view", "", "203.0.113.9"),
        ("sam", "export", "vtt", "203.0.113.9"),
        ("sam", "audio", "mixed", "203.0.113.9"),
    ]
    assert AccessLog.objects.filter(call=sams_call).latest("id").at is not None


def test_a_search_is_logged_with_its_text_and_filters(centre: ContactCentre, sams_call: Call) -> None:
    logged_in(centre.sue).get(reverse("calls-list"), {"q": "aardvark", "spoken_by": "customer", "has_gaps": ""})
    assert log_of(None) == [("sue", "search", "q=aardvark; spoken_by=customer", "127.0.0.1")]


def test_a_search_in_the_admin_is_logged(centre: ContactCentre, sams_call: Call) -> None:
    logged_in(centre.sue).get(reverse("admin:calls_call_changelist"), {"q": "aardvark"})
    assert log_of(None) == [("sue", "search", "admin: aardvark", "127.0.0.1")]


def test_a_calls_supervisor_reads_who_looked_at_it_and_when(centre: ContactCentre, sams_call: Call) -> None:
    logged_in(centre.sam.user).get(sams_call.get_absolute_url())
    logged_in(centre.quinn).get(reverse("calls-transcript", args=[sams_call.id, "txt"]))

    page = logged_in(centre.sue).get(reverse("calls-access-history", args=[sams_call.id]))

    assert page.status_code == 200
    rows = re.findall(r'<tr data-access="([^"]+)">.*?<td data-label="Who">([^<]*)</td>', page.content.decode(), re.S)
    assert rows == [("access history", "sue"), ("export", "quinn"), ("view", "sam")]  # newest first


@pytest.mark.parametrize(("persona", "status"), [("sue", 200), ("quinn", 200), ("sam", 404), ("bill", 404)])
def test_the_access_history_is_for_the_calls_supervisors_and_all_calls_users(
    centre: ContactCentre, sams_call: Call, persona: str, status: int
) -> None:
    """Not for the call's own agent (whose looks it records), nor for another team's supervisor."""
    user = {"sue": centre.sue, "quinn": centre.quinn, "sam": centre.sam.user, "bill": centre.bill}[persona]
    client = logged_in(user)
    assert client.get(reverse("calls-access-history", args=[sams_call.id])).status_code == status
    if persona != "bill":
        page = client.get(sams_call.get_absolute_url()).content.decode()
        assert ("Access history</a>" in page) == (status == 200)
