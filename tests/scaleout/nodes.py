"""Spindle "nodes" for multi-process tests: the Procfile's own commands, each node its own process tree.

A node is `bin/run-procfile` over some of the Procfile's lines (the web lines, or the worker line) with its own
SPINDLE_VAR_DIR and PORT, the way one machine of a several-machine deployment runs `make run`'s commands. Reading
the Procfile at start keeps the tests on whatever the Procfile says. (A small starter of its own, to be folded
into tests/processes.py.)
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from django.conf import settings

from tests.smoke import descendants

ROOT = Path(__file__).resolve().parents[2]
WORKER_ROLES = frozenset({"worker"})
# Lines a web node does not run: the worker, and side servers with a fixed port of their own (gRPC).
NOT_WEB_ROLES = frozenset({"worker", "beat", "grpc"})


def procfile_lines(*, web: bool) -> str:
    """The Procfile lines of a web node (web=True) or of a worker node, as a Procfile."""
    lines = []
    for line in (ROOT / "Procfile").read_text().splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        role = line.split(":", 1)[0].strip()
        if (role not in NOT_WEB_ROLES) if web else (role in WORKER_ROLES):
            lines.append(line)
    assert lines, "the Procfile has no line for this node"
    return "\n".join(lines) + "\n"


def database_url() -> str:
    """The URL of this session's test database (the one pytest-django created)."""
    db = settings.DATABASES["default"]
    auth = db["USER"] + (f":{db['PASSWORD']}" if db.get("PASSWORD") else "")
    return f"postgres://{auth}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Node:
    name: str
    proc: subprocess.Popen
    log: Path
    port: int | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def kill9(self) -> None:
        """kill -9 the node's whole process tree, as a machine dies: the runner and every server process (each
        Procfile process leads its own session, so the tree is followed by parent pid, not by group)."""
        for pid in descendants(self.proc.pid):
            with contextlib.suppress(ProcessLookupError):  # already gone
                os.kill(pid, signal.SIGKILL)
        self.proc.wait(timeout=10)

    def local_ports(self) -> set[int]:
        """The local ports of the node's TCP sockets (Linux /proc): tells which node a connection came from."""
        inodes: set[str] = set()
        for pid in descendants(self.proc.pid):
            with contextlib.suppress(OSError):
                for fd in Path(f"/proc/{pid}/fd").iterdir():
                    with contextlib.suppress(OSError):
                        link = os.readlink(fd)
                        if link.startswith("socket:["):
                            inodes.add(link[8:-1])
        ports = set()
        for table in ("/proc/net/tcp", "/proc/net/tcp6"):
            for row in Path(table).read_text().splitlines()[1:]:
                cols = row.split()
                if cols[9] in inodes:
                    ports.add(int(cols[1].rsplit(":", 1)[1], 16))
        return ports

    def output(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""


def start_node(tmp: Path, name: str, *, web: bool, env: dict[str, str]) -> Node:
    """Start a node in its own var dir and process group; a web node gets a free port (not waited for)."""
    var = tmp / name
    var.mkdir(parents=True, exist_ok=True)
    procfile = var / "Procfile"
    procfile.write_text(procfile_lines(web=web))
    port = free_port() if web else None
    node_env = {
        **os.environ,
        "PATH": f"{Path(sys.executable).parent}:{os.environ.get('PATH', '')}",
        "DATABASE_URL": database_url(),
        "SPINDLE_VAR_DIR": str(var),
        "HOST": "127.0.0.1",
        "PORT": str(port or 0),
        **env,
    }
    node_env.pop("TEST_DB_NAME", None)
    log = var / "node.log"
    with open(log, "wb") as fh:
        proc = subprocess.Popen(
            [str(ROOT / "bin" / "run-procfile"), str(procfile)],
            cwd=ROOT,
            env=node_env,
            stdout=fh,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    return Node(name, proc, log, port)


def start_nodes(tmp: Path, *, web: int, workers: int, env: dict[str, str]) -> list[Node]:
    """Start worker nodes `worker0…` and web nodes `web0…` at once, then wait until every web node answers."""
    nodes = [start_node(tmp, f"worker{i}", web=False, env=env) for i in range(workers)]
    nodes += [start_node(tmp, f"web{i}", web=True, env=env) for i in range(web)]
    try:
        for node in nodes:
            if node.port:
                wait_http(f"{node.url}/v1/health", timeout_s=90, node=node)
    except BaseException:
        stop_all(nodes)
        raise
    return nodes


def stop_all(nodes: list[Node]) -> None:
    """Ctrl-C every node at once, as `make run` gets it; kill -9 the trees still there after 10 s."""
    for node in nodes:
        if node.proc.poll() is None:
            node.proc.send_signal(signal.SIGINT)
    deadline = time.monotonic() + 10
    for node in nodes:
        try:
            node.proc.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            pass
        node.kill9()


def wait_http(url: str, *, timeout_s: float, node: Node | None = None) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if node is not None and node.proc.poll() is not None:
            raise RuntimeError(f"{node.name} exited:\n{node.output()[-3000:]}")
        try:
            with urllib.request.urlopen(url, timeout=2) as resp:
                if resp.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"{url} did not answer within {timeout_s}s:\n{node.output()[-3000:] if node else ''}")


def api(base: Node | str, key: str, method: str, path: str, body: Any = None) -> dict[str, Any]:
    """One JSON call with the workspace key, to a node or a base URL; an error status fails with its body."""
    url = base.url if isinstance(base, Node) else base
    req = urllib.request.Request(
        f"{url}{path}", data=None if body is None else json.dumps(body).encode(), method=method
    )
    req.add_header("Authorization", f"Bearer {key}")
    req.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(req, timeout=60) as resp:
            return json.loads(resp.read() or b"{}")
    except urllib.error.HTTPError as exc:
        raise AssertionError(f"{method} {path}: {exc.code} {exc.read()[:500]!r}") from None
