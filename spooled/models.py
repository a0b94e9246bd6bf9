"""What only the Spooled surface stores: each workspace's inbound-webhook settings, and the inbound log."""

from __future__ import annotations

from django.db import models

from config.columns import workspace_list_index
from config.ids import IdMaker

_delivery_id = IdMaker("iwd")


class IngestSettings(models.Model):
    """Per-workspace secrets of `POST /api/v1/webhooks/{org_id}/{github|stripe|custom}` and the queue that
    GitHub and Stripe deliveries go to (a custom delivery names its own). Secrets are kept as set: verifying
    an HMAC needs them."""

    workspace = models.OneToOneField(
        "accounts.Workspace", on_delete=models.CASCADE, primary_key=True, related_name="+"
    )
    queue_name = models.CharField(max_length=64, default="webhooks")
    custom_token = models.CharField(max_length=100, blank=True, default="")
    github_secret = models.CharField(max_length=200, blank=True, default="")
    stripe_secret = models.CharField(max_length=200, blank=True, default="")
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name_plural = "ingest settings"

    def __str__(self) -> str:
        return f"ingest settings of {self.workspace_id}"


class InboundDelivery(models.Model):
    """One accepted inbound delivery (without its payload or signature): `GET /api/v1/webhooks/deliveries`."""

    id = models.CharField(primary_key=True, max_length=40, default=_delivery_id, editable=False)
    workspace = models.ForeignKey(
        "accounts.Workspace", on_delete=models.CASCADE, related_name="+", db_index=False
    )
    provider = models.CharField(max_length=16)
    event_type = models.CharField(max_length=128)
    matched_queue = models.CharField(max_length=64)
    job_id = models.CharField(max_length=40)
    status = models.CharField(max_length=16)  # created | duplicate
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        indexes = [workspace_list_index("spooled_inbound_ws")]
        verbose_name_plural = "inbound deliveries"

    def __str__(self) -> str:
        return self.id
