"""The conveyor: one event loop per worker process carries every push delivery in flight.

Waiting costs a socket, not a thread (DESIGN.md). The deliver task claims a batch and hands it here; it returns
once the loop has sent the batch's requests, so a batch to a slow endpoint holds sockets on this loop, never a
Celery thread. When a batch's requests end, a small recorder thread (sync ORM, never on the loop) records its
outcomes, releases its capacity and, where ready jobs wait for that capacity, claims their next batch itself
(no broker round trip), in one go. Leases stay the truth: a process that dies
with batches in flight loses nothing, the sweeper redelivers their expired leases, and the lease token fences
any late completion.

In-flight limits (counted in jobs, per process) are work-conserving: a workspace alone may use the whole pool
but a small reserve; when several are busy each claims only up to its fair share of it, and a queue up to its
share of its workspace's. The reserve is open only to a workspace with nothing in flight here, so a newcomer
always gets in at once, even while other tenants' batches wait out a tarpit's timeout.
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
from collections import Counter
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

from django.conf import settings
from django.db import connections

from jobs.models import Job
from jobs.services import delivery
from jobs.services.capacity import Ticket, allowance
from jobs.services.dispatch import mark_capped, send_hints, take_capped, workspace_of
from jobs.services.engine import Outcome, job_claim_push_batch, jobs_deliver_outcomes
from queues.models import Queue

logger = logging.getLogger(__name__)
T = TypeVar("T")

# How long `submit` waits at most for the loop to send a batch's requests (a loop that far behind is stuck).
SUBMIT_WAIT_S = 2.0

# Whether this process has sibling pool processes (prefork) that a broker hint can give a claim to. The worker
# sets it at start; a thread-pool worker is one process, where a hint only comes back, a broker round trip later.
_siblings = True


def set_siblings(present: bool) -> None:
    global _siblings
    _siblings = present


def recycle_connections() -> None:
    """Drop connections that errored or outlived CONN_MAX_AGE (Django does this per request); never one that is
    inside a transaction (an in-process caller's)."""
    for conn in connections.all(initialized_only=True):
        if not conn.in_atomic_block:
            conn.close_if_unusable_or_obsolete()


class Conveyor:
    """The process's delivery loop (a daemon thread running asyncio) and its in-flight accounting."""

    def __init__(self, *, total: int, reserve: int) -> None:
        self.total, self.reserve = max(1, total), max(0, min(reserve, total - 1))
        self.pid = os.getpid()
        self._lock = threading.Condition()
        self.in_flight = 0
        self.by_ws: Counter[str] = Counter()
        self.by_queue: Counter[str] = Counter()
        self._ws_queues: dict[str, set[str]] = {}
        self.batches = 0
        self._refused: set[str] = set()
        # Set by drain: the recorder is shutting down, and a process going away kicks nothing (the sweeper will).
        self._draining = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._thread: threading.Thread | None = None
        # Recording is sync ORM and a few round trips; two threads keep up with the loop (PERF.md: batches).
        self._recorder = ThreadPoolExecutor(max_workers=2, thread_name_prefix="spindle-record")

    # --- capacity ------------------------------------------------------------------------------------------

    def reserve_claim(self, queue_id: str, workspace_id: str, batch: int) -> Ticket | None:
        """Book capacity for a claim of at most `batch` jobs; None (and a re-kick when capacity frees) if none."""
        with self._lock:
            size = allowance(
                batch=batch,
                total=self.total,
                reserve=self.reserve,
                in_flight=self.in_flight,
                held_ws=self.by_ws[workspace_id],
                active_ws=len(self.by_ws),
                held_q=self.by_queue[queue_id],
                active_q=len(self._ws_queues.get(workspace_id, ())),
            )
            if size <= 0:
                self._refused.add(queue_id)
                return None
            self._book(queue_id, workspace_id, size)
            return Ticket(queue_id, workspace_id, size)

    def _book(self, queue_id: str, workspace_id: str, n: int) -> None:
        self.in_flight += n
        self.by_ws[workspace_id] += n
        self.by_queue[queue_id] += n
        self._ws_queues.setdefault(workspace_id, set()).add(queue_id)

    def _unbook(self, queue_id: str, workspace_id: str, n: int) -> None:
        self.in_flight -= n
        self.by_ws[workspace_id] -= n
        self.by_queue[queue_id] -= n
        if self.by_queue[queue_id] <= 0:
            del self.by_queue[queue_id]
            self._ws_queues.get(workspace_id, set()).discard(queue_id)
        if self.by_ws[workspace_id] <= 0:
            del self.by_ws[workspace_id]
            self._ws_queues.pop(workspace_id, None)

    def shrink(self, ticket: Ticket, claimed: int) -> None:
        """The claim took fewer jobs than booked: give the rest back."""
        with self._lock:
            self._unbook(ticket.queue_id, ticket.workspace_id, ticket.size - claimed)
            ticket.size = claimed

    def release(self, ticket: Ticket) -> list[str]:
        """Give a ticket's capacity back; returns the queues refused meanwhile, to re-kick."""
        with self._lock:
            self._unbook(ticket.queue_id, ticket.workspace_id, ticket.size)
            ticket.size = 0
            refused, self._refused = sorted(self._refused), set()
            return refused

    # --- claiming -------------------------------------------------------------------------------------------

    def claim_and_carry(self, queue_id: str, *, here: bool = False) -> int:
        """Claim a batch of a push queue within this process's limits and deliver it: on the loop, or with
        `here` on the caller's thread and connection. Returns the number of jobs claimed."""
        workspace_id = workspace_of(queue_id)
        if workspace_id is None:
            return 0
        # In-flight limits: none free -> this queue is re-kicked when capacity frees here.
        ticket = self.reserve_claim(queue_id, workspace_id, max(1, settings.SPINDLE_DELIVERY_BATCH))
        if ticket is None:
            return 0
        booked = ticket.size
        try:
            # One round trip: the queue row (locked, so pause and concurrency are exact) and the leased batch.
            claim = job_claim_push_batch(queue_id=queue_id, limit=booked)
        except BaseException:
            self.release(ticket)
            raise
        self.shrink(ticket, len(claim.jobs))
        # Capped by the queue's limits: the first batch of the queue to finish (here or elsewhere) kicks it.
        # Not capped: every ready job this claim left has a hint of its own, so finishing needs no kick.
        ticket.capped = claim.capped is not False
        if claim.capped:
            mark_capped(queue_id)
        if claim.queue is None or not claim.jobs:
            kicks = self.release(ticket)
            if kicks:
                send_hints(kicks)
            return 0
        if len(claim.jobs) >= booked and not claim.capped:
            # The whole booking was taken and the queue has room, so more may be ready: the next batch is claimed
            # while this one is in flight, by whichever process the broker gives the hint to. (Capped, it would
            # find no room: the first batch to finish claims it instead.)
            send_hints([queue_id])
        if here:
            self.deliver_here(ticket, claim.queue, claim.jobs)
        else:
            self.submit(ticket, claim.queue, claim.jobs)
        return len(claim.jobs)

    def claim_here_or_hint(self, queue_ids: list[str], *, woken: bool = False) -> None:
        """On a recorder thread when capacity just freed, or on the push waker's thread (`woken`) when a queue was
        notified. With no other batch on this loop, claim the queues' next batches here, with no broker round trip
        and no Celery task (a failed claim goes to the broker). With batches in flight here, hint through the
        broker instead: it gives the claim to a free process, so the work stays spread over the worker's processes
        (a chain of direct claims would never move), and a recorder thread goes back to recording. Where there is
        no other process, a woken claim is made here all the same: beside batches waiting out a slow endpoint, the
        hint cost every notified batch two more Redis round trips and a pool thread's hand-over (bench/PROFILES.md:
        noisy neighbours)."""
        with self._lock:
            busy = self.batches > 0
        if busy and (_siblings or not woken):
            send_hints(queue_ids)
            return
        for queue_id in queue_ids:
            try:
                recycle_connections()
                self.claim_and_carry(queue_id)
            except Exception:  # noqa: BLE001 - the hint path (and the sweeper behind it) takes over
                logger.warning("queue %s: direct claim failed, sending a hint", queue_id, exc_info=True)
                send_hints([queue_id])

    # --- the loop ------------------------------------------------------------------------------------------

    def _ensure_loop(self) -> asyncio.AbstractEventLoop:
        with self._lock:
            if self._loop is None:
                ready = threading.Event()
                self._thread = threading.Thread(
                    target=self._serve, args=(ready,), name="spindle-conveyor", daemon=True
                )
                self._thread.start()
                ready.wait()
            assert self._loop is not None
            return self._loop

    def _serve(self, ready: threading.Event) -> None:
        from config import outbound

        async def main() -> None:
            self._loop, self._stop = asyncio.get_running_loop(), asyncio.Event()
            ready.set()
            await self._stop.wait()

        # outbound.run: this thread's persistent loop, where its pooled, SSRF-guarded session lives.
        outbound.run(main())

    def submit(self, ticket: Ticket, queue: Queue, jobs: list[Job]) -> None:
        """Deliver a claimed batch on the loop; the caller returns once the loop has sent its requests.

        Sending is the CPU part of a delivery; answers are waited for on sockets. A process whose loop is busy
        sending thus stays busy to Celery for that long, and Celery gives the next hint to a process with a free
        loop (without the wait, one prefork child took every batch and its loop ran on one core while the other
        child idled). A slow endpoint still holds sockets only: its requests are sent at once.
        """
        loop = self._ensure_loop()
        with self._lock:
            self.batches += 1
        sent = threading.Event()
        asyncio.run_coroutine_threadsafe(self._carry(ticket, queue, jobs, sent), loop)
        sent.wait(SUBMIT_WAIT_S)

    async def _carry(self, ticket: Ticket, queue: Queue, jobs: list[Job], sent: threading.Event) -> None:
        outcomes: list[Outcome] | None = None
        try:
            outcomes = await delivery.deliver_batch_async(queue, jobs, on_sent=sent.set)
        except Exception:  # noqa: BLE001 - the leases expire and the sweeper redelivers: never lost
            logger.exception("batch of queue %s: delivery failed", queue.id)
        finally:
            sent.set()
        # Recording, the release of the batch's capacity and its re-kicks run on a recorder thread in one go:
        # one hand-off per batch, none back to the loop (each hop is a wake-up and a GIL hand-over).
        try:
            self._recorder.submit(self._settle, ticket, queue.id, outcomes)
        except RuntimeError:  # the recorder is shut down (drain timed out): release only, the leases expire
            self._settle(ticket, queue.id, None)

    def _settle(self, ticket: Ticket, queue_id: str, outcomes: list[Outcome] | None) -> None:
        """On a recorder thread (sync ORM, never on the loop): write a delivered batch's outcomes, give its
        capacity back and re-kick what needs it."""
        more = False
        try:
            if outcomes is not None:
                more = _record(queue_id, outcomes)
        except Exception:  # noqa: BLE001 - the leases expire and the sweeper redelivers: never lost
            logger.exception("batch of queue %s: outcomes not recorded", queue_id)
        finally:
            kicks = self._finish(ticket, more)
            with self._lock:
                self.batches -= 1
                self._lock.notify_all()
        if kicks and not self._draining:
            self.claim_here_or_hint(kicks)

    def carry(self, send: Awaitable[T], settle: Callable[[T], object], what: str) -> None:
        """Await `send` on the loop, then call `settle` with its result on a recorder thread; returns at once.

        For system senders (webhook deliveries, alert notifications): a slow target holds a socket here, never
        the thread of the system task that claimed the rows. Drain waits for these too. If `send` raises,
        nothing is settled: the rows' leases expire and they are sent again.
        """
        loop = self._ensure_loop()
        with self._lock:
            self.batches += 1
        asyncio.run_coroutine_threadsafe(self._carry_other(send, settle, what), loop)

    async def _carry_other(self, send: Awaitable[T], settle: Callable[[T], object], what: str) -> None:
        try:
            result = await send
        except Exception:  # noqa: BLE001 - the leases expire and the rows are sent again
            logger.exception("%s: sending failed", what)
            self._settle_other(None, what)
            return
        try:
            self._recorder.submit(self._settle_other, lambda: settle(result), what)
        except RuntimeError:  # the recorder is shut down (drain timed out): the leases expire
            self._settle_other(None, what)

    def _settle_other(self, settle: Callable[[], object] | None, what: str) -> None:
        try:
            if settle is not None:
                recycle_connections()
                settle()
        except Exception:  # noqa: BLE001 - the leases expire and the rows are sent again
            logger.exception("%s: results not recorded", what)
        finally:
            with self._lock:
                self.batches -= 1
                self._lock.notify_all()

    def deliver_here(self, ticket: Ticket, queue: Queue, jobs: list[Job]) -> None:
        """Deliver and record on the caller's thread and connection: for in-process calls (tests, eager tasks, a
        shell), whose transaction a recorder thread could not see."""
        more = False
        try:
            more = _record(queue.id, delivery.deliver_batch(queue, jobs))
        finally:
            kicks = self._finish(ticket, more)
            if kicks:
                send_hints(kicks)

    def _finish(self, ticket: Ticket, more: bool) -> list[str]:
        """Release a delivered batch's capacity; the queues to re-kick: those refused meanwhile, and its own if
        jobs are ready that a capped claim (this one, or any since: the flag) left behind. Ready jobs no claim
        was capped on have hints of their own: kicking for them only started tasks that found nothing."""
        kicks = self.release(ticket)
        # The flag is taken (cleared) even when this claim was capped itself: one kick serves both.
        if more and (take_capped(ticket.queue_id) or ticket.capped):
            return sorted({*kicks, ticket.queue_id})
        return kicks

    def drain(self, timeout_s: float) -> bool:
        """Warm shutdown: wait up to `timeout_s` for the batches in flight, then stop the loop. True if drained."""
        with self._lock:
            self._draining = True
            drained = self._lock.wait_for(lambda: self.batches == 0, timeout=max(0.0, timeout_s))
            loop, stop = self._loop, self._stop
        if not drained:
            logger.warning("shutdown: %d batch(es) still in flight; their leases will expire", self.batches)
        self._recorder.shutdown(wait=True)
        if loop is not None and stop is not None and not loop.is_closed():
            loop.call_soon_threadsafe(stop.set)
            if self._thread is not None:
                self._thread.join(timeout=2)
        return drained


def _record(queue_id: str, outcomes: list[Outcome]) -> bool:
    """On a recorder thread: write a batch's outcomes (one transaction); True if the queue has more ready."""
    recycle_connections()
    lost, more = jobs_deliver_outcomes(outcomes=outcomes, queue_id=queue_id)
    if lost:
        logger.info("queue %s: %d outcome(s) fenced off (lease lost)", queue_id, len(lost))
    return more


_conveyor: Conveyor | None = None
_conveyor_lock = threading.Lock()


def conveyor() -> Conveyor:
    """This process's conveyor (made after a fork, in the child that uses it)."""
    global _conveyor
    with _conveyor_lock:
        if _conveyor is None or _conveyor.pid != os.getpid():
            _conveyor = Conveyor(
                total=settings.SPINDLE_DELIVERY_IN_FLIGHT, reserve=settings.SPINDLE_DELIVERY_RESERVE
            )
        return _conveyor


def drain(timeout_s: float | None = None) -> bool:
    """Drain this process's conveyor, if it has one (warm shutdown)."""
    current = _conveyor
    if current is None or current.pid != os.getpid():
        return True
    bound = settings.SPINDLE_DELIVERY_DRAIN_S if timeout_s is None else timeout_s
    return current.drain(bound)
