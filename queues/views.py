"""Queue metrics routes: per-queue buckets and the sparklines, from the per-minute rollup (thin: validate, call,
render). The queue CRUD routes carry live job counts, so they live above, in jobs.views.queues."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from django.utils import timezone
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework.request import Request
from rest_framework.response import Response

from config.api import WorkspaceViewSet, error_responses
from config.exceptions import BadRequest
from config.inputs import DATETIME_RANGE_MESSAGE, parse_client_datetime

from . import selectors
from .serializers import MetricsSchema, SparklinesSchema

MAX_METRIC_BUCKETS = 10_080  # a week of minutes
NAME_PARAM = OpenApiParameter("name", OpenApiTypes.STR, OpenApiParameter.PATH, description="Queue name")


def _parse_time(params: Any, key: str, default: datetime) -> datetime:
    raw = params.get(key)
    if raw in (None, ""):
        return default
    # Bounded to 1970..9999 in UTC: year 1 or 9999 at the edge made the bucket arithmetic overflow (a 500).
    value = parse_client_datetime(raw, naive_is_utc=True)
    if value is None:
        raise BadRequest(
            f"`{key}` must be an ISO 8601 date-time. {DATETIME_RANGE_MESSAGE}",
            details={key: ["Expected ISO 8601. " + DATETIME_RANGE_MESSAGE]},
        )
    return value


class QueueMetricsViewSet(WorkspaceViewSet):
    """`/v1/queues/{name}/metrics` and `/v1/metrics/sparklines`: read from the per-minute rollup, which this app
    owns. The queue CRUD routes render job counts, so they live in jobs.views.queues."""

    @extend_schema(
        tags=["Queues"],
        parameters=[
            NAME_PARAM,
            OpenApiParameter(
                "granularity", OpenApiTypes.STR, enum=["minute", "hour"], description="default minute"
            ),
            OpenApiParameter(
                "from", OpenApiTypes.DATETIME, description="default: 1 hour (minute) or 24 hours ago"
            ),
            OpenApiParameter("to", OpenApiTypes.DATETIME, description="default: now"),
        ],
        responses={200: MetricsSchema, **error_responses(400, 401, 404)},
        description="Enqueued/completed/failed counts and durations per bucket, oldest first, zeros filled.",
    )
    def metrics(self, request: Request, name: str) -> Response:
        queue = selectors.queue_get(workspace=self.workspace, name=name)
        params = request.query_params
        granularity = params.get("granularity") or "minute"
        if granularity not in ("minute", "hour"):
            raise BadRequest(
                "`granularity` must be minute or hour.", details={"granularity": ["minute or hour."]}
            )
        step = timedelta(hours=1) if granularity == "hour" else timedelta(minutes=1)
        end = _parse_time(params, "to", timezone.now())
        start = _parse_time(
            params, "from", end - (timedelta(hours=24) if granularity == "hour" else timedelta(hours=1))
        )
        if start > end:
            raise BadRequest("`from` must not be after `to`.", details={"from": ["Must not be after `to`."]})
        if (end - start) / step > MAX_METRIC_BUCKETS:
            raise BadRequest(
                f"At most {MAX_METRIC_BUCKETS} buckets per request: narrow the range or use granularity=hour.",
                details={"from": [f"At most {MAX_METRIC_BUCKETS} {granularity} buckets."]},
            )
        data = selectors.queue_metrics(queue=queue, granularity=granularity, start=start, end=end)
        return Response({"granularity": granularity, "data": data})

    @extend_schema(
        tags=["Queues"],
        responses={200: SparklinesSchema, **error_responses(401)},
        description="Per queue, completed and failed counts of the last 60 minutes, oldest minute first.",
    )
    def sparklines(self, request: Request) -> Response:
        return Response({"data": selectors.sparklines(workspace=self.workspace)})
