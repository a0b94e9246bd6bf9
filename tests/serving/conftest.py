"""Live-server helpers for the serving-layer tests: raw HTTP/1.1 over a socket, so nothing normalises the request."""

from __future__ import annotations

import socket
import time


def raw_request(port: int, head: str, body: bytes = b"", timeout_s: float = 10) -> bytes:
    """Send `head` (CRLF-joined lines, without the blank line) and `body`; the whole answer until close."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout_s) as sock:
        sock.sendall(head.encode("latin-1") + b"\r\n\r\n" + body)
        return read_all(sock, timeout_s)


def read_all(sock: socket.socket, timeout_s: float = 10) -> bytes:
    deadline = time.monotonic() + timeout_s
    answer = b""
    while time.monotonic() < deadline:
        try:
            chunk = sock.recv(65536)
        except TimeoutError:
            break
        if not chunk:
            break
        answer += chunk
    return answer


def status_of(answer: bytes) -> int:
    return int(answer.split(b" ", 2)[1])


def body_of(answer: bytes) -> bytes:
    return answer.split(b"\r\n\r\n", 1)[1]
