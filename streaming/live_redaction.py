"""Redaction at ingest for one media socket: every intermediate result's text before it is published,
and every final before it is queued, so nothing unredacted is stored, indexed, journaled or broadcast.

The engine is calls/redaction.py; this is the socket's side of it: one `Redactor` window per socket
(a card number read across two finals of a speaker is caught), and the hold-back that keeps the first
half of such a number from being stored and broadcast. A final that ends in digits which could begin a
card (`redaction.may_continue`) waits, for up to HOLD_SECONDS, for the speaker's next final; when that
final completes a card, the held one is redacted too before either is released. Every other final goes
straight on, so ordinary finals are not delayed.
"""

from __future__ import annotations

import asyncio
import itertools
from collections import Counter
from collections.abc import Callable
from dataclasses import replace

from calls import original_text, redaction, redaction_rules
from calls.services import Final

HOLD_SECONDS = 1.5


class _Held:
    def __init__(self, key: int, original: Final, redacted: Final, timer: asyncio.TimerHandle) -> None:
        self.key, self.original, self.redacted, self.timer = key, original, redacted, timer


class LiveRedaction:
    def __init__(self, rules: redaction.Rules, release: Callable[[Final], None]) -> None:
        self.redactor = redaction.Redactor(rules)
        self.release = release  # where a redacted final goes: the socket's finals queue
        self.held: dict[str, _Held] = {}
        self._keys = itertools.count()

    def partial(self, speaker: str, text: str) -> str:
        """An intermediate result's text, redacted (the speaker's window is read, never changed), with
        trailing digits that may begin a card number hidden until the final says what they are."""
        result = self.redactor.redact(speaker, text, None, final=False)
        return redaction.hide_unfinished_number(result.text)

    def final(self, original: Final) -> None:
        """Redact a final (and the speaker's held final when this one completes its number) and release
        them in arrival order, or hold this one while it may be the first half of a card number."""
        speaker = original.participant_raw_id
        key = next(self._keys)
        result = self.redactor.redact(speaker, original.text, original.words, final=True, key=key)
        redaction_rules.count_redacted(result.counts)
        held = self.held.pop(speaker, None)
        if held is not None:
            held.timer.cancel()
            earlier = result.earlier
            if earlier is not None and earlier.key == held.key:
                types = set(held.redacted.redacted_types) | {entity.type for entity in earlier.entities}
                held.redacted = _redacted(held.original, earlier.text, earlier.words, types)
                redaction_rules.count_redacted(Counter(entity.type for entity in earlier.entities))
            self.release(held.redacted)
        redacted = _redacted(original, result.text, result.words, result.types)
        if redaction.may_continue(redacted.text):
            timer = asyncio.get_running_loop().call_later(HOLD_SECONDS, self._release_held, speaker)
            self.held[speaker] = _Held(key, original, redacted, timer)
        else:
            self.release(redacted)

    def release_all(self) -> None:
        """The socket is closing: nothing more can complete a held final."""
        for speaker in list(self.held):
            self._release_held(speaker)

    def _release_held(self, speaker: str) -> None:
        held = self.held.pop(speaker, None)
        if held is not None:
            held.timer.cancel()
            self.release(held.redacted)


def _redacted(original: Final, text: str, words: list[dict], types: set[str] | list[str]) -> Final:
    if not types:
        return original
    token = None
    if original_text.keep_originals():
        token = original_text.encrypt(original.text, original.words).decode()
    return replace(original, text=text, words=words, redacted_types=sorted(types), original_encrypted=token)
