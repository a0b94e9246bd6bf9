"""Queue input validation (strict DRF serializers) and output rendering (a plain function + a doc-only schema)."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from rest_framework import serializers

from config.exceptions import ValidationFailed
from config.fields import (
    StrictBooleanField,
    StrictCharField,
    StrictIntegerField,
    StrictNumberField,
    StrictSerializer,
    schema_readers,
)
from config.netguard import validate_target_url
from queues.events import iso

from .masking import target_masked
from .models import Queue

NAME_RE = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_.:-]{0,63}$")
NAME_MESSAGE = "Use 1-64 characters: letters, digits, '_', '.', ':' or '-', starting with a letter or digit."

# Hop-by-hop headers and those the HTTP client computes itself: a queue must not be able to smuggle them.
REFUSED_HEADERS = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "proxy-connection",
        "te",
        "trailer",
        "trailers",
        "transfer-encoding",
        "upgrade",
        "host",
        "content-length",
    }
)
HEADER_NAME_RE = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]{1,256}$")
MAX_HEADERS = 50
MAX_HEADER_VALUE = 8192


class EndpointIn(StrictSerializer):
    url = StrictCharField(max_length=2048, trim_whitespace=False)
    method = serializers.ChoiceField(choices=["POST", "PUT", "PATCH", "DELETE", "GET"], default="POST")
    headers = serializers.DictField(
        child=StrictCharField(allow_blank=True, trim_whitespace=False, max_length=MAX_HEADER_VALUE),
        default=dict,
    )
    timeout_ms = StrictIntegerField(min_value=100, max_value=300_000, default=30_000)

    def validate_url(self, value: str) -> str:
        try:
            return validate_target_url(value, field="url")
        except ValidationFailed as exc:
            raise serializers.ValidationError(exc.details.get("url") or [exc.message]) from None

    def validate_headers(self, value: dict[str, str]) -> dict[str, str]:
        if len(value) > MAX_HEADERS:
            raise serializers.ValidationError(f"At most {MAX_HEADERS} headers.")
        errors = []
        seen: set[str] = set()
        for name, header_value in value.items():
            lower = name.lower()
            if not HEADER_NAME_RE.match(name):
                errors.append(f"'{name}' is not a valid header name.")
            elif lower in REFUSED_HEADERS:
                errors.append(f"'{name}' cannot be set.")
            elif lower in seen:
                errors.append(f"'{name}' is given twice.")
            elif "\r" in header_value or "\n" in header_value or "\x00" in header_value:
                errors.append(f"The value of '{name}' must not contain line breaks.")
            seen.add(lower)
        if errors:
            raise serializers.ValidationError(errors)
        return value


class RateLimitIn(StrictSerializer):
    max = StrictIntegerField(min_value=1, max_value=100_000)
    per_ms = StrictIntegerField(min_value=1, max_value=86_400_000)


class RetryPolicyIn(StrictSerializer):
    """Every key optional: the given ones are merged over the defaults (create) or the current policy (update)."""

    max_attempts = StrictIntegerField(min_value=1, max_value=100, required=False)
    backoff = serializers.ChoiceField(choices=["exponential", "fixed"], required=False)
    initial_delay_ms = StrictIntegerField(min_value=0, max_value=86_400_000, required=False)
    multiplier = StrictNumberField(min_value=1, max_value=10, required=False)
    max_delay_ms = StrictIntegerField(min_value=0, max_value=604_800_000, required=False)
    jitter = StrictBooleanField(required=False)


class QueueIn(StrictSerializer):
    """POST /v1/queues; with partial=True, PATCH /v1/queues/{name}."""

    name = StrictCharField(max_length=64)
    delivery = serializers.ChoiceField(choices=Queue.Delivery.values, default=Queue.Delivery.PUSH)
    endpoint = EndpointIn(allow_null=True, required=False)
    concurrency = StrictIntegerField(min_value=1, max_value=10_000, required=False)
    group_concurrency = StrictIntegerField(min_value=1, max_value=10_000, allow_null=True, required=False)
    rate_limit = RateLimitIn(allow_null=True, required=False)
    retry_policy = RetryPolicyIn(required=False)
    lease_ms = StrictIntegerField(min_value=1000, max_value=3_600_000, required=False)
    read_only_names: frozenset[str] = frozenset()  # set below, from the response shape

    def to_internal_value(self, data: Any) -> Any:
        if isinstance(data, dict):
            read_only = sorted(set(data) & self.read_only_names)
            if read_only:
                raise serializers.ValidationError({k: ["This field is read-only."] for k in read_only})
        return super().to_internal_value(data)

    # With partial=True (PATCH) DRF stops enforcing required keys inside nested objects too, but a nested
    # object in a PATCH replaces the whole value, so its required keys are checked here.
    def validate_endpoint(self, value: dict[str, Any] | None) -> dict[str, Any] | None:
        if value is not None and "url" not in value:
            raise serializers.ValidationError({"url": ["This field is required."]})
        return value

    def validate_rate_limit(self, value: dict[str, Any] | None) -> dict[str, Any] | None:
        if value is not None:
            missing = [k for k in ("max", "per_ms") if k not in value]
            if missing:
                raise serializers.ValidationError({k: ["This field is required."] for k in missing})
        return value

    def validate_name(self, value: str) -> str:
        if not NAME_RE.match(value):
            raise serializers.ValidationError(NAME_MESSAGE)
        return value


class PauseIn(StrictSerializer):
    job_name = StrictCharField(max_length=128, required=False, allow_null=True)


# --- output --------------------------------------------------------------------------------------------------
EMPTY_COUNTS = {"waiting": 0, "delayed": 0, "active": 0, "completed": 0, "failed": 0, "cancelled": 0}


def queue_to_dict(queue: Queue, *, counts: dict[str, int] | None = None) -> dict[str, Any]:
    """The queue object, field by field as QueueSchema declares it (timestamps in ISO 8601)."""
    out = {name: render(queue) for name, render in _RENDER.items()}
    out["counts"] = {**EMPTY_COUNTS, **(counts or {})}
    return out


def with_secret(body: dict[str, Any], secret: str | None, *, key: str = "secret") -> dict[str, Any]:
    """A resource's body plus the signing secret its request made (a queue's `signing_secret`, an alert's or a
    webhook subscription's `secret`), which only that one response shows. No secret made: the body as it is."""
    return {**body, key: secret} if secret else body


