"""Who sees which call, on every surface: an agent their own calls, a supervisor their teams' calls (and
the calls to numbers routed to their team), quality staff every call. Out of scope is 404, as a call
that does not exist; a call no agent joined and no route maps is seen only with all calls.

The day's calls (all through the domain's own paths: the agents join as participants):
sam_call (Sam, Support), kim_call (Kim, Billing), ivr_call (to the support line, no agent, still live),
stray_call (no agent, a number no team has). Each has a word of its own, so a page that leaks one shows it.
"""

from __future__ import annotations

import io
import json
import re
import struct
import zipfile
from dataclasses import dataclass
from io import StringIO
from pathlib import Path

import pytest
from django.contrib.auth.models import Permission, User
from django.core.management import CommandError, call_command
from django.test import override_settings
from django.urls import reverse
from django.utils import timezone

from calls import participants
from calls.audio_files import audio_directory, audio_file_name
from calls.models import AccessLog, Call, CallEvent, Gap, MediaStream, Participant
from calls.permissions import scope_of, visible_calls
from streaming.audio import append_pcm
from tests.calls.conftest import end, logged_in, new_call, say
from tests.conftest import KIM, SAM, SUPPORT_LINE, ContactCentre

pytestmark = pytest.mark.django_db

CUSTOMERS = {"sam": "4:+14255550101", "kim": "4:+14255550102", "ivr": "4:+14255550103", "stray": "4:+14255550104"}
WORDS = {"sam": "aardvark", "kim": "bison", "ivr": "camel", "stray": "dingo"}
SEES = {
    "sam": {"sam"},
    "kim": {"kim"},
    "sue": {"sam", "ivr"},
    "bill": {"kim"},
    "quinn": {"sam", "kim", "ivr", "stray"},
}
PERSONAS = sorted(SEES)


@dataclass(frozen=True)
class Day:
    calls: dict[str, Call]
    users: dict[str, User]

    def names_of(self, call_ids: set[str]) -> set[str]:
        return {name for name, call in self.calls.items() if str(call.id) in call_ids}


@pytest.fixture
def day(centre: ContactCentre) -> Day:
    sam_call = new_call(CUSTOMERS["sam"])
    participants.ensure_participant(call_id=sam_call.id, raw_id=SAM)
    say(sam_call, CUSTOMERS["sam"], "I would like a refund for the aardvark.", 1000)
    say(sam_call, SAM, "The aardvark refund is done.", 4000)

    kim_call = new_call(CUSTOMERS["kim"])
    participants.ensure_participant(call_id=kim_call.id, raw_id=KIM)
    say(kim_call, CUSTOMERS["kim"], "Please refund the bison charge.", 1000)
    say(kim_call, KIM, "I have refunded the bison charge.", 4000)

    ivr_call = new_call(CUSTOMERS["ivr"], callee=SUPPORT_LINE)
    say(ivr_call, CUSTOMERS["ivr"], "Refund the camel order, please.", 1000)

    stray_call = new_call(CUSTOMERS["stray"], callee="4:+18005550999")
    say(stray_call, CUSTOMERS["stray"], "Refund the dingo order.", 1000)

    calls = {"sam": end(sam_call), "kim": end(kim_call), "ivr": ivr_call, "stray": end(stray_call)}
    users = {"sam": centre.sam.user, "kim": centre.kim.user, "sue": centre.sue, "bill": centre.bill}
    users["quinn"] = centre.quinn
    return Day(calls, users)


def call_ids_linked(html: str, prefix: str = "/calls/") -> set[str]:
    return set(re.findall(re.escape(prefix) + r"([0-9a-f-]{36})/", html))


def hits_of(html: str) -> str:
    match = re.search(r"<ol class=\"hits\".*?</ol>", html, re.DOTALL)
    return match.group(0) if match else ""


