"""Full-text search over every transcript, on PostgreSQL's FTS."""

from __future__ import annotations

import pytest
from django.test import Client
from django.urls import reverse

from calls.models import Call
from calls.search import HIGHLIGHT_START, HIGHLIGHT_STOP, highlighted, matching_segments, search_hits
from tests.calls.conftest import end, new_call, say
from tests.streaming import acs_packets as acs

pytestmark = pytest.mark.django_db


def texts(query: str) -> list[str]:
    return [segment.text for segment in matching_segments(query, Call.objects.all())]


@pytest.fixture
def transcripts() -> tuple[Call, Call]:
    past = end(new_call("4:+14255550100"))
    say(past, acs.CALLER, "My router is blinking red again.", 1000)
    say(past, acs.AGENT, "Please restart the router and wait two minutes.", 4000)
    say(past, acs.CALLER, "The bill for last month was wrong.", 9000)
    live = new_call("4:+14255550199")
    say(live, acs.CALLER, "I was charged twice on my bill.", 2000)
    return past, live


def test_words_match_in_any_form(transcripts: tuple[Call, Call]) -> None:
    assert set(texts("restarting routers")) == {"Please restart the router and wait two minutes."}


def test_quoted_phrases_must_match_in_order(transcripts: tuple[Call, Call]) -> None:
    assert texts('"router is blinking"') == ["My router is blinking red again."]
    assert texts('"blinking router"') == []


def test_minus_excludes_a_word(transcripts: tuple[Call, Call]) -> None:
    assert texts("bill -twice") == ["The bill for last month was wrong."]


def test_live_calls_are_searched_too(transcripts: tuple[Call, Call]) -> None:
    past, live = transcripts
    assert {segment.call_id for segment in matching_segments("bill", Call.objects.all())} == {past.id, live.id}


def test_better_matches_rank_first(transcripts: tuple[Call, Call]) -> None:
    past, _ = transcripts
    say(past, acs.CALLER, "Router, router, the router again!", 12000)
    assert texts("router")[0] == "Router, router, the router again!"


def test_nonsense_queries_find_nothing_instead_of_failing(transcripts: tuple[Call, Call]) -> None:
    assert texts('"" - OR ) ( & !') == []


def test_snippets_highlight_matches_and_escape_everything_else() -> None:
    call = new_call()
    say(call, acs.CALLER, "<script>alert(1)</script> my modem & router died", 1000)
    snippet = search_hits("router", list(matching_segments("router", Call.objects.all())))[0].snippet
    assert "<script" not in snippet
    assert snippet == "&lt;script&gt;alert(1)&lt;/script&gt; my modem &amp; <mark>router</mark> died"


def test_snippets_keep_what_looks_like_markup() -> None:
    """ts_headline's parser takes "<...>" for tags and drops it from snippets; a transcript's words stay."""
    call = new_call()
    say(call, acs.CALLER, "press <1> for <the billing team> or say a<b", 1000)
    snippet = search_hits("press", list(matching_segments("press", Call.objects.all())))[0].snippet
    assert snippet == "<mark>press</mark> &lt;1&gt; for &lt;the billing team&gt; or say a&lt;b"


def test_highlight_markers_in_the_text_itself_cannot_inject_markup() -> None:
    headline = f"a {HIGHLIGHT_START}<b>hit</b>{HIGHLIGHT_STOP} and {HIGHLIGHT_START}<i>"
    assert highlighted(headline) == "a <mark>&lt;b&gt;hit&lt;/b&gt;</mark> and \ue000&lt;i&gt;"


def test_each_hit_links_to_its_moment_in_the_call(transcripts: tuple[Call, Call]) -> None:
    past, _ = transcripts
    hit = search_hits("restart", list(matching_segments("restart", Call.objects.all())))[0]
    assert hit.url == f"/calls/{past.id}/?t=4000#segment-{hit.segment.sequence}"


def test_the_call_list_shows_search_hits_with_filters_applied(
    alice_client: Client, transcripts: tuple[Call, Call]
) -> None:
    past, live = transcripts
    page = alice_client.get(reverse("calls-list"), {"q": "bill"}).content.decode()
    assert "2 matches for “bill”" in page
    assert "<mark>bill</mark>" in page
    assert f"/calls/{live.id}/?t=2000#segment-" in page
    only_past = alice_client.get(reverse("calls-list"), {"q": "bill", "state": "disconnected"}).content.decode()
    assert "1 match for “bill”" in only_past
    assert f"/calls/{past.id}/?t=9000" in only_past


def test_the_search_page_escapes_the_query(alice_client: Client, transcripts: tuple[Call, Call]) -> None:
    page = alice_client.get(reverse("calls-list"), {"q": "<script>x</script>"}).content.decode()
    assert "<script>x" not in page
    assert "0 matches for “&lt;script&gt;x&lt;/script&gt;”" in page


def test_search_results_are_paged(alice_client: Client) -> None:
    call = new_call()
    for index in range(30):
        say(call, acs.CALLER, f"Outage report number {index}.", index * 3000)
    first = alice_client.get(reverse("calls-list"), {"q": "outage"}).content.decode()
    assert first.count('class="hit"') == 25
    second = alice_client.get(reverse("calls-list"), {"q": "outage", "page": 2}).content.decode()
    assert second.count('class="hit"') == 5
    assert "q=outage" in second  # the page links keep the search
