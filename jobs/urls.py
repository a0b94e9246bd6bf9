"""Job routes, one module per concern, as one flat list. Order matters: fixed segments (`jobs/claim`,
`jobs/batch`) are matched before `jobs/<jobid:job_id>`, which only matches `job_…` ids anyway. Flat, not nested
includes, for the reason config/urls_v1.py gives."""

from jobs import urls_events, urls_jobs, urls_operations, urls_pull, urls_queues

urlpatterns = [
    *urls_events.urlpatterns,
    *urls_pull.urlpatterns,
    *urls_operations.urlpatterns,
    *urls_jobs.urlpatterns,
    *urls_queues.urlpatterns,
]
