"""Queue writes on the queue row: create, update, pause/resume, secret rotation.

What also touches the queue's jobs lives above, in jobs.services.queue_ops: the update and resume that wake the
engine, and delete (and obliterate). Call those from views; the ones here are their building blocks."""

from __future__ import annotations

import base64
import secrets
from datetime import timedelta
from typing import Any

from django.db import IntegrityError, transaction
from django.utils import timezone

from accounts.models import Workspace
from billing.services import plan_check_value, plan_slot_take
from config.exceptions import Conflict, ValidationFailed

from .events import PendingEvent, events_emit
from .masking import target_unmasked
from .models import DEFAULT_RETRY_POLICY, Queue

# Both the old and the new secret sign deliveries this long after a rotation (API.md).
SECRET_OVERLAP = timedelta(hours=24)
DEFAULT_ENDPOINT = {"method": "POST", "headers": {}, "timeout_ms": 30_000}
# A push lease must outlast the delivery timeout by this much: a shorter lease expires while the request is still
# in flight, the sweeper hands the job out again, and the target gets it twice (issue 9).
LEASE_MARGIN_MS = 5_000
# A job name meaning "the whole queue" in BullMQ dashboards' pause/resume body.
ALL_JOBS = "__all__"


def signing_secret_new() -> str:
    """`whsec_` + base64 of 32 random bytes (Standard Webhooks format)."""
    return "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()


def _is_name_conflict(exc: IntegrityError) -> bool:
    cause = getattr(exc, "__cause__", None)
    diag = getattr(cause, "diag", None)
    if diag is not None and getattr(diag, "constraint_name", None):
        return diag.constraint_name == "queues_queue_ws_name_uniq"
    # SQLite names the columns, not the constraint.
    text = str(exc)
    return "queues_queue_ws_name_uniq" in text or "queues_queue.workspace_id, queues_queue.name" in text


def _normalise_endpoint(endpoint: dict[str, Any] | None) -> dict[str, Any] | None:
    if endpoint is None:
        return None
    return {
        "url": endpoint["url"],
        "method": endpoint.get("method") or DEFAULT_ENDPOINT["method"],
        "headers": dict(endpoint.get("headers") or {}),
        "timeout_ms": endpoint.get("timeout_ms") or DEFAULT_ENDPOINT["timeout_ms"],
    }


def _check_shape(*, delivery: str, endpoint: dict[str, Any] | None) -> None:
    if delivery == Queue.Delivery.PULL and endpoint is not None:
        raise ValidationFailed(details={"endpoint": ["A pull queue has no endpoint: set it to null."]})


def _check_plan(
    *, workspace: Workspace, endpoint: dict[str, Any] | None, retry_policy: dict[str, Any]
) -> None:
    plan_check_value(workspace=workspace, field="max_attempts", value=retry_policy.get("max_attempts"))
    if endpoint is not None:
        plan_check_value(workspace=workspace, field="timeout_ms", value=endpoint.get("timeout_ms"))


def _fit_lease(*, queue: Queue, endpoint: dict[str, Any] | None, data: dict[str, Any]) -> None:
    """Hold `lease_ms` above the endpoint's timeout_ms + LEASE_MARGIN_MS: a lease the client sets is refused
    (400), one it did not set is raised to fit."""
    if endpoint is None:
        return
    needed = int(endpoint.get("timeout_ms") or DEFAULT_ENDPOINT["timeout_ms"]) + LEASE_MARGIN_MS
    if queue.lease_ms >= needed:
        return
    if "lease_ms" in data:
        raise ValidationFailed(
            details={
                "lease_ms": [
                    f"Must be at least the endpoint timeout_ms plus {LEASE_MARGIN_MS} ms ({needed}), or a delivery "
                    "would outlive its lease and be sent twice."
                ]
            }
        )
    queue.lease_ms = needed


def queue_create(*, workspace: Workspace, data: dict[str, Any]) -> tuple[Queue, str]:
    """Create a queue from validated input; returns it and its signing secret (shown to the client once)."""
    endpoint = _normalise_endpoint(data.get("endpoint"))
    delivery = data.get("delivery") or Queue.Delivery.PUSH
    _check_shape(delivery=delivery, endpoint=endpoint)
    retry_policy = {**DEFAULT_RETRY_POLICY, **(data.get("retry_policy") or {})}
    _check_plan(workspace=workspace, endpoint=endpoint, retry_policy=retry_policy)
    secret = signing_secret_new()
    with transaction.atomic():
        plan_slot_take(workspace=workspace, resource="queues", model=Queue)
        queue = Queue(
            workspace=workspace,
            name=data["name"],
            delivery=delivery,
            endpoint=endpoint,
            retry_policy=retry_policy,
            signing_secret=secret,
        )
        for field in ("concurrency", "group_concurrency", "rate_limit", "lease_ms"):
            if field in data:
                setattr(queue, field, data[field])
        _fit_lease(queue=queue, endpoint=endpoint, data=data)
        try:
            with transaction.atomic():
                queue.save(force_insert=True)
        except IntegrityError as exc:
            if _is_name_conflict(exc):
                raise Conflict(
                    f"A queue named '{data['name']}' already exists.",
                    details={"name": ["A queue with this name already exists."]},
                ) from None
            raise
    return queue, secret


