"""`make run`'s one port (config.front): event streams served without a thread, everything else by the WSGI
application once its body is in, as API.md's single base URL promises."""

from __future__ import annotations

import json
import socket
import time

import pytest

from accounts.services import workspace_create
from tests.events import servers
from tests.events.servers import Stream, call, fields

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]


def _until_event(stream: Stream, event_type: str, job_id: str, timeout_s: float = 10) -> dict:
    deadline = time.monotonic() + timeout_s
    while True:
        frame = fields(stream.frames(1, timeout_s=max(0.1, deadline - time.monotonic()))[0])
        if frame.get("event") == event_type and json.loads(frame["data"])["job_id"] == job_id:
            return json.loads(frame["data"])


def test_streams_on_the_rest_port_hold_no_thread(plans):
    """12 streams through the REST port, more than gunicorn's 4 threads: REST still answers at once and a job
    enqueued through the same port shows up on every stream. (On gunicorn alone the first stream never even
    answered its headers and 9 of them made /v1/health time out.)"""
    workspace, key = workspace_create(name="front", plan_code="pro")
    auth = {"Authorization": f"Bearer {key.raw}"}
    with servers.front_server(threads=4, SPINDLE_MAX_STREAMS_PER_WORKSPACE="20") as port:
        base = f"http://127.0.0.1:{port}"
        streams = [Stream(port, "/v1/events", auth) for _ in range(12)]
        try:
            for stream in streams:
                assert stream.status == 200 and "content-type: text/event-stream" in stream.headers
                assert fields(stream.frames(2)[1])["event"] == "connected"

            started = time.monotonic()
            status, _, body = call("GET", f"{base}/v1/health")
            assert status == 200 and json.loads(body)["status"] == "ok"
            assert time.monotonic() - started < 2

            status, _, body = call("POST", f"{base}/v1/queues", key.raw, {"name": "work", "delivery": "pull"})
            assert status == 201, body
            status, _, body = call("POST", f"{base}/v1/queues/work/jobs", key.raw, {"payload": {"n": 1}})
            assert status == 201, body
            job = json.loads(body)
            for stream in streams:
                event = _until_event(stream, "job:waiting", job["id"])
                assert event["queue"] == "work"
        finally:
            for stream in streams:
                stream.close()


def test_proxy_keeps_method_body_status_and_headers(plans):
    workspace, key = workspace_create(name="proxy", plan_code="pro")
    with servers.front_server(threads=4, METRICS_ALLOWED_IPS="127.0.0.1") as port:
        base = f"http://127.0.0.1:{port}"

        # A POST with a body, and a large body both ways (about 600 KB of payload).
        status, headers, body = call(
            "POST", f"{base}/v1/queues", key.raw, {"name": "big", "delivery": "pull"}
        )
        assert status == 201 and json.loads(body)["name"] == "big"
        assert {"x-ratelimit-limit", "x-ratelimit-remaining", "x-ratelimit-reset"} <= set(headers)
        assert headers["x-ratelimit-limit"] == "300"
        big = "x" * 600_000
        status, _, body = call("POST", f"{base}/v1/queues/big/jobs", key.raw, {"payload": {"blob": big}})
        assert status == 201, body[:300]
        job_id = json.loads(body)["id"]
        status, headers, body = call("GET", f"{base}/v1/queues/big/jobs/{job_id}", key.raw)
        assert status == 200 and int(headers["content-length"]) == len(body) > 600_000
        assert json.loads(body)["payload"]["blob"] == big

        # 4xx answers keep their status, envelope and headers.
        status, _, body = call(
            "POST", f"{base}/v1/queues", key.raw, {"name": "bad", "delivery": "carrier-pigeon"}
        )
        assert status == 400 and json.loads(body)["error"]["code"] == "VALIDATION_ERROR"
        status, headers, body = call("GET", f"{base}/v1/queues")
        assert status == 401 and json.loads(body)["error"]["code"] == "UNAUTHORIZED"
        assert headers["www-authenticate"].startswith("Bearer")
        status, _, body = call("GET", f"{base}/v1/no-such-route", key.raw)
        assert status == 404 and json.loads(body)["error"]["code"] == "NOT_FOUND"
        status, _, body = call("DELETE", f"{base}/v1/queues/big", key.raw)
        assert status == 409 and json.loads(body)["error"]["code"] == "CONFLICT"

        # A chunked request body (no Content-Length) reaches Django whole.
        raw = json.dumps({"name": "chunked", "delivery": "pull"}).encode()
        with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
            sock.sendall(
                b"POST /v1/queues HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                + f"Authorization: Bearer {key.raw}\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n".encode()
                + b"%x\r\n" % 10
                + raw[:10]
                + b"\r\n"
                + b"%x\r\n" % (len(raw) - 10)
                + raw[10:]
                + b"\r\n0\r\n\r\n"
            )
            answer = b""
            while chunk := sock.recv(65536):
                answer += chunk
        assert answer.startswith(b"HTTP/1.1 201"), answer[:300]

        # `Expect: 100-continue` (curl sends it for large bodies): answered once, by the front, then the body.
        with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
            raw = json.dumps({"name": "expecting", "delivery": "pull"}).encode()
            sock.sendall(
                b"POST /v1/queues HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                + f"Authorization: Bearer {key.raw}\r\nContent-Length: {len(raw)}\r\n".encode()
                + b"Expect: 100-continue\r\nConnection: close\r\n\r\n"
            )
            assert sock.recv(65536).startswith(b"HTTP/1.1 100")
            sock.sendall(raw)
            answer = b""
            while chunk := sock.recv(65536):
                answer += chunk
        assert answer.startswith(b"HTTP/1.1 201") and answer.count(b"HTTP/1.1 ") == 1, answer[:300]

        # The WSGI app sees the peer (127.0.0.1), not a forged address (no proxy is trusted by default).
        status, _, _ = call("GET", f"{base}/metrics")
        assert status == 200
        status, _, _ = call("GET", f"{base}/metrics", headers={"X-Forwarded-For": "10.1.2.3"})
        assert status == 200
