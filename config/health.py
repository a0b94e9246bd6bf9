"""Health checks, public and unthrottled; 503 with the same body when something is down.

- `GET /v1/health` (API.md): database and broker.
- `GET /livez`: the process answers; nothing else is checked, so a database outage never restarts the web.
- `GET /readyz`: database, broker, and the worker and scheduler, alive when the sweeper's and the ticker's last
  runs (config/liveness.py) are younger than SPINDLE_READY_MAX_AGE_S.
"""

from __future__ import annotations

import time
from typing import Any

from django.conf import settings
from django.db import connection
from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.decorators import api_view, authentication_classes, permission_classes
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from config import liveness
from config.api import LenientContentNegotiation

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


def _checks_body(name: str, services: dict[str, Any]) -> Any:
    """The body /v1/health and /readyz share: overall status, version, uptime, and one entry per check."""
    return inline_serializer(
        name,
        fields={
            "status": serializers.ChoiceField(choices=["ok", "degraded"]),
            "version": serializers.CharField(),
            "uptime_s": serializers.IntegerField(),
            "services": inline_serializer(f"{name}Services", fields=services),
        },
    )


# Two instances of one component: a single instance bound to both fields documented only `broker`.
_HEALTH = _checks_body("Health", {"database": _SERVICE, "broker": type(_SERVICE)()})


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
    return _answer({"database": _check_database(), "broker": _check_broker()})


def _answer(services: dict[str, dict]) -> Response:
    degraded = any(s["status"] != "ok" for s in services.values())
    body = {
        "status": "degraded" if degraded else "ok",
        "version": settings.VERSION,
        "uptime_s": int(time.monotonic() - _STARTED),
        "services": services,
    }
    return Response(body, status=503 if degraded else 200)


# The periodic task whose last run shows each service alive: both are sent by the scheduler (beat) and run by a
# worker, on the system queue; the sweeper also runs on enqueue's prompt sweeps.
_MARKS = {"worker": "sweeper", "scheduler": "ticker"}


def _check_mark(name: str) -> dict:
    last = liveness.last(name)
    if last is None:
        return {"status": "down", "age_s": None, "error": "missing"}
    age = round(max(0.0, time.time() - last), 1)
    if age > settings.SPINDLE_READY_MAX_AGE_S:
        return {"status": "down", "age_s": age, "error": "stale"}
    return {"status": "ok", "age_s": age}


_MARK = inline_serializer(
    "LivenessMark",
    fields={
        "status": serializers.ChoiceField(choices=["ok", "down"]),
        "age_s": serializers.FloatField(
            allow_null=True, help_text="Seconds since the task last ran; null: never."
        ),
        "error": serializers.CharField(required=False, help_text="When down: `missing` or `stale`."),
    },
)

_READY = _checks_body(
    "Readiness",
    {"database": type(_SERVICE)(), "broker": type(_SERVICE)(), "worker": _MARK, "scheduler": type(_MARK)()},
)

_LIVE = inline_serializer(
    "Liveness",
    fields={
        "status": serializers.ChoiceField(choices=["ok"]),
        "version": serializers.CharField(),
        "uptime_s": serializers.IntegerField(),
    },
)


class _Probe(APIView):
    """Public, never throttled (a probe every few seconds is no tenant's traffic), any Accept header."""

    authentication_classes: list = []
    permission_classes: list = []
    throttle_classes: list = []
    content_negotiation_class = LenientContentNegotiation


class LiveView(_Probe):
    @extend_schema(
        tags=["Health"],
        auth=[],
        responses={(200, "application/json"): _LIVE},
        description="Liveness: the process answers. Checks no dependency, so an outage of the database or the "
        "broker never gets a healthy process restarted. Also answers HEAD.",
    )
    def get(self, request: Request) -> Response:
        return Response(
            {"status": "ok", "version": settings.VERSION, "uptime_s": int(time.monotonic() - _STARTED)}
        )


class ReadyView(_Probe):
    @extend_schema(
        tags=["Health"],
        auth=[],
        responses={(200, "application/json"): _READY, (503, "application/json"): _READY},
        description="Readiness: the database and the broker answer, and a worker and the scheduler are alive "
        "(the sweeper's and the schedule ticker's last runs are younger than SPINDLE_READY_MAX_AGE_S, 30 s by "
        "default). Answers 503 with the same body, naming what is down. Also answers HEAD.",
    )
    def get(self, request: Request) -> Response:
        services = {"database": _check_database(), "broker": _check_broker()}
        services.update({service: _check_mark(mark) for service, mark in _MARKS.items()})
        return _answer(services)


livez = LiveView.as_view()
readyz = ReadyView.as_view()
