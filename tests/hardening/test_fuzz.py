"""Issue 9 item 3: property-based fuzzing of every operation in the OpenAPI document at /doc, in process.

Schemathesis builds requests (valid and invalid) from the schema and calls the Django WSGI app directly with a
valid API key; the one property checked is that no response is a 5xx. Bounded and deterministic: a few examples
per operation, derandomized, no database left behind (pytest-django's transaction rollback).
"""

from __future__ import annotations

from typing import Any

import pytest
import schemathesis
from django.core import signals
from django.core.wsgi import get_wsgi_application
from django.db import close_old_connections
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode

from accounts.services import workspace_create
from billing.models import Plan
from queues.services import queue_create

EXAMPLES_PER_OPERATION = 12

# 503 SERVICE_UNAVAILABLE is the documented answer of the billing routes when Stripe is not configured (as here);
# everything else must never be a 5xx.
_BILLING_503_PATHS = ("/v1/billing/checkout", "/v1/billing/portal", "/v1/billing/stripe-webhook")


@pytest.fixture
def fuzz_key(plans) -> str:
    # No rate limit or quota on this plan: a 429 or 402 would hide what the fuzzer is looking for.
    Plan.objects.update_or_create(code="fuzz", defaults={"name": "Fuzz"})
    workspace, issued = workspace_create(name="fuzz", plan_code="fuzz")
    # Objects named like hypothesis' first guesses, so path parameters sometimes hit something real.
    queue_create(workspace=workspace, data={"name": "0", "delivery": "pull"})
    queue_create(workspace=workspace, data={"name": "emails", "delivery": "pull"})
    return issued.raw


@pytest.fixture
def wsgi_app() -> Any:
    """The real WSGI app, minus the per-request connection close (as Django's test client does): it would close
    the connection that holds the test's transaction."""
    signals.request_started.disconnect(close_old_connections)
    signals.request_finished.disconnect(close_old_connections)
    yield get_wsgi_application()
    signals.request_started.connect(close_old_connections)
    signals.request_finished.connect(close_old_connections)


def _call(case: Any, key: str) -> None:
    if isinstance(case.body, dict) and "wait_ms" in case.body:
        case.body["wait_ms"] = 0  # a long poll would only make the run slow
    response = case.call(headers={"Authorization": f"Bearer {key}", "Accept": "application/json"})
    if response.status_code == 503 and case.operation.path in _BILLING_503_PATHS:
        assert response.json()["error"]["code"] == "SERVICE_UNAVAILABLE"
        return
    assert response.status_code < 500, (
        f"{case.method} {case.formatted_path} -> {response.status_code}: {response.text[:300]}\n"
        f"{case.as_curl_command()}"
    )


@pytest.mark.slow
def test_no_operation_answers_5xx(fuzz_key: str, wsgi_app: Any) -> None:
    schema = schemathesis.openapi.from_wsgi("/doc", wsgi_app)
    failures: list[str] = []
    operations = 0
    for result in schema.get_all_operations():
        operation = result.ok()
        operations += 1
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):

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
                _call(case, fuzz_key)

            try:
                check()
            except Unsatisfiable:
                continue  # nothing to make invalid in this operation (e.g. no parameters, no body)
            except AssertionError as exc:
                failures.append(f"{operation.method.upper()} {operation.path} ({mode.value}): {exc}")
    assert operations > 50, operations  # the whole document was read
    assert not failures, "\n\n".join(failures)
