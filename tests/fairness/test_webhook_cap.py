"""Issue 9 item 5: webhook subscriptions are capped per plan (402 PLAN_LIMIT, like alerts)."""

from __future__ import annotations

import pytest

from accounts.models import Plan
from alerts.models import WebhookSubscription

pytestmark = pytest.mark.django_db

URL = "https://93.184.215.14/hooks"


def test_free_plan_allows_two_webhooks(api_client, workspace):
    for _ in range(2):
        ok = api_client.post("/v1/webhooks", {"url": URL, "events": ["job:failed"]}, format="json")
        assert ok.status_code == 201, ok.content

    refused = api_client.post("/v1/webhooks", {"url": URL, "events": ["job:failed"]}, format="json")

    assert refused.status_code == 402, refused.content
    error = refused.json()["error"]
    assert error["code"] == "PLAN_LIMIT"
    assert error["details"] == {"limit": 2, "plan": "free", "resource": "webhooks"}
    assert WebhookSubscription.objects.filter(workspace=workspace).count() == 2


def test_seeded_caps(plans):
    # Through the `plans` fixture: a transactional test run earlier in this process may have flushed the rows the
    # migration seeded (pytest-xdist runs files in any order); the fixture seeds them again with the same code.
    caps = dict(Plan.objects.values_list("code", "max_webhooks"))
    assert caps == {"free": 2, "pro": 10, "team": 50, "enterprise": None}