# --- the rule -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("persona", PERSONAS)
def test_the_scope_in_memory_agrees_with_the_scope_in_the_database(day: Day, persona: str) -> None:
    """The live feed decides from events (Scope.includes) what the pages decide with queries."""
    scope = scope_of(day.users[persona])
    in_database = {str(pk) for pk in visible_calls(day.users[persona]).values_list("pk", flat=True)}
    in_memory = {str(call.id) for call in Call.objects.all() if scope.includes(call.agent_ids, call.callee)}
    assert day.names_of(in_database) == day.names_of(in_memory) == SEES[persona]


def test_a_superuser_sees_every_call(day: Day) -> None:
    boss = User.objects.create_superuser("boss", password="x")
    assert set(visible_calls(boss)) == set(day.calls.values())


def test_watching_without_an_agent_a_team_or_all_calls_shows_no_call(day: Day) -> None:
    newcomer = User.objects.create_user("nia", password="x", is_staff=True)
    newcomer.user_permissions.set(Permission.objects.filter(codename="watch_call"))
    page = logged_in(newcomer).get(reverse("calls-list")).content.decode()
    assert call_ids_linked(page) == set()
    assert logged_in(newcomer).get(day.calls["stray"].get_absolute_url()).status_code == 404


# --- the dashboard --------------------------------------------------------------------------------------


@pytest.mark.parametrize("persona", PERSONAS)
def test_the_call_list_shows_exactly_the_calls_in_scope(day: Day, persona: str) -> None:
    page = logged_in(day.users[persona]).get(reverse("calls-list")).content.decode()
    assert day.names_of(call_ids_linked(page)) == SEES[persona]


@pytest.mark.parametrize("persona", PERSONAS)
def test_search_finds_and_quotes_only_calls_in_scope(day: Day, persona: str) -> None:
    page = logged_in(day.users[persona]).get(reverse("calls-list"), {"q": "refund"}).content.decode()
    hits = hits_of(page)
    assert day.names_of(call_ids_linked(hits)) == SEES[persona]
    for name, word in WORDS.items():
        assert (word in page) == (name in SEES[persona]), word  # no snippet of another call, anywhere


def test_filters_search_within_the_scope_only(day: Day) -> None:
    bill = logged_in(day.users["bill"])
    page = bill.get(reverse("calls-list"), {"participant": "+1 425 555 0101"}).content.decode()
    assert call_ids_linked(page) == set()  # Sam's customer, on a call Bill may not see
    page = bill.get(reverse("calls-list"), {"participant": "+1 425 555 0102"}).content.decode()
    assert day.names_of(call_ids_linked(page)) == {"kim"}


@pytest.mark.parametrize(
    ("spoken_by", "lines"),
    [
        ("agent", ["The aardvark refund is done.", "I have refunded the bison charge."]),
        ("customer", ["I would like a refund for the aardvark.", "Please refund the bison charge."]),
    ],
)
def test_search_can_keep_what_agents_or_what_customers_said(day: Day, spoken_by: str, lines: list[str]) -> None:
    page = logged_in(day.users["quinn"]).get(reverse("calls-list"), {"q": "refund", "spoken_by": spoken_by})
    hits = re.sub(r"</?mark>", "", hits_of(page.content.decode()))
    for line in lines:
        assert line in hits
    assert ("Refund the camel order" in hits) == (spoken_by == "customer")
    said_by_the_other = {"agent": "I would like a refund for the aardvark.", "customer": "The aardvark refund is done."}
    assert said_by_the_other[spoken_by] not in hits


@pytest.mark.parametrize("persona", PERSONAS)
def test_a_call_page_and_its_exports_answer_404_out_of_scope(day: Day, persona: str) -> None:
    client = logged_in(day.users[persona])
    for name, call in day.calls.items():
        expected = 200 if name in SEES[persona] else 404
        assert client.get(call.get_absolute_url()).status_code == expected, name
        for export_format in ("txt", "json"):
            response = client.get(reverse("calls-transcript", args=[call.id, export_format]))
            assert response.status_code == expected, (name, export_format)


