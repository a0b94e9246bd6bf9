from __future__ import annotations

from rest_framework import serializers

from .models import Workspace


class WorkspaceOutSerializer(serializers.ModelSerializer):
    plan = serializers.CharField(source="plan_id")

    class Meta:
        model = Workspace
        fields = ["id", "name", "plan", "is_anonymous", "created_at"]


class RegisterAnonymousInSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=200, required=False, allow_blank=False)
