"""The SDK's gRPC client (`SpooledGrpcClient`) against `manage.py grpcserve` (package spooled.v1)."""

from __future__ import annotations

import pytest

from tests.spooled.conftest_live import *  # noqa: F403  (its fixtures: live, api_key)
from tests.spooled.conftest_live import sdk

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]

CLIENT = """
from spooled import errors
from spooled.grpc import SpooledGrpcClient
client = SpooledGrpcClient(address=ARGS["address"], api_key=ARGS["key"])
assert client.wait_for_ready(20)
q = client.queue
def refusal(call, *args, **kwargs):
    try:
        call(*args, **kwargs)
    except errors.SpooledError as exc:
        return [type(exc).__name__, getattr(exc, "code", None)]
    return None
"""


def test_unary_calls_and_their_errors(live, api_key):
    out = sdk(
        CLIENT
        + """
first = q.enqueue("emails", {"to": "a@example.com"}, priority=5, max_retries=2, idempotency_key="k1", tags={"t": "x"})
again = q.enqueue("emails", {"to": "a@example.com"}, idempotency_key="k1")
leased = q.dequeue("emails", "w-1", batch_size=5, lease_duration_secs=30)
job = leased.jobs[0]
renewed = q.renew_lease(job.id, "w-1", extension_secs=60, lease_id=job.lease_id)
wrong_lease = refusal(q.complete, job.id, "w-1", {"ok": 1}, lease_id="not-the-lease")
completed = q.complete(job.id, "w-1", {"ok": 1}, lease_id=job.lease_id)
replayed = refusal(q.complete, job.id, "w-1", {"ok": 1}, lease_id=job.lease_id)
got = q.get_job(job.id).job
doomed = q.enqueue("emails", {"n": 2}, max_retries=3)
held = q.dequeue("emails", "w-1").jobs[0]
retried = q.fail(held.id, "w-1", "transient", lease_id=held.lease_id)
status_after_retry = q.get_job(held.id).job.status
stats = q.get_queue_stats("emails")
worker = client.workers.register("emails", "host-1", worker_id="stable-7", max_concurrency=3)
beat = client.workers.heartbeat(worker.worker_id, current_jobs=0)
gone = client.workers.deregister(worker.worker_id)
done({
    "first": [first.job_id, first.created], "again": [again.job_id, again.created],
    "leased": [len(leased.jobs), job.status, job.payload, job.priority, job.max_retries, bool(job.lease_id)],
    "renewed": renewed.success and renewed.new_expires_at is not None,
    "wrong_lease": wrong_lease, "completed": completed.success, "replayed": replayed,
    "got": [got.status, got.result, got.lease_id],
    "retried": [retried.success, retried.will_retry, retried.next_retry_delay_secs >= 0, held.id == doomed.job_id],
    "status_after_retry": status_after_retry,
    "stats": [stats.completed, stats.failed, stats.total],
    "worker": [worker.worker_id, worker.heartbeat_interval_secs > 0, beat.acknowledged, gone.success],
    "errors": {
        "unknown_job": refusal(q.get_job, "job_nope"),
        "bad_queue": refusal(q.enqueue, "bad queue!", {"a": 1}),
        "no_lease": refusal(q.complete, job.id, "w-1", None, lease_id=""),
        "unknown_queue_stats": refusal(q.get_queue_stats, "never-used"),
        "unknown_worker": refusal(client.workers.heartbeat, "nobody", current_jobs=0),
        "bad_key": refusal(SpooledGrpcClient(address=ARGS["address"], api_key="rt_ws_not_a_key").queue.get_job, "x"),
    },
})
""",
        address=live.grpc_address,
        key=api_key,
    )
    assert out["first"][1] is True and out["again"] == [out["first"][0], False]
    assert out["leased"] == [1, "processing", {"to": "a@example.com"}, 5, 2, True]
    assert out["renewed"] is True
    assert out["wrong_lease"] == ["ConflictError", "LEASE_EXPIRED"]
    assert out["completed"] is True
    assert out["replayed"][0] == "ConflictError" and out["replayed"][1] != "LEASE_EXPIRED"
    assert out["got"] == ["completed", {"ok": 1}, None]
    assert out["retried"] == [True, True, True, True]
    assert out["status_after_retry"] == "failed"  # Spooled's word for "failed an attempt, waiting to retry"
    assert out["stats"] == [1, 1, 2]
    assert out["worker"] == ["stable-7", True, True, True]
    assert out["errors"] == {
        "unknown_job": ["NotFoundError", "not_found"],
        "bad_queue": ["ValidationError", "validation_error"],
        "no_lease": ["ValidationError", "validation_error"],
        "unknown_queue_stats": ["NotFoundError", "not_found"],
        "unknown_worker": ["NotFoundError", "not_found"],
        "bad_key": ["AuthenticationError", "authentication_error"],
    }


