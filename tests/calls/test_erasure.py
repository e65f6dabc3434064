"""Requests by a person (issue #15): erasure by phone number across several calls (held and live calls
skipped and listed, one receipt), its dry run, the admin action's permission, and access as one zip."""

from __future__ import annotations

import zipfile
from io import StringIO
from pathlib import Path

import pytest
from django.contrib.auth.models import Permission, User
from django.core.management import call_command

from calls import holds
from calls.audio_files import audio_directory
from calls.models import AccessLog, Call, DeletionReceipt, LegalHold, Participant
from tests.calls.conftest import logged_in, new_call, say
from tests.calls.test_retention import INTACT, audio_dir, ended_call, everything_of  # noqa: F401 - fixture
from tests.streaming import acs_packets as acs

pytestmark = pytest.mark.django_db

OTHER_CALLER = "4:+14255550111"


def command(name: str, *args: str) -> str:
    out = StringIO()
    call_command(name, *args, stdout=out)
    return out.getvalue()


@pytest.fixture
def calls_of_pat(staff_user: User) -> dict[str, Call]:
    """Pat (+1 425 555 0100, acs.CALLER) called three times; a fourth call is someone else's."""
    first, second, held = ended_call(3), ended_call(2), ended_call(1)
    holds.place(LegalHold(call=held, reason="Complaint", case_reference="CASE-3"), staff_user)
    live = new_call()
    Participant.objects.create(call=live, raw_id=acs.CALLER)
    someone_else = ended_call(1)
    Call.objects.filter(pk=someone_else.pk).update(caller=OTHER_CALLER)
    Participant.objects.filter(call=someone_else, raw_id=acs.CALLER).update(raw_id=OTHER_CALLER)
    return {"first": first, "second": second, "held": held, "live": live, "someone_else": someone_else}


def test_erasure_by_phone_number_across_several_calls(calls_of_pat: dict[str, Call]) -> None:
    calls = calls_of_pat
    output = command("erase_participant", "+1 (425) 555-0100", "--reason", "Ticket 77")

    receipt = DeletionReceipt.objects.get()
    for name in ("first", "second"):
        assert everything_of(calls[name]) == {"segments": 0, "participants": 0, "events": 0, "files": 0}
        assert not audio_directory(calls[name].id).exists()
        assert f"call {calls[name].pk}" in output
    assert everything_of(calls["held"]) == INTACT
    assert everything_of(calls["someone_else"]) == INTACT
    assert Participant.objects.filter(call=calls["live"], raw_id=acs.CALLER).exists()
    assert f"Skipped, under legal hold: call {calls['held'].pk}" in output
    assert f"Skipped, still live (run again once it has ended): call {calls['live'].pk}" in output
    assert f"Erased 2 calls (receipt {receipt.pk})" in output
    assert (receipt.kind, sorted(receipt.call_ids)) == (
        "erasure",
        sorted([str(calls["first"].pk), str(calls["second"].pk)]),
    )
    assert (receipt.segments, receipt.participants, receipt.audio_files) == (4, 4, 6)
    assert receipt.rule == "Erasure request for …0100: Ticket 77"
    assert "4255550100" not in receipt.rule + receipt.detail  # the receipt does not keep what was erased
    assert str(calls["held"].pk) in receipt.detail


def test_an_erasure_dry_run_changes_nothing(calls_of_pat: dict[str, Call]) -> None:
    output = command("erase_participant", acs.CALLER, "--dry-run")
    assert output.startswith("Would erase 2 calls: 4 segments, 4 participants, 2 events, 0 access logs, 6 audio files")
    for call in calls_of_pat.values():
        if call.is_live:
            continue
        assert everything_of(call) == INTACT
    assert not DeletionReceipt.objects.exists()


def test_the_admin_action_takes_the_permission(calls_of_pat: dict[str, Call], staff_user: User) -> None:
    participant = Participant.objects.get(call=calls_of_pat["first"], raw_id=acs.CALLER)
    erase = {"action": "erase_people", "_selected_action": [participant.pk]}
    staff_user.user_permissions.add(Permission.objects.get(codename="view_participant"))
    logged_in(staff_user).post("/admin/calls/participant/", erase)
    assert everything_of(calls_of_pat["first"]) == INTACT

    staff_user.user_permissions.add(Permission.objects.get(codename="delete_calls"))
    response = logged_in(staff_user).post("/admin/calls/participant/", erase)
    assert response.status_code == 302
    assert everything_of(calls_of_pat["first"]) == {"segments": 0, "participants": 0, "events": 0, "files": 0}
    assert everything_of(calls_of_pat["held"]) == INTACT
    assert DeletionReceipt.objects.get().user == staff_user


def test_access_by_person_is_one_archive_of_every_transcript(calls_of_pat: dict[str, Call], tmp_path: Path) -> None:
    say(calls_of_pat["live"], acs.CALLER, "Still on the line.", 0)
    target = tmp_path / "pat.zip"

    output = command("export_participant", "+14255550100", "--output", str(target))

    assert output == f"Wrote 4 calls' transcripts to {target}.\n"
    with zipfile.ZipFile(target) as archive:
        names = set(archive.namelist())
        mine = [calls_of_pat[name] for name in ("first", "second", "held", "live")]
        assert names == {f"call-{call.id}.{ext}" for call in mine for ext in ("json", "txt", "vtt", "srt")}
        assert "My card number is on file." in archive.read(f"call-{calls_of_pat['first'].id}.txt").decode()
    assert AccessLog.objects.filter(action="export", call=calls_of_pat["first"]).exists()
