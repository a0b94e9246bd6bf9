"""The SDK calls that no other test in tests/spooled drives, against a live server.

REST calls run in this process through the `spooled_sdk` alias (conftest.py); realtime and gRPC calls run in a
child interpreter (conftest_live.py). This module's REST server is conftest's with Stripe faked at its HTTP
boundary (for `billing.create_portal`) and a 1 s worker heartbeat interval (so `SpooledWorker`'s periodic
heartbeat shows within a test).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from typing import Any

import pytest
from django.contrib.auth import get_user_model

from config import liveness
from tests.billing.test_stripe import FakeStripe
from tests.endpoints import serving
from tests.events import servers
from tests.spooled.conftest import METRICS_TOKEN, sdk_client
from tests.spooled.conftest_live import *  # noqa: F403  (its fixtures: live, api_key)
from tests.spooled.conftest_live import sdk
from tests.spooled.sdk_alias import sdk as sdk_module
from tests.spooled.test_realtime_sdk import LIFE
from tests.spooled.test_sdk_worker import running, wait_for

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]
errors = sdk_module.errors


@pytest.fixture(scope="module")
def stripe() -> Iterator[FakeStripe]:
    fake = FakeStripe()
    with serving(fake.handler) as server:
        fake.base = f"http://127.0.0.1:{server.server_address[1]}"
        yield fake


@pytest.fixture(scope="module")
def base_url(django_db_setup: None, stripe: FakeStripe) -> Iterator[str]:
    """conftest's server (spooled_client and live_key use it), with Stripe and a short worker heartbeat."""
    with servers.front_server(
        threads=8,
        METRICS_TOKEN=METRICS_TOKEN,
        STRIPE_SECRET_KEY="sk_test_fake",
        STRIPE_API_BASE=stripe.base,
        BILLING_SUCCESS_URL="https://example.com/billing/success",
        BILLING_CANCEL_URL="https://example.com/billing/cancel",
        SPINDLE_WORKER_HEARTBEAT_TIMEOUT_S="3",
    ) as port:
        yield f"http://127.0.0.1:{port}"


# --- REST -------------------------------------------------------------------------------------------------


def test_jobs_retry_brings_a_dead_lettered_job_back(spooled_client) -> None:
    job_id = spooled_client.jobs.create({"queue_name": "revive", "payload": {"n": 1}, "max_retries": 0}).id
    worker = spooled_client.workers.register({"queue_name": "revive", "hostname": "h"})
    leased = spooled_client.jobs.claim({"queue_name": "revive", "worker_id": worker.id}).jobs[0]
    spooled_client.jobs.fail(
        job_id, {"worker_id": worker.id, "lease_id": leased.lease_id, "error": "gave up"}
    )
    assert spooled_client.jobs.get(job_id).status == "deadletter"
    revived = spooled_client.jobs.retry(job_id)
    assert (revived.id, revived.status, revived.queue_name, revived.payload) == (
        job_id,
        "pending",
        "revive",
        {"n": 1},
    )
    again = spooled_client.jobs.claim({"queue_name": "revive", "worker_id": worker.id}).jobs
    assert [j.id for j in again] == [job_id]
    assert list(spooled_client.jobs.dlq.list({"queue_name": "revive"})) == []


def test_health_readiness_follows_the_worker_and_scheduler_marks(spooled_client) -> None:
    # The cache is emptied before each test: no scheduler tick has been recorded, so the server is not ready.
    assert spooled_client.health.readiness() is False
    liveness.mark("sweeper")
    liveness.mark("ticker")
    assert spooled_client.health.readiness() is True
    assert spooled_client.health.liveness() is True
    health = spooled_client.health.get()
    assert (health.status, health.database, health.cache) == ("healthy", True, True)


def test_organization_members_name_the_workspace_owner(spooled_client, workspace_key) -> None:
    workspace = workspace_key[0]
    assert spooled_client.organizations.get_members(workspace.id) == []
    owner = get_user_model().objects.create_user(username="ada", email="ada@example.com", password="x" * 12)
    workspace.owner = owner
    workspace.save()
    members = spooled_client.organizations.get_members(workspace.id)
    assert [(m.user_id, m.email, m.name, m.role) for m in members] == [
        (str(owner.pk), "ada@example.com", "ada", "owner")
    ]
    with pytest.raises(errors.NotFoundError):
        spooled_client.organizations.get_members("ws_someone_else")


