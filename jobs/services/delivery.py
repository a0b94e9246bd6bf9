"""Push delivery: POST a batch of leased jobs concurrently on the process's pooled, SSRF-guarded session.

Never called inside a database transaction. Each request is signed by the Standard Webhooks scheme (API.md):
`webhook-id` (the execution id), `webhook-timestamp`, `webhook-signature: v1,<base64 HMAC-SHA256>`. The HTTP
itself (pool, connect-time SSRF guard, signing, capped reads, Retry-After) is config/outbound.py; this module
builds a job's request and turns the reply into the engine's Outcome.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime

import aiohttp

from config import fastjson, outbound
from jobs.models import Job
from jobs.services.engine import MAX_DEFERRAL_S, RESPONSE_BODY_MAX, Outcome
from queues.events import iso
from queues.models import Queue

logger = logging.getLogger(__name__)

DEFAULT_TIMEOUT_MS = 30000
MAX_RETRY_AFTER_S = MAX_DEFERRAL_S


# --- signing -------------------------------------------------------------------------------------------------


def signature_header(
    queue: Queue, msg_id: str, timestamp: int, body: str, *, now: datetime | None = None
) -> str:
    """Space-separated signatures: the current secret, plus the previous one while a rotation overlaps."""
    sigs = [outbound.sign(queue.signing_secret, msg_id, timestamp, body)] if queue.signing_secret else []
    now = now or datetime.now(UTC)
    if (
        queue.previous_signing_secret
        and queue.previous_secret_expires_at
        and queue.previous_secret_expires_at > now
    ):
        sigs.append(outbound.sign(queue.previous_signing_secret, msg_id, timestamp, body))
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
        body = "" if body is None else (body if isinstance(body, str) else fastjson.dumps(body))
    else:
        url = endpoint.get("url")
        method = (endpoint.get("method") or "POST").upper()
        extra = dict(endpoint.get("headers") or {})
        body = fastjson.dumps(
            {
                "id": job.id,
                "queue": queue.name,
                "name": job.name,
                "payload": job.payload,
                "tags": job.tags,
                "attempt": job.attempts,
                "created_at": iso(job.created_at),
            }
        )
    timestamp = int(time.time())
    msg_id = job.execution_id or job.id
    headers = {str(k): str(v) for k, v in extra.items()}
    headers.update(
        {
            "Content-Type": "application/json",
            "User-Agent": outbound.user_agent(),
            "Spindle-Job-Id": job.id,
            "Spindle-Attempt": str(job.attempts),
            "webhook-id": msg_id,
            "webhook-timestamp": str(timestamp),
            "webhook-signature": signature_header(queue, msg_id, timestamp, body, now=now),
        }
    )
    timeout_ms = int(job.timeout_ms or endpoint.get("timeout_ms") or DEFAULT_TIMEOUT_MS)
    return method, url or "", headers, body, timeout_ms


# --- delivering ----------------------------------------------------------------------------------------------


async def deliver_one(session: aiohttp.ClientSession, queue: Queue, job: Job) -> Outcome:
    """One attempt of a leased job: its request sent, the reply (or failure) as the engine's Outcome."""
    method, url, headers, body, timeout_ms = build_request(queue, job)
    reply = await outbound.request(
        session,
        method=method,
        url=url,
        body=body,
        headers=headers,
        timeout_s=timeout_ms / 1000,
        body_max_bytes=RESPONSE_BODY_MAX,
    )
    return reply_outcome(job, reply, timeout_ms=timeout_ms)


def reply_outcome(job: Job, reply: outbound.Reply, *, timeout_ms: int) -> Outcome:
    """The Outcome of one attempt: 2xx success, 410 gone, 429/503 with Retry-After deferred, else failure."""
    token = job.lease_token or ""
    duration = reply.duration_ms
    if reply.failure == "timeout":
        error = {"message": f"No response within {timeout_ms} ms.", "type": "timeout"}
        return Outcome(job.id, token, "timeout", error=error, duration_ms=duration)
    if reply.status is None:
        error = {"message": reply.error, "type": reply.failure or "connection_error"}
        return Outcome(job.id, token, "failure", error=error, duration_ms=duration)
    status, text = reply.status, reply.body
    answered = {"http_status": status, "response_body": text, "duration_ms": duration}
    if 200 <= status < 300:
        return Outcome(job.id, token, "success", result={"http_status": status, "body": text}, **answered)
    error = {"message": f"The target answered HTTP {status}.", "type": "http_error", "http_status": status}
    if status == 410:
        error["message"] = "The target answered 410 Gone: not retried."
        return Outcome(job.id, token, "gone", error=error, retry=False, **answered)
    if status in (429, 503):
        delay = outbound.parse_retry_after(reply.retry_after, max_s=MAX_RETRY_AFTER_S)
        if delay is not None:
            return Outcome(job.id, token, "deferred", error=error, retry_after_s=delay, **answered)
    return Outcome(job.id, token, "failure", error=error, **answered)


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


async def deliver_batch_async(
    queue: Queue, jobs: list[Job], *, on_sent: Callable[[], None] | None = None
) -> list[Outcome]:
    """Deliver leased jobs concurrently on this loop. `on_sent` is called once every request has run to its
    first wait: sent on a pooled connection, or connecting."""
    session = await outbound.session()
    pending = asyncio.gather(*(_deliver_isolated(session, queue, job) for job in jobs))
    if on_sent is not None:
        await asyncio.sleep(0)  # the gathered tasks were scheduled first: each has run until it waits
        on_sent()
    return list(await pending)


def deliver_batch(queue: Queue, jobs: list[Job]) -> list[Outcome]:
    """Deliver leased jobs concurrently; one Outcome per job, in order. Call outside any transaction."""
    if not jobs:
        return []
    return outbound.run(deliver_batch_async(queue, jobs))
