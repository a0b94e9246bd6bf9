"""The SDK's auth, api-keys, billing, queues, workers and health calls against a live server, and the documented
errors for bad input."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from django.core import mail

from accounts.models import ApiKey
from tests.spooled.conftest import METRICS_TOKEN, sdk_client
from tests.spooled.sdk_alias import sdk

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]
errors = sdk.errors


def test_login_refresh_me_and_token_use(spooled_client, base_url: str, live_key: str) -> None:
    tokens = spooled_client.auth.login({"api_key": live_key})
    assert tokens.token_type == "Bearer" and tokens.expires_in > 0
    with sdk_client(base_url, None, access_token=tokens.access_token) as by_token:
        me = by_token.auth.me()
        assert me.organization_id == spooled_client.auth.me().organization_id
        assert by_token.jobs.create({"queue_name": "t", "payload": {}}).created
    refreshed = spooled_client.auth.refresh({"refresh_token": tokens.refresh_token})
    again = spooled_client.auth.refresh({"refresh_token": tokens.refresh_token})  # not rotated: usable again
    assert refreshed.access_token and again.access_token
    assert spooled_client.auth.validate({"token": refreshed.access_token}).valid is True
    assert spooled_client.auth.validate({"token": "nope"}).valid is False
    with pytest.raises(errors.AuthenticationError):
        spooled_client.auth.login({"api_key": "rt_ws_not-a-real-key"})


def test_scoped_keys_are_enforced_here_and_on_v1(spooled_client, base_url: str) -> None:
    created = spooled_client.api_keys.create({"name": "only-a", "queues": ["a"]})
    assert created.key and created.name == "only-a"
    with sdk_client(base_url, created.key) as scoped:
        assert scoped.jobs.create({"queue_name": "a", "payload": {}}).created
        with pytest.raises(errors.AuthorizationError):
            scoped.jobs.create({"queue_name": "b", "payload": {}})
        with pytest.raises(errors.AuthorizationError):
            scoped.api_keys.create({"name": "wider"})
        assert scoped.auth.me().queues == ["a"]
    headers = {"Authorization": f"Bearer {created.key}"}
    assert httpx.get(f"{base_url}/v1/queues/a", headers=headers).status_code == 200
    assert httpx.get(f"{base_url}/v1/queues/b", headers=headers).status_code == 403
    assert httpx.get(f"{base_url}/v1/jobs", headers=headers).status_code == 403
    expiring = spooled_client.api_keys.create(
        {"name": "soon", "expires_at": datetime.now(UTC) + timedelta(hours=1)}
    )
    ApiKey.objects.filter(id=expiring.id).update(expires_at=datetime.now(UTC) - timedelta(seconds=1))
    with sdk_client(base_url, expiring.key) as expired, pytest.raises(errors.AuthenticationError):
        expired.jobs.list()
    assert (
        httpx.get(f"{base_url}/v1/jobs", headers={"Authorization": f"Bearer {expiring.key}"}).status_code
        == 401
    )
    listed = {k.id: k for k in spooled_client.api_keys.list()}
    assert listed[created.id].queues == ["a"]
    spooled_client.api_keys.update(created.id, {"name": "renamed"})
    assert spooled_client.api_keys.get(created.id).name == "renamed"
    spooled_client.api_keys.delete(created.id)
    assert spooled_client.api_keys.get(created.id).is_active is False


def test_email_login_sends_a_code_through_django_mail(spooled_client, settings, workspace_key) -> None:
    # The live server's mail goes to its console backend; the flow is checked in-process with locmem.
    from spooled import auth

    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    workspace = workspace_key[0]
    from django.contrib.auth import get_user_model

    user = get_user_model().objects.create_user(username="u1", email="u1@example.com", password="x" * 12)
    workspace.owner = user
    workspace.save()
    auth.email_login_start("U1@example.com")
    assert len(mail.outbox) == 1
    code = next(word.rstrip(".") for word in mail.outbox[0].body.split() if word.rstrip(".").isdigit())
    with pytest.raises(auth.Unauthorized):
        auth.email_login_verify("u1@example.com", "000000" if code != "000000" else "111111")
    assert auth.email_login_verify("u1@example.com", code).access
    with pytest.raises(auth.Unauthorized):
        auth.email_login_verify("u1@example.com", code)  # used once
    started = spooled_client.auth.start_email_login("nobody@example.com")
    assert started.message


def test_queues_workers_billing_health(spooled_client) -> None:
    config = spooled_client.queues.update_config(
        "fresh", {"max_retries": 2, "default_timeout": 60, "rate_limit": 5}
    )
    assert (config.queue_name, config.max_retries, config.default_timeout, config.rate_limit) == (
        "fresh",
        2,
        60,
        5,
    )
    assert [q.queue_name for q in spooled_client.queues.list()] == ["fresh"]
    assert spooled_client.queues.get("fresh").enabled is True
    paused = spooled_client.queues.pause("fresh", reason="maintenance")
    assert paused.paused is True and spooled_client.queues.get("fresh").enabled is False
    assert spooled_client.queues.resume("fresh").resumed is True
    stats = spooled_client.queues.get_stats("fresh")
    assert (stats.pending_jobs, stats.active_workers) == (0, 0)
    worker = spooled_client.workers.register(
        {"queue_name": "fresh", "hostname": "h", "worker_id": "stable-1"}
    )
    again = spooled_client.workers.register({"queue_name": "fresh", "hostname": "h", "worker_id": "stable-1"})
    assert again.id == worker.id  # upsert by the worker's own id
    spooled_client.workers.heartbeat(worker.id, {"current_jobs": 0, "status": "draining"})
    assert [w.status for w in spooled_client.workers.list()] == ["draining"]
    assert spooled_client.queues.get_stats("fresh").active_workers == 1
    spooled_client.queues.delete("fresh")
    with pytest.raises(errors.NotFoundError):
        spooled_client.queues.get("fresh")
    status = spooled_client.billing.get_status()
    assert (status.plan_tier, status.has_stripe_customer) == ("pro", False)
    assert spooled_client.health.get().status == "healthy"
    assert spooled_client.health.liveness() is True


def test_bad_inputs_get_documented_errors(spooled_client, base_url: str, live_key: str) -> None:
    headers = {"Authorization": f"Bearer {live_key}"}
    with pytest.raises(errors.NotFoundError) as missing:
        spooled_client.jobs.get("job_nope")
    assert missing.value.code == "NOT_FOUND" and missing.value.request_id
    with pytest.raises(errors.ValidationError) as invalid:
        spooled_client.jobs.create({"queue_name": "bad name!", "payload": {}})
    assert invalid.value.status_code == 422 and invalid.value.code == "VALIDATION_ERROR"
    # What the SDK refuses on the spooled_client is refused here too (raw HTTP).
    cases = [
        ("POST", "/api/v1/jobs", {"queue_name": "q"}),  # no payload
        ("POST", "/api/v1/jobs", {"queue_name": "q", "payload": {}, "priority": 101}),
        ("POST", "/api/v1/jobs", {"queue_name": "q", "payload": {}, "expires_at": "2030-01-01T00:00:00Z"}),
        ("POST", "/api/v1/jobs", {"queue_name": "q", "payload": {}, "surprise": 1}),
        ("POST", "/api/v1/jobs/claim", {"queue_name": "q", "worker_id": "w", "limit": 0}),
        ("POST", "/api/v1/jobs/job_x/complete", {"worker_id": "w"}),  # no lease_id
        ("GET", "/api/v1/jobs?limit=101", None),
        ("GET", "/api/v1/jobs?status=bogus", None),
        ("POST", "/api/v1/jobs/dlq/purge", {}),
    ]
    for method, path, body in cases:
        response = httpx.request(method, base_url + path, json=body, headers=headers)
        assert response.status_code == 422, (path, body, response.text)
        assert set(response.json()) == {"code", "message", "details"}
    unknown = httpx.get(base_url + "/api/v1/no-such-route", headers=headers)
    assert (unknown.status_code, unknown.json()["code"]) == (404, "NOT_FOUND")
    assert httpx.get(base_url + "/api/v1/jobs").status_code == 401
    # /v1 keeps its own envelope.
    assert "error" in httpx.get(base_url + "/v1/jobs/job_nope", headers=headers).json()


def test_the_remaining_client_calls(spooled_client, base_url: str, live_key: str, workspace_key) -> None:
    job = spooled_client.jobs.create_and_get(
        {"queue_name": "misc", "payload": {"k": "v"}, "tags": {"team": "a"}}
    )
    assert (job.status, job.tags) == ("pending", ["team:a"])
    with pytest.raises(errors.ConflictError):
        spooled_client.queues.delete("misc")  # it still holds a pending job
    spooled_client.queues.delete("misc", delete_jobs=True)
    assert list(spooled_client.jobs.list()) == []
    tokens = spooled_client.auth.login({"api_key": live_key})
    spooled_client.auth.logout(tokens.refresh_token)
    with pytest.raises(errors.AuthenticationError):
        spooled_client.auth.refresh({"refresh_token": tokens.refresh_token})
    org = workspace_key[0].id
    assert [o.id for o in spooled_client.organizations.list()] == [org]
    assert spooled_client.organizations.get(org).plan_tier == "pro"
    assert "spindle" in spooled_client.metrics.get(token=METRICS_TOKEN)
    with pytest.raises(errors.AuthorizationError):
        spooled_client.metrics.get()  # an API key is not the metrics token
    with pytest.raises(errors.NotFoundError):
        spooled_client.dashboard.get()  # not served: see the closing note of issue 16


def test_the_async_client_uses_the_same_paths(base_url: str, live_key: str) -> None:
    async def run() -> tuple[str, str]:
        async with sdk.AsyncSpooledClient(api_key=live_key, base_url=base_url) as client:
            created = await client.jobs.create({"queue_name": "async", "payload": [1, 2]})
            job = await client.jobs.get(created.id)
            return job.status, (await client.queues.get("async")).queue_name

    assert asyncio.run(run()) == ("pending", "async")
