"""Hints: de-duplicated per push queue, sent only after commit; NOTIFY for pull queues."""

from __future__ import annotations

import psycopg
import pytest
from django.conf import settings
from django.core.cache import cache
from django.db import connection, transaction

from jobs.services.dispatch import NOTIFY_CHANNEL, clear_kick, kick_key, kick_on_commit

pytestmark = pytest.mark.django_db(transaction=True)


def _conninfo() -> str:
    db = settings.DATABASES["default"]
    return f"host={db['HOST']} port={db['PORT'] or 5432} user={db['USER']} dbname={db['NAME']}" + (
        f" password={db['PASSWORD']}" if db.get("PASSWORD") else ""
    )


def test_push_kick_waits_for_commit_and_dedupes(make_queue, monkeypatch):
    q = make_queue()
    sent: list[str] = []
    from celery import current_app

    monkeypatch.setattr(current_app, "send_task", lambda name, args, **kw: sent.append((name, args[0])))
    with transaction.atomic():
        kick_on_commit([q.id, q.id])
        assert sent == []  # nothing before commit
    assert sent == [("jobs.deliver_queue", q.id)]
    kick_on_commit([q.id])
    assert len(sent) == 1  # a hint is already pending
    clear_kick(q.id)  # the task starts
    kick_on_commit([q.id])
    assert len(sent) == 2
    assert cache.get(kick_key(q.id)) == 1


def test_rolled_back_transaction_sends_nothing(make_queue, monkeypatch):
    q = make_queue()
    sent: list[str] = []
    from celery import current_app

    monkeypatch.setattr(current_app, "send_task", lambda name, args, **kw: sent.append(name))
    with pytest.raises(RuntimeError), transaction.atomic():
        kick_on_commit([q.id])
        raise RuntimeError
    assert sent == []


def test_pull_queue_gets_one_notify_on_commit(make_queue):
    if connection.vendor != "postgresql":
        pytest.skip("LISTEN/NOTIFY is PostgreSQL's")
    q = make_queue("p", delivery="pull")
    with psycopg.connect(_conninfo(), autocommit=True) as listener:
        listener.execute(f"LISTEN {NOTIFY_CHANNEL}")
        with transaction.atomic():
            kick_on_commit([q.id])
            kick_on_commit([q.id])
        notes = list(listener.notifies(timeout=1.0, stop_after=5))
    assert [(n.channel, n.payload) for n in notes] == [(NOTIFY_CHANNEL, q.id)]
