from django.contrib import admin
from django.urls import include, path
from drf_spectacular.renderers import OpenApiJsonRenderer
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from config import converters
from config.health import health
from config.metrics import metrics

converters.register_all()

handler400 = "config.middleware.handler400"
handler403 = "config.middleware.handler403"
handler404 = "config.middleware.handler404"
handler500 = "config.middleware.handler500"

schema_view = SpectacularAPIView.as_view(renderer_classes=[OpenApiJsonRenderer])

urlpatterns = [
    path("admin/", admin.site.urls),
    path("doc", schema_view, name="schema"),
    path("openapi.json", schema_view, name="openapi-json"),
    path("docs", SpectacularSwaggerView.as_view(url_name="schema"), name="docs"),
    path("v1/health", health, name="health"),
    path("metrics", metrics, name="metrics"),
    # Job routes first: they carry almost all of the traffic, and Django tries the patterns in order.
    path("v1/", include("jobs.urls")),
    path("v1/", include("accounts.urls")),
    path("v1/", include("billing.urls")),
    path("v1/", include("queues.urls")),
    path("v1/", include("schedules.urls")),
    path("v1/", include("alerts.urls")),
]
