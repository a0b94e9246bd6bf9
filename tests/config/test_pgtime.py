"""psycopg's C timestamptz loader on the engine's connections (config/db/pgtime.py, config/db/pgengine): the same
values as Django's own loader, and Django keeps it on every cursor."""

from __future__ import annotations

from datetime import UTC

import pytest
from django.db import connection
from django.db.backends.postgresql.psycopg_any import register_tzloader
from psycopg import adapters, pq

pytestmark = pytest.mark.django_db

SQL = """
SELECT '2026-01-02 03:04:05.123456+00'::timestamptz, '2026-06-30 23:59:59+02'::timestamptz,
       '0001-01-01 00:00:00+00'::timestamptz, '9999-12-31 23:59:59.999999+00'::timestamptz, NULL::timestamptz
"""
OID = adapters.types["timestamptz"].oid


def _fetch() -> tuple:
    with connection.cursor() as cursor:
        cursor.execute(SQL)
        return cursor.fetchone(), cursor.cursor.adapters.get_loader(OID, pq.Format.TEXT)


def test_the_engines_connections_load_timestamps_in_c_with_djangos_values():
    if connection.vendor != "postgresql":
        pytest.fail("these tests run on PostgreSQL")
    connection.ensure_connection()  # made by config.db.pgengine, as every connection
    c_values, c_loader = _fetch()
    try:
        assert c_loader.__name__ == "CTzLoader"  # registered on the connection, kept on a new cursor
        register_tzloader(UTC, connection.connection)  # Django's own loader, for comparison
        django_values, django_loader = _fetch()
        assert django_loader.__name__ == "SpecificTzLoader"
        assert c_values == django_values
        assert [v.tzinfo for v in c_values[:4]] == [UTC] * 4
        assert c_values[4] is None
    finally:
        connection.close()  # the next test gets a connection with the engine's loader again
