"""Routes that read the per-minute rollup: a queue's metrics buckets, the sparklines and the month's usage
(thin: validate, call, render). The queue CRUD routes carry live job counts, so they live above, in
jobs.views.queues."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from django.utils import timezone
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.decorators import api_view
from rest_framework.request import Request
from rest_framework.response import Response

from billing.services import parse_period
from config.api import WorkspaceViewSet, error_responses, validated_body
from config.exceptions import BadRequest
from config.idempotency import creates
from config.inputs import DATETIME_RANGE_MESSAGE, parse_client_datetime

from . import selectors
from .serializers import MetricsSchema, SparklinesSchema, with_secret


# GET /v1/usage: documented under Billing, served here because it reads the per-minute rollup (queues.selectors).
class _CountsSerializer(serializers.Serializer):
    enqueued = serializers.IntegerField()
    total = serializers.IntegerField()
    success = serializers.IntegerField()
    failed = serializers.IntegerField()
    timeout = serializers.IntegerField()


class _QueueUsageSerializer(_CountsSerializer):
    queue = serializers.CharField()


class _DayUsageSerializer(_CountsSerializer):
    date = serializers.DateField()


UsageOut = inline_serializer(
    "UsageOut",
    fields={
        "period": inline_serializer(
            "UsagePeriod", fields={"start": serializers.DateTimeField(), "end": serializers.DateTimeField()}
        ),
        "jobs_enqueued": serializers.IntegerField(),
        "executions": inline_serializer(
            "UsageExecutions",
            fields={k: serializers.IntegerField() for k in ("total", "success", "failed", "timeout")},
        ),
        "by_queue": _QueueUsageSerializer(many=True),
        "by_day": _DayUsageSerializer(many=True),
    },
)


def secret_creating(
    body: type[serializers.Serializer],
    created: type[serializers.Serializer],
    make: Callable[..., tuple[Any, str | None]],
    render: Callable[[Any], dict[str, Any]],
    *,
    description: str,
    key: str = "secret",
) -> Callable[..., Response]:
    """The `create` action of a resource whose creation makes a signing secret (a queue, an alert, a webhook
    subscription): validate `body`, `make(workspace=, data=)` the row and its secret, answer 201 with the
    rendered row and the secret under `key`, shown in this response only. The three answer the same errors: an
    invalid body (400, 415, 422), the plan's cap (402), an Idempotency-Key reused or in flight, or a queue's name
    taken (409)."""

    @creates(body, created, errors=(400, 401, 402, 409, 415, 422), description=description)
    def create(view: WorkspaceViewSet, request: Request) -> Response:
        row, secret = make(workspace=view.workspace, data=validated_body(request, body))
        return Response(with_secret(render(row), secret, key=key), status=201)

    return create


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


@extend_schema(
    tags=["Billing"],
    parameters=[OpenApiParameter("period", str, description="Month as YYYY-MM (UTC); default: this month")],
    responses={200: UsageOut, **error_responses(400, 401, 429)},
    description="A month's usage from the usage counter and the per-minute rollup. `period.end` is exclusive.",
)
@api_view(["GET"])
def usage(request: Request) -> Response:
    period = parse_period(request.query_params.get("period"))
    return Response(selectors.usage_report(workspace=request.user.workspace, period=period))
