"""The SDK's realtime client (`SpooledRealtime`) over SSE and WebSocket, on `make run`'s one port, seeing the job
events that the SDK's gRPC client causes (enqueue, claim, complete) as Spooled's PascalCase frames."""

from __future__ import annotations

import pytest

from accounts.services import api_key_login, workspace_create
from tests.spooled.conftest_live import *  # noqa: F403  (its fixtures: live, api_key)
from tests.spooled.conftest_live import sdk

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]

REALTIME = """
from spooled import errors
from spooled.grpc import SpooledGrpcClient
from spooled.realtime import SpooledRealtime, SpooledRealtimeOptions, UnifiedSubscriptionFilter as Filter
grpc_client = SpooledGrpcClient(address=ARGS["address"], api_key=ARGS["key"])
assert grpc_client.wait_for_ready(20)
q = grpc_client.queue
def realtime(kind, token=None):
    options = SpooledRealtimeOptions(base_url=ARGS["base_url"], token=token or ARGS["token"], type=kind,
                                     auto_reconnect=False)
    client = SpooledRealtime(options)
    seen = []
    client.on_event(lambda event: seen.append([event.type, event.data]))
    return client, seen
def run_job(queue):
    job_id = q.enqueue(queue, {"q": queue}).job_id
    for job in q.dequeue(queue, "w", batch_size=10).jobs:  # with any job left waiting there before
        q.complete(job.id, "w", {"ok": True}, lease_id=job.lease_id)
    return job_id
def of_job(seen, job_id):
    return [[t, d.get("new_status")] for t, d in seen if isinstance(d, dict) and d.get("job_id") == job_id]
COMPLETED = ["job.completed", None]
"""

LIFE = [
    ["job.created", None],
    ["job.status_changed", "pending"],
    ["job.status_changed", "processing"],
    ["job.status_changed", "completed"],
    ["job.completed", None],
]


def test_sse_stream_of_a_queue_and_of_a_job(live, api_key):
    out = sdk(
        REALTIME
        + """
q.enqueue("warm", {})  # both queues exist before the streams open
client, seen = realtime("sse")
client.connect(Filter(queue="mine"))
assert client.state.value == "connected"
time.sleep(0.5)
mine, other = run_job("mine"), run_job("theirs")
wait_for(lambda: COMPLETED in of_job(seen, mine))
time.sleep(0.5)
client.disconnect()

# One job's stream: its status changes, closed by the server after the terminal one.
job_id = q.enqueue("mine", {"n": 2}).job_id
job_client, job_seen = realtime("sse")
job_client.connect(Filter(job_id=job_id))
time.sleep(0.5)
held = q.dequeue("mine", "w").jobs[0]
q.fail(held.id, "w", "gave up", retry=False, lease_id=held.lease_id)
closed = wait_for(lambda: job_client.state.value == "disconnected")

bad, _ = realtime("sse", token="rt_ws_revoked_or_unknown")
try:
    bad.connect()
    refused = None
except errors.SpooledError as exc:
    refused = type(exc).__name__
done({"mine": of_job(seen, mine), "other": of_job(seen, other), "types": sorted({t for t, _ in seen}),
      "job": of_job(job_seen, job_id), "closed": closed, "refused": refused})
""",
        address=live.grpc_address,
        key=api_key,
        token=api_key,
        base_url=live.base_url,
    )
    assert out["mine"] == LIFE
    assert out["other"] == []  # ?queue= narrows the stream
    assert "ping" in out["types"]  # the opening Ping, and the keep-alive ones
    assert [s for _, s in out["job"]][-1] == "deadletter"
    assert out["closed"] is True
    assert out["refused"] == "AuthenticationError"


