"""psycopg's C timestamptz loader on Django's connections (config/db/pgtime.py): the same values as Django's own
loader, and Django keeps it on every cursor."""

from __future__ import annotations

from datetime import UTC

import pytest
from django.db import connection
from psycopg import adapters, pq

from config.db.pgtime import use_c_timestamptz_loader

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


def test_the_c_loader_gives_what_djangos_gives():
    if connection.vendor != "postgresql":
        pytest.fail("these tests run on PostgreSQL")
    connection.ensure_connection()
    django_values, django_loader = _fetch()
    use_c_timestamptz_loader(sender=None, connection=connection)
    c_values, c_loader = _fetch()
    try:
        assert c_loader is not django_loader and c_loader.__name__ == "CTzLoader"  # kept on a new cursor
        assert c_values == django_values
        assert [v.tzinfo for v in c_values[:4]] == [UTC] * 4
        assert c_values[4] is None
    finally:
        connection.close()  # the next test gets Django's own loader again
