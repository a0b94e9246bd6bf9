from __future__ import annotations

from typing import Any

from rest_framework import serializers

from config.fields import StrictCharField

from .models import ApiKey, Plan, Workspace


class WorkspaceOutSerializer(serializers.ModelSerializer):
    plan = serializers.CharField(source="plan_id")

    class Meta:
        model = Workspace
        fields = ["id", "name", "plan", "is_anonymous", "created_at"]


class RegisterAnonymousInSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=200, required=False, allow_blank=False)


class RegisterInSerializer(serializers.Serializer):
    # 150: the email doubles as Django's username.
    email = serializers.EmailField(max_length=150)
    password = serializers.CharField(min_length=8, max_length=128, trim_whitespace=False, write_only=True)
    name = serializers.CharField(max_length=150)


class LoginInSerializer(serializers.Serializer):
    """Either `email` + `password` (a user) or `api_key` (a workspace key, seed 001's "exchange API key for JWT")."""

    email = serializers.CharField(max_length=254, required=False)
    password = serializers.CharField(max_length=128, trim_whitespace=False, write_only=True, required=False)
    api_key = StrictCharField(
        max_length=128,
        required=False,
        write_only=True,
        help_text="rt_ws_… instead of email/password: the tokens then act on that key's workspace.",
    )

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        if "api_key" in attrs:
            if "email" in attrs or "password" in attrs:
                raise serializers.ValidationError(
                    {"api_key": ["Give either api_key or email and password, not both."]}
                )
            return attrs
        missing = {k: ["This field is required."] for k in ("email", "password") if k not in attrs}
        if missing:
            raise serializers.ValidationError(missing)
        return attrs


class RefreshInSerializer(serializers.Serializer):
    refresh = serializers.CharField(max_length=4096)


class TokensOutSerializer(serializers.Serializer):
    access = serializers.CharField(help_text="JWT access token, valid 15 minutes")
    refresh = serializers.CharField(help_text="JWT refresh token, valid 30 days, single use")


class UserOutSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    email = serializers.EmailField()
    name = serializers.CharField(source="first_name")
    created_at = serializers.DateTimeField(source="date_joined")


class PlanOutSerializer(serializers.ModelSerializer):
    class Meta:
        model = Plan
        fields = [
            "code",
            "name",
            "requests_per_minute",
            "jobs_per_month",
            "retention_days",
            "max_queues",
            "max_schedules",
            "max_alerts",
            "max_attempts",
            "max_timeout_ms",
        ]


class ApiKeyOutSerializer(serializers.ModelSerializer):
    class Meta:
        model = ApiKey
        fields = ["id", "name", "prefix", "is_primary", "created_at", "last_used_at"]


class ApiKeyCreatedOutSerializer(ApiKeyOutSerializer):
    api_key = serializers.SerializerMethodField(help_text="The full key: shown once, never again")

    class Meta(ApiKeyOutSerializer.Meta):
        fields = [*ApiKeyOutSerializer.Meta.fields, "api_key"]

    def get_api_key(self, obj: Any) -> str:
        return self.context["raw"]


class ApiKeyInSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=100)
