"""Execution routes: the workspace-wide list, one execution, and a job's attempts (config/urls.py includes them
right after the job routes)."""

from django.urls import path

from .executions import ExecutionsViewSet

urlpatterns = [
    path("executions", ExecutionsViewSet.as_view({"get": "list"}), name="execution-list"),
    path(
        "executions/<exeid:execution_id>",
        ExecutionsViewSet.as_view({"get": "retrieve"}),
        name="execution-detail",
    ),
    path(
        "queues/<name:name>/jobs/<jobid:job_id>/executions",
        ExecutionsViewSet.as_view({"get": "for_job"}),
        name="job-execution-list",
    ),
]
