"""The SSE routes under /api/v1 (spooled.urls mounts them; config.front serves them on the async side). The
WebSocket routes (`/api/v1/ws`, `/api/v1/events/ws`) are not URLconf routes: config.front hands WebSocket
connections to spooled.realtime.socket."""

from django.urls import path

from spooled.realtime import views

urlpatterns = [
    path("events", views.events, name="spooled-events"),
    path("events/jobs/<str:job_id>", views.job_events, name="spooled-job-events"),
]
