"""Issue 18: the `spindle` CLI against a live server, run as a separate process the way a shell runs it."""

from __future__ import annotations

import json
import subprocess
import time

import pytest

from tests.client.conftest import cli_cmd, cli_env
from tests.client.test_live import fail_one
from tests.events.servers import call

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]


def test_enqueue_list_get_retry_and_dlq(cli, spindle, base_url, api_key):
    spindle.create_queue("mail")
    first = cli(
        "--json", "enqueue", "mail", '{"to": "a@example.com"}', "--idempotency-key", "k1", "--tag", "x"
    )
    assert first.code == 0, first.err
    job = json.loads(first.out)
    assert job["state"] == "waiting" and job["payload"] == {"to": "a@example.com"} and job["tags"] == ["x"]
    again = cli("enqueue", "mail", '{"to": "a@example.com"}', "--idempotency-key", "k1", "--tag", "x")
    assert again.code == 0 and again.out.split("\t")[0] == job["id"]  # the replay: the same job
    piped = cli("enqueue", "mail", "-", "--json", stdin='{"n": 2}')
    assert piped.code == 0 and json.loads(piped.out)["payload"] == {"n": 2}

    listed = cli("jobs", "ls", "--queue", "mail", "--json", "--limit", "5")
    assert [j["id"] for j in listed.json_lines()] == [json.loads(piped.out)["id"], job["id"]]
    lines = cli("jobs", "ls", "--state", "waiting", "--tag", "x").out.splitlines()
    assert len(lines) == 1 and lines[0].split("\t")[:3] == [job["id"], "mail", "waiting"]
    detail = cli("jobs", "get", "mail", job["id"])
    assert detail.code == 0 and f"id: {job['id']}" in detail.out and "state: waiting" in detail.out

    assert fail_one(base_url, api_key, "mail") == job["id"]
    assert [j["id"] for j in cli("dlq", "mail", "--json").json_lines()] == [job["id"]]
    retried = cli("retry", "mail", job["id"], "--json")
    assert retried.code == 0 and json.loads(retried.out)["state"] == "waiting"
    assert cli("dlq", "mail").out == ""


def test_schedules_and_queues(cli, spindle, base_url, api_key):
    spindle.create_queue("sync")
    schedule = {"name": "nightly", "queue": "sync", "cron": "0 3 * * *", "job": {"payload": {"full": True}}}
    status, _, body = call("POST", f"{base_url}/v1/schedules", api_key, schedule)
    assert status == 201, body
    listed = cli("schedules", "ls")
    assert listed.code == 0 and listed.out.split("\t")[:3] == ["nightly", "0 3 * * *", "sync"]
    (row,) = cli("--json", "schedules", "ls").json_lines()
    assert row["name"] == "nightly" and row["job"]["payload"] == {"full": True}
    assert cli("queues", "ls").out.startswith("sync\tpull\trunning\twaiting=0")


def test_errors_exit_non_zero_with_the_code(cli, spindle, base_url):
    spindle.create_queue("q")
    missing = cli("jobs", "get", "q", "job_00000000000000000000000000")
    assert missing.code == 1 and missing.out == "" and "NOT_FOUND (404)" in missing.err
    invalid = cli("enqueue", "q", "{}", "--priority", "1000")
    assert invalid.code == 1 and "VALIDATION_ERROR (400)" in invalid.err and "priority" in invalid.err
    assert cli("enqueue", "q", "not json").code == 2  # refused by the CLI itself
    no_key = subprocess.run(cli_cmd("jobs", "ls"), env=cli_env(base_url, ""), capture_output=True, text=True)
    assert no_key.returncode == 2 and "SPINDLE_API_KEY" in no_key.stderr
    wrong = cli("jobs", "ls", "--key", "rt_ws_wrong")
    assert wrong.code == 1 and "UNAUTHORIZED (401)" in wrong.err


def test_tail_prints_a_line_per_event(spindle, base_url, api_key):
    spindle.create_queue("live")
    tail = subprocess.Popen(
        cli_cmd("tail", "--queue", "live", "--json", "--max-events", "1", "--timeout", "30"),
        env=cli_env(base_url, api_key),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        # Enqueue until the tail has seen one (it may still be starting when the first is enqueued).
        enqueued = []
        while tail.poll() is None and len(enqueued) < 20:
            enqueued.append(spindle.enqueue("live", {"n": len(enqueued)}).id)
            time.sleep(0.5)
        out, err = tail.communicate(timeout=30)
    finally:
        tail.kill()
    assert tail.returncode == 0, err
    (event,) = [json.loads(line) for line in out.splitlines()]
    assert event["type"] == "job:waiting" and event["queue"] == "live" and event["job_id"] in enqueued
    assert event["id"].startswith("evt_")
