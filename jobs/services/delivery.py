"""Push delivery: POST a batch of leased jobs concurrently with one pooled aiohttp session per worker process.

Never called inside a database transaction. Each request is signed by the Standard Webhooks scheme (API.md):
`webhook-id` (the execution id), `webhook-timestamp`, `webhook-signature: v1,<base64 HMAC-SHA256>`.
The SSRF guard runs at connect time: a resolver that refuses disallowed addresses (DNS rebinding) and a check
of literal IP hosts, which aiohttp connects to without resolving.
"""

from __future__ import annotations

import asyncio
import atexit
import base64
import email.utils
import hashlib
import hmac
import json
import logging
import os
import re
import socket
import threading
import time
from collections.abc import Coroutine
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import DefaultResolver
from django.conf import settings

from config import netguard
from jobs.models import Job
from jobs.services.engine import MAX_DEFERRAL_S, RESPONSE_BODY_MAX, Outcome
from jobs.services.events import iso
from queues.models import Queue

logger = logging.getLogger(__name__)

DEFAULT_TIMEOUT_MS = 30000
MAX_RETRY_AFTER_S = MAX_DEFERRAL_S
POOL_LIMIT = 256
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


# --- signing -------------------------------------------------------------------------------------------------


def _secret_key(secret: str) -> bytes:
    raw = secret[len("whsec_") :] if secret.startswith("whsec_") else secret
    return base64.b64decode(raw)


def sign(secret: str, msg_id: str, timestamp: int, body: str) -> str:
    """One Standard Webhooks signature: `v1,<base64 HMAC-SHA256(key, "{id}.{ts}.{body}")>`."""
    mac = hmac.new(_secret_key(secret), f"{msg_id}.{timestamp}.{body}".encode(), hashlib.sha256).digest()
    return "v1," + base64.b64encode(mac).decode()


def signature_header(
    queue: Queue, msg_id: str, timestamp: int, body: str, *, now: datetime | None = None
) -> str:
    """Space-separated signatures: the current secret, plus the previous one while a rotation overlaps."""
    sigs = [sign(queue.signing_secret, msg_id, timestamp, body)] if queue.signing_secret else []
    now = now or datetime.now(UTC)
    if (
        queue.previous_signing_secret
        and queue.previous_secret_expires_at
        and queue.previous_secret_expires_at > now
    ):
        sigs.append(sign(queue.previous_signing_secret, msg_id, timestamp, body))
    return " ".join(sigs)


# --- request building ----------------------------------------------------------------------------------------


def build_request(
    queue: Queue, job: Job, *, now: datetime | None = None
) -> tuple[str, str, dict[str, str], str, int]:
    """(method, url, headers, body, timeout_ms) for one attempt of a leased job."""
    endpoint = queue.endpoint or {}
    if job.http:
        target = job.http
        url = target.get("url")
        method = (target.get("method") or "POST").upper()
        # The job's own target replaces the queue endpoint entirely, its headers included.
        extra = dict(target.get("headers") or {})
        body = target.get("body")
        body = (
            ""
            if body is None
            else (body if isinstance(body, str) else json.dumps(body, separators=(",", ":")))
        )
    else:
        url = endpoint.get("url")
        method = (endpoint.get("method") or "POST").upper()
        extra = dict(endpoint.get("headers") or {})
        body = json.dumps(
            {
                "id": job.id,
                "queue": queue.name,
                "name": job.name,
                "payload": job.payload,
                "tags": job.tags,
                "attempt": job.attempts,
                "created_at": iso(job.created_at),
            },
            separators=(",", ":"),
        )
    timestamp = int(time.time())
    msg_id = job.execution_id or job.id
    headers = {str(k): str(v) for k, v in extra.items()}
    headers.update(
        {
            "Content-Type": "application/json",
            "User-Agent": f"Spindle/{settings.VERSION}",
            "Spindle-Job-Id": job.id,
            "Spindle-Attempt": str(job.attempts),
            "webhook-id": msg_id,
            "webhook-timestamp": str(timestamp),
            "webhook-signature": signature_header(queue, msg_id, timestamp, body, now=now),
        }
    )
    timeout_ms = int(job.timeout_ms or endpoint.get("timeout_ms") or DEFAULT_TIMEOUT_MS)
    return method, url or "", headers, body, timeout_ms


def parse_retry_after(value: str | None) -> float | None:
    """Retry-After as delay-seconds or an HTTP date, clamped to [0, MAX_RETRY_AFTER_S]; None if absent or
    unreadable (the attempt then counts as a normal failure).

    Never raises: the header is the target's to write, and one bad value used to abort the whole batch (and
    re-deliver every other job of it) through int()'s 4,300-digit limit or a non-ASCII digit.
    """
    if not value:
        return None
    value = value.strip()
    if _DELAY_SECONDS.fullmatch(value):
        # Any value past the bound is the bound: compare the digits' length, never convert a huge number.
        digits = value.lstrip("0") or "0"
        return float(MAX_RETRY_AFTER_S if len(digits) > 6 else min(int(digits), MAX_RETRY_AFTER_S))
    try:
        when = email.utils.parsedate_to_datetime(value)
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        return max(0.0, min((when - datetime.now(UTC)).total_seconds(), float(MAX_RETRY_AFTER_S)))
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