def test_billing_portal_through_stripe(spooled_client, stripe: FakeStripe) -> None:
    assert spooled_client.billing.get_status().has_stripe_customer is False
    portal = spooled_client.billing.create_portal({"return_url": "https://example.com/back"})
    assert portal.url.startswith("https://billing.stripe.test/p/session/")
    path, params, _ = stripe.requests[-1]
    assert path == "/v1/billing_portal/sessions"
    # The server's own return address, never the caller's (an open redirect otherwise).
    assert params["return_url"] == "https://example.com/billing/success"
    assert spooled_client.billing.get_status().has_stripe_customer is True


def test_client_level_calls(spooled_client, base_url: str, live_key: str) -> None:
    spooled_client.jobs.list()
    first = spooled_client.rate_limit
    spooled_client.jobs.list()
    second = spooled_client.rate_limit
    assert first.limit > 0 and second.limit == first.limit
    # One more request counted, unless the second one opened a new window.
    assert second.remaining < first.remaining or second.reset_epoch > first.reset_epoch
    token = spooled_client.get_jwt_token()
    assert token.count(".") == 2 and spooled_client.get_jwt_token() == token  # cached, no second login
    fresh = spooled_client.get_jwt_token(force_refresh=True)
    with sdk_client(base_url, None, access_token=fresh) as by_token:
        assert by_token.auth.me().organization_id == spooled_client.auth.me().organization_id
    with spooled_client.with_options(timeout=7.5) as derived:
        assert derived.get_config().timeout == 7.5
        made = derived.jobs.create({"queue_name": "derived", "payload": {"via": "with_options"}})
        assert spooled_client.jobs.get(made.id).payload == {"via": "with_options"}


# --- workers ----------------------------------------------------------------------------------------------


def test_worker_heartbeats_and_fails_jobs_past_their_timeout_or_the_shutdown(
    base_url: str, live_key: str
) -> None:
    client = sdk_client(base_url, live_key)
    timed = client.jobs.create(
        {"queue_name": "timed", "payload": {"n": 1}, "timeout_seconds": 1, "max_retries": 0}
    ).id
    worker = sdk_module.SpooledWorker(
        client, queue_name="timed", concurrency=2, poll_interval=0.05, shutdown_timeout=1
    )
    late: list[str] = []

    @worker.process
    def handle(ctx: Any) -> dict[str, Any]:
        ctx.signal.wait(30)  # set when the worker gives the job up
        late.append(ctx.job_id)
        return {"late": True}

    with running(worker):
        wait_for(lambda: client.jobs.get(timed).status == "deadletter", "the timed-out job")
        beat = client.workers.get(worker.worker_id).last_heartbeat
        wait_for(lambda: client.workers.get(worker.worker_id).last_heartbeat > beat, "a worker heartbeat", 10)
        held = client.jobs.create(
            {"queue_name": "timed", "payload": {"n": 2}, "timeout_seconds": 300, "max_retries": 0}
        ).id
        wait_for(lambda: client.jobs.get(held).status == "processing", "the second claim")
    wait_for(lambda: len(late) == 2, "both abandoned handlers to return", 10)
    timed_out, shut_down = client.jobs.get(timed), client.jobs.get(held)
    assert (timed_out.status, timed_out.last_error, timed_out.result) == (
        "deadletter",
        "Job timeout exceeded",
        None,
    )
    assert (shut_down.status, shut_down.last_error) == ("deadletter", "Worker shutdown timeout")
    assert sorted(late) == sorted([timed, held])  # both handlers returned later; their results were dropped
    assert list(client.workers.list()) == []


