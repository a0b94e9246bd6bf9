"""Queue metrics routes. The queue CRUD routes render job counts and live in jobs/urls_queues.py; the other
queue operations (drain, clean, retry, promote, groups, jobs) in jobs/urls_*.py."""

from django.urls import path

from .views import QueueMetricsViewSet

urlpatterns = [
    path("queues/<name:name>/metrics", QueueMetricsViewSet.as_view({"get": "metrics"}), name="queue-metrics"),
    path("metrics/sparklines", QueueMetricsViewSet.as_view({"get": "sparklines"}), name="metrics-sparklines"),
]