def run(coro: Coroutine[Any, Any, Any]) -> Any:
    """Run a coroutine on this thread's persistent loop (the pooled connections live there)."""
    return _get_client().loop.run_until_complete(coro)


async def _read_capped(resp: aiohttp.ClientResponse) -> str:
    chunks: list[bytes] = []
    size = 0
    while size < RESPONSE_BODY_MAX:
        chunk = await resp.content.read(RESPONSE_BODY_MAX - size)
        if not chunk:
            break
        chunks.append(chunk)
        size += len(chunk)
    return b"".join(chunks).decode("utf-8", errors="replace")


def _host_refused(url: str) -> str | None:
    """A reason to refuse the URL before connecting (scheme, or a literal IP the guard refuses)."""
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


async def deliver_one(session: aiohttp.ClientSession, queue: Queue, job: Job) -> Outcome:
    method, url, headers, body, timeout_ms = build_request(queue, job)
    token = job.lease_token or ""
    started = time.monotonic()

    def elapsed() -> int:
        return int((time.monotonic() - started) * 1000)

    refused = _host_refused(url)
    if refused:
        return Outcome(
            job.id, token, "failure", error={"message": refused, "type": "target_refused"}, duration_ms=0
        )
    try:
        async with session.request(
            method,
            url,
            data=body.encode(),
            headers=headers,
            allow_redirects=False,  # 3xx is a failed attempt; following could reach a refused address
            timeout=aiohttp.ClientTimeout(total=timeout_ms / 1000),
        ) as resp:
            text = await _read_capped(resp)
            status = resp.status
            retry_after = resp.headers.get("Retry-After")
    except (TimeoutError, aiohttp.ServerTimeoutError):
        return Outcome(
            job.id,
            token,
            "timeout",
            error={"message": f"No response within {timeout_ms} ms.", "type": "timeout"},
            duration_ms=elapsed(),
        )
    except aiohttp.ClientConnectorError as exc:
        if isinstance(exc.os_error, RefusedAddress):
            error = {"message": str(exc.os_error), "type": "target_refused"}
        else:
            error = {"message": f"Connection failed: {exc.os_error}", "type": "connection_error"}
        return Outcome(job.id, token, "failure", error=error, duration_ms=elapsed())
    except RefusedAddress as exc:
        return Outcome(
            job.id,
            token,
            "failure",
            error={"message": str(exc), "type": "target_refused"},
            duration_ms=elapsed(),
        )
    except (aiohttp.ClientError, OSError, ValueError) as exc:
        return Outcome(
            job.id,
            token,
            "failure",
            error={"message": str(exc) or type(exc).__name__, "type": "connection_error"},
            duration_ms=elapsed(),
        )
    duration = elapsed()
    if 200 <= status < 300:
        return Outcome(
            job.id,
            token,
            "success",
            result={"http_status": status, "body": text},
            http_status=status,
            response_body=text,
            duration_ms=duration,
        )
    error = {"message": f"The target answered HTTP {status}.", "type": "http_error", "http_status": status}
    if status == 410:
        error["message"] = "The target answered 410 Gone: not retried."
        return Outcome(
            job.id,
            token,
            "gone",
            error=error,
            http_status=status,
            response_body=text,
            duration_ms=duration,
            retry=False,
        )
    if status in (429, 503):
        delay = parse_retry_after(retry_after)
        if delay is not None:
            return Outcome(
                job.id,
                token,
                "deferred",
                error=error,
                http_status=status,
                response_body=text,
                duration_ms=duration,
                retry_after_s=delay,
            )
    return Outcome(
        job.id, token, "failure", error=error, http_status=status, response_body=text, duration_ms=duration
    )


async def _deliver_isolated(session: aiohttp.ClientSession, queue: Queue, job: Job) -> Outcome:
    """deliver_one, but an unexpected error is this job's failed attempt, never the batch's exception (which
    would leave every other job of the batch to be delivered again after its lease expires)."""
    try:
        return await deliver_one(session, queue, job)
    except Exception as exc:  # noqa: BLE001 - isolate the job; the error is recorded on its execution
        logger.warning("delivery of %s raised", job.id, exc_info=True)
        return Outcome(
            job.id,
            job.lease_token or "",
            "failure",
            error={"message": f"Delivery error: {type(exc).__name__}.", "type": "delivery_error"},
        )


async def deliver_batch_async(queue: Queue, jobs: list[Job]) -> list[Outcome]:
    session = await _get_client().get_session()
    return list(await asyncio.gather(*(_deliver_isolated(session, queue, job) for job in jobs)))


def deliver_batch(queue: Queue, jobs: list[Job]) -> list[Outcome]:
    """Deliver leased jobs concurrently; one Outcome per job, in order. Call outside any transaction."""
    if not jobs:
        return []
    return run(deliver_batch_async(queue, jobs))
