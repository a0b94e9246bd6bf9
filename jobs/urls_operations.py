"""Operator routes (API.md, Queues "Operations" and Jobs), including the one job path
`queues/{name}/jobs/{id}` (GET, PATCH, DELETE)."""

from django.urls import path

from jobs.views.operations import JobOperationsViewSet, QueueOperationsViewSet, ReplayViewSet, SearchViewSet

Q = QueueOperationsViewSet
J = JobOperationsViewSet
JOB = "queues/<name:name>/jobs/<jobid:job_id>"

urlpatterns = [
    path("queues/<name:name>/drain", Q.as_view({"post": "drain"}), name="queue-drain"),
    path("queues/<name:name>/clean", Q.as_view({"post": "clean"}), name="queue-clean"),
    path("queues/<name:name>/retry", Q.as_view({"post": "retry"}), name="queue-retry"),
    path("queues/<name:name>/promote", Q.as_view({"post": "promote"}), name="queue-promote"),
    path("queues/<name:name>/groups", Q.as_view({"get": "groups"}), name="queue-groups"),
    path("queues/<name:name>/dlq", Q.as_view({"get": "dlq", "delete": "dlq_purge"}), name="queue-dlq"),
    path("queues/<name:name>/dlq/retry", Q.as_view({"post": "dlq_retry"}), name="queue-dlq-retry"),
    path(
        JOB, J.as_view({"get": "retrieve", "patch": "partial_update", "delete": "destroy"}), name="job-detail"
    ),
    path(f"{JOB}/cancel", J.as_view({"post": "cancel"}), name="job-cancel"),
    path(f"{JOB}/retry", J.as_view({"post": "retry"}), name="job-retry"),
    path(f"{JOB}/promote", J.as_view({"post": "promote"}), name="job-promote"),
    path(f"{JOB}/children", J.as_view({"get": "children"}), name="job-children"),
    path("search", SearchViewSet.as_view({"get": "search"}), name="search"),
    path(
        "executions/<exeid:execution_id>/replay",
        ReplayViewSet.as_view({"post": "replay"}),
        name="execution-replay",
    ),
]
