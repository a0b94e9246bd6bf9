"""Issue 9 item 6: one bad response never aborts a delivery batch; lease vs timeout; deep flows."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.test import override_settings

from config import outbound
from jobs.models import Job
from jobs.services import delivery
from jobs.services.engine import Outcome, job_claim, jobs_record_outcomes
from tests.e2e.conftest import endpoint  # noqa: F401 - the loopback HTTP endpoint fixture
from tests.factories import insert_jobs

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize(
    "retry_after", ["9" * 5000, "99999999999999999999", "\u00b2", "Mon, 01 Jan 99999 00:00:00 GMT"]
)
def test_parse_retry_after_never_raises_and_is_bounded(retry_after):
    value = outbound.parse_retry_after(retry_after, max_s=delivery.MAX_RETRY_AFTER_S)
    assert value is None or 0 <= value <= delivery.MAX_RETRY_AFTER_S


@override_settings(SPINDLE_ALLOW_PRIVATE_TARGETS=True)
def test_one_bad_retry_after_does_not_abort_the_batch(make_queue, endpoint):  # noqa: F811
    base = endpoint.url.rsplit("/", 1)[0]

    def respond(rec):
        if rec.path == "/bad":
            # Longer than int() accepts (4300 digits): int(value) raised ValueError and the whole gather with it.
            return 503, {"Retry-After": "9" * 5000}, "{}"
        return 200, {}, '{"ok":true}'

    endpoint.respond = respond
    q = make_queue(endpoint={"url": endpoint.url, "timeout_ms": 5000})
    bad = insert_jobs(q, 1, http={"url": f"{base}/bad"}, priority=10)[0]
    good = insert_jobs(q, 2)
    jobs = job_claim(queue=q, limit=10, lease_ms=60000)
    assert len(jobs) == 3

    outcomes = {o.job_id: o for o in delivery.deliver_batch(q, jobs)}

    assert {j.id for j in good} <= {jid for jid, o in outcomes.items() if o.kind == "success"}
    assert outcomes[bad.id].kind in ("deferred", "failure")
    if outcomes[bad.id].kind == "deferred":
        assert outcomes[bad.id].retry_after_s <= delivery.MAX_RETRY_AFTER_S


def test_huge_deferral_is_bounded_not_an_overflow(make_queue):
    q = make_queue()
    insert_jobs(q, 2)
    a, b = job_claim(queue=q, limit=2, lease_ms=60000)

    lost = jobs_record_outcomes(
        outcomes=[
            Outcome(a.id, a.lease_token, "deferred", retry_after_s=1e20, http_status=503),
            Outcome(b.id, b.lease_token, "success"),
        ]
    )

    assert lost == []
    row = Job.objects.get(pk=a.id)
    assert row.state == "delayed"
    assert row.run_at <= row.updated_at + timedelta(seconds=delivery.MAX_RETRY_AFTER_S + 1)
    assert Job.objects.get(pk=b.id).state == "completed"


@pytest.mark.parametrize(
    "body",
    [
        {"endpoint": {"url": "https://93.184.215.14/hook", "timeout_ms": 30000}, "lease_ms": 1000},
        {"endpoint": {"url": "https://93.184.215.14/hook", "timeout_ms": 20000}, "lease_ms": 20000},
        {"endpoint": {"url": "https://93.184.215.14/hook"}, "lease_ms": 30000},
    ],
)
def test_lease_shorter_than_the_delivery_timeout_is_refused(api_client, body):
    response = api_client.post("/v1/queues", {"name": "short", **body}, format="json")
    assert response.status_code == 400, response.content
    error = response.json()["error"]
    assert error["code"] == "VALIDATION_ERROR" and "lease_ms" in error["details"]


def test_lease_check_on_update(api_client):
    ok = api_client.post(
        "/v1/queues",
        {"name": "long", "endpoint": {"url": "https://93.184.215.14/hook", "timeout_ms": 30000}},
        format="json",
    )
    assert ok.status_code == 201, ok.content
    response = api_client.patch("/v1/queues/long", {"lease_ms": 5000}, format="json")
    assert response.status_code == 400, response.content
    assert "lease_ms" in response.json()["error"]["details"]
    response = api_client.patch(
        "/v1/queues/long",
        {"endpoint": {"url": "https://93.184.215.14/hook", "timeout_ms": 1000}, "lease_ms": 10000},
        format="json",
    )
    assert response.status_code == 200, response.content


def test_release_parents_of_a_deep_flow_does_not_recurse(make_queue):
    depth = 2000
    q = make_queue()
    chain = insert_jobs(q, depth, state="delayed", wait_for_children=True)
    Job.objects.bulk_update(
        [Job(id=chain[i].id, parent_id=chain[i - 1].id) for i in range(1, depth)], ["parent"], batch_size=500
    )
    leaf = insert_jobs(
        q,
        1,
        state="active",
        lease_token="t" * 32,
        lease_expires_at=chain[0].run_at + timedelta(hours=1),
        attempts=1,
        max_attempts=1,
    )[0]
    Job.objects.filter(pk=leaf.pk).update(parent_id=chain[-1].id)
    leaf.refresh_from_db()
    assert jobs_record_outcomes(outcomes=[Outcome(leaf.id, leaf.lease_token, "failure", retry=False)]) == []

    assert Job.objects.get(pk=chain[0].id).state == "failed"
    assert Job.objects.filter(id__in=[j.id for j in chain], state="failed").count() == depth
