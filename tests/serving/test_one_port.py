"""The one port (config/front.py) against a live `uvicorn config.front:app`: each finding of issue 14 that the
old hand-written proxy got wrong, plus the answers the serving layer gives itself in the envelope."""

from __future__ import annotations

import json

import pytest

from accounts.services import workspace_create
from tests.events import servers
from tests.events.servers import call
from tests.serving.conftest import body_of, raw_request, read_all, status_of

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]


def _envelope(answer: bytes, status: int, code: str) -> dict:
    assert status_of(answer) == status, answer[:400]
    error = json.loads(body_of(answer))["error"]
    assert error["code"] == code, error
    return error


def test_body_framing_cases_reach_django_whole(plans):
    """`Connection: Content-Length` lost the body (a job with a null payload); a chunked body arrives whole."""
    workspace, key = workspace_create(name="framing", plan_code="pro")
    auth = f"Authorization: Bearer {key.raw}"
    with servers.front_server() as port:
        status, _, body = call(
            "POST", f"http://127.0.0.1:{port}/v1/queues", key.raw, {"name": "work", "delivery": "pull"}
        )
        assert status == 201, body
        raw = json.dumps({"payload": {"n": 1}}).encode()
        head = (
            f"POST /v1/queues/work/jobs HTTP/1.1\r\nHost: t\r\n{auth}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(raw)}\r\nConnection: close, Content-Length"
        )
        answer = raw_request(port, head, raw)
        assert status_of(answer) == 201, answer[:400]
        assert json.loads(body_of(answer))["payload"] == {"n": 1}

        head = (
            f"POST /v1/queues/work/jobs HTTP/1.1\r\nHost: t\r\n{auth}\r\nContent-Type: application/json\r\n"
            "Transfer-Encoding: chunked\r\nConnection: close"
        )
        chunked = b"%x\r\n%s\r\n%x\r\n%s\r\n0\r\n\r\n" % (5, raw[:5], len(raw) - 5, raw[5:])
        answer = raw_request(port, head, chunked)
        assert status_of(answer) == 201, answer[:400]
        assert json.loads(body_of(answer))["payload"] == {"n": 1}


def test_oversized_bodies_are_refused_before_they_are_read(plans):
    """50 MB announced with `Expect: 100-continue`: a 413 in the envelope, never `100 Continue` first. A chunked
    body is cut off at the limit instead of being buffered whole."""
    with servers.front_server(SPINDLE_MAX_REQUEST_BYTES="65536") as port:
        head = (
            "POST /v1/auth/login HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n"
            f"Content-Length: {50 * 1024 * 1024}\r\nExpect: 100-continue"
        )
        answer = raw_request(port, head)
        assert not answer.startswith(b"HTTP/1.1 100"), answer[:200]
        assert _envelope(answer, 413, "PAYLOAD_TOO_LARGE")["details"] == {"limit_bytes": 65536}

        head = "POST /v1/auth/login HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked"
        chunk = b"%x\r\n%s\r\n" % (32768, b"x" * 32768)
        answer = raw_request(port, head, chunk * 3)
        _envelope(answer, 413, "PAYLOAD_TOO_LARGE")


def test_a_body_that_does_not_arrive_in_time_is_a_408(plans):
    with servers.front_server(SPINDLE_BODY_READ_TIMEOUT_S="1") as port:
        head = (
            "POST /v1/auth/login HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\nContent-Length: 100"
        )
        answer = raw_request(port, head, b"{", timeout_s=5)
        _envelope(answer, 408, "REQUEST_TIMEOUT")


def test_request_line_and_header_limits_and_options_star_answer_in_the_envelope(plans):
    with servers.front_server() as port:
        _envelope(raw_request(port, f"GET /v1/{'a' * 9000} HTTP/1.1\r\nHost: t"), 414, "URI_TOO_LONG")
        big = "\r\n".join(f"X-Filler-{i}: {'v' * 1000}" for i in range(40))
        _envelope(raw_request(port, f"GET /v1/health HTTP/1.1\r\nHost: t\r\n{big}"), 431, "HEADERS_TOO_LARGE")
        answer = raw_request(port, "OPTIONS * HTTP/1.1\r\nHost: t\r\nConnection: close")
        assert status_of(answer) == 200, answer[:300]
        assert "GET" in json.loads(body_of(answer))["methods"]


def test_forwarded_headers_count_only_from_configured_proxies(plans):
    """A client cannot forge its address (METRICS_ALLOWED_IPS) or HTTPS; a configured proxy can vouch for both.
    The old front forced `X-Forwarded-Proto: http` and had no notion of a trusted proxy."""
    forged = {"X-Forwarded-For": "10.1.2.3", "X-Forwarded-Proto": "https"}
    with servers.front_server(METRICS_ALLOWED_IPS="10.1.2.3") as port:
        assert call("GET", f"http://127.0.0.1:{port}/metrics", headers=forged)[0] == 403
        _, headers, _ = call("GET", f"http://127.0.0.1:{port}/admin/login/", headers=forged)
        assert "secure" not in headers.get("set-cookie", "").lower()
    with servers.front_server(METRICS_ALLOWED_IPS="10.1.2.3", SPINDLE_TRUSTED_PROXIES="127.0.0.0/8") as port:
        assert call("GET", f"http://127.0.0.1:{port}/metrics", headers=forged)[0] == 200
        _, headers, _ = call("GET", f"http://127.0.0.1:{port}/admin/login/", headers=forged)
        assert "csrftoken=" in headers["set-cookie"] and "secure" in headers["set-cookie"].lower()


def test_a_client_gone_mid_upload_costs_nothing(plans):
    import socket

    with servers.front_server() as port:
        with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
            sock.sendall(b"POST /v1/auth/login HTTP/1.1\r\nHost: t\r\nContent-Length: 1000\r\n\r\n{")
        with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
            sock.sendall(b"GET /v1/health HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
            assert read_all(sock).startswith(b"HTTP/1.1 200")


def test_requests_reuse_the_threads_cache_connections(plans):
    """Each request ran in a fresh copy of the event loop's context, and Django keeps its cache connections per
    context (asgiref Local): every request built a new Redis client and the rate limit connected to Redis anew,
    a third of an enqueue's CPU. The pool threads keep their own context now, as gunicorn's threads do."""
    import redis
    from django.conf import settings

    workspace, key = workspace_create(name="reuse", plan_code="pro")
    cache = redis.Redis.from_url(settings.CACHES["default"]["LOCATION"])
    with servers.front_server(threads=2) as port:
        base = f"http://127.0.0.1:{port}/v1/queues"
        assert call("POST", base, key.raw, {"name": "work", "delivery": "pull"})[0] == 201
        before = cache.info("stats")["total_connections_received"]
        for n in range(30):
            status, _, body = call("POST", f"{base}/work/jobs", key.raw, {"payload": {"n": n}})
            assert status == 201, body
        opened = cache.info("stats")["total_connections_received"] - before
    # At most one connection per pool thread (and the odd reconnect), never one per request.
    assert opened <= 6, f"{opened} Redis connections for 30 requests"
