"""bin/run-procfile leaves nothing behind: after Ctrl-C no process of its tree survives, not even the child of a
process that ignores SIGTERM (it used to kill only the processes it started, orphaning their children)."""

from __future__ import annotations

import signal
import subprocess
import time
from pathlib import Path

from tests.smoke import descendants, still_running

ROOT = Path(__file__).resolve().parents[2]

PROCFILE = """\
stubborn: bash -c "trap '' TERM INT; sleep 300 & sleep 301 & wait"
talker: bash -c "while true; do echo tick; sleep 0.1; done"
"""


def _sleepers(tree: set[int]) -> int:
    return sum(line.split(" ", 1)[1].strip() in ("sleep 300", "sleep 301") for line in still_running(tree))


def test_ctrl_c_stops_every_process_of_the_tree(tmp_path):
    procfile = tmp_path / "Procfile"
    procfile.write_text(PROCFILE)
    runner = subprocess.Popen(
        [str(ROOT / "bin" / "run-procfile"), str(procfile)],
        cwd=tmp_path,
        env={"PATH": "/usr/bin:/bin", "SPINDLE_VAR_DIR": str(tmp_path / "var"), "SPINDLE_STOP_GRACE_S": "1"},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 10
        tree: set[int] = set()
        while time.monotonic() < deadline:
            tree = descendants(runner.pid)
            if _sleepers(tree) == 2:
                break
            time.sleep(0.1)
        assert _sleepers(tree) == 2, still_running(tree)
        runner.send_signal(signal.SIGINT)
        runner.wait(timeout=15)
        time.sleep(0.3)
        leftovers = still_running(tree)
    finally:
        for line in still_running(descendants(runner.pid) | tree):
            subprocess.run(["kill", "-9", line.split()[0]], check=False)
    assert not leftovers, f"still running after Ctrl-C: {leftovers}"
    assert b"talker | tick" in runner.stdout.read()
