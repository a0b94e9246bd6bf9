"""Request and response examples of the main operations, keyed by operationId (added by config.schema.postprocess).

Taken from real answers of the service (ids and secrets replaced); tests/schema checks each one against the schema.
"""

from __future__ import annotations

from typing import Any

_JOB: dict[str, Any] = {
    "id": "job_01m96m7151p2w30a1mgyz00000",
    "queue": "reports",
    "name": "welcome",
    "payload": {"user_id": 42},
    "tags": ["signup"],
    "state": "waiting",
    "priority": 5,
    "run_at": "2026-12-06T21:30:00.212Z",
    "attempts": 0,
    "max_attempts": 3,  # the queue example's retry policy
    "deferrals": 0,
    "retry_policy": None,
    "timeout_ms": None,
    "idempotency_key": "signup-42",
    "group": None,
    "parent_id": None,
    "wait_for_children": False,
    "ignore_child_failures": False,
    "http": None,
    "progress": None,
    "result": None,
    "last_error": None,
    "lease_expires_at": None,
    "schedule": None,
    "replay_of": None,
    "created_at": "2026-12-06T21:30:00.212Z",
    "started_at": None,
    "finished_at": None,
    "updated_at": "2026-12-06T21:30:00.212Z",
}

_CLAIMED_JOB: dict[str, Any] = {
    **_JOB,
    "state": "active",
    "attempts": 1,
    "lease_expires_at": "2026-12-06T21:30:35.100Z",
    "started_at": "2026-12-06T21:30:05.100Z",
    "updated_at": "2026-12-06T21:30:05.100Z",
    "lease_token": "412521f68dd546d49127a9f2a72ded21",
}

_QUEUE_IN: dict[str, Any] = {
    "name": "reports",
    "delivery": "pull",
    "concurrency": 10,
    "retry_policy": {"max_attempts": 3, "initial_delay_ms": 2000},
    "lease_ms": 30000,
}

_QUEUE_OUT: dict[str, Any] = {
    "name": "reports",
    "delivery": "pull",
    "endpoint": None,
    "paused": False,
    "paused_job_names": [],
    "concurrency": 10,
    "group_concurrency": None,
    "rate_limit": None,
    # The request's fields, the rest from the default policy.
    "retry_policy": {
        "max_attempts": 3,
        "initial_delay_ms": 2000,
        "backoff": "exponential",
        "multiplier": 2,
        "max_delay_ms": 300000,
        "jitter": True,
    },
    "lease_ms": 30000,
    "counts": {"waiting": 0, "delayed": 0, "active": 0, "completed": 0, "failed": 0, "cancelled": 0},
    "created_at": "2026-12-06T21:29:46.985Z",
    "updated_at": "2026-12-06T21:29:46.985Z",
    "signing_secret": "whsec_c2lnbmluZy1zZWNyZXQtc2hvd24tb25jZS1vbmx5LWV4YW1wbGU=",
}

_SCHEDULE_IN: dict[str, Any] = {
    "name": "nightly-report",
    "queue": "reports",
    "cron": "0 3 * * *",
    "timezone": "Europe/Paris",
    "job": {"name": "report", "payload": {"report": "daily"}},
}

_SCHEDULE_OUT: dict[str, Any] = {
    "name": "nightly-report",
    "description": "",
    "queue": "reports",
    "cron": "0 3 * * *",
    "interval_ms": None,
    "timezone": "Europe/Paris",
    "job": {
        "name": "report",
        "payload": {"report": "daily"},
        "tags": [],
        "priority": 0,
        "http": None,
        "retry_policy": None,
        "timeout_ms": None,
    },
    "overlap": "allow",
    "paused": False,
    "next_run_at": "2026-12-07T02:00:00.000Z",
    "last_run_at": None,
    "last_job_id": None,
    "created_at": "2026-12-06T21:31:47.355Z",
    "updated_at": "2026-12-06T21:31:47.355Z",
}

# operationId -> {"request": body, "<status>": body}
EXAMPLES: dict[str, dict[str, Any]] = {
    "jobs_enqueue": {
        "request": {
            "name": "welcome",
            "payload": {"user_id": 42},
            "priority": 5,
            "tags": ["signup"],
            "idempotency_key": "signup-42",
        },
        "201": _JOB,
        "200": _JOB,
    },
    "jobs_retrieve": {"200": _JOB},
    "queues_jobs_claim": {"request": {"limit": 1, "lease_ms": 30000}, "200": {"data": [_CLAIMED_JOB]}},
    "queues_create": {"request": _QUEUE_IN, "201": _QUEUE_OUT},
    "schedules_create": {"request": _SCHEDULE_IN, "201": _SCHEDULE_OUT},
}
