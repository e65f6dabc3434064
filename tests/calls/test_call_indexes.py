"""The call list's indexes answer the queries the pages make (docs/performance.md)."""

from __future__ import annotations

import pytest
from django.db import connection, transaction
from django.db.models import Q

from calls.models import ENDED_STATES, Call

pytestmark = pytest.mark.django_db


def test_the_live_calls_index_holds_exactly_the_calls_not_ended() -> None:
    (index,) = [index for index in Call._meta.indexes if index.name == "call_live_created_idx"]
    assert index.condition == ~Q(state__in=list(ENDED_STATES))


def test_the_live_call_list_reads_the_live_calls_index() -> None:
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SET LOCAL enable_seqscan = off")  # a test database is too small to prefer an index
        plan = Call.objects.live().order_by("-created_at")[:200].explain()
    assert "call_live_created_idx" in plan


def test_the_ended_calls_index_holds_exactly_the_ended_calls() -> None:
    (index,) = [index for index in Call._meta.indexes if index.name == "call_ended_created_idx"]
    assert index.condition == Q(state__in=list(ENDED_STATES))


def test_the_past_call_list_reads_the_ended_calls_index_in_order() -> None:
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SET LOCAL enable_seqscan = off")
        cursor.execute("SET LOCAL enable_bitmapscan = off")  # which would read every ended call, then sort
        plan = Call.objects.ended().order_by("-created_at")[:25].explain()
    assert "call_ended_created_idx" in plan
    assert "Sort" not in plan  # the page is read in the index's order, not sorted
