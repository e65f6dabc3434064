"""Redaction of sensitive data in transcription results: card numbers, security codes, expiry dates, SSNs,
IBANs, e-mail addresses, phone numbers and custom regex rules become typed placeholders ([CARD], [SSN], …).

Pure and cheap, because it runs on every intermediate and final result: no database, precompiled patterns,
and a pre-check that returns a result untouched when it holds no digit, number word, "@" or " dot ".

A result has two views of the same speech (acs-protocol.md 1.7): `text` in display form ("4111 1111 …")
and `words` in lexical form ("four one one one …", with timings). Entities are found in both, and the
two are paired by their digits and words (difflib over "units": one per digit, one per other word), so
an entity found on either side is replaced on both.

Replacement is by whole tokens: a redacted run of text tokens becomes ONE placeholder token (keeping the
punctuation around it, "1111," → "[CARD],"), and the matching run of words becomes ONE placeholder word
whose offset and duration span the words it replaces. So a result whose text and words paired one to
one (calls/display.py segment_words) still does, and the placeholder sits at the spoken time.

What is deliberately NOT an entity: digit strings that fail their checksum (Luhn, IBAN), times ("2:30",
"two thirty"), amounts ("fifty nine dollars"), and short or generic numbers without a cue word: an
8-digit account or order number ("four four seven two, nine one eight three") is left alone unless a
custom rule (RedactionRule in the admin) names its shape. A 13-19 digit number that passes Luhn is
redacted as a card even when it is something else: that is the safe mistake.
"""

from __future__ import annotations

import difflib
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

import phonenumbers
from stdnum import iban, luhn
from stdnum.us import ssn

CARD, CVV, EXPIRY, SSN, IBAN, EMAIL, PHONE = "CARD", "CVV", "EXPIRY", "SSN", "IBAN", "EMAIL", "PHONE"
CARD_LENGTHS = (16, 15, 19, 18, 17, 14, 13)  # most likely first, so a longer run is not over-redacted
MIN_HELD_DIGITS = 4  # trailing digits that may be the first part of a card number read across two finals
CUE_REACH = 5  # tokens after a cue word in which its code or date may start

_UNITS = {"zero": "0", "oh": "0", "one": "1", "two": "2", "three": "3", "four": "4"}
_UNITS |= {"five": "5", "six": "6", "seven": "7", "eight": "8", "nine": "9"}
_TEENS = ["ten", "eleven", "twelve", "thirteen", "fourteen", "fifteen", "sixteen", "seventeen", "eighteen", "nineteen"]
_TENS = {"twenty": "2", "thirty": "3", "forty": "4", "fifty": "5", "sixty": "6", "seventy": "7", "eighty": "8"}
_TENS |= {"ninety": "9"}
_NUMBER_WORDS = {**_UNITS, **{word: str(10 + index) for index, word in enumerate(_TEENS)}}
_REPEATS = {"double": 2, "triple": 3}
_DIGIT_OR_AT = re.compile(r"[0-9@]")
_LETTER_RUNS = re.compile(r"[a-z]+")
_WORTH_A_LOOK = frozenset([*_NUMBER_WORDS, *_TENS, *_REPEATS, "dot"])
_DIGIT_TOKEN = re.compile(r"\+?\(?\d+\)?(?:[-/.]\(?\d+\)?)*")
_EDGE_PUNCTUATION = re.compile(r"^([^\w+(\[]*)(.*?)([^\w)\]]*)$", re.DOTALL)
_NOT_ALNUM = re.compile(r"[^0-9a-z]+")
_IBAN_START = re.compile(r"[A-Z]{2}\d{2}[A-Z0-9]{0,30}")
_IBAN_GROUP = re.compile(r"[A-Z0-9]{1,4}")
_EMAIL_TOKEN = re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)*\.[A-Za-z]{2,}")
_SSN_TOKEN = re.compile(r"\d{3}-\d{2}-\d{4}")
_EMAIL_SEPARATORS = {"dot", "underscore", "dash", "hyphen"}
_TOP_LEVEL_DOMAINS = {"com", "net", "org", "edu", "gov", "io", "co", "uk", "de", "fr", "nl", "us", "info", "biz"}

