"""Issue 18: the Python client and `verify_delivery` against a live server (`make run`'s web process) and, for a
push delivery, a real Celery worker posting to a loopback endpoint."""

from __future__ import annotations

import json
import time

import httpx
import pytest
from spindle_client import (
    AuthenticationError,
    ConflictError,
    InvalidRequestError,
    InvalidSignature,
    Job,
    NotFoundError,
    Spindle,
    verify_delivery,
)

from tests.e2e.conftest import wait_for
from tests.events import servers
from tests.events.servers import call

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]


def fail_one(base_url: str, api_key: str, queue: str) -> str:
    """Claim the queue's next job as a pull worker and fail it without retry: it lands in the DLQ."""
    status, _, body = call("POST", f"{base_url}/v1/queues/{queue}/jobs/claim", api_key, {"limit": 1})
    assert status == 200, body
    (job,) = json.loads(body)["data"]
    fail = {"lease_token": job["lease_token"], "error": {"message": "boom"}, "retry": False}
    status, _, body = call("POST", f"{base_url}/v1/queues/{queue}/jobs/{job['id']}/fail", api_key, fail)
    assert status == 200, body
    return job["id"]


def test_enqueue_get_and_idempotent_replay(spindle):
    created = spindle.create_queue("mail")
    assert (
        created.name == "mail" and created.delivery == "pull" and created.signing_secret.startswith("whsec_")
    )

    job = spindle.enqueue("mail", {"to": "a@example.com"}, idempotency_key="k-1", tags=["signup"], priority=5)
    assert isinstance(job, Job) and job.id.startswith("job_") and job.state == "waiting"
    assert (job.payload, job.tags, job.priority, job.queue) == (
        {"to": "a@example.com"},
        ["signup"],
        5,
        "mail",
    )
    assert job.created_at is not None and job.created_at.tzinfo is not None

    replay = spindle.enqueue(
        "mail", {"to": "a@example.com"}, idempotency_key="k-1", tags=["signup"], priority=5
    )
    assert replay == job
    assert [j.id for j in spindle.jobs("mail")] == [job.id]

    with pytest.raises(InvalidRequestError) as reused:
        spindle.enqueue("mail", {"to": "b@example.com"}, idempotency_key="k-1")
    assert (reused.value.status, reused.value.code) == (422, "IDEMPOTENCY_KEY_REUSED")

    assert spindle.job("mail", job.id) == job
    delayed = spindle.enqueue("mail", None, delay_ms=60_000, name="later")
    assert delayed.state == "delayed" and delayed.name == "later"
    assert spindle.cancel("mail", delayed.id).state == "cancelled"
    assert "mail" in [q.name for q in spindle.queues()]


def test_lists_follow_next_cursor_across_pages(base_url, api_key):
    requests: list[httpx.Request] = []
    with httpx.Client(event_hooks={"request": [requests.append]}) as http:
        spindle = Spindle(api_key, base_url=base_url, http=http)
        spindle.create_queue("a")
        spindle.create_queue("b")
        ids = [spindle.enqueue("a" if n % 2 else "b", {"n": n}, tags=["t"]).id for n in range(5)]

        requests.clear()
        listed = [job.id for job in spindle.jobs(page_size=3)]
        assert listed == ids[::-1]  # newest first, every job once
        assert len(requests) == 2 and "cursor=" in str(requests[1].url)

        requests.clear()
        assert [job.id for job in spindle.jobs("a", page_size=1)] == [ids[3], ids[1]]
        assert len(requests) == 2
        assert [job.id for job in spindle.jobs(tag="t", limit=2, page_size=1)] == ids[:2:-1]
        assert [job.id for job in spindle.jobs(state="completed")] == []


