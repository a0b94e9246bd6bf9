"""Strict input serializers and plain-function renderers for alerts, webhook subscriptions and their deliveries."""

from __future__ import annotations

from collections.abc import Callable
from operator import attrgetter
from typing import Any

from django.core.exceptions import ValidationError as DjangoValidationError
from django.core.validators import validate_email
from rest_framework import serializers

from config.exceptions import ValidationFailed
from config.fields import StrictBooleanField, StrictCharField, StrictIntegerField, schema_readers
from config.netguard import validate_target_url
from queues.events import EVENT_TYPES, iso
from queues.serializers import NAME_MESSAGE, NAME_RE

from .models import Alert, Channel, WebhookDelivery, WebhookSubscription

# Seed 003 (the alerts API): threshold 1-100, cooldown 0-10,080 minutes (one week); outside is 400.
MAX_THRESHOLD = 100
MAX_COOLDOWN_MINUTES = 10_080
MAX_EVENT_TYPES = 50


def _read_only_errors(data: Any, read_only: frozenset[str]) -> None:
    if isinstance(data, dict):
        hit = sorted(set(data) & read_only)
        if hit:
            raise serializers.ValidationError({k: ["This field is read-only."] for k in hit})


class _Strict(serializers.Serializer):
    """Unknown keys are a 400; read-only output fields get their own message."""

    read_only_names: frozenset[str] = frozenset()

    def to_internal_value(self, data: Any) -> Any:
        _read_only_errors(data, self.read_only_names)
        if isinstance(data, dict):
            unknown = sorted(set(data) - set(self.fields))
            if unknown:
                raise serializers.ValidationError({k: ["Unknown field."] for k in unknown})
        return super().to_internal_value(data)


def _url(value: str, field: str) -> str:
    try:
        return validate_target_url(value, field=field)
    except ValidationFailed as exc:
        raise serializers.ValidationError(exc.details.get(field) or [exc.message]) from None


# --- alerts --------------------------------------------------------------------------------------------------


class AlertIn(_Strict):
    """POST and PUT /v1/alerts (PATCH with partial=True). `target` is checked against `channel` by validate()."""

    read_only_names = frozenset({"id", "last_fired_at", "secret", "created_at", "updated_at"})

    name = StrictCharField(max_length=128)
    channel = serializers.ChoiceField(choices=Channel.values)
    target = StrictCharField(max_length=2048, trim_whitespace=False)
    queue = StrictCharField(max_length=64, allow_null=True, required=False)
    schedule = StrictCharField(max_length=64, allow_null=True, required=False)
    consecutive_failures_threshold = StrictIntegerField(
        min_value=1,
        max_value=MAX_THRESHOLD,
        required=False,
        help_text=f"Consecutive failed executions before the alert fires, 1-{MAX_THRESHOLD}; default 1.",
    )
    cooldown_minutes = StrictIntegerField(
        min_value=0,
        max_value=MAX_COOLDOWN_MINUTES,
        required=False,
        help_text=f"Minutes between repeat notifications while failures go on, 0-{MAX_COOLDOWN_MINUTES}; default 60.",
    )
    enabled = StrictBooleanField(required=False)

    def _name(self, value: str | None) -> str | None:
        if value is not None and not NAME_RE.match(value):
            raise serializers.ValidationError(NAME_MESSAGE)
        return value

    def validate_queue(self, value: str | None) -> str | None:
        return self._name(value)

    def validate_schedule(self, value: str | None) -> str | None:
        return self._name(value)


def alert_target_check(*, channel: str, target: str) -> str:
    """An email address for email alerts, a public http(s) URL for slack and webhook alerts."""
    if channel == Channel.EMAIL:
        try:
            validate_email(target)
        except DjangoValidationError:
            raise ValidationFailed(details={"target": ["Enter a valid email address."]}) from None
        return target
    return validate_target_url(target, field="target")


def alert_to_dict(alert: Alert) -> dict[str, Any]:
    """The alert object, field by field as AlertSchema declares it (timestamps in ISO 8601)."""
    return {name: render(alert) for name, render in _ALERT_RENDER.items()}


class AlertSchema(serializers.Serializer):
    """Documentation only: what alert_to_dict renders."""

    id = serializers.CharField(help_text="alr_…")
    name = serializers.CharField()
    channel = serializers.ChoiceField(choices=Channel.values)
    target = serializers.CharField(help_text="Email address (email) or URL (slack, webhook)")
    queue = serializers.CharField(allow_null=True, help_text="Only executions of this queue; null: any")
    schedule = serializers.CharField(allow_null=True, help_text="Only runs of this schedule; null: any")
    consecutive_failures_threshold = serializers.IntegerField()
    cooldown_minutes = serializers.IntegerField()
    enabled = serializers.BooleanField()
    firing = serializers.BooleanField(help_text="Fired and not recovered yet")
    last_fired_at = serializers.DateTimeField(allow_null=True)
    created_at = serializers.DateTimeField()
    updated_at = serializers.DateTimeField()


