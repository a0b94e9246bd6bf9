"""Inbound webhooks -> jobs on a live server: GitHub (X-Hub-Signature-256), Stripe (the Stripe library's
signature check) and custom (X-Webhook-Token), each with the workspace's own secret. A bad signature is 401 and
enqueues nothing."""

from __future__ import annotations

import hashlib
import hmac
import json
import time

import httpx
import pytest

from jobs.models import Job
from tests.spooled.sdk_alias import sdk

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]


@pytest.fixture
def org(spooled_client, base_url: str, live_key: str, workspace_key) -> str:
    headers = {"Authorization": f"Bearer {live_key}"}
    body = {"queue_name": "hooks", "github_secret": "gh-secret", "stripe_secret": "whsec_test"}
    answer = httpx.put(f"{base_url}/api/v1/webhooks/settings", json=body, headers=headers)
    assert answer.status_code == 200, answer.text
    assert answer.json()["github_secret_set"] is True and "gh-secret" not in answer.text
    return workspace_key[0].id


def test_github_delivery_becomes_one_job(base_url: str, org: str) -> None:
    raw = json.dumps({"action": "opened", "number": 7}).encode()
    signature = "sha256=" + hmac.new(b"gh-secret", raw, hashlib.sha256).hexdigest()
    headers = {
        "X-GitHub-Event": "pull_request",
        "X-GitHub-Delivery": "d-1",
        "Content-Type": "application/json",
    }
    url = f"{base_url}/api/v1/webhooks/{org}/github"
    bad = httpx.post(url, content=raw, headers={**headers, "X-Hub-Signature-256": "sha256=" + "0" * 64})
    assert (bad.status_code, bad.json()["code"]) == (401, "UNAUTHORIZED")
    assert httpx.post(url, content=raw, headers=headers).status_code == 401  # unsigned
    assert not Job.objects.exists()
    first = httpx.post(url, content=raw, headers={**headers, "X-Hub-Signature-256": signature})
    assert first.status_code == 202, first.text
    again = httpx.post(url, content=raw, headers={**headers, "X-Hub-Signature-256": signature})
    assert again.json() == {**first.json(), "status": "duplicate"}  # GitHub's redelivery: same job
    job = Job.objects.get()
    assert (job.queue.name, job.queue.delivery, job.name) == ("hooks", "pull", "pull_request")
    assert job.payload["body"] == {"action": "opened", "number": 7}
    # Another workspace's id, or an unknown one, answers the same 401.
    assert (
        httpx.post(f"{base_url}/api/v1/webhooks/wsp_nope/github", content=raw, headers=headers).status_code
        == 401
    )


def _stripe_signature(raw: bytes, secret: str, at: int) -> str:
    signed = hmac.new(secret.encode(), f"{at}.".encode() + raw, hashlib.sha256).hexdigest()
    return f"t={at},v1={signed}"


def test_stripe_delivery_is_checked_with_the_workspace_secret(base_url: str, org: str) -> None:
    raw = json.dumps({"id": "evt_1", "type": "invoice.paid", "data": {"object": {}}}).encode()
    url = f"{base_url}/api/v1/webhooks/{org}/stripe"
    now = int(time.time())
    wrong = httpx.post(
        url, content=raw, headers={"Stripe-Signature": _stripe_signature(raw, "whsec_other", now)}
    )
    assert wrong.status_code == 401 and not Job.objects.exists()
    stale = httpx.post(
        url, content=raw, headers={"Stripe-Signature": _stripe_signature(raw, "whsec_test", now - 3600)}
    )
    assert stale.status_code == 401 and not Job.objects.exists()
    good = httpx.post(
        url, content=raw, headers={"Stripe-Signature": _stripe_signature(raw, "whsec_test", now)}
    )
    assert good.status_code == 202, good.text
    assert Job.objects.get().payload["event"] == "invoice.paid"


def test_custom_delivery_with_the_webhook_token(spooled_client, org: str) -> None:
    token = spooled_client.organizations.get_webhook_token().webhook_token
    with pytest.raises(sdk.errors.AuthenticationError):
        spooled_client.ingest.custom(org, {"queue_name": "inbox", "payload": {"a": 1}}, webhook_token="wrong")
    assert not Job.objects.exists()
    made = spooled_client.ingest.custom(
        org,
        {"queue_name": "inbox", "payload": {"a": 1}, "event_type": "signup", "priority": 3},
        webhook_token=token,
    )
    assert made.status == "created" and spooled_client.jobs.get(made.job_id).payload == {"a": 1}
    rotated = spooled_client.organizations.regenerate_webhook_token().webhook_token
    assert rotated != token
    with pytest.raises(sdk.errors.AuthenticationError):
        spooled_client.ingest.custom(org, {"queue_name": "inbox", "payload": {}}, webhook_token=token)
    log = spooled_client.webhooks.list_inbound_deliveries()
    assert [(d.provider, d.event_type, d.job_id, d.status) for d in log] == [
        ("custom", "signup", made.job_id, "created")
    ]
