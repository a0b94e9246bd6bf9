"""Spooled job bodies -> Spindle JobSpecs (create and bulk), with Spooled's bounds."""

from __future__ import annotations

from typing import Any

from billing.services import plan_check_value
from jobs.specs import JobSpec
from jobs.views.pull_inputs import check_size
from queues.models import Queue
from spooled.rest.base import Body

CREATE_FIELDS = (
    "queue_name",
    "payload",
    "priority",
    "max_retries",
    "timeout_seconds",
    "scheduled_at",
    "expires_at",
    "idempotency_key",
    "tags",
    "parent_job_id",
    "completion_webhook",
    "completion_webhook_secret",
)
_UNSUPPORTED = {
    "expires_at": "Job expiry is not supported by this server; leave it out.",
    "completion_webhook": "Per-job completion webhooks are not supported; use /outgoing-webhooks.",
    "completion_webhook_secret": "Per-job completion webhooks are not supported; use /outgoing-webhooks.",
}


def tags_of(body: Body) -> list[str]:
    """Spooled's tags are an object or an array; Spindle's are strings (an object becomes `key:value`)."""
    value = body.data.get("tags")
    if value is None:
        return []
    if isinstance(value, dict):
        value = [f"{k}:{v}" if v not in (None, "", True) else str(k) for k, v in value.items()]
    if not isinstance(value, list) or len(value) > 10:
        body.errors["tags"] = ["Expected an object or a list of at most 10 tags."]
        return []
    if not all(isinstance(t, str) and 1 <= len(t) <= 64 for t in value):
        body.errors["tags"] = ["Each tag must be a string of 1 to 64 characters."]
        return []
    return value


def spec_of(
    body: Body,
    *,
    defaults: dict[str, Any] | None = None,
    queue: Queue | None = None,
    workspace: Any = None,
) -> JobSpec:
    """Read one job from `body` (problems collected on it; the caller calls `done()`)."""
    defaults = defaults or {}
    if "payload" not in body.data:
        body.errors["payload"] = ["This field is required."]
    for name, message in _UNSUPPORTED.items():
        body.refuse(name, message)
    priority = body.integer("priority", -100, 100, default=defaults.get("priority", 0))
    retries = body.integer("max_retries", 0, 100, default=defaults.get("max_retries"))
    timeout = body.integer("timeout_seconds", 1, 86400, default=defaults.get("timeout_seconds"))
    spec = JobSpec(
        payload=body.data.get("payload"),
        priority=priority,
        run_at=body.when("scheduled_at"),
        max_attempts=None if retries is None else retries + 1,
        timeout_ms=None if timeout is None else timeout * 1000,
        idempotency_key=body.text("idempotency_key"),
        tags=tags_of(body),
        parent_id=body.text("parent_job_id", max_length=40),
    )
    if not body.errors:
        check_size(spec.payload, "payload")
        if workspace is not None:
            plan_check_value(workspace=workspace, field="max_attempts", value=spec.max_attempts)
    return spec
