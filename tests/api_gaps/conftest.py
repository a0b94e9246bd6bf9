"""Fixtures for the seeds' missing surfaces (issue 10 items 2-5): the pull tests' queue helper and listener stop."""

from __future__ import annotations

from tests.pull.conftest import _stop_listener  # noqa: F401 - the autouse fixture applies here too
