from __future__ import annotations

import pytest

from tests.factories import make_queue


@pytest.fixture
def pull_queue(workspace):
    return make_queue(workspace, "sync")


@pytest.fixture
def other_queue(other_workspace_and_key):
    return make_queue(other_workspace_and_key[0], "sync")


@pytest.fixture(params=["set_based", "row_by_row"])
def firing(request, monkeypatch):
    """Run a ticker test through each firing path: PostgreSQL's set-based statement (the row path made to fail,
    so a silent fallback cannot pass for it) and the row-by-row path of SQLite and of the fallback."""
    from schedules.services import ticker

    if request.param == "set_based":

        def no_rows(**kwargs):
            raise AssertionError("the set-based path fell back to the row path")

        monkeypatch.setattr(ticker, "fire_batch_rows", no_rows)
    else:
        monkeypatch.setattr(ticker, "_set_based", lambda: False)
    return request.param
