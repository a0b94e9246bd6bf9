"""Pull-worker routes (API.md "Pull workers"). `jobs/claim` and `jobs/ack` are fixed segments; job routes
use `<jobid:…>`, which only matches `job_…` ids, so neither shadows the other."""

from django.urls import path

from jobs.views.pull import PullJobViewSet
from jobs.views.workers import WorkerViewSet

workers = WorkerViewSet.as_view({"get": "list", "post": "create"})
worker_detail = WorkerViewSet.as_view({"delete": "destroy"})
worker_heartbeat = WorkerViewSet.as_view({"post": "heartbeat"})
# The lease-fenced job operations: one route each, named after its action.
_LEASED_JOB_ACTIONS = ("heartbeat", "progress", "complete", "fail")

urlpatterns = [
    path("workers", workers, name="worker-list"),
    path("workers/<wkrid:worker_id>", worker_detail, name="worker-detail"),
    path("workers/<wkrid:worker_id>/heartbeat", worker_heartbeat, name="worker-heartbeat"),
    path("jobs/claim", PullJobViewSet.as_view({"post": "claim_many"}), name="pull-claim-many"),
    path("queues/<name:name>/jobs/claim", PullJobViewSet.as_view({"post": "claim"}), name="pull-claim"),
    path("queues/<name:name>/jobs/ack", PullJobViewSet.as_view({"post": "ack"}), name="pull-ack"),
    *(
        path(
            f"queues/<name:name>/jobs/<jobid:job_id>/{action}",
            PullJobViewSet.as_view({"post": action}),
            name=f"pull-job-{action}",
        )
        for action in _LEASED_JOB_ACTIONS
    ),
]
