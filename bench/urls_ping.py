"""Bench-only URLconf: the product's routes plus `GET /bench/ping`, the DRF baseline of PERF.md's single-enqueue
goal (a DRF view on the same gunicorn server, no authentication, no throttle, no database)."""

from __future__ import annotations

from django.urls import path
from rest_framework.decorators import api_view, authentication_classes, permission_classes, throttle_classes
from rest_framework.request import Request
from rest_framework.response import Response

from config.urls import handler400, handler403, handler404, handler500
from config.urls import urlpatterns as product_urlpatterns

__all__ = ["handler400", "handler403", "handler404", "handler500", "urlpatterns"]


@api_view(["GET"])
@authentication_classes([])
@permission_classes([])
@throttle_classes([])
def ping(request: Request) -> Response:
    return Response({"ok": True})


urlpatterns = [path("bench/ping", ping), *product_urlpatterns]
