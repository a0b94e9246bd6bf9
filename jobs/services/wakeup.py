"""Push wake-ups: an enqueue's COMMIT wakes the workers' conveyors through PostgreSQL LISTEN/NOTIFY.

A broker hint reaches the claim only after a Redis round trip for its de-dup flag, a Celery publish, the
consumer's hand-off to a pool process and another Redis round trip to clear the flag. PostgreSQL delivers a
NOTIFY together with the enqueue's COMMIT (PERF.md: p50 0.8 ms). So each worker process runs one `Waker`: the
process's shared listener (config.db) hands it the notified queue ids, and its thread claims them for the
conveyor, one claim per queue however many notifications a burst brought. While its LISTEN is in place the
waker announces itself in the shared cache, and enqueues then NOTIFY instead of sending a broker hint
(dispatch.kick_statement). Celery still carries the rest: the re-kicks when capacity frees, the sweeper's
re-kicks (which also repair a wake-up lost while a listener reconnected), and every hint where there is no
NOTIFY (the embedded SQLite mode) or no announced waker.

One process of each worker runs a waker (the first pool process, or the single process of a thread pool;
jobs/tasks.py): woken processes of one worker would only race for the same job. Several workers each claim on
every wake-up; the first claim leases the jobs and the others find none (one short statement each), as with any
two processes claiming the same queue.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from django.conf import settings
from django.core.cache import cache

from config import db
from jobs.services import conveyor
from jobs.services.dispatch import PUSH_CHANNEL, send_hints, wakers_key

logger = logging.getLogger(__name__)

ANNOUNCE_EVERY_S = 3.0
ANNOUNCE_TTL_S = 10

_started: Waker | None = None
_start_lock = threading.Lock()


def _claim(queue_id: str) -> None:
    # In a prefork worker, claimed here only while this process's conveyor is idle; busy, it hints through the
    # broker, which gives the claim to a free process (a waker claiming every burst itself kept the worker's other
    # processes idle). A thread-pool worker has no other process: it claims here.
    conveyor.conveyor().claim_here_or_hint([queue_id], woken=True)


class Waker:
    """One per worker process: a thread that claims the queues the listener was notified about."""

    def __init__(self, listener: db.Listener, claim: Callable[[str], None] = _claim) -> None:
        self._listener = listener
        self._claim = claim
        self._pending: set[str] = set()
        self._cond = threading.Condition()
        self._stopping = False
        # At once if the listener is already listening; else when it calls back after connecting.
        self._announce_now = True
        self._thread = threading.Thread(target=self._run, name="spindle-push-waker", daemon=True)
        listener.watch(self.notified)
        self._thread.start()

    def notified(self, queue_id: str | None) -> None:
        """On the listener's thread: remember the queue. None comes after each (re)connect: nothing to claim, but
        the LISTEN is in place, so the waker announces itself now rather than at its next period (until then,
        enqueues send broker hints)."""
        with self._cond:
            if queue_id is None:
                self._announce_now = True
            else:
                self._pending.add(queue_id)
            self._cond.notify()

    def stop(self) -> None:
        with self._cond:
            self._stopping = True
            self._cond.notify()
        self._thread.join(timeout=5)

    def _announce(self) -> None:
        try:
            if self._listener.listening:
                cache.set(wakers_key(), time.time(), timeout=ANNOUNCE_TTL_S)
        except Exception:  # noqa: BLE001 - unannounced, enqueues send broker hints: slower, never lost
            logger.warning("could not announce the push waker", exc_info=True)

    def _take(self, timeout_s: float) -> list[str]:
        with self._cond:
            if not self._pending and not self._stopping and not self._announce_now:
                self._cond.wait(timeout_s)
            taken, self._pending = sorted(self._pending), set()
            return taken

    def _run(self) -> None:
        announced = 0.0
        while not self._stopping:
            if self._announce_now or time.monotonic() - announced >= ANNOUNCE_EVERY_S:
                self._announce_now = False
                self._announce()
                announced = time.monotonic()
            for queue_id in self._take(ANNOUNCE_EVERY_S):
                try:
                    self._claim(queue_id)
                except Exception:  # noqa: BLE001 - the broker hint (and the sweeper behind it) takes over
                    logger.warning("queue %s: woken claim failed, sending a hint", queue_id, exc_info=True)
                    send_hints([queue_id])


def start() -> Waker | None:
    """Start this process's waker, once; None where there is no LISTEN (SQLite) or SPINDLE_PUSH_WAKEUP is off."""
    global _started
    if not settings.SPINDLE_PUSH_WAKEUP:
        return None
    with _start_lock:
        if _started is None:
            listener = db.backend().listener(PUSH_CHANNEL)
            if listener is not None:
                _started = Waker(listener)
        return _started


def stop() -> None:
    """Stop this process's waker (worker shutdown); its announcement lapses after ANNOUNCE_TTL_S."""
    global _started
    with _start_lock:
        waker, _started = _started, None
    if waker is not None:
        waker.stop()
