"""Outbound HTTP, shared by push delivery, webhook deliveries and alert notifications.

Plumbing only (imports no app): a pooled aiohttp session per thread and process, the SSRF guard at connect time,
Standard Webhooks signing, capped response reads, Retry-After parsing, and `request`, which sends one request
and turns every way it can fail into a `Reply` instead of an exception. Never call it inside a transaction.

The SSRF guard runs at connect time, after the save-time check of config/netguard.py, because DNS can change in
between (rebinding): a resolver that refuses disallowed addresses, and a check of literal IP hosts, which
aiohttp connects to without resolving. Redirects are never followed (a 3xx is the target's answer).
"""

from __future__ import annotations

import asyncio
import atexit
import base64
import email.utils
import functools
import hashlib
import hmac
import os
import re
import socket
import threading
import time
from collections.abc import Coroutine
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import DefaultResolver
from django.conf import settings

from config import netguard

# No cap on the pool's connections: callers bound their own requests in flight (the delivery conveyor's limits,
# jobs/services/conveyor.py). A cap here would let connections held by a slow target queue every other target's
# requests behind them inside the connector.
POOL_LIMIT = 0
# RFC 9110 delay-seconds: ASCII digits only (str.isdigit() also accepts '²', which int() refuses).
_DELAY_SECONDS = re.compile(r"[0-9]+")


class RefusedAddress(OSError):
    """The target resolved to an address the SSRF guard refuses."""


class GuardedResolver(AbstractResolver):
    """Resolves like aiohttp's default resolver, then refuses the host if any address is not allowed."""

    def __init__(self) -> None:
        self._inner = DefaultResolver()

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        results = await self._inner.resolve(host, port, family)
        for r in results:
            if not netguard.address_allowed(r["host"]):
                raise RefusedAddress(f"{host} resolves to a refused address ({r['host']})")
        return results

    async def close(self) -> None:
        await self._inner.close()


def host_refused(url: str) -> str | None:
    """A reason to refuse the URL before connecting (scheme, or a literal IP the guard refuses)."""
    return _host_refused(url, netguard.allow_private())


# Asked once per delivery, of a handful of URLs: the answer depends on the URL and the setting alone.
@functools.lru_cache(maxsize=1024)
def _host_refused(url: str, _allow_private: bool) -> str | None:  # the setting: part of the cache key
    try:
        parts = urlsplit(url)
    except ValueError:
        return "invalid URL"
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return "invalid URL"
    host = parts.hostname
    try:
        socket.inet_pton(socket.AF_INET6 if ":" in host else socket.AF_INET, host)
    except OSError:
        return None  # a name: checked by GuardedResolver at connect time
    if not netguard.address_allowed(host):
        return f"{host} is a refused address"
    return None


# --- signing -------------------------------------------------------------------------------------------------


@functools.lru_cache(maxsize=256)
def _secret_key(secret: str) -> bytes:
    raw = secret[len("whsec_") :] if secret.startswith("whsec_") else secret
    return base64.b64decode(raw)


def sign(secret: str, msg_id: str, timestamp: int, body: str) -> str:
    """One Standard Webhooks signature: `v1,<base64 HMAC-SHA256(key, "{id}.{ts}.{body}")>`."""
    mac = hmac.new(_secret_key(secret), f"{msg_id}.{timestamp}.{body}".encode(), hashlib.sha256).digest()
    return "v1," + base64.b64encode(mac).decode()


def user_agent() -> str:
    return f"Spindle/{settings.VERSION}"


# --- Retry-After ---------------------------------------------------------------------------------------------


def parse_retry_after(value: str | None, *, max_s: int) -> float | None:
    """Retry-After as delay-seconds or an HTTP date, clamped to [0, max_s]; None if absent or unreadable (the
    attempt then counts as a normal failure).

    Never raises: the header is the target's to write, and one bad value used to abort the whole batch (and
    re-deliver every other job of it) through int()'s 4,300-digit limit or a non-ASCII digit.
    """
    if not value:
        return None
    value = value.strip()
    if _DELAY_SECONDS.fullmatch(value):
        # Any value past the bound is the bound: compare the digits' length, never convert a huge number.
        digits = value.lstrip("0") or "0"
        return float(max_s if len(digits) > len(str(max_s)) else min(int(digits), max_s))
    try:
        when = email.utils.parsedate_to_datetime(value)
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        return max(0.0, min((when - datetime.now(UTC)).total_seconds(), float(max_s)))
    except (TypeError, ValueError, OverflowError, IndexError):
        return None


