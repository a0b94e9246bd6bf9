"""Issue 9 item 3 and issue 18: property-based fuzzing of every operation in the OpenAPI document at /doc, in process.

Schemathesis builds requests (valid and invalid) from the schema and calls the Django WSGI app directly with a
valid API key. Two properties: no response is a 5xx (except the documented 503 of billing without Stripe), and
every response conforms to the document: its status code is declared, and its body, content type and headers
match what is declared for that status. Bounded and deterministic: a few examples per operation, derandomized,
no database left behind (pytest-django's transaction rollback).
"""

from __future__ import annotations

from typing import Any

import pytest
import schemathesis
from django.core import signals
from django.core.wsgi import get_wsgi_application
from django.db import close_old_connections
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.core.failures import FailureGroup
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)
from schemathesis.specs.openapi.formats import get_default_format_strategies
from werkzeug.test import Client as WerkzeugClient

from accounts.models import Plan
from accounts.services import api_key_create, workspace_create
from jobs.models import Job
from jobs.services.enqueue import job_enqueue
from jobs.validation import JobValidator
from queues.models import Queue
from queues.services import queue_create
from schedules.models import Schedule
from schedules.services import schedule_create

EXAMPLES_PER_OPERATION = 12
CONFORMANCE_CHECKS = [
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    response_headers_conformance,
]

# 503 SERVICE_UNAVAILABLE is the documented answer of the billing routes when Stripe is not configured (as here);
# everything else must never be a 5xx.
_BILLING_503_PATHS = ("/v1/billing/checkout", "/v1/billing/portal", "/v1/billing/stripe-webhook")


@pytest.fixture
def fuzz_workspace(plans) -> tuple[Any, str]:
    # No quota and a rate limit never reached: a 429 or 402 would hide what the fuzzer is looking for, but a
    # limit there must be, or no response would carry the X-RateLimit-* headers whose format is checked.
    Plan.objects.update_or_create(code="fuzz", defaults={"name": "Fuzz", "requests_per_minute": 10**9})
    workspace, issued = workspace_create(name="fuzz", plan_code="fuzz")
    return workspace, issued.raw


def _ensure_objects(workspace: Any) -> tuple[str, dict[str, str]]:
    """A fresh API key (a fuzzed rotate-key or key DELETE revokes the last one), and a queue and a schedule both
    named `emails` with a delayed job, (re)created when a fuzzed DELETE removed them: cases are pointed at these,
    or nearly every one would stop at a 401 or 404 before its body is read."""
    raw_key = api_key_create(workspace=workspace, name="fuzz").raw
    queue = Queue.objects.filter(workspace=workspace, name="emails").first()
    if queue is None:
        queue = queue_create(workspace=workspace, data={"name": "emails", "delivery": "pull"})[0]
    if not Schedule.objects.filter(workspace=workspace, name="emails").exists():
        schedule_create(
            workspace=workspace, data={"name": "emails", "queue": "emails", "interval_ms": 60_000}
        )
    job = Job.objects.filter(workspace=workspace, queue=queue, state="delayed").first()
    if job is None:
        spec = JobValidator(workspace=workspace, queue=queue).validate_one(
            {"payload": {"a": 1}, "delay_ms": 3_600_000}
        )
        job = job_enqueue(workspace=workspace, queue=queue, spec=spec)[0]
    return raw_key, {"name": "emails", "job_id": job.id}


# Date-times at the edges of what datetime can hold, and impossible ones, mixed into every `date-time` the schema
# names (run_at, metrics from/to…): the generic generator rarely reaches them, and each one was a 500 once.
EDGE_DATE_TIMES = [
    "0001-01-01T00:00:00+14:00",
    "0001-01-01T00:00:00Z",
    "9999-12-31T23:59:59-12:00",
    "9999-12-31T23:59:59Z",
    "2026-02-30T00:00:00Z",
    "1969-12-31T23:59:59Z",
]


@pytest.fixture
def edge_date_times() -> Any:
    default = get_default_format_strategies()["date-time"]
    schemathesis.openapi.format("date-time", st.one_of(st.sampled_from(EDGE_DATE_TIMES), default))
    yield
    schemathesis.openapi.format("date-time", default)