_CVV_CUES = (("security", "code"), ("cvv",), ("cvc",), ("cvv2",), ("csc",), ("cv2",))
_WEAK_CVV_CUES = (("code",),)  # "…expiry 09/28, code 123": only next to a card or expiry date
_EXPIRY_CUES = (("expiry",), ("expires",), ("expiration",), ("expiring",), ("exp",), ("valid", "thru"))
_SSN_CUES = (("social", "security"), ("ssn",), ("social",))


@dataclass(frozen=True)
class Rules:
    """What to look for besides the built-in entities: the phone region and custom (label, regex) rules."""

    phone_region: str = "US"
    custom: tuple[tuple[str, re.Pattern[str]], ...] = ()


@dataclass(frozen=True)
class Entity:
    """One redacted entity: its type (CARD, …, or a custom rule's label), the text tokens and words it
    covered (end exclusive, before replacement) and, when words had timings, when it was said."""

    type: str
    text_span: tuple[int, int]
    word_span: tuple[int, int] | None
    start_ticks: int | None = None
    end_ticks: int | None = None


@dataclass
class Redaction:
    """A result after redaction. `earlier` is set when an entity began in the speaker's previous final:
    that final's new text and words, for the caller to store in place of the old ones."""

    text: str
    words: list[dict[str, Any]]
    entities: list[Entity] = field(default_factory=list)
    earlier: EarlierRedaction | None = None

    @property
    def changed(self) -> bool:
        return bool(self.entities)

    @property
    def counts(self) -> Counter[str]:
        return Counter(entity.type for entity in self.entities)

    @property
    def types(self) -> list[str]:
        return sorted(self.counts)


@dataclass(frozen=True)
class EarlierRedaction:
    key: Any  # whatever the caller passed for that final (e.g. the segment's id)
    text: str
    words: list[dict[str, Any]]
    entities: list[Entity]


def _worth_a_look(text: str) -> bool:
    """The pre-check: most results hold no digit, "@", number word or "dot", and cost only this."""
    return bool(_DIGIT_OR_AT.search(text)) or not _WORTH_A_LOOK.isdisjoint(_LETTER_RUNS.findall(text.lower()))


def placeholder(entity_type: str) -> str:
    return f"[{entity_type}]"


_PLACEHOLDER = re.compile(r"\[[A-Z][A-Z0-9_]*\]")


def is_placeholder(word: str) -> bool:
    """Whether a stored word (or text token, with its punctuation) is a placeholder redaction put there."""
    return _PLACEHOLDER.search(word) is not None


def redact(text: str, words: Sequence[dict[str, Any]] | None, rules: Rules = Rules()) -> Redaction:
    """Redact one result on its own (see Redactor for the sliding window across a speaker's finals)."""
    return _redact(text, list(words or []), rules, claimed_text=[])


class Redactor:
    """Redaction with a per-speaker window, so a card number read across two finals is still caught.

    It keeps each speaker's last final (as the caller stored it); when a new final starts with digits
    that complete a card number begun there, both parts are redacted and the result's `earlier` says how
    the stored final must change. Intermediate results consult the window but never change it.
    """

    def __init__(self, rules: Rules = Rules()) -> None:
        self.rules = rules
        self._last_final: dict[str, tuple[Any, list[str], list[dict[str, Any]]]] = {}

    def redact(
        self, speaker: str, text: str, words: Sequence[dict[str, Any]] | None, *, final: bool, key: Any = None
    ) -> Redaction:
        words = list(words or [])
        previous = self._last_final.get(speaker)
        claimed: list[Entity] = []
        earlier = None
        if previous is not None and _worth_a_look(text):
            earlier, claimed = self._across(previous, text.split())
        result = _redact(text, words, self.rules, claimed_text=claimed)
        result.earlier = earlier
        if final:
            self._last_final[speaker] = (key, result.text.split(), result.words)
        else:
            result.earlier = None  # an intermediate's stored predecessor changes only with the final
        return result

    def forget(self, speaker: str) -> None:
        self._last_final.pop(speaker, None)

    def _across(
        self, previous: tuple[Any, list[str], list[dict[str, Any]]], tokens: list[str]
    ) -> tuple[EarlierRedaction | None, list[Entity]]:
        """A card number that starts in the previous final's trailing digits and ends in this one's
        leading digits."""
        key, previous_tokens, previous_words = previous
        tail = _trailing_run(previous_tokens)
        head = _leading_run(tokens)
        if not tail or not head:
            return None, []
        combined = [previous_tokens[index] for index in tail] + [tokens[index] for index in head]
        digits = [_digits(token) or "" for token in combined]
        for start in range(len(tail)):
            for end in range(len(combined), len(tail), -1):
                number = "".join(digits[start:end])
                if 13 <= len(number) <= 19 and luhn.is_valid(number):
                    earlier_span = (tail[start], tail[-1] + 1)
                    current_span = (0, head[end - len(tail) - 1] + 1)
                    earlier = _apply(" ".join(previous_tokens), previous_words, [(CARD, earlier_span, None)])
                    return (
                        EarlierRedaction(key, earlier.text, earlier.words, earlier.entities),
                        [Entity(CARD, current_span, None)],
                    )
        return None, []


