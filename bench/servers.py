"""The two ways the HTTP rows of `make bench` reach Spindle, started the same way by every group.

- `one_port`: what users hit. The Procfile's `web` command as `make run` starts it (uvicorn config.front:app, one
  process, the WSGI app on its thread pool of SPINDLE_WSGI_THREADS), read from the Procfile itself so the bench
  follows it when it changes.
- `direct`: gunicorn serving config.wsgi, reached directly, for reference; BENCH_GUNICORN_WORKERS x
  BENCH_GUNICORN_THREADS (default 1 x 8: the same processes and threads as the one port).
"""

from __future__ import annotations

import http.client
import os
import re
import shlex
import socket
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
KINDS = ("one_port", "direct")
LABELS = {"one_port": "one port (make run's uvicorn)", "direct": "gunicorn direct"}
DIRECT_WORKERS = int(os.environ.get("BENCH_GUNICORN_WORKERS", "1"))
DIRECT_THREADS = int(os.environ.get("BENCH_GUNICORN_THREADS", "8"))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def procfile_web(port: int) -> list[str]:
    """The Procfile's `web` command with HOST and PORT filled in (`${VAR:-default}` as the shell expands it)."""
    values = {"HOST": "127.0.0.1", "PORT": str(port)}
    for line in (ROOT / "Procfile").read_text().splitlines():
        if line.startswith("web:"):
            line = re.sub(
                r"\$\{(\w+)(?::-([^}]*))?\}", lambda m: values.get(m[1], m[2] or ""), line[len("web:") :]
            )
            cmd = shlex.split(line)
            if cmd and not os.path.isabs(cmd[0]) and (BIN / cmd[0]).exists():
                cmd[0] = str(BIN / cmd[0])  # make run puts the virtualenv's bin first on PATH
            return cmd
    raise RuntimeError("Procfile has no web process")


def command(kind: str, port: int) -> list[str]:
    if kind == "one_port":
        return procfile_web(port)
    return [
        str(BIN / "gunicorn"),
        "config.wsgi",
        "-b",
        f"127.0.0.1:{port}",
        "-w",
        str(DIRECT_WORKERS),
        "--threads",
        str(DIRECT_THREADS),
        "--log-level",
        "warning",
    ]


def start(kind: str, *, env: dict[str, str], log: Path) -> tuple[subprocess.Popen, int]:
    """Start the server `kind`; returns it and its port once it answers HTTP."""
    port = free_port()
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            command(kind, port),
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    wait_http(proc, port)
    return proc, port


def wait_http(proc: subprocess.Popen, port: int, timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server on port {port} exited during start-up ({proc.returncode})")
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
            conn.request("GET", "/livez")
            conn.getresponse().read()
            return
        except OSError:
            time.sleep(0.2)
    raise RuntimeError(f"server on port {port} did not answer within {timeout_s:.0f} s")
