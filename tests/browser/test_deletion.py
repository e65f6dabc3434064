"""Deleting a call in a real browser: the typed confirmation (issue #15)."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
from django.contrib.auth.models import Permission, User

from calls.models import DeletionReceipt, TranscriptSegment
from tests.browser.support import logged_in_page, off_the_loop
from tests.calls import conftest as given
from tests.servers import AppServer
from tests.streaming import acs_packets as acs

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def records_officer() -> User:
    user = User.objects.create_user("frank", password="x", is_staff=True)
    user.user_permissions.set(
        Permission.objects.filter(
            content_type__app_label="calls", codename__in=["watch_call", "delete_calls", "view_all_calls"]
        )
    )
    return user


@pytest.fixture
def page(browser: object, dashboard_server: AppServer) -> Iterator[object]:
    user = off_the_loop(records_officer)
    with logged_in_page(browser, dashboard_server, user) as page:
        yield page


def test_a_call_is_deleted_only_once_its_id_is_typed(page: object) -> None:
    from playwright.sync_api import expect

    call = off_the_loop(given.end, off_the_loop(given.new_call))
    off_the_loop(given.say, call, acs.CALLER, "My account number is 12345678.", 0)
    page.goto(f"/calls/{call.id}/")
    page.get_by_role("link", name="Delete this call…").click()
    expect(page).to_have_url(re.compile(rf"/calls/{call.id}/delete$"))

    page.get_by_label("Type the call's id to confirm").fill("delete it")
    page.get_by_label("Why is it deleted?").fill("Erasure request, ticket 42")
    page.get_by_role("button", name="Delete the call").click()
    expect(page.get_by_text("That is not this call's id: nothing was deleted.")).to_be_visible()
    assert off_the_loop(lambda: TranscriptSegment.objects.filter(call=call).count()) == 1

    page.get_by_label("Type the call's id to confirm").fill(str(call.id))
    page.get_by_role("button", name="Delete the call").click()
    expect(page).to_have_url(re.compile(rf"/calls/{call.id}/$"))
    expect(page.get_by_text(re.compile(r"Call deleted: only its tombstone is left"))).to_be_visible()
    expect(page.locator('[data-retention-part="Transcript"]')).to_contain_text("Deleted by frank")
    expect(page.get_by_text("My account number")).to_have_count(0)
    receipt = off_the_loop(DeletionReceipt.objects.get)
    assert receipt.rule == "Deleted by frank: Erasure request, ticket 42"
