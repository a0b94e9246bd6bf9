"""Idempotency: the `Idempotency-Key` header (config.idempotency) and the body `idempotency_key`."""

from __future__ import annotations

import threading
import time
from datetime import timedelta

import pytest
from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone
from rest_framework import viewsets
from rest_framework.response import Response
from rest_framework.test import APIRequestFactory, force_authenticate

from billing.models import UsageCounter
from billing.services import current_period
from config.idempotency import IdempotentMixin
from jobs.models import Job
from queues.models import Event
from tests.conftest import make_client
from tests.factories import make_queue
from tests.threads import run_in_threads

URL = "/v1/queues/emails/jobs"
# Lock waits and parallel writers need the production pair: PostgreSQL and a Redis cache.
ON_POSTGRES_AND_REDIS = pytest.mark.skipif(
    connection.vendor != "postgresql" or "redis" not in settings.CACHES["default"]["BACKEND"].lower(),
    reason="needs PostgreSQL row locks and the Redis cache",
)
BATCH_URL = "/v1/queues/emails/jobs/batch"


def _post(client, body, key=None, url=URL):
    extra = {"HTTP_IDEMPOTENCY_KEY": key} if key is not None else {}
    return client.post(url, body, format="json", **extra)


@pytest.mark.django_db
def test_header_replay_returns_first_response_and_creates_nothing(api_client, workspace, queue):
    first = _post(api_client, {"payload": 1}, key="abc")
    assert first.status_code == 201
    again = _post(api_client, {"payload": 1}, key="abc")
    assert again.status_code == 201
    assert again.json() == first.json()
    assert again["Idempotent-Replayed"] == "true"
    assert Job.objects.count() == 1
    assert Event.objects.count() == 1
    assert UsageCounter.objects.get(workspace=workspace).jobs_enqueued == 1


@pytest.mark.django_db
def test_header_replay_of_batch(api_client, queue):
    first = _post(api_client, {"jobs": [{"payload": 1}, {"payload": 2}]}, key="batch-1", url=BATCH_URL)
    again = _post(api_client, {"jobs": [{"payload": 1}, {"payload": 2}]}, key="batch-1", url=BATCH_URL)
    assert first.status_code == again.status_code == 201
    assert again.json() == first.json()
    assert Job.objects.count() == 2


@pytest.mark.django_db
def test_header_same_key_different_body_is_422(api_client, queue):
    assert _post(api_client, {"payload": 1}, key="abc").status_code == 201
    response = _post(api_client, {"payload": 2}, key="abc")
    assert response.status_code == 422
    assert response.json()["error"]["code"] == "IDEMPOTENCY_KEY_REUSED"
    assert Job.objects.count() == 1


@pytest.mark.django_db
def test_header_same_key_other_route_is_422(api_client, queue):
    assert _post(api_client, {"jobs": [{}]}, key="abc", url=BATCH_URL).status_code == 201
    response = _post(api_client, {"jobs": [{}]}, key="abc")
    assert response.status_code == 422
    assert Job.objects.count() == 1


@pytest.mark.django_db
def test_header_is_scoped_by_workspace(api_client, other_workspace_client, queue, other_queue):
    assert _post(api_client, {"payload": 1}, key="shared").status_code == 201
    other = _post(other_workspace_client, {"payload": 1}, key="shared")
    assert other.status_code == 201
    assert other.json()["id"] != Job.objects.filter(queue=queue).get().id
    assert Job.objects.count() == 2


@pytest.mark.django_db
@pytest.mark.parametrize("key", ["", "k" * 256])
def test_header_bad_key_is_400(api_client, queue, key):
    response = _post(api_client, {"payload": 1}, key=key)
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "BAD_REQUEST"
    assert Job.objects.count() == 0


@pytest.mark.django_db
def test_header_key_of_255_chars_is_fine(api_client, queue):
    assert _post(api_client, {"payload": 1}, key="k" * 255).status_code == 201


@pytest.mark.django_db
def test_header_4xx_is_stored_and_replayed(api_client, queue):
    first = _post(api_client, {"priority": 1000}, key="bad")
    assert first.status_code == 400
    again = _post(api_client, {"priority": 1000}, key="bad")
    assert again.status_code == 400
    assert again.json() == first.json()
    assert again["Idempotent-Replayed"] == "true"
    assert Job.objects.count() == 0


@pytest.mark.django_db
def test_header_unexpected_error_releases_the_key(api_client, queue, monkeypatch):
    import jobs.views.jobs as views

    def explode(**kwargs):
        raise RuntimeError("db went away")

    monkeypatch.setattr(views, "job_enqueue", explode)
    failed = _post(api_client, {"payload": 1}, key="retry-me")
    assert failed.status_code == 500
    assert failed.json()["error"]["code"] == "INTERNAL"
    monkeypatch.undo()
    retried = _post(api_client, {"payload": 1}, key="retry-me")
    assert retried.status_code == 201
    assert "Idempotent-Replayed" not in retried
    assert Job.objects.count() == 1