def test_out_of_scope_looks_exactly_like_a_call_that_does_not_exist(day: Day) -> None:
    client = logged_in(day.users["bill"])
    out_of_scope = client.get(day.calls["sam"].get_absolute_url())
    missing = client.get("/calls/00000000-0000-0000-0000-000000000000/")
    assert out_of_scope.status_code == missing.status_code == 404
    assert unmasked(out_of_scope.content) == unmasked(missing.content)


def unmasked(page: bytes) -> bytes:
    """The page without its logout form's CSRF token, which is masked afresh on every page."""
    return re.sub(rb'name="csrfmiddlewaretoken" value="[^"]*"', b"", page)


def pcm(*samples: int) -> bytes:
    return struct.pack(f"<{len(samples)}h", *samples)


@pytest.mark.parametrize("persona", ["sam", "bill", "quinn"])
def test_audio_answers_404_out_of_scope(day: Day, persona: str, tmp_path: Path) -> None:
    client = logged_in(day.users[persona])
    with override_settings(AUDIO_CAPTURE=True, AUDIO_CAPTURE_DIR=tmp_path):
        for name, call in day.calls.items():
            raw_id = CUSTOMERS[name]
            speaker = Participant.objects.get(call=call, raw_id=raw_id)
            append_pcm(audio_directory(call.id) / audio_file_name(raw_id), 16000, pcm(*range(100)))
            expected = 200 if name in SEES[persona] else 404
            assert client.get(reverse("calls-audio", args=[call.id, speaker.pk])).status_code == expected, name
            assert client.get(reverse("calls-audio-mix", args=[call.id])).status_code == expected, name


def test_a_controller_out_of_scope_gets_404_and_changes_nothing(day: Day) -> None:
    day.users["bill"].user_permissions.add(Permission.objects.get(codename="control_call"))
    live = day.calls["ivr"]
    response = logged_in(day.users["bill"]).post(reverse("calls-hangup", args=[live.id]))
    assert response.status_code == 404
    assert Call.objects.get(pk=live.pk).state == live.state


def test_deleting_a_call_out_of_scope_is_404(day: Day) -> None:
    day.users["bill"].user_permissions.add(Permission.objects.get(codename="delete_calls"))
    client = logged_in(day.users["bill"])
    stray = day.calls["stray"]
    assert client.get(reverse("calls-delete", args=[stray.id])).status_code == 404
    response = client.post(reverse("calls-delete", args=[stray.id]), {"confirmation": str(stray.id), "reason": "x"})
    assert response.status_code == 404
    assert Call.objects.get(pk=stray.pk).segments.exists()
    assert client.get(reverse("calls-delete", args=[day.calls["kim"].id])).status_code == 200


# --- the admin ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("persona", PERSONAS)
def test_the_admin_lists_exactly_the_calls_in_scope(day: Day, persona: str) -> None:
    page = logged_in(day.users[persona]).get(reverse("admin:calls_call_changelist")).content.decode()
    assert day.names_of(call_ids_linked(page, "/admin/calls/call/")) == SEES[persona]


def test_the_admin_search_finds_transcripts_only_in_scope(day: Day) -> None:
    page = logged_in(day.users["bill"]).get(reverse("admin:calls_call_changelist"), {"q": "refund"}).content.decode()
    assert day.names_of(call_ids_linked(page, "/admin/calls/call/")) == {"kim"}


def test_an_admin_change_page_out_of_scope_is_as_for_a_call_that_does_not_exist(day: Day) -> None:
    client = logged_in(day.users["bill"])
    out_of_scope = client.get(reverse("admin:calls_call_change", args=[day.calls["sam"].id]))
    missing = client.get(reverse("admin:calls_call_change", args=["00000000-0000-0000-0000-000000000000"]))
    assert out_of_scope.status_code == missing.status_code == 302  # Django's admin: "doesn't exist", back to the index
    assert out_of_scope["Location"] == missing["Location"]
    assert "aardvark" not in client.get(out_of_scope["Location"], follow=True).content.decode()
    assert client.get(reverse("admin:calls_call_change", args=[day.calls["kim"].id])).status_code == 200