def may_continue(text: str) -> bool:
    """Whether a final ends in digits that the speaker's next final could complete into a card number
    (4 to 18 of them: a number read out in parts is read in groups, and fewer digits are mostly counts,
    times and ages): the live path holds such a final back briefly (streaming/live_redaction.py)."""
    tokens = text.split()
    digits = sum(len(_digits(tokens[index]) or "") for index in _trailing_run(tokens))
    return MIN_HELD_DIGITS <= digits < max(CARD_LENGTHS)


def hide_unfinished_number(text: str) -> str:
    """An intermediate result's trailing digits, when they may be the start of a card number still
    being read out, as one [NUMBER] placeholder: the final decides what they were."""
    if not may_continue(text):
        return text
    tokens = text.split()
    run = _trailing_run(tokens)
    return " ".join([*tokens[: run[0]], _text_placeholder("NUMBER", tokens[run[0] :])])


def _trailing_run(tokens: list[str]) -> list[int]:
    run: list[int] = []
    for index in range(len(tokens) - 1, -1, -1):
        if _digits(tokens[index]) is None:
            break
        run.insert(0, index)
    return run


def _leading_run(tokens: list[str]) -> list[int]:
    run: list[int] = []
    for index, token in enumerate(tokens):
        if _digits(token) is None:
            break
        run.append(index)
    return run


def _redact(text: str, words: list[dict[str, Any]], rules: Rules, claimed_text: list[Entity]) -> Redaction:
    word_texts = [str(word.get("text", "")) for word in words]
    nothing_to_find = not rules.custom and not claimed_text and not _worth_a_look(text)
    if nothing_to_find and not (word_texts and _worth_a_look(" ".join(word_texts))):
        return Redaction(text, words)
    tokens = text.split()
    found = [(entity.type, entity.text_span, None) for entity in claimed_text]
    found_text = _detect(tokens, text, rules, [span for _, span, _ in found])
    found += [(kind, span, None) for kind, span in found_text]
    if word_texts:
        taken = [span for _, span, _ in found]
        for kind, word_span in _detect(word_texts, " ".join(word_texts), rules, []):
            text_span = _map_span(word_texts, tokens, word_span)
            if text_span is None or not any(_overlaps(text_span, other) for other in taken):
                found.append((kind, text_span or (0, 0), word_span))
                taken.append(text_span or (0, 0))
    if not found:
        return Redaction(text, words)
    return _apply(text, words, found)


def _apply(
    text: str, words: list[dict[str, Any]], found: list[tuple[str, tuple[int, int], tuple[int, int] | None]]
) -> Redaction:
    """Replace each found entity's text tokens and words by its placeholder."""
    tokens = text.split()
    word_texts = [str(word.get("text", "")) for word in words]
    entities = []
    for kind, text_span, word_span in found:
        if word_span is None and word_texts and text_span[1] > text_span[0]:
            word_span = _map_span(tokens, word_texts, text_span)
        start = end = None
        if word_span is not None and word_span[1] > word_span[0]:
            first, last = words[word_span[0]], words[word_span[1] - 1]
            start = first.get("offset")
            if start is not None and last.get("offset") is not None:
                end = last["offset"] + last.get("duration", 0)
        entities.append(Entity(kind, text_span, word_span, start, end))
    new_tokens = _replace_tokens(tokens, [(entity.type, entity.text_span) for entity in entities], _text_placeholder)
    new_words = _replace_tokens(
        words, [(entity.type, entity.word_span) for entity in entities if entity.word_span], _word_placeholder
    )
    return Redaction(" ".join(new_tokens), new_words, entities)


