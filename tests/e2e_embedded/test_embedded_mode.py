"""Smoke test of the embedded mode: SQLite + filesystem broker, no servers, real web and worker processes."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from tests.events.servers import Stream, fields

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent

pytestmark = pytest.mark.slow


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _embedded_env(var_dir: Path) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in {"DATABASE_URL", "CELERY_BROKER_URL", "CACHE_URL", "TEST_DB_NAME", "SECRET_KEY"}
    }
    env.update(
        SPINDLE_VAR_DIR=str(var_dir),
        SPINDLE_ALLOW_PRIVATE_TARGETS="1",
        DJANGO_SETTINGS_MODULE="config.settings",
        PYTHONUNBUFFERED="1",
    )
    return env


def _call(method: str, url: str, key: str | None = None, body: dict | None = None) -> tuple[int, dict]:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, method=method)
    if data is not None:
        request.add_header("Content-Type", "application/json")
    if key:
        request.add_header("Authorization", f"Bearer {key}")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read() or b"{}")
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"{}")


def _processes() -> dict[int, tuple[int, str]]:
    """pid -> (parent pid, state) of every process on the machine."""
    out = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        out[int(stat.parent.name)] = (int(fields[1]), fields[0])
    return out


def _descendants(root: int) -> set[int]:
    table = _processes()
    tree, grew = {root}, True
    while grew:
        found = {pid for pid, (ppid, _) in table.items() if ppid in tree} - tree
        tree |= found
        grew = bool(found)
    return tree


def _still_running(pids: set[int]) -> list[str]:
    """The processes of `pids` still running (zombies have exited), with their command lines."""
    table = _processes()
    alive = []
    for pid in sorted(pids):
        if pid in table and table[pid][1] != "Z":
            try:
                cmdline = (
                    Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
                )
            except OSError:
                continue  # exited just now
            alive.append(f"{pid} {cmdline}")
    return alive


class _Receiver(BaseHTTPRequestHandler):
    received: list[dict] = []

    def do_POST(self) -> None:  # noqa: N802
        length = int(self.headers.get("Content-Length") or 0)
        self.received.append(json.loads(self.rfile.read(length)))
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(b'{"ok": true}')

    def log_message(self, *args) -> None:
        pass


def test_embedded_mode_serves_and_completes_a_job(tmp_path):
    env = _embedded_env(tmp_path)
    python = str(BIN / "python")
    subprocess.run(
        [python, "manage.py", "migrate", "--no-input", "-v0"], cwd=ROOT, env=env, check=True, timeout=120
    )
    subprocess.run([python, "manage.py", "createcachetable"], cwd=ROOT, env=env, check=True, timeout=60)
    out = subprocess.run(
        [python, "manage.py", "bootstrap_demo"],
        cwd=ROOT,
        env=env,
        check=True,
        timeout=60,
        capture_output=True,
        text=True,
    ).stdout
    key = next(word for word in out.split() if word.startswith("rt_ws_"))
    again = subprocess.run(
        [python, "manage.py", "bootstrap_demo"],
        cwd=ROOT,
        env=env,
        check=True,
        timeout=60,
        capture_output=True,
        text=True,
    ).stdout
    assert "rt_ws_" not in again and "issue_key" in again

    receiver = ThreadingHTTPServer(("127.0.0.1", 0), _Receiver)
    threading.Thread(target=receiver.serve_forever, daemon=True).start()
    port = _free_port()
    logs = open(tmp_path / "procs.log", "w")
    # Exactly what `make run` starts: every process of the Procfile through bin/run-procfile.
    env.update(PORT=str(port), HOST="127.0.0.1", PATH=f"{BIN}:{env.get('PATH', '')}")
    runner = subprocess.Popen(
        [str(ROOT / "bin" / "run-procfile"), "Procfile"],
        cwd=ROOT,
        env=env,
        stdout=logs,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    base = f"http://127.0.0.1:{port}"
    stream = None
    try:
        deadline = time.monotonic() + 30
        status = None
        while time.monotonic() < deadline:
            try:
                status, health = _call("GET", f"{base}/v1/health")
                if status == 200:
                    break
            except OSError:
                time.sleep(0.2)
        assert status == 200, "embedded web server did not answer /v1/health"
        assert health["services"]["database"]["status"] == "ok"

        status, queue = _call(
            "POST",
            f"{base}/v1/queues",
            key,
            {
                "name": "hooks",
                "delivery": "push",
                "endpoint": {"url": f"http://127.0.0.1:{receiver.server_port}/hook"},
            },
        )
        assert status == 201, queue
        status, job = _call("POST", f"{base}/v1/queues/hooks/jobs", key, {"payload": {"hello": "embedded"}})
        assert status == 201, job

        deadline = time.monotonic() + 40
        while time.monotonic() < deadline:
            _, current = _call("GET", f"{base}/v1/queues/hooks/jobs/{job['id']}", key)
            if current.get("state") == "completed":
                break
            time.sleep(0.3)
        assert current["state"] == "completed", current
        assert current["result"]["http_status"] == 200
        assert _Receiver.received and _Receiver.received[0]["payload"] == {"hello": "embedded"}
        # Server-Sent Events on the same port (config.front serves them itself), replaying the job's events.
        stream = Stream(
            port,
            "/v1/queues/hooks/events",
            {"Authorization": f"Bearer {key}", "Last-Event-ID": "evt_" + "0" * 26},
        )
        assert stream.status == 200 and "text/event-stream" in stream.headers
        seen = [fields(f).get("event") for f in stream.frames(4)]
        assert seen[1] == "connected" and "job:waiting" in seen[2:], seen
    finally:
        # Ctrl-C stops every process (the runner forwards it and waits), an open event stream included: the
        # front's graceful shutdown is bounded, well before the runner's own 10 s escalation to SIGKILL.
        tree = _descendants(
            runner.pid
        )  # each Procfile process leads its own group: follow parents, not sessions
        runner.send_signal(signal.SIGINT)
        stopping = time.monotonic()
        try:
            runner.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(runner.pid, signal.SIGKILL)
        stop_s = time.monotonic() - stopping
        if stream is not None:
            stream.close()
        leftovers = _still_running(tree)
        for pid in leftovers:
            os.kill(int(pid.split()[0]), signal.SIGKILL)
        receiver.shutdown()
        logs.close()
    assert not leftovers, f"processes still running after Ctrl-C: {leftovers}"
    assert stop_s < 9, f"Ctrl-C took {stop_s:.1f} s with an event stream open"
