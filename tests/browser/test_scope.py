"""Scope in the browser: a supervisor's live call list shows a call the moment their agent joins it,
and names who speaks as a reload would."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from urllib.parse import urlsplit

import pytest
import requests

from calls.models import TranscriptSegment
from calls.tokens import callback_url
from tests.browser.support import logged_in_page, media_socket, off_the_loop, wait_until
from tests.calls import conftest as given
from tests.conftest import KIM, ContactCentre
from tests.servers import AppServer
from tests.streaming import acs_packets as acs

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

SECOND = 10_000_000  # ACS ticks


@pytest.fixture
def bills_page(browser: object, dashboard_server: AppServer, centre: ContactCentre) -> Iterator[object]:
    with logged_in_page(browser, dashboard_server, centre.bill) as page:
        yield page


def acs_lists_participants(server: AppServer, call: object, *raw_ids: str) -> None:
    """ACS's ParticipantsUpdated, posted to the call's signed callback URL as ACS would."""
    updated = {
        "id": str(uuid.uuid4()),
        "source": "calling/callConnections/acs-call-1",
        "type": "Microsoft.Communication.ParticipantsUpdated",
        "data": {
            "callConnectionId": "acs-call-1",
            "participants": [{"identifier": {"rawId": raw_id}, "isMuted": False} for raw_id in raw_ids],
            "sequenceNumber": 1,
        },
        "time": "2026-11-25T10:00:00.1234567+00:00",
        "specversion": "1.0",
    }
    callback = server.base_url + "/api/callbacks?" + urlsplit(callback_url(call.id)).query
    assert requests.post(callback, json=[updated], timeout=10).status_code == 200


def test_a_call_appears_in_a_supervisors_live_list_when_their_agent_joins_it(
    bills_page: object, dashboard_server: AppServer
) -> None:
    from playwright.sync_api import expect

    page = bills_page
    call = off_the_loop(given.new_call)
    page.goto("/calls/")
    expect(page.locator("[data-live-status]").first).to_have_attribute("data-state", "live")
    row = page.locator(f'tr[data-call-id="{call.id}"]')

    with media_socket(dashboard_server, call.id) as media:
        media.send(acs.transcription_metadata())
        media.send(acs.transcription_data(acs.CALLER, "Is anybody there?", 1 * SECOND))
        wait_until(lambda: off_the_loop(TranscriptSegment.objects.filter(call=call).exists), message="the final")
        expect(row).to_have_count(0)  # not Bill's call: nothing of it reaches his page
        expect(page.locator("[data-empty-row]")).to_be_visible()

        acs_lists_participants(dashboard_server, call, acs.CALLER, KIM)  # Kim of Billing joins
        expect(row).to_be_visible()
        media.send(acs.transcription_data(KIM, "Billing, this is Kim.", 3 * SECOND))
        expect(row.locator('[data-field="last"]')).to_have_text("Agent Kim Lee: Billing, this is Kim.")

        row.get_by_role("link").click()
        expect(page.locator(".turn .speaker")).to_have_text(["Customer +14255550100", "Agent Kim Lee"])
