"""Every `/v1` route, as one flat list (config/urls.py includes it once the path converters are registered).

Flat, not seven `v1/` includes: an include whose patterns all fail is walked again to list them (Django's
`tried`), which was a tenth of a single enqueue's Python time. Job routes first: they carry almost all of the
traffic, and Django tries the patterns in order."""

import accounts.urls
import alerts.urls
import billing.urls
import jobs.urls
import queues.urls
import schedules.urls
import schedules.urls_executions

urlpatterns = [
    *jobs.urls.urlpatterns,
    *schedules.urls_executions.urlpatterns,
    *accounts.urls.urlpatterns,
    *billing.urls.urlpatterns,
    *queues.urls.urlpatterns,
    *schedules.urls.urlpatterns,
    *alerts.urls.urlpatterns,
]
