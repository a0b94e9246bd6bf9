"""Job routes, one module per concern. Order matters: fixed segments (`jobs/claim`, `jobs/batch`) are
matched before `jobs/<jobid:job_id>`, which only matches `job_…` ids anyway."""

from django.urls import include, path

urlpatterns = [
    path("", include("jobs.urls_events")),
    path("", include("jobs.urls_pull")),
    path("", include("jobs.urls_operations")),
    path("", include("jobs.urls_jobs")),
    path("", include("jobs.urls_queues")),
]
