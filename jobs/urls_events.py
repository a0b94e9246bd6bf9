"""Event routes: SSE streams (async, for the ASGI process) that also answer `?format=json` lists."""

from django.urls import path

from jobs.views.events import EventsView

_view = EventsView.as_view()

urlpatterns = [
    path("events", _view, name="event-list"),
    path("queues/<name:name>/events", _view, name="queue-event-list"),
]
