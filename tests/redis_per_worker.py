"""Under pytest-xdist, each worker gets its own pair of Redis databases (loaded with `-p`, before Django's settings).

The suite's tests clear the cache, flush the broker and count rate-limit windows: two workers sharing a database
would see each other's keys. pytest-django already gives each worker its own PostgreSQL test database
(`test_<name>_gw<N>`); this does the same for `CELERY_BROKER_URL` and `CACHE_URL`, counting down from the numbers
`make test` gives (worker gw0 keeps them, gw1 takes the two below, and so on). The subprocesses tests start
inherit the rewritten environment.
"""

from __future__ import annotations

import os
from urllib.parse import urlsplit, urlunsplit

_URLS = ("CELERY_BROKER_URL", "CACHE_URL")


def _shifted(url: str, by: int) -> str:
    parts = urlsplit(url)
    db = int(parts.path.strip("/") or 0) - by
    if db < 0:
        raise RuntimeError(f"{url}: too few Redis databases below it for this many xdist workers")
    return urlunsplit(parts._replace(path=f"/{db}"))


def _apply() -> None:
    worker = os.environ.get("PYTEST_XDIST_WORKER", "")
    if not worker.startswith("gw"):
        return
    by = 2 * int(worker[2:])
    for name in _URLS:
        url = os.environ.get(name, "")
        if url.startswith(("redis://", "rediss://")) and by:
            os.environ[name] = _shifted(url, by)


_apply()
