"""Request -> JobSpec, by hand.

PERF.md asks for microseconds per job: a batch of 1,000 jobs must not build 1,000 DRF serializers. So each item is
checked by plain Python against the rules of API.md "Jobs", collecting field errors instead of raising on the
first one. Everything that is the same for every item of a request (plan caps, the queue's retry policy, "now",
the parents that exist) is computed once in `JobValidator.__init__` / `validate_many`.

Error precedence for one request: 400 VALIDATION_ERROR (every field error of every item) first, then 413
PAYLOAD_TOO_LARGE, then 402 PLAN_LIMIT. Batch items report their errors under flat dotted keys:
`{"jobs.3.priority": ["…"], "jobs.7.http.url": ["…"]}`.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.utils import timezone

from accounts.models import Workspace
from billing.services import plan_check_value
from config.exceptions import PayloadTooLarge, PlanLimit, ValidationFailed
from config.inputs import DATETIME_RANGE_MESSAGE, datetime_plus_ms_in_range, parse_client_datetime
from config.netguard import Resolver, validate_target_url
from jobs.models import Job
from jobs.retry_policy import MAX_ATTEMPTS_MAX, MAX_ATTEMPTS_MIN, UNKNOWN_FIELD, validate_retry_policy
from jobs.specs import (
    CREATE_FIELDS,
    CREATE_READ_ONLY_FIELDS,
    STREAM_CHUNK,
    STREAM_FIRST_CHUNK,
    JobSpec,
    SpecStream,
)
from queues.models import DEFAULT_RETRY_POLICY, Queue
from queues.serializers import HEADER_NAME_RE, MAX_HEADER_VALUE, REFUSED_HEADERS

MAX_BATCH = 1000
MAX_TAGS = 10
MAX_TAG_CHARS = 64
MAX_NAME_CHARS = 128
MAX_GROUP_CHARS = 128
MAX_IDEMPOTENCY_KEY_CHARS = 255
PRIORITY_MIN, PRIORITY_MAX = -100, 100
MAX_DELAY_MS = 31_536_000_000  # one year
TIMEOUT_MS_MIN, TIMEOUT_MS_MAX = 100, 300_000
MAX_HTTP_BODY_BYTES = 1024 * 1024
HTTP_METHODS = frozenset({"GET", "POST", "PUT", "PATCH", "DELETE"})
MAX_HTTP_HEADERS = 50

_READ_ONLY = ["This field is read-only."]

Errors = dict[str, list[str]]


def _is_int(value: Any) -> bool:
    # bool is a subclass of int in Python, but `true` is not a number in JSON.
    return type(value) is int


def _payload_size(payload: Any) -> int:
    # The size a client would measure: compact UTF-8 JSON.
    return len(json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode())


def _bad_headers(headers: dict[str, str]) -> list[str]:
    bad = []
    for name, value in headers.items():
        if not HEADER_NAME_RE.match(name):
            bad.append(f"'{name}' is not a valid header name.")
        elif name.lower() in REFUSED_HEADERS:
            bad.append(f"'{name}' cannot be set.")
        elif "\r" in value or "\n" in value or len(value) > MAX_HEADER_VALUE:
            bad.append(f"The value of '{name}' must be one line of at most {MAX_HEADER_VALUE} characters.")
    return bad


class JobValidator:
    """Validates job requests for one queue of one workspace. Build one per request."""

    def __init__(self, *, workspace: Workspace, queue: Queue, now: datetime | None = None) -> None:
        self.workspace = workspace
        self.queue = queue
        self.now = now or timezone.now()
        self.max_payload_bytes: int = settings.SPINDLE_MAX_PAYLOAD_BYTES
        plan = workspace.plan
        self.plan_max_attempts: int | None = plan.max_attempts
        self.plan_max_timeout_ms: int | None = plan.max_timeout_ms
        self.queue_policy: dict[str, Any] = queue.retry_policy or DEFAULT_RETRY_POLICY
        self.needs_http = queue.delivery == Queue.Delivery.PUSH and not queue.endpoint
        self._url_errors: dict[str, Errors | None] = {}  # one SSRF check per distinct URL
        self._resolver: Resolver | None = None  # one DNS lookup per distinct host, all within one time budget
        self._existing_parents: set[str] = set()
        self._too_large: PayloadTooLarge | None = None
        self._plan_limit: PlanLimit | None = None

    # -- entry points ------------------------------------------------------------------------------------------

    def validate_one(self, data: Any) -> JobSpec:
        """One job body -> JobSpec, or raise (400, then 413, then 402)."""
        errors: Errors = {}
        if not isinstance(data, dict):
            raise ValidationFailed(
                "The body must be a JSON object.", details={"non_field_errors": ["Expected a JSON object."]}
            )
        self._load_parents([data])
        spec = self._item(data, "", errors)
        self._raise(errors)
        assert spec is not None
        return spec

    def validate_many(self, items: Any, *, field: str = "jobs") -> list[JobSpec] | SpecStream:
        """A batch: every item valid, or raise with every item's errors under `jobs.<index>.<field>`. A batch whose
        items' checks need no I/O and read no job comes back as a SpecStream: each chunk is then checked as the
        enqueue takes it, while PostgreSQL writes the ones before it."""
        if not isinstance(items, list):
            raise ValidationFailed(details={field: ["Expected a list of job objects."]})
        if not items:
            raise ValidationFailed(details={field: ["At least one job is required."]})
        if len(items) > MAX_BATCH:
            raise ValidationFailed(details={field: [f"At most {MAX_BATCH} jobs per batch."]})
        self._load_parents(items)
        if any(
            type(data) is dict and (data.get("http") is not None or data.get("idempotency_key"))
            for data in items
        ):
            return [spec for chunk in self._chunks(items, field, len(items), len(items)) for spec in chunk]
        return SpecStream(
            count=len(items), chunks=self._chunks(items, field, STREAM_FIRST_CHUNK, STREAM_CHUNK)
        )

    # -- internals ---------------------------------------------------------------------------------------------

    def _chunks(self, items: list[Any], field: str, first: int, size: int) -> Iterator[list[JobSpec]]:
        """The specs of the first `first` items, then of each `size` more, in order; after the last, the batch's
        errors are raised. Once an item has failed nothing more is yielded (the batch will be refused), but every
        item is still checked."""
        errors: Errors = {}
        for start in [0, *range(first, len(items), size)]:
            specs: list[JobSpec] = []
            for index in range(start, min(start + (size if start else first), len(items))):
                data = items[index]
                if not isinstance(data, dict):
                    errors[f"{field}.{index}"] = ["Expected a JSON object."]
                    continue
                spec = self._item(data, f"{field}.{index}.", errors)
                if spec is not None:
                    specs.append(spec)
            if not errors and self._too_large is None and self._plan_limit is None:
                yield specs
        self._raise(errors)

    def _raise(self, errors: Errors) -> None:
        if errors:
            raise ValidationFailed(details=errors)
        if self._too_large is not None:
            raise self._too_large
        if self._plan_limit is not None:
            raise self._plan_limit

    def _load_parents(self, items: list[Any]) -> None:
        # One query for every parent_id of the request, scoped to the workspace (another workspace's job is "unknown").
        wanted = {d["parent_id"] for d in items if isinstance(d, dict) and type(d.get("parent_id")) is str}
        if wanted:
            self._existing_parents = set(
                Job.objects.filter(workspace=self.workspace, id__in=wanted).values_list("id", flat=True)
            )

    def _plan_check(self, field: str, value: int, key: str) -> None:
        if self._plan_limit is not None:
            return
        try:
            plan_check_value(workspace=self.workspace, field=field, value=value)
        except PlanLimit as exc:
            exc.details = {**exc.details, "field": key}
            self._plan_limit = exc

    def _item(self, data: dict[str, Any], prefix: str, errors: Errors) -> JobSpec | None:
        """One job object -> JobSpec, or None with its errors added (checked in the order of the job object)."""
        before = len(errors)
        extra = data.keys() - CREATE_FIELDS
        for key in extra:
            errors[prefix + key] = _READ_ONLY if key in CREATE_READ_ONLY_FIELDS else UNKNOWN_FIELD
        spec = JobSpec()
        if "payload" in data:
            spec.payload = data["payload"]
            self._check_payload_size(spec.payload, prefix)
        self._labels(data, prefix, errors, spec)
        self._timing(data, prefix, errors, spec)
        self._limits(data, prefix, errors, spec)
        self._links(data, prefix, errors, spec)
        http = data.get("http")
        if http is not None:
            spec.http = self._http(http, prefix + "http", errors)
        elif self.needs_http:
            errors[prefix + "http"] = ["This push queue has no endpoint: each job needs an http target."]
        return spec if len(errors) == before else None

    def _check_payload_size(self, payload: Any, prefix: str) -> None:
        if payload is None or isinstance(payload, bool | int | float) or self._too_large is not None:
            return
        size = _payload_size(payload)
        if size > self.max_payload_bytes:
            self._too_large = PayloadTooLarge(
                f"The job payload is {size} bytes; the limit is {self.max_payload_bytes}.",
                details={
                    prefix + "payload": [f"At most {self.max_payload_bytes} bytes."],
                    "limit_bytes": self.max_payload_bytes,
                },
            )

    def _labels(self, data: dict[str, Any], prefix: str, errors: Errors, spec: JobSpec) -> None:
        """name, tags and priority."""
        name = data.get("name")
        if name is not None:
            if type(name) is not str or not 1 <= len(name) <= MAX_NAME_CHARS:
                errors[prefix + "name"] = [f"Expected a string of 1 to {MAX_NAME_CHARS} characters, or null."]
            else:
                spec.name = name

        tags = data.get("tags")
        if tags is not None:
            if type(tags) is not list:
                errors[prefix + "tags"] = ["Expected a list of strings."]
            elif len(tags) > MAX_TAGS:
                errors[prefix + "tags"] = [f"At most {MAX_TAGS} tags."]
            elif all(type(tag) is str and 1 <= len(tag) <= MAX_TAG_CHARS for tag in tags):
                spec.tags = tags
            else:
                errors[prefix + "tags"] = [f"Each tag must be a string of 1 to {MAX_TAG_CHARS} characters."]

        priority = data.get("priority")
        if priority is not None:
            if not _is_int(priority) or not PRIORITY_MIN <= priority <= PRIORITY_MAX:
                errors[prefix + "priority"] = [
                    f"Expected an integer between {PRIORITY_MIN} and {PRIORITY_MAX}."
                ]
            else:
                spec.priority = priority

    def _timing(self, data: dict[str, Any], prefix: str, errors: Errors, spec: JobSpec) -> None:
        """delay_ms or run_at."""
        delay_ms = data.get("delay_ms")
        run_at = data.get("run_at")
        if delay_ms is not None and run_at is not None:
            errors[prefix + "delay_ms"] = ["Give delay_ms or run_at, not both."]
        elif delay_ms is not None:
            if not _is_int(delay_ms) or not 0 <= delay_ms <= MAX_DELAY_MS:
                errors[prefix + "delay_ms"] = [f"Expected an integer between 0 and {MAX_DELAY_MS}."]
            elif not datetime_plus_ms_in_range(self.now, delay_ms):
                errors[prefix + "delay_ms"] = ["now + delay_ms is out of range. " + DATETIME_RANGE_MESSAGE]
            elif delay_ms:
                spec.run_at = self.now + timedelta(milliseconds=delay_ms)
        elif run_at is not None:
            # Bounded after the offset is applied: "0001-01-01T00:00:00+14:00" is year 0 in UTC and, once stored,
            # broke claim and the sweeper for every tenant (issue 9).
            parsed = parse_client_datetime(run_at)
            if parsed is None:
                errors[prefix + "run_at"] = [
                    "Expected an ISO 8601 date-time with a timezone (e.g. 2026-01-15T12:00:00Z). "
                    + DATETIME_RANGE_MESSAGE
                ]
            else:
                spec.run_at = parsed

    def _limits(self, data: dict[str, Any], prefix: str, errors: Errors, spec: JobSpec) -> None:
        """retry_policy, max_attempts and timeout_ms, with the plan's caps."""
        policy = data.get("retry_policy")
        if policy is not None:
            merged = validate_retry_policy(
                policy, prefix=prefix + "retry_policy", errors=errors, base=self.queue_policy
            )
            if merged is not None:
                spec.retry_policy = merged
                if "max_attempts" in policy and self.plan_max_attempts is not None:
                    self._plan_check(
                        "max_attempts", policy["max_attempts"], prefix + "retry_policy.max_attempts"
                    )

        bounded = (
            ("max_attempts", MAX_ATTEMPTS_MIN, MAX_ATTEMPTS_MAX, self.plan_max_attempts),
            ("timeout_ms", TIMEOUT_MS_MIN, TIMEOUT_MS_MAX, self.plan_max_timeout_ms),
        )
        for key, low, high, plan_cap in bounded:
            value = data.get(key)
            if value is None:
                continue
            if not _is_int(value) or not low <= value <= high:
                errors[prefix + key] = [f"Expected an integer between {low} and {high}."]
            else:
                setattr(spec, key, value)
                if plan_cap is not None:
                    self._plan_check(key, value, prefix + key)

    def _links(self, data: dict[str, Any], prefix: str, errors: Errors, spec: JobSpec) -> None:
        """idempotency_key, group, parent_id and the flow flags."""
        for key, limit in (("idempotency_key", MAX_IDEMPOTENCY_KEY_CHARS), ("group", MAX_GROUP_CHARS)):
            value = data.get(key)
            if value is not None:
                if type(value) is not str or not 1 <= len(value) <= limit:
                    errors[prefix + key] = [f"Expected a string of 1 to {limit} characters, or null."]
                else:
                    setattr(spec, key, value)

        parent_id = data.get("parent_id")
        if parent_id is not None:
            if type(parent_id) is not str or parent_id not in self._existing_parents:
                errors[prefix + "parent_id"] = ["Unknown parent job."]
            else:
                spec.parent_id = parent_id

        for flag in ("wait_for_children", "ignore_child_failures"):
            value = data.get(flag)
            if value is not None:
                if type(value) is not bool:
                    errors[prefix + flag] = ["Expected a boolean."]
                else:
                    setattr(spec, flag, value)

    def _http(self, value: Any, field: str, errors: Errors) -> dict[str, Any] | None:
        if not isinstance(value, dict):
            errors[field] = ["Expected an object with url, method, headers, body."]
            return None
        ok = True
        for key in value.keys() - {"url", "method", "headers", "body"}:
            errors[f"{field}.{key}"] = UNKNOWN_FIELD
            ok = False
        method = value.get("method", "POST")
        if type(method) is not str or method.upper() not in HTTP_METHODS:
            errors[f"{field}.method"] = [f"Expected one of {', '.join(sorted(HTTP_METHODS))}."]
            ok = False
        headers = value.get("headers")
        if headers is None:
            headers = {}
        elif (
            not isinstance(headers, dict)
            or len(headers) > MAX_HTTP_HEADERS
            or not all(type(k) is str and k and type(v) is str for k, v in headers.items())
        ):
            errors[f"{field}.headers"] = [f"Expected an object of at most {MAX_HTTP_HEADERS} string headers."]
            ok = False
        elif bad := _bad_headers(headers):
            # The same rules as a queue endpoint's headers: a line break would split the request at delivery.
            errors[f"{field}.headers"] = bad
            ok = False
        body = value.get("body")
        if body is not None and (type(body) is not str or len(body.encode()) > MAX_HTTP_BODY_BYTES):
            errors[f"{field}.body"] = [f"Expected a string of at most {MAX_HTTP_BODY_BYTES} bytes."]
            ok = False
        url = value.get("url")
        url_field = f"{field}.url"
        if type(url) is not str:
            errors[url_field] = ["A URL is required."]
            return None
        if url not in self._url_errors:
            try:
                if self._resolver is None:
                    self._resolver = Resolver()
                validate_target_url(url, field="url", resolver=self._resolver)
                self._url_errors[url] = None
            except ValidationFailed as exc:
                self._url_errors[url] = exc.details
        url_error = self._url_errors[url]
        if url_error:
            errors[url_field] = url_error.get("url") or ["Enter a valid URL."]
            return None
        if not ok:
            return None
        return {"url": url, "method": method.upper(), "headers": headers, "body": body}
