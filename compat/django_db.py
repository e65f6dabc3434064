"""Django's psycopg connection, for the one statement Callscribe prepares (the finals insert);
Django's psycopg pool, whose numbers /metrics shows (config/database_pool.py); and a related manager's
prefetch cache, for the rows of the call page's description read in fixed SQL (calls/call_reads.py).

Django's cursors bind parameters on the client and are never prepared; a psycopg cursor on Django's
own connection is. Django turns psycopg's preparing off unless the `prepare_threshold` option is set
(config/settings.py, DATABASE_PREPARED_STATEMENTS).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import psycopg
from django.db import connection, connections
from django.db.backends.postgresql.base import DatabaseWrapper
from django.db.models import Model

from compat import incompatible, require_attributes


@contextmanager
def psycopg_cursor() -> Iterator[psycopg.Cursor]:
    """A psycopg cursor on Django's connection (opened if need be); database errors become Django's."""
    connection.ensure_connection()
    with connection.wrap_database_errors, psycopg.Cursor(connection.connection) as cursor:
        yield cursor


def connection_pool(alias: str = "default") -> object | None:
    """The psycopg_pool.ConnectionPool Django lends this database's connections from (OPTIONS["pool"])."""
    return connections[alias].pool


def give_prefetched(instance: Model, relation: str, rows: list[Model]) -> None:
    """Makes `instance.<relation>.all()` return `rows` without a query, as prefetch_related leaves it.
    Django has no public way to hand a related manager rows read otherwise."""
    queryset = getattr(instance, relation).get_queryset()
    queryset._result_cache = rows
    queryset._prefetch_done = True
    if not hasattr(instance, "_prefetched_objects_cache"):
        instance._prefetched_objects_cache = {}
    instance._prefetched_objects_cache[relation] = queryset


def _check_give_prefetched() -> None:
    from django.contrib.contenttypes.models import ContentType  # a model: only once the apps are loaded

    content_type, rows = ContentType(pk=0), []
    give_prefetched(content_type, "permission_set", rows)
    queryset = content_type.permission_set.all()
    if getattr(queryset, "_result_cache", None) is not rows or not getattr(queryset, "_prefetch_done", False):
        raise incompatible("Django", "a related manager no longer reads its rows from _prefetched_objects_cache")


def check() -> None:
    _check_give_prefetched()
    require_attributes("Django", DatabaseWrapper, ("ensure_connection", "wrap_database_errors", "pool"))
    if not hasattr(connection, "connection"):
        raise incompatible("Django", "the database wrapper keeps no `connection` to its driver")
    if "prepare" not in psycopg.Cursor.execute.__code__.co_varnames:
        raise incompatible("psycopg", "Cursor.execute takes no `prepare`")
