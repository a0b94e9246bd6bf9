"""Queue routes. Other queue operations (drain, clean, retry, promote, groups, jobs) live in jobs/urls_*.py;
`<name:name>` matches a single path segment, so `queues/<name>/jobs/...` never lands here."""

from django.urls import path

from .views import QueueViewSet

urlpatterns = [
    path("queues", QueueViewSet.as_view({"get": "list", "post": "create"}), name="queue-list"),
    path(
        "queues/<name:name>",
        QueueViewSet.as_view({"get": "retrieve", "patch": "partial_update", "delete": "destroy"}),
        name="queue-detail",
    ),
    path("queues/<name:name>/pause", QueueViewSet.as_view({"post": "pause"}), name="queue-pause"),
    path("queues/<name:name>/resume", QueueViewSet.as_view({"post": "resume"}), name="queue-resume"),
    path("queues/<name:name>/rotate-secret", QueueViewSet.as_view({"post": "rotate_secret"}),
         name="queue-rotate-secret"),
    path("queues/<name:name>/metrics", QueueViewSet.as_view({"get": "metrics"}), name="queue-metrics"),
    path("metrics/sparklines", QueueViewSet.as_view({"get": "sparklines"}), name="metrics-sparklines"),
]