# --- documentation-only shapes (drf-spectacular) ------------------------------------------------------------
class EndpointSchema(serializers.Serializer):
    url = serializers.URLField()
    method = serializers.ChoiceField(choices=["POST", "PUT", "PATCH", "DELETE", "GET"])
    headers = serializers.DictField(
        child=serializers.CharField(),
        help_text="Values are masked on read: the first and last 4 characters around '…', or '••••…' for a "
        "value under 16 characters.",
    )
    timeout_ms = serializers.IntegerField()


class RateLimitSchema(serializers.Serializer):
    max = serializers.IntegerField()
    per_ms = serializers.IntegerField()


class RetryPolicySchema(serializers.Serializer):
    max_attempts = serializers.IntegerField()
    backoff = serializers.ChoiceField(choices=["exponential", "fixed"])
    initial_delay_ms = serializers.IntegerField()
    multiplier = serializers.FloatField()
    max_delay_ms = serializers.IntegerField()
    jitter = serializers.BooleanField()


# Jobs per state: the states are those of EMPTY_COUNTS, in its order.
CountsSchema = type(
    "CountsSchema", (serializers.Serializer,), {state: serializers.IntegerField() for state in EMPTY_COUNTS}
)


class QueueSchema(serializers.Serializer):
    name = serializers.CharField()
    delivery = serializers.ChoiceField(choices=Queue.Delivery.values)
    endpoint = EndpointSchema(allow_null=True)
    paused = serializers.BooleanField()
    paused_job_names = serializers.ListField(child=serializers.CharField())
    concurrency = serializers.IntegerField()
    group_concurrency = serializers.IntegerField(allow_null=True)
    rate_limit = RateLimitSchema(allow_null=True)
    retry_policy = RetryPolicySchema()
    lease_ms = serializers.IntegerField()
    counts = CountsSchema()
    created_at = serializers.DateTimeField()
    updated_at = serializers.DateTimeField()


class QueueWithSecretSchema(QueueSchema):
    signing_secret = serializers.CharField(help_text="whsec_… Shown once.")


class MetricsBucketSchema(serializers.Serializer):
    ts = serializers.DateTimeField()
    enqueued = serializers.IntegerField()
    completed = serializers.IntegerField()
    failed = serializers.IntegerField()
    avg_duration_ms = serializers.FloatField(allow_null=True)
    p95_duration_ms = serializers.IntegerField(allow_null=True)


class MetricsSchema(serializers.Serializer):
    granularity = serializers.ChoiceField(choices=["minute", "hour"])
    data = MetricsBucketSchema(many=True)


class SparklineSchema(serializers.Serializer):
    queue = serializers.CharField()
    completed = serializers.ListField(child=serializers.IntegerField())
    failed = serializers.ListField(child=serializers.IntegerField())


class SparklinesSchema(serializers.Serializer):
    data = SparklineSchema(many=True)


# The queue's shape is declared once, by QueueIn and the schemas above; read-only names and rendering derive.
# Response fields a body may not set, and the id (a column, never rendered): answered "read-only", not "unknown".
READ_ONLY_FIELDS = frozenset(QueueWithSecretSchema._declared_fields) - set(QueueIn._declared_fields) | {"id"}
QueueIn.read_only_names = READ_ONLY_FIELDS


_RENDER: dict[str, Callable[[Queue], Any]] = schema_readers(QueueSchema, timestamp=iso)
_RENDER["endpoint"] = lambda queue: target_masked(queue.endpoint)
_RENDER["paused_job_names"] = lambda queue: list(queue.paused_job_names or [])
_RENDER["counts"] = lambda queue: None  # per call, from the `counts` argument