def test_stream_jobs_delivers_jobs_enqueued_while_it_waits(live, api_key):
    out = sdk(
        CLIENT
        + """
q.enqueue("feed", {"i": -1})  # the queue exists before the stream opens
first = q.dequeue("feed", "w").jobs[0]
q.complete(first.id, "w", None, lease_id=first.lease_id)
stream = q.stream_jobs("feed", "w-stream", lease_duration_secs=30)
got = []
def consume():
    for job in stream:
        q.complete(job.id, "w-stream", {"seen": job.payload["i"]}, lease_id=job.lease_id)
        got.append(job.payload["i"])
        if len(got) == 3:
            stream.cancel()
            return
reader = threading.Thread(target=consume, daemon=True)
reader.start()
time.sleep(1.0)  # the stream is idle, waiting
ids = [q.enqueue("feed", {"i": i}).job_id for i in range(3)]
reader.join(30)
done({"got": sorted(got), "statuses": [q.get_job(i).job.status for i in ids]})
""",
        address=live.grpc_address,
        key=api_key,
    )
    assert out == {"got": [0, 1, 2], "statuses": ["completed"] * 3}


def test_process_jobs_claims_and_settles_over_one_stream(live, api_key):
    out = sdk(
        CLIENT
        + """
from spooled.grpc import GrpcCompleteRequest, GrpcDequeueRequest, GrpcFailRequest, ProcessRequest
ids = [q.enqueue("bidi", {"i": i}).job_id for i in range(25)]
stream = q.process_jobs()
def dequeue():
    stream.send(ProcessRequest(dequeue=GrpcDequeueRequest(queue_name="bidi", worker_id="w", batch_size=10)))
dequeue()
completed = failed = lost = 0
no_jobs = False
first = True
for response in stream.receive():
    if response.job:
        job = response.job
        if first:  # a stale lease is answered in-band, then the right one settles it
            first = False
            stream.send(ProcessRequest(complete=GrpcCompleteRequest(job_id=job.id, worker_id="w", lease_id="stale")))
        if job.payload["i"] == 3:
            stream.send(ProcessRequest(fail=GrpcFailRequest(job_id=job.id, worker_id="w", error="no", retry=False, lease_id=job.lease_id)))
        else:
            stream.send(ProcessRequest(complete=GrpcCompleteRequest(job_id=job.id, worker_id="w", result={"i": job.payload["i"]}, lease_id=job.lease_id)))
    elif response.complete:
        completed += 1
    elif response.fail:
        failed += 1
        assert response.fail.will_retry is False
    elif response.error_code == "LEASE_EXPIRED":
        lost += 1
    elif response.error_code == "NO_JOBS":  # the third dequeue: 5 jobs, then told there are no more
        no_jobs = True
    settled = completed + failed
    if settled == 25 and no_jobs:
        break
    if (response.complete or response.fail) and settled % 10 == 0:
        dequeue()
stream.end()
statuses = {}
for i in ids:
    s = q.get_job(i).job.status
    statuses[s] = statuses.get(s, 0) + 1
done({"completed": completed, "failed": failed, "lost": lost, "no_jobs": no_jobs, "statuses": statuses})
""",
        address=live.grpc_address,
        key=api_key,
    )
    assert out == {
        "completed": 24,
        "failed": 1,
        "lost": 1,
        "no_jobs": True,
        "statuses": {"completed": 24, "deadletter": 1},
    }