_ALERT_RENDER: dict[str, Callable[[Alert], Any]] = schema_readers(AlertSchema, timestamp=iso)
_ALERT_RENDER["queue"] = attrgetter("queue_name")
_ALERT_RENDER["schedule"] = attrgetter("schedule_name")


class AlertWithSecretSchema(AlertSchema):
    secret = serializers.CharField(required=False, help_text="whsec_… (webhook channel), returned once")


class AlertTestSchema(serializers.Serializer):
    sent = serializers.BooleanField(
        help_text="Always true: the test message is queued and sent off the request"
    )


# --- webhooks ------------------------------------------------------------------------------------------------


class WebhookIn(_Strict):
    """POST /v1/webhooks (PATCH with partial=True)."""

    read_only_names = frozenset(
        {"id", "secret", "failure_count", "last_failure_at", "created_at", "updated_at"}
    )

    url = StrictCharField(max_length=2048, trim_whitespace=False)
    events = serializers.ListField(
        child=StrictCharField(max_length=32), min_length=1, max_length=MAX_EVENT_TYPES
    )
    enabled = StrictBooleanField(required=False)
    description = StrictCharField(max_length=500, allow_blank=True, required=False)

    def validate_url(self, value: str) -> str:
        return _url(value, "url")

    def validate_events(self, value: list[str]) -> list[str]:
        unknown = [t for t in value if t != "*" and t not in EVENT_TYPES]
        if unknown:
            raise serializers.ValidationError(
                [f"Unknown event type '{t}'." for t in unknown]
                + [f"Known types: {', '.join(sorted(EVENT_TYPES))}, or '*'."]
            )
        if "*" in value and len(value) > 1:
            raise serializers.ValidationError("'*' subscribes to every type: give it alone.")
        return list(dict.fromkeys(value))


def webhook_to_dict(sub: WebhookSubscription) -> dict[str, Any]:
    """The subscription object, field by field as WebhookSchema declares it (timestamps in ISO 8601)."""
    return {name: render(sub) for name, render in _WEBHOOK_RENDER.items()}


class WebhookSchema(serializers.Serializer):
    id = serializers.CharField(help_text="wh_…")
    url = serializers.CharField()
    events = serializers.ListField(child=serializers.CharField(), help_text='Event types, or ["*"]')
    enabled = serializers.BooleanField()
    description = serializers.CharField()
    failure_count = serializers.IntegerField(help_text="Deliveries that failed after every retry")
    last_failure_at = serializers.DateTimeField(allow_null=True)
    created_at = serializers.DateTimeField()
    updated_at = serializers.DateTimeField()


_WEBHOOK_RENDER: dict[str, Callable[[WebhookSubscription], Any]] = schema_readers(
    WebhookSchema, timestamp=iso
)


class WebhookWithSecretSchema(WebhookSchema):
    secret = serializers.CharField(help_text="whsec_…, returned once on create")


def delivery_to_dict(d: WebhookDelivery) -> dict[str, Any]:
    """The delivery object, field by field as DeliverySchema declares it (timestamps in ISO 8601)."""
    return {name: render(d) for name, render in _DELIVERY_RENDER.items()}


class DeliverySchema(serializers.Serializer):
    id = serializers.CharField(help_text="whd_…")
    event_id = serializers.CharField()
    event_type = serializers.CharField()
    status = serializers.ChoiceField(choices=["pending", "success", "failed"])
    attempts = serializers.IntegerField()
    next_attempt_at = serializers.DateTimeField(allow_null=True)
    last_attempt_at = serializers.DateTimeField(allow_null=True)
    response_status = serializers.IntegerField(allow_null=True)
    error = serializers.CharField(allow_null=True)
    created_at = serializers.DateTimeField()


_DELIVERY_RENDER: dict[str, Callable[[WebhookDelivery], Any]] = schema_readers(DeliverySchema, timestamp=iso)
# A next attempt only while the delivery is pending; no error is null, not "".
_DELIVERY_RENDER["next_attempt_at"] = lambda d: iso(d.next_attempt_at) if d.status == "pending" else None
_DELIVERY_RENDER["error"] = lambda d: d.error or None