def _replace_tokens(items: list[Any], spans: list[tuple[str, tuple[int, int]]], make) -> list[Any]:
    """Each span (merged with any it overlaps) becomes one placeholder item."""
    merged: list[tuple[str, int, int]] = []
    for kind, (start, end) in sorted(spans, key=lambda item: item[1]):
        if end <= start:
            continue
        if merged and start < merged[-1][2]:
            merged[-1] = (merged[-1][0], merged[-1][1], max(end, merged[-1][2]))
        else:
            merged.append((kind, start, end))
    result, position = [], 0
    for kind, start, end in merged:
        result += items[position:start]
        result.append(make(kind, items[start:end]))
        position = end
    return result + items[position:]


def _text_placeholder(kind: str, tokens: list[str]) -> str:
    leading = _EDGE_PUNCTUATION.match(tokens[0]).group(1)
    trailing = _EDGE_PUNCTUATION.match(tokens[-1]).group(3)
    return f"{leading}{placeholder(kind)}{trailing}"


def _word_placeholder(kind: str, words: list[dict[str, Any]]) -> dict[str, Any]:
    first, last = words[0], words[-1]
    offset = first.get("offset", 0)
    end = last.get("offset", offset) + last.get("duration", 0)
    return {"text": placeholder(kind), "offset": offset, "duration": end - offset}


# --- Detection: each detector returns (type, (start token, end token)) over one token list ----------------


def _detect(tokens: list[str], text: str, rules: Rules, claimed: list[tuple[int, int]]) -> list[tuple[str, Any]]:
    found: list[tuple[str, tuple[int, int]]] = []

    def add(kind: str, span: tuple[int, int]) -> bool:
        if any(_overlaps(span, other) for other in claimed):
            return False
        claimed.append(span)
        found.append((kind, span))
        return True

    for kind, span in _custom(tokens, text, rules):
        add(kind, span)
    if not _worth_a_look(text):
        return found
    digits = [_digits(token) for token in tokens]
    _expand_number_words(tokens, digits)
    words = [_NOT_ALNUM.sub("", token.lower()) for token in tokens]
    for span in _emails(tokens, words):
        add(EMAIL, span)
    for span in _ibans(tokens):
        add(IBAN, span)
    runs = _runs(digits)
    for run in runs:
        for span in _cards(digits, run):
            add(CARD, span)
    for span in _ssns(tokens, words, digits, runs):
        add(SSN, span)
    for span in _cued(words, digits, _EXPIRY_CUES, _is_expiry):
        add(EXPIRY, span)
    payment_nearby = any(kind in (CARD, EXPIRY) for kind, _ in found)
    cvv_cues = _CVV_CUES + (_WEAK_CVV_CUES if payment_nearby else ())
    for span in _cued(words, digits, cvv_cues, lambda number: len(number) in (3, 4)):
        add(CVV, span)
    for run in runs:
        for span in _phones(tokens, digits, run, rules.phone_region, claimed):
            add(PHONE, span)
    return found


def _digits(token: str) -> str | None:
    """The digits a token stands for ("4111", "(425)", "09/28", "four", "oh", "nineteen"), else None."""
    bare = token.strip(".,;:!?\"'").lower()
    if _DIGIT_TOKEN.fullmatch(bare):
        return re.sub(r"\D", "", bare)
    return _NUMBER_WORDS.get(bare)


def _runs(digits: list[str | None]) -> list[tuple[int, int]]:
    """Spans of consecutive tokens that are digits."""
    runs, start = [], None
    for index, value in enumerate(digits):
        if value is None and start is not None:
            runs.append((start, index))
            start = None
        elif value is not None and start is None:
            start = index
    if start is not None:
        runs.append((start, len(digits)))
    return runs


