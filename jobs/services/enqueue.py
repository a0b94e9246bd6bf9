"""Enqueue: validated JobSpecs -> job rows, in one transaction with the quota, the outbox and the rollup.

DESIGN.md invariant 2: the quota increment, the job rows and their events commit together; the broker hint is
sent after commit. Set-based throughout (PERF.md): one SELECT for body idempotency keys, one conditional UPDATE
for the quota, one INSERT for the jobs, one for the events, one upsert for the per-minute rollup; on PostgreSQL
all the writes go in one round trip, with the COMMIT (jobs/services/enqueue_sql.py).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from typing import Any

from django.db import DatabaseError, IntegrityError, connection, transaction
from django.db.models.base import ModelState
from django.utils import timezone

from accounts.models import Workspace
from billing.services import quota_consume, quota_exceeded
from config import db
from config.db import backend
from config.ids import new_ids
from jobs.models import Job, JobState
from jobs.services.dispatch import kick_on_commit, remember_delivery, sweep_at_on_commit
from jobs.services.enqueue_sql import ROLLUP_SQL, pipelined, write_set_based, write_streamed
from jobs.specs import SPEC_COLUMNS, JobSpec, SpecStream
from queues.events import PendingEvent, events_emit
from queues.models import DEFAULT_RETRY_POLICY, Queue

# A body `idempotency_key` deduplicates for this long; an older job with the same key releases it.
IDEMPOTENCY_WINDOW = timedelta(hours=24)
_IDEM_CONSTRAINT = "jobs_job_queue_idem_uniq"
_CONFLICT_RETRIES = 3

# Raised by spindle_require() (migration 0010) when the quota upsert matched no row.
QUOTA_SQLSTATE = "SPQ01"
# job_enqueue_batch's `present`: the caller's answer, built from the results.
Present = Callable[[list[tuple[Job, bool]]], Any]

_QUEUE_BY_NAME: dict[str, tuple[str, list[str], db.Converters]] = {}


def queue_by_name(*, workspace_id: str, name: str) -> Queue | None:
    """The workspace's queue by name, or None: the per-request lookup of the enqueue and pull routes.

    Raw SQL built once per process (as the ORM's compiler would build it, converters included): compiling the
    queryset on every request cost more CPU than the indexed query itself.
    """
    plan = _QUEUE_BY_NAME.get(connection.vendor)
    if plan is None:
        quote = connection.ops.quote_name
        fields = Queue._meta.concrete_fields
        sql = (
            f"SELECT {', '.join(quote(f.column) for f in fields)} FROM {Queue._meta.db_table}"
            f" WHERE {quote('workspace_id')} = %s AND {quote('name')} = %s"
        )
        plan = _QUEUE_BY_NAME[connection.vendor] = (
            sql,
            [f.attname for f in fields],
            db.field_converters(Queue),
        )
    sql, attnames, converters = plan
    with connection.cursor() as cursor:
        db.execute_prepared(cursor, [(sql, [workspace_id, name])])
        row = cursor.fetchone()
    if row is None:
        return None
    return Queue.from_db(connection.alias, attnames, db.converted(row, converters))


@functools.cache
def _job_defaults() -> dict:
    """Every Job field's default, from one real Model.__init__ per process. Only `id` and `tags` have callable
    defaults, and job_enqueue_specs sets both per row, so the other values are immutable and safe to share."""
    prototype = Job(
        id="", workspace_id="", queue_id="", run_at=None, created_at=None, updated_at=None
    ).__dict__
    return {k: v for k, v in prototype.items() if k != "_state"}


def job_enqueue(*, workspace: Workspace, queue: Queue, spec: JobSpec) -> tuple[Job, bool]:
    """Enqueue one job in its own transaction; returns (job, created). created=False: body key matched."""
    return _enqueue_durable(workspace=workspace, queue=queue, specs=[spec])[0]


def job_enqueue_batch(
    *, workspace: Workspace, queue: Queue, specs: list[JobSpec] | SpecStream, present: Present | None = None
) -> Any:
    """Enqueue a batch all-or-nothing in one transaction; results in input order.

    `present(results)`, if given, builds the caller's answer from the results and is returned instead of them. It
    runs while PostgreSQL writes a large batch (the results are known before the rows are written), so it must
    not touch the database; it runs again if an idempotency-key race makes the enqueue start over. A SpecStream
    is checked chunk by chunk while PostgreSQL writes the chunks before (_enqueue_streamed); its errors raise
    from here, and nothing of the batch commits."""
    return _enqueue_durable(workspace=workspace, queue=queue, specs=specs, present=present)


def _enqueue_durable(
    *, workspace: Workspace, queue: Queue, specs: list[JobSpec] | SpecStream, present: Present | None = None
) -> Any:
    if isinstance(specs, SpecStream) and not (backend().SET_BASED and pipelined(specs.count)):
        specs = specs.all()  # small, SQLite, or a libpq without pipelines: nothing to overlap
    has_keys = isinstance(specs, list) and any(s.idempotency_key for s in specs)
    for attempt in range(_CONFLICT_RETRIES):
        try:
            with transaction.atomic(durable=True):
                # The outermost block (not a test's transaction around it): COMMIT may ride with the writes.
                commit = len(connection.atomic_blocks) == 1
                if isinstance(specs, SpecStream):
                    if commit:
                        return _enqueue_streamed(
                            workspace=workspace, queue=queue, stream=specs, present=present
                        )
                    specs = specs.all()
                return job_enqueue_specs(
                    workspace=workspace, queue=queue, specs=specs, commit=commit, present=present
                )
        except DatabaseError as exc:
            if getattr(exc.__cause__, "sqlstate", None) == QUOTA_SQLSTATE:
                raise quota_exceeded(workspace=workspace) from None
            if not isinstance(exc, IntegrityError):
                raise
            # Two requests raced on the same body idempotency key: the loser's INSERT waited for the winner's
            # commit, so on a retry the SELECT finds the winner's job and returns it.
            if not has_keys or _IDEM_CONSTRAINT not in str(exc) or attempt == _CONFLICT_RETRIES - 1:
                raise
    raise AssertionError("unreachable")


def job_enqueue_specs(
    *,
    workspace: Workspace,
    queue: Queue,
    specs: list[JobSpec],
    now: datetime | None = None,
    commit: bool = False,
    present: Present | None = None,
) -> Any:
    """Create jobs for `specs` (input order kept). Must run inside a transaction the caller owns.

    Schedules and replays call this inside their own atomic block; the API goes through job_enqueue(_batch).
    Raises QuotaExceeded (on PostgreSQL after the rows are written: the raise rolls the transaction back).
    `commit=True` (the caller's outermost atomic block only): the writes commit in their own round trip (below).
    Returns the results, or what `present(results)` returns (job_enqueue_batch).
    """
    now = now or timezone.now()
    # (1) Body idempotency keys: jobs of this queue with the key from the last 24 h are returned instead.
    results, new_indexes, first_with_key = _match_idempotency_keys(queue=queue, specs=specs, now=now)

    # (2) Quota: a conditional UPDATE on the workspace's counter. Its row lock serialises the workspace's
    # enqueues until COMMIT, so on PostgreSQL it is the last statement before COMMIT (below); a short quota
    # rolls the whole transaction back, so no job row of a refused enqueue survives either way.
    count = len(new_indexes)
    set_based = backend().SET_BASED
    if count:
        if not set_based:
            quota_consume(workspace=workspace, count=count, now=now)

        # (3) One statement inserts every job (on PostgreSQL, sent with the statements of _record_enqueued).
        jobs = _build_jobs(workspace=workspace, queue=queue, specs=[specs[i] for i in new_indexes], now=now)
        for index, job in zip(new_indexes, jobs, strict=True):
            results[index] = (job, True)
    # Duplicates of a key inside the batch share the first item's job.
    for index, result in enumerate(results):
        if result is None:
            first = results[first_with_key[specs[index].idempotency_key]]  # type: ignore[index]
            results[index] = (first[0], False)  # type: ignore[index]
    done: list[tuple[Job, bool]] = results  # type: ignore[assignment]
    presented: list[Any] = []
    if count:
        if not set_based:
            Job.objects.bulk_create(jobs, batch_size=1000)
        _record_enqueued(
            workspace=workspace,
            queue=queue,
            jobs=jobs,
            now=now,
            set_based=set_based,
            commit=commit and set_based,
            present=(lambda: presented.append(present(done))) if present is not None else None,
        )
    if present is None:
        return done
    return presented[0] if presented else present(done)


def _enqueue_streamed(
    *, workspace: Workspace, queue: Queue, stream: SpecStream, present: Present | None
) -> Any:
    """A large batch with no idempotency key, on PostgreSQL, inside its outermost transaction: each chunk is
    checked and built while PostgreSQL writes the one before (enqueue_sql.write_streamed), rather than the whole
    batch first. Same rows, statements and order as job_enqueue_specs; an item's errors, raised after the chunks
    before it were sent, roll every row back."""
    now = timezone.now()
    done: list[tuple[Job, bool]] = []
    presented: list[Any] = []

    def chunks() -> Iterator[tuple[list[Job], list[PendingEvent]]]:
        for specs in stream.chunks:
            jobs = _build_jobs(workspace=workspace, queue=queue, specs=specs, now=now)
            done.extend((job, True) for job in jobs)
            yield jobs, _events(jobs, workspace_id=workspace.id, queue_name=queue.name)

    write_streamed(
        workspace=workspace,
        queue_id=queue.id,
        chunks=chunks(),
        count=stream.count,
        minute=_minute(now),
        now=now,
        present=(lambda: presented.append(present(done))) if present is not None else None,
    )
    _after_write([job for job, _ in done], queue=queue, now=now)
    return presented[0] if present is not None else done


def _match_idempotency_keys(
    *, queue: Queue, specs: list[JobSpec], now: datetime
) -> tuple[list[tuple[Job, bool] | None], list[int], dict[str, int]]:
    """(results with the jobs an existing key returns, indexes of the specs to create, first index per new key)."""
    results: list[tuple[Job, bool] | None] = [None] * len(specs)
    by_key: dict[str, Job] = {}
    keys = {s.idempotency_key for s in specs if s.idempotency_key}
    if keys:
        cutoff = now - IDEMPOTENCY_WINDOW
        stale: list[str] = []
        for job in Job.objects.filter(queue=queue, idempotency_key__in=keys):  # jobs_job_queue_idem_uniq
            if job.created_at >= cutoff:
                by_key[job.idempotency_key] = job
            else:
                stale.append(job.id)
        if stale:
            # Release expired keys so the partial unique index admits the new job.
            Job.objects.filter(id__in=stale).update(idempotency_key=None, updated_at=now)

    new_indexes: list[int] = []
    first_with_key: dict[str, int] = {}
    for index, spec in enumerate(specs):
        key = spec.idempotency_key
        if key:
            if key in by_key:
                results[index] = (by_key[key], False)
                continue
            if key in first_with_key:
                continue  # a duplicate inside this batch: resolved to the first item's job
            first_with_key[key] = index
        new_indexes.append(index)
    return results, new_indexes, first_with_key


def _build_jobs(*, workspace: Workspace, queue: Queue, specs: list[JobSpec], now: datetime) -> list[Job]:
    """Unsaved Job instances for `specs`, with fresh ids, their state and their resolved max_attempts."""
    queue_policy = queue.retry_policy or DEFAULT_RETRY_POLICY
    default_max_attempts = queue_policy.get("max_attempts") or DEFAULT_RETRY_POLICY["max_attempts"]
    waiting, delayed = JobState.WAITING.value, JobState.DELAYED.value
    # One real Model.__init__ per process fills every field default; each job is then a dict copy of it (a
    # full __init__ per job costs more than the INSERT on a 1,000-job batch, and ~5% of a single enqueue's
    # CPU). A field whose default must differ per row (like `id`) has to be set in the update below.
    base = {
        **_job_defaults(),
        "workspace_id": workspace.id,
        "queue_id": queue.id,
        "run_at": now,
        "created_at": now,
        "updated_at": now,
    }
    alias = connection.alias
    jobs: list[Job] = []
    for job_id, spec in zip(new_ids("job", len(specs)), specs, strict=True):
        given = spec.__dict__
        run_at = spec.run_at or now
        if spec.max_attempts is not None:
            max_attempts = spec.max_attempts
        elif spec.retry_policy is not None:
            max_attempts = spec.retry_policy.get("max_attempts") or default_max_attempts
        else:
            max_attempts = default_max_attempts
        values = base.copy()
        values.update({name: given[name] for name in SPEC_COLUMNS})
        values.update(
            id=job_id,
            state=delayed if run_at > now or spec.wait_for_children else waiting,
            run_at=run_at,
            max_attempts=max_attempts,
        )
        job = Job.__new__(Job)
        job.__dict__ = values
        job._state = ModelState()
        job._state.adding = False
        job._state.db = alias
        jobs.append(job)
    return jobs


def _record_enqueued(
    *,
    workspace: Workspace,
    queue: Queue,
    jobs: list[Job],
    now: datetime,
    set_based: bool,
    commit: bool = False,
    present: Callable[[], None] | None = None,
) -> None:
    """The rows' events, rollup, quota and broker hint (and on PostgreSQL the rows themselves). `present` runs
    while a pipelined write is in flight (_write_pipelined); elsewhere the caller runs it afterwards."""
    workspace_id, queue_id, count = workspace.id, queue.id, len(jobs)
    # (4) The outbox, one multi-row INSERT.
    events = _events(jobs, workspace_id=workspace_id, queue_name=queue.name)
    minute = _minute(now)
    _after_write(jobs, queue=queue, now=now)
    if set_based:
        write_set_based(
            workspace=workspace,
            queue_id=queue_id,
            jobs=jobs,
            events=events,
            minute=minute,
            now=now,
            commit=commit,
            present=present,
        )
    else:
        events_emit(events, now=now)
        # (5) The per-minute rollup that metrics and usage read.
        with connection.cursor() as cursor:
            cursor.execute(ROLLUP_SQL, [workspace_id, queue_id, minute, count])
        # (6) Broker hint after commit (a no-op for batches that are all delayed is the engine's call).
        kick_on_commit([queue_id])


def _events(jobs: list[Job], *, workspace_id: str, queue_name: str) -> list[PendingEvent]:
    """Each new job's `job:waiting` or `job:delayed` event (the outbox)."""
    delayed = JobState.DELAYED.value
    return [
        PendingEvent(
            workspace_id=workspace_id,
            type="job:delayed" if job.state == delayed else "job:waiting",
            queue_name=queue_name,
            job_id=job.id,
            data={"name": job.name},
        )
        for job in jobs
    ]


def _minute(now: datetime) -> object:
    """The rollup row's minute, as the database stores it."""
    return connection.ops.adapt_datetimefield_value(now.replace(second=0, microsecond=0))


def _after_write(jobs: list[Job], *, queue: Queue, now: datetime) -> None:
    """What the process notes of an enqueue, inside its transaction: the queue's delivery mode, and a sweep at
    the run time of delayed jobs due soon (after commit), so they are promoted on time."""
    remember_delivery(queue.id, queue.delivery)
    delayed = JobState.DELAYED.value
    sweep_at_on_commit(
        (job.run_at for job in jobs if job.state == delayed and not job.wait_for_children), now=now
    )
