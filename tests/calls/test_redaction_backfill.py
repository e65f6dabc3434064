"""Redacting stored calls (`manage.py redact_existing`), kept originals under Fernet keys, custom rules from
the admin, the audio of redacted spans, and the /metrics counter."""

from __future__ import annotations

import io
import os
import subprocess
import sys
import wave
from pathlib import Path

import pytest
from cryptography.fernet import Fernet
from django.contrib.auth.models import User
from django.core.management import call_command
from django.test import Client, override_settings
from django.urls import reverse

from calls import original_text, participants
from calls.models import TICKS_PER_MILLISECOND, Call, RedactionRule, TranscriptSegment
from calls.redaction_backfill import call_changes, write_changes
from calls.redaction_rules import current_rules
from calls.search import matching_segments
from streaming.audio import append_pcm, audio_directory, audio_file_name
from tests.calls.conftest import logged_in, new_call, say
from tests.streaming import acs_packets as acs

pytestmark = pytest.mark.django_db

PROJECT = Path(__file__).resolve().parents[2]
SAMPLE_RATE = 16000
CARD_LINE = "My card is 4111 1111 1111 1111, expiry 09/28, code 123."


def redact_existing(*arguments: str) -> str:
    output = io.StringIO()
    call_command("redact_existing", *arguments, stdout=output)
    return output.getvalue()


def texts(call: Call) -> list[str]:
    return list(call.segments.order_by("sequence").values_list("text", flat=True))


def card_segment(call: Call) -> TranscriptSegment:
    return call.segments.order_by("sequence").last()


@pytest.fixture
def card_call() -> Call:
    call = new_call()
    say(call, acs.CALLER, "Hello, I'd like to pay my bill.", at_ms=1000)
    say(call, acs.CALLER, CARD_LINE, at_ms=4000, duration_ms=6000)
    return call


def test_a_dry_run_says_what_it_would_change_and_changes_nothing(card_call: Call) -> None:
    output = redact_existing("--dry-run")
    assert "Would redact 1 CARD, 1 CVV, 1 EXPIRY in 1 segment(s) of 1 call(s)." in output
    assert "4111" not in output  # the report never repeats what it redacts
    assert texts(card_call)[1] == CARD_LINE


def test_the_backfill_redacts_stored_segments_and_search_no_longer_finds_the_digits(card_call: Call) -> None:
    assert matching_segments("4111", Call.objects.all()).exists()
    output = redact_existing()
    assert "Redacted 1 CARD, 1 CVV, 1 EXPIRY in 1 segment(s) of 1 call(s)." in output
    assert texts(card_call) == ["Hello, I'd like to pay my bill.", "My card is [CARD], expiry [EXPIRY], code [CVV]."]
    segment = card_segment(card_call)
    assert [word["text"] for word in segment.words][3:4] == ["[CARD]"]
    assert segment.redacted_types == ["CARD", "CVV", "EXPIRY"]
    assert segment.original_encrypted is None  # REDACTION=redact: the original is gone
    for digits in ["4111", "1111", "09/28", "0928", "123"]:
        assert not matching_segments(digits, Call.objects.all()).exists(), digits
    assert "Redacted nothing in 0 segment(s)" in redact_existing()  # a second run has nothing left to do


def test_a_card_split_across_two_stored_finals_is_redacted_in_both(card_call: Call) -> None:
    call = new_call(caller="4:+15550001111")
    say(call, acs.CALLER, "The number is 4111 1111", at_ms=1000)
    say(call, acs.AGENT, "Go on.", at_ms=3000)
    say(call, acs.CALLER, "1111 1111.", at_ms=5000)
    redact_existing()
    assert texts(call) == ["The number is [CARD]", "Go on.", "[CARD]."]


def test_an_account_number_is_redacted_only_once_a_custom_rule_names_it(admin_client: Client) -> None:
    call = new_call()
    say(call, acs.CALLER, "My account is AC-448812, thanks.", at_ms=1000)
    redact_existing()
    assert texts(call) == ["My account is AC-448812, thanks."]
    response = admin_client.post(
        reverse("admin:calls_redactionrule_add"), {"label": "ACCOUNT", "pattern": r"\bAC-\d{6}\b", "enabled": "on"}
    )
    assert response.status_code == 302
    redact_existing()
    assert texts(call) == ["My account is [ACCOUNT], thanks."]


