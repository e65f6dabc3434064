"""A call with its participants, streams and gaps, as the call page's description needs it
(calls.display.call_view), read in four statements whose SQL is written once.

The live feed reads that description again at every call and stream event of a watched call: six
times per call while a burst of calls sets up. Through the ORM, with the three relations prefetched, the
description cost about 4 ms of the core, most of it building the four queries' SQL; with the SQL built
once, about 1 ms (bench/description_read.py; docs/performance.md, "Night trials"). The rows
are handed to the call's related managers as prefetch_related would hand them (compat/django_db.py),
so everything that reads a prefetched call reads this one the same way.
"""

from __future__ import annotations

import uuid
from functools import cache

from django.db import connection
from django.db.backends.utils import CursorWrapper
from django.db.models import Model

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


def _rows(cursor: CursorWrapper, model: type[Model], column: str, value: object) -> list[Model]:
    sql, attnames = _select(model, column)
    cursor.execute(sql, [value])
    return [model.from_db(connection.alias, attnames, row) for row in cursor.fetchall()]


@cache
def _select(model: type[Model], column: str) -> tuple[str, list[str]]:
    """Every column of the model's rows whose `column` is the value given, in the model's default order."""
    quote, meta = connection.ops.quote_name, model._meta
    columns = ", ".join(quote(field.column) for field in meta.concrete_fields)
    sql = f"SELECT {columns} FROM {quote(meta.db_table)} WHERE {quote(column)} = %s"  # noqa: S608 - names only
    order = [
        quote(meta.get_field(name.removeprefix("-")).column) + (" DESC" if name.startswith("-") else "")
        for name in meta.ordering
    ]
    if order:
        sql += " ORDER BY " + ", ".join(order)
    return sql, [field.attname for field in meta.concrete_fields]
