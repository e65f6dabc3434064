"""The call list and search count only ten pages past the page shown (calls/pagination.py)."""

from __future__ import annotations

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from calls.models import Call
from tests.calls.conftest import bulk_segments, new_call

MORE_THAN_COUNTED = 290  # page 1 counts 11 pages of 25 (calls/pagination.py): 275 rows


@pytest.fixture
def many_ended_calls(db: None) -> None:
    now = timezone.now()
    Call.objects.bulk_create(
        Call(direction=Call.Direction.INBOUND, caller=f"4:+1425555{n:04}", state=Call.State.DISCONNECTED, ended_at=now)
        for n in range(MORE_THAN_COUNTED)
    )


def pagination_of(page: str) -> str:
    return page[page.index('<nav class="pagination"') :]


def test_a_long_call_list_says_more_than_and_every_page_stays_reachable(
    alice_client: Client, many_ended_calls: None
) -> None:
    first = pagination_of(alice_client.get(reverse("calls-list")).content.decode())
    assert "Page 1 of more than 11" in first
    assert 'rel="next"' in first
    # From page 2 the count reaches every call, and is exact.
    second = pagination_of(alice_client.get(reverse("calls-list"), {"page": 2}).content.decode())
    assert "Page 2 of 12" in second
    assert 'rel="next"' in second
    last = alice_client.get(reverse("calls-list"), {"page": 12}).content.decode()
    assert last.count('<th scope="row" data-label="Caller">') == MORE_THAN_COUNTED - 11 * 25
    assert 'rel="next"' not in pagination_of(last)


def test_a_common_word_says_more_than_until_paged_near_the_end(alice_client: Client) -> None:
    call = new_call()
    bulk_segments(call, MORE_THAN_COUNTED, "I need a refund for order {n}.")
    first = alice_client.get(reverse("calls-list"), {"q": "refund"}).content.decode()
    assert "More than 275 matches for “refund”" in first
    near_the_end = alice_client.get(reverse("calls-list"), {"q": "refund", "page": 2}).content.decode()
    assert "290 matches for “refund”" in near_the_end


@pytest.mark.parametrize("page", ["99999999999999999999999", "-3", "last", "2.5"])
def test_any_page_number_gets_a_page(alice_client: Client, many_ended_calls: None, page: str) -> None:
    response = alice_client.get(reverse("calls-list"), {"page": page})
    assert response.status_code == 200
    assert "Page " in pagination_of(response.content.decode())
