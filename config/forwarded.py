"""The real client address behind the trusted front (config/front.py), for WSGI.

gunicorn behind the front listens on a unix socket, where REMOTE_ADDR would be empty. The front appends the
peer it saw to `X-Forwarded-For`; a request that came through a unix socket can only come from a local
process with access to the socket file (the front), so its last entry is the client and becomes REMOTE_ADDR.
On TCP (gunicorn reached directly) the header is ignored: anyone can send it, and rate limits per client
address and the `/metrics` allowlist must see the real peer.
"""

from __future__ import annotations

import socket
from collections.abc import Callable, Iterable
from typing import Any

WsgiApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


def trusted_front(app: WsgiApp) -> WsgiApp:
    def wrapped(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        sock = environ.get("gunicorn.socket")
        if sock is not None and getattr(sock, "family", None) == socket.AF_UNIX:
            client = environ.get("HTTP_X_FORWARDED_FOR", "").rsplit(",", 1)[-1].strip()
            if client:
                environ["REMOTE_ADDR"] = client
        return app(environ, start_response)

    return wrapped
