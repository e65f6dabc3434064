"""Retention policies and the purge (issue #15): the right calls expire, their files go, a tombstone and
a receipt stay, a dry run changes nothing, policy changes move expiry dates, and live ingest on another
call goes on while a purge runs. Real PostgreSQL, real files in a temporary AUDIO_CAPTURE_DIR."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from io import StringIO
from pathlib import Path

import pytest
from channels.db import database_sync_to_async
from django.contrib.auth.models import User
from django.core.management import call_command
from django.test import Client
from django.utils import timezone

from calls import participants, retention
from calls.audio_files import audio_directory, audio_file_name
from calls.models import (
    AccessLog,
    Call,
    CallEvent,
    CallRetention,
    DeletionReceipt,
    Participant,
    RetentionPolicy,
    TranscriptSegment,
)
from tests.calls.conftest import bulk_segments, logged_in, new_call, say
from tests.streaming import acs_packets as acs
from tests.streaming.test_media_consumer import open_media_socket

SALES_LINE = "4:+14255550199"


@pytest.fixture(autouse=True)
def audio_dir(settings: object, tmp_path: Path) -> Path:
    settings.AUDIO_CAPTURE = True
    settings.AUDIO_CAPTURE_DIR = tmp_path / "audio"
    settings.RETENTION_TRANSCRIPT_DAYS = 365
    settings.RETENTION_AUDIO_DAYS = 90
    settings.RETENTION_EVENTS_DAYS = 90
    settings.RETENTION_ACCESS_LOG_DAYS = 730
    return settings.AUDIO_CAPTURE_DIR


def sales_policy(**days: int) -> RetentionPolicy:
    values = {"transcript_days": 30, "audio_days": 7, "events_days": 30, "access_log_days": 60} | days
    return RetentionPolicy.objects.create(
        name="Sales line", priority=10, direction=Call.Direction.INBOUND, called="+1 (425) 555-0199", **values
    )


def ended_call(days_ago: int, *, callee: str = SALES_LINE, direction: str = Call.Direction.INBOUND) -> Call:
    """A finished call with a transcript, participants, history and audio files (one per speaker and a mix)."""
    call = new_call(callee=callee, direction=direction, caller_display_name="Pat Caller")
    participants.ensure_participant(call_id=call.id, raw_id=acs.CALLER, display_name="Pat Caller")
    participants.ensure_participant(call_id=call.id, raw_id=acs.AGENT)
    say(call, acs.CALLER, "My card number is on file.", 0)
    say(call, acs.AGENT, "Thanks, I see it.", 3000)
    CallEvent.objects.create(call=call, type="Microsoft.Communication.CallConnected", time=timezone.now())
    directory = audio_directory(call.id)
    (directory / "mixdown").mkdir(parents=True)
    for raw_id in (acs.CALLER, acs.AGENT):
        (directory / audio_file_name(raw_id)).write_bytes(b"RIFF" + bytes(100))
    (directory / "mixdown" / "all.wav").write_bytes(b"RIFF" + bytes(100))
    ended_at = timezone.now() - timedelta(days=days_ago)
    Call.objects.filter(pk=call.pk).update(
        state=Call.State.DISCONNECTED, created_at=ended_at - timedelta(minutes=5), ended_at=ended_at
    )
    call.refresh_from_db()
    return call


def everything_of(call: Call) -> dict[str, int]:
    return {
        "segments": TranscriptSegment.objects.filter(call=call).count(),
        "participants": Participant.objects.filter(call=call).count(),
        "events": CallEvent.objects.filter(call=call).count(),
        "files": len([path for path in audio_directory(call.id).rglob("*") if path.is_file()]),
    }


INTACT = {"segments": 2, "participants": 2, "events": 1, "files": 3}


def purge(*args: str) -> str:
    out = StringIO()
    call_command("purge_expired", *args, stdout=out)
    return out.getvalue()


@pytest.mark.django_db
def test_a_policy_expires_the_right_calls_and_no_others() -> None:
    sales_policy()
    old_sale = ended_call(40)  # transcript (30 days) and audio (7 days) expired
    recent_sale = ended_call(10)  # only its audio expired
    old_outbound = ended_call(40, direction=Call.Direction.OUTBOUND)  # the default: nothing expired yet
    old_support = ended_call(100, callee="4:+14255550111")  # the default: audio and events expired (90 days)
    live = new_call(callee=SALES_LINE)
    participants.ensure_participant(call_id=live.id, raw_id=acs.CALLER)
    say(live, acs.CALLER, "Still talking.", 0)

    output = purge()

    assert everything_of(old_sale) == {"segments": 0, "participants": 0, "events": 0, "files": 0}
    assert not audio_directory(old_sale.id).exists()
    assert everything_of(recent_sale) == INTACT | {"files": 0}
    assert everything_of(old_outbound) == INTACT
    assert everything_of(old_support) == INTACT | {"files": 0, "events": 0}
    assert everything_of(live) == {"segments": 1, "participants": 1, "events": 0, "files": 0}
    assert not CallRetention.objects.filter(call=live).exists()  # a live call has no expiry yet
    assert f"call {old_sale.id}: transcript, audio, events" in output
    assert f"call {recent_sale.id}: audio" in output
    assert str(old_outbound.id) not in output


@pytest.mark.django_db
def test_what_stays_is_a_tombstone_and_a_receipt(staff_user: User) -> None:
    policy = sales_policy()
    call = ended_call(40)

    purge()

    call.refresh_from_db()
    assert (call.direction, call.caller, call.callee, call.caller_display_name) == ("inbound", "", "", "")
    assert call.ended_at - call.created_at == timedelta(minutes=5)
    tombstone = CallRetention.objects.get(call=call)
    assert tombstone.policy == policy
    assert None not in (tombstone.transcript_purged_at, tombstone.audio_purged_at, tombstone.events_purged_at)
    receipt = DeletionReceipt.objects.get()
    assert receipt.kind == DeletionReceipt.Kind.EXPIRY
    assert receipt.rule == "Retention policy “Sales line”"
    assert receipt.call_ids == [str(call.id)]
    assert (receipt.segments, receipt.participants, receipt.events, receipt.audio_files) == (2, 2, 1, 3)
    assert receipt.finished_at is not None
    assert tombstone.transcript_purged_by == f"Retention policy “Sales line” (receipt {receipt.pk})"

    page = logged_in(staff_user).get(call.get_absolute_url())
    assert page.status_code == 200
    assert "Sales line" in page.content.decode()
    assert f"receipt {receipt.pk}" in page.content.decode()
    assert "My card number" not in page.content.decode()


@pytest.mark.django_db
def test_events_and_old_access_log_entries_go_on_their_own_dates(staff_user: User) -> None:
    sales_policy(events_days=35, access_log_days=20)
    call = ended_call(40)
    old_view = AccessLog.objects.create(user=staff_user, call=call, action="view")
    AccessLog.objects.filter(pk=old_view.pk).update(at=timezone.now() - timedelta(days=21))
    recent_view = AccessLog.objects.create(user=staff_user, call=call, action="view")

    purge()

    assert CallEvent.objects.filter(call=call).count() == 0
    assert list(AccessLog.objects.filter(call=call)) == [recent_view]
    receipt = DeletionReceipt.objects.get()
    assert (receipt.events, receipt.access_logs) == (1, 1)


@pytest.mark.django_db
def test_a_dry_run_changes_nothing_and_says_what_would_go() -> None:
    sales_policy()
    call = ended_call(40)
    Call.objects.filter(pk=call.pk).update(callee=SALES_LINE)

    output = purge("--dry-run")

    assert "Sales line: would remove 2 segments, 2 participants, 1 events, 0 access logs, 3 audio files" in output
    assert f"call {call.id}: transcript, audio, events" in output
    assert everything_of(call) == INTACT
    assert not CallRetention.objects.exists()  # not even the expiry dates were stored
    assert not DeletionReceipt.objects.exists()
    call.refresh_from_db()
    assert call.caller == acs.CALLER


@pytest.mark.django_db
def test_nothing_expired_says_so() -> None:
    ended_call(1)
    assert purge() == "Nothing has expired.\n"
    assert not DeletionReceipt.objects.exists()


@pytest.mark.django_db
def test_a_call_gets_its_policy_and_dates_when_it_ends() -> None:
    from calls import control

    policy = sales_policy()
    call = new_call(callee=SALES_LINE)
    control.end_call(call, state=Call.State.DISCONNECTED, reason="hung up")

    dates = CallRetention.objects.get(call=call)
    assert dates.policy == policy
    assert dates.transcript_expires_at == call.ended_at + timedelta(days=30)
    assert dates.audio_expires_at == call.ended_at + timedelta(days=7)


@pytest.fixture
def superuser_client(db: None) -> Client:
    return logged_in(User.objects.create_superuser("erin", password="x"))


def policy_form(policy: RetentionPolicy, **changes: object) -> dict[str, object]:
    fields = ["name", "priority", "direction", "called", "transcript_days", "audio_days", "events_days"]
    return {name: getattr(policy, name) for name in [*fields, "access_log_days"]} | changes


@pytest.mark.django_db
def test_changing_a_policy_in_the_admin_recomputes_the_expiry_of_the_calls_it_covers(superuser_client: Client) -> None:
    policy = sales_policy()
    sale, other = ended_call(10), ended_call(10, callee="4:+14255550111")
    retention.recompute_expiry()
    other_dates = CallRetention.objects.get(call=other).transcript_expires_at

    response = superuser_client.post(
        f"/admin/calls/retentionpolicy/{policy.pk}/change/", policy_form(policy, transcript_days=5)
    )
    assert response.status_code == 302

    assert CallRetention.objects.get(call=sale).transcript_expires_at == sale.ended_at + timedelta(days=5)
    assert CallRetention.objects.get(call=other).transcript_expires_at == other_dates
    # A new policy tried first takes the other call; deleting it gives the call back to the default.
    superuser_client.post(
        "/admin/calls/retentionpolicy/add/",
        policy_form(policy, name="Everything else", priority=1, direction="", called="", transcript_days=3),
    )
    assert CallRetention.objects.get(call=other).policy_name == "Everything else"
    assert CallRetention.objects.get(call=sale).policy_name == "Everything else"
    newest = RetentionPolicy.objects.get(name="Everything else")
    superuser_client.post(f"/admin/calls/retentionpolicy/{newest.pk}/delete/", {"post": "yes"})
    assert CallRetention.objects.get(call=other).policy_name == retention.DEFAULT_POLICY_NAME
    assert CallRetention.objects.get(call=sale).policy_name == "Sales line"


@pytest.mark.django_db
def test_recomputing_in_batches_covers_every_call() -> None:
    calls = [ended_call(10) for _ in range(5)]
    assert retention.recompute_expiry(batch_size=2) == 5
    assert CallRetention.objects.filter(call__in=calls).count() == 5
    assert retention.recompute_expiry(batch_size=2) == 0  # nothing changed, nothing written


@pytest.mark.django_db
def test_a_purged_call_keeps_its_policy_though_its_number_is_gone() -> None:
    policy = sales_policy(events_days=60)
    call = ended_call(40)
    purge()
    RetentionPolicy.objects.filter(pk=policy.pk).update(events_days=35)

    purge()  # recomputes: the call's number is gone, yet it is still the sales line's call

    assert CallRetention.objects.get(call=call).events_purged_at is not None
    assert CallEvent.objects.filter(call=call).count() == 0


@pytest.mark.django_db(transaction=True)
async def test_a_purge_runs_while_another_call_streams_finals(settings: object) -> None:
    """Live ingest (finals insert segments and lock their call's row) goes on while a big purge of
    another call deletes in batches; both finish, nothing of the live call is lost."""
    settings.RETENTION_PURGE_BATCH_SIZE = 200
    await database_sync_to_async(sales_policy)()
    expired = await database_sync_to_async(ended_call)(40)
    await database_sync_to_async(bulk_segments)(expired, 5000)
    live = await database_sync_to_async(new_call)()
    media = await open_media_socket(live)
    await media.send_to(text_data=acs.transcription_metadata())

    purging = asyncio.ensure_future(database_sync_to_async(retention.purge_expired)())
    sent = 0
    while not purging.done() or sent < 20:
        sent += 1
        await media.send_to(text_data=acs.transcription_data(acs.CALLER, f"Line {sent}.", sent * 10_000_000))
        await asyncio.sleep(0.01)
    (purged,) = await purging

    assert purged.removed.segments == 5002
    for _ in range(200):
        stored = await TranscriptSegment.objects.filter(call=live).acount()
        if stored == sent:
            break
        await asyncio.sleep(0.05)
    assert stored == sent
    assert not await TranscriptSegment.objects.filter(call=expired).aexists()
    await media.disconnect()
