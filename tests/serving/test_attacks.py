"""Attacks on the one port, bounded in count and time, against a live `uvicorn config.front:app` (issue 14).

Before the serving layer read bodies itself, 8 slow uploads held gunicorn's 8 threads (health timed out for as
long as they lasted), and 40 never-finishing chunked bodies were buffered whole (the front grew by ~316 MB).
"""

from __future__ import annotations

import os
import socket
import threading
import time
from pathlib import Path

import pytest

from tests.events import servers
from tests.events.servers import call

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]


def _rss_mb_of_children() -> float:
    """Resident memory of every process this test started (the server and any child of it)."""
    me = str(os.getpid())
    total = 0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
            if fields[1] == me:
                total += int(fields[21]) * os.sysconf("SC_PAGE_SIZE")
        except (OSError, IndexError):
            continue
    return total / 2**20


def _health_answers(port: int, seconds: float) -> list[float]:
    """How long each /v1/health took, one call a second for `seconds` (a timeout counts as 10 s)."""
    took = []
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        started = time.monotonic()
        try:
            status, _, _ = call("GET", f"http://127.0.0.1:{port}/v1/health")
        except OSError:
            status = 0
        took.append(time.monotonic() - started if status == 200 else 10.0)
        time.sleep(max(0.0, 1 - (time.monotonic() - started)))
    return took


def test_slow_uploads_do_not_stop_health(plans):
    """8 unauthenticated logins announcing 100,000 bytes and sending 1 byte every 3 s, for 12 s."""
    stop = threading.Event()
    with servers.front_server(threads=8) as port:
        sockets = []
        for _ in range(8):
            sock = socket.create_connection(("127.0.0.1", port), timeout=5)
            sock.sendall(
                b"POST /v1/auth/login HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\nContent-Length: 100000\r\n\r\n{"
            )
            sockets.append(sock)

        def drip() -> None:
            while not stop.wait(3):
                for sock in sockets:
                    try:
                        sock.sendall(b" ")
                    except OSError:
                        pass

        dripper = threading.Thread(target=drip, daemon=True)
        dripper.start()
        try:
            took = _health_answers(port, 12)
            status, _, _ = call(
                "POST",
                f"http://127.0.0.1:{port}/v1/auth/login",
                body={"email": "a@b.c", "password": "wrongwrong"},
            )
        finally:
            stop.set()
            dripper.join(5)
            for sock in sockets:
                sock.close()
        print(f"health while 8 slow uploads: max {max(took):.2f} s over {len(took)} calls")
        assert max(took) < 2, took
        assert status == 401


def _endless_chunked(port: int, size: int, errors: list[str]) -> None:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
            sock.sendall(
                b"POST /v1/auth/login HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
            )
            chunk = b"%x\r\n%s\r\n" % (65536, b"x" * 65536)
            for _ in range(size // 65536):
                sock.sendall(chunk)
            time.sleep(3)  # never finished: no terminating chunk
    except OSError as exc:  # the server refused the upload and closed the connection
        errors.append(type(exc).__name__)


def test_never_finishing_chunked_bodies_do_not_blow_memory(plans):
    """40 unauthenticated connections each send 9.9 MiB chunked and never finish."""
    with servers.front_server(threads=8) as port:
        call("GET", f"http://127.0.0.1:{port}/v1/health")
        before = _rss_mb_of_children()
        errors: list[str] = []
        clients = [
            threading.Thread(target=_endless_chunked, args=(port, int(9.9 * 2**20), errors), daemon=True)
            for _ in range(40)
        ]
        for client in clients:
            client.start()
        peak = before
        deadline = time.monotonic() + 30
        while any(client.is_alive() for client in clients) and time.monotonic() < deadline:
            peak = max(peak, _rss_mb_of_children())
            time.sleep(0.2)
        took = _health_answers(port, 2)
        print(
            f"RSS before {before:.0f} MB, peak {peak:.0f} MB (+{peak - before:.0f} MB); {len(errors)} refused"
        )
        assert peak - before < 150, (before, peak)
        assert max(took) < 2
