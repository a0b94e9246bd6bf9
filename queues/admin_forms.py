"""Admin change forms that validate through the API's own input serializers, so no admin edit can store what
the API would refuse (a bad row would 500 the customer's next request, or break the response schema).

`ApiValidatedForm` runs its serializer over the whole object (the form's values, and the stored ones for fields
the form does not show), maps the serializer's errors onto the form's fields, and writes the serializer's
cleaned values back. Apps subclass it per model; `QueueAdminForm` is the queues' one.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

from django import forms
from django.contrib import admin
from django.db.models import Model
from django.http import HttpRequest
from rest_framework import serializers

from config.exceptions import ValidationFailed

from .masking import target_masked, target_unmasked
from .models import DEFAULT_RETRY_POLICY, Queue
from .serializers import QueueIn
from .services import DEFAULT_ENDPOINT, LEASE_MARGIN_MS


class ViewOnlyAdmin(admin.ModelAdmin):
    """Rows the engine writes (executions, events, outbound deliveries…): staff read them. Even an unchanged
    save would write the whole row back from a stale copy, over what the engine wrote meanwhile."""

    def has_add_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        return False


def secret_hint(secret: str) -> str:
    """How the admin shows a signing secret (a queue's, an alert's, a webhook subscription's): enough to tell two
    secrets apart when a customer asks, never enough to sign with."""
    return f"whsec_…{secret[-4:]}" if secret else "—"


def _messages(detail: Any) -> list[str]:
    """Flatten a DRF error detail (a list, or a dict for nested serializers) into "path: message" lines."""
    if isinstance(detail, Mapping):
        return [f"{key}: {line}" for key, sub in detail.items() for line in _messages(sub)]
    if isinstance(detail, list):
        return [line for item in detail for line in _messages(item)]
    return [str(detail)]


class ApiValidatedForm(forms.ModelForm):
    """A ModelForm whose `clean()` also runs `serializer_class` over the object, with `api_names` mapping each
    model field the serializer checks to the serializer's name for it."""

    serializer_class: ClassVar[type[serializers.Serializer]]
    api_names: ClassVar[dict[str, str]] = {}

    def api_input(self, cleaned: dict[str, Any]) -> dict[str, Any]:
        """The serializer's body: a shown field's submitted value, else the stored one."""
        data: dict[str, Any] = {}
        for field, api_name in self.api_names.items():
            data[api_name] = cleaned[field] if field in self.fields else getattr(self.instance, field)
        return data

    def api_cleaned(self, cleaned: dict[str, Any], validated: dict[str, Any]) -> None:
        """Store the serializer's cleaned values (defaults filled in) for the shown fields."""
        for field, api_name in self.api_names.items():
            if field in self.fields and api_name in validated:
                cleaned[field] = validated[api_name]

    def add_api_errors(self, details: Mapping[str, Any]) -> None:
        by_api_name = {api_name: field for field, api_name in self.api_names.items()}
        for key, detail in details.items():
            field = by_api_name.get(key, key)
            lines = _messages(detail)
            if field in self.fields:
                self.add_error(field, lines)
            else:
                self.add_error(None, [f"{key}: {line}" for line in lines])

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean()
        if self.errors:
            return cleaned  # a field the form itself refused (bad JSON, say): fix that first
        serializer = self.serializer_class(data=self.api_input(cleaned))
        if not serializer.is_valid():
            self.add_api_errors(serializer.errors)
            return cleaned
        self.api_cleaned(cleaned, dict(serializer.validated_data))
        try:
            self.check_rules(cleaned)
        except ValidationFailed as exc:
            self.add_api_errors(exc.details or {"__all__": [exc.message]})
        return cleaned

    def check_rules(self, cleaned: dict[str, Any]) -> None:
        """Rules beyond one field's shape, as the API's service applies them; raise ValidationFailed."""

    def api_changes(self) -> dict[str, Any]:
        """The changed fields as a PATCH body, by the API's names (for admins that save through a service)."""
        return {
            api_name: self.cleaned_data[field]
            for field, api_name in self.api_names.items()
            if field in self.changed_data and field in self.cleaned_data
        }


class QueueAdminForm(ApiValidatedForm):
    """The queue through QueueIn. The endpoint's header values show masked; a masked value saved unchanged keeps
    the stored one."""

    serializer_class = QueueIn
    api_names = {
        name: name
        for name in (
            "name",
            "delivery",
            "endpoint",
            "concurrency",
            "group_concurrency",
            "rate_limit",
            "retry_policy",
            "lease_ms",
        )
    }

    class Meta:
        model = Queue
        fields = "__all__"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if not self.instance._state.adding and "endpoint" in self.fields:
            self.initial["endpoint"] = target_masked(self.instance.endpoint)

    def api_input(self, cleaned: dict[str, Any]) -> dict[str, Any]:
        data = super().api_input(cleaned)
        if not self.instance._state.adding:
            data["endpoint"] = target_unmasked(data.get("endpoint"), self.instance.endpoint)
        return data

    def api_cleaned(self, cleaned: dict[str, Any], validated: dict[str, Any]) -> None:
        super().api_cleaned(cleaned, validated)
        if "retry_policy" in cleaned:
            # As the API does: the given keys over the defaults, so the engine always finds every key.
            cleaned["retry_policy"] = {**DEFAULT_RETRY_POLICY, **(cleaned["retry_policy"] or {})}
        if "endpoint" in cleaned and cleaned["endpoint"] is not None:
            cleaned["endpoint"] = dict(cleaned["endpoint"])

    def check_rules(self, cleaned: dict[str, Any]) -> None:
        delivery = cleaned.get("delivery", self.instance.delivery)
        endpoint = cleaned.get("endpoint", self.instance.endpoint)
        if delivery == Queue.Delivery.PULL and endpoint is not None:
            raise ValidationFailed(details={"endpoint": ["A pull queue has no endpoint: set it to null."]})
        self._fit_lease(cleaned, endpoint)

    def _fit_lease(self, cleaned: dict[str, Any], endpoint: dict[str, Any] | None) -> None:
        """The API's rule (queues.services): the lease outlasts the endpoint's timeout by LEASE_MARGIN_MS; a
        lease set here that is shorter is refused, one left as it was is raised to fit."""
        if endpoint is None or not {"endpoint", "lease_ms"} & set(self.changed_data):
            return
        needed = int(endpoint.get("timeout_ms") or DEFAULT_ENDPOINT["timeout_ms"]) + LEASE_MARGIN_MS
        if cleaned.get("lease_ms", self.instance.lease_ms) >= needed:
            return
        if "lease_ms" in self.changed_data:
            raise ValidationFailed(
                details={
                    "lease_ms": [
                        f"Must be at least the endpoint timeout_ms plus {LEASE_MARGIN_MS} ms ({needed}), or a "
                        "delivery would outlive its lease and be sent twice."
                    ]
                }
            )
        cleaned["lease_ms"] = needed
