"""Legal hold (issue #15): a held call is never purged nor deleted, by anyone; once released it is purged
on the next run if expired; placing and releasing take a permission and are audited."""

from __future__ import annotations

import datetime
from pathlib import Path

import pytest
from django.contrib.auth.models import Permission, User
from django.utils import timezone

from calls import holds, retention
from calls.audio_files import audio_directory
from calls.models import AccessLog, Call, LegalHold, Participant, TranscriptSegment
from tests.calls.conftest import logged_in
from tests.calls.test_retention import audio_dir, ended_call, purge, sales_policy  # noqa: F401 - fixture

pytestmark = pytest.mark.django_db


@pytest.fixture
def lawyer(db: None) -> User:
    """Dana in legal may place and release holds, and read calls in the admin."""
    user = User.objects.create_user("dana", password="x", is_staff=True)
    user.user_permissions.set(
        Permission.objects.filter(content_type__app_label="calls", codename__in=["place_legal_hold", "watch_call"])
    )
    return user


@pytest.fixture
def superuser(db: None) -> User:
    return User.objects.create_superuser("erin", password="x")


def hold(user: User, **scope: object) -> LegalHold:
    return holds.place(LegalHold(reason="Dispute over a refund", case_reference="CASE-7", **scope), user)


def test_held_calls_are_never_purged_and_released_ones_go_on_the_next_run(lawyer: User) -> None:
    sales_policy()
    held_alone, held_by_number, outside_range, not_held = [ended_call(40) for _ in range(4)]
    Call.objects.filter(pk=outside_range.pk).update(created_at=timezone.now() - datetime.timedelta(days=400))
    call_hold = hold(lawyer, call=held_alone)
    since = (timezone.now() - datetime.timedelta(days=60)).date()
    hold(lawyer, identity="+1 (425) 555-0100", date_from=since)  # the caller of every test call
    for other_caller in (held_alone, not_held):  # someone else called
        Call.objects.filter(pk=other_caller.pk).update(caller="4:+14255550111")
        Participant.objects.filter(call=other_caller, raw_id="4:+14255550100").update(raw_id="4:+14255550111")

    output = purge()

    for call in (held_alone, held_by_number):
        assert TranscriptSegment.objects.filter(call=call).count() == 2
        assert audio_directory(call.id).is_dir()
        assert str(call.id) not in output
    for call in (outside_range, not_held):
        assert not TranscriptSegment.objects.filter(call=call).exists()
        assert not audio_directory(call.id).exists()

    assert holds.release(call_hold, lawyer)
    purge()
    assert not TranscriptSegment.objects.filter(call=held_alone).exists()
    assert TranscriptSegment.objects.filter(call=held_by_number).count() == 2


def test_placing_and_releasing_take_the_permission_and_are_audited(lawyer: User, staff_user: User) -> None:
    call = ended_call(1)
    form = {"call": str(call.id), "identity": "", "reason": "Subpoena", "case_reference": "CASE-9"}

    assert logged_in(staff_user).post("/admin/calls/legalhold/add/", form).status_code == 403
    assert not LegalHold.objects.exists()

    client = logged_in(lawyer)
    assert client.post("/admin/calls/legalhold/add/", form).status_code == 302
    placed = LegalHold.objects.get()
    assert (placed.placed_by, placed.call, placed.in_force) == (lawyer, call, True)
    assert AccessLog.objects.filter(user=lawyer, call=call, action=holds.PLACED, detail__contains="CASE-9").exists()

    release = {"action": "release_holds", "_selected_action": [placed.pk]}
    client.post("/admin/calls/legalhold/", release)
    placed.refresh_from_db()
    assert (placed.released_by, placed.in_force) == (lawyer, False)
    assert AccessLog.objects.filter(user=lawyer, call=call, action=holds.RELEASED).exists()


def test_a_hold_covers_a_call_or_an_identity_never_neither(lawyer: User) -> None:
    response = logged_in(lawyer).post(
        "/admin/calls/legalhold/add/", {"call": "", "identity": "", "reason": "x", "case_reference": "y"}
    )
    assert response.status_code == 200
    assert "either one call or an identity" in response.content.decode()
    assert not LegalHold.objects.exists()


def test_nobody_can_delete_a_held_call_in_the_admin(lawyer: User, superuser: User, audio_dir: Path) -> None:  # noqa: F811
    held, free = ended_call(1), ended_call(1)
    hold(lawyer, call=held)
    client = logged_in(superuser)

    assert client.get(f"/admin/calls/call/{held.pk}/delete/").status_code == 403
    assert client.post(f"/admin/calls/call/{held.pk}/delete/", {"post": "yes"}).status_code == 403
    response = client.post(
        "/admin/calls/call/",
        {"action": "delete_selected", "_selected_action": [held.pk, free.pk], "post": "yes"},
        follow=True,
    )
    assert [status for _, status in response.redirect_chain] == [302]
    assert TranscriptSegment.objects.filter(call=held).count() == 2 and audio_directory(held.id).is_dir()
    assert not TranscriptSegment.objects.filter(call=free).exists() and not audio_directory(free.id).exists()
    assert f"{held.pk}: This call is under legal hold" in response.content.decode()  # the page's message


def test_the_call_page_and_the_list_show_holds(lawyer: User, staff_user: User) -> None:
    held, free = ended_call(1), ended_call(1)
    placed = hold(lawyer, call=held)
    retention.recompute_expiry()
    client = logged_in(staff_user)

    page = client.get(held.get_absolute_url()).content.decode()
    assert 'data-legal-hold="in-force"' in page and "CASE-7" in page
    assert "data-legal-hold" not in client.get(free.get_absolute_url()).content.decode()

    listed = client.get("/calls/", {"on_hold": "on"}).content.decode()
    assert str(held.id) in listed and str(free.id) not in listed

    holds.release(placed, lawyer)
    page = client.get(held.get_absolute_url()).content.decode()
    assert 'data-legal-hold="released"' in page
    assert str(held.id) not in client.get("/calls/", {"on_hold": "on"}).content.decode()
    assert "Expires" in page  # its expiry dates stay visible
