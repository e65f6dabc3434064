"""Revealing a redacted card number in a real browser: the reason, the original, the access log (#16)."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
from cryptography.fernet import Fernet
from django.contrib.auth.models import User

from calls.models import AccessLog, TranscriptSegment
from tests.browser.support import logged_in_page, media_socket, off_the_loop, session_cookie
from tests.calls import conftest as given
from tests.servers import AppServer, run_app_server
from tests.streaming import acs_packets as acs

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

KEY = Fernet.generate_key().decode()
SECOND = 10_000_000  # ACS ticks


@pytest.fixture(scope="module")
def keeping_server(django_db_setup: None, django_db_blocker: object) -> Iterator[AppServer]:
    """A real daphne that redacts live and keeps each original encrypted under KEY."""
    with run_app_server(REDACTION="redact_keep_original", REDACTION_KEYS=KEY) as server:
        yield server


@pytest.fixture
def page(browser: object, keeping_server: AppServer, revealer: User) -> Iterator[object]:
    with logged_in_page(browser, keeping_server, revealer) as page:
        yield page


def test_a_card_number_read_live_is_revealed_after_a_reason_and_the_look_is_logged(
    browser: object, page: object, keeping_server: AppServer, revealer: User
) -> None:
    from playwright.sync_api import expect

    call = off_the_loop(given.new_call)
    page.goto(f"/calls/{call.id}/")
    with media_socket(keeping_server, call.id) as media:
        media.send(acs.transcription_metadata())
        media.send(acs.transcription_data(acs.CALLER, "I'd like to pay my bill.", 1 * SECOND))
        media.send(acs.transcription_data(acs.CALLER, given.CARD_LINE, 4 * SECOND))
        expect(page.locator(".line[data-sequence] .text")).to_have_text(
            ["I'd like to pay my bill.", "My card is [CARD], expiry [EXPIRY], code [CVV]."]
        )
    expect(page.get_by_text("4111")).to_have_count(0)
    controls = page.locator("[data-reveal-control]")
    expect(controls).to_have_count(1)  # arrived live: the page added the control to the redacted line only

    controls.get_by_text("Reveal the original…").click()
    reveal = controls.get_by_role("button", name="Reveal")
    reveal.click()  # no reason yet: the browser asks for one, nothing is sent
    expect(page).to_have_url(re.compile(rf"/calls/{call.id}/$"))
    controls.get_by_label("Why do you need to see it?").fill("Chargeback dispute, ticket 4471")
    reveal.click()

    expect(page.locator("[data-original-text]")).to_have_text(given.CARD_LINE)
    expect(page.locator("[data-redacted-text]")).to_have_text("My card is [CARD], expiry [EXPIRY], code [CVV].")
    segment = off_the_loop(TranscriptSegment.objects.exclude(redacted_types=[]).get, call=call)
    (entry,) = off_the_loop(lambda: list(AccessLog.objects.filter(action="reveal").select_related("user")))
    assert (entry.user, entry.call_id) == (revealer, call.id)
    assert entry.detail.startswith(f"segment {segment.pk} (#{segment.sequence} at 0:04, CARD, CVV, EXPIRY)")
    assert entry.detail.endswith(": Chargeback dispute, ticket 4471")

    page.get_by_role("link", name="Back to the call").click()
    expect(page.locator(f"#segment-{segment.sequence} .text")).to_have_text(
        "My card is [CARD], expiry [EXPIRY], code [CVV]."
    )
    expect(page.locator("[data-reveal-control]")).to_have_count(1)  # rendered by the server this time
    expect(page.get_by_text("4111")).to_have_count(0)

    # The access log in the admin, as whoever audits the auditors reads it.
    admin = off_the_loop(User.objects.create_superuser, "grace", password="x")
    context = browser.new_context(base_url=keeping_server.base_url)
    context.add_cookies([session_cookie(admin, keeping_server)])
    audit = context.new_page()
    audit.goto("/admin/calls/accesslog/?action=reveal")
    row = audit.locator("#result_list tbody tr")
    expect(row).to_have_count(1)
    expect(row).to_contain_text("erin")
    expect(row).to_contain_text("Chargeback dispute, ticket 4471")
    context.close()
