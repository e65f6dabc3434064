"""Django's psycopg connection, for the one statement Callscribe prepares (the finals insert), and
Django's psycopg pool, whose numbers /metrics shows (config/database_pool.py).

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


def check() -> None:
    require_attributes("Django", DatabaseWrapper, ("ensure_connection", "wrap_database_errors", "pool"))
    if not hasattr(connection, "connection"):
        raise incompatible("Django", "the database wrapper keeps no `connection` to its driver")
    if "prepare" not in psycopg.Cursor.execute.__code__.co_varnames:
        raise incompatible("psycopg", "Cursor.execute takes no `prepare`")
