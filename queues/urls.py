"""Queue metrics and usage routes. The queue CRUD routes render job counts and live in jobs/urls_queues.py; the other
queue operations (drain, clean, retry, promote, groups, jobs) in jobs/urls_*.py."""

from django.urls import path

from .views import QueueMetricsViewSet, usage

urlpatterns = [
    path("queues/<name:name>/metrics", QueueMetricsViewSet.as_view({"get": "metrics"}), name="queue-metrics"),
    # Billing's usage report (tag Billing) reads this app's rollup, so it is served from here.
    path("usage", usage, name="usage"),
    path("metrics/sparklines", QueueMetricsViewSet.as_view({"get": "sparklines"}), name="metrics-sparklines"),
]
