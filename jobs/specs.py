"""A validated job to create: what `jobs.validation` produces and `jobs.services.enqueue` inserts."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any


@dataclass
class JobSpec:
    payload: Any = None
    name: str | None = None
    tags: list[str] = field(default_factory=list)
    priority: int = 0
    run_at: datetime | None = None  # None: now
    max_attempts: int | None = None  # None: from the retry policy (job's, else the queue's)
    retry_policy: dict[str, Any] | None = None
    timeout_ms: int | None = None
    idempotency_key: str | None = None
    group: str | None = None
    parent_id: str | None = None
    wait_for_children: bool = False
    ignore_child_failures: bool = False
    http: dict[str, Any] | None = None
    schedule_id: str | None = None
    replay_of: str | None = None
