"""Real server processes for the event-stream tests, on the test database, and a raw SSE client.

Each server is started the way the Procfile starts it (`uvicorn config.front:app`), or as gunicorn alone on TCP,
or `config.asgi` alone, as a subprocess on a free loopback port.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from django.conf import settings

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def server_env(**extra: str) -> dict[str, str]:
    db = settings.DATABASES["default"]
    if db["ENGINE"] != "django.db.backends.postgresql":
        pytest.skip("needs PostgreSQL shared with a subprocess")
    auth = db["USER"] + (f":{db['PASSWORD']}" if db.get("PASSWORD") else "")
    env = {
        **os.environ,
        "DATABASE_URL": f"postgres://{auth}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}",
        "DJANGO_SETTINGS_MODULE": "tests.events.sse_settings",
        "CONN_MAX_AGE": "0",
        **extra,
    }
    env.pop("TEST_DB_NAME", None)
    return env


def _wait_http(url: str, proc: subprocess.Popen, timeout_s: float = 30) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"server exited: {proc.stderr.read().decode()[-3000:]}")
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return
        except (OSError, urllib.error.HTTPError):
            pass
        time.sleep(0.1)
    pytest.fail(f"{url} did not answer 200 in {timeout_s} s")


def _stop(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(5)


def _gunicorn(bind: str, threads: int, env: dict[str, str]) -> subprocess.Popen:
    return subprocess.Popen(
        [
            str(BIN / "gunicorn"),
            "config.wsgi",
            "--bind",
            bind,
            "--workers",
            "1",
            "--threads",
            str(threads),
            "--keep-alive",
            "30",
            "--graceful-timeout",
            "1",
            "--log-level",
            "warning",
        ],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )


FRONT_FLAGS = (
    "--no-access-log",
    "--no-proxy-headers",
    "--no-server-header",
    "--no-date-header",
    "--timeout-keep-alive",
    "5",
    "--log-level",
    "warning",
    "--timeout-graceful-shutdown",
    "1",
)


@contextmanager
def front_server(threads: int = 4, **extra: str) -> Iterator[int]:
    """`make run`'s web process: `uvicorn config.front:app` on a TCP port, the WSGI app on `threads` threads."""
    env = server_env(SPINDLE_WSGI_THREADS=str(threads), **extra)
    port = free_port()
    front = subprocess.Popen(
        [str(BIN / "uvicorn"), "config.front:app", "--host", "127.0.0.1", "--port", str(port), *FRONT_FLAGS],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        _wait_http(f"http://127.0.0.1:{port}/v1/health", front)
        yield port
    finally:
        _stop(front)


@contextmanager
def gunicorn_server(threads: int = 4, **extra: str) -> Iterator[int]:
    """gunicorn alone on a TCP port: production without the front."""
    port = free_port()
    proc = _gunicorn(f"127.0.0.1:{port}", threads, server_env(**extra))
    try:
        _wait_http(f"http://127.0.0.1:{port}/v1/health", proc)
        yield port
    finally:
        _stop(proc)


@contextmanager
def asgi_server(app: str = "config.asgi:application", **extra: str) -> Iterator[int]:
    """`uvicorn config.asgi:application` alone (the stream process behind a proxy that routes to it)."""
    port = free_port()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "uvicorn",
            app,
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--log-level",
            "warning",
            "--timeout-graceful-shutdown",
            "1",
        ],
        cwd=ROOT,
        env=server_env(**extra),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                if proc.poll() is not None:
                    pytest.fail(proc.stderr.read().decode())
                time.sleep(0.1)
        yield port
    finally:
        _stop(proc)


def call(
    method: str, url: str, key: str | None = None, body: object = None, headers: dict[str, str] | None = None
) -> tuple[int, dict[str, str], bytes]:
    """(status, lower-cased headers, raw body) of one plain HTTP request."""
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, method=method)
    if data is not None:
        request.add_header("Content-Type", "application/json")
    if key:
        request.add_header("Authorization", f"Bearer {key}")
    for name, value in (headers or {}).items():
        request.add_header(name, value)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, {k.lower(): v for k, v in response.headers.items()}, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, {k.lower(): v for k, v in exc.headers.items()}, exc.read()


class Stream:
    """A raw HTTP/1.1 GET reading SSE frames with a deadline (no client library buffering in the way)."""

    def __init__(self, port: int, path: str, headers: dict[str, str], timeout_s: float = 5) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout_s)
        lines = [f"GET {path} HTTP/1.1", "Host: 127.0.0.1", "Accept: text/event-stream"]
        lines += [f"{k}: {v}" for k, v in headers.items()]
        self.sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
        self.buffer = b""
        head = self._until(b"\r\n\r\n")
        self.status = int(head.split(b" ")[1])
        self.headers = head.decode().lower()
        self.chunked = "transfer-encoding: chunked" in self.headers
        self.text = ""
        self.ended = False

    def _until(self, marker: bytes) -> bytes:
        while marker not in self.buffer:
            data = self.sock.recv(65536)
            if not data:
                raise EOFError
            self.buffer += data
        head, self.buffer = self.buffer.split(marker, 1)
        return head

    def _fill(self) -> None:
        if self.chunked:
            size = int(self._until(b"\r\n").split(b";")[0], 16)
            if size == 0:
                self.ended = True  # the last chunk: the server ended the stream
                raise EOFError
            while len(self.buffer) < size + 2:
                data = self.sock.recv(65536)
                if not data:
                    raise EOFError
                self.buffer += data
            self.text += self.buffer[:size].decode()
            self.buffer = self.buffer[size + 2 :]
        else:
            data = self.sock.recv(65536)
            if not data:
                raise EOFError
            self.text += data.decode()

    def frames(self, count: int, timeout_s: float = 10) -> list[str]:
        """The next `count` frames (blocks separated by a blank line)."""
        deadline = time.monotonic() + timeout_s
        out: list[str] = []
        while len(out) < count:
            if "\n\n" in self.text:
                frame, self.text = self.text.split("\n\n", 1)
                out.append(frame)
                continue
            if time.monotonic() > deadline:
                raise TimeoutError(f"got {out!r}")
            self._fill()
        return out

    def until_end(self, timeout_s: float = 10) -> list[str]:
        """Every frame until the server ends the stream (EOFError past the deadline is a failure)."""
        deadline = time.monotonic() + timeout_s
        out: list[str] = []
        while time.monotonic() < deadline:
            try:
                out += self.frames(1, timeout_s=max(0.1, deadline - time.monotonic()))
            except EOFError:
                return out
        raise TimeoutError(f"the stream did not end; got {out!r}")

    def body(self) -> str:
        """A non-streaming answer's body (Content-Length)."""
        length = int(self.headers.split("content-length: ", 1)[1].split("\r\n", 1)[0])
        while len(self.buffer) < length:
            data = self.sock.recv(65536)
            if not data:
                break
            self.buffer += data
        return self.buffer[:length].decode()

    def close(self) -> None:
        self.sock.close()


def fields(frame: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for line in frame.splitlines():
        key, _, value = line.partition(": ")
        out[key] = value
    return out