@ON_POSTGRES_AND_REDIS
@pytest.mark.django_db(transaction=True)
def test_header_while_first_is_in_flight_is_409(workspace, api_key, queue):
    """A real in-flight request: the first enqueue blocks on the quota row this test holds locked."""
    UsageCounter.objects.create(workspace=workspace, period=current_period(), jobs_enqueued=0)
    results: dict[str, object] = {}

    def first_request() -> None:
        try:
            results["first"] = _post(make_client(api_key), {"payload": 1}, key="slow")
        finally:
            connection.close()

    with transaction.atomic():
        UsageCounter.objects.select_for_update().get(workspace=workspace)
        thread = threading.Thread(target=first_request)
        thread.start()
        deadline = time.monotonic() + 5
        # Wait until the first request holds the in-flight marker (it then blocks on our lock).
        from django.core.cache import cache

        while time.monotonic() < deadline and not any(k for k in _cache_keys(cache)):
            time.sleep(0.02)
        second = _post(make_client(api_key), {"payload": 1}, key="slow")
        assert second.status_code == 409, second.content
        assert second.json()["error"]["code"] == "CONFLICT"
        different = _post(make_client(api_key), {"payload": 2}, key="slow")
        assert different.status_code == 422
    thread.join(10)
    assert results["first"].status_code == 201
    replay = _post(make_client(api_key), {"payload": 1}, key="slow")
    assert replay.status_code == 201 and replay.json()["id"] == results["first"].json()["id"]
    assert Job.objects.count() == 1


def _cache_keys(cache) -> list:
    client = cache._cache.get_client()
    return client.keys("*idem:*")


@pytest.mark.django_db
def test_body_key_returns_existing_job_with_200(api_client, workspace, queue):
    first = _post(api_client, {"payload": 1, "idempotency_key": "order-42"})
    assert first.status_code == 201
    again = _post(api_client, {"payload": "different", "idempotency_key": "order-42"})
    assert again.status_code == 200
    assert again.json()["id"] == first.json()["id"]
    assert again.json()["payload"] == 1
    assert Job.objects.count() == 1
    assert Event.objects.count() == 1
    assert UsageCounter.objects.get(workspace=workspace).jobs_enqueued == 1


@pytest.mark.django_db
def test_body_key_is_per_queue(api_client, workspace, queue):
    make_queue(workspace, "other")
    assert _post(api_client, {"idempotency_key": "k"}).status_code == 201
    assert _post(api_client, {"idempotency_key": "k"}, url="/v1/queues/other/jobs").status_code == 201
    assert Job.objects.count() == 2


@pytest.mark.django_db
def test_body_key_older_than_24h_creates_a_new_job(api_client, queue):
    first = _post(api_client, {"payload": 1, "idempotency_key": "order-42"})
    Job.objects.filter(id=first.json()["id"]).update(
        created_at=timezone.now() - timedelta(hours=24, seconds=1)
    )
    again = _post(api_client, {"payload": 2, "idempotency_key": "order-42"})
    assert again.status_code == 201
    assert again.json()["id"] != first.json()["id"]
    assert Job.objects.count() == 2
    assert Job.objects.get(id=first.json()["id"]).idempotency_key is None
    assert Job.objects.get(id=again.json()["id"]).idempotency_key == "order-42"


@ON_POSTGRES_AND_REDIS
@pytest.mark.django_db(transaction=True)
def test_body_key_concurrent_requests_create_one_job(workspace, api_key, queue):
    barrier = threading.Barrier(4)
    responses: list = []

    def worker() -> None:
        barrier.wait(5)
        responses.append(_post(make_client(api_key), {"payload": 1, "idempotency_key": "race"}))

    assert run_in_threads(worker, 4, timeout_s=20) == []
    assert sorted(r.status_code for r in responses) == [200, 200, 200, 201]
    assert len({r.json()["id"] for r in responses}) == 1
    assert Job.objects.count() == 1
    assert UsageCounter.objects.get(workspace=workspace).jobs_enqueued == 1


class _EchoViewSet(IdempotentMixin, viewsets.GenericViewSet):
    """A viewset of another app using the mixin: every POST creates a counter tick."""

    calls = 0

    def create(self, request):
        type(self).calls += 1
        return Response({"n": type(self).calls}, status=201)


@pytest.mark.django_db
def test_mixin_makes_create_idempotent(workspace):
    from accounts.authentication import WorkspacePrincipal

    view = _EchoViewSet.as_view({"post": "create"})
    factory = APIRequestFactory()

    def call(body, key):
        request = factory.post("/v1/echo", body, format="json", HTTP_IDEMPOTENCY_KEY=key)
        force_authenticate(request, user=WorkspacePrincipal(workspace=workspace))
        return view(request)

    first = call({"a": 1}, "m1")
    again = call({"a": 1}, "m1")
    assert first.status_code == again.status_code == 201
    assert again.data == first.data == {"n": 1}
    assert _EchoViewSet.calls == 1
    assert call({"a": 2}, "m1").status_code == 422
    assert call({"a": 1}, "m2").data == {"n": 2}
