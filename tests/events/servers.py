"""Real server processes for the event-stream tests, on the test database, and a raw SSE client.

Each server is started the way the Procfile starts it (gunicorn on a unix socket behind `config.front`, or
gunicorn alone on TCP, or `config.asgi` alone), as a subprocess on a free loopback port (tests.processes), with
the SSE tests' settings (short heartbeat and poll).
"""

from __future__ import annotations

import json
import socket
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager

from tests import processes


def server_env(**extra: str) -> dict[str, str]:
    processes.require_postgres()
    return processes.process_env(DJANGO_SETTINGS_MODULE="tests.events.sse_settings", **extra)


@contextmanager
def front_server(threads: int = 4, **extra: str) -> Iterator[int]:
    """`make run`'s web layout: config.front on a TCP port, gunicorn (`threads` threads) on a unix socket."""
    with processes.front_server(server_env(**extra), threads=threads) as port:
        yield port


@contextmanager
def gunicorn_server(threads: int = 4, **extra: str) -> Iterator[int]:
    """gunicorn alone on a TCP port: production without the front."""
    with processes.gunicorn_server(server_env(**extra), threads=threads) as port:
        yield port


@contextmanager
def asgi_server(app: str = "config.asgi:application", **extra: str) -> Iterator[int]:
    """`uvicorn config.asgi:application` alone (the stream process behind a proxy that routes to it)."""
    with processes.asgi_server(server_env(**extra), app) as port:
        yield port


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
