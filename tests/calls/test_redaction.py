"""Redaction of transcription results (calls/redaction.py): what is replaced, what is left alone, and that
the display text and the timed words keep agreeing."""

from __future__ import annotations

import re

from calls.redaction import Redactor, Rules, redact

STEP = 4_000_000  # ticks per word: 0.4 s


def timed(lexical: str, start: int = 10_000_000) -> list[dict[str, int | str]]:
    return [
        {"text": word, "offset": start + index * STEP, "duration": STEP} for index, word in enumerate(lexical.split())
    ]


def word_texts(words: list[dict]) -> str:
    return " ".join(word["text"] for word in words)


def test_a_card_read_in_display_form_and_its_codes_become_placeholders() -> None:
    text = "My card is 4111 1111 1111 1111, expiry 09/28, code 123."
    words = timed(
        "my card is four one one one one one one one one one one one one one one one "
        "expiry oh nine twenty eight code one two three"
    )
    result = redact(text, words)
    assert result.text == "My card is [CARD], expiry [EXPIRY], code [CVV]."
    assert word_texts(result.words) == "my card is [CARD] expiry [EXPIRY] code [CVV]"
    assert result.counts == {"CARD": 1, "EXPIRY": 1, "CVV": 1}
    assert not re.search(r"\d", result.text)


def test_a_placeholder_word_spans_the_words_it_replaces() -> None:
    words = timed("card four one one one one one one one one one one one one one one one thanks")
    result = redact("card 4111 1111 1111 1111 thanks", words)
    card = result.words[1]
    assert card == {"text": "[CARD]", "offset": words[1]["offset"], "duration": 16 * STEP}
    assert result.words[2] == words[17]  # the words after it keep their timings
    (entity,) = result.entities
    assert (entity.start_ticks, entity.end_ticks) == (words[1]["offset"], words[16]["offset"] + STEP)


def test_text_and_words_that_paired_one_to_one_still_do() -> None:
    text = "Card 4111-1111-1111-1111 please"
    result = redact(text, timed("card 4111-1111-1111-1111 please"))
    assert result.text.split() == ["Card", "[CARD]", "please"]
    assert [word["text"] for word in result.words] == ["card", "[CARD]", "please"]


def test_a_card_spelled_out_with_oh_and_double_is_caught() -> None:
    # 5500 0000 0000 0004 (Luhn-valid), read the way people say it.
    result = redact("it's five five oh oh double oh oh oh oh oh oh oh oh oh oh four", None)
    assert result.text == "it's [CARD]"


def test_luhn_invalid_numbers_order_ids_times_and_amounts_are_left_alone() -> None:
    for text in [
        "Card 4111 1111 1111 1112 did not go through.",
        "Your order number is 20240611 and the reference 998877.",
        "I'll call back at 2:30, or two thirty.",
        "That's fifty nine dollars, $59.99 in total.",
        "The account number is four four seven two, nine one eight three.",
        "Oh, I see.",
    ]:
        result = redact(text, timed(text.lower()))
        assert result.text == text and not result.entities, text


def test_a_code_without_a_cue_or_card_nearby_is_not_a_security_code() -> None:
    assert redact("The code is 123", None).text == "The code is 123"
    assert redact("The security code is 4321", None).text == "The security code is [CVV]"


def test_ssn_iban_email_and_phone() -> None:
    result = redact(
        "SSN 536-22-8841, IBAN GB82 WEST 1234 5698 7654 32, mail ann.lee@example.com or call (425) 555-0100.",
        None,
    )
    assert result.text == "SSN [SSN], IBAN [IBAN], mail [EMAIL] or call [PHONE]."
    assert redact("my email is ann dot lee at example dot com", None).text == "my email is [EMAIL]"
    assert redact("my social security number is five three six two two eight eight four one", None).text == (
        "my social security number is [SSN]"
    )


def test_an_invalid_iban_and_a_number_that_is_no_phone_in_the_region_stay() -> None:
    assert redact("IBAN GB82 WEST 1234 5698 7654 33", None).text == "IBAN GB82 WEST 1234 5698 7654 33"
    assert redact("call 020 7946 0958", None, Rules(phone_region="US")).text == "call 020 7946 0958"
    assert redact("call 020 7946 0958", None, Rules(phone_region="GB")).text == "call [PHONE]"


def test_custom_rules_replace_their_matches_with_their_label() -> None:
    rules = Rules(custom=(("ACCOUNT", re.compile(r"\bAC-\d{6}\b")),))
    result = redact("Account AC-123456, thanks", timed("account ac-123456 thanks"), rules)
    assert result.text == "Account [ACCOUNT], thanks"
    assert word_texts(result.words) == "account [ACCOUNT] thanks"


def test_intermediate_results_without_words_are_redacted_too() -> None:
    assert redact("my card is 4111 1111 1111 1111", None).text == "my card is [CARD]"


def test_a_card_split_across_two_finals_of_one_speaker_is_redacted_in_both() -> None:
    redactor = Redactor()
    first = redactor.redact(
        "caller", "My card is 4111 1111", timed("my card is four one one one one one one one"), final=True, key=7
    )
    assert first.text == "My card is 4111 1111" and first.earlier is None
    second_words = timed("one one one one one one one one thank you", start=50_000_000)
    second = redactor.redact("caller", "1111 1111, thank you.", second_words, final=True, key=8)
    assert second.text == "[CARD], thank you."
    assert word_texts(second.words) == "[CARD] thank you"
    assert second.earlier is not None and second.earlier.key == 7
    assert second.earlier.text == "My card is [CARD]"
    assert word_texts(second.earlier.words) == "my card is [CARD]"


def test_the_window_is_per_speaker_and_intermediates_do_not_change_it() -> None:
    redactor = Redactor()
    redactor.redact("caller", "My card is 4111 1111", None, final=True, key=1)
    assert redactor.redact("agent", "1111 1111", None, final=True, key=2).text == "1111 1111"
    interim = redactor.redact("caller", "1111 1111", None, final=False)
    assert interim.text == "[CARD]" and interim.earlier is None
    final = redactor.redact("caller", "1111 1111", None, final=True, key=3)
    assert final.earlier is not None and final.earlier.key == 1


def test_text_without_digits_or_number_words_comes_back_as_it_was() -> None:
    words = timed("hello how can i help")
    result = redact("Hello, how can I help?", words)
    assert result.text == "Hello, how can I help?" and result.words == words and not result.changed