def queue_ensure_default(*, workspace: Workspace, name: str = "default") -> Queue:
    """The workspace's `default` queue (push, no endpoint: jobs bring their own `http` target), created on demand."""
    queue = Queue.objects.filter(workspace=workspace, name=name).first()
    if queue is not None:
        return queue
    try:
        queue, _ = queue_create(workspace=workspace, data={"name": name, "delivery": Queue.Delivery.PUSH})
    except Conflict:
        # Created by a parallel request between our read and our insert.
        queue = Queue.objects.get(workspace=workspace, name=name)
    return queue


def queue_update(*, workspace: Workspace, queue: Queue, data: dict[str, Any]) -> Queue:
    """Apply a validated partial update. `retry_policy` is merged over the queue's current policy."""
    if "name" in data and data["name"] != queue.name:
        raise ValidationFailed(details={"name": ["A queue cannot be renamed."]})
    if "delivery" in data and data["delivery"] != queue.delivery:
        # The engine routes hints by delivery mode and caches it per queue id (jobs.services.dispatch), and
        # jobs already enqueued were accepted under the old mode's rules: create a new queue instead.
        raise ValidationFailed(details={"delivery": ["The delivery mode of a queue cannot be changed."]})
    if not set(data) - {"name", "delivery"}:
        return queue  # nothing to change: keep updated_at honest
    with transaction.atomic():
        queue = Queue.objects.select_for_update().get(pk=queue.pk, workspace=workspace)
        delivery = queue.delivery
        # A header value read back masked (queue GET) and sent unchanged keeps its stored secret.
        endpoint = (
            target_unmasked(_normalise_endpoint(data["endpoint"]), queue.endpoint)
            if "endpoint" in data
            else queue.endpoint
        )
        retry_policy = {
            **DEFAULT_RETRY_POLICY,
            **(queue.retry_policy or {}),
            **(data.get("retry_policy") or {}),
        }
        _check_shape(delivery=delivery, endpoint=endpoint)
        # Only what the request changes is held to the plan: a downgrade must not lock a queue's other edits.
        _check_plan(
            workspace=workspace,
            endpoint=endpoint if "endpoint" in data else None,
            retry_policy=data.get("retry_policy") or {},
        )
        queue.endpoint = endpoint
        queue.retry_policy = retry_policy
        for field in ("concurrency", "group_concurrency", "rate_limit", "lease_ms"):
            if field in data:
                setattr(queue, field, data[field])
        if "lease_ms" in data or "endpoint" in data:
            _fit_lease(queue=queue, endpoint=endpoint, data=data)
        queue.save()
    return queue


def _job_name(job_name: str | None) -> str | None:
    return None if job_name in (None, "", ALL_JOBS) else job_name


def _pause_saved(*, workspace: Workspace, queue: Queue, event_type: str, job_name: str | None) -> None:
    """Save a changed pause state and tell the event stream (queue:paused / queue:resumed)."""
    queue.save(update_fields=["paused", "paused_job_names", "updated_at"])
    events_emit(
        [
            PendingEvent(
                workspace_id=workspace.id, type=event_type, queue_name=queue.name, data={"job_name": job_name}
            )
        ]
    )


def queue_pause(*, workspace: Workspace, queue: Queue, job_name: str | None = None) -> Queue:
    """Pause the whole queue, or only its jobs named `job_name`; emits queue:paused if something changed."""
    job_name = _job_name(job_name)
    with transaction.atomic():
        # Row lock: paused_job_names is read-modify-write.
        queue = Queue.objects.select_for_update().get(pk=queue.pk, workspace=workspace)
        if job_name is None:
            changed = not queue.paused
            queue.paused = True
        else:
            names = list(queue.paused_job_names or [])
            changed = job_name not in names
            if changed:
                queue.paused_job_names = [*names, job_name]
        if changed:
            _pause_saved(workspace=workspace, queue=queue, event_type="queue:paused", job_name=job_name)
    return queue


def queue_resume(*, workspace: Workspace, queue: Queue, job_name: str | None = None) -> Queue:
    """Resume the whole queue, or only its jobs named `job_name`; emits queue:resumed if something changed."""
    job_name = _job_name(job_name)
    with transaction.atomic():
        queue = Queue.objects.select_for_update().get(pk=queue.pk, workspace=workspace)
        if job_name is None:
            changed = queue.paused
            queue.paused = False
        else:
            names = list(queue.paused_job_names or [])
            changed = job_name in names
            queue.paused_job_names = [n for n in names if n != job_name]
        if changed:
            _pause_saved(workspace=workspace, queue=queue, event_type="queue:resumed", job_name=job_name)
    return queue


def queue_rotate_secret(*, workspace: Workspace, queue: Queue) -> tuple[Queue, str]:
    """A new signing secret; the old one keeps signing for 24 hours. Returns the queue and the new secret."""
    secret = signing_secret_new()
    with transaction.atomic():
        queue = Queue.objects.select_for_update().get(pk=queue.pk, workspace=workspace)
        queue.previous_signing_secret = queue.signing_secret
        queue.previous_secret_expires_at = timezone.now() + SECRET_OVERLAP
        queue.signing_secret = secret
        queue.save(
            update_fields=[
                "signing_secret",
                "previous_signing_secret",
                "previous_secret_expires_at",
                "updated_at",
            ]
        )
    return queue, secret