def test_websocket_subscribe_unsubscribe_and_ping(live, api_key, plans):
    # The token `client.realtime()` would get from /auth/login: an access token of an API-key login.
    _, pair = api_key_login(raw_key=api_key)
    other_key = workspace_create(name="other", plan_code="pro")[1].raw
    out = sdk(
        REALTIME
        + """
import websockets.sync.client as ws
q.enqueue("a", {}); q.enqueue("b", {})
client, seen = realtime("websocket")
client.connect()
client.subscribe(Filter(queue="a"))
settled_ = [settled(client, seen)]
in_b = run_job("b")  # first: its events are all rendered by the time a's completion is seen
in_a = run_job("a")
wait_for(lambda: COMPLETED in of_job(seen, in_a))
client.unsubscribe(Filter(queue="a"))  # no subscription left: every event of the workspace again
settled_.append(settled(client, seen))
later_b = run_job("b")
wait_for(lambda: COMPLETED in of_job(seen, later_b))
client.disconnect()

# Another workspace's socket sees none of these.
foreign, foreign_seen = realtime("websocket", token=ARGS["other_key"])
foreign.connect()
time.sleep(0.5)
hidden = run_job("a")
time.sleep(1.5)
foreign.disconnect()

url = ARGS["base_url"].replace("http://", "ws://")
def reply(raw, skip=()):
    # A new stream starts SSE_LAG_S back (late commits), so the hidden job's events may come first.
    while True:
        frame = json.loads(raw.recv(timeout=5))
        data = frame.get("data")
        if not (isinstance(data, dict) and "job_id" in data) and frame["type"] not in skip:
            return frame
with ws.connect(f"{url}/api/v1/events/ws?token={ARGS['token']}") as raw:
    opening = json.loads(raw.recv(timeout=5))
    raw.send(json.dumps({"cmd": "ping"}))
    pong = reply(raw)
    raw.send(json.dumps({"cmd": "dance"}))
    unknown = reply(raw, skip=("Ping",))  # keep-alive Pings may come first
try:
    ws.connect(f"{url}/api/v1/ws?token=rt_ws_unknown").close()
    refused = None
except Exception as exc:
    refused = getattr(getattr(exc, "response", None), "status_code", repr(exc))
done({"a": of_job(seen, in_a), "b": of_job(seen, in_b), "later_b": of_job(seen, later_b), "settled": settled_,
      "foreign": of_job(foreign_seen, hidden), "opening": opening["type"], "pong": pong["type"],
      "unknown": [unknown["type"], unknown["data"]["message"]], "refused": refused})
""",
        address=live.grpc_address,
        key=api_key,
        token=pair.access,
        other_key=other_key,
        base_url=live.base_url,
    )
    assert out["settled"] == [True, True]
    assert out["a"] == LIFE
    assert out["b"] == []  # subscribed to queue a only
    assert out["later_b"] == LIFE  # unsubscribed: everything again
    assert out["foreign"] == []
    assert out["opening"] == "Ping" and out["pong"] == "Ping"
    assert out["unknown"][0] == "Error" and "Unknown command" in out["unknown"][1]
    assert out["refused"] == 401


def test_streams_share_the_workspace_cap_and_end_when_the_key_is_rotated(live, api_key):
    out = sdk(
        REALTIME
        + """
import urllib.request
import websockets.sync.client as ws
url = ARGS["base_url"].replace("http://", "ws://")
opened = []
for _ in range(10):  # SPINDLE_MAX_STREAMS_PER_WORKSPACE, shared with /v1/events
    stream, _ = realtime("sse")
    stream.connect()
    opened.append(stream)
extra, _ = realtime("sse")
try:
    extra.connect()
    capped_sse = None
except errors.SpooledError as exc:
    capped_sse = [type(exc).__name__, exc.status_code]
try:
    ws.connect(f"{url}/api/v1/ws?token={ARGS['token']}").close()
    capped_ws = None
except Exception as exc:
    capped_ws = getattr(getattr(exc, "response", None), "status_code", repr(exc))
for stream in opened:
    stream.disconnect()
time.sleep(2)  # the server notices the closed streams and gives their slots back

client, seen = realtime("websocket")
client.connect()
rotate = urllib.request.Request(
    ARGS["base_url"] + "/v1/auth/rotate-key", data=b"{}", method="POST",
    headers={"Authorization": "Bearer " + ARGS["token"], "Content-Type": "application/json"})
rotated = urllib.request.urlopen(rotate, timeout=10).status
ended = wait_for(lambda: client.state.value == "disconnected", 15)
done({"capped_sse": capped_sse, "capped_ws": capped_ws, "rotated": rotated, "ended": ended,
      "errors": [d.get("message") for t, d in seen if t == "error"]})
""",
        address=live.grpc_address,
        key=api_key,
        token=api_key,
        base_url=live.base_url,
    )
    assert out["capped_sse"] == ["RateLimitError", 429]
    assert out["capped_ws"] == 429
    assert out["rotated"] == 200 and out["ended"] is True
    assert out["errors"] and "no longer holds" in out["errors"][0]
