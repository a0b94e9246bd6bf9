"""Alert and webhook-subscription routes (`<alrid:...>` / `<whid:...>` only match prefixed ids)."""

from django.urls import path

from .views import AlertViewSet, WebhookViewSet

urlpatterns = [
    path("alerts", AlertViewSet.as_view({"get": "list", "post": "create"}), name="alert-list"),
    path(
        "alerts/<alrid:alert_id>",
        AlertViewSet.as_view(
            {"get": "retrieve", "put": "update", "patch": "partial_update", "delete": "destroy"}
        ),
        name="alert-detail",
    ),
    path("alerts/<alrid:alert_id>/test", AlertViewSet.as_view({"post": "test"}), name="alert-test"),
    path("webhooks", WebhookViewSet.as_view({"get": "list", "post": "create"}), name="webhook-list"),
    path(
        "webhooks/<whid:webhook_id>",
        WebhookViewSet.as_view({"get": "retrieve", "patch": "partial_update", "delete": "destroy"}),
        name="webhook-detail",
    ),
    path(
        "webhooks/<whid:webhook_id>/deliveries",
        WebhookViewSet.as_view({"get": "deliveries"}),
        name="webhook-deliveries",
    ),
]
