"""Revealing redacted data: one segment's original on the call page, or a call's original transcript as an
export, only with the permission, only of a call in the user's scope, only after a reason, and every look
in the access log with the user's address (#16)."""

from __future__ import annotations

import io
from collections.abc import Iterator
from datetime import timedelta

import pytest
from cryptography.fernet import Fernet
from django.contrib.auth.models import Permission, User
from django.core.management import call_command
from django.test import Client, override_settings
from django.urls import reverse

from calls import live_events, participants
from calls.models import AccessLog, Call, Gap, TranscriptSegment
from tests.calls.conftest import CARD_LINE, card_call, logged_in
from tests.conftest import SAM, ContactCentre

pytestmark = pytest.mark.django_db

KEY = Fernet.generate_key().decode()
CARD_DIGITS = "4111 1111 1111 1111"


def card_segment(call: Call) -> TranscriptSegment:
    return call.segments.exclude(redacted_types=[]).get()


def reveal_url(segment: TranscriptSegment, call: Call | None = None) -> str:
    return reverse("calls-reveal-segment", args=[(call or segment.call).id, segment.pk])


def reveals() -> list[AccessLog]:
    return list(AccessLog.objects.filter(action__in=["reveal", "export_original"]))


@pytest.fixture
def erin(revealer: User) -> Client:
    return logged_in(revealer)


@pytest.fixture
def kept() -> Iterator[Call]:
    """A call whose card number was redacted with its original kept under KEY, which stays configured."""
    with override_settings(REDACTION_KEYS=[KEY]):
        yield card_call(keys=[KEY])


# --- one segment --------------------------------------------------------------------------------


def test_a_user_with_the_permission_sees_the_original_after_giving_a_reason_and_the_look_is_logged(
    erin: Client, revealer: User, kept: Call
) -> None:
    segment = card_segment(kept)
    page = erin.get(kept.get_absolute_url()).content.decode()
    assert page.count("data-reveal-control") == 1 + 2  # the card line's control, and the two for live lines
    assert f'action="{reveal_url(segment)}"' in page
    assert CARD_DIGITS not in page

    response = erin.post(reveal_url(segment), {"reason": "Chargeback dispute, ticket 4471"})

    assert response.status_code == 200
    assert CARD_DIGITS in response.content.decode()
    assert "no-store" in response["Cache-Control"]
    (entry,) = reveals()
    assert (entry.user, entry.call, entry.action, entry.ip) == (revealer, kept, "reveal", "127.0.0.1")
    assert (
        entry.detail
        == f"segment {segment.pk} (#{segment.sequence} at 0:05, CARD, CVV, EXPIRY): Chargeback dispute, ticket 4471"
    )
    segment.refresh_from_db()
    assert CARD_DIGITS not in segment.text  # revealing stores nothing


def test_an_empty_reason_is_refused_with_a_message_and_nothing_is_revealed_or_logged(erin: Client, kept: Call) -> None:
    for reason in ("", "   "):
        response = erin.post(reveal_url(card_segment(kept)), {"reason": reason})
        content = response.content.decode()
        assert "Say why you need to see the original: nothing was revealed." in content
        assert CARD_DIGITS not in content
    assert reveals() == []


def test_without_the_permission_there_is_no_control_and_the_endpoint_answers_403(
    bob_client: Client, outsider: User, kept: Call
) -> None:
    segment = card_segment(kept)
    page = bob_client.get(kept.get_absolute_url()).content.decode()
    assert "data-reveal-control" not in page
    assert "Export with the originals" not in page
    missing = reverse("calls-reveal-segment", args=[kept.id, 999_999])
    for client in (bob_client, logged_in(outsider)):
        assert client.post(reveal_url(segment), {"reason": "curious"}).status_code == 403
        assert client.get(reveal_url(segment)).status_code == 403
        assert client.post(missing, {"reason": "curious"}).status_code == 403  # no hint of what exists
    assert Client().post(reveal_url(segment), {"reason": "curious"}).status_code == 302  # to the login page
    assert reveals() == []


def test_a_segment_of_another_call_is_not_found(erin: Client, kept: Call) -> None:
    other = card_call(keys=[KEY])
    response = erin.post(reveal_url(card_segment(kept), call=other), {"reason": "Chargeback dispute"})
    assert response.status_code == 404
    assert reveals() == []


def test_a_call_out_of_the_users_scope_is_not_found_even_with_the_permission(centre: ContactCentre, kept: Call) -> None:
    """Sam, an agent who may reveal, reveals on the calls he took part in only: any other answers 404, as a
    call that does not exist, until he joins it."""
    sam = centre.sam.user
    sam.user_permissions.add(Permission.objects.get(codename="reveal_redacted"))
    client = logged_in(sam)
    segment = card_segment(kept)
    export_url = reverse("calls-transcript-original", args=[kept.id])
    assert client.post(reveal_url(segment), {"reason": "Dispute"}).status_code == 404
    assert client.get(reveal_url(segment)).status_code == 404
    assert client.get(export_url).status_code == 404
    assert client.post(export_url, {"reason": "Dispute", "export_format": "txt"}).status_code == 404
    assert reveals() == []

    participants.ensure_participant(call_id=kept.id, raw_id=SAM)  # Sam joins the call: it is his

    assert CARD_DIGITS in client.post(reveal_url(segment), {"reason": "Dispute"}).content.decode()
    assert [(entry.user, entry.action) for entry in reveals()] == [(sam, "reveal")]


