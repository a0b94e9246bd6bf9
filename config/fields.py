"""Strict DRF input fields and the strict serializer base: API.md says a wrong type is a 400, so no "10" -> 10 or
1 -> True coercion, and a key the serializer does not declare is an error rather than silently dropped."""

from __future__ import annotations

from collections.abc import Callable
from operator import attrgetter
from typing import Any

from rest_framework import serializers


class StrictIntegerField(serializers.IntegerField):
    def to_internal_value(self, data: Any) -> int:
        if isinstance(data, bool) or not isinstance(data, int):
            self.fail("invalid")
        return super().to_internal_value(data)


class StrictNumberField(serializers.FloatField):
    default_error_messages = {"invalid": "A number is required."}

    def to_internal_value(self, data: Any) -> float | int:
        if isinstance(data, bool) or not isinstance(data, (int, float)):
            self.fail("invalid")
        value = super().to_internal_value(data)
        return int(value) if isinstance(data, int) else value


class StrictBooleanField(serializers.BooleanField):
    def to_internal_value(self, data: Any) -> bool:
        if not isinstance(data, bool):
            self.fail("invalid", input=data)
        return data


class StrictCharField(serializers.CharField):
    def to_internal_value(self, data: Any) -> str:
        if not isinstance(data, str):
            self.fail("invalid")
        return super().to_internal_value(data)


class StrictSerializer(serializers.Serializer):
    """Refuses keys it does not declare, at every nesting level."""

    def to_internal_value(self, data: Any) -> Any:
        if isinstance(data, dict):
            unknown = sorted(set(data) - set(self.fields))
            if unknown:
                raise serializers.ValidationError({k: ["Unknown field."] for k in unknown})
        return super().to_internal_value(data)


def schema_readers(
    schema: type[serializers.Serializer], *, timestamp: Callable[[Any], Any]
) -> dict[str, Callable[[Any], Any]]:
    """One reader per field of a documentation serializer, in its order: the attribute of the same name, passed
    through `timestamp` for date-times. Renderers replace the entries their object computes."""
    readers: dict[str, Callable[[Any], Any]] = {}
    for name, field in schema._declared_fields.items():
        read = attrgetter(name)
        if isinstance(field, serializers.DateTimeField):
            readers[name] = lambda obj, read=read: timestamp(read(obj))
        else:
            readers[name] = read
    return readers
