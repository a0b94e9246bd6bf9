"""The dead-letter queue (Spindle's `failed` jobs): list, retry and purge."""

from __future__ import annotations

from collections import defaultdict

from django.utils import timezone
from rest_framework.request import Request
from rest_framework.response import Response

from config.exceptions import ValidationFailed
from jobs.models import Job, JobState
from jobs.services import operations
from queues.models import Queue
from spooled.rest.base import SpooledView
from spooled.rest.jobs import job_query
from spooled.rest.paging import paged
from spooled.rest.shapes import job_summary

DEFAULT_RETRY_LIMIT = 100
MAX_PURGE = 10_000


class DlqView(SpooledView):
    def get(self, request: Request) -> Response:
        return paged(request, job_query(self, request, dead_letter=True), job_summary)


class DlqRetryView(SpooledView):
    def post(self, request: Request) -> Response:
        body = self.body(request)
        body.only("queue_name", "job_ids", "limit")
        name = body.text("queue_name", max_length=100)
        ids = body.text_list("job_ids", max_items=100, max_length=40)
        limit = body.integer("limit", 1, 100, default=DEFAULT_RETRY_LIMIT)
        body.done()
        if name:
            self.require_queue(name)
        dead = Job.objects.filter(workspace=self.workspace, state=JobState.FAILED)
        if name:
            dead = dead.filter(queue__name=name)
        if ids is not None:
            dead = dead.filter(id__in=ids)
        chosen = list(dead.order_by("id").values_list("id", "queue_id")[:limit])
        by_queue: dict[str, list[str]] = defaultdict(list)
        for job_id, queue_id in chosen:
            by_queue[queue_id].append(job_id)
        for queue in Queue.objects.filter(workspace=self.workspace, id__in=list(by_queue)):
            self.require_queue(queue.name)
            operations.dlq_retry(workspace=self.workspace, queue=queue, ids=by_queue[queue.id])
        chosen_ids = [job_id for job_id, _ in chosen]
        still = set(Job.objects.filter(id__in=chosen_ids, state=JobState.FAILED).values_list("id", flat=True))
        retried = [i for i in chosen_ids if i not in still]
        skipped = [i for i in chosen_ids if i in still] + [i for i in ids or [] if i not in set(chosen_ids)]
        return Response({"retried_count": len(retried), "retried_jobs": retried, "skipped_jobs": skipped})


class DlqPurgeView(SpooledView):
    def post(self, request: Request) -> Response:
        body = self.body(request)
        body.only("confirm", "queue_name", "older_than", "limit")
        confirm = body.boolean("confirm")
        name = body.text("queue_name", max_length=100)
        older_than = body.when("older_than")
        limit = body.integer("limit", 1, MAX_PURGE, default=MAX_PURGE)
        if confirm is not True:
            raise ValidationFailed(
                "Purging the dead-letter queue needs `confirm: true`.", details={"confirm": ["Must be true."]}
            )
        body.done()
        queues = Queue.objects.filter(workspace=self.workspace).order_by("name")
        if name:
            self.require_queue(name)
            queues = queues.filter(name=name)
        grace_ms = 0
        if older_than is not None:
            grace_ms = max(0, int((timezone.now() - older_than).total_seconds() * 1000))
        purged = 0
        for queue in queues:
            if purged >= limit:
                break
            if self.scope_key() is not None and not self.scope_key().allows_queue(queue.name):
                continue
            purged += operations.queue_clean(
                workspace=self.workspace,
                queue=queue,
                state=JobState.FAILED,
                grace_ms=grace_ms,
                limit=limit - purged,
            )
        return Response({"purged_count": purged})