ROW_MODELS = {"participant": Participant, "callevent": CallEvent, "gap": Gap, "mediastream": MediaStream}


@pytest.mark.parametrize("model", sorted(ROW_MODELS))
def test_the_admin_pages_of_a_calls_rows_are_scoped_by_their_call(day: Day, model: str) -> None:
    for call in day.calls.values():
        CallEvent.objects.create(call=call, type="Callscribe.Note", time=timezone.now())
        Gap.objects.create(call=call, reason=Gap.Reason.AUDIO_GAP, started_at=timezone.now())
        MediaStream.objects.create(call=call, kind=MediaStream.Kind.AUDIO)
    bill = day.users["bill"]
    bill.user_permissions.add(Permission.objects.get(codename=f"view_{model}"))
    client = logged_in(bill)

    page = client.get(reverse(f"admin:calls_{model}_changelist")).content.decode()

    linked = {int(pk) for pk in re.findall(rf"/admin/calls/{model}/(\d+)/change/", page)}
    rows = ROW_MODELS[model].objects
    assert linked == set(rows.filter(call=day.calls["kim"]).values_list("pk", flat=True)) != set()
    sams = rows.filter(call=day.calls["sam"]).first()
    assert client.get(reverse(f"admin:calls_{model}_change", args=[sams.pk])).status_code == 302  # "doesn't exist"


def test_the_admins_bulk_export_exports_only_calls_in_scope(day: Day) -> None:
    every_call = [str(call.id) for call in day.calls.values()]
    response = logged_in(day.users["bill"]).post(
        reverse("admin:calls_call_changelist"), {"action": "export_transcripts", "_selected_action": every_call}
    )
    archive = zipfile.ZipFile(io.BytesIO(response.content))
    assert archive.namelist() == [f"call-{day.calls['kim'].id}.json"]
    assert AccessLog.objects.filter(user=day.users["bill"], action="export").count() == 1


# --- commands -------------------------------------------------------------------------------------------


def export_as(username: str, call: Call) -> str:
    out = StringIO()
    call_command("export_transcript", str(call.id), "--format", "json", "--user", username, stdout=out)
    return out.getvalue()


def test_export_transcript_as_a_user_reads_only_calls_in_their_scope(day: Day) -> None:
    document = json.loads(export_as("bill", day.calls["kim"]))
    assert [segment["speaker"] for segment in document["segments"]] == ["Customer +14255550102", "Agent Kim Lee"]
    assert AccessLog.objects.get(user=day.users["bill"], action="export").call == day.calls["kim"]
    with pytest.raises(CommandError, match="No call with callConnectionId or id"):
        export_as("bill", day.calls["sam"])


def test_export_transcript_refuses_an_unknown_user(day: Day) -> None:
    with pytest.raises(CommandError, match="'nobody' is not a staff user who may watch calls"):
        export_as("nobody", day.calls["kim"])


def test_export_participant_as_a_user_leaves_out_calls_out_of_scope(day: Day, tmp_path: Path) -> None:
    # Sam's customer calls again, this time Kim answers: Bill may export that call only.
    again = new_call(CUSTOMERS["sam"])
    participants.ensure_participant(call_id=again.id, raw_id=KIM)
    target = tmp_path / "export.zip"
    out = StringIO()
    call_command("export_participant", CUSTOMERS["sam"], "--output", str(target), "--user", "bill", stdout=out)
    names = zipfile.ZipFile(target).namelist()
    assert {name.split(".")[0] for name in names} == {f"call-{again.id}"}