def test_errors_are_typed(spindle, base_url):
    spindle.create_queue("q")
    with pytest.raises(NotFoundError) as missing:
        spindle.job("q", "job_00000000000000000000000000")
    assert (missing.value.status, missing.value.code) == (404, "NOT_FOUND") and missing.value.message

    with pytest.raises(NotFoundError):
        spindle.enqueue("no-such-queue", {})

    with pytest.raises(InvalidRequestError) as invalid:
        spindle.enqueue("q", {}, priority=1000)
    assert (invalid.value.status, invalid.value.code) == (400, "VALIDATION_ERROR")
    assert "priority" in invalid.value.details

    with pytest.raises(InvalidRequestError) as bad_query:
        list(spindle.jobs(page_size=5000))
    assert (bad_query.value.status, bad_query.value.code) == (400, "BAD_REQUEST")

    with (
        Spindle("rt_ws_not-a-key", base_url=base_url) as stranger,
        pytest.raises(AuthenticationError) as unauthorized,
    ):
        stranger.job("q", "job_x")
    assert unauthorized.value.status == 401 and unauthorized.value.code == "UNAUTHORIZED"


def test_retry_of_a_failed_job_and_the_dlq(spindle, base_url, api_key):
    spindle.create_queue("work")
    job = spindle.enqueue("work", {"n": 1})
    assert fail_one(base_url, api_key, "work") == job.id

    assert [(j.id, j.state) for j in spindle.dlq("work")] == [(job.id, "failed")]
    assert spindle.job("work", job.id).last_error["message"] == "boom"
    retried = spindle.retry("work", job.id)
    assert (retried.id, retried.state, retried.attempts) == (job.id, "waiting", 0)
    assert list(spindle.dlq("work")) == []

    with pytest.raises(ConflictError) as conflict:
        spindle.retry("work", job.id)
    assert conflict.value.code == "INVALID_STATE" and conflict.value.details["state"] == "waiting"


def test_verify_delivery_of_a_real_push(spindle, endpoint, start_worker):
    start_worker()
    queue = spindle.create_queue("hooks", delivery="push", endpoint=endpoint.url)
    job = spindle.enqueue("hooks", {"hello": "world"})
    wait_for(lambda: spindle.job("hooks", job.id).state == "completed")
    (delivery,) = endpoint.requests
    assert delivery.headers["Spindle-Job-Id"] == job.id

    verify_delivery(delivery.headers, delivery.body, queue.signing_secret)
    verify_delivery(delivery.headers, delivery.body.encode(), queue.signing_secret)
    lowered = {k.lower(): v for k, v in delivery.headers.items()}
    verify_delivery(lowered, delivery.body, queue.signing_secret)

    with pytest.raises(InvalidSignature):  # tampered
        verify_delivery(delivery.headers, delivery.body.replace("world", "w0rld"), queue.signing_secret)
    with pytest.raises(InvalidSignature):  # another queue's secret
        verify_delivery(delivery.headers, delivery.body, spindle.create_queue("other").signing_secret)
    sent_at = int(lowered["webhook-timestamp"])
    with pytest.raises(InvalidSignature):  # replayed after the tolerance
        verify_delivery(delivery.headers, delivery.body, queue.signing_secret, now=sent_at + 301)
    verify_delivery(delivery.headers, delivery.body, queue.signing_secret, now=sent_at + 299)


def test_events_resume_after_the_server_ends_the_stream(api_key):
    """gunicorn reached directly ends each stream after SPINDLE_WSGI_STREAM_MAX_S: the client reconnects with
    Last-Event-ID and gets the next event once, nothing twice."""
    with servers.gunicorn_server(threads=4, SPINDLE_WSGI_STREAM_MAX_S="1") as port:
        spindle = Spindle(api_key, base_url=f"http://127.0.0.1:{port}")
        spindle.create_queue("ev")
        first = spindle.enqueue("ev", {"n": 1})
        stream = spindle.events("ev", timeout_s=20)
        assert next(stream).job_id == first.id  # within the stream's look-back window
        time.sleep(1.5)  # the server ends this connection meanwhile
        second = spindle.enqueue("ev", {"n": 2})
        event = next(stream)
        assert (event.type, event.job_id, event.queue) == ("job:waiting", second.id, "ev")
        assert stream.connections >= 2 and stream.last_event_id == event.id
        stream.close()
