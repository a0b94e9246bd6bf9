"""Issue 18, "operators are blind": /livez and /readyz, the request id from a request into its Celery task, JSON
logs, and one WARNING per dead-lettered job."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

import pytest
from celery import current_app
from celery.utils.log import ColorFormatter
from django.core.cache import cache
from django.db import transaction
from django.urls import resolve
from django.utils import timezone
from drf_spectacular.generators import SchemaGenerator
from rest_framework.test import APIClient

from config import liveness
from config import logging as log_context
from config.logging import ContextFilter, JsonFormatter
from jobs.services.engine import Outcome, jobs_record_outcomes, jobs_sweep
from jobs.tasks import deliver_queue, sweep
from queues.models import Queue
from schedules.tasks import tick
from tests.factories import insert_jobs, make_queue

DEAD_LETTER_LOGGER = "jobs.services.engine.outcomes"


def _mark(name: str, age_s: float) -> None:
    cache.set(liveness._KEY.format(name), time.time() - age_s, timeout=None)


# --- /livez and /readyz ---------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_livez_answers_get_and_head_without_auth_or_dependencies(monkeypatch):
    import config.health

    # Liveness checks nothing: with the database and the broker "down" it still answers 200.
    monkeypatch.setattr(config.health, "_check_database", lambda: pytest.fail("livez checked the database"))
    monkeypatch.setattr(config.health, "_check_broker", lambda: pytest.fail("livez checked the broker"))
    client = APIClient()
    answer = client.get("/livez", HTTP_ACCEPT="text/plain")
    assert answer.status_code == 200, answer.content
    assert answer.json()["status"] == "ok"
    head = client.head("/livez")
    assert head.status_code == 200 and head.content == b""
    assert client.post("/livez").status_code == 405


@pytest.mark.django_db
def test_readyz_is_503_while_the_ticker_and_sweeper_marks_are_missing():
    answer = APIClient().get("/readyz")
    assert answer.status_code == 503
    body = answer.json()
    assert body["status"] == "degraded"
    assert body["services"]["database"]["status"] == "ok"
    assert body["services"]["broker"]["status"] == "ok"
    assert body["services"]["worker"] == {"status": "down", "age_s": None, "error": "missing"}
    assert body["services"]["scheduler"] == {"status": "down", "age_s": None, "error": "missing"}
    head = APIClient().head("/readyz")
    assert head.status_code == 503 and head.content == b""


@pytest.mark.django_db
def test_readyz_is_503_when_the_ticker_mark_is_stale(settings):
    settings.SPINDLE_READY_MAX_AGE_S = 30
    _mark("sweeper", 1)
    _mark("ticker", 45)
    answer = APIClient().get("/readyz")
    assert answer.status_code == 503
    services = answer.json()["services"]
    assert services["worker"]["status"] == "ok"
    assert services["scheduler"]["status"] == "down" and services["scheduler"]["error"] == "stale"
    assert services["scheduler"]["age_s"] >= 45


@pytest.mark.django_db
def test_readyz_is_200_once_the_sweeper_and_the_ticker_ran():
    sweep()
    tick()
    answer = APIClient().get("/readyz")
    assert answer.status_code == 200, answer.content
    body = answer.json()
    assert body["status"] == "ok"
    assert set(body["services"]) == {"database", "broker", "worker", "scheduler"}
    assert all(s["status"] == "ok" for s in body["services"].values())
    assert APIClient().head("/readyz").status_code == 200


@pytest.mark.django_db
def test_readyz_reports_a_database_outage(monkeypatch):
    import config.health

    liveness.mark("sweeper")
    liveness.mark("ticker")
    down = {"status": "down", "latency_ms": None, "error": "OperationalError"}
    monkeypatch.setattr(config.health, "_check_database", lambda: down)
    answer = APIClient().get("/readyz")
    assert answer.status_code == 503 and answer.json()["services"]["database"] == down


def test_probes_are_unthrottled_and_documented():
    for path in ("/livez", "/readyz"):
        view = resolve(path).func.view_class
        assert view.throttle_classes == [] and view.authentication_classes == []
    schema = SchemaGenerator().get_schema(request=None, public=True)
    for path in ("/livez", "/readyz"):
        operation = schema["paths"][path]["get"]
        assert operation["tags"] == ["Health"]
    assert set(schema["paths"]["/readyz"]["get"]["responses"]) == {"200", "503"}
    # /v1/health keeps its contract: database and broker only.
    health = schema["components"]["schemas"]["HealthServices"]["properties"]
    assert set(health) == {"database", "broker"}


# --- request ids ----------------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_request_id_is_echoed_or_generated():
    client = APIClient()
    assert client.get("/livez", HTTP_X_REQUEST_ID="edge-7f3a.01").headers["X-Request-Id"] == "edge-7f3a.01"
    for bad in ("has space", "x" * 200, "semi;colon", "\u00e9t\u00e9"):
        rid = client.get("/livez", HTTP_X_REQUEST_ID=bad).headers["X-Request-Id"]
        assert rid != bad and len(rid) == 32
    one, two = (client.get("/v1/nope").headers["X-Request-Id"] for _ in range(2))
    assert one != two and len(one) == 32
    assert log_context.request_id() is None  # nothing leaks out of a request


@pytest.mark.django_db(transaction=True)
def test_request_id_follows_the_job_into_its_task_log(api_client, settings, monkeypatch, caplog):
    settings.SPINDLE_ALLOW_PRIVATE_TARGETS = True
    created = api_client.post(
        "/v1/queues",
        {
            "name": "hooks",
            "endpoint": {"url": "http://127.0.0.1:9/closed"},
            "retry_policy": {"max_attempts": 1},
        },
        format="json",
    )
    assert created.status_code == 201, created.content
    sent: list[dict] = []
    monkeypatch.setattr(
        current_app, "send_task", lambda name, args=None, **kw: sent.append({"args": args, **kw})
    )

    job = api_client.post(
        "/v1/queues/hooks/jobs", {"payload": {"n": 1}}, format="json", HTTP_X_REQUEST_ID="req-42"
    )
    assert job.status_code == 201, job.content
    assert job.headers["X-Request-Id"] == "req-42"
    hint = next(s for s in sent if s["args"] == [Queue.objects.get(name="hooks").id])
    assert hint["headers"] == {log_context.TASK_HEADER: "req-42"}

    caplog.handler.addFilter(ContextFilter())  # as the console handler of settings.LOGGING
    with caplog.at_level(logging.WARNING, logger=DEAD_LETTER_LOGGER):
        deliver_queue.apply(args=hint["args"], headers=hint["headers"])
    (record,) = [r for r in caplog.records if r.name == DEAD_LETTER_LOGGER]
    assert record.job_id == job.json()["id"]
    assert record.request_id == "req-42" and record.task == "jobs.deliver_queue"
    line = json.loads(JsonFormatter().format(record))
    assert line["request_id"] == "req-42" and line["job_id"] == job.json()["id"]
    assert log_context.request_id() is None  # the task's context is gone after it


@pytest.mark.django_db
def test_a_hint_without_the_header_still_runs():
    # A hint from a web process of the previous release carries no request id: the task runs as before.
    assert deliver_queue.apply(args=["que_gone"]).get() == 0
    assert deliver_queue.apply(args=["que_gone"], headers={log_context.TASK_HEADER: "bad id"}).get() == 0
    assert log_context.request_id() is None


# --- log formats ----------------------------------------------------------------------------------------------


def _record(message: str, **extra: object) -> logging.LogRecord:
    record = logging.LogRecord("jobs.x", logging.WARNING, __file__, 1, message, (), None)
    record.__dict__.update(extra)
    return record


def test_json_lines_parse_and_carry_the_context():
    token = log_context.bind(request_id="r-1", queue_id="que_1")
    try:
        record = _record("two\nlines", job_id="job_1")
        ContextFilter().filter(record)
        try:
            raise ValueError("boom")
        except ValueError:
            record.exc_info = sys.exc_info()
        text = JsonFormatter().format(record)
    finally:
        log_context.reset(token)
    assert "\n" not in text
    line = json.loads(text)
    assert line["level"] == "WARNING" and line["logger"] == "jobs.x" and line["message"] == "two\nlines"
    assert line["request_id"] == "r-1" and line["queue_id"] == "que_1" and line["job_id"] == "job_1"
    assert line["time"].endswith("Z") and "ValueError: boom" in line["exc_info"]


def test_json_log_format_from_the_environment():
    """SPINDLE_LOG_FORMAT=json through settings.LOGGING: every stderr line is one JSON object."""
    code = (
        "import django, logging; django.setup();"
        "from config import logging as lc; lc.bind(request_id='env-1');"
        "logging.getLogger('spindle.test').warning('hello %s', 'world')"
    )
    env = {**os.environ, "SPINDLE_LOG_FORMAT": "json", "DJANGO_SETTINGS_MODULE": "config.settings"}
    root = Path(__file__).resolve().parents[2]
    done = subprocess.run(
        [sys.executable, "-c", code], env=env, cwd=root, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    lines = [json.loads(line) for line in done.stderr.splitlines() if line.startswith("{")]
    assert {"logger": "spindle.test", "message": "hello world", "request_id": "env-1"}.items() <= lines[
        -1
    ].items()


def test_worker_handlers_get_the_format(settings):
    from config.logging import _adopt_celery_handlers

    handler = logging.StreamHandler()
    handler.setFormatter(ColorFormatter("%(levelname)s %(message)s", use_color=False))
    logger = logging.Logger("celery-root-stand-in")
    logger.addHandler(handler)
    settings.SPINDLE_LOG_FORMAT = "plain"
    _adopt_celery_handlers(logger=logger)
    token = log_context.bind(request_id="w-1")
    try:
        record = _record("plain line")
        assert all(f.filter(record) for f in handler.filters)
        assert handler.format(record) == "WARNING plain line request_id=w-1"
        settings.SPINDLE_LOG_FORMAT = "json"
        _adopt_celery_handlers(logger=logger)
        assert json.loads(handler.format(record))["request_id"] == "w-1"
    finally:
        log_context.reset(token)


# --- dead letters ---------------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_one_warning_per_dead_lettered_job(workspace, caplog, django_capture_on_commit_callbacks):
    queue = make_queue(workspace, "mail", delivery="push")
    dead = insert_jobs(queue, 2, state="active", attempts=3, max_attempts=3)
    retried, done = insert_jobs(queue, 2, state="active", attempts=1, max_attempts=3)
    error = {"type": "http_error", "message": "500"}
    outcomes = [Outcome(j.id, j.lease_token, "failure", error=error) for j in [*dead, retried]]
    outcomes.append(Outcome(done.id, done.lease_token, "success"))
    with caplog.at_level(logging.WARNING, logger=DEAD_LETTER_LOGGER):
        with django_capture_on_commit_callbacks(execute=True):
            assert jobs_record_outcomes(outcomes=outcomes) == []
            assert not [r for r in caplog.records if r.name == DEAD_LETTER_LOGGER]  # only after commit
    records = [r for r in caplog.records if r.name == DEAD_LETTER_LOGGER]
    assert sorted(r.job_id for r in records) == sorted(j.id for j in dead)
    for r in records:
        assert r.levelno == logging.WARNING
        assert (r.queue, r.queue_id, r.workspace_id) == ("mail", queue.id, workspace.id)
        assert (r.attempts, r.error_type) == (3, "http_error")
        assert r.job_id in r.getMessage() and "error_type=http_error" in r.getMessage()


@pytest.mark.django_db
def test_the_sweeper_logs_a_job_out_of_attempts_and_nothing_on_rollback(
    workspace, caplog, django_capture_on_commit_callbacks
):
    queue = make_queue(workspace, "mail", delivery="push")
    expired = timezone.now() - timedelta(seconds=5)
    (job,) = insert_jobs(queue, 1, state="active", attempts=2, max_attempts=2, lease_expires_at=expired)
    with caplog.at_level(logging.WARNING, logger=DEAD_LETTER_LOGGER):
        with pytest.raises(RuntimeError), transaction.atomic():
            jobs_sweep()
            raise RuntimeError  # rolled back: the job is not dead, nothing is logged
        assert not [r for r in caplog.records if r.name == DEAD_LETTER_LOGGER]
        with django_capture_on_commit_callbacks(execute=True):
            jobs_sweep()
    (record,) = [r for r in caplog.records if r.name == DEAD_LETTER_LOGGER]
    assert (record.job_id, record.error_type, record.attempts) == (job.id, "lease_expired", 2)
