"""A stream's database work survives a connection the server dropped (a restart, a failover).

A WebSocket's sync calls run outside any request, on asgiref's one shared thread: nothing tended that thread's
connection, so once PostgreSQL ended its session every later call of every socket failed until the process
restarted. Here the server ends the session for real (pg_terminate_backend) between two calls.
"""

from __future__ import annotations

import asyncio

import psycopg
import pytest
from asgiref.sync import sync_to_async
from django.db import connection, connections

from accounts.models import Workspace
from jobs.services.streams import db_sync

pytestmark = pytest.mark.django_db(transaction=True)


def _count() -> int:
    return Workspace.objects.count()


def _backend_pid() -> int:
    connection.ensure_connection()
    return connection.connection.info.backend_pid


def _terminate(pid: int) -> None:
    settings = connection.settings_dict
    with psycopg.connect(
        dbname=settings["NAME"],
        host=settings["HOST"],
        port=settings["PORT"] or 5432,
        user=settings["USER"],
        autocommit=True,
    ) as admin:
        # With a timeout the call returns once the backend has exited (its FATAL message sent), so the next call
        # finds a connection the server has ended. Without one it returns when the signal is sent: under load the
        # next call's health check could still find the socket quiet, and lose the race it is not about.
        admin.execute("SELECT pg_terminate_backend(%s, 5000)", [pid])


def test_the_shared_threads_stream_calls_reconnect_after_the_server_ends_their_session():
    async def scenario() -> list[int]:
        counts = [await db_sync(_count)()]
        _terminate(await db_sync(_backend_pid)())
        counts += [await db_sync(_count)(), await db_sync(_count)()]
        return counts

    try:
        assert asyncio.run(scenario()) == [0, 0, 0]
    finally:
        # The shared thread outlives this test: leave no connection of it to the test database.
        asyncio.run(sync_to_async(connections.close_all)())
