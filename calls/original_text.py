"""Originals of redacted segments, kept encrypted at rest when REDACTION=redact_keep_original.

Fernet (AES-128-CBC with HMAC-SHA256) from `cryptography`, over several keys with MultiFernet: the first
key in REDACTION_KEYS encrypts, every key decrypts. To rotate: put a new key first, keep the old ones,
run `manage.py redact_existing` (it re-encrypts originals under the new key with MultiFernet.rotate), then
drop the old keys. The keys live only in the environment, never in the database next to the data.
"""

from __future__ import annotations

import json
from functools import cache
from typing import TYPE_CHECKING, Any

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

if TYPE_CHECKING:
    from calls.models import TranscriptSegment

__all__ = ["InvalidToken", "decrypt", "encrypt", "is_current", "keep_originals", "rotate", "state"]

# What became of a segment's original, as the call page and the live feed say it ("" when nothing was redacted).
KEPT = "kept"
NOT_KEPT = "not_kept"


def keep_originals() -> bool:
    return settings.REDACTION == "redact_keep_original"


def state(segment: TranscriptSegment) -> str:
    if not segment.redacted_types:
        return ""
    return KEPT if segment.original_encrypted is not None else NOT_KEPT


@cache
def _fernets(keys: tuple[str, ...]) -> tuple[Fernet, MultiFernet]:
    if not keys:
        raise ImproperlyConfigured("Keeping originals needs REDACTION_KEYS.")
    fernets = [Fernet(key) for key in keys]
    return fernets[0], MultiFernet(fernets)


def _keys() -> tuple[str, ...]:
    return tuple(settings.REDACTION_KEYS)


def encrypt(text: str, words: list[dict[str, Any]]) -> bytes:
    """A segment's original text and words, encrypted under the first key."""
    return _fernets(_keys())[1].encrypt(json.dumps({"text": text, "words": words}).encode())


def decrypt(token: bytes) -> dict[str, Any]:
    """{"text", "words"} as they were before redaction; InvalidToken when no key opens it."""
    return json.loads(_fernets(_keys())[1].decrypt(bytes(token)))


def is_current(token: bytes) -> bool:
    """Whether the first (current) key encrypted it."""
    try:
        _fernets(_keys())[0].decrypt(bytes(token))
    except InvalidToken:
        return False
    return True


def rotate(token: bytes) -> bytes:
    """The same original, re-encrypted under the first key."""
    return _fernets(_keys())[1].rotate(bytes(token))
