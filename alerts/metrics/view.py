"""`GET /metrics`: who may read it, the shared snapshot, and the view.

Allowed only with `Authorization: Bearer <METRICS_TOKEN>` (when the setting is non-empty) or from a client address
in `METRICS_ALLOWED_IPS` (addresses or CIDR ranges; REMOTE_ADDR, never a forwarded header a client can forge).
Everything else is 403 FORBIDDEN in the error envelope. The text (collector.render_metrics) is a cached snapshot
rendered at most once per METRICS_SNAPSHOT_S, however many scrapers ask.
"""

from __future__ import annotations

import hmac
import ipaddress
import time

from django.conf import settings
from django.core.cache import cache
from django.http import HttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework.negotiation import BaseContentNegotiation
from rest_framework.request import Request
from rest_framework.views import APIView

from config.api import error_responses
from config.exceptions import Forbidden

from .collector import render_metrics

# The 0.0.4 text format, which generate_latest writes (names are all legal, so no escaping applies); every
# Prometheus server reads it.
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


class IgnoreAccept(BaseContentNegotiation):
    """Scrapers send Accept headers DRF's JSON-only renderer would answer with 406; the body is text anyway."""

    def select_parser(self, request, parsers):  # type: ignore[no-untyped-def]
        return parsers[0] if parsers else None

    def select_renderer(self, request, renderers, format_suffix=None):  # type: ignore[no-untyped-def]
        return renderers[0], renderers[0].media_type


def _allowed(request: Request) -> bool:
    token = str(getattr(settings, "METRICS_TOKEN", "") or "")
    header = request.META.get("HTTP_AUTHORIZATION", "")
    scheme, _, given = header.partition(" ")
    if token and scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode(), token.encode()):
        return True
    remote = request.META.get("REMOTE_ADDR", "")
    try:
        addr = ipaddress.ip_address(remote)
    except ValueError:
        return False
    for entry in getattr(settings, "METRICS_ALLOWED_IPS", []) or []:
        try:
            if addr in ipaddress.ip_network(str(entry).strip(), strict=False):
                return True
        except ValueError:
            continue
    return False


_SNAPSHOT_KEY = "spindle:metrics:snapshot"
_RENDER_LOCK_KEY = "spindle:metrics:rendering"


def metrics_snapshot() -> str:
    """The metrics text, rendered at most once per settings.METRICS_SNAPSHOT_S across processes and scrapers.

    The snapshot lives in the shared cache; while one process renders a new one, others serve the previous.
    """
    ttl_s = float(getattr(settings, "METRICS_SNAPSHOT_S", 0) or 0)
    if ttl_s <= 0:
        return render_metrics()
    now = time.time()
    cached = cache.get(_SNAPSHOT_KEY)
    if cached is not None and now - cached[0] < ttl_s:
        return cached[1]
    if cached is not None and not cache.add(_RENDER_LOCK_KEY, 1, timeout=30):
        return cached[1]
    try:
        text = render_metrics()
        cache.set(_SNAPSHOT_KEY, (now, text), timeout=max(ttl_s * 10, 60))
    finally:
        cache.delete(_RENDER_LOCK_KEY)
    return text


class MetricsView(APIView):
    authentication_classes: list = []
    permission_classes: list = []
    throttle_classes: list = []
    content_negotiation_class = IgnoreAccept

    @extend_schema(
        tags=["Status"],
        auth=[],
        responses={
            (200, "text/plain"): OpenApiResponse(
                response=OpenApiTypes.STR, description="Prometheus text format 0.0.4"
            ),
            **error_responses(403),
        },
        description="Prometheus metrics. Internal: `Authorization: Bearer <METRICS_TOKEN>` or a client address in "
        "`METRICS_ALLOWED_IPS`; anything else is 403 FORBIDDEN.",
    )
    def get(self, request: Request) -> HttpResponse:
        if not _allowed(request):
            raise Forbidden("Metrics are internal: send the metrics token or call from an allowed address.")
        return HttpResponse(metrics_snapshot(), content_type=CONTENT_TYPE)


metrics = MetricsView.as_view()
