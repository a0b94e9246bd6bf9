"""Fixtures for the seeds' missing surfaces (issue 10 items 2-5): the pull tests' queue helper and listener stop."""

from __future__ import annotations

from tests.factories import make_queue  # noqa: F401 - the old import path, kept for tests on other branches
from tests.pull.conftest import _stop_listener  # noqa: F401 - the autouse fixture applies here too