def _expand_number_words(tokens: list[str], digits: list[str | None]) -> None:
    """Tens and "double"/"triple" as they read before a digit ("twenty eight" → 28, "double four" → 44)."""
    for index, token in enumerate(tokens):
        bare = token.strip(".,;:!?").lower()
        following = digits[index + 1] if index + 1 < len(tokens) else None
        if bare in _TENS:
            digits[index] = _TENS[bare] if following is not None and len(following) == 1 else _TENS[bare] + "0"
        elif bare in _REPEATS and following is not None and len(following) == 1:
            digits[index] = following * (_REPEATS[bare] - 1)


def _cards(digits: list[str | None], run: tuple[int, int]) -> list[tuple[int, int]]:
    spans, start = [], run[0]
    while start < run[1]:
        span = _card_from(digits, start, run[1])
        if span:
            spans.append(span)
            start = span[1]
        else:
            start += 1
    return spans


def _card_from(digits: list[str | None], start: int, stop: int) -> tuple[int, int] | None:
    number, ends = "", {}
    for end in range(start, stop):
        number += digits[end] or ""
        if len(number) > 19:
            break
        ends[len(number)] = end + 1
    for length in CARD_LENGTHS:
        if length in ends and luhn.is_valid(number[:length]):
            return (start, ends[length])
    return None


def _cued(words: list[str], digits: list[str | None], cues, valid) -> list[tuple[int, int]]:
    """The longest valid run of number tokens that starts within CUE_REACH tokens after a cue word."""
    spans = []
    for cue_end in _cue_ends(words, cues):
        for start in range(cue_end, min(cue_end + CUE_REACH, len(words))):
            if digits[start] is None:
                continue
            number, best = "", None
            for end in range(start, len(words)):
                if digits[end] is None:
                    break
                number += digits[end]
                if valid(number):
                    best = (start, end + 1)
            if best:
                spans.append(best)
            break
    return spans


def _cue_ends(words: list[str], cues) -> list[int]:
    firsts = {cue[0] for cue in cues}
    ends = []
    for index, word in enumerate(words):
        if word in firsts:
            ends += [index + len(cue) for cue in cues if tuple(words[index : index + len(cue)]) == cue]
    return ends


def _is_expiry(number: str) -> bool:
    if len(number) == 3:
        number = "0" + number
    return len(number) in (4, 6) and 1 <= int(number[:2]) <= 12


def _ssns(tokens, words, digits, runs) -> list[tuple[int, int]]:
    spans = [(index, index + 1) for index, token in enumerate(tokens) if _SSN_TOKEN.fullmatch(token.strip(".,;:!?"))]
    for start, stop in runs:
        if stop - start >= 3 and [len(value or "") for value in digits[start : start + 3]] == [3, 2, 4]:
            spans.append((start, start + 3))
    spans += _cued(words, digits, _SSN_CUES, lambda number: len(number) == 9)
    return [span for span in spans if ssn.is_valid("".join(digits[index] or "" for index in range(*span)))]


def _phones(tokens, digits, run, region: str, claimed) -> list[tuple[int, int]]:
    """A number valid in the region, read from the start of a stretch of the run no other entity holds.
    Only lengths a number can have there are parsed: phonenumbers.parse is the costliest step here."""
    lengths = _phone_lengths(region)
    spans, start = [], run[0]
    while start < run[1]:
        if _held(start, claimed):
            start += 1
            continue
        found, number = None, "+" if tokens[start].startswith("+") else ""
        for end in range(start, run[1]):
            if _held(end, claimed):
                break
            number += digits[end] or ""
            size = len(number.lstrip("+"))
            if size > 15:
                break
            if (size in lengths or (number.startswith("+") and size >= 8)) and _is_phone(number, region):
                found = (start, end + 1)
        if found:
            spans.append(found)
            start = found[1]
        else:
            start = next((index for index in range(start + 1, run[1]) if _held(index, claimed)), run[1])
    return spans


@lru_cache(maxsize=16)
def _phone_lengths(region: str) -> frozenset[int]:
    """Digit counts of a region's numbers, national or with its country code in front."""
    metadata = phonenumbers.PhoneMetadata.metadata_for_region(region)
    if metadata is None:
        return frozenset(range(7, 16))
    national = set(metadata.general_desc.possible_length or range(7, 16))
    code = len(str(metadata.country_code or ""))
    return frozenset(national | {length + code for length in national})


def _is_phone(number: str, region: str) -> bool:
    try:
        return phonenumbers.is_valid_number(phonenumbers.parse(number, region))
    except phonenumbers.NumberParseException:
        return False