def test_async_worker_and_async_client(base_url: str, live_key: str) -> None:
    async def run() -> dict[str, Any]:
        async with sdk_module.AsyncSpooledClient(api_key=live_key, base_url=base_url) as client:
            bulk = await client.jobs.bulk_enqueue(
                {
                    "queue_name": "async-work",
                    "jobs": [{"payload": {"i": i, "fail": i == 3}} for i in range(6)],
                    "default_max_retries": 0,
                }
            )
            ids = [item.job_id for item in sorted(bulk.succeeded, key=lambda item: item.index)]
            worker = sdk_module.AsyncSpooledWorker(client, queue_name="async-work", poll_interval=0.05)

            @worker.process
            async def handle(ctx: Any) -> dict[str, Any]:
                if ctx.payload["fail"]:
                    raise RuntimeError("three fails")
                return {"double": ctx.payload["i"] * 2}

            task = asyncio.create_task(worker.start())
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                statuses = await client.jobs.batch_status(ids)
                if {s.status for s in statuses} <= {"completed", "deadletter"}:
                    break
                await asyncio.sleep(0.1)
            await worker.stop()
            await asyncio.wait_for(task, 30)
            return {
                "results": [(await client.jobs.get(i)).result for i in ids],
                "dead": [
                    (j.id, j.last_error) for j in await client.jobs.dlq.list({"queue_name": "async-work"})
                ],
                "completed_24h": (await client.queues.get_stats("async-work")).completed_jobs_24h,
                "workers": await client.workers.list(),
                "ids": ids,
            }

    out = asyncio.run(run())
    assert out["results"] == [
        {"double": 0},
        {"double": 2},
        {"double": 4},
        None,
        {"double": 8},
        {"double": 10},
    ]
    assert out["dead"] == [(out["ids"][3], "three fails")]
    assert out["completed_24h"] == 5
    assert out["workers"] == []  # deregistered on stop


# --- realtime (in a child interpreter) --------------------------------------------------------------------

REST_JOBS = """
from spooled import AsyncSpooledClient, SpooledClient, errors
client = SpooledClient(api_key=ARGS["key"], base_url=ARGS["base_url"])
def run_job(queue):
    # Enqueue, claim (with anything left waiting there) and complete, over REST.
    job_id = client.jobs.create({"queue_name": queue, "payload": {"q": queue}}).id
    worker = client.workers.register({"queue_name": queue, "hostname": "h", "worker_id": "w-" + queue})
    for job in client.jobs.claim({"queue_name": queue, "worker_id": worker.id, "limit": 10}).jobs:
        client.jobs.complete(job.id, {"worker_id": worker.id, "lease_id": job.lease_id, "result": {"ok": 1}})
    return job_id
def of_job(seen, job_id):
    return [[t, d.get("new_status")] for t, d in seen if isinstance(d, dict) and d.get("job_id") == job_id]
COMPLETED = ["job.completed", None]
def consume(stream, seen):
    def read():
        for event in stream.events():
            seen.append([event.type, event.data])
    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    return reader
def watch_two(stream, queue, other_queue):
    # Read the stream while a job runs on each queue, until the first one's completion has arrived.
    seen = []
    reader = consume(stream, seen)
    time.sleep(0.5)
    mine, other = run_job(queue), run_job(other_queue)
    wait_for(lambda: COMPLETED in of_job(seen, mine))
    time.sleep(0.5)
    return seen, reader, mine, other
"""


def test_client_realtime_sse_events_reconnect_and_websocket(live, api_key):
    out = sdk(
        REST_JOBS
        + """
from spooled.realtime import UnifiedSubscriptionFilter as Filter
run_job("rt"); run_job("elsewhere")  # both queues exist before the streams open
sse = client.realtime(type="sse", auto_reconnect=False)  # logs in: the stream's token is a JWT
token = client.get_jwt_token()
sse.connect(Filter(queue="rt"))
seen, reader, mine, other = watch_two(sse, "rt", "elsewhere")
first = {"mine": of_job(seen, mine), "other": of_job(seen, other)}
# A new filter: SSE opens a new stream, which opens with a Ping. reconnect() closes the old response under the
# old receive thread; when that thread wakes after the new stream is up, it closes the new one too and the
# client says "disconnected" (the SDK's race, seen under load). Only then is the switch made again, at most
# three times: a stream that stays connected must deliver.
switches = 0
while switches < 3:
    switches += 1
    pings = sum(1 for kind, _ in seen if kind == "ping")
    sse.reconnect(Filter(queue="elsewhere"))
    reader.join(0.2)  # events() ends only if it saw the client stopped during the switch
    if not reader.is_alive():
        reader = consume(sse, seen)
    opened = wait_for(lambda: sum(1 for kind, _ in seen if kind == "ping") > pings, 10)
    later = run_job("elsewhere")
    if wait_for(lambda: COMPLETED in of_job(seen, later)) or sse.state.value == "connected":
        break
sse.disconnect()

ws = client.realtime(type="websocket", auto_reconnect=False)
ws_seen = []
ws.on_event(lambda event: ws_seen.append([event.type, event.data]))
ws.connect()
ws.subscribe(Filter(queue="rt"))
subscribed = settled(ws, ws_seen)
skipped, got = run_job("elsewhere"), run_job("rt")
wait_for(lambda: COMPLETED in of_job(ws_seen, got))
ws.disconnect()

async def async_factory():
    async with AsyncSpooledClient(api_key=ARGS["key"], base_url=ARGS["base_url"]) as aclient:
        stream = await aclient.realtime(type="websocket", auto_reconnect=False)
        types = []
        stream.on_event(lambda event: types.append(event.type))
        stream.connect()
        for _ in range(100):
            if "ping" in types:
                break
            await asyncio.sleep(0.05)
        state = stream.state.value
        stream.disconnect()
        return [state, types[:1]]
import asyncio
done({"first": first, "later": of_job(seen, later), "opened": opened, "switches": switches,
      "jwt": token.count(".") == 2, "subscribed": subscribed,
      "ws": of_job(ws_seen, got), "ws_skipped": of_job(ws_seen, skipped), "async": asyncio.run(async_factory())})
""",
        key=api_key,
        base_url=live.base_url,
    )
    assert out["first"] == {"mine": LIFE, "other": []}
    assert out["opened"] is True, out  # the new filter's stream opened (its Ping)
    assert out["later"] == LIFE, out  # after reconnect(filter): the other queue's stream
    assert out["jwt"] is True
    assert out["subscribed"] is True
    assert out["ws"] == LIFE and out["ws_skipped"] == []
    assert out["async"] == ["connected", ["ping"]]  # the opening Ping


