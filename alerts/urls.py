"""Alert and webhook-subscription routes (`<alrid:...>` / `<whid:...>` only match prefixed ids)."""

from config.api import resource_routes

from .views import AlertViewSet, WebhookViewSet

urlpatterns = [
    *resource_routes(AlertViewSet, "alerts", "<alrid:alert_id>", "alert", test=("post",)),
    *resource_routes(
        WebhookViewSet,
        "webhooks",
        "<whid:webhook_id>",
        "webhook",
        detail=("get", "patch", "delete"),
        deliveries=("get",),
    ),
]
