"""Enqueue, get and list jobs. `jobs/batch` is a fixed segment; `<jobid:…>` only matches `job_…` ids."""

from django.urls import path

from jobs.views.jobs import JobsViewSet, QueueJobsViewSet

urlpatterns = [
    path("jobs", JobsViewSet.as_view({"get": "list"}), name="job-list-all"),
    path(
        "queues/<name:name>/jobs",
        QueueJobsViewSet.as_view({"get": "list", "post": "create"}),
        name="queue-job-list",
    ),
    path("queues/<name:name>/jobs/batch", QueueJobsViewSet.as_view({"post": "batch"}), name="queue-job-batch"),
]
