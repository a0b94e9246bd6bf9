"""Spindle rows in Spooled's response shapes (states and counts through spooled.states)."""

from __future__ import annotations

from typing import Any

from django.conf import settings

from jobs.models import Job, Worker
from jobs.services.pull import worker_is_online
from queues.events import iso
from queues.models import Queue
from spooled.states import max_retries, retry_count, spooled_state

DEFAULT_TIMEOUT_S = 300


def error_text(last_error: Any) -> str | None:
    if isinstance(last_error, dict):
        return str(last_error.get("message") or "") or None
    return None if last_error is None else str(last_error)


def timeout_seconds(job: Job) -> int:
    return max(1, job.timeout_ms // 1000) if job.timeout_ms else DEFAULT_TIMEOUT_S


def job_type(job: Job) -> str:
    """Spooled's job type is the payload's `job_type`; a job without one shows its Spindle `name`."""
    if isinstance(job.payload, dict) and isinstance(job.payload.get("job_type"), str):
        return job.payload["job_type"]
    return job.name or ""


def job_summary(job: Job, queue_name: str | None = None) -> dict[str, Any]:
    return {
        "id": job.id,
        "queue_name": queue_name or job.queue.name,
        "status": spooled_state(job.state, job.attempts),
        "priority": job.priority,
        "retry_count": retry_count(job.attempts),
        "max_retries": max_retries(job.max_attempts),
        "job_type": job_type(job),
        "last_error": error_text(job.last_error),
        "created_at": iso(job.created_at),
        "scheduled_at": iso(job.run_at) if job.state == "delayed" else None,
        "started_at": iso(job.started_at),
        "completed_at": iso(job.finished_at),
    }


def job_full(job: Job, queue_name: str | None = None) -> dict[str, Any]:
    body = job_summary(job, queue_name)
    body.update(
        organization_id=job.workspace_id,
        payload=job.payload,
        result=job.result,
        timeout_seconds=timeout_seconds(job),
        expires_at=None,
        tags=job.tags,
        parent_job_id=job.parent_id,
        assigned_worker_id=job.worker_id,
        lease_id=None,  # the lease is the holder's secret: only a claim hands it out
        lease_expires_at=iso(job.lease_expires_at),
        idempotency_key=job.idempotency_key,
        updated_at=iso(job.updated_at),
    )
    return body


def claimed_job(job: Job, queue_name: str) -> dict[str, Any]:
    return {
        "id": job.id,
        "queue_name": queue_name,
        "payload": job.payload,
        "retry_count": retry_count(job.attempts),
        "max_retries": max_retries(job.max_attempts),
        "timeout_seconds": timeout_seconds(job),
        "lease_expires_at": iso(job.lease_expires_at),
        "lease_id": job.lease_token,
    }


def queue_config(queue: Queue) -> dict[str, Any]:
    rate = queue.rate_limit or None
    per_second = None
    if rate:
        per_second = max(1, round(rate["max"] * 1000 / rate["per_ms"]))
    return {
        "id": queue.id,
        "organization_id": queue.workspace_id,
        "queue_name": queue.name,
        "max_retries": max_retries(int((queue.retry_policy or {}).get("max_attempts", 1))),
        "default_timeout": max(1, queue.lease_ms // 1000),
        "rate_limit": per_second,
        "enabled": not queue.paused,
        "settings": {"delivery": queue.delivery, "concurrency": queue.concurrency},
        "created_at": iso(queue.created_at),
        "updated_at": iso(queue.updated_at),
    }


def heartbeat_interval_s() -> int:
    """How often a worker should say it is alive: a third of the timeout after which it shows offline."""
    return max(1, settings.SPINDLE_WORKER_HEARTBEAT_TIMEOUT_S // 3)


def worker_shape(worker: Worker, active: int) -> dict[str, Any]:
    queues = worker.queues or []
    meta = worker.metadata or {}
    status = meta.get("spooled_status", "healthy") if worker_is_online(worker) else "offline"
    return {
        "id": worker.id,
        "organization_id": worker.workspace_id,
        "queue_name": queues[0] if queues else "",
        "queue_names": queues,
        "hostname": worker.hostname,
        "worker_type": meta.get("spooled_worker_type"),
        "status": status,
        "current_jobs": active,
        "max_concurrency": worker.concurrency,
        "last_heartbeat": iso(worker.last_seen_at),
        "metadata": {k: v for k, v in meta.items() if not k.startswith("spooled_")},
        "version": meta.get("spooled_version"),
        "created_at": iso(worker.created_at),
    }
