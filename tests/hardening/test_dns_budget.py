"""Issue 9 item 4 (DNS part): save-time SSRF lookups are shared per host and bounded in time per request.

`socket.getaddrinfo` is wrapped by a pass-through spy (the real resolver still answers) to count lookups, and, for
the budget test, to make one host answer slowly the way a tarpit DNS server would.
"""

from __future__ import annotations

import socket
import threading
import time
from typing import Any

import pytest
from django.test import override_settings

from jobs.models import Job

from .conftest import assert_envelope

BATCH = "/v1/queues/hooks/jobs/batch"

pytestmark = pytest.mark.django_db


@pytest.fixture
def push_queue(workspace):
    from queues.services import queue_create

    return queue_create(workspace=workspace, data={"name": "hooks", "delivery": "push"})[0]


@pytest.fixture
def lookups(monkeypatch) -> list[str]:
    """Every host passed to getaddrinfo; `slow.test` takes 3 s to fail, like an unanswering DNS server."""
    real = socket.getaddrinfo
    seen: list[str] = []
    lock = threading.Lock()

    def spy(host: Any, *args: Any, **kwargs: Any) -> Any:
        with lock:
            seen.append(str(host))
        if host == "slow.test":
            time.sleep(3)
            raise socket.gaierror(socket.EAI_AGAIN, "Temporary failure in name resolution")
        return real(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", spy)
    return seen


@override_settings(SPINDLE_ALLOW_PRIVATE_TARGETS=True)
def test_batch_of_1000_jobs_on_one_host_is_one_lookup(api_client, push_queue, lookups):
    jobs = [{"http": {"url": f"http://localhost:9/hook/{i}"}} for i in range(1000)]
    response = api_client.post(BATCH, {"jobs": jobs}, format="json")
    assert response.status_code == 201, response.content[:300]
    assert lookups == ["localhost"]
    assert Job.objects.count() == 1000


def test_batch_of_unresolvable_hosts_is_400_within_the_budget(api_client, push_queue, lookups):
    jobs = [{"http": {"url": f"http://h{i % 50}.invalid/x/{i}"}} for i in range(1000)]
    started = time.monotonic()
    error = assert_envelope(api_client.post(BATCH, {"jobs": jobs}, format="json"), 400, "VALIDATION_ERROR")
    assert time.monotonic() - started < 5
    assert len(lookups) <= 50  # one per distinct host at most
    assert "jobs.0.http.url" in error["details"] and "jobs.999.http.url" in error["details"]
    assert not Job.objects.exists()


@override_settings(SPINDLE_DNS_BUDGET_S=0.5)
def test_slow_dns_answers_400_when_the_budget_runs_out(api_client, push_queue, lookups):
    jobs = [{"http": {"url": f"http://slow.test/{i}"}} for i in range(1000)]
    started = time.monotonic()
    error = assert_envelope(api_client.post(BATCH, {"jobs": jobs}, format="json"), 400, "VALIDATION_ERROR")
    elapsed = time.monotonic() - started
    assert elapsed < 2, elapsed  # not 3 s (one lookup), let alone 1,000 × 3 s
    assert lookups == ["slow.test"]
    assert "in time" in error["details"]["jobs.0.http.url"][0]
    assert not Job.objects.exists()


@override_settings(SPINDLE_DNS_BUDGET_S=0.5)
def test_slow_dns_on_a_queue_endpoint_is_400_in_time(api_client, lookups):
    started = time.monotonic()
    body = {"name": "q", "delivery": "push", "endpoint": {"url": "https://slow.test/hook"}}
    error = assert_envelope(api_client.post("/v1/queues", body, format="json"), 400, "VALIDATION_ERROR")
    assert time.monotonic() - started < 2
    assert "endpoint" in error["details"]


def test_resolver_spends_no_time_after_the_budget(lookups):
    from config.netguard import DnsBudgetExceeded, Resolver

    resolver = Resolver(budget_s=0)
    with pytest.raises(DnsBudgetExceeded):
        resolver.resolve("example.invalid")
    assert lookups == [] and resolver.lookups == 0
    assert resolver.resolve("192.0.2.1") == ["192.0.2.1"]  # IP literals need no lookup
