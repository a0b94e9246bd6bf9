"""Jobs, their attempts (executions), and registered pull workers.

The outbox (Event) and the per-minute rollup (QueueMinuteStat) live in queues.models, the lowest app that
writes them; they keep their tables (`jobs_event`, `jobs_queueminutestat`).
"""

from __future__ import annotations

from django.db import models

from config.columns import owning_workspace, prefixed_id, workspace_list_index
from config.ids import IdMaker

# `_event_id`: migration 0001 names jobs.models._event_id as Event.id's default.
from queues.models import _event_id  # noqa: F401

_job_id = IdMaker("job")
_execution_id = IdMaker("exe")
_worker_id = IdMaker("wkr")


class JobState(models.TextChoices):
    WAITING = "waiting", "Ready to run as soon as flow control allows"
    DELAYED = "delayed", "run_at is in the future, or waiting for children"
    ACTIVE = "active", "Leased by a delivery task or a pull worker"
    COMPLETED = "completed", "Finished successfully (terminal)"
    FAILED = "failed", "Used all attempts or failed permanently: the dead-letter queue (terminal)"
    CANCELLED = "cancelled", "Cancelled before it finished (terminal)"


TERMINAL_STATES = (JobState.COMPLETED, JobState.FAILED, JobState.CANCELLED)


def _schedule_rows_index(name: str) -> models.Index:
    """A schedule's rows (its jobs, its executions) newest first; partial: only rows a schedule made."""
    return models.Index(
        fields=["workspace", "schedule_id", "-id"], condition=models.Q(schedule_id__isnull=False), name=name
    )


class Job(models.Model):
    id = prefixed_id(_job_id)
    workspace = owning_workspace()
    # db_index=False: jobs_job_queue_newest (queue, -id) leads with the column and serves the cascade too.
    queue = models.ForeignKey("queues.Queue", on_delete=models.CASCADE, related_name="jobs", db_index=False)
    name = models.CharField(max_length=128, null=True, blank=True)
    payload = models.JSONField(null=True, blank=True)
    tags = models.JSONField(default=list, blank=True)
    state = models.CharField(max_length=16, choices=JobState.choices, default=JobState.WAITING)
    priority = models.SmallIntegerField(default=0)
    run_at = models.DateTimeField()
    attempts = models.PositiveIntegerField(default=0)
    max_attempts = models.PositiveIntegerField(default=4)
    deferrals = models.PositiveIntegerField(default=0)
    retry_policy = models.JSONField(null=True, blank=True)
    timeout_ms = models.PositiveIntegerField(null=True, blank=True)
    idempotency_key = models.CharField(max_length=255, null=True, blank=True)
    group = models.CharField(max_length=128, null=True, blank=True)
    # db_index=False: the partial index jobs_job_parent serves every lookup; a full one (plus its `_like` twin)
    # would be written on each of the two non-HOT updates per attempt.
    parent = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.SET_NULL, related_name="children", db_index=False
    )
    wait_for_children = models.BooleanField(default=False)
    ignore_child_failures = models.BooleanField(default=False)
    http = models.JSONField(null=True, blank=True)
    progress = models.JSONField(null=True, blank=True)
    result = models.JSONField(null=True, blank=True)
    last_error = models.JSONField(null=True, blank=True)
    lease_token = models.CharField(max_length=40, null=True, blank=True)
    lease_expires_at = models.DateTimeField(null=True, blank=True)
    worker_id = models.CharField(max_length=40, null=True, blank=True)
    cancel_requested = models.BooleanField(default=False)
    # The execution row of the current attempt: outcomes update it without a lookup, and push deliveries
    # send it as `webhook-id`.
    execution_id = models.CharField(max_length=40, null=True, blank=True)
    schedule_id = models.CharField(max_length=40, null=True, blank=True, db_index=False)
    replay_of = models.CharField(max_length=40, null=True, blank=True)
    created_at = models.DateTimeField()
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField()

    class Meta:
        constraints = [
            models.CheckConstraint(
                condition=models.Q(state__in=JobState.values), name="jobs_job_state_valid"
            ),
            models.CheckConstraint(
                condition=models.Q(priority__gte=-100, priority__lte=100), name="jobs_job_priority_range"
            ),
            models.CheckConstraint(
                condition=models.Q(state__in=[s.value for s in TERMINAL_STATES], finished_at__isnull=False)
                | (
                    ~models.Q(state__in=[s.value for s in TERMINAL_STATES])
                    & models.Q(finished_at__isnull=True)
                ),
                name="jobs_job_finished_iff_terminal",
            ),
            models.CheckConstraint(
                condition=~models.Q(state="active")
                | models.Q(lease_token__isnull=False, lease_expires_at__isnull=False),
                name="jobs_job_active_has_lease",
            ),
            # Body `idempotency_key`: one job per key per queue; keys older than 24 h are released by
            # clearing them in the enqueue transaction that reuses them.
            models.UniqueConstraint(
                fields=["queue", "idempotency_key"],
                condition=models.Q(idempotency_key__isnull=False),
                name="jobs_job_queue_idem_uniq",
            ),
        ]
        indexes = [
            # Claim: ready jobs of a queue by priority then run_at then id (engine claim query).
            models.Index(
                "queue",
                models.F("priority").desc(),
                "run_at",
                "id",
                condition=models.Q(state="waiting"),
                name="jobs_job_ready",
            ),
            # Sweeper: due delayed jobs.
            models.Index(fields=["run_at"], condition=models.Q(state="delayed"), name="jobs_job_delayed_due"),
            # Sweeper: expired leases; also active counts per queue for concurrency.
            models.Index(
                fields=["queue", "lease_expires_at"],
                condition=models.Q(state="active"),
                name="jobs_job_active_lease",
            ),
            # GET /v1/queues/{name}/jobs?state= newest first (keyset on id).
            models.Index(fields=["workspace", "queue", "state", "-id"], name="jobs_job_ws_queue_state"),
            # GET /v1/queues/{name}/jobs newest first, payload search within a queue, and the FK (queue delete's
            # cascade). A queue belongs to one workspace, so the queue scopes it as (workspace, queue, -id) did, and
            # one index does the work of that one and of the plain FK index (one fewer written per enqueue).
            models.Index(fields=["queue", "-id"], name="jobs_job_queue_newest"),
            # GET /v1/jobs across queues (?state=).
            models.Index(fields=["workspace", "state", "-id"], name="jobs_job_ws_state"),
            workspace_list_index("jobs_job_ws"),
            # Flows: children of a parent.
            models.Index(fields=["parent"], condition=models.Q(parent__isnull=False), name="jobs_job_parent"),
            # GET /v1/flows: parents created with wait_for_children, newest first (flow_parent_list).
            models.Index(
                fields=["workspace", "-id"],
                condition=models.Q(wait_for_children=True),
                name="jobs_job_ws_flow_waiting",
            ),
            # Retention: finished jobs by age.
            models.Index(
                fields=["finished_at"],
                condition=models.Q(finished_at__isnull=False),
                name="jobs_job_finished",
            ),
            # GET /v1/schedules/{name}/runs newest first; overlap=skip looks up a schedule's last job.
            _schedule_rows_index("jobs_job_ws_schedule"),
        ]
        # PostgreSQL only (migration 0002): GIN on tags for ?tag= (`tags @> '["x"]'`).

    def __str__(self) -> str:
        return self.id

    @property
    def is_terminal(self) -> bool:
        return self.state in TERMINAL_STATES


