"""Queue CRUD routes (jobs.views.queues). The metrics routes stay in queues/urls.py; `<name:name>` matches a
single path segment, so `queues/<name>/metrics` and `queues/<name>/jobs/...` never land here."""

from django.urls import path

from jobs.views.queues import QueueViewSet

urlpatterns = [
    path("queues", QueueViewSet.as_view({"get": "list", "post": "create"}), name="queue-list"),
    path(
        "queues/<name:name>",
        QueueViewSet.as_view({"get": "retrieve", "patch": "partial_update", "delete": "destroy"}),
        name="queue-detail",
    ),
    path("queues/<name:name>/pause", QueueViewSet.as_view({"post": "pause"}), name="queue-pause"),
    path("queues/<name:name>/resume", QueueViewSet.as_view({"post": "resume"}), name="queue-resume"),
    path(
        "queues/<name:name>/rotate-secret",
        QueueViewSet.as_view({"post": "rotate_secret"}),
        name="queue-rotate-secret",
    ),
]
