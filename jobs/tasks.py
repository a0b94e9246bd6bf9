"""Thin Celery tasks of the jobs app: hints in, services do the work (PostgreSQL is the truth)."""

from __future__ import annotations

import logging

from celery import shared_task
from django.conf import settings

from jobs.models import Job, JobState
from jobs.services import delivery
from jobs.services.dispatch import clear_kick, send_hints
from jobs.services.engine import job_claim, jobs_record_outcomes, jobs_sweep
from queues.models import Queue

logger = logging.getLogger(__name__)


@shared_task(name="jobs.deliver_queue", ignore_result=True)
def deliver_queue(queue_id: str) -> int:
    """Claim a batch of a push queue, deliver it concurrently, record every outcome at once, re-kick."""
    # Cleared first: a kick that arrives while this batch is in flight schedules the next run.
    clear_kick(queue_id)
    queue = Queue.objects.filter(pk=queue_id, delivery=Queue.Delivery.PUSH).first()
    if queue is None:
        return 0
    limit = max(1, min(settings.SPINDLE_DELIVERY_BATCH, queue.concurrency))
    jobs = job_claim(queue=queue, limit=limit, lease_ms=queue.lease_ms)
    if not jobs:
        return 0
    if len(jobs) == limit:
        # More may be ready: let another worker process claim the next batch while this one is in flight.
        send_hints([queue_id])
    outcomes = delivery.deliver_batch(jobs[0].queue, jobs)
    lost = jobs_record_outcomes(outcomes=outcomes)
    if lost:
        logger.info("queue %s: %d outcome(s) fenced off (lease lost)", queue_id, len(lost))
    if Job.objects.filter(queue_id=queue_id, state=JobState.WAITING).exists():
        send_hints([queue_id])
    return len(jobs)


@shared_task(name="jobs.sweep", ignore_result=True)
def sweep() -> dict:
    """Beat: promote due delayed jobs, rescue expired leases, re-kick queues whose hint was lost."""
    return jobs_sweep()
