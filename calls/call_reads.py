"""Reads of calls whose SQL is written once: a call with its participants, streams and gaps, as the
call page's description needs it (calls.display.call_view), in four statements; and a call locked for
a change, which every answer and stream opening or closing starts with, and every ACS callback too
(its lock also records when ACS was last heard from).

The live feed reads that description again at every call and stream event of a watched call: six
times per call while a burst of calls sets up. Through the ORM, with the three relations prefetched, the
description cost about 4 ms of the core, most of it building the four queries' SQL; with the SQL built
once, about 1 ms (bench/description_read.py; docs/performance.md, "Night trials"). The rows
are handed to the call's related managers as prefetch_related would hand them (compat/django_db.py),
so everything that reads a prefetched call reads this one the same way.

The locked read, in a transaction of its own, costs 0.28 ms of CPU where the ORM's
`select_for_update(no_key=True)` cost 0.65 ms, the difference building the call's 30-odd columns into
SQL; a call is locked about eleven times over its life (bench/description_read.py; docs/performance.md,
"Late-night runs").
"""

from __future__ import annotations

import uuid
from datetime import datetime
from functools import cache

from django.db import connection
from django.db.backends.utils import CursorWrapper
from django.db.models import Model
from django.db.transaction import TransactionManagementError

from calls.models import Call, Gap, MediaStream, Participant
from compat import django_db

RELATIONS: tuple[tuple[str, type[Model]], ...] = (
    ("participants", Participant),
    ("streams", MediaStream),
    ("gaps", Gap),
)


def call_with_parts(call_id: uuid.UUID | str) -> Call | None:
    """The call with its participants, streams and gaps in their models' order; None if there is no such call."""
    with connection.cursor() as cursor:
        found = _rows(cursor, Call, "id", call_id)
        if not found:
            return None
        call = found[0]
        for relation, model in RELATIONS:
            rows = _rows(cursor, model, "call_id", call_id)
            for row in rows:
                row.call = call
            django_db.give_prefetched(call, relation, rows)
    return call


def locked_call(call_id: uuid.UUID | str) -> Call:
    """The call, locked until the transaction commits, so changes to one call happen one at a time;
    Call.DoesNotExist if there is none.

    FOR NO KEY UPDATE, not FOR UPDATE: rows that only point at a call (participants, segments, gaps,
    events) must still pass their foreign-key check meanwhile. FOR UPDATE blocks that check, which
    deadlocked a webhook inserting a participant a media socket had just inserted.
    """
    call = _locked_call_where("id", call_id)
    if call is None:
        raise Call.DoesNotExist(f"No call {call_id}")
    return call


def locked_call_heard_from(call_id: uuid.UUID | None, call_connection_id: str, heard_at: datetime) -> Call | None:
    """The call an ACS callback is about, by our id (from the callback URL's token) or else by ACS's
    callConnectionId, locked until the transaction commits, with `last_event_at` set to `heard_at`.

    One UPDATE ... RETURNING does both: an UPDATE that leaves the key alone locks the row as FOR NO
    KEY UPDATE does, and each of a call's four setup callbacks is then a statement shorter.
    """
    _require_transaction()
    call = _heard_from_where("id", call_id, heard_at) if call_id else None
    if call is None and call_connection_id:
        call = _heard_from_where("call_connection_id", call_connection_id, heard_at)
    return call


def _locked_call_where(column: str, value: object) -> Call | None:
    _require_transaction()
    with connection.cursor() as cursor:
        found = _rows(cursor, Call, column, value, lock=True)
    return found[0] if found else None


def _heard_from_where(column: str, value: object, heard_at: datetime) -> Call | None:
    sql, attnames = _heard_from_update(column)
    with connection.cursor() as cursor:
        cursor.execute(sql, [heard_at, value])
        row = cursor.fetchone()
    return Call.from_db(connection.alias, attnames, row) if row else None


def _require_transaction() -> None:
    if not connection.in_atomic_block:  # as the ORM refuses select_for_update: outside one, the lock is gone at once
        raise TransactionManagementError("A call is locked for a change only inside transaction.atomic().")


def _rows(cursor: CursorWrapper, model: type[Model], column: str, value: object, *, lock: bool = False) -> list[Model]:
    sql, attnames = _select(model, column, lock)
    cursor.execute(sql, [value])
    return [model.from_db(connection.alias, attnames, row) for row in cursor.fetchall()]


@cache
def _heard_from_update(column: str) -> tuple[str, list[str]]:
    """`locked_call_heard_from`'s statement: the call whose `column` is the value given, every column returned."""
    quote, meta = connection.ops.quote_name, Call._meta
    columns = ", ".join(quote(field.column) for field in meta.concrete_fields)
    last_event_at = quote(meta.get_field("last_event_at").column)
    sql = f"UPDATE {quote(meta.db_table)} SET {last_event_at} = %s WHERE {quote(column)} = %s RETURNING {columns}"  # noqa: S608 - names only
    return sql, [field.attname for field in meta.concrete_fields]


@cache
def _select(model: type[Model], column: str, lock: bool = False) -> tuple[str, list[str]]:
    """Every column of the model's rows whose `column` is the value given, in the model's default order;
    with `lock`, locked as `locked_call` locks them."""
    quote, meta = connection.ops.quote_name, model._meta
    columns = ", ".join(quote(field.column) for field in meta.concrete_fields)
    sql = f"SELECT {columns} FROM {quote(meta.db_table)} WHERE {quote(column)} = %s"  # noqa: S608 - names only
    order = [
        quote(meta.get_field(name.removeprefix("-")).column) + (" DESC" if name.startswith("-") else "")
        for name in meta.ordering
    ]
    if order:
        sql += " ORDER BY " + ", ".join(order)
    if lock:
        sql += " FOR NO KEY UPDATE"
    return sql, [field.attname for field in meta.concrete_fields]