def test_when_the_original_was_not_kept_the_page_says_so(erin: Client) -> None:
    call = card_call(keys=None)
    segment = card_segment(call)
    assert "Original not kept" in erin.get(call.get_absolute_url()).content.decode()

    response = erin.post(reveal_url(segment), {"reason": "Chargeback dispute"})

    assert response.status_code == 409
    assert "was not kept" in response.content.decode()
    assert reveals() == []


def test_a_segment_with_nothing_redacted_has_nothing_to_reveal(erin: Client, kept: Call) -> None:
    plain = kept.segments.filter(redacted_types=[]).first()
    response = erin.post(reveal_url(plain), {"reason": "Chargeback dispute"})
    assert response.status_code == 409
    assert "Nothing in this segment was redacted" in response.content.decode()


def test_originals_still_reveal_after_a_key_rotation_and_not_without_their_key(erin: Client, kept: Call) -> None:
    segment = card_segment(kept)
    new_key = Fernet.generate_key().decode()
    with override_settings(REDACTION_KEYS=[new_key, KEY]):  # rotation under way: the old key after the new
        assert CARD_DIGITS in erin.post(reveal_url(segment), {"reason": "Dispute 1"}).content.decode()
        with override_settings(REDACTION="redact_keep_original"):
            call_command("redact_existing", stdout=io.StringIO())  # re-encrypts under the new key
    with override_settings(REDACTION_KEYS=[new_key]):  # the old key dropped
        assert CARD_DIGITS in erin.post(reveal_url(segment), {"reason": "Dispute 2"}).content.decode()
    with override_settings(REDACTION_KEYS=[Fernet.generate_key().decode()]):  # the key lost
        response = erin.post(reveal_url(segment), {"reason": "Dispute 3"})
    assert response.status_code == 409
    assert "cannot be decrypted" in response.content.decode()
    assert [entry.detail.rsplit(": ", 1)[1] for entry in reveals()] == ["Dispute 2", "Dispute 1"]


def test_live_events_say_an_original_was_kept_but_never_carry_it(kept: Call) -> None:
    payload = live_events.segment_payload(card_segment(kept))
    assert payload["original"] == "kept"
    assert CARD_DIGITS.split()[1] not in str(payload) and "4111" not in str(payload)


# --- exports ------------------------------------------------------------------------------------


def test_exports_stay_redacted_even_for_a_user_who_may_reveal(erin: Client, kept: Call) -> None:
    for export_format in ("txt", "json", "vtt", "srt"):
        content = erin.get(reverse("calls-transcript", args=[kept.id, export_format])).content.decode()
        assert "[CARD]" in content and "4111" not in content
    assert reveals() == []


def test_the_original_export_needs_the_permission(bob_client: Client, kept: Call) -> None:
    url = reverse("calls-transcript-original", args=[kept.id])
    assert bob_client.get(url).status_code == 403
    assert bob_client.post(url, {"reason": "curious", "export_format": "txt"}).status_code == 403
    assert reveals() == []


def test_the_original_export_asks_for_a_reason_and_is_audited(erin: Client, revealer: User, kept: Call) -> None:
    page = erin.get(kept.get_absolute_url()).content.decode()
    url = reverse("calls-transcript-original", args=[kept.id])
    assert f'href="{url}"' in page
    assert "the originals of 1 redacted segment" in erin.get(url).content.decode()

    refused = erin.post(url, {"reason": " ", "export_format": "txt"})
    assert "Say why you need to see the original" in refused.content.decode()
    assert "attachment" not in refused.get("Content-Disposition", "")

    response = erin.post(url, {"reason": "Court order 2026/118", "export_format": "txt"})

    assert response["Content-Disposition"] == f'attachment; filename="call-{kept.id}-original.txt"'
    assert "no-store" in response["Cache-Control"]
    assert CARD_LINE in response.content.decode()
    (entry,) = reveals()
    assert (entry.user, entry.call, entry.action, entry.ip) == (revealer, kept, "export_original", "127.0.0.1")
    assert entry.detail == "original txt, 1 redacted segment(s) revealed: Court order 2026/118"
    assert "[CARD]" in card_segment(kept).text  # the stored segment keeps its placeholders


def test_the_original_export_marks_the_calls_pauses_as_every_export_does(erin: Client, kept: Call) -> None:
    note = "Transcription and audio capture paused for sensitive data by alice; resumed by alice"
    start = kept.connected_at or kept.created_at
    Gap.objects.create(
        call=kept,
        reason=Gap.Reason.SENSITIVE_PAUSE,
        started_at=start + timedelta(seconds=12),
        ended_at=start + timedelta(seconds=40),
        detail=note,
    )
    url = reverse("calls-transcript-original", args=[kept.id])

    text = erin.post(url, {"reason": "Court order 2026/118", "export_format": "txt"}).content.decode()

    assert CARD_LINE in text
    assert f"[00:00:12.000] [{note}]" in text.splitlines()


def test_the_original_export_says_so_when_no_original_was_kept(erin: Client) -> None:
    call = card_call(keys=None)
    url = reverse("calls-transcript-original", args=[call.id])
    response = erin.post(url, {"reason": "Court order", "export_format": "json"})
    assert response.status_code == 409
    assert "No original was kept for the redacted segments of this call" in response.content.decode()
    assert reveals() == []