# --- the per-process client ----------------------------------------------------------------------------------


class _Client:
    """A persistent event loop and pooled ClientSession for this thread of this process."""

    def __init__(self) -> None:
        self.pid = os.getpid()
        self.loop = asyncio.new_event_loop()
        self.session: aiohttp.ClientSession | None = None

    async def get_session(self) -> aiohttp.ClientSession:
        if self.session is None or self.session.closed:
            connector = aiohttp.TCPConnector(limit=POOL_LIMIT, resolver=GuardedResolver(), ttl_dns_cache=10)
            self.session = aiohttp.ClientSession(connector=connector, cookie_jar=aiohttp.DummyCookieJar())
        return self.session

    def close(self) -> None:
        """Close the pool at exit (only in the process that made it), so no connection is left dangling."""
        if self.pid != os.getpid() or self.loop.is_closed() or self.loop.is_running():
            return
        if self.session is not None and not self.session.closed:
            self.loop.run_until_complete(self.session.close())
        self.loop.close()


# One loop and pool per thread (and per process: rebuilt after a fork), so prefork and thread pools both work.
_local = threading.local()


def _get_client() -> _Client:
    client: _Client | None = getattr(_local, "client", None)
    if client is None or client.pid != os.getpid():
        client = _local.client = _Client()
        atexit.register(client.close)
    return client


async def session() -> aiohttp.ClientSession:
    """This thread's pooled, SSRF-guarded session (call on the loop `run` uses)."""
    return await _get_client().get_session()


def run(coro: Coroutine[Any, Any, Any]) -> Any:
    """Run a coroutine on this thread's persistent loop (the pooled connections live there)."""
    return _get_client().loop.run_until_complete(coro)


# --- one request ---------------------------------------------------------------------------------------------


async def read_capped(resp: aiohttp.ClientResponse, *, limit_bytes: int) -> str:
    """The response body, at most `limit_bytes` of it read (the target decides how much it sends)."""
    chunks: list[bytes] = []
    size = 0
    while size < limit_bytes:
        chunk = await resp.content.read(limit_bytes - size)
        if not chunk:
            break
        chunks.append(chunk)
        size += len(chunk)
    return b"".join(chunks).decode("utf-8", errors="replace")


@dataclass(frozen=True)
class Reply:
    """What one request came to: an HTTP answer (`status` set), or a failure (`failure` set, `error` says why).

    `failure` is "target_refused" (the SSRF guard), "timeout" (no answer in time; the caller words the error,
    it knows its unit) or "connection_error".
    """

    status: int | None = None
    body: str = ""
    retry_after: str | None = None
    failure: str | None = None
    error: str = ""
    duration_ms: int = 0


async def request(
    client: aiohttp.ClientSession,
    *,
    method: str,
    url: str,
    body: str,
    headers: dict[str, str],
    timeout_s: float,
    body_max_bytes: int,
) -> Reply:
    """Send one request on `client` with the SSRF guard; never raises for anything the network or target does."""
    refused = host_refused(url)
    if refused:
        return Reply(failure="target_refused", error=refused)
    started = time.monotonic()

    def elapsed() -> int:
        return int((time.monotonic() - started) * 1000)

    try:
        async with client.request(
            method,
            url,
            data=body.encode(),
            headers=headers,
            allow_redirects=False,  # 3xx is a failed attempt; following could reach a refused address
            timeout=aiohttp.ClientTimeout(total=timeout_s),
        ) as resp:
            text = await read_capped(resp, limit_bytes=body_max_bytes)
            status, retry_after = resp.status, resp.headers.get("Retry-After")
    except (TimeoutError, aiohttp.ServerTimeoutError):
        return Reply(failure="timeout", duration_ms=elapsed())
    except aiohttp.ClientConnectorError as exc:
        if isinstance(exc.os_error, RefusedAddress):
            return Reply(failure="target_refused", error=str(exc.os_error), duration_ms=elapsed())
        return Reply(
            failure="connection_error", error=f"Connection failed: {exc.os_error}", duration_ms=elapsed()
        )
    except RefusedAddress as exc:
        return Reply(failure="target_refused", error=str(exc), duration_ms=elapsed())
    except (aiohttp.ClientError, OSError, ValueError) as exc:
        return Reply(failure="connection_error", error=str(exc) or type(exc).__name__, duration_ms=elapsed())
    return Reply(status, text, retry_after, duration_ms=elapsed())
