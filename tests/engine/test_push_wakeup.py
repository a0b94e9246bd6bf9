"""Push wake-ups: while a worker announces a waker, an enqueue's commit NOTIFYs instead of sending a broker hint,
and the waker claims each notified queue once per burst."""

from __future__ import annotations

import threading
import time

import psycopg
import pytest
from django.core.cache import cache
from django.db import connection, transaction

from config import db
from jobs.services import dispatch, wakeup
from jobs.services.dispatch import PUSH_CHANNEL, forget_wakers, kick_on_commit, wakers_key
from tests.engine.test_dispatch import _conninfo

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def _postgres():
    if connection.vendor != "postgresql":
        pytest.skip("LISTEN/NOTIFY is PostgreSQL's")


def _announce() -> None:
    cache.set(wakers_key(), time.time(), timeout=10)
    forget_wakers()


def _kick_and_listen(queue_ids: list[str]) -> list[tuple[str, str]]:
    with psycopg.connect(_conninfo(), autocommit=True) as listener:
        listener.execute(f"LISTEN {PUSH_CHANNEL}")
        with transaction.atomic():
            kick_on_commit(queue_ids)
            kick_on_commit(queue_ids)
        return [(n.channel, n.payload) for n in listener.notifies(timeout=1.0, stop_after=5)]


def test_without_an_announced_waker_a_push_kick_is_a_broker_hint(make_queue, monkeypatch):
    q = make_queue()
    hinted: list[list[str]] = []
    monkeypatch.setattr(dispatch, "send_hints", lambda ids: hinted.append(list(ids)))
    assert _kick_and_listen([q.id]) == []
    assert hinted and all(ids == [q.id] for ids in hinted)  # (send_hints de-duplicates them in the cache)


def test_with_an_announced_waker_a_push_kick_is_one_notify_at_commit(make_queue, monkeypatch):
    push, pull = make_queue("push"), make_queue("pull", delivery="pull")
    hinted: list[list[str]] = []
    monkeypatch.setattr(dispatch, "send_hints", lambda ids: hinted.append(list(ids)))
    _announce()
    assert _kick_and_listen([push.id, pull.id]) == [(PUSH_CHANNEL, push.id)]
    assert hinted == []
    # Rolled back: nothing is sent at all.
    with psycopg.connect(_conninfo(), autocommit=True) as listener:
        listener.execute(f"LISTEN {PUSH_CHANNEL}")
        with pytest.raises(RuntimeError), transaction.atomic():
            kick_on_commit([push.id])
            raise RuntimeError
        assert list(listener.notifies(timeout=0.5, stop_after=1)) == []


def test_an_announcement_is_per_database(make_queue, monkeypatch):
    q = make_queue()
    hinted: list[list[str]] = []
    monkeypatch.setattr(dispatch, "send_hints", lambda ids: hinted.append(list(ids)))
    cache.set("spindle:push-wakers:another-database", time.time(), timeout=10)
    forget_wakers()
    assert _kick_and_listen([q.id]) == []
    assert hinted and all(ids == [q.id] for ids in hinted)


def test_the_waker_announces_itself_and_claims_each_notified_queue(make_queue):
    a, b = make_queue("a"), make_queue("b")
    claimed: list[str] = []
    first = threading.Event()
    release = threading.Event()

    def claim(queue_id: str) -> None:
        claimed.append(queue_id)
        first.set()
        release.wait(5)  # hold the first claim so that a burst piles up behind it

    listener = db.backend().listener(PUSH_CHANNEL)
    waker = wakeup.Waker(listener, claim=claim)
    try:
        deadline = time.time() + 5
        while not cache.get(wakers_key()) and time.time() < deadline:
            time.sleep(0.02)
        assert cache.get(wakers_key()), "the waker did not announce itself"
        forget_wakers()
        with transaction.atomic():
            kick_on_commit([a.id])
        assert first.wait(5), "the notified queue was not claimed"
        for _ in range(5):  # a burst while the first claim runs: one more claim per queue
            with transaction.atomic():
                kick_on_commit([a.id, b.id])
        time.sleep(0.3)
        release.set()
        deadline = time.time() + 5
        while len(claimed) < 3 and time.time() < deadline:
            time.sleep(0.02)
        time.sleep(0.2)
        assert claimed[0] == a.id and sorted(claimed[1:]) == [a.id, b.id]
    finally:
        release.set()
        waker.stop()
        db.backend().listeners_stop()  # the process's LISTEN connection, before the test database goes


@pytest.mark.parametrize("listening_first", [False, True])
def test_the_waker_announces_itself_as_soon_as_its_listen_is_in_place(monkeypatch, listening_first):
    """Not at its next period: until it announces, every enqueue sends a broker hint instead (a worker's first
    seconds ran on the slower path)."""
    monkeypatch.setattr(wakeup, "ANNOUNCE_EVERY_S", 60.0)
    cache.delete(wakers_key())
    listener = db.backend().listener(PUSH_CHANNEL)
    if listening_first:
        deadline = time.time() + 5
        while not listener.listening and time.time() < deadline:
            time.sleep(0.01)
        assert listener.listening
    waker = wakeup.Waker(listener, claim=lambda queue_id: None)
    try:
        deadline = time.time() + 5
        while not cache.get(wakers_key()) and time.time() < deadline:
            time.sleep(0.01)
        assert cache.get(wakers_key()), "the waker waited for its next period to announce itself"
    finally:
        waker.stop()
        db.backend().listeners_stop()
