"""Smoke test of the embedded mode: SQLite + filesystem broker, no servers, real web and worker processes."""

from __future__ import annotations

import pytest

from tests import smoke
from tests.endpoints import recording_endpoint
from tests.events.servers import Stream, fields
from tests.processes import BIN

pytestmark = pytest.mark.slow


def test_embedded_mode_serves_and_completes_a_job(tmp_path):
    env = smoke.smoke_env(
        drop={"DATABASE_URL", "CELERY_BROKER_URL", "CACHE_URL", "SECRET_KEY"}, SPINDLE_VAR_DIR=str(tmp_path)
    )
    python = str(BIN / "python")
    smoke.manage(python, env, "migrate", "--no-input", "-v0")
    smoke.manage(python, env, "createcachetable")
    key = smoke.demo_key(python, env)
    again = smoke.manage(python, env, "bootstrap_demo")
    assert "rt_ws_" not in again and "issue_key" in again

    # Exactly what `make run` starts: every process of the Procfile through bin/run-procfile.
    env.update(PATH=f"{BIN}:{env.get('PATH', '')}")
    with recording_endpoint() as endpoint, smoke.procfile_running(env, tmp_path / "procs.log") as run:
        _, health = smoke.call_json("GET", f"{run.base}/v1/health")
        assert health["services"]["database"]["status"] == "ok"
        current = smoke.push_job_completes(run, key, endpoint, {"hello": "embedded"})
        assert current["result"]["http_status"] == 200
        # Server-Sent Events on the same port (config.front serves them itself), replaying the job's events.
        stream = Stream(
            run.port,
            "/v1/queues/hooks/events",
            {"Authorization": f"Bearer {key}", "Last-Event-ID": "evt_" + "0" * 26},
        )
        try:
            assert stream.status == 200 and "text/event-stream" in stream.headers
            seen = [fields(f).get("event") for f in stream.frames(4)]
            assert seen[1] == "connected" and "job:waiting" in seen[2:], seen
            # Ctrl-C stops every process (the runner forwards it and waits), an open event stream included: the
            # front's graceful shutdown is bounded, well before the runner's own 10 s escalation to SIGKILL.
            stop_s, leftovers = smoke.ctrl_c(run.runner)
        finally:
            stream.close()
    assert not leftovers, f"processes still running after Ctrl-C: {leftovers}"
    assert stop_s < 9, f"Ctrl-C took {stop_s:.1f} s with an event stream open"
