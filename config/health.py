"""`GET /v1/health`: public; database and broker checks; 503 with the same body when degraded."""

from __future__ import annotations

import time

from django.conf import settings
from django.db import connection
from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.decorators import api_view, authentication_classes, permission_classes
from rest_framework.request import Request
from rest_framework.response import Response

_STARTED = time.monotonic()


def _check_database() -> dict:
    started = time.perf_counter()
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
    except Exception as exc:  # any driver error means "down"
        return {"status": "down", "latency_ms": None, "error": exc.__class__.__name__}
    return {"status": "ok", "latency_ms": round((time.perf_counter() - started) * 1000, 2)}


def _check_broker() -> dict:
    from config.celery import app

    started = time.perf_counter()
    try:
        with app.connection_for_write() as conn:
            conn.ensure_connection(max_retries=1, timeout=2)
            if conn.transport.driver_type == "redis":
                conn.default_channel.client.ping()
    except Exception as exc:
        return {"status": "down", "latency_ms": None, "error": exc.__class__.__name__}
    return {"status": "ok", "latency_ms": round((time.perf_counter() - started) * 1000, 2)}


_SERVICE = inline_serializer(
    "HealthService",
    fields={
        "status": serializers.ChoiceField(choices=["ok", "down"]),
        "latency_ms": serializers.FloatField(allow_null=True),
        "error": serializers.CharField(required=False, help_text="When down: the class of the error met."),
    },
)

_HEALTH = inline_serializer(
    "Health",
    fields={
        "status": serializers.ChoiceField(choices=["ok", "degraded"]),
        "version": serializers.CharField(),
        "uptime_s": serializers.IntegerField(),
        # Two instances of one component: a single instance bound to both fields documented only `broker`.
        "services": inline_serializer("HealthServices", fields={"database": _SERVICE, "broker": type(_SERVICE)()}),
    },
)


@extend_schema(
    tags=["Status"],
    auth=[],
    responses={(200, "application/json"): _HEALTH, (503, "application/json"): _HEALTH},
    description="Public liveness and dependency check. Answers 503 with the same body when degraded.",
)
@api_view(["GET"])
@authentication_classes([])
@permission_classes([])
def health(request: Request) -> Response:
    services = {"database": _check_database(), "broker": _check_broker()}
    degraded = any(s["status"] != "ok" for s in services.values())
    body = {
        "status": "degraded" if degraded else "ok",
        "version": settings.VERSION,
        "uptime_s": int(time.monotonic() - _STARTED),
        "services": services,
    }
    return Response(body, status=503 if degraded else 200)
