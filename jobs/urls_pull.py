"""Pull-worker routes (API.md "Pull workers"). `jobs/claim` and `jobs/ack` are fixed segments; job routes
use `<jobid:…>`, which only matches `job_…` ids, so neither shadows the other."""

from django.urls import path

from jobs.views.pull import PullJobViewSet
from jobs.views.workers import WorkerViewSet

workers = WorkerViewSet.as_view({"get": "list", "post": "create"})
worker_detail = WorkerViewSet.as_view({"delete": "destroy"})
worker_heartbeat = WorkerViewSet.as_view({"post": "heartbeat"})

urlpatterns = [
    path("workers", workers, name="worker-list"),
    path("workers/<wkrid:worker_id>", worker_detail, name="worker-detail"),
    path("workers/<wkrid:worker_id>/heartbeat", worker_heartbeat, name="worker-heartbeat"),
    path("jobs/claim", PullJobViewSet.as_view({"post": "claim_many"}), name="pull-claim-many"),
    path("queues/<name:name>/jobs/claim", PullJobViewSet.as_view({"post": "claim"}), name="pull-claim"),
    path("queues/<name:name>/jobs/ack", PullJobViewSet.as_view({"post": "ack"}), name="pull-ack"),
    path(
        "queues/<name:name>/jobs/<jobid:job_id>/heartbeat",
        PullJobViewSet.as_view({"post": "heartbeat"}),
        name="pull-job-heartbeat",
    ),
    path(
        "queues/<name:name>/jobs/<jobid:job_id>/progress",
        PullJobViewSet.as_view({"post": "progress"}),
        name="pull-job-progress",
    ),
    path(
        "queues/<name:name>/jobs/<jobid:job_id>/complete",
        PullJobViewSet.as_view({"post": "complete"}),
        name="pull-job-complete",
    ),
    path(
        "queues/<name:name>/jobs/<jobid:job_id>/fail",
        PullJobViewSet.as_view({"post": "fail"}),
        name="pull-job-fail",
    ),
]
