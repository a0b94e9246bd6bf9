from collections.abc import Callable
from typing import Any

from django.contrib import admin
from django.urls import include, path
from drf_spectacular.renderers import OpenApiJsonRenderer, OpenApiJsonRenderer2
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from alerts.metrics import metrics
from config import converters
from config.api import LenientContentNegotiation
from config.health import health, livez, readyz

converters.register_all()

handler400 = "config.middleware.handler400"
handler403 = "config.middleware.handler403"
handler404 = "config.middleware.handler404"
handler500 = "config.middleware.handler500"

# JSON whatever the Accept header says: `application/json` gets that media type, anything else the OpenAPI one.
schema_view = SpectacularAPIView.as_view(
    renderer_classes=[OpenApiJsonRenderer, OpenApiJsonRenderer2],
    content_negotiation_class=LenientContentNegotiation,
)


def _spooled_health(check: Callable[..., Any]) -> Callable[..., Any]:
    """Spooled's /health, /health/live and /health/ready: aliases of the native checks (ROADMAP "Health"), in
    Spooled's shape `{status: healthy|unhealthy, version, database, cache, uptime_seconds}`, same status codes."""

    def alias(request: Any) -> Any:
        response = check(request)
        body, services = response.data, response.data.get("services", {})
        response.data = {
            "status": "healthy" if response.status_code < 400 else "unhealthy",
            "version": body.get("version"),
            "uptime_seconds": body.get("uptime_s"),
            **{ours: services[name]["status"] == "ok" for ours, name in _HEALTH_NAMES if name in services},
        }
        return response

    return alias


_HEALTH_NAMES = (("database", "database"), ("cache", "broker"))

urlpatterns = [
    path("admin/", admin.site.urls),
    path("doc", schema_view, name="schema"),
    path("openapi.json", schema_view, name="openapi-json"),
    path("docs", SpectacularSwaggerView.as_view(url_name="schema"), name="docs"),
    path("v1/health", health, name="health"),
    # Probes for orchestrators and load balancers (config/health.py): process alive; ready to serve and to run jobs.
    path("livez", livez, name="livez"),
    path("readyz", readyz, name="readyz"),
    path("metrics", metrics, name="metrics"),
    path("health", _spooled_health(health)),
    path("health/live", _spooled_health(livez)),
    path("health/ready", _spooled_health(readyz)),
    # Every /v1 route in one flat list (config/urls_v1.py), job routes first.
    path("v1/", include("config.urls_v1")),
    # Spooled's wire surface (spooled/): its own errors and paging, over the same services.
    path("api/v1/", include("spooled.urls")),
    # The customer dashboard owns `/` and is tried last, so /v1, /admin and /doc always win.
    path("", include("dashboard.urls")),
]
