from django.urls import path

from .views import ScheduleViewSet

urlpatterns = [
    path("schedules", ScheduleViewSet.as_view({"get": "list", "post": "create"}), name="schedule-list"),
    path(
        "schedules/<name:name>",
        ScheduleViewSet.as_view(
            {"get": "retrieve", "put": "update", "patch": "partial_update", "delete": "destroy"}
        ),
        name="schedule-detail",
    ),
    path(
        "schedules/<name:name>/pause",
        ScheduleViewSet.as_view({"patch": "pause", "post": "pause"}),
        name="schedule-pause",
    ),
    path(
        "schedules/<name:name>/resume",
        ScheduleViewSet.as_view({"patch": "resume", "post": "resume"}),
        name="schedule-resume",
    ),
    path(
        "schedules/<name:name>/trigger", ScheduleViewSet.as_view({"post": "trigger"}), name="schedule-trigger"
    ),
    path("schedules/<name:name>/runs", ScheduleViewSet.as_view({"get": "runs"}), name="schedule-runs"),
    path(
        "schedules/<name:name>/preview", ScheduleViewSet.as_view({"get": "preview"}), name="schedule-preview"
    ),
]