def _ibans(tokens: list[str]) -> list[tuple[int, int]]:
    spans = []
    for start, token in enumerate(tokens):
        first = token.strip(".,;:!?")
        if not _IBAN_START.fullmatch(first):
            continue
        candidate, best = first, None
        for end in range(start, len(tokens)):
            if end > start:
                group = tokens[end].strip(".,;:!?")
                if not _IBAN_GROUP.fullmatch(group) or len(candidate) + len(group) > 34:
                    break
                candidate += group
            if iban.is_valid(candidate):
                best = (start, end + 1)
        if best:
            spans.append(best)
    return spans


def _emails(tokens: list[str], words: list[str]) -> list[tuple[int, int]]:
    """Written ("ann@example.com") or spoken ("ann dot lee at example dot com")."""
    spans = [(index, index + 1) for index, token in enumerate(tokens) if "@" in token and _EMAIL_TOKEN.search(token)]
    for at in (index for index, word in enumerate(words) if word == "at"):
        end = at + 1
        while end + 2 <= len(words) and words[end] and end + 1 < len(words) and words[end + 1] == "dot":
            end += 2
        if end == at + 1 or end >= len(words) or words[end] not in _TOP_LEVEL_DOMAINS:
            continue
        start = at - 1
        while start >= 2 and words[start - 1] in _EMAIL_SEPARATORS and words[start - 2]:
            start -= 2
        if start >= 0 and words[start]:
            spans.append((start, end + 1))
    return spans


def _custom(tokens: list[str], text: str, rules: Rules) -> list[tuple[str, tuple[int, int]]]:
    if not rules.custom:
        return []
    starts, position = [], 0
    for token in tokens:
        position = text.index(token, position)
        starts.append(position)
        position += len(token)
    found = []
    for label, pattern in rules.custom:
        for match in pattern.finditer(text):
            if match.end() > match.start():
                first = max(index for index, start in enumerate(starts) if start <= match.start()) if starts else 0
                last = max(index for index, start in enumerate(starts) if start < match.end())
                found.append((label, (first, last + 1)))
    return found


# --- Pairing display text with lexical words -------------------------------------------------------------


def _units(tokens: list[str]) -> tuple[list[str], list[int]]:
    """One unit per digit and per other word, and the token each came from."""
    digits = [_digits(token) for token in tokens]
    _expand_number_words(tokens, digits)
    units, owners = [], []
    for index, token in enumerate(tokens):
        if digits[index] is not None:
            for digit in digits[index]:
                units.append(digit)
                owners.append(index)
        elif bare := _NOT_ALNUM.sub("", token.lower()):
            units.append(bare)
            owners.append(index)
    return units, owners


def _map_span(source: list[str], target: list[str], span: tuple[int, int]) -> tuple[int, int] | None:
    """The target tokens that say what source[span] says."""
    source_owners, target_owners, opcodes = _alignment(tuple(source), tuple(target))
    wanted = {unit for unit, owner in enumerate(source_owners) if span[0] <= owner < span[1]}
    hits = set()
    for tag, i1, i2, j1, j2 in opcodes:
        inside = [unit for unit in range(i1, i2) if unit in wanted]
        if not inside or tag == "delete":
            continue
        if tag == "equal":
            hits.update(target_owners[j1 + unit - i1] for unit in inside)
        else:
            hits.update(target_owners[j1:j2])
    return (min(hits), max(hits) + 1) if hits else None


@lru_cache(maxsize=64)
def _alignment(source: tuple[str, ...], target: tuple[str, ...]) -> tuple[list[int], list[int], list[tuple]]:
    """Computed once per result however many entities it has (the cache holds a few recent results)."""
    source_units, source_owners = _units(list(source))
    target_units, target_owners = _units(list(target))
    matcher = difflib.SequenceMatcher(None, source_units, target_units, autojunk=False)
    return source_owners, target_owners, matcher.get_opcodes()


def _held(token: int, claimed: list[tuple[int, int]]) -> bool:
    return any(start <= token < end for start, end in claimed)


def _overlaps(one: tuple[int, int], other: tuple[int, int]) -> bool:
    return one[0] < other[1] and other[0] < one[1]