def test_the_admin_refuses_a_pattern_that_is_no_regex(admin_client: Client) -> None:
    response = admin_client.post(
        reverse("admin:calls_redactionrule_add"), {"label": "ACCOUNT", "pattern": r"AC-(\d{6}", "enabled": "on"}
    )
    assert response.status_code == 200
    assert "Not a valid regular expression" in response.content.decode()
    assert not RedactionRule.objects.exists()


def test_kept_originals_decrypt_only_with_the_key_and_survive_a_rotation(card_call: Call) -> None:
    old_key, new_key = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    with override_settings(REDACTION="redact_keep_original", REDACTION_KEYS=[old_key]):
        redact_existing()
    token = bytes(card_segment(card_call).original_encrypted)
    assert b"4111" not in token
    with override_settings(REDACTION_KEYS=[old_key]):
        assert original_text.decrypt(token)["text"] == CARD_LINE
    with override_settings(REDACTION_KEYS=[new_key]), pytest.raises(original_text.InvalidToken):
        original_text.decrypt(token)
    with override_settings(REDACTION="redact_keep_original", REDACTION_KEYS=[new_key, old_key]):
        assert "re-encrypted 1 original(s)" in redact_existing()
    rotated = bytes(card_segment(card_call).original_encrypted)
    with override_settings(REDACTION_KEYS=[new_key]):
        original = original_text.decrypt(rotated)  # the old key can now be dropped
    assert original["text"] == CARD_LINE
    assert [word["text"] for word in original["words"]][3:7] == ["4111", "1111", "1111", "1111,"]


def test_keeping_originals_without_a_key_refuses_to_start() -> None:
    environment = {**os.environ, "REDACTION": "redact_keep_original", "REDACTION_KEYS": ""}
    command = [sys.executable, "-c", "import django; django.setup()"]
    result = subprocess.run(command, env=environment, cwd=PROJECT, capture_output=True, text=True)
    assert result.returncode != 0
    assert "REDACTION=redact_keep_original needs REDACTION_KEYS" in result.stderr


def test_captured_audio_is_silenced_over_the_redacted_words(card_call: Call, tmp_path: Path) -> None:
    participants.ensure_participant(call_id=card_call.id, raw_id=acs.CALLER)
    with override_settings(AUDIO_CAPTURE=True, AUDIO_CAPTURE_DIR=tmp_path):
        path = audio_directory(card_call.id) / audio_file_name(acs.CALLER)
        seconds = 12
        append_pcm(path, SAMPLE_RATE, (1000).to_bytes(2, "little", signed=True) * SAMPLE_RATE * seconds)
        redact_existing()
    with wave.open(str(path), "rb") as wav:
        samples = memoryview(wav.readframes(wav.getnframes())).cast("h")
    segment = card_segment(card_call)
    card = next(word for word in segment.words if word["text"] == "[CARD]")
    start = card["offset"] // TICKS_PER_MILLISECOND * SAMPLE_RATE // 1000
    end = (card["offset"] + card["duration"]) // TICKS_PER_MILLISECOND * SAMPLE_RATE // 1000
    assert set(samples[start:end]) == {0}
    assert samples[start - 1] == 1000 and samples[0] == 1000  # the rest of the call is still there
    first_segment_start = card_call.segments.order_by("sequence").first().offset_ms * SAMPLE_RATE // 1000
    assert samples[first_segment_start] == 1000


def test_metrics_count_redacted_entities_by_type(card_call: Call, client: Client, settings) -> None:
    redact_existing()
    settings.METRICS_TOKEN = "s3cret-scrape-token"
    response = client.get("/metrics", HTTP_AUTHORIZATION="Bearer s3cret-scrape-token")
    assert b'callscribe_entities_redacted_total{type="CARD"}' in response.content


@pytest.fixture
def admin_client() -> Client:
    return logged_in(User.objects.create_superuser("erin", password="x"))


def test_a_stored_segment_is_never_overwritten_if_it_changed_meanwhile(card_call: Call) -> None:
    changes, _, _ = call_changes(card_call, current_rules())
    assert [change.text for change in changes] == ["My card is [CARD], expiry [EXPIRY], code [CVV]."]
    TranscriptSegment.objects.filter(pk=card_segment(card_call).pk).update(text="Something else entirely.")
    assert write_changes(changes, batch_size=10) == 0
    assert texts(card_call)[1] == "Something else entirely."
