"""The shapes of an outcome batch: what happened to each job, decided in memory, then written set-based."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from jobs.models import TERMINAL_STATES, ExecutionStatus, JobState
from jobs.services.engine.common import RESPONSE_BODY_MAX, Outcome
from jobs.services.stats import start_ms


def truncate(text: str | None) -> str | None:
    """A response body cut to RESPONSE_BODY_MAX bytes (on a character boundary)."""
    if text is None:
        return None
    if len(text) <= RESPONSE_BODY_MAX:
        return text
    return text.encode("utf-8")[:RESPONSE_BODY_MAX].decode("utf-8", errors="ignore")


class Locked:
    """The columns of a locked active job that deciding its outcome needs (no model instance on the hot path)."""

    __slots__ = (
        "id",
        "lease_token",
        "attempts",
        "max_attempts",
        "deferrals",
        "policy",
        "cancel_requested",
        "parent_id",
        "queue_id",
        "workspace_id",
        "queue_name",
        "execution_id",
        "state",
        "run_at",
        "result",
        "last_error",
        "finished_at",
        "lease_expires_at",
        "worker_id",
        "updated_at",
        "started_at",
        "created_at",
    )

    def __init__(self, row: tuple) -> None:
        (
            self.id,
            self.lease_token,
            self.attempts,
            self.max_attempts,
            self.deferrals,
            retry_policy,
            queue_policy,
            self.cancel_requested,
            self.parent_id,
            self.queue_id,
            self.workspace_id,
            self.queue_name,
            self.execution_id,
            self.run_at,
            self.started_at,
            self.created_at,
        ) = row
        policy = json.loads(retry_policy) if retry_policy is not None else None
        self.policy = policy or (json.loads(queue_policy) if queue_policy is not None else None)
        self.state = JobState.ACTIVE
        self.result = self.last_error = self.finished_at = None

    @property
    def is_terminal(self) -> bool:
        return self.state in TERMINAL_STATES


def first_start_ms(job: Any) -> float | None:
    """Enqueue-to-start (ms) of the attempt a job (Job or Locked) is in, if it is its first (stats.start_ms).
    Read it before the outcome is decided: a deferral gives the attempt back."""
    return start_ms(job.attempts, job.deferrals, job.started_at, job.created_at)


@dataclass
class Finish:
    """What happened to one job, collected so every write of a batch is one statement."""

    job: Any  # a Job, or a Locked row (set-based outcome path)
    execution_status: str
    outcome: Outcome | None
    duration_ms: int | None
    timed_out: bool = False
    set_result: bool = False  # only a success writes `result`; other outcomes keep the stored value
    start_ms: float | None = None  # enqueue-to-start when this was the job's first attempt (first_start_ms)

    @property
    def queue_name(self) -> str:
        job = self.job
        return job.queue_name if isinstance(job, Locked) else job.queue.name

    @property
    def http_status(self) -> int | None:
        return self.outcome.http_status if self.outcome else None

    @property
    def response_body(self) -> str | None:
        return truncate(self.outcome.response_body) if self.outcome else None

    @property
    def execution_error(self) -> Any:
        """The execution's `error`: none for a success, else the job's last error."""
        return None if self.execution_status == ExecutionStatus.SUCCESS else self.job.last_error
