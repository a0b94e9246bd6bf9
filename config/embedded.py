"""What the embedded mode (`make run` with no servers configured) makes for itself on first start."""

from __future__ import annotations

import secrets
from pathlib import Path


def local_secret_key(var_dir: Path) -> str:
    """This checkout's own SECRET_KEY, generated once into `var_dir` (git-ignored) and read back afterwards."""
    var_dir.mkdir(parents=True, exist_ok=True)
    key_file = var_dir / "secret_key"
    if not key_file.exists():
        key_file.write_text(secrets.token_urlsafe(50))
    return key_file.read_text().strip()