@pytest.fixture
def wsgi_app() -> Any:
    """The real WSGI app, minus the per-request connection close (as Django's test client does): it would close
    the connection that holds the test's transaction."""
    signals.request_started.disconnect(close_old_connections)
    signals.request_finished.disconnect(close_old_connections)
    yield get_wsgi_application()
    signals.request_started.connect(close_old_connections)
    signals.request_finished.connect(close_old_connections)


def _call(case: Any, workspace: Any, mode: GenerationMode) -> None:
    key, real_ids = _ensure_objects(workspace)
    # Valid cases address real objects; half of the invalid ones too (deterministically), the other half keep the
    # path they were generated with, so bad path parameters are fuzzed as well.
    if mode is GenerationMode.POSITIVE or len(repr(case.body)) % 2:
        for param, value in real_ids.items():
            if case.path_parameters and param in case.path_parameters:
                case.path_parameters[param] = value
    if isinstance(case.body, dict) and "wait_ms" in case.body:
        case.body["wait_ms"] = 0  # a long poll would only make the run slow
    response = case.call(headers={"Authorization": f"Bearer {key}", "Accept": "application/json"})
    if response.status_code == 503 and case.operation.path in _BILLING_503_PATHS:
        assert response.json()["error"]["code"] == "SERVICE_UNAVAILABLE"
    elif response.status_code == 503 and case.operation.path == "/readyz":
        # No worker or scheduler runs here: not ready, the documented answer (its body is checked below).
        assert response.json()["services"]["scheduler"]["status"] == "down"
    else:
        assert response.status_code < 500, (
            f"{case.method} {case.formatted_path} -> {response.status_code}: {response.text[:300]}\n"
            f"{case.as_curl_command()}"
        )
    try:
        case.validate_response(response, checks=CONFORMANCE_CHECKS)
    except FailureGroup as exc:  # an ExceptionGroup: turned into the AssertionError the runner collects
        raise AssertionError(str(exc)) from None


def _closed_objects(node: Any) -> Any:
    """The document with `additionalProperties: false` on every object that lists its properties.

    The API refuses unknown fields (API.md: requests are strict), so without this almost every "valid" body the
    generator builds carries a stray key and stops at a 400 before reaching the code under test."""
    if isinstance(node, dict):
        if "properties" in node and "additionalProperties" not in node:
            node["additionalProperties"] = False
        for value in node.values():
            _closed_objects(value)
    elif isinstance(node, list):
        for value in node:
            _closed_objects(value)
    return node


def _property(operation: Any, mode: GenerationMode, workspace: Any) -> Any:
    """The hypothesis test for one operation in one generation mode."""

    @settings(
        max_examples=EXAMPLES_PER_OPERATION,
        derandomize=True,
        deadline=None,
        database=None,
        phases=[Phase.explicit, Phase.generate],  # no shrinking: report what was found, quickly
        suppress_health_check=list(HealthCheck),
    )
    @given(case=operation.as_strategy(generation_mode=mode))
    def check(case: Any) -> None:
        _call(case, workspace, mode)

    return check


@pytest.mark.slow
def test_no_operation_answers_5xx(
    fuzz_workspace: tuple[Any, str], wsgi_app: Any, edge_date_times: None
) -> None:
    workspace = fuzz_workspace[0]
    document = WerkzeugClient(wsgi_app).get("/doc", headers={"Host": "localhost"}).get_json()
    schema = schemathesis.openapi.from_dict(_closed_objects(document))
    schema.app = wsgi_app  # what `from_wsgi` does after loading
    failures: list[str] = []
    operations = 0
    for result in schema.get_all_operations():
        operation = result.ok()
        operations += 1
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            check = _property(operation, mode, workspace)
            try:
                check()
            except Unsatisfiable:
                continue  # nothing to make invalid in this operation (e.g. no parameters, no body)
            except AssertionError as exc:
                failures.append(f"{operation.method.upper()} {operation.path} ({mode.value}): {exc}")
    assert operations > 50, operations  # the whole document was read
    assert not failures, "\n\n".join(failures)