def test_websocket_clients_ping_subscribe_unsubscribe(live, api_key):
    out = sdk(
        REST_JOBS
        + """
import asyncio
from spooled.realtime import (AsyncWebSocketClient, ConnectionState, SubscriptionFilter, WebSocketClient,
                              WebSocketConnectionOptions)
run_job("a"); run_job("b")
token = client.get_jwt_token()
def options():
    return WebSocketConnectionOptions(ws_url=ARGS["base_url"].replace("http://", "ws://"), token=token,
                                      auto_reconnect=False)
ws = WebSocketClient(options())
pings, seen, states = [], [], []
ws.on("ping", lambda event: pings.append(event))
ws.on_event(lambda event: seen.append([event.type, event.data]))
ws.on_state_change(lambda state: states.append(state.value))
ws.connect()
wait_for(lambda: pings)  # the opening Ping
before = len(pings)
for _ in range(20):
    ws.ping()
answered = wait_for(lambda: len(pings) >= before + 20, 5)  # keep-alives alone: one a second at most
ws.subscribe(SubscriptionFilter(queue="a"))
settled_ = [applied(ws.ping, lambda: len(pings))]
in_b, in_a = run_job("b"), run_job("a")
wait_for(lambda: COMPLETED in of_job(seen, in_a))
ws.unsubscribe(SubscriptionFilter(queue="a"))
settled_.append(applied(ws.ping, lambda: len(pings)))
later_b = run_job("b")
wait_for(lambda: COMPLETED in of_job(seen, later_b))
ws.disconnect()

background = WebSocketClient(options())
background.connect_async()
in_background = wait_for(lambda: background.state == ConnectionState.CONNECTED, 10)
background.disconnect()

async def async_ws():
    got, ids = [], {}
    async with AsyncWebSocketClient(options()) as stream:
        await stream.subscribe(SubscriptionFilter(queue="a"))
        for _ in range(5):
            await stream.ping()
        def jobs():
            wait_for(lambda: [t for t, _ in got].count("ping") >= 2)  # an answer: the subscribe is applied
            ids["b"] = run_job("b")
            ids["a"] = run_job("a")
        threading.Thread(target=jobs, daemon=True).start()
        async def read():
            async for event in stream.events():
                got.append([event.type, event.data])
                if "a" in ids and COMPLETED in of_job(got, ids["a"]):
                    return
        await asyncio.wait_for(read(), 30)
        await stream.unsubscribe(SubscriptionFilter(queue="a"))
    return {"a": of_job(got, ids["a"]), "b": of_job(got, ids["b"]), "pings": [t for t, _ in got].count("ping")}

done({"answered": answered, "settled": settled_, "a": of_job(seen, in_a), "b": of_job(seen, in_b), "later_b": of_job(seen, later_b),
      "states": states, "background": in_background, "async": asyncio.run(async_ws())})
""",
        key=api_key,
        base_url=live.base_url,
    )
    assert out["answered"] is True and out["settled"] == [True, True]
    assert out["a"] == LIFE and out["b"] == [] and out["later_b"] == LIFE
    assert out["states"] == ["connecting", "connected", "disconnected"]
    assert out["background"] is True
    assert out["async"]["a"] == LIFE and out["async"]["b"] == []
    assert out["async"]["pings"] >= 6  # the opening Ping and the five answers


