from config.api import resource_routes

from .views import ScheduleViewSet

urlpatterns = resource_routes(
    ScheduleViewSet,
    "schedules",
    "<name:name>",
    "schedule",
    pause=("patch", "post"),
    resume=("patch", "post"),
    trigger=("post",),
    runs=("get",),
    preview=("get",),
)
