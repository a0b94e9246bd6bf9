"""deploy/nginx/spindle.conf with Debian's nginx (`make nginx` installs it) in front of a live Spindle web node.

nginx runs as the test user with a generated main config (prefix, pid, logs and temp files in the test's tmp
dir) that includes the shipped site file, only its listen port and upstream address rewritten.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from accounts.models import Plan
from accounts.services import workspace_create
from jobs.models import Job
from tests.scaleout.nodes import ROOT, api, free_port, start_nodes, stop_all, wait_http

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

NGINX = Path("/usr/sbin/nginx")
SITE = ROOT / "deploy" / "nginx" / "spindle.conf"
SLOW_UPLOADS = 8  # the attack: as many as gunicorn had threads
MAIN_CONF = """
worker_processes 1;
daemon off;
pid {prefix}/nginx.pid;
error_log {prefix}/error.log warn;
{user}
events {{ worker_connections 256; }}
http {{
    access_log off;
    client_body_temp_path {prefix}/client_body;
    proxy_temp_path {prefix}/proxy;
    fastcgi_temp_path {prefix}/fastcgi;
    uwsgi_temp_path {prefix}/uwsgi;
    scgi_temp_path {prefix}/scgi;
    include {prefix}/spindle.conf;
}}
"""


@dataclass
class Edge:
    url: str
    port: int
    upstream_port: int


@dataclass
class Front:
    url: str
    port: int
    key: str


def site_config(listen_port: int, upstream_port: int) -> str:
    """The shipped site file, on a free port in front of the test's web node."""
    text = SITE.read_text()
    for old, new in (
        ("listen 80;", f"listen 127.0.0.1:{listen_port};"),
        ("server 127.0.0.1:8000;", f"server 127.0.0.1:{upstream_port};"),
    ):
        assert text.count(old) == 1, f"{SITE} no longer has exactly one `{old}`"
        text = text.replace(old, new)
    return text


def _nginx_args(prefix: Path, port: int, upstream_port: int) -> list[str]:
    """Write the main config and the site file under `prefix`; check them with `nginx -t`; return the command."""
    prefix.mkdir()
    (prefix / "spindle.conf").write_text(site_config(port, upstream_port))
    # As root, nginx would hand its workers to `nobody`, who cannot write the temp dirs under tmp.
    user = "user root;" if os.geteuid() == 0 else ""
    (prefix / "nginx.conf").write_text(MAIN_CONF.format(prefix=prefix, user=user))
    args = [str(NGINX), "-p", str(prefix), "-c", str(prefix / "nginx.conf"), "-e", str(prefix / "error.log")]
    checked = subprocess.run([*args, "-t"], capture_output=True, text=True, check=False)
    assert checked.returncode == 0, checked.stderr
    return args


@pytest.fixture(scope="module")
def edge(tmp_path_factory) -> Iterator[Edge]:
    """One web node with nginx in front, shared by the module's tests (each test has its own workspace)."""
    assert NGINX.exists(), "nginx is missing: `make nginx` installs Debian's"
    tmp = tmp_path_factory.mktemp("edge")
    nodes = start_nodes(tmp, web=1, workers=0, env={"SPINDLE_CELERY_QUEUE": f"nginx-{uuid.uuid4().hex[:8]}"})
    proc: subprocess.Popen | None = None
    try:
        port, upstream_port = free_port(), nodes[0].port or 0
        args = _nginx_args(tmp / "nginx", port, upstream_port)
        proc = subprocess.Popen(
            args, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT, start_new_session=True
        )
        wait_http(f"http://127.0.0.1:{port}/v1/health", timeout_s=20)
        yield Edge(f"http://127.0.0.1:{port}", port, upstream_port)
    finally:
        if proc is not None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)
        stop_all(nodes)


@pytest.fixture
def front(edge, plans) -> Front:
    Plan.objects.filter(code="free").update(requests_per_minute=None, jobs_per_month=None)
    _, key = workspace_create(name="edge", plan_code="free")
    return Front(edge.url, edge.port, key.raw)


def test_enqueue_through_nginx(front):
    api(front.url, front.key, "POST", "/v1/queues", {"name": "mail", "delivery": "pull"})
    job = api(front.url, front.key, "POST", "/v1/queues/mail/jobs", {"payload": {"to": "a@example.com"}})
    assert Job.objects.get(pk=job["id"]).payload == {"to": "a@example.com"}


def _read_until(sock: socket.socket, marker: bytes, seen: bytearray, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while marker not in seen:
        sock.settimeout(max(0.01, deadline - time.monotonic()))
        chunk = sock.recv(65536)
        assert chunk, f"stream closed before {marker!r}: {bytes(seen)[-300:]!r}"
        seen += chunk


def test_event_stream_through_nginx_is_not_buffered(front):
    api(front.url, front.key, "POST", "/v1/queues", {"name": "mail", "delivery": "pull"})
    with socket.create_connection(("127.0.0.1", front.port), timeout=10) as sock:
        sock.sendall(
            f"GET /v1/events HTTP/1.1\r\nHost: spindle\r\nAuthorization: Bearer {front.key}\r\n"
            "Accept: text/event-stream\r\n\r\n".encode()
        )
        seen = bytearray()
        _read_until(sock, b"connected", seen, timeout_s=15)
        started = time.monotonic()
        job = api(front.url, front.key, "POST", "/v1/queues/mail/jobs", {"payload": {}})
        # The stream polls every 0.5 s; a buffering proxy would hold one small event until its buffer filled.
        _read_until(sock, job["id"].encode(), seen, timeout_s=5)
        print(
            f"\nnginx: event through the stream {time.monotonic() - started:.2f}s after the enqueue call began"
        )


def _slow_upload(port: int) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    sock.sendall(
        b"POST /v1/auth/login HTTP/1.1\r\nHost: spindle\r\nContent-Type: application/json\r\n"
        b"Content-Length: 100000\r\n\r\n{"
    )
    return sock


def _health_s(url: str) -> float:
    started = time.monotonic()
    with urllib.request.urlopen(f"{url}/v1/health", timeout=10) as resp:
        assert resp.status == 200
    return time.monotonic() - started


def test_slow_uploads_through_nginx_take_no_app_thread(front):
    """Issue 14 item 1's attack through nginx: it holds the dribbling bodies, Spindle never sees them."""
    uploads = [_slow_upload(front.port) for _ in range(SLOW_UPLOADS)]
    try:
        timings = []
        for _ in range(8):
            for sock in uploads:
                sock.sendall(b" ")  # one byte a second: within client_body_timeout, so nginx keeps waiting
            timings.append(_health_s(front.url))
            time.sleep(max(0.0, 1 - timings[-1]))
    finally:
        for sock in uploads:
            sock.close()
    print(f"\nnginx: {SLOW_UPLOADS} slow uploads in flight, /v1/health max {max(timings):.3f}s")
    assert max(timings) < 1.0, timings
