"""Fixtures of the Spooled realtime and gRPC tests (import them from the test modules): a live server laid out
as `make run` lays it out (config.front on one port for REST, SSE and WebSocket; `manage.py grpcserve` on its
own port), and the official `spooled` SDK driving it.

The SDK runs in a child interpreter started with `python -I`: our Django app owns the top-level name `spooled`,
and the repository root (first on sys.path here) would shadow the installed SDK; `-I` leaves the root off the
path, so `import spooled` is the SDK there. It also keeps the SDK's generated protobuf modules out of this
process, whose descriptor pool may hold ours (same message names). A script prints one JSON line; `sdk()`
returns it parsed, or fails the test with the child's output.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from accounts.services import workspace_create
from tests import processes
from tests.events import servers


@dataclass(frozen=True)
class Live:
    base_url: str
    grpc_address: str


@pytest.fixture(scope="module")
def live(django_db_setup: None) -> Iterator[Live]:
    """One web process and one gRPC process per module, on the test database (short SSE heartbeat and poll;
    streams re-check their credential every second)."""
    extra = {"SPINDLE_SSE_AUTH_RECHECK_S": "1"}
    env = servers.server_env(**extra)
    grpc_port = processes.free_port()
    cmd = [sys.executable, "manage.py", "grpcserve", "--port", str(grpc_port), "--threads", "2"]
    with servers.front_server(threads=4, **extra) as port, processes.running(cmd, env=env) as grpc:
        processes.wait_until(lambda: processes.accepts(grpc_port), grpc, what="grpcserve", timeout_s=60)
        yield Live(f"http://127.0.0.1:{port}", f"127.0.0.1:{grpc_port}")


@pytest.fixture
def api_key(plans: Any) -> str:
    """A fresh pro workspace's raw API key."""
    _, key = workspace_create(name="spooled-live", plan_code="pro")
    return key.raw


PRELUDE = """
import json, os, sys, threading, time
ARGS = json.loads(os.environ["SDK_ARGS"])
def done(value):
    print(json.dumps(value, default=str), flush=True)
def wait_for(check, timeout_s=20.0):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.05)
    return False
def applied(send_ping, count_pings, timeout_s=10.0):
    # Subscribe and unsubscribe are not acknowledged, but a socket's commands are answered in order: the
    # answer to a ping sent after one shows that it has been applied.
    before = count_pings()
    send_ping()
    return wait_for(lambda: count_pings() > before, timeout_s)
def settled(client, seen):
    # The same for a SpooledRealtime WebSocket, which has no ping of its own; its Pings reach on_event.
    return applied(lambda: client._ws.send('{"cmd": "ping"}'), lambda: [t for t, _ in seen].count("ping"))
"""


def sdk(code: str, *, timeout_s: float = 90, **args: Any) -> Any:
    """Run `code` (after PRELUDE; `ARGS` holds `args`) with the installed SDK; its last stdout line, parsed."""
    script = PRELUDE + textwrap.dedent(code)
    env = {**processes.process_env(), "SDK_ARGS": json.dumps(args)}
    env.pop("PYTHONPATH", None)
    run = subprocess.run(
        [sys.executable, "-I", "-c", script],
        capture_output=True,
        text=True,
        timeout=timeout_s,
        env=env,
        cwd="/",
    )
    lines = run.stdout.strip().splitlines()
    if run.returncode != 0 or not lines:
        pytest.fail(f"SDK script failed ({run.returncode}):\n{run.stdout[-3000:]}\n{run.stderr[-5000:]}")
    return json.loads(lines[-1])
