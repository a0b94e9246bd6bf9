from __future__ import annotations

from rest_framework import serializers


class CheckoutInSerializer(serializers.Serializer):
    plan = serializers.CharField(max_length=32, help_text="A paid plan with a Stripe price: `pro` or `team`")
