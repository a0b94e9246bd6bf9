"""Enqueue, get and list jobs. `jobs/batch` is a fixed segment; `<jobid:…>` only matches `job_…` ids."""

from django.urls import path

from jobs.views.jobs import FlowsViewSet, JobsViewSet, MetricsStatusViewSet, QueueJobsViewSet

urlpatterns = [
    path("jobs", JobsViewSet.as_view({"get": "list", "post": "create"}), name="job-list-all"),
    path("jobs/<jobid:job_id>", JobsViewSet.as_view({"get": "retrieve"}), name="job-detail-any"),
    path("flows", FlowsViewSet.as_view({"get": "list"}), name="flow-list"),
    path("metrics/status", MetricsStatusViewSet.as_view({"get": "status"}), name="metrics-status"),
    path(
        "queues/<name:name>/jobs",
        QueueJobsViewSet.as_view({"get": "list", "post": "create"}),
        name="queue-job-list",
    ),
    path(
        "queues/<name:name>/jobs/batch", QueueJobsViewSet.as_view({"post": "batch"}), name="queue-job-batch"
    ),
]
