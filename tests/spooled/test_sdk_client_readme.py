"""The README's "Use it from the Spooled SDK" example runs as written against a live server.

It runs in its own interpreter outside the repository (`-P`, a temporary working directory), where
`import spooled` is the SDK, as on a user's machine."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]
README = Path(__file__).resolve().parents[2] / "README.md"


def readme_example() -> str:
    text = README.read_text()
    section = text.split("## Use it from the Spooled SDK", 1)[1]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)


def test_the_readme_example_works(base_url: str, live_key: str, tmp_path: Path) -> None:
    code = readme_example()
    assert len([line for line in code.splitlines() if line.strip()]) <= 10
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env.update(SPOOLED_API_KEY=live_key, SPOOLED_BASE_URL=base_url)
    done = subprocess.run(
        [sys.executable, "-P", "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "completed {'sent_to': 'ada@example.com'}"