def test_sse_clients_queue_and_job_streams(live, api_key):
    out = sdk(
        REST_JOBS
        + """
import asyncio
from spooled.realtime import AsyncSSEClient, SSEClient
run_job("s"); run_job("t")
token = client.get_jwt_token()
stream = SSEClient(ARGS["base_url"], token, queue="s", auto_reconnect=False)
stream.connect()
seen, reader, mine, other = watch_two(stream, "s", "t")
stream.close()
reader.join(5)

# One job's stream ends by itself after the job's terminal status.
job_id = client.jobs.create({"queue_name": "s", "payload": {"n": 2}}).id
stream.reconnect(job_id=job_id)
job_seen = []
reader = consume(stream, job_seen)
time.sleep(0.5)
run_job("s")
reader.join(20)

async def async_sse():
    job_id = client.jobs.create({"queue_name": "s", "payload": {"n": 3}}).id
    got = []
    async with AsyncSSEClient(ARGS["base_url"], token, queue="t", auto_reconnect=False) as job_stream:
        await job_stream.reconnect(job_id=job_id)  # from the queue's stream onto the job's
        threading.Thread(target=lambda: (time.sleep(0.5), run_job("s")), daemon=True).start()
        async def read():
            async for event in job_stream.events():
                got.append([event.type, event.data])
        await asyncio.wait_for(read(), 30)
    return of_job(got, job_id)

done({"mine": of_job(seen, mine), "other": of_job(seen, other), "job": of_job(job_seen, job_id),
      "job_stream_ended": not reader.is_alive(), "async_job": asyncio.run(async_sse())})
""",
        key=api_key,
        base_url=live.base_url,
    )
    assert out["mine"] == LIFE and out["other"] == []
    # A job's stream reports its status as polled: a short `processing` may fall between two polls.
    assert out["job"][0] == out["async_job"][0] == ["job.status_changed", "pending"]
    assert out["job"][-1] == out["async_job"][-1] == ["job.status_changed", "completed"]
    assert out["job_stream_ended"] is True


# --- gRPC (in a child interpreter) ------------------------------------------------------------------------


def test_grpc_through_the_client_and_a_lease_renewed_on_process_jobs(live, api_key):
    out = sdk(
        """
from spooled import SpooledClient
from spooled.grpc import GrpcCompleteRequest, GrpcDequeueRequest, GrpcRenewLeaseRequest, ProcessRequest
client = SpooledClient(api_key=ARGS["key"], base_url=ARGS["base_url"], grpc_address=ARGS["address"])
g = client.grpc
assert g.wait_for_ready(20)
same, state = client.grpc is g, g.get_state()
job_id = g.queue.enqueue("renewing", {"n": 1}).job_id
stream = g.queue.process_jobs()
stream.send(ProcessRequest(dequeue=GrpcDequeueRequest(queue_name="renewing", worker_id="w", lease_duration_secs=30)))
out, job = {}, None
for response in stream.receive():
    if response.job:
        job = response.job
        renew = GrpcRenewLeaseRequest(job_id=job.id, worker_id="w", extension_secs=600, lease_id=job.lease_id)
        stream.send(ProcessRequest(renew_lease=renew))
    elif response.renew_lease:
        out["renewed"] = response.renew_lease.success
        out["extended_s"] = (response.renew_lease.new_expires_at - job.lease_expires_at).total_seconds()
        done_req = GrpcCompleteRequest(job_id=job.id, worker_id="w", result={"done": 1}, lease_id=job.lease_id)
        stream.send(ProcessRequest(complete=done_req))
    elif response.complete:
        out["completed"] = response.complete.success
        break
    else:
        out.setdefault("errors", []).append(response.error)
        break
stream.end()
rest = client.jobs.get(job_id)
client.close()
done({**out, "same": same, "state": state, "job": job.id == job_id, "rest": [rest.status, rest.result]})
""",
        address=live.grpc_address,
        key=api_key,
        base_url=live.base_url,
    )
    assert out["same"] is True and out["state"] == "ready" and out["job"] is True
    assert out["renewed"] is True and out["extended_s"] > 500
    assert out["completed"] is True and "errors" not in out
    assert out["rest"] == ["completed", {"done": 1}]
