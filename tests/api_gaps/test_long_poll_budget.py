"""Issue 9 item 4: long-poll claims are budgeted so they cannot pin every web thread.

Over budget, a claim that finds nothing answers at once with an empty `data` and `Spindle-Long-Poll: refused`.
"""

from __future__ import annotations

import json
import threading
import time
import urllib.error
import urllib.request

import pytest
from django.core.cache import cache

from accounts.services import workspace_create
from jobs.services.pull.longpoll import LONG_POLL_SLOT_KEY
from tests import processes
from tests.factories import make_queue

WAIT_MS = 4000


def _claim(base: str, key: str, queue: str) -> tuple[float, int, str | None, list]:
    request = urllib.request.Request(
        f"{base}/v1/queues/{queue}/jobs/claim",
        data=json.dumps({"wait_ms": WAIT_MS}).encode(),
        headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"},
        method="POST",
    )
    started = time.monotonic()
    with urllib.request.urlopen(request, timeout=30) as response:
        body = json.loads(response.read())
        return (
            time.monotonic() - started,
            response.status,
            response.headers.get("Spindle-Long-Poll"),
            body["data"],
        )


def _timed_get(url: str, key: str | None = None) -> tuple[float, int]:
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    started = time.monotonic()
    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=30) as response:
            status = response.status
    except urllib.error.HTTPError as exc:
        status = exc.code
    return time.monotonic() - started, status


@pytest.fixture
def web_process_with_4_threads():
    """A real gunicorn process with 4 threads and a budget of 2 long-polls (the default is half the threads)."""
    processes.require_postgres("needs PostgreSQL shared with the web process")
    env = processes.process_env(SPINDLE_LONGPOLL_MAX_PER_PROCESS="2", SPINDLE_LONGPOLL_MAX_PER_WORKSPACE="2")
    with processes.gunicorn_server(env, threads=4, only_200=False) as port:
        yield f"http://127.0.0.1:{port}"


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_more_long_polls_than_the_budget_leave_threads_for_other_requests(plans, web_process_with_4_threads):
    base = web_process_with_4_threads
    keys = []
    for name in ("tenant-a", "tenant-b"):
        workspace, issued = workspace_create(name=name, plan_code="pro")
        make_queue(workspace, "work")
        keys.append(issued.raw)
    results: list[tuple[float, int, str | None, list]] = []
    errors: list[BaseException] = []

    def poll(key: str) -> None:
        try:
            results.append(_claim(base, key, "work"))
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    # Six long-polls against a budget of two, on a process with four threads.
    threads = [threading.Thread(target=poll, args=(keys[i % 2],)) for i in range(6)]
    for thread in threads:
        thread.start()
    time.sleep(1.0)  # every poll has arrived; the granted ones are now waiting
    health = [_timed_get(f"{base}/v1/health") for _ in range(3)]
    status = [_timed_get(f"{base}/v1/status", keys[0]) for _ in range(3)]
    for thread in threads:
        thread.join(timeout=30)
    assert not errors, errors
    assert all(code == 200 for _, code in health + status), (health, status)
    # Served while the budgeted long-polls were still waiting: well under their 4 s.
    assert max(elapsed for elapsed, _ in health + status) < 1.5, (health, status)
    waited = [r for r in results if r[2] is None]
    refused = [r for r in results if r[2] == "refused"]
    assert len(waited) == 2 and len(refused) == 4, results
    assert all(elapsed >= WAIT_MS / 1000 - 0.2 and data == [] for elapsed, _, _, data in waited)
    assert all(elapsed < 1.5 and code == 200 and data == [] for elapsed, code, _, data in refused)


@pytest.mark.django_db(transaction=True)
def test_one_workspace_cannot_take_the_whole_process_budget(plans, live_server, settings):
    settings.SPINDLE_LONGPOLL_MAX_PER_PROCESS = 10
    settings.SPINDLE_LONGPOLL_MAX_PER_WORKSPACE = 1
    greedy, greedy_key = workspace_create(name="greedy", plan_code="pro")
    polite, polite_key = workspace_create(name="polite", plan_code="pro")
    make_queue(greedy, "work")
    make_queue(polite, "work")
    results: dict[str, tuple[float, int, str | None, list]] = {}

    def poll(label: str, key: str) -> None:
        results[label] = _claim(live_server.url, key, "work")

    first = threading.Thread(target=poll, args=("greedy-1", greedy_key.raw))
    first.start()
    # The first poll holds the workspace's slot before the others come (not a fixed pause: under load it can
    # take longer to arrive).
    held = LONG_POLL_SLOT_KEY.format(workspace_id=greedy.id, slot=0)
    deadline = time.monotonic() + 10
    while cache.get(held) is None and time.monotonic() < deadline:
        time.sleep(0.02)
    assert cache.get(held) is not None, "the first poll never took the workspace's slot"
    others = [
        threading.Thread(target=poll, args=("greedy-2", greedy_key.raw)),
        threading.Thread(target=poll, args=("polite", polite_key.raw)),
    ]
    for thread in others:
        thread.start()
    for thread in [first, *others]:
        thread.join(timeout=30)
    assert results["greedy-2"][2] == "refused" and results["greedy-2"][0] < 1.5
    assert results["greedy-1"][2] is None and results["greedy-1"][0] >= WAIT_MS / 1000 - 0.2
    assert results["polite"][2] is None and results["polite"][0] >= WAIT_MS / 1000 - 0.2


@pytest.mark.django_db(transaction=True)
def test_a_refused_claim_still_returns_ready_jobs(plans, api_client, workspace, settings):
    """The budget only limits waiting: a claim that finds jobs answers them whatever the budget."""
    settings.SPINDLE_LONGPOLL_MAX_PER_WORKSPACE = 1
    from jobs.services.pull.longpoll import long_poll_slot as _long_poll_slot
    from tests.pull.conftest import enqueue

    queue = make_queue(workspace, "work")
    enqueue(workspace, queue, 1)
    with _long_poll_slot(workspace_id=workspace.id, wait_ms=5000) as granted:
        assert granted
        response = api_client.post("/v1/queues/work/jobs/claim", {"wait_ms": 5000}, format="json")
        assert response.status_code == 200 and len(response.json()["data"]) == 1
        assert "Spindle-Long-Poll" not in response
        started = time.monotonic()
        empty = api_client.post("/v1/queues/work/jobs/claim", {"wait_ms": 5000}, format="json")
        assert time.monotonic() - started < 1.5
        assert empty.json()["data"] == [] and empty["Spindle-Long-Poll"] == "refused"
    # The slot is free again: this claim waits its full time.
    started = time.monotonic()
    api_client.post("/v1/queues/work/jobs/claim", {"wait_ms": 300}, format="json")
    assert time.monotonic() - started >= 0.25
