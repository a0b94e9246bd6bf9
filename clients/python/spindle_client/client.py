"""`Spindle`: the API (v1) through one workspace key, with typed results, typed errors and paginated iterators."""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from datetime import datetime
from typing import Any, TypeVar

import httpx

from spindle_client import errors, events
from spindle_client import operations as ops
from spindle_client.models import CreatedQueue, Job, Model, Queue, Schedule, format_time

__version__ = "0.1.0"
DEFAULT_URL = "http://127.0.0.1:8000"

M = TypeVar("M", bound=Model)


def _present(**fields: Any) -> dict[str, Any]:
    """The arguments the caller gave: an omitted one leaves the server's default (and its validation) alone."""
    return {k: v for k, v in fields.items() if v is not None}


class Spindle:
    """A client for one workspace. `api_key` and `base_url` default to SPINDLE_API_KEY and SPINDLE_URL.

    Pass `http` to bring your own `httpx.Client` (proxies, TLS, transport, event hooks); it is then yours to
    close. Calls raise `SpindleError` subclasses (errors.py); nothing is retried behind your back.
    """

    def __init__(
        self,
        api_key: str | None = None,
        base_url: str | None = None,
        *,
        timeout_s: float = 30.0,
        http: httpx.Client | None = None,
    ) -> None:
        api_key = api_key or os.environ.get("SPINDLE_API_KEY")
        if not api_key:
            raise ValueError("an API key is needed: pass api_key or set SPINDLE_API_KEY")
        self.base_url = (base_url or os.environ.get("SPINDLE_URL") or DEFAULT_URL).rstrip("/")
        self._own_http = http is None
        self.http = http or httpx.Client(timeout=timeout_s)
        # Sent with each request rather than set on the client: a caller's own client stays as it was.
        self.headers = {
            "Authorization": f"Bearer {api_key}",
            "User-Agent": f"spindle-client/{__version__} (python)",
        }

    def close(self) -> None:
        if self._own_http:
            self.http.close()

    def __enter__(self) -> Spindle:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- plumbing ----------------------------------------------------------------------------------------

    def _request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        json: Any = None,
        headers: Mapping[str, str] | None = None,
    ) -> Any:
        try:
            response = self.http.request(
                method,
                self.base_url + path,
                params=params,
                json=json,
                headers={**self.headers, **(headers or {})},
            )
        except httpx.TransportError as exc:
            raise errors.ConnectionFailed.from_transport(exc) from exc
        if response.status_code >= 400:
            raise errors.from_response(response.status_code, response.headers, response.content)
        return response.json() if response.content else None

    def _one(
        self, op: ops.Operation, model: type[M], *, body: Any = None, headers: Any = None, **path: str
    ) -> M:
        return model.from_dict(self._request(op.method, op.url(**path), json=body, headers=headers))

    def _pages(
        self,
        op: ops.Operation,
        model: type[M],
        *,
        limit: int | None,
        page_size: int,
        path: Mapping[str, str] | None = None,
        **filters: Any,
    ) -> Iterator[M]:
        """Every item of a list route, page after page along `next_cursor`; at most `limit` items if given."""
        query = _present(**filters, limit=min(page_size, limit) if limit else page_size)
        url = op.url(**(path or {}))
        left = limit
        while True:
            page = self._request(op.method, url, params=query)
            for item in page["data"]:
                if left is not None:
                    if left <= 0:
                        return
                    left -= 1
                yield model.from_dict(item)
            if not page["next_cursor"] or left == 0:
                return
            query["cursor"] = page["next_cursor"]

    # --- jobs --------------------------------------------------------------------------------------------

    @ops.calls(ops.ENQUEUE)
    def enqueue(
        self,
        queue: str,
        payload: Any = None,
        *,
        idempotency_key: str | None = None,
        delay_ms: int | None = None,
        run_at: datetime | str | None = None,
        priority: int | None = None,
        tags: list[str] | None = None,
        name: str | None = None,
        group: str | None = None,
        max_attempts: int | None = None,
        timeout_ms: int | None = None,
        retry_policy: Mapping[str, Any] | None = None,
        parent_id: str | None = None,
        http: Mapping[str, Any] | None = None,
    ) -> Job:
        """Enqueue one job. `idempotency_key` is sent as the Idempotency-Key header: repeating the call with the
        same key and arguments (within 24 h) returns the first answer's job and creates nothing; the same key with
        other arguments raises InvalidRequestError (422 IDEMPOTENCY_KEY_REUSED)."""
        if isinstance(run_at, datetime):
            run_at = format_time(run_at)
        body = {"payload": payload} | _present(
            delay_ms=delay_ms, run_at=run_at, priority=priority, tags=tags, name=name, group=group,
            max_attempts=max_attempts, timeout_ms=timeout_ms, retry_policy=retry_policy, parent_id=parent_id,
            http=http,
        )  # fmt: skip
        headers = {"Idempotency-Key": idempotency_key} if idempotency_key else None
        return self._one(ops.ENQUEUE, Job, body=body, headers=headers, queue_name=queue)

    @ops.calls(ops.JOB)
    def job(self, queue: str, id: str) -> Job:
        return self._one(ops.JOB, Job, queue_name=queue, job_id=id)

    @ops.calls(ops.QUEUE_JOBS, ops.ALL_JOBS)
    def jobs(
        self,
        queue: str | None = None,
        *,
        state: str | None = None,
        tag: str | None = None,
        name: str | None = None,
        group: str | None = None,
        limit: int | None = None,
        page_size: int = 100,
    ) -> Iterator[Job]:
        """Jobs newest first, of one queue or of all, following the pages; at most `limit` if given."""
        filters = _present(state=state, tag=tag, name=name, group=group)
        if queue is None:
            return self._pages(ops.ALL_JOBS, Job, limit=limit, page_size=page_size, **filters)
        path = {"queue_name": queue}
        return self._pages(ops.QUEUE_JOBS, Job, limit=limit, page_size=page_size, path=path, **filters)

    @ops.calls(ops.RETRY)
    def retry(self, queue: str, id: str) -> Job:
        """A failed, completed or cancelled job back to waiting, attempts reset (409 ConflictError otherwise)."""
        return self._one(ops.RETRY, Job, queue_name=queue, job_id=id)

    @ops.calls(ops.CANCEL)
    def cancel(self, queue: str, id: str) -> Job:
        return self._one(ops.CANCEL, Job, queue_name=queue, job_id=id)

    @ops.calls(ops.DLQ)
    def dlq(self, queue: str, *, limit: int | None = None, page_size: int = 100) -> Iterator[Job]:
        """The queue's dead-letter queue: its failed jobs."""
        return self._pages(ops.DLQ, Job, limit=limit, page_size=page_size, path={"queue_name": queue})

    # --- queues and schedules ----------------------------------------------------------------------------

    @ops.calls(ops.QUEUES)
    def queues(self, *, limit: int | None = None, page_size: int = 100) -> Iterator[Queue]:
        return self._pages(ops.QUEUES, Queue, limit=limit, page_size=page_size)

    @ops.calls(ops.QUEUE)
    def queue(self, name: str) -> Queue:
        return self._one(ops.QUEUE, Queue, queue_name=name)

    @ops.calls(ops.CREATE_QUEUE)
    def create_queue(
        self,
        name: str,
        *,
        delivery: str = "pull",
        endpoint: str | Mapping[str, Any] | None = None,
        concurrency: int | None = None,
        retry_policy: Mapping[str, Any] | None = None,
        lease_ms: int | None = None,
    ) -> CreatedQueue:
        """A new queue; a push queue's `endpoint` is a URL or `{"url", "method", "headers", "timeout_ms"}`.
        The answer's `signing_secret` (whsec_…, for verify_delivery) is shown this once."""
        if isinstance(endpoint, str):
            endpoint = {"url": endpoint}
        body = {"name": name, "delivery": delivery} | _present(
            endpoint=endpoint, concurrency=concurrency, retry_policy=retry_policy, lease_ms=lease_ms
        )
        return self._one(ops.CREATE_QUEUE, CreatedQueue, body=body)

    @ops.calls(ops.SCHEDULES)
    def schedules(self, *, limit: int | None = None, page_size: int = 100) -> Iterator[Schedule]:
        return self._pages(ops.SCHEDULES, Schedule, limit=limit, page_size=page_size)

    # --- events ------------------------------------------------------------------------------------------

    @ops.calls(ops.EVENTS, ops.QUEUE_EVENTS)
    def events(
        self, queue: str | None = None, *, last_event_id: str | None = None, timeout_s: float | None = None
    ) -> events.EventStream:
        """The live event stream (of one queue, or all), resumed after `last_event_id` if given, reconnecting
        after drops; it ends after `timeout_s` if given, else never."""
        path = ops.QUEUE_EVENTS.url(queue_name=queue) if queue else ops.EVENTS.path
        return events.EventStream(
            self.http, self.base_url + path, self.headers, last_event_id=last_event_id, timeout_s=timeout_s
        )
