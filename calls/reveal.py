"""Revealing what redaction hid, to a user allowed to see it, for a reason: one segment's original on the
call page, or a whole call's original transcript as an export. Each look goes to the access log with
its reason before the original is handed over; nothing revealed is stored, published live or cached.

Originals exist only under REDACTION=redact_keep_original (calls/original_text.py decrypts them with
REDACTION_KEYS, any key of a rotation). Under REDACTION=redact they were never stored: there is
nothing to reveal, and the user is told so.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.http import HttpRequest

from calls import audit, original_text
from calls.display import clock
from calls.exports import export_transcript, transcript_segments
from calls.models import Call, TranscriptSegment
from calls.permissions import can_watch

REVEAL_PERMISSION = "calls.reveal_redacted"

REASON_REQUIRED = "Say why you need to see the original: nothing was revealed."
REASON_MAX_LENGTH = 500


class RevealRefused(Exception):
    """Why nothing can be revealed, in words staff can act on."""


def can_reveal(user: AbstractBaseUser | AnonymousUser) -> bool:
    return can_watch(user) and user.has_perm(REVEAL_PERMISSION)


def check_revealable(segment: TranscriptSegment) -> None:
    state = original_text.state(segment)
    if not state:
        raise RevealRefused("Nothing in this segment was redacted: there is nothing to reveal.")
    if state == original_text.NOT_KEPT:
        raise RevealRefused(
            "The original of this segment was not kept: redaction replaced it before it was stored "
            "(REDACTION=redact), so it cannot be revealed."
        )


def reveal_segment(segment: TranscriptSegment, *, request: HttpRequest, reason: str) -> str:
    """The segment's original text, once the look is in the access log (as the request's user and address)."""
    reason = _checked_reason(reason)
    check_revealable(segment)
    original = _decrypt(segment)
    audit.record_request(request, segment.call, audit.REVEAL, f"{describe(segment)}: {reason}")
    return original["text"]


def describe(segment: TranscriptSegment) -> str:
    """Which segment, as the access log names it: its id, its place in the call and what was hidden."""
    return (
        f"segment {segment.pk} (#{segment.sequence} at {clock(segment.offset_ms)}, {', '.join(segment.redacted_types)})"
    )


@dataclass(frozen=True)
class CallOriginals:
    """How much of a call's redacted transcript an original export can restore."""

    redacted: int
    kept: int

    @property
    def not_kept(self) -> int:
        return self.redacted - self.kept


def call_originals(call: Call) -> CallOriginals:
    redacted = call.segments.exclude(redacted_types=[])
    return CallOriginals(redacted=redacted.count(), kept=redacted.filter(original_encrypted__isnull=False).count())


def check_original_export(originals: CallOriginals) -> None:
    if not originals.redacted:
        raise RevealRefused(
            "Nothing in this call was redacted: the ordinary transcript export is the whole transcript."
        )
    if not originals.kept:
        raise RevealRefused(
            "No original was kept for the redacted segments of this call (REDACTION=redact): "
            "there is nothing to reveal."
        )


def original_transcript(call: Call, *, request: HttpRequest, export_format: str, reason: str) -> str:
    """The call's transcript with every kept original in place of its redacted segment (segments whose
    original was not kept stay redacted), once the export is in the access log (as the request's user and
    address)."""
    reason = _checked_reason(reason)
    originals = call_originals(call)
    check_original_export(originals)
    segments = transcript_segments(call)
    for segment in segments:
        if original_text.state(segment) == original_text.KEPT:
            original = _decrypt(segment)
            # Only this export's copy changes: the row keeps its placeholders.
            segment.text, segment.words = original["text"], original["words"]
    detail = f"original {export_format}, {originals.kept} redacted segment(s) revealed: {reason}"
    audit.record_request(request, call, audit.EXPORT_ORIGINAL, detail)
    return export_transcript(call, export_format, segments)


def _checked_reason(reason: str) -> str:
    reason = reason.strip()
    if not reason:
        raise RevealRefused(REASON_REQUIRED)
    return reason[:REASON_MAX_LENGTH]


def _decrypt(segment: TranscriptSegment) -> dict:
    if not settings.REDACTION_KEYS:
        raise RevealRefused(
            "The original cannot be decrypted: REDACTION_KEYS is empty. Put back the key it was encrypted with."
        )
    try:
        return original_text.decrypt(segment.original_encrypted)
    except original_text.InvalidToken:
        raise RevealRefused(
            "The original cannot be decrypted with the keys in REDACTION_KEYS: the key it was encrypted with "
            "has been removed. Put it back (after the current key) to reveal it."
        ) from None