class ExecutionStatus(models.TextChoices):
    RUNNING = "running", "The attempt is in progress"
    SUCCESS = "success", "The attempt completed the job"
    FAILED = "failed", "The attempt failed; the job will be retried"
    TIMEOUT = "timeout", "The attempt timed out or its lease expired"
    DEFERRED = "deferred", "The target answered 429/503 with Retry-After: no attempt used"
    DEAD_LETTER = "dead_letter", "The attempt that sent the job to the dead-letter queue"
    QUOTA_EXCEEDED = "quota_exceeded", "A scheduled run refused by the monthly quota"


class Execution(models.Model):
    """One row per attempt (push delivery or pull lease)."""

    id = prefixed_id(_execution_id)
    workspace = owning_workspace()
    # No single-column FK indexes: jobs_exec_job_attempt and jobs_exec_queue_started start with these columns.
    job = models.ForeignKey(
        Job, on_delete=models.CASCADE, related_name="executions", null=True, blank=True, db_index=False
    )
    queue = models.ForeignKey("queues.Queue", on_delete=models.CASCADE, related_name="+", db_index=False)
    schedule_id = models.CharField(max_length=40, null=True, blank=True)
    attempt = models.PositiveIntegerField()
    status = models.CharField(max_length=16, choices=ExecutionStatus.choices, default=ExecutionStatus.RUNNING)
    lease_token = models.CharField(max_length=40, null=True, blank=True)
    started_at = models.DateTimeField()
    completed_at = models.DateTimeField(null=True, blank=True)
    duration_ms = models.PositiveIntegerField(null=True, blank=True)
    http_status = models.PositiveSmallIntegerField(null=True, blank=True)
    response_body = models.TextField(null=True, blank=True)
    error = models.JSONField(null=True, blank=True)
    worker_id = models.CharField(max_length=40, null=True, blank=True)
    replay_of = models.CharField(max_length=40, null=True, blank=True)

    class Meta:
        constraints = [
            models.CheckConstraint(
                condition=models.Q(status__in=ExecutionStatus.values), name="jobs_execution_status_valid"
            ),
        ]
        indexes = [
            # GET /v1/executions (?status=, ?queue=) newest first.
            workspace_list_index("jobs_exec_ws"),
            models.Index(fields=["workspace", "status", "-id"], name="jobs_exec_ws_status"),
            # GET …/jobs/{id}/executions and the running execution of a lease.
            models.Index(fields=["job", "attempt"], name="jobs_exec_job_attempt"),
            # Claim rate limit: attempts a queue started inside the window (`started_at > now() - per_ms`).
            models.Index(fields=["queue", "started_at"], name="jobs_exec_queue_started"),
            _schedule_rows_index("jobs_exec_ws_schedule"),
        ]

    def __str__(self) -> str:
        return self.id


class Worker(models.Model):
    """A registered pull worker."""

    id = prefixed_id(_worker_id)
    workspace = owning_workspace()
    name = models.CharField(max_length=128)
    queues = models.JSONField(default=list, blank=True)
    hostname = models.CharField(max_length=255, blank=True, default="")
    concurrency = models.PositiveIntegerField(default=1)
    metadata = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    last_seen_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        indexes = [
            workspace_list_index("jobs_worker_ws"),
            # The sweeper's reaping of silent workers (`last_seen_at < cutoff`, oldest first).
            models.Index(fields=["last_seen_at"], name="jobs_worker_last_seen"),
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.id})"


class QueueClaimState(models.Model):
    """Per-queue claim bookkeeping: the group served last, so groups are served round-robin across claims."""

    queue = models.OneToOneField("queues.Queue", on_delete=models.CASCADE, primary_key=True, related_name="+")
    last_group = models.CharField(max_length=128, blank=True, default="")

    def __str__(self) -> str:
        return f"{self.queue_id} after {self.last_group!r}"
