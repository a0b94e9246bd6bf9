"""`GET /metrics`: Prometheus text exposition for operators (internal).

Allowed only with `Authorization: Bearer <METRICS_TOKEN>` (when the setting is non-empty) or from a client address
in `METRICS_ALLOWED_IPS` (addresses or CIDR ranges; REMOTE_ADDR, never a forwarded header a client can forge).
Everything else is 403 FORBIDDEN in the error envelope. Every number is one aggregate query that reads live or
today's rows through an index, never the history retention keeps (jobs: live states by their partial indexes;
attempts: today's per-minute rollup; deliveries: the pending backlog and today's rows), and the text is a cached
snapshot rendered at most once per METRICS_SNAPSHOT_S, however many scrapers ask.

It lives in alerts, the highest app it reads (jobs, queues and alerts' own outbound rows), so that config stays
below every app; config/urls.py routes it.
"""

from __future__ import annotations

import hmac
import ipaddress
import time
from collections.abc import Iterable
from datetime import UTC, datetime

from django.conf import settings
from django.core.cache import cache
from django.db.models import Count, Sum
from django.http import HttpResponse
from django.utils import timezone
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework.negotiation import BaseContentNegotiation
from rest_framework.request import Request
from rest_framework.views import APIView

from config.api import error_responses
from config.exceptions import Forbidden
from jobs.models import Job, JobState, Worker
from queues.models import Queue, QueueMinuteStat

from .fanout import fanout_lag_seconds
from .models import AlertNotification, WebhookDelivery

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


def _escape(value: object) -> str:
    return str(value).replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _labels(**labels: object) -> str:
    if not labels:
        return ""
    return "{" + ",".join(f'{k}="{_escape(v)}"' for k, v in labels.items()) + "}"


class _Text:
    def __init__(self) -> None:
        self.lines: list[str] = []

    def metric(
        self, name: str, kind: str, help_text: str, samples: Iterable[tuple[dict, float | int]]
    ) -> None:
        self.lines.append(f"# HELP {name} {help_text}")
        self.lines.append(f"# TYPE {name} {kind}")
        for labels, value in samples:
            self.lines.append(f"{name}{_labels(**labels)} {value}")

    def render(self) -> str:
        return "\n".join(self.lines) + "\n"


def _start_of_day_utc() -> datetime:
    return timezone.now().astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)


def render_metrics() -> str:  # not split: ROADMAP leaves it whole until the ecosystem issue replaces it
    """Every query reads live or today's rows only, through an index (never the history retention keeps)."""
    out = _Text()
    out.metric("spindle_up", "gauge", "1 while this Spindle process answers.", [({}, 1)])
    out.metric("spindle_info", "gauge", "Build information.", [({"version": settings.VERSION}, 1)])

    queues = {q["id"]: q for q in Queue.objects.values("id", "name", "workspace_id")}
    # Live states only, one arm per state so each is served by its partial index (jobs_job_ready,
    # jobs_job_delayed_due, jobs_job_active_lease); finished jobs are history, counted by the rollup below.
    arms = [
        Job.objects.filter(state=state).values_list("queue_id", "state").annotate(n=Count("id")).order_by()
        for state in (JobState.WAITING, JobState.DELAYED, JobState.ACTIVE)
    ]
    jobs = arms[0].union(*arms[1:], all=True)
    out.metric(
        "spindle_jobs",
        "gauge",
        "Live jobs (waiting, delayed, active) per queue and state.",
        [
            ({"workspace": queues[q]["workspace_id"], "queue": queues[q]["name"], "state": s}, n)
            for q, s, n in jobs
            if q in queues
        ],
    )
    per_ws = Queue.objects.values_list("workspace_id").annotate(n=Count("id")).order_by()
    out.metric(
        "spindle_queues", "gauge", "Queues per workspace.", [({"workspace": ws}, n) for ws, n in per_ws]
    )

    # Today's minutes of each queue: index jobs_stat_queue_minute_uniq (queue, minute), at most 1,440 rows a queue.
    today = _start_of_day_utc()
    stats = list(
        QueueMinuteStat.objects.filter(queue_id__in=list(queues), minute__gte=today)
        .values("queue_id")
        .annotate(
            enq=Sum("enqueued"),
            ok=Sum("completed"),
            failed=Sum("failed"),
            timeout=Sum("timeout"),
            dsum=Sum("duration_sum_ms"),
            dcount=Sum("duration_count"),
        )
        .order_by()
    )

    def per_queue(field: str, **extra: str) -> list[tuple[dict, int]]:
        return [
            (
                {
                    "workspace": queues[s["queue_id"]]["workspace_id"],
                    "queue": queues[s["queue_id"]]["name"],
                    **extra,
                },
                int(s[field] or 0),
            )
            for s in stats
            if s["queue_id"] in queues
        ]

    since = "since 00:00 UTC (resets daily; use rate/increase)"
    out.metric("spindle_jobs_enqueued_total", "counter", f"Jobs enqueued {since}.", per_queue("enq"))
    out.metric(
        "spindle_executions_total",
        "counter",
        f"Finished attempts by outcome {since}.",
        per_queue("ok", outcome="completed")
        + per_queue("failed", outcome="failed")
        + per_queue("timeout", outcome="timeout"),
    )
    out.metric(
        "spindle_execution_duration_ms_sum",
        "counter",
        f"Sum of attempt durations in ms {since}.",
        per_queue("dsum"),
    )
    out.metric(
        "spindle_execution_duration_ms_count",
        "counter",
        f"Attempts with a duration {since}.",
        per_queue("dcount"),
    )

    # Registered pull workers: silent ones are reaped by the sweeper, so the table stays small.
    workers = Worker.objects.values_list("workspace_id").annotate(n=Count("id")).order_by()
    out.metric(
        "spindle_workers", "gauge", "Registered pull workers.", [({"workspace": ws}, n) for ws, n in workers]
    )

    def outbound(
        model: type[WebhookDelivery] | type[AlertNotification], name: str, what: str
    ) -> dict[str, int]:
        """Emit the per-status gauge of one outbound table and return its counts."""
        # Pending: the backlog, via the partial index *_due; sent and failed: rows created today, via *_created.
        counts = {"pending": model.objects.filter(status="pending").count()}
        counts.update(
            model.objects.filter(created_at__gte=today)
            .exclude(status="pending")
            .values_list("status")
            .annotate(n=Count("id"))
            .order_by()
        )
        out.metric(
            name,
            "gauge",
            f"{what}: pending = waiting to be sent; success/failed = created since 00:00 UTC.",
            [({"status": s}, counts.get(s, 0)) for s in ("pending", "success", "failed")],
        )
        return counts

    deliveries = outbound(WebhookDelivery, "spindle_webhook_deliveries", "Webhook deliveries")
    out.metric(
        "spindle_webhook_deliveries_failed_total",
        "counter",
        f"Webhook deliveries that failed after every retry, created {since}.",
        [({}, deliveries.get("failed", 0))],
    )
    outbound(AlertNotification, "spindle_alert_notifications", "Alert notifications")
    out.metric(
        "spindle_events_fanout_lag_seconds",
        "gauge",
        "How far the event fan-out cursor trails now (includes the safety lag).",
        [({}, round(fanout_lag_seconds(), 3))],
    )
    return out.render()


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
