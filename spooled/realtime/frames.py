"""Spindle's outbox events in Spooled's realtime words: `{"type": "<PascalCase>", "data": {...}}` frames.

One outbox event (queues.events.event_to_dict) becomes zero, one or two frames:

| Spindle event | Spooled frames |
| --- | --- |
| `job:waiting` / `job:delayed` at enqueue | JobCreated, JobStatusChange (`pending` / `scheduled`) |
| `job:waiting` later (retry, promotion, release) | JobStatusChange (`pending`) |
| `job:delayed` after a failed attempt | JobFailed, JobStatusChange (`failed`: waiting for its retry) |
| `job:active` | JobStatusChange (`processing`) |
| `job:completed` | JobStatusChange (`completed`), JobCompleted |
| `job:failed` (out of attempts) | JobFailed |
| `job:dead` | JobStatusChange (`deadletter`) |
| `job:removed` | JobStatusChange (`cancelled`) |

Other events (progress, stalls, queue pauses, schedules) have no Spooled frame and are not sent.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

TERMINAL = frozenset({"completed", "deadletter", "cancelled"})


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def envelope(kind: str, data: dict[str, Any]) -> dict[str, Any]:
    return {"type": kind, "data": data}


def ping() -> dict[str, Any]:
    return envelope("Ping", {"timestamp": now_iso()})


def error(message: str) -> dict[str, Any]:
    return envelope("Error", {"message": message, "timestamp": now_iso()})


def status_change(job_id: str, queue: str | None, old: str, new: str, at: str) -> dict[str, Any]:
    data = {
        "job_id": job_id,
        "queue_name": queue or "",
        "old_status": old,
        "new_status": new,
        "timestamp": at,
    }
    return envelope("JobStatusChange", data)


def _error_text(error_value: Any) -> str:
    if isinstance(error_value, dict):
        return str(error_value.get("message") or json.dumps(error_value))
    return "" if error_value is None else str(error_value)


def frames_of(event: dict[str, Any]) -> list[dict[str, Any]]:
    """The Spooled frames of one outbox event (an `event_to_dict` dict)."""
    kind, job_id, queue, data = (
        event["type"],
        event.get("job_id"),
        event.get("queue"),
        event.get("data") or {},
    )
    if job_id is None:
        return []
    at = event.get("created_at") or now_iso()
    base = {"job_id": job_id, "queue_name": queue or "", "timestamp": at}
    attempt = int(data.get("attempt") or 0)
    created = kind in ("job:waiting", "job:delayed") and "reason" not in data and "error" not in data
    if created:
        new = "pending" if kind == "job:waiting" else "scheduled"
        return [
            envelope("JobCreated", {**base, "priority": int(data.get("priority") or 0)}),
            status_change(job_id, queue, "", new, at),
        ]
    if kind == "job:waiting":
        return [status_change(job_id, queue, "", "pending", at)]
    if kind == "job:delayed":
        failed = {**base, "error": _error_text(data.get("error")), "retry_count": attempt}
        return [envelope("JobFailed", failed), status_change(job_id, queue, "processing", "failed", at)]
    if kind == "job:active":
        return [status_change(job_id, queue, "", "processing", at)]
    if kind == "job:completed":
        done = {**base, "duration_ms": int(data.get("duration_ms") or 0)}
        return [status_change(job_id, queue, "processing", "completed", at), envelope("JobCompleted", done)]
    if kind == "job:failed":
        failed = {**base, "error": _error_text(data.get("error")), "retry_count": max(attempt - 1, 0)}
        return [envelope("JobFailed", failed)]
    if kind == "job:dead":
        return [status_change(job_id, queue, "", "deadletter", at)]
    if kind == "job:removed":
        return [status_change(job_id, queue, "", "cancelled", at)]
    return []


def sse(frame: dict[str, Any], event_id: str | None = None) -> str:
    """One frame as a Server-Sent Event: `event:` is Spooled's dotted alias, `data:` the `{type, data}` frame."""
    lines = [f"id: {event_id}"] if event_id else []
    lines.append(f"event: {_DOTTED.get(frame['type'], 'message')}")
    lines.append("data: " + json.dumps(frame, separators=(",", ":")))
    return "\n".join(lines) + "\n\n"


_DOTTED = {
    "JobStatusChange": "job.status",
    "JobCreated": "job.created",
    "JobCompleted": "job.completed",
    "JobFailed": "job.failed",
    "Ping": "ping",
    "Error": "error",
}
